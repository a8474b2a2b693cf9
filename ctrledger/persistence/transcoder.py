"""msgpack encoding of every stored event and snapshot.

Native msgpack carries str, int, float, bool, None, bytes, lists and maps. Ext
types carry the rest, each with a fixed code (never reuse or renumber one: the
codes are part of the stored format):

====  ===========  ============================================================
code  type         payload (itself msgpack)
====  ===========  ============================================================
1     datetime     int microseconds since the Unix epoch, UTC (aware on decode)
2     UUID         16 raw bytes
3     Payload      [type_url, value]
4     Runtime      [name, options or nil]
5     Audit        [actor, reason, correlation_id, fieldpaths, client]
6     tuple        the items (so tuples come back as tuples, not lists)
7     Resources    [cpu_period, cpu_quota, cpu_shares, memory_limit_in_bytes, oom_score_adj,
                   cpuset_cpus, cpuset_mems, hugepage_limits, unified, memory_swap_limit_in_bytes]
8     Status       [pid, created_at, started_at, finished_at, exit_code, reason, message, paused,
                   resources, runs] (``state`` is derived, never stored)
====  ===========  ============================================================

Lists decode as lists and maps as dicts. bytes, datetimes and UUIDs round-trip exactly;
a datetime must be timezone-aware (it is normalised to UTC).
"""

from __future__ import annotations

import functools
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import msgpack
from eventsourcing.persistence import Transcoder

from ..domain.model import Audit, Payload, Resources, Runtime, Status

