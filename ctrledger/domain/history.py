"""Points in the past, and the plain records that describe change.

A point (``as_of``, ``since``, ``until``) is one of:

* an aware ``datetime`` or an ISO-8601 string (``2026-11-21T03:12:00Z``): the state
  after every event whose timestamp is at or before it;
* ``Version(n)``: a container's state after the n-th event of its stream (``get`` only);
* ``Position(n)``: the state after the n-th event of the whole log.

Every record here is a frozen dataclass with ``to_dict()``, which returns only
JSON types (bytes as base64, times as ISO-8601 UTC), so one ``json.dumps`` call
serialises it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidArgument
from .container import (
    Created,
    ExtensionsChanged,
    ImageChanged,
    LabelsChanged,
    SnapshotKeyChanged,
    SpecUpdated,
    StatusEvent,
)
from .model import RESOURCE_FIELDS, Container, Payload, Runtime, Status, created_status

__all__ = [
    "AuditRecord",
    "Change",
    "Diff",
    "FieldChange",
    "HistoryEntry",
    "LogEvent",
    "Point",
    "Position",
    "Version",
    "diff_containers",
    "diff_status",
    "event_changes",
    "parse_point",
    "to_json_value",
]


@dataclass(frozen=True, order=True)
class _Number:
    number: int

    def __post_init__(self) -> None:
        if not isinstance(self.number, int) or isinstance(self.number, bool) or self.number < 0:
            raise InvalidArgument(
                f"a {type(self).__name__.lower()} is a non-negative integer, not {self.number!r}: invalid argument"
            )


class Version(_Number):
    """A container's stream version: its state after that many events of its stream."""


class Position(_Number):
    """A global log position: the state after the event at that position (and all before it)."""


Point = datetime | str | Version | Position


_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def _utc(point: datetime, name: str) -> datetime:
    """In UTC, within the years 1-9999 that every later step (offsets, microseconds) can handle."""
    try:
        utc = point.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not _EARLIEST <= utc <= _LATEST:
        raise InvalidArgument(f"{name}: {point.isoformat()} is out of range (years 1 to 9999 in UTC): "
                              "invalid argument")
    return utc


def parse_time(text: str) -> datetime:
    """An ISO-8601 time with a zone (``Z`` or an offset) as an aware UTC datetime.

    ``ValueError`` naming the problem (not the parameter) otherwise.
    """
    stripped = text.strip()
    try:
        parsed = datetime.fromisoformat(stripped[:-1] + "+00:00" if stripped.endswith(("Z", "z")) else stripped)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO-8601 time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no timezone; add Z or an offset")
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError(f"{text!r} is out of range (years 1 to 9999 in UTC)") from None


def parse_point(point: object, name: str = "as_of") -> datetime | Version | Position:
    """Normalise a point: ISO strings become aware UTC datetimes; bad input is InvalidArgument."""
    if isinstance(point, (Version, Position)):
        return point
    if isinstance(point, datetime):
        if point.tzinfo is None:
            raise InvalidArgument(
                f"{name}: a datetime must be timezone-aware, got {point.isoformat()}: invalid argument"
            )
        return _utc(point, name)
    if isinstance(point, str):
        try:
            parsed = parse_time(point)
        except ValueError as e:
            raise InvalidArgument(f"{name}: {e}: invalid argument") from None
        return _utc(parsed, name)
    raise InvalidArgument(
        f"{name} must be a datetime, an ISO-8601 string, a Version or a Position, "
        f"not {type(point).__name__}: invalid argument"
    )


def to_json_value(value: Any) -> Any:
    """A value made of JSON types only (see the module docstring)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Payload):
        return {"type_url": value.type_url, "value": to_json_value(value.value)}
    if isinstance(value, Runtime):
        return {"name": value.name, "options": to_json_value(value.options)}
    if isinstance(value, Container):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


class _JSONable:
    def to_dict(self) -> dict[str, Any]:
        """This record as JSON types only."""
        return {name: to_json_value(getattr(self, name)) for name in self.__dataclass_fields__}  # type: ignore[attr-defined]


@dataclass(frozen=True)
class FieldChange(_JSONable):
    """One field's change: ``old`` -> ``new``; ``None`` means absent (a label added or removed)."""

    field: str
    old: Any
    new: Any


