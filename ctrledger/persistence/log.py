"""The log: where container events are appended, and where they are read back from.

``Log`` is the interface the store and the read model use; it has two implementations:

* ``SQLiteLog``: an embedded log in one SQLite file, which also holds the read models.
  Its appends run the read model's inline hook in the append transaction, so a read in
  any process sees every acknowledged write without catching up.
* ``PostgresLog``: a node of one log shared by many nodes in PostgreSQL. The node keeps a
  *mirror* of the log in its local SQLite file (``stored_events``, rowid = the log's
  position) beside its read models; ``pull`` copies what the mirror lacks, and a
  *follower* thread wakes on the log's NOTIFY (or every half second) to do so.

Either way the read model reads events from the local file (``path``), the embedded log
or the mirror, through ``read_events``/``read_stream``. Nothing else writes the event
tables: appends, imports and replays all go through ``append`` or ``append_stored``.
This module and its adapters (``sqlite.py``, ``postgres.py``, ``application.py``) are
the only place that knows eventsourcing's storage internals; a driver error becomes a
``StoreError`` here.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from eventsourcing.persistence import IntegrityError, Mapper, PersistenceError, StoredEvent
from eventsourcing.utils import TopicError, resolve_topic

from ..domain.container import ContainerAggregate
from ..errors import DataLoss, FailedPrecondition, StoreError, Unavailable
from . import integrity, requests
from .application import LedgerApplication, postgres_env, sqlite_env
from .snapshots import SNAPSHOT_EVERY
from .sqlite import (
    InlineHook,
    LedgerSQLiteRecorder,
    read_only_connection,
    readonly_uri,
    verify_sqlite,
    write_transaction,
)

__all__ = [
    "BATCH", "InlineHook", "Log", "PostgresLog", "SQLiteLog", "StreamTaken", "append_stored", "decode_event",
    "log_head", "read_events", "read_stream",
]

T = TypeVar("T")
BATCH = 1000

StoredRow = Sequence[Any]  # (originator_id, originator_version, topic, state)


class StreamTaken(Exception):  # noqa: N818 - not an error for the caller: a lost race, decided again
    """The append lost a race: another writer has already appended these stream versions."""


class Log(Protocol):
    """What the store and the read model need from a log (see the module docstring)."""

    path: str
    """The local SQLite file holding the events the read model reads (the log, or its mirror)."""
    where: str
    """The log's location, for messages."""
    inline: bool
    """True when appends run the inline hooks in the append transaction (the read model needs
    no catch-up before a read); False when other nodes append too (pull, then catch up)."""
    cheap_conflicts: bool
    """True when an append that loses a race costs nothing (so a create may try blind)."""
    definite_failures: bool
    """True when a failed append certainly wrote nothing (a local transaction); False when a
    connection lost mid-commit may still commit (a server's), so the outcome is unknown."""
    readonly: bool
    """True when opened read-only (``mode="r"``): appends raise ``FailedPrecondition``, and an
    embedded log's file is never written."""

    @property
    def mapper(self) -> Mapper[Any]: ...

    def check_writable(self) -> None:
        """``FailedPrecondition`` if the log is open read-only."""
        ...

    def add_inline_hook(self, hook: InlineHook) -> None: ...

    def append(self, events: Sequence[Any], request_id: str | None = None) -> None:
        """Append one operation's events atomically, recorded as the command ``request_id``;
        ``StreamTaken`` if a version (or the request id) is taken."""

    def committed(self, request_id: str, operation: str) -> ContainerAggregate | None:
        """What the command ``request_id`` committed, if it did (asked after a failed append)."""

    def keep(self, agg: ContainerAggregate) -> None:
        """After an append: keep a snapshot now and then."""

    def upgrade_hashes(self, accept_unhashed: bool) -> int | None:
        """Hash a log written without hashes, once (``migrate``); the number of events hashed."""

    def load(self, stream: str) -> ContainerAggregate | None: ...

    def events_of(self, stream: str) -> list[Any]:
        """Every event of one stream, from the log itself (for tools and tests)."""

    def head(self) -> int:
        """The log's highest position (0 when empty)."""

    def read(self, work: Callable[[integrity.Sql], T]) -> T:
        """Run ``work`` in one read transaction on the log."""

    def pull(self) -> int:
        """Copy new events of the log into the local file; return how many (0 for an embedded log)."""

    def follow(self, on_change: Callable[[], None]) -> None:
        """Call ``on_change`` whenever other nodes may have appended (until ``close``)."""

    def verify(self, checkpoint: integrity.Checkpoint | None = None) -> integrity.VerifyReport: ...

    def schema_version(self) -> int: ...

    def close(self) -> None: ...


