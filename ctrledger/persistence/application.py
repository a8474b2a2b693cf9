"""The eventsourcing application behind a store, and how a target selects its settings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.application import Application
from eventsourcing.utils import Environment

from ..domain.container import ContainerAggregate, ContainerEvent
from .sqlite import LedgerSQLiteRecorder

__all__ = ["LedgerApplication", "postgres_env", "sqlite_env"]


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

    def append(self, events: Sequence[ContainerEvent]) -> None:
        """Append the events of one operation atomically, running the inline hooks."""
        # Straight to the event store: Application.save() would only add runtime
        # protocol checks per event (costly) and notifications we do not use.
        self.events.put(events, inline_events=events)

    def load(self, stream: str) -> ContainerAggregate | None:
        """The aggregate of a stream, or None if the stream has no events."""
        from eventsourcing.application import AggregateNotFoundError

        try:
            agg: Any = self.repository.get(stream)
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
