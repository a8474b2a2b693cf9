"""The ``Store``: containerd's ``containers.Store`` contract over an event log.

==========================================================  ==========================================
method                                                      errors
==========================================================  ==========================================
``create(container, *, namespace, actor, reason)``          InvalidArgument (bad namespace or record),
                                                            AlreadyExists
``get(id, *, namespace, as_of=None)``                       NotFound (also: did not exist at as_of),
                                                            InvalidArgument (a bad or future as_of)
``list(*filters, namespace, as_of=None)``                   InvalidArgument (bad filter or as_of)
``update(container, *fieldpaths, namespace, actor,          InvalidArgument (no ID, immutable field,
reason, expected_version)``                                 bad path, invalid result), NotFound,
                                                            Conflict
``delete(id, *, namespace, actor, reason,                   NotFound, Conflict
expected_version)``
``history`` / ``diff`` / ``changes`` / ``audit``            NotFound (a name that never existed),
                                                            InvalidArgument (bad points, kinds),
                                                            FailedPrecondition (history=False)
``checkpoint`` / ``prove`` / ``prove_consistency``          InvalidArgument (a position not logged)
==========================================================  ==========================================

Every method may also raise ``FailedPrecondition`` (no namespace) and ``Unavailable``
(the storage cannot be reached, or a write kept losing races; nothing was written).

Every method checks the namespace first (``None`` or ``""``: FailedPrecondition;
malformed: InvalidArgument), except ``update``, which first requires
``container.id`` (as containerd's service does). Get, Update and Delete never
validate the ID: a malformed one is simply not found.

Writes append events to the log; the read model is updated in the same
transaction, so every read, in any process, sees every write acknowledged before
it started. Two writers racing on one container: with ``expected_version`` the
loser gets ``Conflict``; without it, the loser retries on the new state (last
writer wins, as in containerd) and no event is lost. A create races through the
log's uniqueness of (stream, version): exactly one create of a name succeeds.
"""

from __future__ import annotations

import copy
import getpass
import os
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, TypeVar

from eventsourcing.persistence import IntegrityError, Mapper, PersistenceError, StoredEvent

from .domain.container import EVENT_CLASSES, ContainerAggregate, stream_id
from .domain.fieldpaths import merge_update
from .domain.filters import match_fields, parse_filters
from .domain.history import (
    AuditRecord,
    Change,
    Diff,
    HistoryEntry,
    Point,
    Position,
    Version,
    diff_containers,
    event_changes,
    parse_point,
)
from .domain.model import Audit, Container, Payload
from .domain.validation import check_record, drop_empty_labels, go_quote, record_problem, validate_namespace
from .errors import AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound, StoreError, Unavailable
from .persistence import integrity
from .persistence.application import LedgerApplication, postgres_env, sqlite_env
from .persistence.integrity import LOG_SCHEMA_VERSION, Checkpoint, ConsistencyProof, InclusionProof, VerifyReport
from .persistence.postgres import default_readmodel_path, parse_url, verify_postgres
from .persistence.sqlite import SYNCHRONOUS_MODES, lenient_text
from .projections.current import CurrentStateReader, CurrentStateView, from_micros
from .projections.replica import ensure_mirror, pull
from .projections.runner import InlineRunner, View, catch_up, read_stream
from .projections.schema import ensure_schema, schema_version
from .projections.sqlfilter import register_functions
from .projections.temporal import AuditView, TemporalReader, TemporalView

__all__ = ["Store", "import_", "migrate", "open", "verify"]

