"""The ``Container`` aggregate and the events it emits.

A container's stream is identified by ``"<namespace>/<id>"``; both parts are
identifiers, which cannot contain ``/``, so the mapping is one to one. The
stream outlives deletion: a re-create continues it as a new *incarnation*, so
the history of a name stays whole.

Events say what happened and carry only what changed:

=======================  ==================================================
event (stable topic)     carries
=======================  ==================================================
``Created``              the whole record as created, and its incarnation
``LabelsChanged``        labels set (new or changed values), labels removed
``ImageChanged``         the new image ("" when cleared)
``SpecUpdated``          the new spec
``SnapshotKeyChanged``   the new snapshot key
``ExtensionsChanged``    extensions set, extensions removed
``Touched``              nothing: an update that changed no field
``Deleted``              nothing
``Started``              the pid and the start time (a new run)
``Exited``               the exit code, the reason, the message, the exit time
``Paused``               the time it was paused
``Resumed``              the time it was resumed
``ResourcesUpdated``     the time, and the resource fields that changed (new values)
=======================  ==================================================

Every event also carries the operation's ``Audit`` (actor, reason, correlation
id, field paths, client). All events of one operation share one timestamp.
Applying an event reads nothing but the event.

The last five are the status lifecycle (CRI's container status): they change
``Container.status`` and the stream version, never the metadata nor ``updated_at``.
Their times (``started_at``, ``at``...) are the times the runtime reported; the event
timestamp is when the ledger recorded it. Transitions (see ``ContainerAggregate.start``
and its neighbours) follow CRI's state machine: CREATED -> RUNNING -> EXITED, and an
exited container may start again (a new run).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from eventsourcing.domain import BaseAggregate, CanMutateAggregate
from eventsourcing.utils import register_topic

from ..errors import FailedPrecondition, InvalidArgument
from .model import NO_STATUS, RESOURCE_FIELDS, Audit, Container, Payload, Resources, Runtime, Status, created_status
from .validation import go_quote

__all__ = [
    "EVENT_CLASSES",
    "ContainerAggregate",
    "ContainerEvent",
    "STATUS_EVENT_CLASSES",
    "Created",
    "Deleted",
    "Exited",
    "ExtensionsChanged",
    "ImageChanged",
    "LabelsChanged",
    "Paused",
    "ResourcesUpdated",
    "Resumed",
    "SnapshotKeyChanged",
    "SpecUpdated",
    "Started",
    "StatusEvent",
    "Touched",
    "exit_reason",
    "stream_id",
]

_ONE_TICK = timedelta(microseconds=1)


def stream_id(namespace: str, container_id: str) -> str:
    """The event stream of a container name in a namespace."""
    return f"{namespace}/{container_id}"


@dataclass(frozen=True)
class ContainerEvent(CanMutateAggregate[str]):
    """Base of every container event."""

    originator_id: str
    originator_version: int
    timestamp: datetime
    audit: Audit

    TOPIC: ClassVar[str] = "ctrledger.container.Event"

    def apply(self, aggregate: Any) -> None:  # pragma: no cover - every event overrides
        raise NotImplementedError

    @property
    def kind(self) -> str:
        """The event's short name, e.g. ``"LabelsChanged"``."""
        return type(self).__name__


@dataclass(frozen=True)
class Created(ContainerEvent):
    """A container was created (or re-created after a delete: a new incarnation)."""

    namespace: str
    container_id: str
    incarnation: int
    image: str
    runtime: Runtime
    spec: Payload
    snapshotter: str
    snapshot_key: str
    labels: Mapping[str, str]
    extensions: Mapping[str, Payload]
    sandbox: str

    TOPIC: ClassVar[str] = "ctrledger.container.Created"
    class_version: ClassVar[int] = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """Version 1 had no ``sandbox`` (containerd added it in 1.7): there was none then."""
        state.setdefault("sandbox", "")

    def mutate(self, aggregate: Any) -> Any:
        if aggregate is None:
            agg = ContainerAggregate.__new__(ContainerAggregate)
            agg.__base_init__(self.originator_id, self.originator_version, self.timestamp)
            self.apply(agg)
            return agg
        return super().mutate(aggregate)

    def apply(self, aggregate: Any) -> None:
        a: ContainerAggregate = aggregate
        a.namespace = self.namespace
        a.container_id = self.container_id
        a.incarnation = self.incarnation
        a.deleted = False
        a.image = self.image
        a.runtime = self.runtime
        a.spec = self.spec
        a.snapshotter = self.snapshotter
        a.snapshot_key = self.snapshot_key
        a.labels = dict(self.labels)
        a.extensions = dict(self.extensions)
        a.sandbox = self.sandbox
        a.created_at = self.timestamp
        a.updated_at = self.timestamp
        a.status = created_status(self.timestamp)
        a.status_at = self.timestamp


