"""The event mapper: eventsourcing's, plus a shape check of every decoded event.

A damaged stored event (a flipped bit) may still decode, into fields of the wrong type,
which would fail later, far from the cause, as an ``AttributeError`` or ``TypeError``.
``LedgerMapper`` checks each decoded event's fields against its class's annotations and
turns any decoding failure into ``DataLoss`` naming the event (stream and version).
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import TopicError, resolve_topic

from ..domain.model import Audit, Payload, Runtime
from ..errors import DataLoss
from .transcoder import MsgPackTranscoder, unpack_plain

__all__ = ["LedgerMapper"]

Check = Callable[[Any], bool]


def _audit_ok(a: Any) -> bool:
    # Spelled out (no generator for the four fields): every decoded event is checked.
    return (isinstance(a, Audit) and isinstance(a.actor, str) and isinstance(a.reason, str)
            and isinstance(a.correlation_id, str) and isinstance(a.client, str)
            and isinstance(a.fieldpaths, tuple | list) and all(isinstance(p, str) for p in a.fieldpaths))


def _str_map_ok(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items())


def _payload_ok(p: Any) -> bool:
    return isinstance(p, Payload) and isinstance(p.type_url, str) and isinstance(p.value, bytes)


def _runtime_ok(r: Any) -> bool:
    return isinstance(r, Runtime) and isinstance(r.name, str) and (r.options is None or _payload_ok(r.options))


def _int_ok(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# The plain values come from msgpack itself (exact types): sets of their types are checked in C.
_STR = frozenset((str,))


def _plain_strs_ok(v: Any) -> bool:
    return type(v) in (tuple, list) and _STR.issuperset(map(type, v))


def _plain_str_map_ok(v: Any) -> bool:
    return type(v) is dict and _STR.issuperset(map(type, v)) and _STR.issuperset(map(type, v.values()))


def _plain_audit_ok(a: Any) -> bool:
    return type(a) is list and len(a) == 5 and _STR.issuperset(map(type, (a[0], a[1], a[2], a[4]))) and \
        _plain_strs_ok(a[3])


_SIMPLE: dict[Any, Check] = {
    str: lambda v: isinstance(v, str),
    int: _int_ok,
    datetime: lambda v: isinstance(v, datetime),
    Audit: _audit_ok,
    Payload: _payload_ok,
    Runtime: _runtime_ok,
}
# The same checks for the plain values of ``transcoder.unpack_plain`` (datetimes as ints, Audits as lists).
_PLAIN: dict[Any, Check] = {**_SIMPLE, datetime: _int_ok, Audit: _plain_audit_ok}


def _check_for(hint: Any, simple: dict[Any, Check] = _SIMPLE) -> Check | None:
    if hint in simple:
        return simple[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.ClassVar:
        return None
    if origin in (Mapping, dict) and args == (str, str):
        return _plain_str_map_ok if simple is _PLAIN else _str_map_ok  # labels: the common case
    if origin is tuple and args == (str, ...) and simple is _PLAIN:
        return _plain_strs_ok
    if origin in (Mapping, dict) and len(args) == 2:
        key, value = _check_for(args[0], simple), _check_for(args[1], simple)
        if key is None or value is None:
            return None
        return lambda v: isinstance(v, dict) and all(key(k) and value(x) for k, x in v.items())
    if origin is tuple and args:
        item = _check_for(args[0], simple)
        if item is None:
            return None
        return lambda v: isinstance(v, tuple | list) and all(item(x) for x in v)
    return None


@functools.cache
def _checks(cls: type, plain: bool = False) -> tuple[tuple[str, Check], ...]:
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - a class whose hints do not resolve is not checked
        return ()
    out = []
    for name, hint in hints.items():
        check = _check_for(hint, _PLAIN if plain else _SIMPLE)
        if check is not None:
            out.append((name, check))
    return tuple(out)


class LedgerMapper(Mapper[str]):
    """eventsourcing's mapper; a stored event that does not decode into its class's shape is ``DataLoss``."""

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[str]:
        where = f"the event of {stored_event.originator_id!r} at version {stored_event.originator_version}"
        try:
            event = super().to_domain_event(stored_event)
        except TopicError:
            raise  # an event class this ctrledger does not know (a newer writer): not damage
        except Exception as e:
            raise DataLoss(f"{where} is damaged: it cannot be decoded ({type(e).__name__}: {e}): data loss") from e
        _check(where, _checks(type(event)), getattr(event, "__dict__", {}))
        return event

    def plain_decoder(self) -> Callable[[str, int, str, bytes], tuple[type, dict[str, Any]]]:
        """A function ``(stream, version, topic, state) -> (event class, state)``: a stored event's state
        upcast and checked like ``to_domain_event`` does, as the plain values of
        ``transcoder.unpack_plain`` (no event object, the timestamp as int microseconds, the audit as a
        list). For a bulk build, which reads each field once. Only for ctrledger's own encoding
        (msgpack, no cipher, no compression: how ctrledger makes its mapper)."""
        if self.cipher or self.compressor or not isinstance(self.transcoder, MsgPackTranscoder):
            raise TypeError("plain decoding needs the msgpack transcoder, without a cipher or compression")
        kinds: dict[str, tuple[type, tuple[tuple[str, Check], ...]]] = {}

        def decode(stream: str, version: int, topic: str, data: bytes) -> tuple[type, dict[str, Any]]:
            kind = kinds.get(topic)
            if kind is None:
                cls = resolve_topic(topic)
                kind = kinds[topic] = (cls, _checks(cls, True))
            cls, checks = kind
            try:
                state = unpack_plain(data)
                if type(state) is not dict:
                    raise TypeError(f"its state is a {type(state).__name__}, not a map")
                # eventsourcing's upcasting convention (its mapper's): class_version, upcast_vN_vN+1.
                at, latest = state.pop("class_version", 1), getattr(cls, "class_version", 1)
                while at < latest:
                    getattr(cls, f"upcast_v{at}_v{at + 1}")(state)
                    at += 1
            except Exception as e:
                raise DataLoss(f"the event of {stream!r} at version {version} is damaged: it cannot be decoded "
                               f"({type(e).__name__}: {e}): data loss") from e
            for name, check in checks:
                if name in state and not check(state[name]):
                    _check(f"the event of {stream!r} at version {version}", checks, state)
            return cls, state

        return decode


def _check(where: str, checks: tuple[tuple[str, Check], ...], state: dict[str, Any]) -> None:
    for name, check in checks:
        if name in state and not check(state[name]):
            raise DataLoss(f"{where} is damaged: its field {name!r} holds a {type(state[name]).__name__}: "
                           "data loss")
