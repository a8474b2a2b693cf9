"""The read model: the views' tables in the local SQLite file, with their connection,
their transactions, catch-up with the log, and the readers.

``ReadModel`` owns one connection to the local file (the embedded log's file, or a
shared log's node file) and a lock around it. Every write to the views' tables goes
through ``transaction()`` (``BEGIN IMMEDIATE``, commit, or roll back on any exception);
every streamed answer reads through a read-only connection of its own
(``reading()``), one consistent read per statement.

With an embedded log, the read model registers ``InlineRunner`` as the log's inline
hook: the views apply every append in its transaction, and a read needs no catch-up.
With a shared log, ``refresh()`` pulls the log into the local mirror and catches up
before each read, so a read sees every write acknowledged before it started, on any node.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from eventsourcing.persistence import Mapper, StoredEvent

from ..domain.model import Payload
from ..errors import FailedPrecondition, Unavailable
from ..persistence import integrity
from ..persistence.log import Log
from ..persistence.sqlite import lenient_text, read_only_connection, readonly_uri, write_transaction
from .bulk import catch_up_in_bulk
from .current import CurrentStateReader, CurrentStateView, from_micros
from .runner import InlineRunner, View, catch_up
from .schema import SCHEMA_VERSION, ensure_schema, schema_version
from .sqlfilter import register_functions
from .temporal import AuditView, TemporalReader, TemporalView

__all__ = ["ReadModel"]


_IDLE_READERS = 4  # idle read-only connections kept for streamed answers (``ReadModel.reading``)


class ReadModel:
    """The views of one local SQLite file (see the module docstring)."""

    def __init__(self, log: Log, *, history: bool = True) -> None:
        self.path = log.path
        self.log = log
        self.history = history
        self.views: list[View] = [CurrentStateView()]
        if history:
            self.views += [TemporalView(), AuditView()]
        # Read-only (an embedded log opened with mode="r"): the file is never written, so the
        # schema must be current and the views up to date already (``open`` checks).
        self.readonly = log.readonly and log.inline
        try:
            if self.readonly:
                self._conn = sqlite3.connect(
                    readonly_uri(self.path), uri=True, isolation_level=None, check_same_thread=False, timeout=30)
                self._check_schema()
            else:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                ensure_schema(self.path)
                self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        except (sqlite3.Error, OSError) as e:
            raise Unavailable(f"cannot open {self.path!r}: {e}") from e
        self._conn.text_factory = lenient_text  # damaged text is reported as such, not as a driver error
        if not log.inline:
            self._conn.execute("PRAGMA synchronous=NORMAL")  # a replica, rebuildable from the shared log
        self._lock = threading.Lock()
        self.current = CurrentStateReader(self._conn)
        self.past = TemporalReader(self._conn, self.spec_of)
        self._closed = False
        self._checked_at: int | None = None  # PRAGMA data_version when the views were last found current
        self._read_uri: str | None = None  # ``reading``'s URI, found once
        self._idle: list[sqlite3.Connection] = []  # readers handed back whole (``done_reading``)
        self._idle_lock = threading.Lock()
        log.add_inline_hook(InlineRunner(self.views, log.mapper))

    # -- lifecycle ------------------------------------------------------------------------------

    def open(self) -> None:
        """Bring every view up to the log (at open: a view may be new, or another handle lagged).

        Read-only: refuse views that are behind the log instead (they cannot be caught up).
        """
        if self.readonly:
            self.check_open()
            self._refuse_if_behind()
            return
        self.refresh(force=True)

    def _check_schema(self) -> None:
        found = schema_version(self._conn)
        if found != SCHEMA_VERSION:
            self._conn.close()
            newer = found > SCHEMA_VERSION
            raise FailedPrecondition(
                f"read-model schema version {found} in {self.path!r} is {'newer' if newer else 'older'} than this "
                f"ctrledger's ({SCHEMA_VERSION}) and the store is open read-only; "
                + ("upgrade ctrledger" if newer else "run ctrledger migrate first") + ": failed precondition"
            )

    def _behind(self, conn: sqlite3.Connection) -> tuple[int, int] | None:
        """(lowest tracked position, head) when a view is behind the log, else None."""
        names = [view.name for view in self.views]
        head, lowest, tracked = conn.execute(
            "SELECT (SELECT COALESCE(MAX(rowid), 0) FROM stored_events), MIN(position), COUNT(*) "
            f"FROM ctrledger_tracking WHERE view IN ({', '.join('?' * len(names))})",
            names,
        ).fetchone()
        through = self._through(conn)  # the views never apply an unhashed event (a finding for verify)
        if through is not None:
            head = min(head, through)
        if head and (tracked < len(names) or lowest < head):
            return int(lowest or 0), int(head)
        return None

    def _refuse_if_behind(self) -> None:
        with self.connection() as conn:
            behind = self._behind(conn)
        if behind is not None:
            raise self._behind_error(behind)

    def _behind_error(self, behind: tuple[int, int]) -> FailedPrecondition:
        return FailedPrecondition(
            f"the read models of {self.path!r} are behind its log (at position {behind[0]} of {behind[1]}) "
            "and the store is open read-only; open it for writing once (ctrledger migrate) to bring them "
            "up to date: failed precondition"
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        with self._lock:
            self._conn.close()

    def check_open(self) -> None:
        if self._closed:
            raise Unavailable("the store is closed")

    @property
    def schema_version(self) -> int:
        with self._lock:
            return schema_version(self._conn)

    # -- transactions and connections -------------------------------------------------------------

    def connection(self) -> _Held:
        """The read model's own connection, held exclusively for the block (for replay and tools).

        A plain context manager, not a generator: every get and list takes it."""
        return _Held(self)

    @contextmanager
    def synced(self) -> Iterator[sqlite3.Connection]:
        """``connection()``, after bringing the views up to the log's head (``refresh``)."""
        self.refresh()
        with self.connection() as conn:
            yield conn

    @property
    def mapper(self) -> Mapper[Any]:
        """The log's event mapper."""
        return self.log.mapper

    @property
    def embedded(self) -> bool:
        """Whether the log is the local file itself (an embedded log), not a shared log's mirror."""
        return self.log.inline

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction on the read model's connection (``BEGIN IMMEDIATE``; lock held)."""
        with self.connection() as conn:
            with write_transaction(conn) as cur:
                yield cur

    def reading(self) -> sqlite3.Connection:
        """A read-only connection of its own (SQL functions registered), for a streamed answer;
        hand it back with ``done_reading``. An idle one is reused: opening one costs more than
        a short answer (the connection, then its first statement parses the whole schema)."""
        self.check_open()
        with self._idle_lock:
            if self._idle:
                return self._idle.pop()
        if self._read_uri is None:
            self._read_uri = readonly_uri(self.path)  # the file's read-only mode does not change while open
        conn = read_only_connection(self.path, self._read_uri, shared=True)
        register_functions(conn)
        return conn

    def done_reading(self, conn: sqlite3.Connection, *, finished: bool) -> None:
        """``conn`` (from ``reading``) is no longer used. Kept for the next reader only if its
        answer was read to the end (``finished``): every statement done and no transaction
        open, so it holds no snapshot; one left half-read, or failed, is closed."""
        if finished and not conn.in_transaction:
            with self._idle_lock:
                if not self._closed and len(self._idle) < _IDLE_READERS:
                    self._idle.append(conn)
                    return
        conn.close()

    @contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        """``reading`` for a block: handed back when it ends (kept only if it ends normally)."""
        conn = self.reading()
        finished = False
        try:
            yield conn
            finished = True
        finally:
            self.done_reading(conn, finished=finished)

    # -- catch-up ---------------------------------------------------------------------------------

    def refresh(self, *, force: bool = False) -> None:
        """Make the views current with the log before a read (see the module docstring).

        An embedded log's appends keep the views current, so only ``force`` (at open) catches
        up; a shared log is pulled into the mirror and the views catch up every time.
        """
        self.check_open()
        if self.log.inline and (self.readonly or not force):
            return
        self.log.pull()
        with self.connection() as conn:
            self._catch_up(conn)

    def catch_up_if_behind(self) -> None:
        """Another handle on this file may have written with history=False, leaving the
        history views behind the log: bring them up to date before answering from them."""
        if not self.log.inline or not self.history:
            return
        with self.connection() as conn:
            # Nothing committed by another connection since the last check: nothing can be behind.
            # (``data_version`` moves with every other connection's commit, this process's writer's
            # included, and not with this connection's own, i.e. the catch-up's.)
            seen = conn.execute("PRAGMA data_version").fetchone()[0]
            if seen == self._checked_at:
                return
            if self.readonly:
                behind = self._behind(conn)
                if behind is not None:
                    raise self._behind_error(behind)
            elif self._behind(conn) is not None:
                self._catch_up(conn)
            self._checked_at = seen

    def _catch_up(self, conn: sqlite3.Connection) -> None:
        """A view far behind the log is built anew in bulk; then what any view lacks, event by event."""
        through = self._through(conn)
        catch_up_in_bulk(conn, self.views, self.log.mapper, through=through)
        catch_up(conn, self.views, self.log.mapper, through=through)

    def _through(self, conn: sqlite3.Connection) -> int | None:
        """The last position the views may apply: an embedded log's last hashed event."""
        if not self.log.inline:
            return None
        return integrity.hashed_head(integrity.Sql(conn.cursor()))[1]

    # -- readers ---------------------------------------------------------------------------------------

    def position(self) -> int:
        with self.connection():
            return self.current.position()

    def last_recorded(self) -> datetime | None:
        with self.connection() as conn:
            row = conn.execute("SELECT recorded_at FROM audit ORDER BY position DESC LIMIT 1").fetchone()
        return None if row is None else from_micros(row[0])

    def spec_of(self, topic: str, state: bytes) -> Payload:
        """The spec of a past version, read by reference from its stored event."""
        event = self.log.mapper.to_domain_event(StoredEvent("", 0, topic, state))
        spec: Payload = event.spec  # type: ignore[attr-defined]
        return spec


class _Held:
    """``ReadModel.connection()``: its lock held for the block, the store open at both ends."""

    __slots__ = ("_rm",)

    def __init__(self, rm: ReadModel) -> None:
        self._rm = rm

    def __enter__(self) -> sqlite3.Connection:
        rm = self._rm
        rm.check_open()
        rm._lock.acquire()
        if rm._closed:
            rm._lock.release()
            raise Unavailable("the store is closed")
        return rm._conn

    def __exit__(self, *exc: object) -> None:
        self._rm._lock.release()
