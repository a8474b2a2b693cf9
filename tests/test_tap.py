"""Reading gRPC calls from HTTP/2 bytes as they pass (``ctrledger.follow.tap``): the same events
whatever the bytes' split into chunks, header blocks across CONTINUATION frames, padding and
priority, unwanted DATA counted past, and bytes that are not HTTP/2 refused with ``TapError``."""

from __future__ import annotations

import gzip
import random
import zlib

import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctrledger.follow.tap import PREFACE, Event, Frames, TapError, grpc_message

DATA, HEADERS, RST, SETTINGS, CONTINUATION = 0x0, 0x1, 0x3, 0x4, 0x9


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def message(body: bytes, flag: int = 0) -> bytes:
    return bytes([flag]) + len(body).to_bytes(4, "big") + body


def connection() -> tuple[bytes, list[tuple[str, int, object, bool]]]:
    """A client's side of a connection: two calls (one wanted), header blocks split and padded."""
    enc = hpack.Encoder()
    h1 = enc.encode([(":path", "/containerd.services.containers.v1.Containers/Create"), ("containerd-namespace", "n"),
                     ("ctrledger-reason", "r" * 300)])
    h3 = enc.encode([(":path", "/containerd.services.version.v1.Version/Version")])
    h1b = enc.encode([(":path", "/containerd.services.containers.v1.Containers/Create"), ("containerd-namespace", "n"),
                      ("ctrledger-reason", "r" * 300)])  # the same again: indexed in the dynamic table now
    body = message(b"request-1" * 50)
    out = PREFACE + frame(SETTINGS, 0, 0, b"")
    out += frame(HEADERS, 0, 1, h1[:10]) + frame(CONTINUATION, 0, 1, h1[10:40]) + frame(CONTINUATION, 0x4, 1, h1[40:])
    out += frame(HEADERS, 0x4 | 0x8 | 0x20, 3, bytes([3]) + b"\0\0\0\0\x10" + h3 + b"pad")  # padded, priority
    out += frame(DATA, 0, 3, message(b"unwanted" * 10))
    out += frame(DATA, 0x8, 1, bytes([2]) + body[:100] + b"xx")  # padded
    out += frame(DATA, 0x1, 1, body[100:])
    out += frame(RST, 0, 3, b"\0\0\0\x08")
    out += frame(HEADERS, 0x4 | 0x1, 5, h1b)
    expected = [
        ("headers", 1, h1, False), ("headers", 3, h3, False), ("data", 1, body[:100], False),
        ("data", 1, body[100:], True), ("reset", 3, None, False), ("headers", 5, h1b, True),
    ]
    return out, expected


def read(data: bytes, cuts: list[int], wants: set[int]) -> list[Event]:
    events: list[Event] = []
    frames = Frames(preface=True, wants=wants.__contains__)
    at = 0
    for cut in [*sorted(cuts), len(data)]:
        frames.feed(data[at:cut], events.append)
        at = cut
    return events


def summary(events: list[Event]) -> list[tuple[str, int, object, bool]]:
    return [(e.kind, e.stream, e.headers if e.kind == "headers" else (e.data or None), e.end_stream) for e in events]


def _expected_summary() -> list[tuple[str, int, object, bool]]:
    dec = hpack.Decoder()
    _, expected = connection()
    return [(k, s, [tuple(h) for h in dec.decode(p)] if k == "headers" else p, end)  # type: ignore[arg-type]
            for k, s, p, end in expected]


def test_a_connection_read_whole_and_byte_by_byte_gives_the_same_events() -> None:
    data, _ = connection()
    whole = read(data, [], {1})
    assert summary(whole) == _expected_summary()
    assert summary(read(data, list(range(1, len(data))), {1})) == summary(whole)
    # each event's start is where its (last) frame began, counted in the chunk that completed it
    for e in whole:
        assert data[e.start + 3] in (HEADERS, CONTINUATION, DATA, RST)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(connection()[0]) - 1), max_size=12))
def test_any_split_into_chunks_gives_the_same_events(cuts: list[int]) -> None:
    data, _ = connection()
    assert summary(read(data, cuts, {1})) == _expected_summary()


def test_start_offsets_are_relative_to_the_chunk_that_completes_the_event() -> None:
    data, _ = connection()
    for _ in range(50):
        cuts = sorted(random.sample(range(1, len(data)), 5))
        frames = Frames(preface=True, wants={1}.__contains__)
        at = 0
        for cut in [*cuts, len(data)]:
            got: list[Event] = []
            frames.feed(data[at:cut], got.append)
            for e in got:
                begin = at + e.start  # absolute
                assert 0 <= begin < cut and data[begin + 3] in (HEADERS, CONTINUATION, DATA, RST)
            at = cut


