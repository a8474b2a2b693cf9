"""Rebuild the read models from the log into fresh tables, and swap them in atomically.

``rebuild(store)`` runs in two steps:

1. **Build, in bulk** (``projections.bulk.build_in_bulk``). The log is read once, in stream
   order, and applied to the state of one container at a time; each row is written once,
   when it is final, into a scratch SQLite file beside the store (``<store>.rebuild``, no
   journal, no syncs) holding the views' tables with the store's own definitions and
   indexes. The live read model is not touched: readers keep answering from it. The
   scratch file records how many events it has applied (``pending_rebuild``), but an
   interrupted build is not resumed: the next rebuild deletes the file and starts over.
2. **Swap** (``projections.bulk.install_built``). In one ``BEGIN IMMEDIATE`` transaction on
   the live file, with the scratch file attached, each view table is emptied and refilled
   from its twin (SQLite transfers the b-trees and their indexes as they are), the row
   counts are compared, the tracking positions set, and the events appended since the
   build started are applied. Readers on other connections see the old model until this
   commits, then the new one; a failure rolls it back and the old model stays in use. The
   scratch file is then deleted.

A store whose views are not all the project's own (``projections.bulk.bulk_capable``) is
rebuilt event by event through its views instead (``build_views``), batch by batch, each
batch committed with the views' tracking positions in the scratch file, so that build
resumes where it stopped; the scratch file remembers which log it was built from (its last
applied event), and one of another log is discarded. ``verify_projections`` also uses
``build_views``: it compares the live model with the per-event views, independently of the
bulk builder.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, closing
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from eventsourcing.persistence import Mapper

from ..errors import FailedPrecondition
from ..persistence.log import log_head
from ..persistence.sqlite import read_only_connection, write_transaction
from ..projections.bulk import BULK_BATCH, build_in_bulk, bulk_capable, install_built
from ..projections.current import tracked_position
from ..projections.runner import View, read_log
from ..projections.schema import ensure_schema

__all__ = [
    "Progress", "Replayable", "Source", "build_views", "pending_rebuild", "rebuild",
    "require_embedded_log",
    "scratch_path", "source_of", "synced",
]

BATCH = 2000

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` after each batch (events)."""


class Replayable(Protocol):
    """What replay works on: a read model over a log (``projections.ReadModel``; a ``Store``
    is accepted too and stands for its ``read_model``)."""

    path: str
    readonly: bool

    @property
    def embedded(self) -> bool: ...

    @property
    def mapper(self) -> Mapper[Any]: ...

    @property
    def views(self) -> Sequence[View]: ...

    def synced(self) -> AbstractContextManager[sqlite3.Connection]: ...


@runtime_checkable
class _HasReadModel(Protocol):
    @property
    def read_model(self) -> Replayable: ...


Source = Replayable | _HasReadModel
"""A read model, or a store (which stands for its read model)."""


def source_of(obj: Source) -> Replayable:
    """The read model to replay: ``obj`` itself, or a store's ``read_model``."""
    found: Replayable | None = getattr(obj, "read_model", None)
    if found is not None:
        return found
    assert not isinstance(obj, _HasReadModel)
    return obj


def synced(store: Replayable) -> None:
    """Bring the local file up to the log's head (a node of a shared log pulls)."""
    with store.synced():
        pass


def require_embedded_log(store: Replayable, what: str) -> None:
    """Refuse to write a log that is not the store's own SQLite file (a shared PostgreSQL log)."""
    if not store.embedded:
        raise FailedPrecondition(
            f"{what} writes the log, and this store's log is shared ({store.path} is a node's mirror); "
            "it can only write an embedded (SQLite) log for now: failed precondition"
        )


def scratch_path(store: Replayable) -> Path:
    """Where ``rebuild`` builds the new read model of ``store``."""
    return Path(f"{store.path}.rebuild")


