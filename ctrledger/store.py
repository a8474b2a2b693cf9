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
``started(id, *, pid, at, ...)``                            the status lifecycle (CRI): NotFound (no
``exited(id, *, exit_code, at, reason, message, ...)``      such live container), FailedPrecondition
``paused(id, *, at, ...)`` / ``resumed(id, *, at, ...)``    (not in a state that allows it),
``update_resources(id, resources, *, at, ...)``             InvalidArgument (bad pid, exit code,
                                                            resources, or ``at`` before the last
                                                            status change), Conflict
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

import builtins
import getpass
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from eventsourcing.persistence import Mapper

from .domain.container import (
    EVENT_CLASSES,
    ContainerAggregate,
    check_exit_code,
    check_pid,
    check_text,
    observation,
    stream_id,
)
from .domain.fieldpaths import merge_update
from .domain.filters import match_fields, parse_filters
from .domain.history import (
    AuditRecord,
    Change,
    Diff,
    HistoryEntry,
    LogEvent,
    Point,
    Position,
    Version,
    diff_containers,
    event_changes,
    parse_point,
)
from .domain.model import Audit, Container, Resources
from .domain.validation import (
    check_record,
    drop_empty_labels,
    empty_label_key_problem,
    go_quote,
    text_list,
    text_or_none,
    validate_namespace,
)
from .domain.validation import check_text as check_storable
from .errors import AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound, StoreError, Unavailable
from .persistence import integrity
from .persistence.integrity import Checkpoint, ConsistencyProof, InclusionProof, VerifyReport
from .persistence.log import Log, PostgresLog, SQLiteLog, StreamTaken, read_events, read_stream
from .persistence.sqlite import SYNCHRONOUS_MODES, store_problem, verify_sqlite
from .persistence.targets import default_readmodel_path, is_postgres_url, parse_url
from .projections.current import CurrentStateReader
from .projections.readmodel import ReadModel
from .projections.runner import View
from .projections.temporal import TemporalReader

if TYPE_CHECKING:  # replay is imported when used: opening a store does not load it
    from .replay import ExportSummary, ImportSummary, VerifyResult
    from .replay.rebuild import Progress

__all__ = ["Store", "import_", "migrate", "open", "verify"]

_MAX_RETRIES = 100
OPEN_MODES = ("r", "w", "c")  # as dbm.open's flags: read-only, read-write, read-write created if missing
T = TypeVar("T")
_CACHE_SIZE = 4096  # aggregates kept for optimistic writes
Clock = Callable[[], datetime]


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database (containers, CI): fall back
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def _time_ordered_uuid() -> str:
    """A UUIDv7 (RFC 9562), in its canonical text: 48 bits of milliseconds since the epoch, the
    version (7), 12 random bits, the variant (0b10), 62 random bits.

    Correlation ids are indexed in the audit model; ids that grow with time land at the
    end of that index instead of on a random page, which a durable commit pays for.
    Formatted from the hex digits directly: every write makes one or two (its correlation id,
    and its request id on a shared log), and a ``uuid.UUID`` built and printed costs several
    times more.
    """
    ms = f"{time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF:012x}"
    r = os.urandom(10).hex()  # 20 random digits: 3 for rand_a, then 2 bits and 15 digits for rand_b
    return f"{ms[:8]}-{ms[8:]}-7{r[:3]}-{_VARIANT[r[3]]}{r[4:7]}-{r[7:19]}"


