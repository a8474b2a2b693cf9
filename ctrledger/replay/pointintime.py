"""Materialise a store as it was at a point into a new SQLite file, for debugging away from production.

``replay_to(store, path, as_of=...)`` writes a new store file whose log is the
original's log up to the point, with its tamper-evidence hashes and every read model
built from it. ``ctrledger.open(path)`` then answers ``get``, ``list``, ``history``
and ``audit`` exactly as the original answered them ``as_of`` that point.

* ``as_of=Position(n)`` (or an int): the first ``n`` events; positions are identical.
* ``as_of=<time>`` (aware datetime or ISO-8601 string): every event whose timestamp is
  at or before the time. Timestamps grow along each stream, so each stream keeps a
  prefix; when they also grow along the log (one writer, or writers whose clocks
  agree) that is a prefix of the log and positions are identical; otherwise the
  selected events keep their order and are numbered densely.

The file is built beside ``path`` and renamed into place when complete; the original
is only read (in one snapshot).
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

from ..domain.history import Position, Version, parse_point
from ..errors import AlreadyExists, InvalidArgument
from ..persistence.log import decode_event
from ..persistence.sqlite import write_transaction
from ..projections.schema import ensure_schema
from .log import append_stored, create_hash_tables, log_head, log_id
from .rebuild import BATCH, Progress, Replayable, Source, read_only, remove_database, source_of, synced

__all__ = ["replay_to"]


def replay_to(
    source: Source, path: str | os.PathLike[str], *, as_of: object, progress: Progress | None = None
) -> Path:
    """Write the store as of ``as_of`` to the new SQLite file ``path``; return its path."""
    if isinstance(as_of, int) and not isinstance(as_of, bool):
        as_of = Position(as_of)
    point = parse_point(as_of)
    if isinstance(point, Version):
        raise InvalidArgument("replay_to takes a time or a Position, not a Version: invalid argument")
    target = Path(path)
    if target.exists():
        raise AlreadyExists(f"{target}: already exists; replay_to writes a new file")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InvalidArgument(f"cannot write {target}: {e.strerror}: invalid argument") from None
    partial = Path(f"{target}.partial")
    remove_database(partial)
    store = source_of(source)
    synced(store)
    try:
        with closing(read_only(store.path)) as src:
            src.execute("BEGIN")
            head = log_head(src)
            if isinstance(point, Position) and point.number > head:
                raise InvalidArgument(
                    f"as_of position {point.number} is in the future: the log's head is {head}: invalid argument")
            upto = point.number if isinstance(point, Position) else head
            _create(src, partial)
            with closing(sqlite3.connect(partial, isolation_level=None)) as dst:
                dst.execute("PRAGMA synchronous=OFF")  # a partial file is thrown away on any failure
                _copy(store, src, dst, upto, point if isinstance(point, datetime) else None, progress)
                dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                dst.execute("PRAGMA journal_mode=DELETE")
            src.execute("COMMIT")
        os.replace(partial, target)
    except BaseException:
        remove_database(partial)
        raise
    return target


def _create(src: sqlite3.Connection, path: Path) -> None:
    """The log table as the source defines it, the hash tables, the read-model schema, the source's log id."""
    with closing(sqlite3.connect(path, isolation_level=None)) as dst:
        dst.execute("PRAGMA journal_mode=WAL")
        dst.execute("BEGIN")
        for (sql,) in src.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name='stored_events' AND sql IS NOT NULL "
            "ORDER BY type='index', name"
        ):
            dst.execute(sql)
        create_hash_tables(dst)
        source_id = log_id(src)
        if source_id is not None:  # the same log, up to a point: the same identity
            dst.execute("UPDATE ledger_meta SET value=? WHERE key='log_id'", (source_id,))
        dst.execute("COMMIT")
    ensure_schema(os.fspath(path))


def _copy(
    store: Replayable,
    src: sqlite3.Connection,
    dst: sqlite3.Connection,
    upto: int,
    until: datetime | None,
    progress: Progress | None,
) -> None:
    cursor = src.execute(
        "SELECT originator_id, originator_version, topic, state, rowid FROM stored_events WHERE rowid <= ? "
        "ORDER BY rowid",
        (upto,),
    )
    head = 0
    while rows := cursor.fetchmany(BATCH):
        if until is not None:
            rows = [r for r in rows if _at_or_before(store, r, until)]
        rows = [r[:4] for r in rows]
        with write_transaction(dst) as cur:
            positions = append_stored(cur, rows, head, store.views, store.mapper)
        head = positions[-1] if positions else head
        if progress is not None:
            progress(head, upto)


def _at_or_before(store: Replayable, row: tuple[str, int, str, bytes, int], until: datetime) -> bool:
    event: Any = decode_event(store.mapper, row[4], row[0], row[1], row[2], row[3])
    ts: datetime = event.timestamp
    return ts <= until