_MAX_RETRIES = 100
T = TypeVar("T")
_CACHE_SIZE = 4096  # aggregates kept for optimistic writes
Clock = Callable[[], datetime]


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database (containers, CI): fall back
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def _time_ordered_uuid() -> str:
    """A UUIDv7 (RFC 9562): milliseconds since the epoch, then random bits.

    Correlation ids are indexed in the audit model; ids that grow with time land at the
    end of that index instead of on a random page, which a durable commit pays for.
    """
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | rand
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Store:
    """An embedded ctrledger store in one SQLite file (see the module docstring).

    Use as a context manager, or call ``close()``.
    """

    def __init__(
        self,
        target: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        clock: Clock | None = None,
        client: str = "library",
        actor: str | None = None,
        history: bool = True,
        readmodel: str | os.PathLike[str] | None = None,
        follow: bool = True,
        correlation_ids: Callable[[], str] | None = None,
    ) -> None:
        text = os.fspath(target)
        self._clock: Clock = clock or _utcnow
        self._new_correlation_id: Callable[[], str] = correlation_ids or _time_ordered_uuid
        self._client = client
        self._actor = actor or _default_actor()
        if not isinstance(synchronous, str) or synchronous.upper() not in SYNCHRONOUS_MODES:
            raise InvalidArgument(
                f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, not {synchronous!r}: invalid argument"
            )
        self.url: str | None = None
        if text.startswith(("postgresql://", "postgres://")):
            try:
                settings, options = parse_url(text)
            except ValueError as e:
                raise InvalidArgument(f"{e}: invalid argument") from None
            self.url = text
            self.path = os.fspath(
                readmodel or options.get("readmodel") or os.environ.get("CTRLEDGER_READMODEL")
                or default_readmodel_path(settings)
            )
            env = postgres_env(settings)
            where = f"{settings['POSTGRES_HOST']}:{settings['POSTGRES_PORT']}/{settings['POSTGRES_DBNAME']}"
        else:
            self.path = str(Path(text))
            env = sqlite_env(self.path, synchronous=synchronous.upper())
            where = self.path
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            ensure_schema(self.path)
            self._app = LedgerApplication(env=env)
        except (sqlite3.Error, PersistenceError, OSError) as e:
            raise Unavailable(f"cannot open {where!r}: {e}") from e
        self._history = history
        self._views: list[View] = [CurrentStateView()]
        if history:
            self._views += [TemporalView(), AuditView()]
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._conn.text_factory = lenient_text  # damaged text is reported as such, not as a driver error
        self._lock = threading.Lock()
        self._reader = CurrentStateReader(self._conn)
        self._past = TemporalReader(self._conn, self._spec_of)
        self._closed = False
        self._cache: OrderedDict[str, ContainerAggregate] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None
        self._check_log_schema()
        if self.url is None:
            self._app.ledger_recorder.inline_hooks.append(InlineRunner(self._views, self._app.mapper))
            with self._lock:
                self._write(integrity.upgrade)  # a log written without hashes is hashed once, and that recorded
                catch_up(self._conn, self._views, self._app.mapper)
        else:
            # The local file is a replica, rebuildable from the shared log: no fsync per batch.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            ensure_mirror(self._conn)
            self._sync()
            if follow:
                self._follower = threading.Thread(target=self._follow, name="ctrledger-follow", daemon=True)
                self._follower.start()

    # -- lifecycle ----------------------------------------------------------

    def close(self) -> None:
        """Release the store's connections (and stop following a shared log). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._follower is not None:
            self._follower.join(timeout=5)
        with self._lock:
            self._conn.close()
        self._app.close()

    # -- a shared log -----------------------------------------------------------

    def _sync(self) -> None:
        """Bring the local read models up to the shared log's head (no-op for an embedded log).

        Called before every read, so a read sees every write acknowledged before it
        started, on any node.
        """
        self._check_open()
        if self.url is None:
            return
        with self._lock:
            self._check_open()
            try:
                pull(self._conn, self._select_after)
                catch_up(self._conn, self._views, self._app.mapper)
            except PersistenceError as e:
                raise Unavailable(f"cannot reach the log at {self._where()}: {e}") from e

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("the store is closed")

    def _select_after(self, after: int, limit: int) -> Sequence[Any]:
        return self._app.recorder.select_notifications(start=after, limit=limit, inclusive_of_start=False)

    def _follow(self) -> None:
        """Background: wake on the log's NOTIFY (or every half second) and pull new events."""
        import psycopg

        recorder: Any = self._app.recorder
        while not self._stop.is_set():
            try:
                with psycopg.connect(**_conninfo(self._app.env), autocommit=True) as conn:
                    conn.execute(f'LISTEN "{recorder.channel_name}"')
                    while not self._stop.is_set():
                        try:
                            self._sync()
                        except StoreError:
                            pass  # unreachable for now: the next round retries
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            pass
            except Exception:  # noqa: BLE001 - connection lost: wait, reconnect, catch up
                self._stop.wait(1.0)

    def _check_log_schema(self) -> None:
        found = self._read(lambda db: db.one("SELECT value FROM {ledger_meta} WHERE key='log_schema'"))
        version = int(found[0]) if found else 0
        if version > LOG_SCHEMA_VERSION:
            raise FailedPrecondition(
                f"the log at {self._where()} has schema version {version}, newer than this ctrledger "
                f"understands ({LOG_SCHEMA_VERSION}); upgrade ctrledger: failed precondition"
            )

    def _where(self) -> str:
        if self.url is None:
            return self.path
        settings, _ = parse_url(self.url)
        return f"{settings['POSTGRES_HOST']}:{settings['POSTGRES_PORT']}/{settings['POSTGRES_DBNAME']}"

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ctrledger.Store {self.path!r}>"

    @property
    def mapper(self) -> Mapper[Any]:
        """The log's event mapper (for replay and tools; not needed by most callers)."""
        return self._app.mapper

    @property
    def views(self) -> list[View]:
        """The read models this store keeps (for replay and tools)."""
        return list(self._views)

    @contextmanager
    def read_model(self) -> Iterator[sqlite3.Connection]:
        """The read model's connection (caught up with the log), held exclusively for the block.

        For replay and tools.
        """
        self._sync()
        with self._lock:
            yield self._conn

    # -- queries --------------------------------------------------------------

    def get(
        self, id: str, *, namespace: str | None = "default", as_of: Point | None = None  # noqa: A002
    ) -> Container:
        """The container ``id`` in ``namespace``, now or as it was at ``as_of``.

        ``as_of`` is an aware datetime or ISO-8601 string, a ``Version`` of the
        container's stream, or a global log ``Position``. ``NotFound`` if it does not
        exist (or did not exist at that point); ``InvalidArgument`` for a point in the future.
        """
        ns = validate_namespace(namespace)
        self._sync()
        if as_of is None:
            with self._lock:
                found = self._reader.get(ns, id) if isinstance(id, str) else None
            if found is None:
                raise NotFound(f"container {go_quote(str(id))} in namespace {go_quote(ns)}: not found")
            return found
        point = self._point(as_of, ns, id)
        with self._lock:
            found = self._past.get_at(ns, id, point) if isinstance(id, str) else None
        if found is None:
            raise NotFound(
                f"container {go_quote(str(id))} in namespace {go_quote(ns)} did not exist at "
                f"{_describe(point)}: not found"
            )
        return found

    def list(
        self, *filters: str, namespace: str | None = "default", as_of: Point | None = None
    ) -> list[Container]:
        """The containers of ``namespace`` matching any of ``filters``, sorted by ID bytewise.

        No filters, or any filter that is ``""``, matches everything. With ``as_of``
        (a time or a ``Position``), the containers that existed then, as they were then.
        """
        ns = validate_namespace(namespace)
        flt = parse_filters(filters)
        self._sync()
        if as_of is None:
            with self._lock:
                return self._reader.list(ns, flt)
        point = self._point(as_of, ns, None)
        if isinstance(point, Version):
            raise InvalidArgument("list as_of takes a time or a Position; a Version belongs to one container: "
                                  "invalid argument")
        with self._lock:
            return self._past.list_at(ns, flt, point)

    def scan(
        self, *filters: str, namespace: str | None = "default", as_of: Point | None = None
    ) -> Iterator[Container]:
        """``list``, streamed: the same records in the same order, from one consistent read,
        one at a time, so a namespace of any size never sits in memory at once."""
        ns = validate_namespace(namespace)
        flt = parse_filters(filters)
        self._sync()
        point = None if as_of is None else self._point(as_of, ns, None)
        if isinstance(point, Version):
            raise InvalidArgument("list as_of takes a time or a Position; a Version belongs to one container: "
                                  "invalid argument")
        conn = self._stream_connection()
        if point is None:
            return _closing(CurrentStateReader(conn).scan(ns, flt), conn)
        return _closing(TemporalReader(conn, self._spec_of).scan_at(ns, flt, point), conn)

    # -- history --------------------------------------------------------------

    def history(self, id: str, *, namespace: str | None = "default") -> Iterator[HistoryEntry]:  # noqa: A002
        """Every change to the name ``id``, across incarnations, oldest first (streamed).

        ``NotFound`` if the name never existed in the namespace.
        """
        ns = validate_namespace(namespace)
        self._sync()
        if not isinstance(id, str) or self._stream_version(ns, id) == 0:
            raise NotFound(f"container {go_quote(str(id))} in namespace {go_quote(ns)}: not found")
        return self._history_entries(ns, id)

    def _history_entries(self, ns: str, cid: str) -> Iterator[HistoryEntry]:
        conn = self._stream_connection()
        try:
            agg: ContainerAggregate | None = None
            for position, event in read_stream(conn, self._app.mapper, stream_id(ns, cid)):
                changes = event_changes(event, agg)
                agg = event.mutate(agg)
                assert agg is not None
                a = event.audit
                yield HistoryEntry(
                    namespace=ns, id=cid, version=event.originator_version, incarnation=agg.incarnation,
                    position=position, kind=type(event).__name__, recorded_at=event.timestamp,
                    actor=a.actor, reason=a.reason, correlation_id=a.correlation_id,
                    fieldpaths=a.fieldpaths, client=a.client, changes=changes,
                )
        finally:
            conn.close()

    def diff(
        self, id: str, *, namespace: str | None = "default", since: Point, until: Point | None = None  # noqa: A002
    ) -> Diff:
        """One container between two points (``until`` defaults to now)."""
        ns = validate_namespace(namespace)
        self._sync()
        if not isinstance(id, str) or self._stream_version(ns, id) == 0:
            raise NotFound(f"container {go_quote(str(id))} in namespace {go_quote(ns)}: not found")
        before = self._state_at(ns, id, self._point(since, ns, id, "since"))
        after = self._state_at(ns, id, self._point(until, ns, id, "until")) if until is not None else (
            self._current_or_none(ns, id))
        return Diff(ns, id, before, after, tuple(diff_containers(before, after)))

    def changes(
        self,
        *,
        namespace: str | None = "default",
        since: Point,
        until: Point | None = None,
        filters: Sequence[str] = (),
    ) -> Iterator[Change]:
        """Every container of ``namespace`` that changed between ``since`` and ``until``, by ID.

        With ``filters``, only containers that matched them at either end. Streamed.
        """
        ns = validate_namespace(namespace)
        flt = parse_filters(list(filters)) if filters else None
        self._sync()
        start = self._point(since, ns, None, "since")
        end = self._point(until, ns, None, "until") if until is not None else Position(self._head())
        if isinstance(start, Version) or isinstance(end, Version):
            raise InvalidArgument("changes takes times or Positions, not Versions: invalid argument")
        with self._lock:
            ids = self._past.changed_ids(ns, start, end)
        return self._change_records(ns, ids, start, end, flt)

    def _change_records(
        self, ns: str, ids: Sequence[str], start: datetime | Position, end: datetime | Position, flt: Any
    ) -> Iterator[Change]:
        for cid in ids:
            with self._lock:
                before = self._past.get_at(ns, cid, start)
                after = self._past.get_at(ns, cid, end)
            if flt is not None and not any(
                c is not None and match_fields(
                    flt, id=c.id, image=c.image, runtime_name=c.runtime.name, labels=c.labels)
                for c in (before, after)
            ):
                continue
            d = Diff(ns, cid, before, after, tuple(diff_containers(before, after)))
            if d.status in ("unchanged", "absent"):
                continue
            yield Change(ns, cid, d.status, before, after, d.changes)

    def audit(
        self,
        *,
        actor: str | Sequence[str] | None = None,
        since: Point | None = None,
        until: Point | None = None,
        kinds: Sequence[str] | None = None,
        namespace: str | None = None,
        id: str | None = None,  # noqa: A002
        correlation_id: str | None = None,
        client: str | None = None,
        reason: str | None = None,
    ) -> Iterator[AuditRecord]:
        """Who did what, when and why, in log order (streamed). ``namespace=None``: all namespaces.

        Every criterion given must hold; ``since``/``until`` are times (inclusive).
        """
        if namespace is not None:
            validate_namespace(namespace)
        self._require_history()
        self._sync()
        known = {cls.__name__ for cls in EVENT_CLASSES}
        if kinds is not None:
            unknown = [k for k in kinds if k not in known]
            if unknown:
                raise InvalidArgument(
                    f"unknown event kind(s) {', '.join(map(repr, unknown))}; known: "
                    f"{', '.join(sorted(known))}: invalid argument"
                )
        times = []
        for name, p in (("since", since), ("until", until)):
            parsed = None if p is None else parse_point(p, name)
            if parsed is not None and not isinstance(parsed, datetime):
                raise InvalidArgument(f"audit {name} must be a time: invalid argument")
            times.append(parsed)
        actors = [actor] if isinstance(actor, str) else (list(actor) if actor is not None else None)
        conn = self._stream_connection()
        reader = TemporalReader(conn, self._spec_of)
        rows = reader.audit(
            namespace=namespace, container_id=id, actors=actors, kinds=list(kinds) if kinds else None,
            since=times[0], until=times[1], correlation_id=correlation_id, client=client, reason=reason,
        )
        return _closing(rows, conn)

    # -- replay (ctrledger.replay does the work) -----------------------------------

    def digest(self) -> str:
        """A SHA-256 of every read model in a canonical order: two stores that saw the same
        log have the same digest."""
        from .replay import digest

        self._sync()
        if self.url is None and self._history:
            self._catch_up_if_behind()
        return digest(self)

    def verify_projections(self) -> Any:
        """Rebuild the read models into a scratch file and compare digests with the live ones."""
        from .replay import verify_projections

        self._sync()
        if self.url is None and self._history:
            self._catch_up_if_behind()
        return verify_projections(self)

    def export(
        self, path: str | os.PathLike[str], *, since: Any = None, until: Any = None,
        namespaces: Sequence[str] | None = None, progress: Any = None,
    ) -> Any:
        """Write the log (or a range of it) to a portable archive at ``path``."""
        from .replay import export

        self._sync()
        return export(self, path, since=since, until=until, namespaces=namespaces, progress=progress)

    def rebuild(self, progress: Any = None) -> int:
        """Rebuild every read model from the log, swapped in atomically; returns the events read."""
        from .replay import rebuild

        self._sync()
        return rebuild(self, progress)

    def replay_to(self, path: str | os.PathLike[str], *, as_of: Any) -> Path:
        """A new SQLite store at ``path``: this one as of ``as_of`` (a time or a Position)."""
        from .replay import replay_to

        self._sync()
        return replay_to(self, path, as_of=as_of)

    # -- tamper evidence ----------------------------------------------------------

    def checkpoint(self, *, sign_with: Any = None) -> Checkpoint:
        """A record of the whole log now (size, root hash, chain hash, time) to keep elsewhere.

        ``sign_with``: an Ed25519 private key (``cryptography``) to sign it with.
        """
        cp = self._read(lambda db: integrity.make_checkpoint(db, self._clock()))
        return cp.sign(sign_with) if sign_with is not None else cp

    def prove(self, position: int, *, checkpoint: Checkpoint | None = None) -> InclusionProof:
        """The inclusion proof of the event at ``position`` in the log as of ``checkpoint`` (default: now)."""
        size = self._hashed_size()
        if checkpoint is not None:
            self._check_same_log(checkpoint)
            if checkpoint.size > size:
                raise InvalidArgument(
                    f"the checkpoint covers {checkpoint.size} events, more than this log's {size}: invalid argument"
                )
            size = checkpoint.size
        if not isinstance(position, int) or not 1 <= position:
            raise InvalidArgument(f"position {position!r} is not in a log of {size} events: invalid argument")
        try:
            return self._read(lambda db: integrity.prove_inclusion(db, position, size))
        except LookupError as e:
            raise InvalidArgument(f"{e}: invalid argument") from None

    def prove_consistency(self, old: Checkpoint, new: Checkpoint | None = None) -> ConsistencyProof:
        """Proof that the log at ``old`` is a prefix of the log at ``new`` (default: now)."""
        self._check_same_log(old)
        if new is not None:
            self._check_same_log(new)
        new_size = new.size if new is not None else self._hashed_size()
        if new_size > self._hashed_size():
            raise InvalidArgument(f"the checkpoint covers {new_size} events, more than this log's: invalid argument")
        if old.size > new_size:
            raise InvalidArgument(f"checkpoint of {old.size} events is newer than {new_size}: invalid argument")
        return self._read(lambda db: integrity.prove_consistency(db, old.size, new_size))

    def _check_same_log(self, checkpoint: Checkpoint) -> None:
        log_id = self._read(lambda db: db.one("SELECT value FROM {ledger_meta} WHERE key='log_id'"))
        if log_id is None or checkpoint.log_id != log_id[0]:
            raise InvalidArgument("the checkpoint is of another log: invalid argument")

    def _hashed_size(self) -> int:
        return self._read(lambda db: integrity.hashed_head(db)[0])

    def _read(self, work: Callable[[integrity.Sql], T]) -> T:
        """Run ``work`` in one read transaction on the log (a connection of its own)."""
        self._check_open()
        if self.url is not None:
            recorder: Any = self._app.recorder
            with recorder.datastore.transaction(commit=False) as curs:
                return work(integrity.Sql(curs, recorder.dialect))
        conn = self._stream_connection()
        try:
            conn.execute("BEGIN")
            try:
                return work(integrity.Sql(conn.cursor()))
            finally:
                conn.execute("COMMIT")
        finally:
            conn.close()

    def _write(self, work: Callable[[integrity.Sql], T]) -> T:
        """Run ``work`` in one write transaction on the store's own connection (lock held)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(integrity.Sql(self._conn.cursor()))
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return result

    # -- points -----------------------------------------------------------------

    def _require_history(self) -> None:
        if not self._history:
            raise FailedPrecondition(
                "this store was opened with history=False; open it with history=True to query the past: "
                "failed precondition"
            )
        if self.url is None:
            self._catch_up_if_behind()

    def _catch_up_if_behind(self) -> None:
        """Another handle on this file may have written with history=False, leaving the
        history views behind the log: bring them up to date before answering from them."""
        names = [view.name for view in self._views]
        with self._lock:
            head, lowest, tracked = self._conn.execute(
                "SELECT (SELECT COALESCE(MAX(rowid), 0) FROM stored_events), MIN(position), COUNT(*) "
                f"FROM ctrledger_tracking WHERE view IN ({', '.join('?' * len(names))})",
                names,
            ).fetchone()
            if head and (tracked < len(names) or lowest < head):
                catch_up(self._conn, self._views, self._app.mapper)

    def _last_recorded(self) -> datetime | None:
        with self._lock:
            row = self._conn.execute("SELECT recorded_at FROM audit ORDER BY position DESC LIMIT 1").fetchone()
        return None if row is None else from_micros(row[0])

    def _spec_of(self, topic: str, state: bytes) -> Payload:
        event = self._app.mapper.to_domain_event(StoredEvent("", 0, topic, state))
        spec: Payload = event.spec  # type: ignore[attr-defined]
        return spec

    def _head(self) -> int:
        return self._app.head()

    def _stream_version(self, ns: str, cid: str) -> int:
        self._require_history()
        with self._lock:
            return self._past.stream_version(ns, cid)

    def _point(
        self, point: object, ns: str, cid: object, name: str = "as_of"
    ) -> datetime | Version | Position:
        self._require_history()
        parsed = parse_point(point, name)
        if isinstance(parsed, datetime):
            # "now" is the clock, or the newest recorded time if that is later: the store
            # moves every stream's time strictly forward, even past a clock that stalled.
            now = max(self._clock(), self._last_recorded() or self._clock())
            if parsed > now:
                raise InvalidArgument(f"{name} {_describe(parsed)} is in the future: invalid argument")
        elif isinstance(parsed, Position):
            head = self._head()
            if parsed.number > head:
                raise InvalidArgument(
                    f"{name} position {parsed.number} is in the future: the log's head is {head}: invalid argument"
                )
        else:
            if cid is None:
                return parsed
            current = self._stream_version(ns, str(cid))
            if current == 0:
                raise NotFound(f"container {go_quote(str(cid))} in namespace {go_quote(ns)}: not found")
            if parsed.number > current:
                raise InvalidArgument(
                    f"{name} version {parsed.number} is in the future: {go_quote(str(cid))} is at version "
                    f"{current}: invalid argument"
                )
        return parsed

    def _state_at(self, ns: str, cid: str, point: datetime | Version | Position) -> Container | None:
        with self._lock:
            return self._past.get_at(ns, cid, point)

    def _current_or_none(self, ns: str, cid: str) -> Container | None:
        with self._lock:
            return self._reader.get(ns, cid)

    def _stream_connection(self) -> sqlite3.Connection:
        """A connection of its own for a streamed answer (one consistent read per statement)."""
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None, timeout=30)
        conn.text_factory = lenient_text
        register_functions(conn)
        return conn

    @property
    def position(self) -> int:
        """The log position the read models have applied (after catching up with the log's head)."""
        self._sync()
        with self._lock:
            return self._reader.position()

    # -- commands -------------------------------------------------------------

    def create(
        self,
        container: Container,
        *,
        namespace: str | None = "default",
        actor: str | None = None,
        reason: str | None = None,
        correlation_id: str | None = None,
    ) -> Container:
        """Create ``container`` (timestamps and version are set by the store).

        Labels with an empty value are dropped. A deleted name can be created
        again: it continues its stream as a new incarnation.
        """
        ns = validate_namespace(namespace)
        if not isinstance(container, Container):
            raise InvalidArgument(
                f"create container failed validation: expected a Container, not "
                f"{type(container).__name__}: invalid argument"
            )
        self._check_open()
        check_record(container, "create container failed validation", empty_label_key=False)
        write_problem = record_problem(container)  # D2: after the existence check, as in containerd
        record = _stored_form(container)
        audit = self._audit(actor, reason, correlation_id, ())
        stream = stream_id(ns, record.id)
        # Optimistic first try: most creates are of new names, so skip the read and
        # let the log's (stream, version) uniqueness tell us if the name was taken.
        now = self._clock()  # one time per operation, whatever the retries
        if self.url is None and write_problem is None:
            # Embedded log: a failed insert costs nothing, so try the common case (a new name)
            # without reading. A shared PostgreSQL log would burn a position on the failure.
            first = ContainerAggregate.create(ns, record, audit, now)
            if self._append(first):
                return first.to_container()
        for _ in range(_MAX_RETRIES):
            agg = self._load(stream, fresh=True)
            if agg is not None and not agg.deleted:
                raise AlreadyExists(f"container {go_quote(record.id)}: already exists")
            if write_problem is not None:
                raise InvalidArgument(f"create container failed validation: {write_problem}: invalid argument")
            if agg is None:
                agg = ContainerAggregate.create(ns, record, audit, now)
            else:
                agg.recreate(record, audit, now)
            if self._append(agg):
                return agg.to_container()
        raise Unavailable(f"create of {go_quote(record.id)} kept losing races; try again")

    def update(
        self,
        container: Container,
        *fieldpaths: str,
        namespace: str | None = "default",
        actor: str | None = None,
        reason: str | None = None,
        expected_version: int | None = None,
        correlation_id: str | None = None,
    ) -> Container:
        """Update the container ``container.id`` from ``container`` along ``fieldpaths``.

        No field paths is a full replace (containerd semantics; see
        ``ctrledger.domain.fieldpaths``). Every successful update moves
        ``updated_at``, even when nothing changed. Returns the updated record.
        """
        if not isinstance(container, Container):
            raise InvalidArgument(f"expected a Container, not {type(container).__name__}: invalid argument")
        if not container.id:
            raise InvalidArgument("Container.ID required")
        ns = validate_namespace(namespace)
        audit = self._audit(actor, reason, correlation_id, tuple(fieldpaths))
        now = self._clock()

        def change(agg: ContainerAggregate) -> None:
            merged = merge_update(agg.to_container(), container, fieldpaths)
            agg.change_to(merged, audit, now)

        return self._modify(ns, container.id, "update", expected_version, change).to_container()

    def delete(
        self,
        id: str,  # noqa: A002
        *,
        namespace: str | None = "default",
        actor: str | None = None,
        reason: str | None = None,
        expected_version: int | None = None,
        correlation_id: str | None = None,
    ) -> None:
        """Delete the container ``id``. Its history stays in the log."""
        ns = validate_namespace(namespace)
        audit = self._audit(actor, reason, correlation_id, ())
        now = self._clock()
        self._modify(ns, id, "delete", expected_version, lambda agg: agg.delete(audit, now))

    # -- internals ------------------------------------------------------------

    def _audit(
        self, actor: str | None, reason: str | None, correlation_id: str | None, paths: tuple[str, ...]
    ) -> Audit:
        for name, value in (("actor", actor), ("reason", reason), ("correlation_id", correlation_id)):
            if value is not None and not isinstance(value, str):
                raise InvalidArgument(f"{name} must be a string, not {type(value).__name__}: invalid argument")
        return Audit(
            actor=actor or self._actor,
            reason=reason or "",
            correlation_id=correlation_id or self._new_correlation_id(),
            fieldpaths=paths,
            client=self._client,
        )

    def _load(self, stream: str, *, fresh: bool) -> ContainerAggregate | None:
        """The stream's aggregate: a copy of the cached one, or (``fresh``) read from the log."""
        if not fresh:
            with self._cache_lock:
                cached = self._cache.get(stream)
                if cached is not None:
                    self._cache.move_to_end(stream)
                    return copy.deepcopy(cached)
        agg = self._app.load(stream)
        self._remember(stream, None if agg is None else copy.deepcopy(agg))
        return agg

    def _remember(self, stream: str, agg: ContainerAggregate | None) -> None:
        with self._cache_lock:
            if agg is None:
                self._cache.pop(stream, None)
                return
            self._cache[stream] = agg
            self._cache.move_to_end(stream)
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)

    def _modify(
        self,
        ns: str,
        container_id: object,
        operation: str,
        expected_version: int | None,
        change: Callable[[ContainerAggregate], None],
    ) -> ContainerAggregate:
        """Run ``change`` on the live container and append its events, optimistically.

        The first try works from the cached aggregate without reading the log; the
        append fails if the log moved on (its (stream, version) is taken), and every
        retry, and every refusal, is decided on state read fresh from the log.
        """
        self._check_open()
        if expected_version is not None and (
            not isinstance(expected_version, int) or isinstance(expected_version, bool) or expected_version < 0
        ):
            raise InvalidArgument(
                f"expected_version must be a non-negative integer, not {expected_version!r}: invalid argument"
            )
        if not isinstance(container_id, str):
            self._refuse_missing(ns, container_id, operation)
        stream = stream_id(ns, container_id)
        fresh = False
        for _ in range(_MAX_RETRIES):
            agg = self._load(stream, fresh=fresh)
            try:
                if agg is None or agg.deleted:
                    self._refuse_missing(ns, container_id, operation)
                assert agg is not None
                if expected_version is not None and agg.version != expected_version:
                    raise Conflict(
                        f"container {go_quote(container_id)} is at version {agg.version}, "
                        f"not the expected {expected_version}: conflict"
                    )
                change(agg)
            except StoreError:
                if fresh:
                    raise
                fresh = True  # the cache may be stale: decide on the log's state
                continue
            if self._append(agg, expected_version):
                return agg
            fresh = True
        raise Unavailable(f"{operation} of {go_quote(str(container_id))} kept losing races; try again")

    def _refuse_missing(self, ns: str, container_id: object, operation: str) -> NoReturn:
        self._sync()
        with self._lock:
            known = self._reader.namespace_known(ns)
        shown = str(container_id)
        if not known:
            raise NotFound(f"cannot {operation} container {go_quote(shown)} in namespace {go_quote(ns)}: not found")
        if operation == "delete":
            raise NotFound(f"container {shown}: not found")
        raise NotFound(f"container {go_quote(shown)}: not found")

    def _append(self, agg: ContainerAggregate, expected_version: int | None = None) -> bool:
        """Append the aggregate's pending events; False if another writer got there first."""
        events = agg.collect_events()
        try:
            self._app.append(events)  # type: ignore[arg-type]
        except IntegrityError:
            self._remember(agg.id, None)
            if expected_version is not None:
                raise Conflict(
                    f"container {go_quote(agg.container_id)} changed since version "
                    f"{expected_version}: conflict"
                ) from None
            return False
        except (PersistenceError, sqlite3.Error, RuntimeError) as e:
            # RuntimeError: a read model refused to apply an event twice (its tracking is
            # ahead of the log, i.e. the file was tampered with or restored inconsistently).
            self._remember(agg.id, None)
            raise Unavailable(f"storage error: {e}") from e
        self._remember(agg.id, agg)
        return True