@dataclass(frozen=True)
class LabelsChanged(ContainerEvent):
    """Labels were set (added or given a new value) and/or removed."""

    set: Mapping[str, str]
    removed: tuple[str, ...]

    TOPIC: ClassVar[str] = "ctrledger.container.LabelsChanged"

    def apply(self, aggregate: Any) -> None:
        labels = dict(aggregate.labels)
        for key in self.removed:
            labels.pop(key, None)
        labels.update(self.set)
        aggregate.labels = labels
        aggregate.updated_at = self.timestamp


@dataclass(frozen=True)
class ImageChanged(ContainerEvent):
    """The image reference changed ("" when it was cleared)."""

    image: str

    TOPIC: ClassVar[str] = "ctrledger.container.ImageChanged"

    def apply(self, aggregate: Any) -> None:
        aggregate.image = self.image
        aggregate.updated_at = self.timestamp


@dataclass(frozen=True)
class SpecUpdated(ContainerEvent):
    """The runtime spec was replaced."""

    spec: Payload

    TOPIC: ClassVar[str] = "ctrledger.container.SpecUpdated"

    def apply(self, aggregate: Any) -> None:
        aggregate.spec = self.spec
        aggregate.updated_at = self.timestamp


@dataclass(frozen=True)
class SnapshotKeyChanged(ContainerEvent):
    """The snapshot key changed ("" when it was cleared)."""

    snapshot_key: str

    TOPIC: ClassVar[str] = "ctrledger.container.SnapshotKeyChanged"

    def apply(self, aggregate: Any) -> None:
        aggregate.snapshot_key = self.snapshot_key
        aggregate.updated_at = self.timestamp


@dataclass(frozen=True)
class ExtensionsChanged(ContainerEvent):
    """Extensions were set and/or removed."""

    set: Mapping[str, Payload]
    removed: tuple[str, ...]

    TOPIC: ClassVar[str] = "ctrledger.container.ExtensionsChanged"

    def apply(self, aggregate: Any) -> None:
        extensions = dict(aggregate.extensions)
        for key in self.removed:
            extensions.pop(key, None)
        extensions.update(self.set)
        aggregate.extensions = extensions
        aggregate.updated_at = self.timestamp


@dataclass(frozen=True)
class Touched(ContainerEvent):
    """An update succeeded without changing any field (it still moves ``updated_at``)."""

    TOPIC: ClassVar[str] = "ctrledger.container.Touched"

    def apply(self, aggregate: Any) -> None:
        aggregate.updated_at = self.timestamp


@dataclass(frozen=True)
class Deleted(ContainerEvent):
    """The container was deleted. Its stream stays; a re-create continues it."""

    TOPIC: ClassVar[str] = "ctrledger.container.Deleted"

    def apply(self, aggregate: Any) -> None:
        aggregate.deleted = True


@dataclass(frozen=True)
class StatusEvent(ContainerEvent):
    """Base of the status lifecycle events: they change ``status``, never ``updated_at``."""

    TOPIC: ClassVar[str] = "ctrledger.container.StatusEvent"

    def next_status(self, status: Status) -> Status:  # pragma: no cover - every event overrides
        """The status this event makes of ``status`` (pure: the apply and the history both use it)."""
        raise NotImplementedError

    def status_time(self) -> datetime:  # pragma: no cover - every event overrides
        """The time the runtime reported for this change."""
        raise NotImplementedError

    def apply(self, aggregate: Any) -> None:
        aggregate.status = self.next_status(aggregate.status)
        aggregate.status_at = self.status_time()


