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
====  ===========  ============================================================

Lists decode as lists and maps as dicts. bytes, datetimes and UUIDs round-trip exactly;
a datetime must be timezone-aware (it is normalised to UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import msgpack
from eventsourcing.persistence import Transcoder

from ..domain.model import Audit, Payload, Runtime

__all__ = ["MsgPackTranscoder", "packb", "unpackb"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DATETIME, _UUID, _PAYLOAD, _RUNTIME, _AUDIT, _TUPLE = 1, 2, 3, 4, 5, 6


def _default(obj: Any) -> msgpack.ExtType:
    if isinstance(obj, datetime):
        if obj.tzinfo is None:
            raise TypeError(f"cannot encode a naive datetime: {obj!r}")
        delta = obj - _EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return msgpack.ExtType(_DATETIME, msgpack.packb(micros))
    if isinstance(obj, tuple):
        return msgpack.ExtType(_TUPLE, packb(list(obj)))
    if isinstance(obj, Payload):
        return msgpack.ExtType(_PAYLOAD, msgpack.packb((obj.type_url, obj.value)))
    if isinstance(obj, Runtime):
        return msgpack.ExtType(_RUNTIME, packb([obj.name, obj.options]))
    if isinstance(obj, Audit):
        # Plain strings only inside: decoded by msgpack's C code, with no nested ext.
        return msgpack.ExtType(
            _AUDIT,
            msgpack.packb([obj.actor, obj.reason, obj.correlation_id, list(obj.fieldpaths), obj.client]),
        )
    if isinstance(obj, UUID):
        return msgpack.ExtType(_UUID, obj.bytes)
    raise TypeError(f"cannot encode {type(obj).__name__}: {obj!r}")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _DATETIME:
        return _EPOCH + timedelta(microseconds=msgpack.unpackb(data))
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
    return msgpack.ExtType(code, data)


def packb(obj: Any) -> bytes:
    """Encode ``obj`` (the types above, nested freely)."""
    data: bytes = msgpack.packb(obj, default=_default, strict_types=True, use_bin_type=True)
    return data


def unpackb(data: bytes) -> Any:
    """Decode what ``packb`` encoded."""
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)


class MsgPackTranscoder(Transcoder):
    """eventsourcing ``Transcoder`` that stores events as msgpack.

    Stateless, so one instance is safe across threads (no shared ``Packer``).
    """

    def encode(self, obj: Any) -> bytes:
        return packb(obj)

    def decode(self, data: bytes) -> Any:
        return unpackb(data)
