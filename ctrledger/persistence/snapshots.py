"""Snapshots: loading a container costs the same whatever its history.

Without them, every cold load of an aggregate (a cache miss, a refusal decided on fresh
state, a retry after a lost race) replays the container's whole stream: 20k events for a
busy name. Every ``SNAPSHOT_EVERY`` versions, the store records the aggregate's state as
``ContainerSnapshot`` (eventsourcing's snapshot store, a table beside the log); a load then
decodes one snapshot and at most ``SNAPSHOT_EVERY - 1`` events.

Snapshots are derived data, like the read models: the log stays the truth. They are not
hashed; ``verify``, export, rebuild and replay never read them. Their topics are stable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.domain import CanSnapshotAggregate
from eventsourcing.utils import register_topic

__all__ = ["SNAPSHOT_EVERY", "ContainerSnapshot"]

SNAPSHOT_EVERY = 100


@dataclass(frozen=True)
class ContainerSnapshot(CanSnapshotAggregate[str]):
    """A container aggregate's state at one version (without its pending events)."""

    originator_id: str
    originator_version: int
    timestamp: datetime
    topic: str
    state: dict[str, Any]

    TOPIC = "ctrledger.snapshot.Container"

    @classmethod
    def take(cls, aggregate: Any) -> Any:
        state = {k: v for k, v in vars(aggregate).items() if k not in ("_id", "_version", "_pending_events")}
        return cls(
            originator_id=aggregate.id,
            originator_version=aggregate.version,
            timestamp=cls.create_timestamp(),
            topic="ctrledger.container.Container",
            state=state,
        )


register_topic(ContainerSnapshot.TOPIC, ContainerSnapshot)