# -- reading events from the local file --------------------------------------------------------------


_LOOKUP_ATTEMPTS = 5  # asking whether a command committed, after its append failed


def _upgrade(db: integrity.Sql, accept_unhashed: bool) -> int | None:
    done = integrity.upgrade(db, accept_unhashed=accept_unhashed)
    if done is None:
        return None
    counted = db.one("SELECT COUNT(*) FROM {stored_events} WHERE {pos} >= ? AND {pos} <= ?", done)
    return int(counted[0]) if counted else 0


def decode_event(mapper: Mapper[Any], position: int, stream: str, version: int, topic: str, state: Any) -> Any:
    """A stored event as a domain event; a damaged one is a clear error naming its position."""
    try:
        if not isinstance(state, bytes):
            raise TypeError(f"its state is {type(state).__name__}, not bytes")
        return mapper.to_domain_event(
            StoredEvent(originator_id=stream, originator_version=version, topic=topic, state=state)
        )
    except TopicError:
        raise  # an event class this ctrledger does not know (a newer writer): not damage
    except DataLoss as e:
        raise DataLoss(f"at log position {position}: {e.message}; 'ctrledger verify' tells what changed") from e
    except Exception as e:
        raise DataLoss(
            f"the event at log position {position} cannot be read ({type(e).__name__}: {e}); "
            f"'ctrledger verify' tells what changed: data loss"
        ) from e


def known_topic(topic: str) -> bool:
    """Whether this ctrledger has an event class for ``topic`` (an archive of a newer writer may not)."""
    try:
        resolve_topic(topic)
    except TopicError:
        return False
    return True


def log_head(conn: sqlite3.Connection | sqlite3.Cursor) -> int:
    """The highest position in a local log file (0 for an empty one)."""
    row = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM stored_events").fetchone()
    return int(row[0])


def read_events(
    cur: sqlite3.Cursor | sqlite3.Connection, mapper: Mapper[Any], after: int, before: int | None = None,
    *, batch: int = BATCH,
) -> Iterator[tuple[list[Any], list[int]]]:
    """Decoded events of a local log file after position ``after`` (and before ``before``), in batches."""
    while True:
        sql = "SELECT rowid, originator_id, originator_version, topic, state FROM stored_events WHERE rowid > ?"
        params: list[Any] = [after]
        if before is not None:
            sql += " AND rowid < ?"
            params.append(before)
        sql += " ORDER BY rowid LIMIT ?"
        params.append(batch)
        rows = cur.execute(sql, params).fetchall()
        if not rows:
            return
        events = [decode_event(mapper, r[0], r[1], r[2], r[3], r[4]) for r in rows]
        positions = [int(r[0]) for r in rows]
        yield events, positions
        after = positions[-1]
        if len(rows) < batch:
            return


def read_stream(
    conn: sqlite3.Connection, mapper: Mapper[Any], stream: str, *, batch: int = BATCH
) -> Iterator[tuple[int, Any]]:
    """(log position, decoded event) for every event of one stream of a local log file, in version order."""
    after = 0
    while True:
        rows = conn.execute(
            "SELECT rowid, originator_version, topic, state FROM stored_events "
            "WHERE originator_id=? AND originator_version>? ORDER BY originator_version LIMIT ?",
            (stream, after, batch),
        ).fetchall()
        for r in rows:
            yield int(r[0]), decode_event(mapper, r[0], stream, r[1], r[2], r[3])
        if len(rows) < batch:
            return
        after = rows[-1][1]


def _has_table(conn: sqlite3.Connection | sqlite3.Cursor, name: str) -> bool:
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone()
    return found is not None


