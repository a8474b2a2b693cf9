"""The gRPC calls on an HTTP/2 connection, read from its bytes as they pass.

The proxy relays each client connection to containerd byte for byte; :class:`Frames` reads one
direction of it on the side, frame by frame, and reports what the proxy records: the header
blocks (every one is decoded, in order, so the HPACK table stays in step with the peers'), the
DATA of the streams it is asked about, and stream resets. It never changes a byte and never
needs a whole frame before the bytes go on, except where the proxy holds them back on purpose
(see :meth:`Frames.feed`). HTTP/2's framing: RFC 9113, section 4 and 6; gRPC's messages in
DATA: a flag byte (compressed or not), a 4-byte length, the message.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import hpack

__all__ = ["MAX_MESSAGE", "Event", "Frames", "TapError", "grpc_message"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _RST_STREAM, _PUSH_PROMISE, _CONTINUATION = 0x0, 0x1, 0x3, 0x5, 0x9
_END_STREAM, _END_HEADERS, _PADDED, _PRIORITY = 0x1, 0x4, 0x8, 0x20


class TapError(Exception):
    """The bytes are not HTTP/2 as the reader understands it: it stops reading this connection
    (the bytes still pass; only the recording of its calls stops)."""


@dataclass(frozen=True)
class Event:
    """What one frame (or header block) said. ``start``: where its last frame began, as an
    offset into the chunk just fed (negative if it began in an earlier chunk)."""

    start: int
    kind: str  # "headers", "data" or "reset"
    stream: int
    headers: list[tuple[str, str]] | None = None
    data: bytes = b""
    end_stream: bool = False


class Frames:
    """One direction of an HTTP/2 connection, read incrementally.

    ``preface``: this direction starts with the client's connection preface. ``wants(stream)``:
    whether the DATA of a stream is wanted (other DATA is counted past, never buffered).
    """

    def __init__(self, *, preface: bool, wants: Callable[[int], bool]) -> None:
        self._preface = len(PREFACE) if preface else 0
        self._wants = wants
        self._decoder = hpack.Decoder()
        # Only a reader: the peers negotiate the table and list sizes, and enforce them.
        self._decoder.max_allowed_table_size = 1 << 31
        self._decoder.max_header_list_size = 1 << 31
        self._seen = 0  # bytes fed before the current chunk
        self._head = bytearray()  # a frame header being read
        self._frame: tuple[int, int, int, int] | None = None  # (length, type, flags, stream) being buffered
        self._start = 0  # where that frame began (counted from the connection's first byte)
        self._payload = bytearray()
        self._skip = 0  # payload bytes of an unwanted frame still to pass
        # a header block awaiting CONTINUATION: (stream, end_stream, fragments, whether to report it)
        self._block: tuple[int, bool, bytearray, bool] | None = None

    def feed(self, data: bytes | memoryview, then: Callable[[Event], None]) -> None:
        """Read ``data`` (the next bytes of this direction), calling ``then`` with each event as
        it completes (before the frames after it are read: ``then`` may change what is wanted)."""
        view = memoryview(data)
        n, i = len(data), 0
        if self._preface:
            i = min(self._preface, n)
            if bytes(view[:i]) != PREFACE[len(PREFACE) - self._preface:][:i]:
                raise TapError("not an HTTP/2 connection preface")
            self._preface -= i
        while i < n:
            if self._skip:
                k = min(self._skip, n - i)
                self._skip -= k
                i += k
                continue
            if self._frame is None:
                if not self._head:
                    self._start = self._seen + i
                k = min(9 - len(self._head), n - i)
                self._head += view[i:i + k]
                i += k
                if len(self._head) < 9:
                    break
                head = self._head
                length, kind, flags = int.from_bytes(head[:3], "big"), head[3], head[4]
                stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
                self._head = bytearray()
                if kind in (_HEADERS, _CONTINUATION, _RST_STREAM, _PUSH_PROMISE) or (
                        kind == _DATA and self._wants(stream)):
                    self._frame = (length, kind, flags, stream)
                    self._payload = bytearray()
                else:
                    if self._block is not None:
                        raise TapError("a header block was interrupted by another frame")
                    self._skip = length
                    continue
            else:
                k = min(self._frame[0] - len(self._payload), n - i)
                self._payload += view[i:i + k]
                i += k
            if len(self._payload) == self._frame[0]:
                length, kind, flags, stream = self._frame
                self._frame = None
                event = self._complete(kind, flags, stream, bytes(self._payload), self._start - self._seen)
                if event is not None:
                    then(event)
        self._seen += n

    def _complete(self, kind: int, flags: int, stream: int, payload: bytes, start: int) -> Event | None:
        if self._block is not None and kind != _CONTINUATION:
            raise TapError("a header block was interrupted by another frame")
        if kind == _DATA:
            return Event(start, "data", stream, data=_unpadded(payload, flags), end_stream=bool(flags & _END_STREAM))
        if kind == _RST_STREAM:
            return Event(start, "reset", stream)
        if kind == _HEADERS:
            fragment = _unpadded(payload, flags)
            if flags & _PRIORITY:
                fragment = fragment[5:]
            self._block = (stream, bool(flags & _END_STREAM), bytearray(fragment), True)
        elif kind == _PUSH_PROMISE:  # gRPC never pushes; decoded all the same, to keep HPACK in step
            self._block = (stream, False, bytearray(_unpadded(payload, flags)[4:]), False)
        elif kind == _CONTINUATION:
            if self._block is None or self._block[0] != stream:
                raise TapError("CONTINUATION without its HEADERS")
            self._block[2].extend(payload)
        if not flags & _END_HEADERS:
            return None
        assert self._block is not None
        stream, end_stream, block, report = self._block
        self._block = None
        try:  # any bytes (containerd takes values that are not UTF-8), kept readable
            headers = [(_text(k), _text(v)) for k, v in self._decoder.decode(bytes(block), raw=True)]
        except hpack.HPACKError as e:
            raise TapError(f"cannot decode a header block: {e}") from e
        return Event(start, "headers", stream, headers=headers, end_stream=end_stream) if report else None


def _text(field: str | bytes) -> str:
    return field.decode("utf-8", "backslashreplace") if isinstance(field, bytes) else field


def _unpadded(payload: bytes, flags: int) -> bytes:
    if not flags & _PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise TapError("bad padding")
    return payload[1:len(payload) - payload[0]]


MAX_MESSAGE = 64 << 20  # a recorded call's message beyond this is not read (containerd refuses 16 MiB)


def grpc_message(body: bytes | bytearray, encoding: str | None = None) -> bytes | None:
    """The one gRPC message that is ``body`` (a unary call's request or answer), decompressed
    if its flag says so (``encoding``: the ``grpc-encoding`` header, gzip or deflate); None if
    ``body`` is not exactly one message, or not one this can read."""
    if len(body) < 5 or body[0] not in (0, 1):
        return None
    length = int.from_bytes(body[1:5], "big")
    if len(body) != 5 + length:
        return None
    message = bytes(body[5:])
    if body[0] == 0:
        return message
    wbits = {"gzip": 31, "deflate": 15}.get(encoding or "")
    if wbits is None:
        return None
    inflate = zlib.decompressobj(wbits)
    try:
        out = inflate.decompress(message, MAX_MESSAGE)
    except zlib.error:
        return None
    return out if inflate.eof and not inflate.unconsumed_tail else None