def test_unwanted_data_is_not_reported() -> None:
    data, _ = connection()
    assert [e for e in read(data, [], set()) if e.kind == "data"] == []
    assert {e.stream for e in read(data, [], {1, 3}) if e.kind == "data"} == {1, 3}


def test_the_wanted_set_can_change_between_events() -> None:
    data, _ = connection()
    wants: set[int] = set()
    frames = Frames(preface=True, wants=wants.__contains__)
    seen: list[Event] = []

    def then(e: Event) -> None:
        seen.append(e)
        if e.kind == "headers" and e.stream == 1:
            wants.add(1)  # as the proxy does: a call is wanted once its headers are read

    frames.feed(data, then)
    assert [e.data for e in seen if e.kind == "data" and e.stream == 1] == [d for k, s, d, _ in _expected_summary()
                                                                           if k == "data"]


@pytest.mark.parametrize("bad", [
    b"GET / HTTP/1.1\r\n\r\n",
    PREFACE + frame(CONTINUATION, 0x4, 1, b"x"),
    PREFACE + frame(HEADERS, 0, 1, b"") + frame(DATA, 0, 1, b""),
    PREFACE + frame(HEADERS, 0x4, 1, b"\xff\xff\xff\xff"),
    PREFACE + frame(DATA, 0x8, 1, b"\x09abc"),
])
def test_bytes_that_are_not_http2_as_expected_raise_tap_error(bad: bytes) -> None:
    with pytest.raises(TapError):
        Frames(preface=True, wants=lambda _: True).feed(bad, lambda e: None)


def test_grpc_message_plain_and_compressed() -> None:
    body = b"hello" * 100
    assert grpc_message(message(body)) == body
    assert grpc_message(message(gzip.compress(body), 1), "gzip") == body
    assert grpc_message(message(zlib.compress(body), 1), "deflate") == body
    assert grpc_message(message(gzip.compress(body), 1), "snappy") is None  # an encoding it cannot read
    assert grpc_message(message(gzip.compress(body), 1)) is None
    assert grpc_message(message(b"not gzip", 1), "gzip") is None
    assert grpc_message(message(body)[:-1]) is None  # incomplete
    assert grpc_message(message(body) + message(body)) is None  # two messages: not a unary call's
    assert grpc_message(b"") is None and grpc_message(bytes([7, 0, 0, 0, 0])) is None


def test_a_header_value_that_is_not_utf8_is_read_and_the_table_stays_in_step() -> None:
    """containerd takes metadata values that are not UTF-8; the reader once gave up on the whole
    connection (its calls no longer recorded under their caller) at the first one."""
    enc = hpack.Encoder()
    odd = [(b":path", b"/containerd.services.containers.v1.Containers/Create"), (b"ctrledger-reason", b"caf\xe9")]
    data = PREFACE + frame(HEADERS, 0x4, 1, enc.encode(odd)) + frame(HEADERS, 0x4 | 0x1, 3, enc.encode(odd))
    events = read(data, [], set())
    assert [e.headers for e in events] == [[(":path", "/containerd.services.containers.v1.Containers/Create"),
                                            ("ctrledger-reason", "caf\\xe9")]] * 2


def test_a_push_promise_is_decoded_to_keep_the_table_in_step_and_not_reported() -> None:
    """A server's PUSH_PROMISE (gRPC never pushes) carries a header block that may add to the
    HPACK table; a later block that refers to that entry must still read right."""
    enc = hpack.Encoder()
    promised = enc.encode([(":path", "/pushed"), ("x-pushed", "value-in-the-table")])
    later = enc.encode([("x-pushed", "value-in-the-table"), ("grpc-status", "0")])  # indexed now
    data = (frame(SETTINGS, 0, 0, b"")
            + frame(0x5, 0x4 | 0x8, 1, bytes([2]) + (2).to_bytes(4, "big") + promised + b"pp")  # padded
            + frame(HEADERS, 0x4 | 0x1, 1, later))
    events: list[Event] = []
    Frames(preface=False, wants=lambda _: False).feed(data, events.append)
    assert [(e.kind, e.stream, e.headers, e.end_stream) for e in events] == [
        ("headers", 1, [("x-pushed", "value-in-the-table"), ("grpc-status", "0")], True)]