@dataclass(frozen=True)
class Started(StatusEvent):
    """The container's process started (a new run): its pid and when it started.

    Clears what the previous run left (finish time, exit code, reason, message).
    """

    pid: int
    started_at: datetime

    TOPIC: ClassVar[str] = "ctrledger.container.Started"

    def status_time(self) -> datetime:
        return self.started_at

    def next_status(self, status: Status) -> Status:
        return Status(
            pid=self.pid, created_at=status.created_at, started_at=self.started_at, resources=status.resources,
            runs=status.runs + 1,
        )


@dataclass(frozen=True)
class Exited(StatusEvent):
    """The container's process exited: its exit code, reason, message and when."""

    exit_code: int
    reason: str
    message: str
    finished_at: datetime

    TOPIC: ClassVar[str] = "ctrledger.container.Exited"

    def status_time(self) -> datetime:
        return self.finished_at

    def next_status(self, status: Status) -> Status:
        return replace(
            status, pid=0, finished_at=self.finished_at, exit_code=self.exit_code, reason=self.reason,
            message=self.message, paused=False,
        )


@dataclass(frozen=True)
class Paused(StatusEvent):
    """The running container was paused (its state stays RUNNING, as in CRI)."""

    at: datetime

    TOPIC: ClassVar[str] = "ctrledger.container.Paused"

    def status_time(self) -> datetime:
        return self.at

    def next_status(self, status: Status) -> Status:
        return replace(status, paused=True)


@dataclass(frozen=True)
class Resumed(StatusEvent):
    """The paused container was resumed."""

    at: datetime

    TOPIC: ClassVar[str] = "ctrledger.container.Resumed"

    def status_time(self) -> datetime:
        return self.at

    def next_status(self, status: Status) -> Status:
        return replace(status, paused=False)


@dataclass(frozen=True)
class ResourcesUpdated(StatusEvent):
    """The container's resources were updated (CRI ``UpdateContainerResources``).

    ``changed`` holds the new value of each field that changed (``hugepage_limits`` as a
    tuple of ``(page_size, limit)`` pairs, ``unified`` as a map).
    """

    at: datetime
    changed: Mapping[str, Any]

    TOPIC: ClassVar[str] = "ctrledger.container.ResourcesUpdated"

    def status_time(self) -> datetime:
        return self.at

    def next_status(self, status: Status) -> Status:
        return replace(status, resources=replace(status.resources, **self.changed))


STATUS_EVENT_CLASSES: tuple[type[StatusEvent], ...] = (Started, Exited, Paused, Resumed, ResourcesUpdated)

EVENT_CLASSES: tuple[type[ContainerEvent], ...] = (
    Created,
    LabelsChanged,
    ImageChanged,
    SpecUpdated,
    SnapshotKeyChanged,
    ExtensionsChanged,
    Touched,
    Deleted,
    *STATUS_EVENT_CLASSES,
)

_UINT32 = (1 << 32) - 1
_INT32 = (-(1 << 31), (1 << 31) - 1)


def exit_reason(exit_code: int, reason: str | None) -> str:
    """The reason CRI reports for an exit: the one given, else ``Completed`` for 0, else ``Error``."""
    if reason:
        return reason
    return "Completed" if exit_code == 0 else "Error"


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def check_pid(pid: object) -> int:
    """``pid`` if it is a uint32, else ``InvalidArgument``."""
    if not isinstance(pid, int) or isinstance(pid, bool):
        raise InvalidArgument(f"pid must be an integer, not {type(pid).__name__}: invalid argument")
    if not 0 <= pid <= _UINT32:
        raise InvalidArgument(f"pid {pid} is out of range for a uint32: invalid argument")
    return pid


def check_exit_code(code: object) -> int:
    """``code`` if it is an int32, else ``InvalidArgument``."""
    if not isinstance(code, int) or isinstance(code, bool):
        raise InvalidArgument(f"exit_code must be an integer, not {type(code).__name__}: invalid argument")
    if not _INT32[0] <= code <= _INT32[1]:
        raise InvalidArgument(f"exit_code {code} is out of range for an int32: invalid argument")
    return code