__all__ = ["MsgPackTranscoder", "micros", "pack_plain", "packb", "unpack_plain", "unpackb"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DATETIME, _UUID, _PAYLOAD, _RUNTIME, _AUDIT, _TUPLE, _RESOURCES, _STATUS = 1, 2, 3, 4, 5, 6, 7, 8


class _Packers(threading.local):
    """Each thread's msgpack packers. ``msgpack.packb`` builds a ``Packer`` (and its buffer) per
    call, ~2-4 us each, and an event's state takes ten packs; a packer is reused instead. A
    ``Packer`` is not reentrant, and ``_default`` packs nested values while the outer pack is
    running, so the ext packers are a per-thread pool; the plain packer never calls back."""

    def __init__(self) -> None:
        self.free: list[msgpack.Packer] = []
        self.plain = msgpack.Packer(use_bin_type=True)


_packers = _Packers()


def pack_plain(obj: Any) -> bytes:
    """``msgpack.packb(obj, use_bin_type=True)``: native types only (no ext hook), on a reused packer."""
    packer = _packers.plain
    try:
        data: bytes = packer.pack(obj)
    except BaseException:
        _packers.plain = msgpack.Packer(use_bin_type=True)  # never reuse one a failure may have left dirty
        raise
    return data


def micros(ts: datetime) -> int:
    """An aware datetime as its integer microseconds since the epoch (exact): how it is stored."""
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# An ext value built as the tuple it is (``ExtType`` is a namedtuple): ``ExtType(code, data)`` runs
# two Python functions to check arguments that are right by construction here (a known code,
# bytes from a packer), and every event packs three or four ext values.
_ext: Any = functools.partial(tuple.__new__, msgpack.ExtType)


def _pack_datetime(obj: datetime) -> msgpack.ExtType:
    if obj.tzinfo is None:
        raise TypeError(f"cannot encode a naive datetime: {obj!r}")
    ext: msgpack.ExtType = _ext((_DATETIME, pack_plain(micros(obj))))
    return ext


def _pack_audit(obj: Audit) -> msgpack.ExtType:
    # Plain strings only inside: decoded by msgpack's C code, with no nested ext.
    ext: msgpack.ExtType = _ext(
        (_AUDIT, pack_plain([obj.actor, obj.reason, obj.correlation_id, list(obj.fieldpaths), obj.client])))
    return ext


def _pack_payload(obj: Payload) -> msgpack.ExtType:
    ext: msgpack.ExtType = _ext((_PAYLOAD, pack_plain((obj.type_url, obj.value))))
    return ext


def _pack_runtime(obj: Runtime) -> msgpack.ExtType:
    ext: msgpack.ExtType = _ext((_RUNTIME, packb([obj.name, obj.options])))
    return ext


def _pack_tuple(obj: tuple[Any, ...]) -> msgpack.ExtType:
    ext: msgpack.ExtType = _ext((_TUPLE, packb(list(obj))))
    return ext


# The exact types every event holds, straight to their packing; anything else (a subclass) by the chain.
_BY_TYPE: dict[type, Any] = {
    datetime: _pack_datetime, Audit: _pack_audit, Payload: _pack_payload, Runtime: _pack_runtime,
    tuple: _pack_tuple,
}


def _default(obj: Any) -> msgpack.ExtType:
    pack = _BY_TYPE.get(type(obj))
    if pack is not None:
        ext: msgpack.ExtType = pack(obj)
        return ext
    if isinstance(obj, datetime):
        return _pack_datetime(obj)
    if isinstance(obj, tuple):
        return _pack_tuple(obj)
    if isinstance(obj, Payload):
        return _pack_payload(obj)
    if isinstance(obj, Runtime):
        return _pack_runtime(obj)
    if isinstance(obj, Audit):
        return _pack_audit(obj)
    if isinstance(obj, UUID):
        return msgpack.ExtType(_UUID, obj.bytes)
    if isinstance(obj, Resources):
        return msgpack.ExtType(_RESOURCES, packb([
            obj.cpu_period, obj.cpu_quota, obj.cpu_shares, obj.memory_limit_in_bytes, obj.oom_score_adj,
            obj.cpuset_cpus, obj.cpuset_mems, [list(pair) for pair in obj.hugepage_limits], dict(obj.unified),
            obj.memory_swap_limit_in_bytes,
        ]))
    if isinstance(obj, Status):
        return msgpack.ExtType(_STATUS, packb([
            obj.pid, obj.created_at, obj.started_at, obj.finished_at, obj.exit_code, obj.reason, obj.message,
            obj.paused, obj.resources, obj.runs,
        ]))
    raise TypeError(f"cannot encode {type(obj).__name__}: {obj!r}")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _DATETIME:
        return _EPOCH + timedelta(0, 0, msgpack.unpackb(data))
    if code == _TUPLE:
        return tuple(unpackb(data))
    if code == _PAYLOAD:
        type_url, value = msgpack.unpackb(data)
        return Payload(type_url, value)
    if code == _RUNTIME:
        name, options = unpackb(data)
        return Runtime(name, options)
    if code == _AUDIT:
        actor, reason, correlation_id, fieldpaths, client = msgpack.unpackb(data)
        return Audit(actor, reason, correlation_id, tuple(fieldpaths), client)
    if code == _UUID:
        return UUID(bytes=data)
    if code == _RESOURCES:
        period, quota, shares, memory, oom, cpus, mems, hugepages, unified, swap = unpackb(data)
        return Resources(period, quota, shares, memory, oom, cpus, mems,
                         tuple((size, limit) for size, limit in hugepages), unified, swap)
    if code == _STATUS:
        pid, created, started, finished, exit_code, reason, message, paused, resources, runs = unpackb(data)
        return Status(pid, created, started, finished, exit_code, reason, message, paused, resources, runs)
    return msgpack.ExtType(code, data)


def packb(obj: Any) -> bytes:
    """Encode ``obj`` (the types above, nested freely)."""
    free = _packers.free
    packer = free.pop() if free else msgpack.Packer(default=_default, strict_types=True, use_bin_type=True)
    data: bytes = packer.pack(obj)  # a packer that raised is dropped, not put back
    free.append(packer)
    return data


def unpackb(data: bytes) -> Any:
    """Decode what ``packb`` encoded."""
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)


def _plain_hook(code: int, data: bytes) -> Any:
    if code == _DATETIME or code == _AUDIT:
        return msgpack.unpackb(data)
    if code == _TUPLE:
        return tuple(unpack_plain(data))
    return _ext_hook(code, data)


def unpack_plain(data: bytes) -> Any:
    """Decode what ``packb`` encoded, with a datetime as its int microseconds since the epoch and
    an Audit as its list ``[actor, reason, correlation_id, fieldpaths, client]`` (no objects
    built for the two values every event carries: the bulk build's decoding)."""
    return msgpack.unpackb(data, ext_hook=_plain_hook, raw=False, strict_map_key=False)


class MsgPackTranscoder(Transcoder):
    """eventsourcing ``Transcoder`` that stores events as msgpack.

    Stateless, so one instance is safe across threads (no shared ``Packer``).
    """

    def encode(self, obj: Any) -> bytes:
        return packb(obj)

    def decode(self, data: bytes) -> Any:
        return unpackb(data)
