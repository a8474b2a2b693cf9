"""Translation between containerd's wire types and ctrledger's records; nothing else.

Wire → store: an unset ``spec`` is ``None`` (the store then says "Container.Spec must be
set"), a set but empty ``Any`` is an empty ``Payload``; an unset ``runtime.options`` is
``None``. Client timestamps are dropped (the store ignores them anyway). containerd 1.6 has
no ``sandbox`` field, so records go out without it.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from google.protobuf import any_pb2, timestamp_pb2

import ctrledger
from ctrledger import Container, Payload, Runtime
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2 as cpb
from ctrledger.wire.ctrledger.v1 import ledger_pb2 as lpb

__all__ = [
    "EncodedRecords",
    "container_from_wire",
    "container_to_wire",
    "field_change_to_wire",
    "payload_from_any",
    "payload_to_any",
    "point_from_wire",
    "repeated_field",
    "timestamp",
    "time_from_wire",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(t: datetime | None) -> timestamp_pb2.Timestamp:
    if t is None:
        return timestamp_pb2.Timestamp()
    delta = t - _EPOCH
    return timestamp_pb2.Timestamp(seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000)


def time_from_wire(ts: timestamp_pb2.Timestamp) -> datetime:
    return datetime.fromtimestamp(ts.seconds, UTC).replace(microsecond=ts.nanos // 1000)


def payload_from_any(a: any_pb2.Any) -> Payload:
    return Payload(a.type_url, a.value)


def payload_to_any(p: Payload) -> any_pb2.Any:
    return any_pb2.Any(type_url=p.type_url, value=p.value)


def container_from_wire(c: cpb.Container, created_at: datetime | None = None) -> Container:
    """``c`` as the store's record (``created_at``: the record's, e.g. what containerd says)."""
    runtime = Runtime(
        c.runtime.name, payload_from_any(c.runtime.options) if c.runtime.HasField("options") else None
    )
    return Container(
        id=c.id,
        labels=dict(c.labels),
        image=c.image,
        runtime=runtime,
        spec=payload_from_any(c.spec) if c.HasField("spec") else None,
        snapshotter=c.snapshotter,
        snapshot_key=c.snapshot_key,
        extensions={k: payload_from_any(v) for k, v in c.extensions.items()},
        created_at=created_at,
    )


def container_to_wire(c: Container) -> cpb.Container:
    """``c`` as containerd's Container, built with keyword arguments (the C implementation
    does the work)."""
    options = c.runtime.options
    fields: dict[str, Any] = {
        "id": c.id, "labels": c.labels, "image": c.image, "snapshotter": c.snapshotter,
        "snapshot_key": c.snapshot_key, "created_at": timestamp(c.created_at), "updated_at": timestamp(c.updated_at),
        "runtime": _RUNTIME(name=c.runtime.name) if options is None else _RUNTIME(
            name=c.runtime.name, options=_ANY(type_url=options.type_url, value=options.value)),
    }
    if c.spec is not None:
        fields["spec"] = _ANY(type_url=c.spec.type_url, value=c.spec.value)
    if c.extensions:
        fields["extensions"] = {k: _ANY(type_url=v.type_url, value=v.value) for k, v in c.extensions.items()}
    return cpb.Container(**fields)


_RUNTIME = cpb.Container.Runtime
_ANY = any_pb2.Any


class EncodedRecords:
    """containerd's encoding of records, kept by ``(namespace, id, version)``: a version of a
    container never changes, so its bytes are made once. What is kept is the record framed as
    field 1 of a message (tag, length, bytes), which is each response that carries records:
    ``GetContainerResponse``, ``Create…``/``Update…Response``, ``ListContainerMessage``, and,
    joined, ``ListContainersResponse``. Bounded by ``max_bytes`` (least recently used go
    first); thread-safe, one lock round per call."""

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self._max = max_bytes
        self._size = 0
        self._items: OrderedDict[tuple[str, str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """The bytes kept now (at most ``max_bytes``)."""
        with self._lock:
            return self._size

    def field1(self, namespace: str, c: Container) -> bytes:
        """``c`` as field 1 of a message: a whole Get/Create/Update response, or a ListStream message."""
        return self.each(namespace, (c,))[0]

    def many(self, namespace: str, records: Iterable[Container]) -> bytes:
        """``records`` as repeated field 1: a ListContainersResponse."""
        return b"".join(self.each(namespace, records))

    def kept(self, namespace: str, keys: Iterable[tuple[str, int]]) -> bytes | None:
        """The records ``(id, version)`` as repeated field 1 (a ListContainersResponse), if every
        one is kept; else None (the caller reads the records)."""
        out: list[bytes] = []
        items = self._items
        with self._lock:
            for cid, version in keys:
                key = (namespace, cid, version)
                data = items.get(key)
                if data is None:
                    return None
                items.move_to_end(key)
                out.append(data)
        return b"".join(out)

    def each(self, namespace: str, records: Iterable[Container]) -> list[bytes]:
        """Each of ``records`` as field 1 of its own message: a page of ListStream messages."""
        out: list[bytes] = []
        missing: list[tuple[int, tuple[str, str, int], Container]] = []
        with self._lock:
            items = self._items
            for c in records:
                key = (namespace, c.id, c.version)
                data = items.get(key)
                if data is None:
                    missing.append((len(out), key, c))
                    out.append(b"")
                else:
                    items.move_to_end(key)
                    out.append(data)
        if not missing:
            return out
        made = [(i, key, _field1(container_to_wire(c).SerializeToString())) for i, key, c in missing]
        with self._lock:
            for i, key, data in made:
                out[i] = data
                if key not in self._items:
                    self._items[key] = data
                    self._size += len(data)
            while self._size > self._max and self._items:
                self._size -= len(self._items.popitem(last=False)[1])
        return out


def _field1(raw: bytes) -> bytes:
    return _FIELD1 + _varint(len(raw)) + raw


def repeated_field(number: int, items: Iterable[bytes]) -> bytes:
    """The encoding of ``repeated <message> field = number`` from its elements' encodings."""
    tag = _varint(number << 3 | 2)
    return b"".join(tag + _varint(len(item)) + item for item in items)


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


_SMALL = [bytes((i,)) for i in range(0x80)]
_FIELD1 = _varint(1 << 3 | 2)


def _json(value: Any) -> str:
    """A change's value as the JSON ``ctrledger history --json`` prints (bytes as base64)."""
    return json.dumps(ctrledger.FieldChange("", value, None).to_dict()["old"], sort_keys=True)


def field_change_to_wire(change: ctrledger.FieldChange) -> lpb.FieldChange:
    out = lpb.FieldChange(field=change.field)
    if change.old is not None:
        out.old_present, out.old_json = True, _json(change.old)
    if change.new is not None:
        out.new_present, out.new_json = True, _json(change.new)
    return out


def point_from_wire(p: lpb.Point) -> datetime | ctrledger.Version | ctrledger.Position | None:
    """A wire point as the store's; ``None`` when unset."""
    which = p.WhichOneof("point")
    if which == "time":
        return time_from_wire(p.time)
    if which == "version":
        return ctrledger.Version(p.version)
    if which == "position":
        return ctrledger.Position(p.position)
    return None