def check_text(name: str, value: object) -> str:
    """``value`` (``None``: ``""``) if it is a string, else ``InvalidArgument``."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a string, not {type(value).__name__}: invalid argument")
    return value


def _map_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    changed = {k: v for k, v in new.items() if k not in old or old[k] != v}
    removed = tuple(sorted(k for k in old if k not in new))
    return changed, removed


class ContainerAggregate(BaseAggregate[str]):
    """One container name in one namespace, across all its incarnations."""

    TOPIC = "ctrledger.container.Container"

    # Attributes, set by Created.apply (no class annotations: BaseAggregate would
    # turn them into dataclass fields).
    def _declare(self) -> None:  # pragma: no cover - documentation for type checkers
        self.namespace: str = ""
        self.container_id: str = ""
        self.incarnation: int = 0
        self.deleted: bool = False
        self.image: str = ""
        self.runtime: Runtime = Runtime()
        self.spec: Payload = Payload()
        self.snapshotter: str = ""
        self.snapshot_key: str = ""
        self.labels: dict[str, str] = {}
        self.extensions: dict[str, Payload] = {}
        self.sandbox: str = ""
        self.created_at: datetime = datetime.min
        self.updated_at: datetime = datetime.min
        self.status: Status = NO_STATUS  # immutable: shared
        self.status_at: datetime = datetime.min  # the time of the last status change (or creation)

    def __deepcopy__(self, memo: dict[int, Any]) -> ContainerAggregate:
        # The repository's cache hands out deep copies. Every value held here is
        # immutable except the two maps and the pending list, so copying those is a
        # deep copy, at a fraction of copy.deepcopy's cost.
        clone = ContainerAggregate.__new__(ContainerAggregate)
        state = dict(self.__dict__)
        for key, value in state.items():
            if isinstance(value, (dict, list)):
                state[key] = value.copy()
        clone.__dict__.update(state)
        return clone

    def clone(self) -> ContainerAggregate:
        """A deep copy (as ``copy.deepcopy``, without its machinery: the store copies an aggregate
        on every write from its cache)."""
        return self.__deepcopy__({})

    def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None:
        """eventsourcing's ``trigger_event``: the next event of the stream, applied and pending;
        without its per-event check that the class's explicit topic is registered (every event
        class registers its topic when this module is imported, and a test pins them all)."""
        if kwargs.get("timestamp") is None:
            kwargs["timestamp"] = event_class.create_timestamp()
        event = _new_event(event_class, {"originator_id": self.id, "originator_version": self.version + 1, **kwargs})
        event.mutate(self)
        self.pending_events.append(event)

    @staticmethod
    def create_id(namespace: str, container_id: str) -> str:
        return stream_id(namespace, container_id)

    # -- commands ---------------------------------------------------------

    @classmethod
    def create(
        cls, namespace: str, record: Container, audit: Audit, timestamp: datetime
    ) -> ContainerAggregate:
        """Start a new stream with the first incarnation of ``record``."""
        event = _created(stream_id(namespace, record.id), 1, timestamp, audit, namespace, record, 1)
        agg: ContainerAggregate = event.mutate(None)
        agg.pending_events.append(event)
        return agg

    def recreate(self, record: Container, audit: Audit, timestamp: datetime) -> None:
        """Create the name again after a delete: the next incarnation."""
        assert self.deleted, "only a deleted container can be created again"
        ts = self._next_timestamp(timestamp)
        event = _created(
            self.id, self.version + 1, ts, audit, self.namespace, record, self.incarnation + 1
        )
        event.mutate(self)
        self.pending_events.append(event)

    def change_to(self, merged: Container, audit: Audit, timestamp: datetime) -> None:
        """Emit one event per field that differs between the current state and ``merged``."""
        ts = self._next_timestamp(timestamp)
        labels_set, labels_removed = _map_diff(self.labels, merged.labels)
        if labels_set or labels_removed:
            self.trigger_event(LabelsChanged, timestamp=ts, audit=audit, set=labels_set, removed=labels_removed)
        if merged.image != self.image:
            self.trigger_event(ImageChanged, timestamp=ts, audit=audit, image=merged.image)
        if merged.spec is not None and merged.spec != self.spec:
            self.trigger_event(SpecUpdated, timestamp=ts, audit=audit, spec=merged.spec)
        if merged.snapshot_key != self.snapshot_key:
            self.trigger_event(SnapshotKeyChanged, timestamp=ts, audit=audit, snapshot_key=merged.snapshot_key)
        ext_set, ext_removed = _map_diff(self.extensions, merged.extensions)
        if ext_set or ext_removed:
            self.trigger_event(ExtensionsChanged, timestamp=ts, audit=audit, set=ext_set, removed=ext_removed)
        if not self.pending_events:
            self.trigger_event(Touched, timestamp=ts, audit=audit)

    def delete(self, audit: Audit, timestamp: datetime) -> None:
        """Mark the container deleted."""
        self.trigger_event(Deleted, timestamp=self._next_timestamp(timestamp), audit=audit)

    def observe(self, record: Container, audit: Audit, timestamp: datetime) -> None:
        """Emit the fewest events that bring this stream to ``record``, as seen on a live
        containerd; none when it already is there (see :func:`observation`)."""
        found = "recreate" if self.deleted else observation(self.to_container(), record)
        if found == "replaced":
            self.delete(audit, timestamp)
            found = "recreate"
        if found == "recreate":
            self.recreate(record, audit, timestamp)
        elif found == "changed":
            self.change_to(Container.trusted(**{
                **self.to_container().__dict__, "labels": dict(record.labels), "image": record.image,
                "spec": record.spec, "snapshot_key": record.snapshot_key, "extensions": dict(record.extensions)}),
                audit, timestamp)

    # -- the status lifecycle ---------------------------------------------
    #
    # Each command checks the transition against the current status and raises
    # FailedPrecondition (wrong state) or InvalidArgument (``at`` before the last status
    # change) before anything is emitted. ``at=None``: the operation's time.

    def start(self, pid: int, at: datetime | None, audit: Audit, timestamp: datetime) -> None:
        """The process started: CREATED or EXITED -> RUNNING (a start after an exit is a new run)."""
        if self.status.state == "RUNNING":
            self._refuse("start", f"container is in CONTAINER_{self.status.state} state")
        ts = self._next_timestamp(timestamp)
        self.trigger_event(Started, timestamp=ts, audit=audit, pid=pid, started_at=self._status_time(at, ts))

    def exit(
        self, exit_code: int, reason: str | None, message: str, at: datetime | None, audit: Audit,
        timestamp: datetime,
    ) -> None:
        """The process exited: RUNNING (paused or not) -> EXITED; the reason defaults as CRI's."""
        if self.status.state != "RUNNING":
            self._refuse("exit", f"container is in CONTAINER_{self.status.state} state")
        ts = self._next_timestamp(timestamp)
        self.trigger_event(
            Exited, timestamp=ts, audit=audit, exit_code=exit_code, reason=exit_reason(exit_code, reason),
            message=message, finished_at=self._status_time(at, ts),
        )

    def pause(self, at: datetime | None, audit: Audit, timestamp: datetime) -> None:
        """A running container was paused."""
        if self.status.state != "RUNNING":
            self._refuse("pause", f"container is in CONTAINER_{self.status.state} state")
        if self.status.paused:
            self._refuse("pause", "container is already paused")
        ts = self._next_timestamp(timestamp)
        self.trigger_event(Paused, timestamp=ts, audit=audit, at=self._status_time(at, ts))

    def resume(self, at: datetime | None, audit: Audit, timestamp: datetime) -> None:
        """A paused container was resumed."""
        if self.status.state != "RUNNING":
            self._refuse("resume", f"container is in CONTAINER_{self.status.state} state")
        if not self.status.paused:
            self._refuse("resume", "container is not paused")
        ts = self._next_timestamp(timestamp)
        self.trigger_event(Resumed, timestamp=ts, audit=audit, at=self._status_time(at, ts))

    def update_resources(self, resources: Resources, at: datetime | None, audit: Audit, timestamp: datetime) -> None:
        """Replace the resources (CRI: a CREATED or RUNNING container); only changed fields are recorded.

        Resources equal to the current ones still record an event (with nothing changed),
        as an update that changes nothing still moves a metadata update's version.
        """
        if self.status.state not in ("CREATED", "RUNNING"):
            self._refuse("update resources of", f"container is in CONTAINER_{self.status.state} state")
        old = self.status.resources
        changed = {name: getattr(resources, name) for name in RESOURCE_FIELDS
                   if getattr(resources, name) != getattr(old, name)}
        if "unified" in changed:
            changed["unified"] = dict(changed["unified"])
        ts = self._next_timestamp(timestamp)
        self.trigger_event(ResourcesUpdated, timestamp=ts, audit=audit, at=self._status_time(at, ts),
                           changed=changed)

    def _refuse(self, operation: str, why: str) -> None:
        raise FailedPrecondition(
            f"failed to {operation} container {go_quote(self.container_id)}: {why}: failed precondition"
        )

    def _status_time(self, at: datetime | None, ts: datetime) -> datetime:
        if at is None:
            return ts if ts >= self.status_at else self.status_at
        if at < self.status_at:
            raise InvalidArgument(
                f"at {_iso(at)} is earlier than the last status change of {go_quote(self.container_id)} "
                f"({_iso(self.status_at)}): invalid argument"
            )
        return at

    # -- queries ----------------------------------------------------------

    def to_container(self) -> Container:
        """The current incarnation as a ``Container`` record (built from the aggregate's own
        checked fields, without ``Container.__init__``: every write makes one or two)."""
        return Container.trusted(
            id=self.container_id,
            labels=dict(self.labels),
            image=self.image,
            runtime=self.runtime,
            spec=self.spec,
            snapshotter=self.snapshotter,
            snapshot_key=self.snapshot_key,
            created_at=self.created_at,
            updated_at=self.updated_at,
            extensions=dict(self.extensions),
            sandbox=self.sandbox,
            version=self.version,
            status=self.status,
        )

    def _next_timestamp(self, timestamp: datetime) -> datetime:
        # Every change moves time strictly forward within a stream, even if the
        # clock did not (containerd: updated_at is strictly later after an update).
        floor = self.modified_on + _ONE_TICK
        return timestamp if timestamp >= floor else floor