def _map_changes(prefix: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    out = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if before != after:
            out.append(FieldChange(f"{prefix}.{key}", before, after))
    return out


_SCALARS = ("image", "runtime", "spec", "snapshotter", "snapshot_key", "sandbox")


def status_fields(s: Status) -> dict[str, Any]:
    """The status as field paths and values, ``None`` for what is absent (as the filters see it):
    a pid of 0, an exit code while not EXITED, an empty reason or message, a resource not set."""
    out: dict[str, Any] = {
        "status.state": s.state,
        "status.pid": s.pid or None,
        "status.started_at": s.started_at,
        "status.finished_at": s.finished_at,
        "status.exit_code": s.exit_code if s.finished_at is not None else None,
        "status.reason": s.reason or None,
        "status.message": s.message or None,
        "status.paused": s.paused,
        "status.runs": s.runs,
    }
    for name in RESOURCE_FIELDS:
        value = getattr(s.resources, name)
        if name == "unified":
            value = dict(value)  # a change holds plain values (the record's mapping is read-only)
        out[f"status.resources.{name}"] = value or None
    return out


_NEVER_STARTED = status_fields(Status(created_at=datetime(1970, 1, 1, tzinfo=UTC)))


def diff_status(old: Status | None, new: Status | None) -> list[FieldChange]:
    """Field-level status changes (``status.<field>``, resources as ``status.resources.<field>``).

    ``None`` on a side means the container did not exist: the other side's fields that
    differ from a never-started container's are listed against ``None``.
    """
    before = status_fields(old) if old is not None else None
    after = status_fields(new) if new is not None else None
    out = []
    for name in _NEVER_STARTED:
        if before is None or after is None:
            present = after if after is not None else before
            assert present is not None
            if present[name] != _NEVER_STARTED[name]:
                out.append(FieldChange(name, None if before is None else present[name],
                                       None if after is None else present[name]))
        elif before[name] != after[name]:
            out.append(FieldChange(name, before[name], after[name]))
    return out


def diff_containers(old: Container | None, new: Container | None) -> list[FieldChange]:
    """Field-level changes from ``old`` to ``new`` (labels and extensions key by key, then the
    status field by field: see ``diff_status``).

    ``None`` on either side means the container did not exist; then every field of
    the other side is listed against ``None``.
    """
    empty: Mapping[str, Any] = {}
    changes = _map_changes("labels", old.labels if old else empty, new.labels if new else empty)
    for name in _SCALARS:
        before = getattr(old, name) if old else None
        after = getattr(new, name) if new else None
        if before != after and not (old is None and after == "") and not (new is None and before == ""):
            changes.append(FieldChange(name, before, after))
    changes += _map_changes(
        "extensions", old.extensions if old else empty, new.extensions if new else empty
    )
    if old is not None or new is not None:
        changes += diff_status(old.status if old else None, new.status if new else None)
    return changes


@dataclass(frozen=True)
class HistoryEntry(_JSONable):
    """One event in a container name's history, with exactly what it changed."""

    namespace: str
    id: str
    version: int
    incarnation: int
    position: int
    kind: str
    recorded_at: datetime
    actor: str
    reason: str
    correlation_id: str
    fieldpaths: tuple[str, ...]
    client: str
    changes: tuple[FieldChange, ...] = field(default=())


@dataclass(frozen=True)
class Diff(_JSONable):
    """One container between two points: its state at each and the field changes."""

    namespace: str
    id: str
    before: Container | None
    after: Container | None
    changes: tuple[FieldChange, ...]

    @property
    def status(self) -> str:
        """``created``, ``deleted``, ``recreated`` (deleted and created again in between),
        ``changed``, ``unchanged`` or ``absent`` (at neither point)."""
        if self.before is None and self.after is None:
            return "absent"
        if self.before is None:
            return "created"
        if self.after is None:
            return "deleted"
        if self.before.created_at != self.after.created_at:
            return "recreated"
        return "changed" if self.changes or self.before.version != self.after.version else "unchanged"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "status": self.status}


@dataclass(frozen=True)
class Change(_JSONable):
    """A container that changed in a namespace between two points (see ``Store.changes``)."""

    namespace: str
    id: str
    status: str
    before: Container | None
    after: Container | None
    changes: tuple[FieldChange, ...]


@dataclass(frozen=True)
class AuditRecord(_JSONable):
    """Who did what, when and why: one event of the log with its audit data."""

    position: int
    recorded_at: datetime
    namespace: str
    id: str
    version: int
    kind: str
    actor: str
    reason: str
    correlation_id: str
    fieldpaths: tuple[str, ...]
    client: str


@dataclass(frozen=True)
class LogEvent(_JSONable):
    """One event of the log in log order (see ``Store.events_after``): its audit data and the
    container as it was right after it (``None`` after a ``Deleted``)."""

    position: int
    recorded_at: datetime
    namespace: str
    id: str
    version: int
    kind: str
    actor: str
    reason: str
    correlation_id: str
    fieldpaths: tuple[str, ...]
    client: str
    container: Container | None


def event_changes(event: Any, before: Any) -> tuple[FieldChange, ...]:
    """What ``event`` changed, given the aggregate ``before`` it (None before a first create).

    Computed from the event itself (it carries only what changed) and the prior
    values, so a history streams without diffing whole records.
    """
    if isinstance(event, Created):
        fresh = Container(
            id=event.container_id, labels=event.labels, image=event.image, runtime=event.runtime,
            spec=event.spec, snapshotter=event.snapshotter, snapshot_key=event.snapshot_key,
            extensions=event.extensions, sandbox=event.sandbox, status=created_status(event.timestamp),
        )
        return tuple(diff_containers(None, fresh))
    if isinstance(event, LabelsChanged):
        old = before.labels
        out = [FieldChange(f"labels.{k}", old.get(k), None) for k in event.removed]
        out += [FieldChange(f"labels.{k}", old.get(k), v) for k, v in event.set.items()]
        return tuple(sorted(out, key=lambda c: c.field))
    if isinstance(event, ExtensionsChanged):
        old = before.extensions
        out = [FieldChange(f"extensions.{k}", old.get(k), None) for k in event.removed]
        out += [FieldChange(f"extensions.{k}", old.get(k), v) for k, v in event.set.items()]
        return tuple(sorted(out, key=lambda c: c.field))
    if isinstance(event, ImageChanged):
        return (FieldChange("image", before.image, event.image),)
    if isinstance(event, SpecUpdated):
        return (FieldChange("spec", before.spec, event.spec),)
    if isinstance(event, SnapshotKeyChanged):
        return (FieldChange("snapshot_key", before.snapshot_key, event.snapshot_key),)
    if isinstance(event, StatusEvent):
        return tuple(diff_status(before.status, event.next_status(before.status)))
    return ()
