"""The SQLite event log: eventsourcing's recorder with durability settings and an inline hook.

``LedgerSQLiteFactory`` is eventsourcing's ``SQLiteFactory`` with two changes:

* every connection sets ``PRAGMA synchronous`` explicitly (``FULL`` by default, so an
  acknowledged write survives a crash or power loss; ``NORMAL`` is an explicit opt-in)
  and ``foreign_keys``/``busy_timeout``;
* its application recorder, ``LedgerSQLiteRecorder``, hashes and chains every event in the
  append transaction (``integrity.py``: tamper evidence), and runs *inline hooks* inside the
  append transaction, after the events are inserted. A hook receives the cursor, the
  domain events and their notification ids (log positions): the read models use it to
  apply the new events in the same transaction as the append, so a reader in any
  process sees every acknowledged write, and a failed hook rolls the append back.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from eventsourcing.persistence import InterfaceError, StoredEvent
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteDatastore,
    SQLiteFactory,
)
from eventsourcing.utils import Environment, EnvType

from . import integrity, requests

__all__ = [
    "InlineHook",
    "LedgerSQLiteFactory",
    "LedgerSQLiteRecorder",
    "SYNCHRONOUS_MODES",
    "lenient_text",
    "read_only_connection",
    "readonly_uri",
    "rollback",
    "store_problem",
    "verify_sqlite",
    "write_transaction",
]


def lenient_text(raw: bytes) -> str:
    """A ``text_factory`` for reading: text that is not UTF-8 (a hand-edited or damaged row)
    comes back with its bytes kept, so it is reported as changed, not as a driver error."""
    return raw.decode("utf-8", "surrogateescape")



@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Cursor]:
    """The one write-transaction helper: ``BEGIN IMMEDIATE`` on ``conn`` (autocommit mode);
    commit at the end of the block, roll back on any exception.

    IMMEDIATE, not SQLite's deferred default: a transaction that reads and then writes would
    otherwise fail at once with ``database is locked`` when another connection committed in
    between (the busy timeout does not help then).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn.cursor()
    except BaseException:
        rollback(conn)
        raise
    conn.execute("COMMIT")


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back ``conn``'s transaction if one is still open.

    SQLite may already have rolled it back itself (an interrupted statement, a full disk, an
    I/O error): a plain ``ROLLBACK`` would then raise "no transaction is active" and hide the
    exception that is being handled, a Ctrl-C included.
    """
    if conn.in_transaction:
        conn.execute("ROLLBACK")


# The tables every ctrledger SQLite store has: the log's and the read models' meta table.
_STORE_TABLES = ("stored_events", "ctrledger_meta")


def _file_uri(path: str, query: str) -> str:
    return "file:" + quote(os.path.abspath(path)) + "?" + query


def readonly_uri(path: str) -> str:
    """A ``file:`` URI that opens the SQLite file ``path`` read-only, for ``uri=True``.

    ``mode=ro`` where that can open the file (it sees concurrent writers; SQLite may create
    its ``-wal``/``-shm`` sidecar files when the directory is writable, as any reader does);
    on a read-only directory or mount, where nobody can write the file and SQLite cannot
    create its shared-memory file, ``immutable=1`` as well. Never writes the file itself.
    """
    uri = _file_uri(path, "mode=ro")
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return uri
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        if "unable to open" not in str(e) and "readonly" not in str(e) and "read-only" not in str(e):
            return uri  # not a question of permissions: let the caller report what is wrong
    return _file_uri(path, "mode=ro&immutable=1")


def store_problem(path: str) -> str | None:
    """Why the file ``path`` is not a ctrledger SQLite store (``"no such file"``, ``"a directory"``,
    the driver's ``"file is not a database"``, a missing table), or None if it is one.

    Reads it through a read-only connection: the file is left exactly as it was.
    """
    if not os.path.exists(path):
        return "no such file"
    if os.path.isdir(path):
        return "a directory"
    if not os.path.isfile(path):
        return "not a regular file"
    try:
        conn = sqlite3.connect(readonly_uri(path), uri=True, isolation_level=None)
        try:
            names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        return str(e)
    missing = [name for name in _STORE_TABLES if name not in names]
    if missing:
        return f"no table {', '.join(missing)}"
    return None


def read_only_connection(path: str, uri: str | None = None, *, shared: bool = False) -> sqlite3.Connection:
    """A read-only connection of its own to an SQLite file (the one setup every reader uses):
    autocommit (each statement, or an explicit ``BEGIN``, is one consistent read), a busy
    timeout, and lenient text. ``uri``: ``readonly_uri(path)`` as found before (finding it
    opens a connection and reads the schema: a reader that opens many keeps it). ``shared``:
    usable from any thread (one at a time: a pool of idle readers hands it on)."""
    conn = sqlite3.connect(uri or readonly_uri(path), uri=True, isolation_level=None, timeout=30,
                           check_same_thread=not shared)
    conn.text_factory = lenient_text
    return conn


def verify_sqlite(path: str, checkpoint: integrity.Checkpoint | None = None) -> integrity.VerifyReport:
    """Verify the log in an SQLite file, opened read-only; a report, never an exception."""
    from pathlib import Path

    problem = store_problem(path)
    if problem == "no such file" or not Path(path).is_file():
        return integrity.VerifyReport(False, 0, 0, "", (integrity.Problem(0, "unreadable", f"no such file: {path}"),))
    if problem is not None:
        found = integrity.Problem(0, "unreadable", f"{path}: not a ctrledger store ({problem})")
        return integrity.VerifyReport(False, 0, 0, "", (found,))
    try:
        conn = read_only_connection(path)
        try:
            return integrity.verify_database(conn, checkpoint)
        finally:
            conn.close()
    except sqlite3.Error as e:
        return integrity.VerifyReport(False, 0, 0, "", (integrity.Problem(0, "unreadable", f"{path}: {e}"),))


SYNCHRONOUS_MODES = ("FULL", "EXTRA", "NORMAL")

InlineHook = Callable[[sqlite3.Cursor, Sequence[Any], Sequence[int]], None]


class _Pool(SQLiteConnectionPool):
    synchronous = "FULL"

    def _create_connection(self) -> SQLiteConnection:
        # As eventsourcing's pool does, except for the statement cache: eventsourcing
        # passes cached_statements=True, i.e. a cache of ONE statement, so every write
        # re-prepared each of its statements. The inline read models run a dozen.
        try:
            raw = sqlite3.connect(
                database=self.db_name,
                uri=True,
                check_same_thread=False,
                isolation_level=None,
                cached_statements=256,
                timeout=self.lock_timeout or 5,
            )
        except (sqlite3.Error, TypeError) as e:
            raise InterfaceError(e) from e
        if not self.is_sqlite_memory_mode:
            # Switching the journal mode takes an exclusive lock: only when it is needed,
            # so processes opening the file together do not trip over each other (and
            # never on a read-only connection, which leaves the file as it is).
            journal = raw.execute("PRAGMA journal_mode").fetchone()[0].lower()
            if journal != "wal" and "mode=ro" not in self.db_name:
                raw.execute("PRAGMA journal_mode=WAL")
            self.is_journal_mode_wal = True
        raw.execute(f"PRAGMA synchronous={self.synchronous}")
        # Checkpoint the WAL every ~40 MB rather than every 4 MB: a write touches many
        # b-trees whose hot pages would otherwise be copied back every few dozen commits.
        raw.execute("PRAGMA wal_autocheckpoint=10000")
        raw.row_factory = sqlite3.Row
        return SQLiteConnection(sqlite_conn=raw, max_age=self.max_age)


class _Datastore(SQLiteDatastore):
    def __init__(self, db_name: str, *, synchronous: str, **kwargs: Any) -> None:
        super().__init__(db_name, **kwargs)
        pool = _Pool(db_name=db_name, lock_timeout=kwargs.get("lock_timeout"))
        pool.synchronous = synchronous
        self.pool = pool


class LedgerSQLiteRecorder(SQLiteApplicationRecorder):
    """Application recorder that runs inline hooks in the append transaction."""

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name)
        self.inline_hooks: list[InlineHook] = []

    def create_table(self) -> None:
        # BEGIN IMMEDIATE, not eventsourcing's deferred BEGIN: the statements read the schema
        # and then write (ledger_meta), and a deferred transaction whose snapshot another
        # process moved on fails at once with "database is locked" instead of waiting.
        with self.datastore.get_connection(commit=True) as conn:
            raw: sqlite3.Connection = conn._sqlite_conn
            with write_transaction(raw) as cur:
                for statement in self.create_table_statements:
                    cur.execute(statement)

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(),
                *map(integrity.SQLITE.text, (*integrity.CREATE_STATEMENTS, requests.CREATE_STATEMENT))]

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        *,
        inline_events: Sequence[Any] = (),
        request_id: str | None = None,
        **kwargs: Any,
    ) -> Sequence[int] | None:
        # Insert first: the INSERT takes SQLite's write lock before any hook reads,
        # so a deferred transaction never fails with SQLITE_BUSY_SNAPSHOT.
        positions = super()._insert_events(c, stored_events, **kwargs)
        assert positions is not None
        # Tamper evidence: hash and chain the events where their order is decided.
        integrity.append_hashes(
            integrity.Sql(c.sqlite_cursor),
            [(p, str(s.originator_id), s.originator_version, s.topic, s.state)
             for p, s in zip(positions, stored_events, strict=True)],
        )
        if request_id is not None:  # idempotency: a second application of one command is refused
            last = stored_events[-1]
            requests.record(integrity.Sql(c.sqlite_cursor), request_id, str(last.originator_id),
                            last.originator_version, positions[-1])
        if inline_events and self.inline_hooks:
            assert positions is not None and len(positions) == len(inline_events)
            for hook in self.inline_hooks:
                hook(c.sqlite_cursor, inline_events, positions)
        return positions

    def head(self) -> int:
        """The highest log position, 0 for an empty log."""
        return self.max_notification_id() or 0


class LedgerSQLiteFactory(SQLiteFactory):
    """eventsourcing SQLite factory with explicit durability and the inline recorder.

    Extra setting: ``SQLITE_SYNCHRONOUS`` (``FULL`` by default; ``EXTRA`` or ``NORMAL``).
    """

    SQLITE_SYNCHRONOUS = "SQLITE_SYNCHRONOUS"
    application_recorder_class = LedgerSQLiteRecorder

    def __init__(self, env: Environment | EnvType | None):
        super().__init__(env)
        synchronous = (self.env.get(self.SQLITE_SYNCHRONOUS) or "FULL").upper()
        if synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(
                f"SQLITE_SYNCHRONOUS must be one of {', '.join(SYNCHRONOUS_MODES)}, not {synchronous!r}"
            )
        old = self.datastore
        self.datastore = _Datastore(
            old.pool.db_name,
            synchronous=synchronous,
            lock_timeout=old.pool.lock_timeout,
            single_row_tracking=old.single_row_tracking,
            originator_id_type=old.originator_id_type,
        )
        old.close()
