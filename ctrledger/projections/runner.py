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
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from eventsourcing.persistence import Mapper, StoredEvent

from ..errors import Unavailable
from .current import tracked_position

__all__ = ["InlineRunner", "View", "catch_up", "read_log", "read_stream"]

BATCH = 1000


def _decode(mapper: Mapper[Any], position: int, stream: str, version: int, topic: str, state: Any) -> Any:
    """A stored event as a domain event; a damaged one is a clear error naming its position."""
    try:
        if not isinstance(state, bytes):
            raise TypeError(f"its state is {type(state).__name__}, not bytes")
        return mapper.to_domain_event(
            StoredEvent(originator_id=stream, originator_version=version, topic=topic, state=state)
        )
    except Exception as e:
        raise Unavailable(
            f"the event at log position {position} cannot be read ({type(e).__name__}: {e}); "
            f"'ctrledger verify' tells what is wrong with the log"
        ) from e


class View(Protocol):
    """A read model: pure handlers over its own tables, with its own tracking row."""

    name: str
    tables: tuple[str, ...]

    def process(self, cur: sqlite3.Cursor, events: Sequence[Any], positions: Sequence[int]) -> None:
        """Advance tracking to ``positions[-1]`` (or fail) and apply the events."""

    def apply(self, cur: sqlite3.Cursor, events: Sequence[Any], positions: Sequence[int]) -> None:
        """Apply the events; the caller owns the tracking position."""


def read_log(
    cur: sqlite3.Cursor | sqlite3.Connection, mapper: Mapper[Any], after: int, before: int | None = None,
    *, batch: int = BATCH,
) -> Iterator[tuple[list[Any], list[int]]]:
    """Decoded events of the log after position ``after`` (and before ``before``), in batches."""
    while True:
        sql = (
            "SELECT rowid, originator_id, originator_version, topic, state FROM stored_events "
            "WHERE rowid > ?"
        )
        params: list[Any] = [after]
        if before is not None:
            sql += " AND rowid < ?"
            params.append(before)
        sql += " ORDER BY rowid LIMIT ?"
        params.append(batch)
        rows = cur.execute(sql, params).fetchall()
        if not rows:
            return
        events = [_decode(mapper, r[0], r[1], r[2], r[3], r[4]) for r in rows]
        positions = [int(r[0]) for r in rows]
        yield events, positions
        after = positions[-1]
        if len(rows) < batch:
            return


class InlineRunner:
    """The recorder hook that applies views in the append transaction."""

    def __init__(self, views: Sequence[View], mapper: Mapper[Any]) -> None:
        self.views = list(views)
        self.mapper = mapper

    def __call__(self, cur: sqlite3.Cursor, events: Sequence[Any], positions: Sequence[int]) -> None:
        # Fast path, one statement: every view is exactly at the position before these events.
        names = [view.name for view in self.views]
        cur.execute(
            f"UPDATE ctrledger_tracking SET position=? WHERE position=? AND view IN ({', '.join('?' * len(names))})",
            (positions[-1], positions[0] - 1, *names),
        )
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
                for missing, at in read_log(cur, self.mapper, tracked, positions[0]):
                    view.process(cur, missing, at)
            view.process(cur, events, positions)


def catch_up(conn: sqlite3.Connection, views: Sequence[View], mapper: Mapper[Any], *, batch: int = BATCH) -> int:
    """Apply every log event each view has not applied yet; return how many (summed over views).

    Each batch runs in one ``BEGIN IMMEDIATE`` transaction that re-reads the
    tracked position under the write lock, so concurrent appenders (whose inline
    hooks also advance the views) and concurrent catch-ups never double-apply.
    """
    applied = 0
    for view in views:
        while True:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.cursor()
                after = tracked_position(cur, view.name)
                found = next(iter(read_log(cur, mapper, after, batch=batch)), None)
                if found is None:
                    conn.execute("COMMIT")
                    break
                events, positions = found
                view.process(cur, events, positions)
                conn.execute("COMMIT")
                applied += len(events)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    return applied


def read_stream(
    conn: sqlite3.Connection, mapper: Mapper[Any], stream: str, *, batch: int = BATCH
) -> Iterator[tuple[int, Any]]:
    """(log position, decoded event) for every event of one stream, in version order."""
    after = 0
    while True:
        rows = conn.execute(
            "SELECT rowid, originator_version, topic, state FROM stored_events "
            "WHERE originator_id=? AND originator_version>? ORDER BY originator_version LIMIT ?",
            (stream, after, batch),
        ).fetchall()
        for r in rows:
            yield int(r[0]), _decode(mapper, r[0], stream, r[1], r[2], r[3])
        if len(rows) < batch:
            return
        after = rows[-1][1]