_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}  # a digit's 2 low bits under 0b10


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Store:
    """A ctrledger store: containerd's semantics over a log and a read model (see the module docstring).

    Built by ``ctrledger.open(target, ...)``, which chooses the log from the target; or
    directly, ``Store(log, read_model, clock=...)``, with any ``Log`` and the ``ReadModel``
    over it. The store checks arguments and delegates; it has no backend of its own.
    Use as a context manager, or call ``close()``.
    """

    mode: str = "c"
    """How ``ctrledger.open`` opened it (``"r"``, ``"w"`` or ``"c"``)."""

    def __init__(
        self,
        log: Log,
        read_model: ReadModel,
        *,
        clock: Clock | None = None,
        client: str = "library",
        actor: str | None = None,
        correlation_ids: Callable[[], str] | None = None,
    ) -> None:
        self._log = log
        self._rm = read_model
        self._clock: Clock = clock or _utcnow
        self._new_correlation_id: Callable[[], str] = correlation_ids or _time_ordered_uuid
        self._client = client
        self._actor = actor or _default_actor()
        self._history = read_model.history
        self.path = read_model.path
        self._closed = False
        self._cache: OrderedDict[str, ContainerAggregate] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------

    def close(self) -> None:
        """Release the store's connections (and stop following a shared log). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._rm.close()
        self._log.close()

    def _sync(self) -> None:
        """Bring the read model up to the log before a read (a no-op for an embedded log)."""
        self._check_open()
        self._rm.refresh()

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("the store is closed")

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ctrledger.Store {self.path!r}>"

    @property
    def log(self) -> Log:
        """The store's log (for replay and tools; not needed by most callers)."""
        return self._log

    @property
    def read_model(self) -> ReadModel:
        """The store's read model (for replay and tools; not needed by most callers)."""
        return self._rm

    @property
    def mapper(self) -> Mapper[Any]:
        """The log's event mapper (for replay and tools; not needed by most callers)."""
        return self._log.mapper

    @property
    def views(self) -> list[View]:
        """The read models this store keeps (for replay and tools)."""
        return list(self._rm.views)

    # -- queries --------------------------------------------------------------

    def namespaces(self) -> list[str]:
        """Every namespace that has ever held a container (now, or at some time), sorted by name.

        A namespace stays listed once its last container is deleted, as containerd's bucket does.
        """
        self._sync()
        with self._rm.connection():
            return self._rm.current.namespaces()

    def get(
        self, id: str, *, namespace: str | None = "default", as_of: Point | None = None  # noqa: A002
    ) -> Container:
        """The container ``id`` in ``namespace``, now or as it was at ``as_of``.

        ``as_of`` is an aware datetime or ISO-8601 string, a ``Version`` of the
        container's stream, or a global log ``Position``. ``NotFound`` if it does not
        exist (or did not exist at that point); ``InvalidArgument`` for a point in the future.
        """
        ns = validate_namespace(namespace)
        check_storable(id, "id")
        self._sync()
        if as_of is None:
            with self._rm.connection():
                found = self._rm.current.get(ns, id) if isinstance(id, str) else None
            if found is None:
                raise NotFound(f"container {go_quote(str(id))} in namespace {go_quote(ns)}: not found")
            return found
        point = self._point(as_of, ns, id)
        with self._rm.connection():
            found = self._rm.past.get_at(ns, id, point) if isinstance(id, str) else None
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
            with self._rm.connection():
                return self._rm.current.list(ns, flt)
        point = self._point(as_of, ns, None)
        if isinstance(point, Version):
            raise InvalidArgument("list as_of takes a time or a Position; a Version belongs to one container: "
                                  "invalid argument")
        with self._rm.connection():
            return self._rm.past.list_at(ns, flt, point)

    def list_versions(self, *filters: str, namespace: str | None = "default") -> builtins.list[tuple[str, int]]:
        """``(id, version)`` of each container ``list(*filters, namespace=)`` returns now, in the
        same order, without building the records: for a caller that keeps records by version
        (a version of a container never changes), such as ``ctrledger serve``'s encodings."""
        ns = validate_namespace(namespace)
        flt = parse_filters(filters)
        self._sync()
        with self._rm.connection():
            return self._rm.current.versions(ns, flt)

    def scan(
        self, *filters: str, namespace: str | None = "default", as_of: Point | None = None, after: str = ""
    ) -> Iterator[Container]:
        """``list``, streamed: the same records in the same order, as of one position, one at a
        time (pages in short reads), so a namespace of any size never sits in memory at once.

        ``after``: only the IDs that sort after it (bytewise, as ``list`` orders them), so that a
        caller paging through a namespace resumes from the last ID it saw (keyset paging): every
        page then costs what the first does. ``""`` (the default) starts at the first ID; the ID
        need not exist (one deleted since still marks the place). ``InvalidArgument`` for an
        ``after`` that is not a string a container ID could be.
        """
        ns = validate_namespace(namespace)
        flt = parse_filters(filters)
        after = text_or_none(after, "after") or ""
        self._sync()
        point = None if as_of is None else self._point(as_of, ns, None)
        if isinstance(point, Version):
            raise InvalidArgument("list as_of takes a time or a Position; a Version belongs to one container: "
                                  "invalid argument")
        conn = self._rm.reading()
        if point is None:
            then = None
            if self._history:  # a write during the scan: the rest as of where the scan started
                self._rm.catch_up_if_behind()
                past = TemporalReader(conn, self._rm.spec_of)

                def then(start: int, after: str) -> Iterator[Container]:
                    return past.scan_at(ns, flt, Position(start), after=after)

            return _closing(CurrentStateReader(conn).scan(ns, flt, then=then, after=after), conn, self._rm)
        return _closing(TemporalReader(conn, self._rm.spec_of).scan_at(ns, flt, point, after=after), conn, self._rm)

    # -- history --------------------------------------------------------------

    def history(self, id: str, *, namespace: str | None = "default") -> Iterator[HistoryEntry]:  # noqa: A002
        """Every change to the name ``id``, across incarnations, oldest first (streamed).

        ``NotFound`` if the name never existed in the namespace.
        """
        ns = validate_namespace(namespace)
        check_storable(id, "id")
        self._sync()
        if not isinstance(id, str) or self._stream_version(ns, id) == 0:
            raise NotFound(f"container {go_quote(str(id))} in namespace {go_quote(ns)}: not found")
        return self._history_entries(ns, id)

    def last_change(self, id: str, *, namespace: str | None = "default") -> AuditRecord | None:  # noqa: A002
        """The audit record of the last change to the name ``id`` (its deletion, if that came
        last), or None if the name never existed in the namespace: one indexed read, where
        ``history`` reads and diffs the whole stream.

        ``FailedPrecondition`` with ``history=False``.
        """
        ns = validate_namespace(namespace)
        check_storable(id, "id")
        self._require_history()
        self._sync()
        if not isinstance(id, str):
            return None
        with self._rm.connection():
            return self._rm.past.last_change(ns, id)

    def _history_entries(self, ns: str, cid: str) -> Iterator[HistoryEntry]:
        with self._rm.reader() as conn:
            agg: ContainerAggregate | None = None
            for position, event in read_stream(conn, self._log.mapper, stream_id(ns, cid)):
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

    def events_after(self, position: int = 0, *, limit: int = 1000) -> builtins.list[LogEvent]:
        """The log's events after ``position`` (at most ``limit``), in log order, across every
        namespace, each with the container as it was right after it: what a subscriber needs
        to follow the log from any point (``ctrledger serve`` builds containerd's events from it).

        An empty list means ``position`` is the head. ``InvalidArgument`` for a bad position or
        limit; ``FailedPrecondition`` with ``history=False``.
        """
        for name, value, low, high in (("position", position, 0, 2**63 - 1), ("limit", limit, 1, 2**31 - 1)):
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise InvalidArgument(f"{name} must be an integer from {low} to {high}, not {value!r}: "
                                      "invalid argument")
        self._require_history()
        self._sync()
        out: builtins.list[LogEvent] = []
        with self._rm.reader() as conn:
            conn.execute("BEGIN")
            past = TemporalReader(conn, self._rm.spec_of)
            for events, positions in read_events(conn, self._log.mapper, position, batch=limit):
                for event, pos in zip(events, positions, strict=True):
                    ns, cid = event.originator_id.split("/", 1)
                    deleted = type(event).__name__ == "Deleted"
                    a = event.audit
                    out.append(LogEvent(
                        position=pos, recorded_at=event.timestamp, namespace=ns, id=cid,
                        version=event.originator_version, kind=type(event).__name__, actor=a.actor,
                        reason=a.reason, correlation_id=a.correlation_id, fieldpaths=a.fieldpaths,
                        client=a.client, container=None if deleted else past.get_at(ns, cid, Position(pos)),
                    ))
                break
            conn.execute("COMMIT")
        return out

    def diff(
        self, id: str, *, namespace: str | None = "default", since: Point, until: Point | None = None  # noqa: A002
    ) -> Diff:
        """One container between two points (``until`` defaults to now)."""
        ns = validate_namespace(namespace)
        check_storable(id, "id")
        self._sync()
        if not isinstance(id, str) or self._stream_version(ns, id) == 0:
            raise NotFound(f"container {go_quote(str(id))} in namespace {go_quote(ns)}: not found")
        start = self._point(since, ns, id, "since")
        end = self._point(until, ns, id, "until") if until is not None else None
        _check_range("diff", start, end)
        before = self._state_at(ns, id, start)
        after = self._state_at(ns, id, end) if end is not None else self._current_or_none(ns, id)
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
        flt = parse_filters([filters] if isinstance(filters, str) else filters) if filters else None
        self._sync()
        start = self._point(since, ns, None, "since")
        end = self._point(until, ns, None, "until") if until is not None else Position(self._head())
        if isinstance(start, Version) or isinstance(end, Version):
            raise InvalidArgument("changes takes times or Positions, not Versions: invalid argument")
        _check_range("changes", start, end)
        with self._rm.connection():
            ids = self._rm.past.changed_ids(ns, start, end)
        return self._change_records(ns, ids, start, end, flt)

    def _change_records(
        self, ns: str, ids: Sequence[str], start: datetime | Position, end: datetime | Position, flt: Any
    ) -> Iterator[Change]:
        for cid in ids:
            with self._rm.connection():
                before = self._rm.past.get_at(ns, cid, start)
                after = self._rm.past.get_at(ns, cid, end)
            if flt is not None and not any(
                c is not None and match_fields(
                    flt, id=c.id, image=c.image, runtime_name=c.runtime.name, labels=c.labels, status=c.status)
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
        after: Position | None = None,
    ) -> Iterator[AuditRecord]:
        """Who did what, when and why, in log order (streamed). ``namespace=None``: all namespaces.

        Every criterion given must hold; ``since``/``until`` are times (inclusive) or log
        ``Position``s (``since``: after that event; ``until``: up to it). ``since`` after ``until``
        is ``InvalidArgument``. ``after`` (a ``Position``) keeps only the records after it as well,
        whatever ``since`` is: keyset paging, from the position the page before ended with.
        """
        if after is not None and not isinstance(after, Position):
            raise InvalidArgument(f"audit after must be a Position, not {type(after).__name__}: invalid argument")
        if namespace is not None:
            validate_namespace(namespace)
        self._require_history()
        self._sync()
        known = {cls.__name__ for cls in EVENT_CLASSES}
        kinds = text_list(kinds, "kinds")
        actors = text_list(actor, "actor")
        id, correlation_id, client, reason = (  # noqa: A001
            text_or_none(v, n) for v, n in ((id, "id"), (correlation_id, "correlation_id"), (client, "client"),
                                            (reason, "reason")))
        if kinds is not None:
            unknown = [k for k in kinds if k not in known]
            if unknown:
                raise InvalidArgument(
                    f"unknown event kind(s) {', '.join(map(repr, unknown))}; known: "
                    f"{', '.join(sorted(known))}: invalid argument"
                )
        times: list[datetime | Position | None] = []
        for name, p in (("since", since), ("until", until)):
            parsed = None if p is None else parse_point(p, name)
            if isinstance(parsed, Version):
                raise InvalidArgument(f"audit {name} must be a time or a Position, not a Version: invalid argument")
            times.append(parsed)
        _check_range("audit", times[0], times[1])
        conn = self._rm.reading()
        reader = TemporalReader(conn, self._rm.spec_of)
        rows = reader.audit(
            namespace=namespace, container_id=id, actors=actors, kinds=list(kinds) if kinds else None,
            since=times[0], until=times[1], correlation_id=correlation_id, client=client, reason=reason,
            after=after,
        )
        return _closing(rows, conn, self._rm)

    # -- replay (ctrledger.replay does the work) -----------------------------------

    def digest(self) -> str:
        """A SHA-256 of every read model in a canonical order: two stores that saw the same
        log have the same digest."""
        from .replay import digest

        self._sync()
        self._rm.catch_up_if_behind()
        return digest(self._rm)

    def verify_projections(self) -> VerifyResult:
        """Rebuild the read models into a scratch file and compare digests with the live ones."""
        from .replay import verify_projections

        self._sync()
        self._rm.catch_up_if_behind()
        return verify_projections(self._rm)

    def export(
        self, path: str | os.PathLike[str], *, since: Point | int | None = None, until: Point | int | None = None,
        namespaces: Sequence[str] | None = None, progress: Progress | None = None,
    ) -> ExportSummary:
        """Write the log (or a range of it) to a portable archive at ``path``."""
        from .replay import export

        self._sync()
        return export(self._rm, path, since=since, until=until, namespaces=namespaces, progress=progress)

    def rebuild(self, progress: Progress | None = None) -> int:
        """Rebuild every read model from the log, swapped in atomically; returns the events read."""
        from .replay import rebuild

        self._log.check_writable()
        self._sync()
        return rebuild(self._rm, progress)

    def replay_to(self, path: str | os.PathLike[str], *, as_of: Point) -> Path:
        """A new SQLite store at ``path``: this one as of ``as_of`` (a time or a Position)."""
        from .replay import replay_to

        self._sync()
        return replay_to(self._rm, path, as_of=as_of)

    # -- tamper evidence ----------------------------------------------------------

    def checkpoint(self, *, sign_with: Any = None) -> Checkpoint:
        """A record of the whole log now (size, root hash, chain hash, time) to keep elsewhere.

        ``sign_with``: an Ed25519 private key (``cryptography``) to sign it with.
        """
        self._check_open()
        cp = self._log.read(lambda db: integrity.make_checkpoint(db, self._clock()))
        if sign_with is None:
            return cp
        try:
            return cp.sign(sign_with)
        except (AttributeError, TypeError, ValueError):
            raise InvalidArgument(f"sign_with must be an Ed25519 private key (cryptography), not "
                                  f"{type(sign_with).__name__}: invalid argument") from None

    def prove(self, position: int, *, checkpoint: Checkpoint | None = None) -> InclusionProof:
        """The inclusion proof of the event at ``position`` in the log as of ``checkpoint`` (default: now)."""
        self._check_open()

        def work(db: integrity.Sql) -> InclusionProof:  # one read transaction: one state of the log
            size = integrity.hashed_head(db)[0]
            if checkpoint is not None:
                _check_same_log(db, checkpoint)
                if checkpoint.size > size:
                    raise InvalidArgument(
                        f"the checkpoint covers {checkpoint.size} events, more than this log's {size}: "
                        "invalid argument"
                    )
                size = checkpoint.size
            if not isinstance(position, int) or isinstance(position, bool) or not 1 <= position <= max(size, 1):
                raise InvalidArgument(f"position {position!r} is not in a log of {size} events: invalid argument")
            try:
                return integrity.prove_inclusion(db, position, size)
            except LookupError as e:
                raise InvalidArgument(f"{e}: invalid argument") from None

        return self._log.read(work)

    def prove_consistency(self, old: Checkpoint, new: Checkpoint | None = None) -> ConsistencyProof:
        """Proof that the log at ``old`` is a prefix of the log at ``new`` (default: now)."""
        self._check_open()

        def work(db: integrity.Sql) -> ConsistencyProof:  # one read transaction: one state of the log
            _check_same_log(db, old)
            if new is not None:
                _check_same_log(db, new)
            size = integrity.hashed_head(db)[0]
            new_size = new.size if new is not None else size
            if new_size > size:
                raise InvalidArgument(
                    f"the checkpoint covers {new_size} events, more than this log's: invalid argument")
            if old.size > new_size:
                raise InvalidArgument(f"checkpoint of {old.size} events is newer than {new_size}: invalid argument")
            return integrity.prove_consistency(db, old.size, new_size)

        return self._log.read(work)

    # -- points -----------------------------------------------------------------

    def _require_history(self) -> None:
        if not self._history:
            raise FailedPrecondition(
                "this store was opened with history=False; open it with history=True to query the past: "
                "failed precondition"
            )
        self._rm.catch_up_if_behind()

    def _head(self) -> int:
        return self._log.head()

    def _stream_version(self, ns: str, cid: str) -> int:
        self._require_history()
        with self._rm.connection():
            return self._rm.past.stream_version(ns, cid)

    def _point(
        self, point: object, ns: str, cid: object, name: str = "as_of"
    ) -> datetime | Version | Position:
        self._require_history()
        parsed = parse_point(point, name)
        if isinstance(parsed, datetime):
            # "now" is the clock, or the newest recorded time if that is later: the store
            # moves every stream's time strictly forward, even past a clock that stalled.
            now = max(self._clock(), self._rm.last_recorded() or self._clock())
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
        with self._rm.connection():
            return self._rm.past.get_at(ns, cid, point)

    def _current_or_none(self, ns: str, cid: str) -> Container | None:
        with self._rm.connection():
            return self._rm.current.get(ns, cid)

    def now(self) -> datetime:
        """The store's clock now: the time a write made now would be stamped with (and the
        default ``at`` of the status calls)."""
        return self._clock()

    @property
    def position(self) -> int:
        """The log position the read models have applied (after catching up with the log's head)."""
        self._sync()
        return self._rm.position()

    # -- commands -------------------------------------------------------------

    def create(
        self,
        container: Container,
        *,
        namespace: str | None = "default",
        actor: str | None = None,
        reason: str | None = None,
        correlation_id: str | None = None,
        request_id: str | None = None,
        client: str | None = None,
    ) -> Container:
        """Create ``container`` (timestamps and version are set by the store).

        Labels with an empty value are dropped. A deleted name can be created
        again: it continues its stream as a new incarnation.

        ``request_id``: the command's idempotency key. A retry with the same id, after an
        acknowledgement was lost, returns what the first attempt committed instead of
        applying it again. Without one, a shared log's write takes a fresh one (eventsourcing
        retries an append whose acknowledgement was lost); an embedded log's needs none (a
        failed append wrote nothing).
        """
        ns = validate_namespace(namespace)
        if not isinstance(container, Container):
            raise InvalidArgument(
                f"create container failed validation: expected a Container, not "
                f"{type(container).__name__}: invalid argument"
            )
        self._check_open()
        check_record(container, "create container failed validation", empty_label_key=False)
        # D2 (the one problem check_record left out): raised after the existence check, as in containerd
        write_problem = empty_label_key_problem(container.labels)
        record = _stored_form(container)
        audit = self._audit(actor, reason, correlation_id, (), client)
        request = self._request_id(request_id)
        stream = stream_id(ns, record.id)
        # Optimistic first try: most creates are of new names, so skip the read and
        # let the log's (stream, version) uniqueness tell us if the name was taken.
        now = self._clock()  # one time per operation, whatever the retries
        try:
            return self._create(ns, record, audit, now, stream, request, write_problem)
        except Unavailable as e:
            unknown = self._unknown_outcome(e, request, "create")
            if unknown is None:
                raise
            raise unknown from e

    def _create(
        self, ns: str, record: Container, audit: Audit, now: datetime, stream: str, request: str | None,
        write_problem: str | None,
    ) -> Container:
        if self._log.cheap_conflicts and write_problem is None:
            # A failed append costs nothing (embedded log), so try the common case (a new name)
            # without reading. A shared PostgreSQL log would burn a position on the failure.
            first = ContainerAggregate.create(ns, record, audit, now)
            done = self._append(first, None, request)
            if done is not None:
                return done.to_container()
        for _ in range(_MAX_RETRIES):
            agg = self._load(stream, fresh=True)
            if agg is not None and not agg.deleted:
                # ... unless this very command created it (its acknowledgement was lost)
                return self._committed_or(request, "create", AlreadyExists(
                    f"container {go_quote(record.id)}: already exists")).to_container()
            if write_problem is not None:
                raise InvalidArgument(f"create container failed validation: {write_problem}: invalid argument")
            if agg is None:
                agg = ContainerAggregate.create(ns, record, audit, now)
            else:
                agg.recreate(record, audit, now)
            done = self._append(agg, None, request)
            if done is not None:
                return done.to_container()
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
        request_id: str | None = None,
        client: str | None = None,
    ) -> Container:
        """Update the container ``container.id`` from ``container`` along ``fieldpaths``.

        No field paths is a full replace (containerd semantics; see
        ``ctrledger.domain.fieldpaths``). Every successful update moves
        ``updated_at``, even when nothing changed. Returns the updated record.
        ``request_id``: the command's idempotency key (see ``create``).
        """
        if not isinstance(container, Container):
            raise InvalidArgument(f"expected a Container, not {type(container).__name__}: invalid argument")
        if not container.id:
            raise InvalidArgument("Container.ID required")
        ns = validate_namespace(namespace)
        audit = self._audit(actor, reason, correlation_id, tuple(fieldpaths), client)
        now = self._clock()

        def change(agg: ContainerAggregate) -> None:
            merged = merge_update(agg.to_container(), container, fieldpaths)
            agg.change_to(merged, audit, now)

        return self._command(ns, container.id, "update", expected_version, change, request_id)

    def delete(
        self,
        id: str,  # noqa: A002
        *,
        namespace: str | None = "default",
        actor: str | None = None,
        reason: str | None = None,
        expected_version: int | None = None,
        correlation_id: str | None = None,
        request_id: str | None = None,
        client: str | None = None,
    ) -> None:
        """Delete the container ``id``. Its history stays in the log.

        ``request_id``: the command's idempotency key (see ``create``).
        """
        ns = validate_namespace(namespace)
        audit = self._audit(actor, reason, correlation_id, (), client)
        now = self._clock()
        self._command(ns, id, "delete", expected_version, lambda agg: agg.delete(audit, now), request_id)

    # -- observing a live containerd ------------------------------------------------
    #
    # What ``ctrledger follow`` and the auditing proxy record: not a request, but a state
    # seen on a real containerd. The ledger is brought to it with the fewest events, and
    # nothing is written when it is already there, so observing twice is harmless.

    def observe(
        self,
        id: str,  # noqa: A002
        state: Container | None,
        *,
        namespace: str | None = "default",
        actor: str | None = "containerd",
        reason: str | None = None,
        at: datetime | str | None = None,
        correlation_id: str | None = None,
        client: str | None = None,
        request_id: str | None = None,
    ) -> tuple[str, ...]:
        """Bring the container ``id`` to ``state``, as observed on containerd (None: absent).

        Absent: a live container is deleted. Present: a missing or deleted name is created;
        a live one replaced meanwhile (another runtime, snapshotter or sandbox, or a later
        ``state.created_at``) is deleted and created again; otherwise one event per kind of
        field that differs (labels, image, spec, snapshot key, extensions). ``at`` (default
        now) dates the events. Returns the
        kinds of the events written, ``()`` when nothing differed. ``InvalidArgument`` for
        a record the store cannot hold (nothing written).
        """
        return self.observe_many([(id, state, at)], namespace=namespace, actor=actor, reason=reason,
                                 correlation_id=correlation_id, client=client, request_id=request_id)[0]

    def observe_many(
        self,
        states: Sequence[tuple[str, Container | None, datetime | str | None]
                         | tuple[str, Container | None, datetime | str | None, str | None]],
        *,
        namespace: str | None = "default",
        actor: str | None = "containerd",
        reason: str | None = None,
        correlation_id: str | None = None,
        client: str | None = None,
        request_id: str | None = None,
    ) -> builtins.list[tuple[str, ...]]:
        """``observe`` for many ``(id, state, at)`` of one namespace, appended in one transaction
        when no other writer interferes (a sync of thousands of containers); returns each one's
        event kinds. Every record is checked before anything is written. An item may carry its
        own audit reason as a fourth element, ``(id, state, at, reason)`` (None: ``reason``).

        ``request_id``: the call's idempotency key (see ``create``); observing is idempotent
        anyway (a retry finds the state reached and writes nothing).
        """
        ns = validate_namespace(namespace)
        if request_id is not None:
            self._request_id(request_id)  # checked before anything is read or written
        prepared: builtins.list[tuple[str, Container | None, datetime, Audit]] = []
        base = self._audit(actor, reason, correlation_id, (), client)
        if isinstance(states, (str, bytes)) or not isinstance(states, Iterable):
            raise InvalidArgument(f"observe_many takes a sequence of (id, state, at) triples, not "
                                  f"{type(states).__name__}: invalid argument")
        for item in states:
            if not isinstance(item, tuple) or len(item) not in (3, 4):
                raise InvalidArgument(f"observe takes (id, state, at) triples or (id, state, at, reason), not "
                                      f"{item!r}: invalid argument")
            cid, state, at = item[:3]
            why = text_or_none(item[3], "reason") if len(item) == 4 else None
            if not isinstance(cid, str) or not cid:
                raise InvalidArgument(f"observe: a container ID is required, not {cid!r}: invalid argument")
            check_storable(cid, "observe: id")  # also when absent: it is looked up
            record = None
            if state is not None:
                if not isinstance(state, Container):
                    raise InvalidArgument(f"observe: expected a Container or None, not {type(state).__name__}: "
                                          "invalid argument")
                if state.id != cid:
                    raise InvalidArgument(f"observe: the record's ID {state.id!r} is not {cid!r}: invalid argument")
                check_record(state, "observed container failed validation")
                record = Container.trusted(  # checked: as create stores it, with containerd's created_at
                    **{**state.__dict__, "labels": drop_empty_labels(state.labels),
                       "extensions": dict(state.extensions), "updated_at": None, "version": 0,
                       "created_at": _observed_time(state.created_at, "created_at")})
            when = _observed_time(at, "at") or self._clock()
            audit = base if correlation_id is not None and why is None else Audit.trusted(
                base.actor, base.reason if why is None else why,
                base.correlation_id if correlation_id is not None else self._new_correlation_id(),  # one per item
                (), base.client)
            prepared.append((cid, record, when, audit))
        self._sync()
        with self._rm.connection():  # the current state, as of the last write (same transaction as the log)
            current = self._rm.current.get_many(ns, [p[0] for p in prepared])
        kinds: builtins.list[tuple[str, ...]] = [()] * len(prepared)
        pending: dict[str, ContainerAggregate] = {}  # by stream: an ID seen twice continues its aggregate
        for i, (cid, record, when, audit) in enumerate(prepared):
            stream = stream_id(ns, cid)
            agg = pending.get(stream)
            if agg is None:
                live = current.get(cid)
                if live is None and record is None:
                    continue
                if live is not None and record is not None and observation(live, record) == "same":
                    continue
                if live is None:
                    # A new name, most likely: created without reading the log (as create does); if
                    # the stream exists after all, the append fails and this is decided again on the log.
                    assert record is not None
                    cached = self._load(stream, fresh=False) if stream in self._cache else None
                    if cached is None:
                        agg = ContainerAggregate.create(ns, record, audit, when)
                        pending[stream] = agg
                        kinds[i] = ("Created",)
                        continue
                    agg = cached
                else:
                    agg = self._load(stream, fresh=False)
                    if agg is not None and agg.version != live.version:
                        agg = self._load(stream, fresh=True)  # another writer moved it: the cache is stale
                    if agg is None:
                        continue
                pending[stream] = agg
            before = len(agg.pending_events)
            if record is None:
                if not agg.deleted:
                    agg.delete(audit, when)
            else:
                agg.observe(record, audit, when)
            kinds[i] = tuple(type(e).__name__ for e in agg.pending_events[before:])
        aggs = [agg for agg in pending.values() if agg.pending_events]
        if not aggs:
            return kinds
        request = self._request_id(request_id)
        try:
            if self._append_all(aggs, request):
                return kinds
            for i, (cid, record, when, audit) in enumerate(prepared):  # one at a time, on the log's state
                command = None if request is None else f"{request}/{i}"
                kinds[i] = self._observe_one(ns, cid, record, when, audit, command)
        except Unavailable as e:
            unknown = self._unknown_outcome(e, request, "observe")
            if unknown is None:
                raise
            raise unknown from e
        return kinds

    def _observed(
        self, ns: str, cid: str, record: Container | None, when: datetime, audit: Audit, *, fresh: bool,
    ) -> ContainerAggregate | None:
        """The aggregate with the events that bring it to ``record`` pending; None if none are needed.

        A "nothing to do" decided on a cached aggregate is checked against the read model's
        version (the cache may be stale when another process writes): a mismatch decides again
        on the log's state.
        """
        stream = stream_id(ns, cid)
        agg = self._load(stream, fresh=fresh)
        if agg is None:
            return None if record is None else ContainerAggregate.create(ns, record, audit, when)
        if record is None:
            if not agg.deleted:
                agg.delete(audit, when)
        else:
            agg.observe(record, audit, when)
        if agg.pending_events:
            return agg
        if not fresh:
            with self._rm.connection():
                current = self._rm.current.get(ns, cid)
            if (current is None) != agg.deleted or (current is not None and current.version != agg.version):
                return self._observed(ns, cid, record, when, audit, fresh=True)
        return None

    def _observe_one(
        self, ns: str, cid: str, record: Container | None, when: datetime, audit: Audit, request_id: str | None,
    ) -> tuple[str, ...]:
        for attempt in range(_MAX_RETRIES):
            agg = self._observed(ns, cid, record, when, audit, fresh=True)
            if agg is None:
                return ()
            kinds = tuple(type(e).__name__ for e in agg.pending_events)
            # each attempt is its own command: a lost race is decided again on the log's state
            command = None if request_id is None else f"{request_id}/{attempt}"
            if self._append(agg, None, command, "observe") is not None:
                return kinds
        raise Unavailable(f"observe of {go_quote(cid)} kept losing races; try again")

    def _append_all(self, aggs: Sequence[ContainerAggregate], request_id: str | None) -> bool:
        """Append the pending events of several aggregates in one transaction, as the command
        ``request_id``; False (nothing written) if another writer got to any of them first.
        A failed append that committed after all (a lost acknowledgement) counts as written."""
        events = [e for agg in aggs for e in agg.collect_events()]
        try:
            self._log.append(events, request_id)
        except StreamTaken:
            for agg in aggs:
                self._remember(agg.id, None)
            return request_id is not None and self._log.committed(request_id, "observe") is not None
        except Unavailable:
            for agg in aggs:
                self._remember(agg.id, None)
            if request_id is not None and self._log.committed(request_id, "observe") is not None:
                return True
            raise
        except StoreError:
            for agg in aggs:
                self._remember(agg.id, None)
            raise
        for agg in aggs:
            self._remember(agg.id, agg)
        return True

    # -- the status lifecycle (CRI's container status) -----------------------------
    #
    # Each call appends one event to the container's stream, with the same audit data as
    # the other writes. ``at`` (an aware datetime or an ISO-8601 string) is when it happened,
    # as the runtime reports it; None: now (the store's clock). It may not be earlier than
    # the container's last status change. Nothing is written when a call is refused.
    # ``client`` (default: the store's) names the program that asked, as for the other writes.

    def started(
        self,
        id: str,  # noqa: A002
        *,
        pid: int,
        at: datetime | str | None = None,
        namespace: str | None = "default",
        actor: str | None = None,
        reason: str | None = None,
        expected_version: int | None = None,
        correlation_id: str | None = None,
        request_id: str | None = None,
        client: str | None = None,
    ) -> Container:
        """The container's process started with ``pid`` (a uint32): CREATED or EXITED -> RUNNING.

        A start after an exit begins a new run (``status.runs`` counts them) and clears the
        last exit's code, reason and message. ``FailedPrecondition`` if it is running.
        """
        ns = validate_namespace(namespace)
        checked_pid, when = check_pid(pid), _parse_at(at)
        audit = self._audit(actor, reason, correlation_id, (), client)
        now = self._clock()
        return self._command(
            ns, id, "start", expected_version, lambda agg: agg.start(checked_pid, when, audit, now), request_id
        )

    def exited(
        self,
        id: str,  # noqa: A002
        *,
        exit_code: int,
        at: datetime | str | None = None,
        reason: str | None = None,
        message: str | None = None,
        namespace: str | None = "default",
        actor: str | None = None,
        audit_reason: str | None = None,
        expected_version: int | None = None,
        correlation_id: str | None = None,
        request_id: str | None = None,
        client: str | None = None,
    ) -> Container:
        """The container's process exited with ``exit_code`` (an int32): RUNNING -> EXITED.

        ``reason`` is CRI's (``OOMKilled``...); without one it is ``Completed`` for code 0 and
        ``Error`` for any other, as CRI reports it. ``audit_reason`` is why, for the audit
        (the ``reason`` of the other writes). ``FailedPrecondition`` if it is not running.
        """
        ns = validate_namespace(namespace)
        code, when = check_exit_code(exit_code), _parse_at(at)
        exit_why, text = check_text("reason", reason), check_text("message", message)
        audit = self._audit(actor, audit_reason, correlation_id, (), client)
        now = self._clock()
        return self._command(
            ns, id, "exit", expected_version, lambda agg: agg.exit(code, exit_why, text, when, audit, now), request_id
        )

    def paused(
        self,
        id: str,  # noqa: A002
        *,
        at: datetime | str | None = None,
        namespace: str | None = "default",
        actor: str | None = None,
        reason: str | None = None,
        expected_version: int | None = None,
        correlation_id: str | None = None,
        request_id: str | None = None,
        client: str | None = None,
    ) -> Container:
        """The running container was paused (its state stays RUNNING; ``status.paused`` is set).

        ``FailedPrecondition`` if it is not running, or already paused.
        """
        ns = validate_namespace(namespace)
        when = _parse_at(at)
        audit = self._audit(actor, reason, correlation_id, (), client)
        now = self._clock()
        return self._command(ns, id, "pause", expected_version, lambda agg: agg.pause(when, audit, now), request_id)

    def resumed(
        self,
        id: str,  # noqa: A002
        *,
        at: datetime | str | None = None,
        namespace: str | None = "default",
        actor: str | None = None,
        reason: str | None = None,
        expected_version: int | None = None,
        correlation_id: str | None = None,
        request_id: str | None = None,
        client: str | None = None,
    ) -> Container:
        """The paused container was resumed. ``FailedPrecondition`` if it is not paused."""
        ns = validate_namespace(namespace)
        when = _parse_at(at)
        audit = self._audit(actor, reason, correlation_id, (), client)
        now = self._clock()
        return self._command(ns, id, "resume", expected_version, lambda agg: agg.resume(when, audit, now), request_id)

    def update_resources(
        self,
        id: str,  # noqa: A002
        resources: Resources,
        *,
        at: datetime | str | None = None,
        namespace: str | None = "default",
        actor: str | None = None,
        reason: str | None = None,
        expected_version: int | None = None,
        correlation_id: str | None = None,
        request_id: str | None = None,
        client: str | None = None,
    ) -> Container:
        """Set the container's resources to ``resources`` (CRI ``UpdateContainerResources``).

        Allowed while CREATED or RUNNING (``FailedPrecondition`` once EXITED); the event
        records the fields that changed.
        """
        ns = validate_namespace(namespace)
        if not isinstance(resources, Resources):
            raise InvalidArgument(
                f"expected ctrledger.Resources, not {type(resources).__name__}: invalid argument"
            )
        when = _parse_at(at)
        audit = self._audit(actor, reason, correlation_id, (), client)
        now = self._clock()
        return self._command(
            ns, id, "update resources of", expected_version,
            lambda agg: agg.update_resources(resources, when, audit, now), request_id,
        )

    # -- internals ------------------------------------------------------------

    def _audit(
        self, actor: str | None, reason: str | None, correlation_id: str | None, paths: tuple[str, ...],
        client: str | None = None,
    ) -> Audit:
        """The operation's audit data; ``client`` (default: the store's) names the program that asked."""
        for name, value in (("actor", actor), ("reason", reason), ("correlation_id", correlation_id),
                            ("client", client)):
            text_or_none(value, name)
        for path in paths:
            if not isinstance(path, str):
                raise InvalidArgument(f"a field path must be a string, not {type(path).__name__}: invalid argument")
            check_storable(path, "field path")
        return Audit.trusted(  # checked above
            actor or self._actor, reason or "", correlation_id or self._new_correlation_id(), paths,
            client or self._client,
        )

    def _command(
        self,
        ns: str,
        container_id: object,
        operation: str,
        expected_version: int | None,
        change: Callable[[ContainerAggregate], None],
        request_id: str | None,
    ) -> Container:
        """One write to a live container, as the command ``request_id`` (idempotent; see ``create``)."""
        request = self._request_id(request_id)
        try:
            return self._modify(ns, container_id, operation, expected_version, change, request).to_container()
        except Unavailable as e:
            unknown = self._unknown_outcome(e, request, operation)
            if unknown is None:
                raise
            raise unknown from e

    def _unknown_outcome(self, e: Unavailable, request_id: str | None, operation: str) -> Unavailable | None:
        """On a shared log, ``Unavailable`` during a write cannot promise that nothing was
        written (an earlier attempt of the same request may still commit): the error that says
        so, to raise from ``e``; None to raise ``e`` itself. (A ``try`` in each write, not a
        context manager: entering a generator's costs every write thousands of instructions.)"""
        if self._log.definite_failures or "outcome of this" in e.message:
            return None
        return Unavailable(
            f"the outcome of this {operation} is unknown ({e.message}); it is safe to retry with the same "
            f"request_id={request_id!r}"
        )

    def _request_id(self, request_id: str | None) -> str | None:
        """The command's id: the caller's, checked; else a fresh one, which only a log whose
        failed appends may still commit needs (a retry after a lost acknowledgement finds the
        first attempt by it). An embedded log's failed append wrote nothing, and a fresh id is
        known to nobody but this call: None, and the log records no command (one b-tree
        fewer in the commit)."""
        if request_id is None:
            return None if self._log.definite_failures else _time_ordered_uuid()
        if not isinstance(request_id, str) or not 0 < len(request_id) <= 256:
            raise InvalidArgument(
                f"request_id must be a string of 1 to 256 characters, not {request_id!r}: invalid argument")
        check_storable(request_id, "request_id")
        return request_id

    def _committed_or(self, request_id: str | None, operation: str, refusal: StoreError) -> ContainerAggregate:
        """What the command ``request_id`` committed earlier (a retry after a lost
        acknowledgement), else raise ``refusal``."""
        done = None if request_id is None else self._log.committed(request_id, operation)
        if done is None:
            raise refusal
        self._remember(done.id, None)
        return done

    def _load(self, stream: str, *, fresh: bool) -> ContainerAggregate | None:
        """The stream's aggregate: a copy of the cached one, or (``fresh``) read from the log."""
        if not fresh:
            with self._cache_lock:
                cached = self._cache.get(stream)
                if cached is not None:
                    self._cache.move_to_end(stream)
                    return cached.clone()
        agg = self._log.load(stream)
        self._remember(stream, None if agg is None else agg.clone())
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
        request_id: str | None,
    ) -> ContainerAggregate:
        """Run ``change`` on the live container and append its events, optimistically, as the
        command ``request_id`` (every try: a write is one command, retried as one).

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
        check_storable(container_id, "container.ID" if operation == "update" else "id")
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
            except StoreError as refusal:
                if fresh:  # a refusal on fresh state, unless this command committed before
                    return self._committed_or(request_id, operation, refusal)
                fresh = True  # the cache may be stale: decide on the log's state
                continue
            done = self._append(agg, expected_version, request_id, operation)
            if done is not None:
                return done
            fresh = True
        raise Unavailable(f"{operation} of {go_quote(str(container_id))} kept losing races; try again")

    def _refuse_missing(self, ns: str, container_id: object, operation: str) -> NoReturn:
        self._sync()
        with self._rm.connection():
            known = self._rm.current.namespace_known(ns)
        shown = str(container_id)
        if not known:
            raise NotFound(f"cannot {operation} container {go_quote(shown)} in namespace {go_quote(ns)}: not found")
        if operation == "delete":
            raise NotFound(f"container {shown}: not found")
        raise NotFound(f"container {go_quote(shown)}: not found")

    def _append(
        self, agg: ContainerAggregate, expected_version: int | None, request_id: str | None,
        operation: str = "create",
    ) -> ContainerAggregate | None:
        """Append the aggregate's pending events as the command ``request_id``.

        Returns the aggregate as the command left it, or None if another writer got
        there first. A failed append first asks whether the command committed after all
        (a lost acknowledgement, retried by eventsourcing or by the caller): then the
        first attempt's result is returned, and nothing is applied twice.
        """
        events = agg.collect_events()
        try:
            self._log.append(events, request_id)
        except StreamTaken:
            self._remember(agg.id, None)
            done = None if request_id is None else self._log.committed(request_id, operation)
            if done is not None:
                return done
            if expected_version is not None:
                raise Conflict(
                    f"container {go_quote(agg.container_id)} changed since version "
                    f"{expected_version}: conflict"
                ) from None
            return None
        except Unavailable as e:
            self._remember(agg.id, None)
            # "outcome unknown" if it cannot ask
            done = None if request_id is None else self._log.committed(request_id, operation)
            if done is not None:
                return done
            if self._log.definite_failures:
                raise Unavailable(f"{e.message}; nothing was written") from e
            raise Unavailable(  # not there yet, but a transaction cut off mid-commit may still land
                f"the outcome of this {operation} is unknown ({e.message}); it is safe to retry with the same "
                f"request_id={request_id!r}"
            ) from e
        except StoreError:
            self._remember(agg.id, None)
            raise
        self._remember(agg.id, agg)
        self._log.keep(agg)
        return agg


def _parse_at(at: object) -> datetime | None:
    """``at`` of a status call: None, or an aware datetime / ISO-8601 string (UTC)."""
    if at is None:
        return None
    parsed = parse_point(at, "at")
    if not isinstance(parsed, datetime):
        raise InvalidArgument("at must be a time (a datetime or an ISO-8601 string): invalid argument")
    return parsed


def _observed_time(at: object, name: str) -> datetime | None:
    """An optional time given to ``observe``: None, or an aware datetime / ISO-8601 string (UTC)."""
    if at is None:
        return None
    parsed = parse_point(at, name)
    if not isinstance(parsed, datetime):
        raise InvalidArgument(f"{name} must be a time (a datetime or an ISO-8601 string): invalid argument")
    return parsed


def _describe(point: datetime | Version | Position) -> str:
    if isinstance(point, Version):
        return f"version {point.number}"
    if isinstance(point, Position):
        return f"position {point.number}"
    return point.isoformat().replace("+00:00", "Z")


def _closing(rows: Iterator[T], conn: sqlite3.Connection, rm: ReadModel) -> Iterator[T]:
    """``rows``, read through ``conn`` (from ``rm.reading``), which is handed back at the end:
    reused if the answer was read to the end, else closed."""
    finished = False
    try:
        yield from rows
        finished = True
    finally:
        rm.done_reading(conn, finished=finished)


def _stored_form(c: Container) -> Container:
    """The record as create stores it: empty labels dropped, server fields cleared (a checked
    record's fields copied, not built again through ``__init__``)."""
    return Container.trusted(**{**c.__dict__, "labels": drop_empty_labels(c.labels),
                                "extensions": dict(c.extensions), "created_at": None, "updated_at": None,
                                "version": 0})


def _check_range(
    operation: str, since: datetime | Version | Position | None, until: datetime | Version | Position | None
) -> None:
    """A range whose ``since`` comes after its ``until`` (both of one kind) is refused, not empty."""
    if isinstance(since, datetime) and isinstance(until, datetime):
        later = since > until
    elif isinstance(since, (Version, Position)) and isinstance(until, (Version, Position)):
        later = type(since) is type(until) and since.number > until.number
    else:
        return
    if later:
        raise InvalidArgument(
            f"{operation} since {_describe(since)} is after until {_describe(until)}: invalid argument"
        )


def _check_same_log(db: integrity.Sql, checkpoint: Checkpoint) -> None:
    if not isinstance(checkpoint, Checkpoint):
        raise InvalidArgument(f"expected a Checkpoint, not {type(checkpoint).__name__}: invalid argument")
    log_id = db.one("SELECT value FROM {ledger_meta} WHERE key='log_id'")
    if log_id is None or checkpoint.log_id != log_id[0]:
        raise InvalidArgument("the checkpoint is of another log: invalid argument")


def _is_postgres(target: str) -> bool:
    return is_postgres_url(target)


def verify(target: Store | str | os.PathLike[str], checkpoint: Checkpoint | None = None) -> VerifyReport:
    """Walk the log of a store (or of an SQLite file, opened read-only, or of an exported
    archive, without any database) and check every hash.

    Returns a report, never raises for a bad log: OK with the range covered, or the
    first bad position and what is wrong. With ``checkpoint``, also checks that the log
    still holds exactly the prefix the checkpoint recorded.

    Given a ``Store``, it also checks the read models against the log (a rebuild into a
    scratch file, as ``Store.verify_projections``): ``read_models_ok``, and a problem of
    kind ``read models differ`` naming the tables. Given a path or an archive, it covers
    the log only (``read_models_ok`` is None).
    """
    if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
        raise InvalidArgument(f"checkpoint must be a Checkpoint, not {type(checkpoint).__name__}: invalid argument")
    if not isinstance(target, Store | str | os.PathLike):
        raise InvalidArgument(f"verify takes a Store or a path, not {type(target).__name__}: invalid argument")
    if isinstance(target, Store):
        return _with_read_models(target, target.log.verify(checkpoint))
    check_storable(target, "target")
    text = os.fspath(target)
    if _is_postgres(text):
        from .persistence.postgres import verify_postgres

        return verify_postgres(parse_url(text)[0], checkpoint)
    from .replay.audit import is_archive, verify_archive_log

    if is_archive(text):
        return verify_archive_log(text, checkpoint)
    return verify_sqlite(text, checkpoint)


def _with_read_models(store: Store, report: VerifyReport) -> VerifyReport:
    import dataclasses

    try:
        result = store.verify_projections()
    except StoreError as e:
        problem = integrity.Problem(0, "read models differ", f"the read models could not be checked: {e}")
        return dataclasses.replace(report, ok=False, problems=(*report.problems, problem), read_models_ok=False)
    if result.ok:
        return dataclasses.replace(report, read_models_ok=True)
    problem = integrity.Problem(
        result.position, "read models differ",
        f"the read models at position {result.position} differ from a rebuild from the log in "
        f"{', '.join(result.differences)} (edited outside the store?); 'ctrledger rebuild' restores them",
    )
    return dataclasses.replace(report, ok=False, problems=tuple(sorted(
        (*report.problems, problem), key=lambda p: p.position)), read_models_ok=False)


def open(  # noqa: A001
    target: str | os.PathLike[str] | None = None,
    *,
    synchronous: str = "FULL",
    history: bool = True,
    readmodel: str | os.PathLike[str] | None = None,
    follow: bool = True,
    mode: str = "c",
    **options: Any,
) -> Store:
    """Open the store at ``target``: the one place a target chooses the log.

    * a path: an embedded store in that SQLite file (created if missing, with ``mode="c"``);
    * ``postgresql://user:password@host:port/dbname[?schema=S&readmodel=PATH]``: a node of a
      shared PostgreSQL log, with its read models in a local SQLite file (``readmodel``,
      else ``CTRLEDGER_READMODEL``, else a file under ``$XDG_DATA_HOME/ctrledger``);
    * None: ``CTRLEDGER_DATABASE_URL`` if it is set (set but empty: ``InvalidArgument``), else
      ``./ctrledger.db``.

    ``mode``, as ``dbm.open``'s flag: ``"c"`` (the default) creates the store if it is missing;
    ``"w"`` opens an existing store for reading and writing; ``"r"`` opens an existing store
    read-only: nothing is created or written (an SQLite file is opened with SQLite's read-only
    mode, so a store on a read-only file, directory or mount can be read and verified), and
    writes raise ``FailedPrecondition``. With ``"r"`` or ``"w"``, a missing store is
    ``NotFound`` naming it, and a file that is not a ctrledger store is ``FailedPrecondition``
    and left untouched. A PostgreSQL node's local read-model file is a cache of the shared log:
    it is created and caught up in every mode; a missing schema is ``NotFound`` in every mode
    (``migrate`` creates it).

    ``options`` are ``Store``'s (``clock``, ``client``, ``actor``, ``correlation_ids``).
    """
    if mode not in OPEN_MODES:
        raise InvalidArgument(f"mode must be one of {', '.join(map(repr, OPEN_MODES))}, not {mode!r}: "
                              "invalid argument")
    if target is None:
        target = os.environ.get("CTRLEDGER_DATABASE_URL", "ctrledger.db")
        if not target:
            raise InvalidArgument("CTRLEDGER_DATABASE_URL is set but empty: name a store: invalid argument")
    elif not os.fspath(target):
        raise InvalidArgument("the store's target is empty: name a SQLite file or a postgresql:// URL: "
                              "invalid argument")
    text = os.fspath(target)
    if not isinstance(synchronous, str) or synchronous.upper() not in SYNCHRONOUS_MODES:
        raise InvalidArgument(
            f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, not {synchronous!r}: invalid argument"
        )
    log: Log
    if _is_postgres(text):
        try:
            settings, query = parse_url(text)
        except ValueError as e:
            raise InvalidArgument(f"{e}: invalid argument") from None
        path = os.fspath(
            readmodel or query.get("readmodel") or os.environ.get("CTRLEDGER_READMODEL")
            or default_readmodel_path(settings)
        )
        _require_log(settings, mode)
        _make_parent(path, path)
        log = PostgresLog(settings, path, create=mode == "c", readonly=mode == "r")
    else:
        path = str(Path(text))
        if mode != "c":
            problem = store_problem(path)
            if problem == "no such file":
                raise NotFound(f"no store at {path!r} (no such file): not found")
            if problem is not None:
                raise FailedPrecondition(
                    f"{path!r} is not a ctrledger store ({problem}); it was left as it is: failed precondition"
                )
        else:
            _make_parent(path, path)
        log = SQLiteLog(path, synchronous=synchronous.upper(), readonly=mode == "r")
    try:
        read_model = ReadModel(log, history=history)
        read_model.open()
        store = Store(log, read_model, **options)
        store.mode = mode
    except BaseException:
        log.close()
        raise
    if follow:
        log.follow(store._sync)
    return store


def _require_log(settings: dict[str, str], mode: str) -> None:
    """A missing schema is an error naming it; so is a missing log, unless ``mode`` creates one."""
    from .persistence.postgres import log_state

    where = f"{settings['POSTGRES_HOST']}:{settings['POSTGRES_PORT']}/{settings['POSTGRES_DBNAME']}"
    schema = settings.get("POSTGRES_SCHEMA") or "public"
    state = log_state(settings)
    if state == "no schema":
        raise NotFound(f"schema {schema!r} does not exist in {where} (ctrledger migrate creates it): not found")
    if state == "no log" and mode != "c":
        raise NotFound(f"no ctrledger log in schema {schema!r} of {where}: not found")


def _make_parent(path: str, where: str) -> None:
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise Unavailable(f"cannot open {where!r}: {e}") from e


def import_(path: str | os.PathLike[str], into: Store, **options: Any) -> ImportSummary:
    """Load an archive written by ``Store.export`` into ``into`` (see ``ctrledger.replay.import_``)."""
    from .replay import import_ as run

    return run(path, into, **options)


def migrate(target: str | os.PathLike[str] | None = None, *, accept_unhashed: bool = False) -> dict[str, int]:
    """Create or upgrade the store's schemas (the log's and the local read models'); report them.

    Opening a store creates missing tables on demand; ``migrate`` does it explicitly, e.g.
    before starting nodes. It is also the one place where events get hashed after the
    fact: a log written before tamper evidence is hashed once, and the upgrade recorded
    (``hashed`` in the result). A log that is already hashed but holds events without a
    hash is a finding (``FailedPrecondition`` naming the position), unless the operator
    has looked at them and accepts them (``accept_unhashed=True``, recorded as such).
    Raises ``FailedPrecondition`` for a schema newer than this ctrledger.
    """
    if not isinstance(accept_unhashed, bool):
        raise InvalidArgument(f"accept_unhashed must be True or False, not {accept_unhashed!r}: invalid argument")
    text = os.fspath(target) if target is not None else os.environ.get("CTRLEDGER_DATABASE_URL", "")
    if _is_postgres(text):
        from .persistence.postgres import create_schema

        try:
            create_schema(parse_url(text)[0])
        except ValueError:
            pass  # open names the problem
    with open(target, follow=False) as store:
        hashed = store.log.upgrade_hashes(accept_unhashed)
        store.read_model.refresh(force=True)
        return {"log_schema": store.log.schema_version(), "read_model_schema": store.read_model.schema_version,
                "hashed": hashed or 0}
