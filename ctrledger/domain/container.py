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
=======================  ==================================================

Every event also carries the operation's ``Audit`` (actor, reason, correlation
id, field paths, client). All events of one operation share one timestamp.
Applying an event reads nothing but the event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from eventsourcing.domain import BaseAggregate, CanMutateAggregate
from eventsourcing.utils import register_topic

from .model import Audit, Container, Payload, Runtime

__all__ = [
    "EVENT_CLASSES",
    "ContainerAggregate",
    "ContainerEvent",
    "Created",
    "Deleted",
    "ExtensionsChanged",
    "ImageChanged",
    "LabelsChanged",
    "SnapshotKeyChanged",
    "SpecUpdated",
    "Touched",
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


EVENT_CLASSES: tuple[type[ContainerEvent], ...] = (
    Created,
    LabelsChanged,
    ImageChanged,
    SpecUpdated,
    SnapshotKeyChanged,
    ExtensionsChanged,
    Touched,
    Deleted,
)


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

    # -- queries ----------------------------------------------------------

    def to_container(self) -> Container:
        """The current incarnation as a ``Container`` record."""
        return Container(
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
        )

    def _next_timestamp(self, timestamp: datetime) -> datetime:
        # Every change moves time strictly forward within a stream, even if the
        # clock did not (containerd: updated_at is strictly later after an update).
        floor = self.modified_on + _ONE_TICK
        return timestamp if timestamp >= floor else floor


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
    return Created(
        originator_id=originator_id,
        originator_version=version,
        timestamp=timestamp,
        audit=audit,
        namespace=namespace,
        container_id=record.id,
        incarnation=incarnation,
        image=record.image,
        runtime=record.runtime,
        spec=record.spec,
        snapshotter=record.snapshotter,
        snapshot_key=record.snapshot_key,
        labels=dict(record.labels),
        extensions=dict(record.extensions),
        sandbox=record.sandbox,
    )


_TOPICAL: tuple[Any, ...] = (ContainerEvent, *EVENT_CLASSES, ContainerAggregate)
for _cls in _TOPICAL:
    register_topic(_cls.TOPIC, _cls)
