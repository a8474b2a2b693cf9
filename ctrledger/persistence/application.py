"""The eventsourcing application behind a store, and how a target selects its settings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import PersistenceError, StoredEvent
from eventsourcing.utils import Environment

from ..domain.container import ContainerAggregate, ContainerEvent
from .snapshots import SNAPSHOT_EVERY, ContainerSnapshot
from .sqlite import LedgerSQLiteRecorder

__all__ = ["LedgerApplication", "postgres_env", "sqlite_env"]


def _project(aggregate: Any, events: Iterable[Any]) -> Any:
    """eventsourcing's default projector, without its per-event ``isinstance`` check against a
    runtime-checkable protocol (~5 us an event on a cold load); every event here is a
    ``ContainerEvent`` or ``ContainerSnapshot``, whose ``mutate`` it calls in turn."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class LedgerApplication(Application[str]):
    """Appends container events to the log and loads container aggregates.

    ``name`` is pinned: it names the upstream application in every tracking record,
    so renaming the class must not reset the read models.
    """

    name = "ctrledger"

    def construct_env(self, name: str, env: Any = None) -> Environment:
        # Only the settings ctrledger chose: the process environment must not
        # override them (eventsourcing would read CTRLEDGER_* variables).
        return Environment(name, dict(env or {}))

    def append(self, events: Sequence[ContainerEvent], request_id: str | None = None) -> None:
        """Append the events of one operation atomically, running the inline hooks.

        ``request_id``: the command's id, recorded with the events (``requests.py``).
        """
        # Straight to the event store: Application.save() would only add runtime
        # protocol checks per event (costly) and notifications we do not use.
        if request_id is None:
            self.events.put(events, inline_events=events)
        else:
            self.events.put(events, inline_events=events, request_id=request_id)

    def remember(self, agg: ContainerAggregate) -> None:
        """After an append: snapshot the aggregate every ``SNAPSHOT_EVERY`` versions (best effort)."""
        if agg.version % SNAPSHOT_EVERY or self.snapshots is None:
            return
        try:
            self.snapshots.put([ContainerSnapshot.take(agg)])
        except PersistenceError:
            pass  # another node took it, or the storage is busy: the next one will do

    def load(self, stream: str, recent: Sequence[StoredEvent] | None = None) -> ContainerAggregate | None:
        """The aggregate of a stream, or None if the stream has no events.

        A stream's last ``SNAPSHOT_EVERY`` events are read first, newest first (``recent``: as
        the caller read them, else through the recorder): when they reach its first version
        (most streams are shorter than that), they are the whole stream, decoded and projected
        without a snapshot. eventsourcing's repository would ask the snapshot store first, one
        more read transaction on every cold load. A longer stream loads from its latest
        snapshot, through the repository (its recent events read twice, decoded once).
        """
        from eventsourcing.application import AggregateNotFoundError

        if recent is None:
            recent = self.recorder.select_events(stream, desc=True, limit=SNAPSHOT_EVERY)  # not decoded yet
        if not recent:
            return None
        agg: Any
        if recent[-1].originator_version == ContainerAggregate.INITIAL_VERSION:
            agg = _project(None, map(self.mapper.to_domain_event, reversed(recent)))
        else:
            try:
                agg = self.repository.get(stream, projector_func=_project)
            except AggregateNotFoundError:
                return None
        assert isinstance(agg, ContainerAggregate)
        return agg

    @property
    def ledger_recorder(self) -> LedgerSQLiteRecorder:
        assert isinstance(self.recorder, LedgerSQLiteRecorder)
        return self.recorder

    def head(self) -> int:
        """The log's highest position (0 when empty), on any backend."""
        return int(self.recorder.max_notification_id() or 0)


_COMMON = {
    "TRANSCODER_TOPIC": "ctrledger.persistence.transcoder:MsgPackTranscoder",
    "MAPPER_TOPIC": "ctrledger.persistence.mapper:LedgerMapper",
    "IS_SNAPSHOTTING_ENABLED": "y",
    "ORIGINATOR_ID_TYPE": "text",
    "CREATE_TABLE": "y",
}


def sqlite_env(path: str, *, synchronous: str = "FULL", lock_timeout: int = 30) -> dict[str, Any]:
    """eventsourcing settings for an embedded store in the SQLite file ``path``."""
    return {
        **_COMMON,
        "PERSISTENCE_MODULE": "ctrledger.persistence.sqlite:LedgerSQLiteFactory",
        "SQLITE_DBNAME": path,
        "SQLITE_LOCK_TIMEOUT": str(lock_timeout),
        "SQLITE_SYNCHRONOUS": synchronous,
    }


def postgres_env(settings: dict[str, str]) -> dict[str, Any]:
    """eventsourcing settings for a shared PostgreSQL log (``settings`` from ``postgres.parse_url``)."""
    return {**_COMMON, **settings}
