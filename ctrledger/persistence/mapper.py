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
from eventsourcing.utils import TopicError

from ..domain.model import Audit, Payload, Runtime
from ..errors import DataLoss

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


_SIMPLE: dict[Any, Check] = {
    str: lambda v: isinstance(v, str),
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    datetime: lambda v: isinstance(v, datetime),
    Audit: _audit_ok,
    Payload: _payload_ok,
    Runtime: _runtime_ok,
}


def _check_for(hint: Any) -> Check | None:
    if hint in _SIMPLE:
        return _SIMPLE[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.ClassVar:
        return None
    if origin in (Mapping, dict) and args == (str, str):
        return _str_map_ok  # labels: the common case, one test per item
    if origin in (Mapping, dict) and len(args) == 2:
        key, value = _check_for(args[0]), _check_for(args[1])
        if key is None or value is None:
            return None
        return lambda v: isinstance(v, dict) and all(key(k) and value(x) for k, x in v.items())
    if origin is tuple and args:
        item = _check_for(args[0])
        if item is None:
            return None
        return lambda v: isinstance(v, tuple | list) and all(item(x) for x in v)
    return None


@functools.cache
def _checks(cls: type) -> tuple[tuple[str, Check], ...]:
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - a class whose hints do not resolve is not checked
        return ()
    out = []
    for name, hint in hints.items():
        check = _check_for(hint)
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
        state = getattr(event, "__dict__", {})
        for name, check in _checks(type(event)):
            if name in state and not check(state[name]):
                raise DataLoss(f"{where} is damaged: its field {name!r} holds a {type(state[name]).__name__}: "
                               "data loss")
        return event
