"""Idempotent writes: every command's id, recorded in the transaction that appends its events.

A write that is retried after its acknowledgement was lost (the connection dropped
after the commit, and eventsourcing's ``@retry`` re-sent the append, or the caller
retried) must find the first attempt instead of applying again. Every append carries
the command's ``request_id``; the recorder inserts ``(request_id, stream, version,
position)`` into ``ctrledger_requests`` in the same transaction as the events. The
table's primary key makes a second application of one command impossible on any
backend, and ``lookup`` tells a retry what the first attempt committed.
"""

from __future__ import annotations

from .integrity import Sql

__all__ = ["CREATE_STATEMENT", "lookup", "record"]

# Clustered on the request id in SQLite (one b-tree, not a rowid table beside a unique index:
# a commit writes one page fewer). A log created before keeps its rowid table; both answer alike.
CREATE_STATEMENT = (
    "CREATE TABLE IF NOT EXISTS {requests} (request_id TEXT PRIMARY KEY, stream TEXT NOT NULL, "
    "version BIGINT NOT NULL, position BIGINT NOT NULL){clustered}"
)


def record(db: Sql, request_id: str, stream: str, version: int, position: int) -> None:
    """Record that ``request_id`` committed as ``stream`` at ``version`` (log ``position``)."""
    db.run("INSERT INTO {requests}(request_id, stream, version, position) VALUES (?,?,?,?)",
           (request_id, stream, version, position))


def lookup(db: Sql, request_id: str) -> tuple[str, int] | None:
    """(stream, version) that ``request_id`` committed, or None if it never did."""
    row = db.one("SELECT stream, version FROM {requests} WHERE request_id=?", (request_id,))
    return None if row is None else (str(row[0]), int(row[1]))
