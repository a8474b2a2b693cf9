"""Feeding a read model from the log, exactly once.

The embedded store appends and projects in one SQLite transaction (``InlineRunner``
is the recorder's inline hook). Before applying the new events it makes sure the
view has applied everything before them, reading any missing events from the log
inside the same transaction, so a view that was reset or created late can never
skip an event. ``catch_up`` does the same outside an append (at open, after a
rebuild), in batches, each batch with its tracking position in one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol

from eventsourcing.persistence import Mapper

from ..persistence.log import BATCH, read_events, read_stream
from ..persistence.log import read_events as read_log
from ..persistence.sqlite import write_transaction
from .current import tracked_position

__all__ = ["InlineRunner", "View", "catch_up", "read_log", "read_stream"]


class View(Protocol):
    """A read model: pure handlers over its own tables, with its own tracking row."""

    name: str
    tables: tuple[str, ...]

    def process(self, cur: sqlite3.Cursor, events: Sequence[Any], positions: Sequence[int]) -> None:
        """Advance tracking to ``positions[-1]`` (or fail) and apply the events."""

    def apply(self, cur: sqlite3.Cursor, events: Sequence[Any], positions: Sequence[int]) -> None:
        """Apply the events; the caller owns the tracking position."""


class InlineRunner:
    """The recorder hook that applies views in the append transaction."""

    def __init__(self, views: Sequence[View], mapper: Mapper[Any]) -> None:
        self.views = list(views)
        self.mapper = mapper
        self._names = tuple(view.name for view in self.views)
        self._advance = (f"UPDATE ctrledger_tracking SET position=? WHERE position=? AND view IN "
                         f"({', '.join('?' * len(self._names))})")

    def __call__(self, cur: sqlite3.Cursor, events: Sequence[Any], positions: Sequence[int]) -> None:
        # Fast path, one statement: every view is exactly at the position before these events.
        names = self._names
        cur.execute(self._advance, (positions[-1], positions[0] - 1, *names))
        if cur.rowcount == len(names):
            for view in self.views:
                view.apply(cur, events, positions)
            return
        for view in self.views:
            tracked = tracked_position(cur, view.name)
            if tracked == positions[-1]:  # advanced by the statement above
                view.apply(cur, events, positions)
                continue
            if tracked < positions[0] - 1:
                for missing, at in read_events(cur, self.mapper, tracked, positions[0]):
                    view.process(cur, missing, at)
            view.process(cur, events, positions)


def catch_up(
    conn: sqlite3.Connection, views: Sequence[View], mapper: Mapper[Any], *, batch: int = BATCH,
    through: int | None = None,
) -> int:
    """Apply every log event each view has not applied yet; return how many (summed over views).

    ``through``: apply nothing after this log position (for an embedded log, the last hashed
    one, so an event added outside the store never reaches a read model).

    Each batch runs in one ``BEGIN IMMEDIATE`` transaction that re-reads the
    tracked position under the write lock, so concurrent appenders (whose inline
    hooks also advance the views) and concurrent catch-ups never double-apply.
    """
    applied = 0
    for view in views:
        while True:
            with write_transaction(conn) as cur:
                after = tracked_position(cur, view.name)
                before = None if through is None else through + 1
                found = next(iter(read_events(cur, mapper, after, before, batch=batch)), None)
                if found is not None:
                    events, positions = found
                    view.process(cur, events, positions)
                    applied += len(events)
            if found is None:
                break
    return applied
