"""Rebuild the read models from the log.

``rebuild(store)`` empties the current-state tables and applies every event of
the log again, in one write transaction: readers keep seeing the old model until
it commits, and an interrupted rebuild rolls back and leaves the old model in
use. (A rebuild into fresh tables with an atomic swap, resumable, comes with the
replay issue.)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from eventsourcing.persistence import Mapper

from ..projections.runner import View, read_log

__all__ = ["Replayable", "rebuild"]


class Replayable(Protocol):
    """What replay needs of a store (``ctrledger.Store`` provides it)."""

    @property
    def mapper(self) -> Mapper[Any]: ...

    @property
    def views(self) -> Sequence[View]: ...

    def read_model(self) -> AbstractContextManager[sqlite3.Connection]: ...

def rebuild(store: Replayable) -> int:
    """Rebuild every read model of the store from its log; return the number of events read."""
    applied = 0
    with store.read_model() as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.cursor()
            for view in store.views:
                for table in view.tables:
                    cur.execute(f"DELETE FROM {table}")
                cur.execute("DELETE FROM ctrledger_tracking WHERE view=?", (view.name,))
            for events, positions in read_log(cur, store.mapper, 0):
                for view in store.views:
                    view.process(cur, events, positions)
                applied += len(events)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return applied
