"""The ``Store``: containerd's ``containers.Store`` contract over an event log.

====================================================================  ===============================
method                                                                errors
====================================================================  ===============================
``create(container, *, namespace, actor, reason) -> Container``       FailedPrecondition (no namespace),
                                                                      InvalidArgument (bad namespace or
                                                                      record), AlreadyExists
``get(id, *, namespace) -> Container``                                NotFound
``list(*filters, namespace) -> list[Container]``                      InvalidArgument (bad filter)
``update(container, *fieldpaths, namespace, actor, reason,            InvalidArgument (no ID, immutable
expected_version) -> Container``                                      field, bad path, invalid result),
                                                                      NotFound, Conflict
``delete(id, *, namespace, actor, reason, expected_version)``         NotFound, Conflict
====================================================================  ===============================

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
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

from eventsourcing.persistence import IntegrityError, Mapper, PersistenceError

from .domain.container import ContainerAggregate, stream_id
from .domain.fieldpaths import merge_update
from .domain.filters import parse_filters
from .domain.model import Audit, Container
from .domain.validation import check_record, drop_empty_labels, go_quote, validate_namespace
from .errors import AlreadyExists, Conflict, InvalidArgument, NotFound, StoreError, Unavailable
from .persistence.application import LedgerApplication, sqlite_env
from .projections.current import CurrentStateReader, CurrentStateView
from .projections.runner import InlineRunner, catch_up
from .projections.schema import ensure_schema

__all__ = ["Store", "open"]

_MAX_RETRIES = 100
_CACHE_SIZE = 4096  # aggregates kept for optimistic writes
Clock = Callable[[], datetime]


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database (containers, CI): fall back
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Store:
    """An embedded ctrledger store in one SQLite file (see the module docstring).

    Use as a context manager, or call ``close()``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        clock: Clock | None = None,
        client: str = "library",
        actor: str | None = None,
    ) -> None:
        self.path = str(Path(path))
        self._clock: Clock = clock or _utcnow
        self._client = client
        self._actor = actor or _default_actor()
        try:
            ensure_schema(self.path)
            self._app = LedgerApplication(env=sqlite_env(self.path, synchronous=synchronous))
        except sqlite3.Error as e:
            raise Unavailable(f"cannot open {self.path!r}: {e}") from e
        except PersistenceError as e:
            raise Unavailable(f"cannot open {self.path!r}: {e}") from e
        self._view = CurrentStateView()
        self._app.ledger_recorder.inline_hooks.append(InlineRunner(self._view, self._app.mapper))
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._lock = threading.Lock()
        self._reader = CurrentStateReader(self._conn)
        self._closed = False
        self._cache: OrderedDict[str, ContainerAggregate] = OrderedDict()
        self._cache_lock = threading.Lock()
        with self._lock:
            catch_up(self._conn, self._view, self._app.mapper)

    # -- lifecycle ----------------------------------------------------------

    def close(self) -> None:
        """Release the store's connections. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._conn.close()
        self._app.close()

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

    @contextmanager
    def read_model(self) -> Iterator[sqlite3.Connection]:
        """The read model's connection, held exclusively for the block (for replay and tools)."""
        with self._lock:
            yield self._conn

    # -- queries --------------------------------------------------------------

    def get(self, id: str, *, namespace: str | None = "default") -> Container:  # noqa: A002
        """The live container ``id`` in ``namespace``; ``NotFound`` if there is none."""
        ns = validate_namespace(namespace)
        with self._lock:
            found = self._reader.get(ns, id) if isinstance(id, str) else None
        if found is None:
            raise NotFound(f"container {go_quote(str(id))} in namespace {go_quote(ns)}: not found")
        return found

    def list(self, *filters: str, namespace: str | None = "default") -> list[Container]:
        """The live containers of ``namespace`` matching any of ``filters``, sorted by ID bytewise.

        No filters, or any filter that is ``""``, matches everything.
        """
        ns = validate_namespace(namespace)
        flt = parse_filters(filters)
        with self._lock:
            return self._reader.list(ns, flt)

    @property
    def position(self) -> int:
        """The log position the read model has applied (the log head, in this store)."""
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
        check_record(container, "create container failed validation")
        record = _stored_form(container)
        audit = self._audit(actor, reason, correlation_id, ())
        stream = stream_id(ns, record.id)
        # Optimistic first try: most creates are of new names, so skip the read and
        # let the log's (stream, version) uniqueness tell us if the name was taken.
        first = ContainerAggregate.create(ns, record, audit, self._clock())
        if self._append(first):
            return first.to_container()
        for _ in range(_MAX_RETRIES):
            agg = self._load(stream, fresh=True)
            if agg is not None and not agg.deleted:
                raise AlreadyExists(f"container {go_quote(record.id)}: already exists")
            if agg is None:
                agg = ContainerAggregate.create(ns, record, audit, self._clock())
            else:
                agg.recreate(record, audit, self._clock())
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

        def change(agg: ContainerAggregate) -> None:
            merged = merge_update(agg.to_container(), container, fieldpaths)
            agg.change_to(merged, audit, self._clock())

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
        self._modify(ns, id, "delete", expected_version, lambda agg: agg.delete(audit, self._clock()))

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
            correlation_id=correlation_id or str(uuid.uuid4()),
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
        except PersistenceError as e:
            self._remember(agg.id, None)
            raise Unavailable(f"storage error: {e}") from e
        self._remember(agg.id, agg)
        return True


def _stored_form(c: Container) -> Container:
    """The record as create stores it: empty labels dropped, server fields cleared."""
    from dataclasses import replace

    return replace(c, labels=drop_empty_labels(c.labels), created_at=None, updated_at=None, version=0)


def open(target: str | os.PathLike[str], **options: Any) -> Store:  # noqa: A001
    """Open the store at ``target``: a path is an embedded SQLite file (created if missing)."""
    text = os.fspath(target)
    if text.startswith(("postgresql://", "postgres://")):
        raise InvalidArgument("PostgreSQL targets are not supported yet: invalid argument")
    return Store(text, **options)


# Keep StoreError importable from here for callers that catch it around open().
_ = (StoreError, Sequence)
