"""A node's local copy of a shared log, feeding its read models.

With a PostgreSQL log, each node keeps its read models in a local SQLite file, and
beside them a mirror of the log itself (``stored_events``, rowid = the log's
position). ``pull`` copies what the node has not seen yet, in batches, each batch
in one local transaction; the views then catch up from the mirror exactly as they
do from an embedded log (``runner.catch_up``). So history, as-of reads and rebuilds
work locally, and a node that crashed resumes from what its file holds: an event
is mirrored at most once (its position is the primary key) and applied at most
once (the views' tracking positions).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["MIRROR_DDL", "ensure_mirror", "mirrored_head", "pull"]

MIRROR_DDL = (
    "CREATE TABLE IF NOT EXISTS stored_events (originator_id TEXT, originator_version INTEGER, topic TEXT, "
    "state BLOB, PRIMARY KEY (originator_id, originator_version))"
)

Select = Callable[[int, int], Sequence[Any]]
"""``select(after, limit)``: the log's notifications after a position (objects with
``id``, ``originator_id``, ``originator_version``, ``topic``, ``state``)."""


def ensure_mirror(conn: sqlite3.Connection) -> None:
    conn.execute(MIRROR_DDL)


def mirrored_head(conn: sqlite3.Connection | sqlite3.Cursor) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM stored_events").fetchone()[0])


def pull(conn: sqlite3.Connection, select: Select, *, batch: int = 1000) -> int:
    """Copy every log event after the mirror's head into the mirror; return how many."""
    copied = 0
    while True:
        after = mirrored_head(conn)
        notifications = select(after, batch)
        if not notifications:
            return copied
        conn.execute("BEGIN IMMEDIATE")
        try:
            head = mirrored_head(conn)  # another puller (thread or process) may have been first
            rows = [
                (n.id, str(n.originator_id), n.originator_version, n.topic, bytes(n.state))
                for n in notifications if n.id > head
            ]
            conn.executemany(
                "INSERT INTO stored_events(rowid, originator_id, originator_version, topic, state) "
                "VALUES (?,?,?,?,?)",
                rows,
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        copied += len(rows)
        if len(notifications) < batch:
            return copied