def append_stored(
    cur: sqlite3.Cursor,
    rows: Sequence[StoredRow],
    start: int,
    hooks: Sequence[InlineHook],
    mapper: Mapper[Any],
    *,
    extra_columns: Sequence[str] = (),
    decode: Callable[[Sequence[StoredRow], Sequence[int]], list[Any]] | None = None,
    leaves: Sequence[bytes] | None = None,
) -> list[int]:
    """Append already-stored events (an import, a replay, a test's history) to a local log file.

    ``rows`` are inserted at positions ``start + 1 ...`` in the caller's write transaction on
    ``cur``, hashed and chained exactly as the recorder does (``leaves``: their leaf hashes, when
    the caller has them already), decoded once (``decode``, else the mapper) and handed to
    ``hooks`` (the read models), as a normal append does. Whatever fails rolls back with the
    caller's transaction. Returns the positions.
    """
    positions = list(range(start + 1, start + 1 + len(rows)))
    if not rows:
        return positions
    columns = ("originator_id", "originator_version", "topic", "state", *extra_columns)
    cur.executemany(
        f"INSERT INTO stored_events(rowid, {', '.join(columns)}) VALUES (?, {', '.join('?' * len(columns))})",
        [(p, *r[: len(columns)]) for p, r in zip(positions, rows, strict=True)],
    )
    if _has_table(cur, "event_hashes"):
        integrity.append_hashes(
            integrity.Sql(cur), [(p, r[0], r[1], r[2], r[3]) for p, r in zip(positions, rows, strict=True)], leaves)
    if hooks:
        events = decode(rows, positions) if decode is not None else [
            decode_event(mapper, p, r[0], r[1], r[2], r[3]) for p, r in zip(positions, rows, strict=True)]
        for hook in hooks:
            hook(cur, events, positions)
    return positions


# -- the two logs ----------------------------------------------------------------------------------


class _AppLog:
    """What both logs do through the eventsourcing application."""

    path: str
    where: str
    inline: bool
    cheap_conflicts: bool
    readonly: bool = False

    def __init__(self, app: LedgerApplication) -> None:
        self._app = app

    def check_writable(self) -> None:
        if self.readonly:
            raise FailedPrecondition(f"the store at {self.where} is open read-only (mode='r'): failed precondition")

    @property
    def mapper(self) -> Mapper[Any]:
        return self._app.mapper

    def add_inline_hook(self, hook: InlineHook) -> None:
        raise NotImplementedError

    def append(self, events: Sequence[Any], request_id: str | None = None) -> None:
        self.check_writable()
        try:
            self._app.append(events, request_id)
        except IntegrityError:
            raise StreamTaken() from None
        except (PersistenceError, sqlite3.Error, RuntimeError) as e:
            # RuntimeError: a read model refused to apply an event twice (its tracking is
            # ahead of the log, i.e. the file was tampered with or restored inconsistently).
            raise Unavailable(f"storage error: {e}") from e

    def committed(self, request_id: str, operation: str) -> ContainerAggregate | None:
        """The aggregate as the command ``request_id`` left it, if it committed (``requests.py``).

        Asked after an append failed: a lost acknowledgement must become neither a second
        application nor a reported failure. ``Unavailable`` ("outcome unknown, safe to retry
        with the same request id") when the log cannot be asked.
        """
        for attempt in range(_LOOKUP_ATTEMPTS):
            try:
                found = self.read(lambda db: requests.lookup(db, request_id))
                if found is None:
                    return None
                agg: Any = self._app.repository.get(found[0], version=found[1])
                assert isinstance(agg, ContainerAggregate)
                return agg
            except (PersistenceError, sqlite3.Error, Unavailable) as e:
                if attempt + 1 == _LOOKUP_ATTEMPTS:
                    raise Unavailable(
                        f"the outcome of this {operation} is unknown (the storage stopped answering: {e}); "
                        f"it is safe to retry with the same request_id={request_id!r}"
                    ) from e
                time.sleep(0.2 * (attempt + 1))
        return None

    def keep(self, agg: ContainerAggregate) -> None:
        """After an append: a snapshot every ``SNAPSHOT_EVERY`` versions (``snapshots.py``)."""
        self._app.remember(agg)

    def load(self, stream: str) -> ContainerAggregate | None:
        try:
            return self._app.load(stream)
        except (PersistenceError, sqlite3.Error) as e:
            raise Unavailable(f"cannot read the log at {self.where}: {e}; nothing was written") from e

    def head(self) -> int:
        return self._app.head()

    def events_of(self, stream: str) -> list[Any]:
        """Every event of one stream, from the log itself (for tools and tests)."""
        return list(self._app.events.get(stream))

    def schema_version(self) -> int:
        found = self.read(lambda db: db.one("SELECT value FROM {ledger_meta} WHERE key='log_schema'"))
        return int(found[0]) if found else 0

    def check_schema(self) -> None:
        version = self.schema_version()
        if version > integrity.LOG_SCHEMA_VERSION:
            raise FailedPrecondition(
                f"the log at {self.where} has schema version {version}, newer than this ctrledger "
                f"understands ({integrity.LOG_SCHEMA_VERSION}); upgrade ctrledger: failed precondition"
            )

    def read(self, work: Callable[[integrity.Sql], T]) -> T:
        raise NotImplementedError

    def close(self) -> None:
        self._app.close()


