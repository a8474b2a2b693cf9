"""Appending stored events to a log file, with their hashes and read models, in one transaction.

Import and replay-to-a-point write a log without the eventsourcing recorder, which
would take one transaction per save: here a whole batch of stored events (as stored:
stream, version, topic, state bytes) is inserted in the caller's transaction, hashed
and chained exactly as the recorder does (``persistence.integrity``), decoded once
through the store's mapper (where upcasting happens) and fed to the read models
through the same inline runner a normal append uses. Whatever fails rolls back the
whole batch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eventsourcing.persistence import Mapper, MapperDeserialisationError
from eventsourcing.utils import TopicError

from ..errors import FailedPrecondition
from ..persistence import integrity, log
from ..persistence.log import log_head
from ..projections.runner import InlineRunner, View

__all__ = [
    "BareLog",
    "append_stored", "chain_at", "check_streams", "create_hash_tables", "decode", "log_head",
    "log_id",
]

StoredRow = Sequence[Any]  # (originator_id, originator_version, topic, state)


def _has_table(conn: sqlite3.Connection | sqlite3.Cursor, name: str) -> bool:
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone()
    return found is not None


def chain_at(conn: sqlite3.Connection | sqlite3.Cursor, position: int) -> bytes | None:
    """The tamper-evidence chain hash after ``position`` (None when it is not recorded)."""
    if position <= 0:
        return bytes(32) if position == 0 else None
    if not _has_table(conn, "event_hashes"):
        return None
    row = conn.execute("SELECT chain FROM event_hashes WHERE position=?", (position,)).fetchone()
    return None if row is None else bytes(row[0])


def root_at(conn: sqlite3.Connection, position: int) -> str | None:
    """The hex Merkle root of the log's events up to ``position`` (None when not recorded)."""
    if position <= 0 or not _has_table(conn, "event_hashes"):
        return None
    db = integrity.Sql(conn.cursor())
    index = integrity.leaf_number(db, position)
    if index is None:
        return None
    try:
        return integrity.root_of(db, index + 1)
    except LookupError:
        return None


def log_id(conn: sqlite3.Connection | sqlite3.Cursor) -> str | None:
    """The log's random identity (tamper evidence), if it has one."""
    if not _has_table(conn, "ledger_meta"):
        return None
    row = conn.execute("SELECT value FROM ledger_meta WHERE key='log_id'").fetchone()
    return None if row is None else str(row[0])


def decode(mapper: Mapper[Any], rows: Sequence[StoredRow], positions: Sequence[int]) -> list[Any]:
    """The domain events of stored rows (upcast by the mapper); a row that cannot be read is named."""
    events = []
    for (oid, version, topic, state, *_), position in zip(rows, positions, strict=True):
        try:
            events.append(log.decode_event(mapper, position, oid, version, topic, state))
        except (TopicError, MapperDeserialisationError) as e:
            raise FailedPrecondition(
                f"event {oid!r} version {version} (position {position}, topic {topic!r}) cannot be decoded by "
                f"this ctrledger: {e}: failed precondition"
            ) from None
    return events


def check_streams(cur: sqlite3.Cursor, rows: Sequence[StoredRow], positions: Sequence[int]) -> None:
    """Refuse rows that do not continue their streams exactly (a collision or a gap)."""
    first: dict[str, tuple[int, int]] = {}
    expected: dict[str, int] = {}
    for (oid, version, *_), position in zip(rows, positions, strict=True):
        if oid in expected and version != expected[oid]:
            raise FailedPrecondition(
                f"event {oid!r} version {version} (position {position}) does not follow version "
                f"{expected[oid] - 1} of its stream: failed precondition"
            )
        first.setdefault(oid, (version, position))
        expected[oid] = version + 1
    ids = list(first)
    have: dict[str, int] = {}
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        have.update(cur.execute(
            "SELECT originator_id, MAX(originator_version) FROM stored_events "
            f"WHERE originator_id IN ({', '.join('?' * len(part))}) GROUP BY originator_id",
            part,
        ).fetchall())
    for oid, (version, position) in first.items():
        current = int(have.get(oid, 0))
        if version != current + 1:
            what = "collides with" if version <= current else "leaves a gap after"
            raise FailedPrecondition(
                f"event {oid!r} version {version} (position {position}) {what} the store's stream, which is at "
                f"version {current}: failed precondition"
            )


def create_hash_tables(conn: sqlite3.Connection) -> None:
    """The tamper-evidence tables, as the log's recorder creates them."""
    for statement in integrity.CREATE_STATEMENTS:
        conn.execute(integrity.SQLITE.text(statement))


def append_stored(
    cur: sqlite3.Cursor,
    rows: Sequence[StoredRow],
    start: int,
    views: Sequence[View],
    mapper: Mapper[Any],
    *,
    extra_columns: Sequence[str] = (),
    leaves: Sequence[bytes] | None = None,
) -> list[int]:
    """The log's ``append_stored`` with ``views`` applied inline; undecodable events are refused
    as ``FailedPrecondition`` (an archive this ctrledger cannot read)."""
    hooks = [InlineRunner(views, mapper)] if views else []
    return log.append_stored(cur, rows, start, hooks, mapper, extra_columns=extra_columns,
                             decode=lambda r, p: decode(mapper, r, p), leaves=leaves)


class BareLog:
    """An SQLite log file seen as a read model for ``export`` (tools and benchmarks): no views,
    and nothing to rebuild (``readonly``)."""

    embedded = True
    readonly = True

    def __init__(self, path: str | Path, mapper: Mapper[Any]) -> None:
        self.path = str(path)
        self.mapper = mapper
        self.views: list[View] = []

    @contextmanager
    def synced(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()
