"""The portable archive of a log: framing, checksums and validation (no store involved).

The format is documented in ``docs/reference/archive-format.md``; in short, an
archive is one msgpack stream::

    "ctrledger-archive" 1            preamble: a str and the format version
    ["HEAD", sha256, header]         the header: source, range, filters, columns, counts
    ["CHNK", sha256, chunk] ...      chunks of stored events, as stored (not decoded)
    ["TAIL", sha256, trailer]        totals, and a digest over every chunk checksum

Every frame is written with fixed-width msgpack encodings (fixarray 3, fixstr 4,
bin 8 of 32 bytes, bin 32), so a reader finds each frame's length and checksum at
fixed offsets and can name the byte offset of anything wrong, before decoding a
single byte of the body. Any msgpack decoder can still read the file.

``ArchiveWriter`` writes; ``ArchiveReader`` reads, checks every checksum, the frame
sequence and the positions, and raises ``ArchiveError`` (an ``InvalidArgument``)
naming the byte offset of the first problem. Memory stays bounded by one chunk.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import msgpack

from ..errors import InvalidArgument

__all__ = [
    "COLUMNS",
    "FORMAT_VERSION",
    "ArchiveError",
    "ArchiveReader",
    "ArchiveWriter",
    "Chunk",
    "verify_archive",
]

FORMAT = "ctrledger-archive"
FORMAT_VERSION = 1
PREAMBLE = b"\xb1" + FORMAT.encode() + bytes([FORMAT_VERSION])  # fixstr(17), positive fixint
COLUMNS = ("position", "originator_id", "originator_version", "topic", "state")
HEAD, CHUNK, TAIL = b"HEAD", b"CHNK", b"TAIL"
_PREFIX = struct.Struct(">BB4sBB32sBI")  # 0x93 0xa4 tag 0xc4 0x20 sha256 0xc6 length
PREFIX_SIZE = _PREFIX.size  # 45
MAX_BODY = 256 * 1024 * 1024  # a frame body larger than this is refused as corrupt


class ArchiveError(InvalidArgument):
    """The archive is not a readable ctrledger archive: corrupt, truncated, or of an unknown format.

    ``offset`` is the byte offset of the problem in the file (of the frame it is in).
    """

    def __init__(self, message: str, *, path: str, offset: int) -> None:
        super().__init__(f"archive {path}: {message} (at byte {offset}): invalid argument")
        self.path = path
        self.offset = offset


def _frame(tag: bytes, body: bytes, checksum: bytes | None = None) -> bytes:
    checksum = hashlib.sha256(body).digest() if checksum is None else checksum
    return _PREFIX.pack(0x93, 0xA4, tag, 0xC4, 0x20, checksum, 0xC6, len(body)) + body


def _pack(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


@dataclass
class Chunk:
    """One chunk as read back: its place in the file and its rows (tuples in ``COLUMNS`` order)."""

    seq: int
    offset: int
    first: int
    last: int
    rows: list[tuple[Any, ...]]
    chain: bytes | None = None
    extra_columns: tuple[str, ...] = ()
    checksum: bytes = b""


class ArchiveWriter:
    """Writes an archive to a binary file object: the header now, chunks as they come, then the trailer."""

    def __init__(self, out: IO[bytes], header: dict[str, Any]) -> None:
        self.out = out
        body = _pack({"format": FORMAT, "format_version": FORMAT_VERSION, "columns": list(COLUMNS), **header})
        self.archive_id = hashlib.sha256(body).hexdigest()
        out.write(PREAMBLE)
        out.write(_frame(HEAD, body))
        self.bytes = len(PREAMBLE) + PREFIX_SIZE + len(body)
        self.events = 0
        self.chunks = 0
        self.first: int | None = None
        self.last: int | None = None
        self._digest = hashlib.sha256()

    def write_chunk(self, rows: Sequence[Sequence[Any]], chain: bytes | None = None) -> None:
        """Append one chunk of rows (``position, originator_id, originator_version, topic, state``)."""
        if not rows:
            return
        first, last = int(rows[0][0]), int(rows[-1][0])
        meta: dict[str, Any] = {"seq": self.chunks, "first": first, "last": last, "count": len(rows), "rows": rows}
        if chain is not None:
            meta["chain"] = chain
        body = _pack(meta)
        if len(body) > MAX_BODY:
            raise InvalidArgument(
                f"events at positions {first}-{last} take {len(body):,} bytes, more than an archive chunk holds "
                f"({MAX_BODY:,}); export with fewer events per chunk: invalid argument"
            )
        checksum = hashlib.sha256(body).digest()
        frame = _frame(CHUNK, body, checksum)
        self._digest.update(checksum)
        self.out.write(frame)
        self.bytes += len(frame)
        self.events += len(rows)
        self.chunks += 1
        self.first = first if self.first is None else self.first
        self.last = last

    def finish(self, chain: bytes | None = None, root: str | None = None) -> dict[str, Any]:
        """Write the trailer; return it. ``root``: the source's Merkle root after ``last`` (hex)."""
        trailer: dict[str, Any] = {
            "events": self.events, "chunks": self.chunks, "first": self.first, "last": self.last,
            "digest": self._digest.hexdigest(), "chain": chain,
        }
        if root is not None:
            trailer["root"] = root
        frame = _frame(TAIL, _pack(trailer))
        self.out.write(frame)
        self.bytes += len(frame)
        return trailer