_RECENT_EVENTS = ("SELECT originator_version, topic, state FROM stored_events WHERE originator_id=? "
                  "ORDER BY originator_version DESC LIMIT ?")


class SQLiteLog(_AppLog):
    """An embedded log in one SQLite file (see the module docstring)."""

    inline = True
    definite_failures = True
    cheap_conflicts = True  # a failed insert costs nothing: a create of a new name may try blind

    def __init__(self, path: str, *, synchronous: str = "FULL", readonly: bool = False) -> None:
        """``readonly``: the file is opened with SQLite's read-only mode (``readonly_uri``) and
        never written: no table is created, nothing upgraded, appends refused."""
        self.path = self.where = path
        self.readonly = readonly
        target = readonly_uri(path) if readonly else path
        env = sqlite_env(target, synchronous=synchronous)
        if readonly:
            env["CREATE_TABLE"] = "n"
        try:
            super().__init__(LedgerApplication(env=env))
            # The one writer connection (group commit); a read-only log has none.
            self._writer = None if readonly else _writer_connection(path, synchronous)
            # Cold loads (``load``): opened with the log, so that its descriptors stay as they are.
            self._reader = sqlite3.connect(target, uri=readonly, isolation_level=None, check_same_thread=False,
                                           timeout=30)
        except (sqlite3.Error, PersistenceError, OSError) as e:
            raise Unavailable(f"cannot open {path!r}: {e}") from e
        recorder = self._app.recorder
        assert isinstance(recorder, LedgerSQLiteRecorder)
        self._recorder = recorder
        self._hooks: list[InlineHook] = []
        self._reader_lock = threading.Lock()
        self._pending: list[_Append] = []
        self._pending_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self.check_schema()
        # Opening hashes nothing: hashing an unhashed log is ``migrate`` (upgrade_hashes).

    def add_inline_hook(self, hook: InlineHook) -> None:
        self._hooks.append(hook)

    def load(self, stream: str) -> ContainerAggregate | None:
        """The stream's aggregate, its recent events read in one statement on a connection of the
        log's own: eventsourcing's recorder would take a pooled connection, a transaction and three
        context managers around the same SELECT, on every cold load of a write."""
        try:
            with self._reader_lock:
                rows = self._reader.execute(_RECENT_EVENTS, (stream, SNAPSHOT_EVERY)).fetchall()
            return self._app.load(stream, [StoredEvent(originator_id=stream, originator_version=version, topic=topic,
                                                       state=state) for version, topic, state in rows])
        except (PersistenceError, sqlite3.Error) as e:
            raise Unavailable(f"cannot read the log at {self.where}: {e}; nothing was written") from e

    def append(self, events: Sequence[Any], request_id: str | None = None) -> None:
        """Append one operation's events (recorded as the command ``request_id``), in a group
        commit with whatever other threads append now.

        The writer that takes the commit lock appends every pending operation in one
        transaction and commits once (one fsync for all of them); only then are they
        acknowledged. An operation that loses its race, or that a read model refuses, is left
        out alone: the group is run again with each operation in its own savepoint. A commit
        that fails fails every operation in it.
        """
        self.check_writable()
        stored = [self.mapper.to_stored_event(e) for e in events]
        job = _Append(events, stored, request_id)
        with self._pending_lock:
            self._pending.append(job)
        with self._commit_lock:
            if not job.done:
                with self._pending_lock:
                    group, self._pending = self._pending, []
                self._commit(group)
        if job.error is not None:
            raise job.error

    def _commit(self, group: list[_Append]) -> None:
        conn = self._writer
        assert conn is not None  # append refused a read-only log
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            _fail(group, Unavailable(f"storage error: {e}"))
            return
        # Most groups have no failing operation: they run in one go. A savepoint per operation
        # costs a copy of every page it touches (its sub-journal), so it is paid only when an
        # operation of the group failed: then the group starts again, each operation in its own
        # savepoint, and only the failing one is rolled back. A lone operation rolls back the
        # transaction.
        alone = len(group) == 1
        try:
            cur = conn.cursor()
            if alone:
                group[0].error = self._try(cur, group[0])
            elif any(self._try(cur, job) is not None for job in group):  # stops at the first failure
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                cur = conn.cursor()
                for job in group:
                    cur.execute("SAVEPOINT op")
                    job.error = self._try(cur, job)
                    if job.error is not None:
                        cur.execute("ROLLBACK TO op")
                    cur.execute("RELEASE op")
            if alone and group[0].error is not None:
                conn.execute("ROLLBACK")
            else:
                conn.execute("COMMIT")
        except BaseException as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            _fail(group, e if isinstance(e, StoreError) else Unavailable(f"storage error: {e}"))
            if not isinstance(e, Exception):
                raise
        for job in group:
            job.done = True

    def _try(self, cur: sqlite3.Cursor, job: _Append) -> BaseException | None:
        """Insert ``job``'s events on ``cur``; the error that refused it, or None."""
        try:
            self._insert(cur, job)
        except sqlite3.IntegrityError:
            return StreamTaken()
        except (sqlite3.Error, RuntimeError) as e:
            # RuntimeError: a read model refused to apply an event twice (its tracking is
            # ahead of the log, i.e. the file was tampered with or restored inconsistently).
            return Unavailable(f"storage error: {e}")
        except StoreError as e:  # a read model could not read an event it had to catch up on
            return e
        return None

    def _insert(self, cur: sqlite3.Cursor, job: _Append) -> None:
        rows = []  # plain loops, no comprehensions: one event, the common case, pays for no batching
        for s in job.stored:
            rows.append((str(s.originator_id), s.originator_version, s.topic, s.state))
        cur.execute("INSERT INTO stored_events VALUES (?,?,?,?)", rows[0])
        first = cur.lastrowid
        assert first is not None
        positions = [first]
        hashed = [(first, *rows[0])]
        if len(rows) > 1:
            # The others in one statement, at the positions that follow: SQLite gives a new row the
            # highest rowid plus one, and this transaction holds the write lock.
            for row in rows[1:]:
                positions.append(positions[-1] + 1)
                hashed.append((positions[-1], *row))
            cur.executemany(
                "INSERT INTO stored_events(rowid, originator_id, originator_version, topic, state) VALUES (?,?,?,?,?)",
                hashed[1:])
        db = integrity.Sql(cur)
        # Tamper evidence: hash and chain the events where their order is decided.
        integrity.append_hashes(db, hashed)
        if job.request_id is not None:  # idempotency: a second application of one command is refused
            stream, version = rows[-1][:2]
            requests.record(db, job.request_id, stream, version, positions[-1])
        for hook in self._hooks:
            hook(cur, job.events, positions)

    def durability(self) -> tuple[str, int]:
        """The writer connection's journal mode and ``synchronous`` level (diagnostics, benchmarks)."""
        self.check_writable()
        assert self._writer is not None
        with self._commit_lock:
            mode = self._writer.execute("PRAGMA journal_mode").fetchone()[0]
            sync = self._writer.execute("PRAGMA synchronous").fetchone()[0]
        return str(mode), int(sync)

    @property
    def inline_hooks(self) -> list[InlineHook]:
        return list(self._hooks)

    def close(self) -> None:
        with self._commit_lock:
            if self._writer is not None:
                self._writer.close()
        with self._reader_lock:
            self._reader.close()
        super().close()

    @contextmanager
    def write_transaction(self) -> Iterator[sqlite3.Cursor]:
        """One ``BEGIN IMMEDIATE`` transaction on the log file, for ``append_stored`` (imports, replays)."""
        self.check_writable()
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            with write_transaction(conn) as cur:
                yield cur
        finally:
            conn.close()

    def append_stored(self, rows: Sequence[StoredRow], *, check: Callable[[sqlite3.Cursor, int], None] | None = None
                      ) -> list[int]:
        """Append already-stored events after the head, with the inline hooks, in one transaction.

        ``check(cursor, head)`` runs first, in the same transaction (refuse what does not continue).
        """
        with self.write_transaction() as cur:
            head = log_head(cur)
            if check is not None:
                check(cur, head)
            return append_stored(cur, rows, head, self.inline_hooks, self.mapper)

    def read(self, work: Callable[[integrity.Sql], T]) -> T:
        conn = read_only_connection(self.path)
        try:
            conn.execute("BEGIN")
            try:
                return work(integrity.Sql(conn.cursor()))
            finally:
                conn.execute("COMMIT")
        finally:
            conn.close()

    def pull(self) -> int:
        return 0

    def upgrade_hashes(self, accept_unhashed: bool) -> int | None:
        """``integrity.upgrade`` in one write transaction; the number of events hashed."""
        with self.write_transaction() as cur:
            return _upgrade(integrity.Sql(cur), accept_unhashed)

    def follow(self, on_change: Callable[[], None]) -> None:
        return  # every append in any process runs the inline hooks: nothing to follow

    def verify(self, checkpoint: integrity.Checkpoint | None = None) -> integrity.VerifyReport:
        return verify_sqlite(self.path, checkpoint)