def read_only(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A read-only connection to an SQLite file (autocommit; ``BEGIN`` for a snapshot)."""
    return read_only_connection(os.fspath(path))


def open_scratch(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A connection to a scratch read-model file, created with the schema, tuned for bulk writes.

    WAL with ``synchronous=OFF``: a killed process loses nothing committed (the OS has
    it); a power loss may lose or damage the last batches, and then the resumed build's
    ``quick_check`` fails and the next rebuild starts over. The live file is never
    written this way.
    """
    ensure_schema(os.fspath(path))
    conn = sqlite3.connect(os.fspath(path), isolation_level=None, timeout=30)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA wal_autocheckpoint=16384")
    conn.execute("PRAGMA cache_size=-65536")  # 64 MiB
    conn.execute("PRAGMA temp_store=MEMORY")
    return conn


def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM ctrledger_meta WHERE key=?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _set_meta(cur: sqlite3.Cursor, key: str, value: str) -> None:
    cur.execute(
        "INSERT INTO ctrledger_meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        (key, value),
    )


def _anchor(log: sqlite3.Connection, position: int) -> str:
    """The identity of the log up to ``position``: the log's id and its chain hash there
    (which covers every event up to it), so a scratch file of another log is never resumed."""
    try:
        ident = log.execute("SELECT value FROM ledger_meta WHERE key='log_id'").fetchone()
        chain = log.execute("SELECT chain FROM event_hashes WHERE position=?", (position,)).fetchone()
    except sqlite3.Error:
        ident = chain = None
    row = log.execute(
        "SELECT originator_id, originator_version, topic FROM stored_events WHERE rowid=?", (position,)
    ).fetchone()
    return json.dumps([position, *(row or ()), ident[0] if ident else None, bytes(chain[0]).hex() if chain else None])


def build_views(
    log: sqlite3.Connection,
    target: sqlite3.Connection,
    views: Sequence[View],
    mapper: Mapper[Any],
    upto: int,
    *,
    progress: Progress | None = None,
    batch: int = BATCH,
) -> int:
    """Apply every event of ``log`` up to position ``upto`` that each view in ``target`` has not applied.

    One transaction on ``target`` per batch, with the views' tracking positions and the
    build's bookkeeping (``rebuild_anchor``, ``rebuild_events`` in ``ctrledger_meta``).
    Returns the number of events the views in ``target`` now cover.
    """
    tracked = {view.name: tracked_position(target, view.name) for view in views}
    start = min(tracked.values(), default=upto)
    done = int(_meta(target, "rebuild_events") or 0)
    if start >= upto:
        return done
    remaining = int(log.execute(
        "SELECT COUNT(*) FROM stored_events WHERE rowid > ? AND rowid <= ?", (start, upto)).fetchone()[0])
    total = done + remaining
    for events, positions in read_log(log, mapper, start, upto + 1, batch=batch):
        with write_transaction(target) as cur:
            for view in views:
                skip = sum(1 for p in positions if p <= tracked[view.name])
                if skip < len(positions):
                    view.process(cur, events[skip:], positions[skip:])
                    tracked[view.name] = positions[-1]
            done += len(events)
            _set_meta(cur, "rebuild_events", str(done))
            _set_meta(cur, "rebuild_anchor", _anchor(log, positions[-1]))
        if progress is not None:
            progress(done, total)
    return done


def _fresh_or_resumable(scratch: Path, log: sqlite3.Connection, source: str) -> None:
    """Delete the scratch file unless it was built from this log (its last event is where it says)."""
    if not scratch.exists():
        return
    try:
        with closing(sqlite3.connect(scratch)) as conn:
            anchor = _meta(conn, "rebuild_anchor")
            built_from = _meta(conn, "rebuild_source")
    except sqlite3.Error:
        anchor = built_from = None
    if anchor is not None and built_from == source:
        position = json.loads(anchor)[0]
        if _anchor(log, position) == anchor:
            return
    remove_database(scratch)


def remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def pending_rebuild(source: Source) -> int | None:
    """The number of events an interrupted rebuild of ``store`` has applied so far (None: none pending)."""
    store = source_of(source)
    scratch = scratch_path(store)
    if not scratch.exists():
        return None
    with closing(sqlite3.connect(scratch)) as conn:
        try:
            return int(_meta(conn, "rebuild_events") or 0)
        except sqlite3.Error:
            return None


def _columns(conn: sqlite3.Connection, schema: str, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA {schema}.table_info({table})")]


def rebuild(source: Source, progress: Progress | None = None, *, batch: int | None = None) -> int:
    """Rebuild every read model of ``store`` from its log and swap it in (see the module docstring).

    ``progress(done, total)`` is called after each batch of ``batch`` events (``BULK_BATCH`` in
    bulk, ``BATCH`` event by event; ``progress.TerminalProgress`` draws a bar). Returns the number
    of log events the new read model was built from, counting those applied before an interruption.
    Safe to interrupt at any point: a ``KeyboardInterrupt`` leaves the live model as it was and removes
    the scratch file.
    """
    store = source_of(source)
    scratch = scratch_path(store)
    try:
        return _rebuild(store, scratch, progress, batch)
    except (KeyboardInterrupt, SystemExit):
        # Stopped on purpose (Ctrl-C): the live model is as it was; leave no scratch file behind.
        # A crash or a kill still leaves it, for the next rebuild to resume.
        remove_database(scratch)
        raise


def _rebuild(store: Any, scratch: Path, progress: Progress | None, batch: int | None) -> int:
    views = list(store.views)
    if not bulk_capable(views):
        return _rebuild_by_event(store, views, scratch, progress, batch or BATCH)
    synced(store)
    remove_database(scratch)  # an interrupted bulk build is not resumed: it starts over

    def done_so_far(cur: sqlite3.Cursor, done: int) -> None:
        _set_meta(cur, "rebuild_events", str(done))

    with closing(read_only(store.path)) as log:  # a failure here leaves the scratch file (pending_rebuild)
        log.execute("BEGIN")
        upto = log_head(log)
        events = build_in_bulk(log, scratch, views, store.mapper, upto, progress=progress,
                               batch=batch or BULK_BATCH, each_batch=done_so_far)
        log.execute("COMMIT")
    try:
        with store.synced() as conn:
            events += install_built(conn, scratch, views, store.mapper, upto)
    finally:
        remove_database(scratch)
    return events


def _rebuild_by_event(store: Any, views: list[View], scratch: Path, progress: Progress | None, batch: int) -> int:
    """The rebuild of views ``projections.bulk`` does not know: each event through the views, resumable."""
    origin = os.path.abspath(store.path)
    synced(store)
    with closing(read_only(store.path)) as log:
        log.execute("BEGIN")
        upto = int(log.execute("SELECT COALESCE(MAX(rowid), 0) FROM stored_events").fetchone()[0])
        _fresh_or_resumable(scratch, log, origin)
        with closing(open_scratch(scratch)) as target:
            with target:
                _set_meta(target.cursor(), "rebuild_source", origin)
            events = build_views(log, target, views, store.mapper, upto, progress=progress, batch=batch)
            try:
                _check_scratch(target, views, upto)
            except FailedPrecondition:
                target.close()
                remove_database(scratch)  # not worth resuming: the next rebuild starts over
                raise
        log.execute("COMMIT")
    try:
        events += _swap(store, views, scratch, upto)
    except FailedPrecondition:
        remove_database(scratch)
        raise
    remove_database(scratch)
    return events


def _check_scratch(target: sqlite3.Connection, views: Sequence[View], upto: int) -> None:
    result = target.execute("PRAGMA quick_check").fetchone()[0]
    if result != "ok":
        raise FailedPrecondition(f"the rebuilt read model failed SQLite's quick_check ({result}); it was not "
                                 "swapped in: failed precondition")
    for view in views:
        at = tracked_position(target, view.name)
        if at != upto and upto > 0:
            raise FailedPrecondition(f"the rebuilt view {view.name!r} is at position {at}, not {upto}; it was not "
                                     "swapped in: failed precondition")


def _swap(store: Replayable, views: Sequence[View], scratch: Path, upto: int) -> int:
    """Copy the scratch tables over the live ones, and apply the events since ``upto``, in one transaction."""
    with store.synced() as conn:
        return install_built(conn, scratch, views, store.mapper, upto)