def _describe(point: datetime | Version | Position) -> str:
    if isinstance(point, Version):
        return f"version {point.number}"
    if isinstance(point, Position):
        return f"position {point.number}"
    return point.isoformat().replace("+00:00", "Z")


def _closing(rows: Iterator[T], conn: sqlite3.Connection) -> Iterator[T]:
    try:
        yield from rows
    finally:
        conn.close()


def _stored_form(c: Container) -> Container:
    """The record as create stores it: empty labels dropped, server fields cleared."""
    from dataclasses import replace

    return replace(c, labels=drop_empty_labels(c.labels), created_at=None, updated_at=None, version=0)


def verify(target: Store | str | os.PathLike[str], checkpoint: Checkpoint | None = None) -> VerifyReport:
    """Walk the log of a store (or of an SQLite file, opened read-only, or of an exported
    archive, without any database) and check every hash.

    Returns a report, never raises for a bad log: OK with the range covered, or the
    first bad position and what is wrong. With ``checkpoint``, also checks that the log
    still holds exactly the prefix the checkpoint recorded.
    """
    url = target.url if isinstance(target, Store) else os.fspath(target)
    if url is not None and url.startswith(("postgresql://", "postgres://")):
        return verify_postgres(parse_url(url)[0], checkpoint)
    path = target.path if isinstance(target, Store) else os.fspath(target)
    from .replay.audit import is_archive, verify_archive_log

    if not isinstance(target, Store) and is_archive(path):
        return verify_archive_log(path, checkpoint)
    if not Path(path).is_file():
        return VerifyReport(False, 0, 0, "", (integrity.Problem(0, "unreadable", f"no such file: {path}"),))
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=30)
        try:
            return integrity.verify_database(conn, checkpoint)
        finally:
            conn.close()
    except sqlite3.Error as e:
        return VerifyReport(False, 0, 0, "", (integrity.Problem(0, "unreadable", f"{path}: {e}"),))