class ArchiveReader:
    """Reads and checks an archive, one chunk in memory at a time.

    The header is read and checked on construction (``header``, ``archive_id``);
    ``chunks()`` yields every chunk after checking it; the trailer is checked when
    the iteration ends (``trailer``). Anything wrong raises ``ArchiveError``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        try:
            self._file: IO[bytes] = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as e:
            raise InvalidArgument(f"cannot read archive {self.path}: {e.strerror}: invalid argument") from None
        self.size = os.fstat(self._file.fileno()).st_size
        self.trailer: dict[str, Any] | None = None
        try:
            self._read_preamble()
            tag, body, offset, _ = self._frame(0)
            if tag != HEAD:
                raise self._error(f"expected the header frame, found {tag!r}", offset)
            self.archive_id = hashlib.sha256(body).hexdigest()
            self.header: dict[str, Any] = self._decode(body, offset, "header")
            self._check_header(offset)
            self._data_start = self._file.tell()
        except BaseException:
            self._file.close()
            raise

    # -- public ---------------------------------------------------------------

    @property
    def extra_columns(self) -> tuple[str, ...]:
        return tuple(self.header["columns"][len(COLUMNS):])

    def chunks(self, *, skip: int = 0) -> Iterator[Chunk]:
        """Every chunk in order, checked; the first ``skip`` chunks are stepped over (their checksums too)."""
        self._file.seek(self._data_start)
        self.trailer = None
        digest = hashlib.sha256()
        seq = 0
        events = 0
        previous_last = int(self.header["range"]["after"])
        while True:
            offset = self._file.tell()
            if seq < skip:
                tag, length, checksum = self._prefix(offset)
                if tag == CHUNK:
                    self._file.seek(length, os.SEEK_CUR)
                    digest.update(checksum)
                    seq += 1
                    continue
                self._file.seek(offset)
            tag, body, offset, checksum = self._frame(seq)
            if tag == TAIL:
                trailer = self._decode(body, offset, "trailer")
                self._check_trailer(trailer, offset, seq, digest.hexdigest(), events, skip)
                self.trailer = trailer
                return
            if tag != CHUNK:
                raise self._error(f"expected chunk #{seq} or the trailer, found a {tag.decode(errors='replace')!r} "
                                  "frame", offset)
            digest.update(checksum)
            meta = self._decode(body, offset, f"chunk #{seq}")
            chunk = self._check_chunk(meta, seq, offset, previous_last)
            chunk.checksum = checksum
            previous_last = chunk.last
            events += len(chunk.rows)
            seq += 1
            yield chunk

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- framing --------------------------------------------------------------

    def _error(self, message: str, offset: int) -> ArchiveError:
        return ArchiveError(message, path=self.path, offset=offset)

    def _read_preamble(self) -> None:
        data = self._file.read(len(PREAMBLE))
        if data[:-1] != PREAMBLE[:-1] or len(data) < len(PREAMBLE):
            if len(data) < len(PREAMBLE) and PREAMBLE.startswith(data) and data:
                raise self._error(f"truncated: the file ends after {len(data)} bytes, inside the preamble", 0)
            raise self._error("not a ctrledger archive (no 'ctrledger-archive' preamble)", 0)
        version = data[-1]
        if version != FORMAT_VERSION:
            raise self._error(
                f"archive format version {version} is not one this ctrledger reads (it reads {FORMAT_VERSION})",
                len(PREAMBLE) - 1,
            )

    def _prefix(self, offset: int) -> tuple[bytes, int, bytes]:
        raw = self._file.read(PREFIX_SIZE)
        if not raw:
            raise self._error(
                f"truncated: the archive ends after {offset} bytes without its trailer", offset)
        if len(raw) < PREFIX_SIZE:
            raise self._error(f"truncated: the archive ends inside a frame header ({len(raw)} of "
                              f"{PREFIX_SIZE} bytes)", offset)
        m_array, m_str, tag, m_bin8, m_len32, checksum, m_bin32, length = _PREFIX.unpack(raw)
        if (m_array, m_str, m_bin8, m_len32, m_bin32) != (0x93, 0xA4, 0xC4, 0x20, 0xC6) or tag not in (
            HEAD, CHUNK, TAIL
        ):
            raise self._error("corrupt: no valid frame starts here", offset)
        if length > MAX_BODY:
            raise self._error(f"corrupt: the frame declares {length} bytes, more than any frame holds", offset)
        remaining = self.size - offset - PREFIX_SIZE
        if length > remaining:
            raise self._error(
                f"truncated: the frame declares {length} bytes of body but only {remaining} remain", offset)
        return tag, length, checksum

    def _frame(self, seq: int) -> tuple[bytes, bytes, int, bytes]:
        offset = self._file.tell()
        tag, length, checksum = self._prefix(offset)
        body = self._file.read(length)
        if len(body) < length:
            raise self._error(f"truncated: the frame declares {length} bytes but only {len(body)} could be read",
                              offset)
        if hashlib.sha256(body).digest() != checksum:
            what = {HEAD: "the header", TAIL: "the trailer"}.get(tag, f"chunk #{seq}")
            raise self._error(
                f"checksum mismatch in {what} (body bytes {offset + PREFIX_SIZE}..{offset + PREFIX_SIZE + length})",
                offset,
            )
        return tag, body, offset, checksum

    def _decode(self, body: bytes, offset: int, what: str) -> dict[str, Any]:
        try:
            value = msgpack.unpackb(body, raw=False, strict_map_key=True)
        except (ValueError, msgpack.UnpackException) as e:
            raise self._error(f"{what} does not decode: {e}", offset) from None
        if not isinstance(value, dict):
            raise self._error(f"{what} is not a map", offset)
        return value

    # -- checks ---------------------------------------------------------------

    def _check_header(self, offset: int) -> None:
        h = self.header
        if h.get("format") != FORMAT or h.get("format_version") != FORMAT_VERSION:
            raise self._error("the header does not describe a ctrledger archive of format version "
                              f"{FORMAT_VERSION}", offset)
        columns = h.get("columns")
        if not isinstance(columns, list) or tuple(columns[: len(COLUMNS)]) != COLUMNS:
            raise self._error(f"the header's columns {columns!r} do not start with {list(COLUMNS)!r}", offset)
        rng = h.get("range")
        if not isinstance(rng, dict) or not isinstance(rng.get("after"), int) or not isinstance(
            rng.get("through"), int
        ):
            raise self._error("the header has no valid position range", offset)

    def _check_chunk(self, meta: dict[str, Any], seq: int, offset: int, previous_last: int) -> Chunk:
        rows = meta.get("rows")
        if meta.get("seq") != seq or not isinstance(rows, list) or not rows or meta.get("count") != len(rows):
            raise self._error(f"chunk #{seq} is malformed (sequence number, row count)", offset)
        width = len(self.header["columns"])
        last = previous_last
        through = int(self.header["range"]["through"])
        out: list[tuple[Any, ...]] = []
        for row in rows:
            if (
                not isinstance(row, list) or len(row) != width or not isinstance(row[0], int)
                or not isinstance(row[1], str) or not isinstance(row[2], int) or not isinstance(row[3], str)
                or not isinstance(row[4], bytes)
            ):
                raise self._error(f"chunk #{seq} holds a malformed event row", offset)
            if not last < row[0] <= through:
                raise self._error(
                    f"chunk #{seq}: event position {row[0]} out of order (after {last}, range ends at {through})",
                    offset,
                )
            last = row[0]
            out.append(tuple(row))
        if meta.get("first") != out[0][0] or meta.get("last") != last:
            raise self._error(f"chunk #{seq}: its first/last positions do not match its rows", offset)
        chain = meta.get("chain")
        return Chunk(seq, offset, out[0][0], last, out, chain if isinstance(chain, bytes) else None,
                     self.extra_columns)

    def _check_trailer(
        self, trailer: dict[str, Any], offset: int, chunks: int, digest: str, events: int, skipped: int
    ) -> None:
        if trailer.get("chunks") != chunks or trailer.get("digest") != digest:
            raise self._error(
                f"the trailer records {trailer.get('chunks')} chunks and digest {trailer.get('digest')}, "
                f"the archive holds {chunks} chunks with digest {digest}",
                offset,
            )
        if not skipped and trailer.get("events") != events:
            raise self._error(f"the trailer records {trailer.get('events')} events, the chunks hold {events}",
                              offset)
        expected = self.header.get("events")
        if expected is not None and trailer.get("events") != expected:
            raise self._error(f"the header announces {expected} events, the trailer records "
                              f"{trailer.get('events')}", offset)
        end = self._file.tell()
        if end != self.size:
            raise self._error(f"unexpected data after the trailer ({self.size - end} bytes)", end)


@dataclass(frozen=True)
class ArchiveInfo:
    """What a full check of an archive found."""

    path: str
    archive_id: str
    header: dict[str, Any]
    trailer: dict[str, Any]
    chunks: int
    events: int
    size: int
    chunk_offsets: tuple[int, ...] = field(default=(), repr=False)


def verify_archive(path: str | os.PathLike[str]) -> ArchiveInfo:
    """Read the whole archive, checking every frame; raise ``ArchiveError`` at the first problem."""
    with ArchiveReader(path) as reader:
        offsets = []
        events = 0
        for chunk in reader.chunks():
            offsets.append(chunk.offset)
            events += len(chunk.rows)
        assert reader.trailer is not None
        return ArchiveInfo(reader.path, reader.archive_id, reader.header, reader.trailer, len(offsets), events,
                           reader.size, tuple(offsets))