class _Append:
    """One operation waiting for a group commit."""

    __slots__ = ("done", "error", "events", "request_id", "stored")

    def __init__(self, events: Sequence[Any], stored: list[StoredEvent], request_id: str | None = None) -> None:
        self.events = events
        self.stored = stored
        self.request_id = request_id
        self.done = False
        self.error: BaseException | None = None


def _fail(group: list[_Append], error: BaseException) -> None:
    for job in group:
        job.error = error
        job.done = True


def _writer_connection(path: str, synchronous: str) -> sqlite3.Connection:
    """The embedded log's one writer connection: WAL, the chosen durability, a statement cache
    large enough for the read models' statements, a checkpoint every ~40 MB."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30, cached_statements=256)
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA wal_autocheckpoint=10000")
    conn.execute("PRAGMA temp_store=MEMORY")  # savepoints' sub-journals stay in memory
    return conn


MIRROR_DDL = (
    "CREATE TABLE IF NOT EXISTS stored_events (originator_id TEXT, originator_version INTEGER, topic TEXT, "
    "state BLOB, PRIMARY KEY (originator_id, originator_version))"
)


class PostgresLog(_AppLog):
    """A node of a log shared in PostgreSQL, mirrored into the local file ``path`` (see the module docstring)."""

    definite_failures = False  # the server may commit after the connection is gone

    inline = False
    cheap_conflicts = False  # a failed insert burns a bigserial position

    def __init__(self, settings: dict[str, str], path: str, *, create: bool = True, readonly: bool = False) -> None:
        """``create=False``: the log's tables must exist (they are not created); ``readonly``:
        appends are refused (the local mirror and read models, a cache, are still written)."""
        self.path = path
        self._settings = settings
        self.readonly = readonly
        self.where = f"{settings['POSTGRES_HOST']}:{settings['POSTGRES_PORT']}/{settings['POSTGRES_DBNAME']}"
        env = postgres_env(settings)
        if not create:
            env["CREATE_TABLE"] = "n"
        try:
            super().__init__(LedgerApplication(env=env))
            # The local file is a replica, rebuildable from the shared log: no fsync per batch.
            self._mirror = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            self._mirror.execute("PRAGMA synchronous=NORMAL")
            self._mirror.execute(MIRROR_DDL)
        except (sqlite3.Error, PersistenceError, OSError) as e:
            raise Unavailable(f"cannot open {self.where!r}: {e}") from e
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None
        self.check_schema()

    def add_inline_hook(self, hook: InlineHook) -> None:
        return  # other nodes append too: the read model catches up from the mirror instead

    def read(self, work: Callable[[integrity.Sql], T]) -> T:
        recorder: Any = self._app.recorder
        try:
            with recorder.datastore.transaction(commit=False) as curs:
                return work(integrity.Sql(curs, recorder.dialect))
        except PersistenceError as e:
            raise Unavailable(f"cannot reach the log at {self.where}: {e}") from e

    def upgrade_hashes(self, accept_unhashed: bool) -> int | None:
        """``integrity.upgrade`` in one transaction holding the events table's lock."""
        recorder: Any = self._app.recorder
        try:
            with recorder.datastore.transaction(commit=True) as curs:
                curs.execute(recorder.dialect.text("LOCK TABLE {stored_events} IN EXCLUSIVE MODE"))
                return _upgrade(integrity.Sql(curs, recorder.dialect), accept_unhashed)
        except PersistenceError as e:
            raise Unavailable(f"cannot reach the log at {self.where}: {e}") from e

    def pull(self, *, batch: int = BATCH) -> int:
        """Copy every log event after the mirror's head into the mirror; return how many.

        Each batch in one local transaction: an event is mirrored at most once (its position
        is the primary key), and a node that crashed resumes from what its file holds.
        """
        copied = 0
        with self._lock:
            while True:
                after = log_head(self._mirror)
                try:
                    notifications = self._app.recorder.select_notifications(
                        start=after, limit=batch, inclusive_of_start=False)
                except PersistenceError as e:
                    raise Unavailable(f"cannot reach the log at {self.where}: {e}") from e
                if not notifications:
                    return copied
                with write_transaction(self._mirror) as cur:
                    head = log_head(cur)  # another puller (another process) may have been first
                    rows = [(n.id, str(n.originator_id), n.originator_version, n.topic, bytes(n.state))
                            for n in notifications if n.id > head]
                    cur.executemany(
                        "INSERT INTO stored_events(rowid, originator_id, originator_version, topic, state) "
                        "VALUES (?,?,?,?,?)", rows)
                copied += len(rows)
                if len(notifications) < batch:
                    return copied

    def follow(self, on_change: Callable[[], None]) -> None:
        if self._follower is None:
            self._follower = threading.Thread(
                target=self._follow, args=(on_change,), name="ctrledger-follow", daemon=True)
            self._follower.start()

    def _follow(self, on_change: Callable[[], None]) -> None:
        """Background: wake on the log's NOTIFY (or every half second) and pull new events."""
        import psycopg

        from ..errors import StoreError

        recorder: Any = self._app.recorder
        env = self._settings
        conninfo = {
            "host": env.get("POSTGRES_HOST"), "port": env.get("POSTGRES_PORT"), "dbname": env.get("POSTGRES_DBNAME"),
            "user": env.get("POSTGRES_USER"), "password": env.get("POSTGRES_PASSWORD") or None,
            "connect_timeout": int(env.get("POSTGRES_CONNECT_TIMEOUT") or 5),
        }
        while not self._stop.is_set():
            try:
                with psycopg.connect(**conninfo, autocommit=True) as conn:  # type: ignore[arg-type]
                    conn.execute(f'LISTEN "{recorder.channel_name}"')
                    while not self._stop.is_set():
                        try:
                            on_change()
                        except StoreError:
                            pass  # unreachable for now: the next round retries
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            pass
            except Exception:  # noqa: BLE001 - connection lost: wait, reconnect, catch up
                self._stop.wait(1.0)

    def verify(self, checkpoint: integrity.Checkpoint | None = None) -> integrity.VerifyReport:
        from .postgres import verify_postgres

        return verify_postgres(self._settings, checkpoint)

    def close(self) -> None:
        self._stop.set()
        if self._follower is not None:
            self._follower.join(timeout=5)
        with self._lock:
            self._mirror.close()
        super().close()