def open(target: str | os.PathLike[str] | None = None, **options: Any) -> Store:  # noqa: A001
    """Open the store at ``target``.

    * a path: an embedded store in that SQLite file (created if missing);
    * ``postgresql://user:password@host:port/dbname[?schema=S&readmodel=PATH]``: a node of a
      shared PostgreSQL log, with its read models in a local SQLite file (``readmodel``,
      else ``CTRLEDGER_READMODEL``, else a file under ``$XDG_DATA_HOME/ctrledger``);
    * None: ``CTRLEDGER_DATABASE_URL``, else ``./ctrledger.db``.
    """
    if target is None:
        target = os.environ.get("CTRLEDGER_DATABASE_URL") or "ctrledger.db"
    return Store(target, **options)


def import_(path: str | os.PathLike[str], into: Store, **options: Any) -> Any:
    """Load an archive written by ``Store.export`` into ``into`` (see ``ctrledger.replay.import_``)."""
    from .replay import import_ as run

    return run(path, into, **options)


def migrate(target: str | os.PathLike[str] | None = None) -> dict[str, int]:
    """Create or upgrade the store's schemas (the log's and the local read models'); report them.

    Opening a store does the same on demand; ``migrate`` does it explicitly, e.g. before
    starting nodes. Raises ``FailedPrecondition`` for a schema newer than this ctrledger.
    """
    with open(target, follow=False) as store:
        conn = sqlite3.connect(store.path)
        try:
            read_model = schema_version(conn)
        finally:
            conn.close()
        found = store._read(lambda db: db.one("SELECT value FROM {ledger_meta} WHERE key='log_schema'"))
        return {"log_schema": int(found[0]) if found else 0, "read_model_schema": read_model}


def _conninfo(env: Any) -> dict[str, Any]:
    return {
        "host": env.get("POSTGRES_HOST"), "port": env.get("POSTGRES_PORT"), "dbname": env.get("POSTGRES_DBNAME"),
        "user": env.get("POSTGRES_USER"), "password": env.get("POSTGRES_PASSWORD") or None,
        "connect_timeout": int(env.get("POSTGRES_CONNECT_TIMEOUT") or 5),
    }