def observation(current: Container, record: Container) -> str:
    """How a live container differs from ``record``, a state seen on containerd:

    * ``"same"``: nothing to record;
    * ``"replaced"``: the runtime, snapshotter or sandbox differ (no update can change them), or
      ``record.created_at`` is later than the container's: it was deleted and created again
      meanwhile;
    * ``"changed"``: labels, image, spec, snapshot key or extensions differ (one event per kind;
      never ``Touched``).
    """
    if (record.runtime != current.runtime or record.snapshotter != current.snapshotter
            or record.sandbox != current.sandbox
            or (record.created_at is not None and current.created_at is not None
                and record.created_at > current.created_at)):
        return "replaced"
    if (dict(record.labels) != dict(current.labels) or record.image != current.image or record.spec != current.spec
            or record.snapshot_key != current.snapshot_key or dict(record.extensions) != dict(current.extensions)):
        return "changed"
    return "same"


def _created(
    originator_id: str,
    version: int,
    timestamp: datetime,
    audit: Audit,
    namespace: str,
    record: Container,
    incarnation: int,
) -> Created:
    assert record.spec is not None
    created: Created = _new_event(Created, {
        "originator_id": originator_id,
        "originator_version": version,
        "timestamp": timestamp,
        "audit": audit,
        "namespace": namespace,
        "container_id": record.id,
        "incarnation": incarnation,
        "image": record.image,
        "runtime": record.runtime,
        "spec": record.spec,
        "snapshotter": record.snapshotter,
        "snapshot_key": record.snapshot_key,
        "labels": dict(record.labels),
        "extensions": dict(record.extensions),
        "sandbox": record.sandbox,
    })
    return created


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _new_event(cls: type[Any], values: dict[str, Any]) -> Any:
    """``cls(**values)`` for an event class, without ``__init__``: a frozen dataclass assigns each
    field through ``object.__setattr__``, ~1k instructions a field, and a Created has fifteen. The
    state is laid out in the fields' order, as ``__init__`` lays it out (the stored bytes follow
    it); values that are not exactly the fields go through ``__init__``."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    if len(values) != len(names) or not all(name in values for name in names):
        return cls(**values)
    event = object.__new__(cls)
    object.__setattr__(event, "__dict__", {name: values[name] for name in names})
    return event


_TOPICAL: tuple[Any, ...] = (ContainerEvent, StatusEvent, *EVENT_CLASSES, ContainerAggregate)
for _cls in _TOPICAL:
    register_topic(_cls.TOPIC, _cls)
