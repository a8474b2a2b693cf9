"""The temporal read model: every past state, queryable by position, time or version.

``TemporalView`` keeps, per container name:

* ``versions``: its state after each event of its stream, valid over
  ``[from_pos, to_pos)`` in log positions and ``[from_time, to_time)`` in event
  time (``to_*`` is NULL while it is the current state; a delete closes it);
* ``spec_pos`` in each version row: the log position of the event that set the
  spec (specs are large and change rarely: they are read from the log, which holds
  them anyway, rather than copied into the read model);
* (``label_spans``, each label value valid over the same kind of intervals, so that a
  filtered List as of any point is one indexed query, is kept by ``CurrentStateView``:
  the live labels are its open spans, so one label index serves now and the past.)

``AuditView`` keeps one ``audit`` row per event: who, why, which operation.

Both are pure handlers over their tables, fed exactly once per event with their
own tracking positions, like ``CurrentStateView``. Each event's version row is
derived from the previous version row (``version - 1``), never from another view.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, NoReturn

from ..domain.container import (
    STATUS_EVENT_CLASSES,
    ContainerEvent,
    Created,
    Deleted,
    ExtensionsChanged,
    ImageChanged,
    LabelsChanged,
    SnapshotKeyChanged,
    SpecUpdated,
    StatusEvent,
    Touched,
)
from ..domain.filters import Filter
from ..domain.history import AuditRecord, Position, Version
from ..domain.model import Container, Payload
from ..persistence.transcoder import packb, unpackb
from .current import advance_tracking, apply_events, from_micros, micros, row_to_container
from .sqlfilter import Scope, compile_filter
from .statuscols import STATUS_COLUMNS, columns_of, status_of

__all__ = ["AuditView", "TemporalReader", "TemporalView"]

_COPY = (
    "incarnation", "image", "runtime_name", "runtime_options", "spec_pos", "snapshotter", "snapshot_key",
    "sandbox", "labels", "extensions", "created_at", *STATUS_COLUMNS,
)


def _key(event: ContainerEvent) -> tuple[str, str]:
    namespace, _, container_id = event.originator_id.partition("/")
    return namespace, container_id


class TemporalView:
    """Handlers that keep ``versions``."""

    name = "temporal"
    tables: tuple[str, ...] = ("versions",)

    def __init__(self) -> None:
        self._handlers: dict[type[ContainerEvent], Callable[[sqlite3.Cursor, Any, int], None]] = {
            LabelsChanged: self._labels_changed,
            ImageChanged: lambda c, e, p: self._next(c, e, p, image=e.image),
            SpecUpdated: self._spec_updated,
            SnapshotKeyChanged: lambda c, e, p: self._next(c, e, p, snapshot_key=e.snapshot_key),
            ExtensionsChanged: self._extensions_changed,
            Touched: lambda c, e, p: self._next(c, e, p),
            Deleted: self._deleted,
            **{cls: self._status_changed for cls in STATUS_EVENT_CLASSES},
        }

    def process(self, cur: sqlite3.Cursor, events: Sequence[Any], positions: Sequence[int]) -> None:
        if events:
            advance_tracking(cur, self.name, positions[-1])
            self.apply(cur, events, positions)

    def apply(self, cur: sqlite3.Cursor, events: Sequence[Any], positions: Sequence[int]) -> None:
        # Consecutive ``Created`` events in one statement: each is the first version row of its
        # incarnation and reads nothing.
        apply_events(cur, events, positions, self._handlers, self._created)

    # -- helpers ----------------------------------------------------------

    @staticmethod
    def _close_version(cur: sqlite3.Cursor, e: ContainerEvent, pos: int) -> None:
        ns, cid = _key(e)
        cur.execute(
            "UPDATE versions SET to_pos=?, to_time=? WHERE namespace=? AND id=? AND version=?",
            (pos, micros(e.timestamp), ns, cid, e.originator_version - 1),
        )
        if cur.rowcount != 1:
            _no_version(ns, cid, e.originator_version - 1)

    def _next(
        self, cur: sqlite3.Cursor, e: ContainerEvent, pos: int, *, touch: bool = True, **changed: Any
    ) -> None:
        """A new version row: the previous one with ``changed`` columns replaced (and, with
        ``touch``, ``updated_at`` moved to the event's time)."""
        ns, cid = _key(e)
        cur.execute(
            _next_statement(tuple(changed), touch),
            (e.originator_version, pos, micros(e.timestamp), *((micros(e.timestamp),) if touch else ()),
             *(changed[c] for c in _COPY if c in changed), ns, cid, e.originator_version - 1),
        )
        if cur.rowcount != 1:
            _no_version(ns, cid, e.originator_version - 1)
        self._close_version(cur, e, pos)

    def _previous_blob(self, cur: sqlite3.Cursor, e: ContainerEvent, column: str) -> Any:
        ns, cid = _key(e)
        row = cur.execute(_previous_statement(column), (ns, cid, e.originator_version - 1)).fetchone()
        if row is None:
            _no_version(ns, cid, e.originator_version - 1)
        return unpackb(row[0])

    # -- handlers ---------------------------------------------------------

    def _created(self, cur: sqlite3.Cursor, created: Sequence[tuple[Created, int]]) -> None:
        rows = []
        for e, pos in created:
            ns, cid = _key(e)
            ts = micros(e.timestamp)
            rows.append((
                ns, cid, e.incarnation, e.originator_version, pos, ts, e.image, e.runtime.name,
                None if e.runtime.options is None else packb(e.runtime.options), pos, e.snapshotter,
                e.snapshot_key, e.sandbox, packb(dict(e.labels)), packb(dict(e.extensions)), ts, ts,
            ))
        if len(rows) == 1:
            cur.execute(_INSERT_VERSION, rows[0])
        else:
            cur.executemany(_INSERT_VERSION, rows)

    def _labels_changed(self, cur: sqlite3.Cursor, e: LabelsChanged, pos: int) -> None:
        labels: dict[str, str] = self._previous_blob(cur, e, "labels")
        for key in e.removed:
            labels.pop(key, None)
        labels.update(e.set)
        self._next(cur, e, pos, labels=packb(labels))

    def _spec_updated(self, cur: sqlite3.Cursor, e: SpecUpdated, pos: int) -> None:
        self._next(cur, e, pos, spec_pos=pos)

    def _extensions_changed(self, cur: sqlite3.Cursor, e: ExtensionsChanged, pos: int) -> None:
        extensions: dict[str, Payload] = self._previous_blob(cur, e, "extensions")
        for key in e.removed:
            extensions.pop(key, None)
        extensions.update(e.set)
        self._next(cur, e, pos, extensions=packb(extensions))

    def _deleted(self, cur: sqlite3.Cursor, e: Deleted, pos: int) -> None:
        self._close_version(cur, e, pos)

    def _status_changed(self, cur: sqlite3.Cursor, e: StatusEvent, pos: int) -> None:
        ns, cid = _key(e)
        row = cur.execute(
            f"SELECT created_at, {', '.join(STATUS_COLUMNS)} FROM versions WHERE namespace=? AND id=? AND version=?",
            (ns, cid, e.originator_version - 1),
        ).fetchone()
        if row is None:
            _no_version(ns, cid, e.originator_version - 1)
        self._next(cur, e, pos, touch=False, **columns_of(e.next_status(status_of(row[1:], from_micros(row[0])))))


_MAX_POSITION = (1 << 63) - 1  # no log position is larger (SQLite's INTEGER, PostgreSQL's BIGINT): a larger bound
# means the same as it, and SQLite cannot bind one


_INSERT_VERSION = (
    "INSERT INTO versions(namespace, id, incarnation, version, from_pos, from_time, image, runtime_name, "
    "runtime_options, spec_pos, snapshotter, snapshot_key, sandbox, labels, extensions, created_at, updated_at) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


@functools.cache
def _previous_statement(column: str) -> str:
    return f"SELECT {column} FROM versions WHERE namespace=? AND id=? AND version=?"


@functools.cache
def _next_statement(changed: tuple[str, ...], touch: bool) -> str:
    """``TemporalView._next``'s INSERT for the columns ``changed`` (and ``updated_at`` with ``touch``):
    built once per kind of event, not on every write."""
    exprs = ", ".join("?" if col in changed else col for col in _COPY)
    updated = "?" if touch else "updated_at"
    return (f"INSERT INTO versions(namespace, id, version, from_pos, from_time, updated_at, {', '.join(_COPY)}) "
            f"SELECT namespace, id, ?, ?, ?, {updated}, {exprs} FROM versions "
            "WHERE namespace=? AND id=? AND version=?")


def _no_version(ns: str, cid: str, version: int) -> NoReturn:
    """The version an event follows is not in ``versions``: the read model was changed outside
    ctrledger (the write is refused, nothing applied)."""
    raise RuntimeError(f"the read model has no version {version} of container {cid!r} in namespace {ns!r}, "
                       "which the log holds: it was changed outside ctrledger; `ctrledger rebuild` rebuilds it")


class AuditView:
    """One ``audit`` row per event."""

    name = "audit"
    tables: tuple[str, ...] = ("audit",)

    def process(self, cur: sqlite3.Cursor, events: Sequence[Any], positions: Sequence[int]) -> None:
        if events:
            advance_tracking(cur, self.name, positions[-1])
            self.apply(cur, events, positions)

    def apply(self, cur: sqlite3.Cursor, events: Sequence[Any], positions: Sequence[int]) -> None:
        rows = []
        for e, pos in zip(events, positions, strict=True):
            ns, cid = _key(e)
            a = e.audit
            rows.append((
                pos, micros(e.timestamp), ns, cid, e.originator_version, type(e).__name__,
                a.actor, a.reason, a.correlation_id, json.dumps(list(a.fieldpaths)) if a.fieldpaths else "[]",
                a.client,
            ))
        cur.executemany("INSERT INTO audit VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)


# -- queries ------------------------------------------------------------------

_VERSION_COLUMNS = (
    "v.id, v.version, v.image, v.runtime_name, v.runtime_options, "
    "(SELECT e.topic FROM stored_events e WHERE e.rowid = v.spec_pos), "
    "(SELECT e.state FROM stored_events e WHERE e.rowid = v.spec_pos), "
    "v.snapshotter, v.snapshot_key, v.sandbox, v.labels, v.extensions, v.created_at, v.updated_at, "
    + ", ".join(f"v.{c}" for c in STATUS_COLUMNS)
)

SpecReader = Callable[[str, bytes], Payload]
"""Decodes the spec from a stored event's topic and state (the log's own mapper)."""


def _row_to_container(row: Sequence[Any], spec_of: SpecReader) -> Container:
    return row_to_container(row, spec_of(row[5], row[6]))


def _validity(point: datetime | Position, prefix: str = "") -> tuple[str, tuple[Any, ...]]:
    if isinstance(point, Position):
        lo, hi, at = f"{prefix}from_pos", f"{prefix}to_pos", point.number
    else:
        lo, hi, at = f"{prefix}from_time", f"{prefix}to_time", micros(point)
    return f" AND {lo} <= ? AND ({hi} IS NULL OR {hi} > ?)", (at, at)


class TemporalReader:
    """Queries over the temporal tables."""

    def __init__(self, conn: sqlite3.Connection, spec_of: SpecReader) -> None:
        self.conn = conn
        self.spec_of = spec_of

    def get_at(self, namespace: str, container_id: str, point: datetime | Version | Position) -> Container | None:
        """The container as it was at ``point``, or None if it did not exist then."""
        if isinstance(point, Version):
            row = self.conn.execute(
                f"SELECT {_VERSION_COLUMNS}, v.to_pos FROM versions v "
                "WHERE v.namespace=? AND v.id=? AND v.version<=? ORDER BY v.version DESC LIMIT 1",
                (namespace, container_id, point.number),
            ).fetchone()
            # A closed row older than the version asked for was closed by a delete:
            # a later version would have its own row, and that row would be the answer.
            if row is None or (row[-1] is not None and row[1] < point.number):
                return None
            return _row_to_container(row[:-1], self.spec_of)
        if isinstance(point, Position):
            bound, at = "v.from_pos <= ?", point.number
        else:
            bound, at = "v.from_time <= ?", micros(point)
        row = self.conn.execute(
            f"SELECT {_VERSION_COLUMNS}, v.to_pos, v.to_time FROM versions v "
            f"WHERE v.namespace=? AND v.id=? AND {bound} ORDER BY v.from_pos DESC LIMIT 1",
            (namespace, container_id, at),
        ).fetchone()
        if row is None:
            return None
        end = row[-2] if isinstance(point, Position) else row[-1]
        if end is not None and end <= at:
            return None  # deleted by then
        return _row_to_container(row[:-2], self.spec_of)

    def list_at(self, namespace: str, flt: Filter, point: datetime | Position) -> list[Container]:
        """The containers of ``namespace`` that existed at ``point`` and matched ``flt`` then."""
        rows = self.conn.execute(*self.list_at_query(namespace, flt, point)).fetchall()
        return [_row_to_container(r, self.spec_of) for r in rows]

    @staticmethod
    def list_at_query(namespace: str, flt: Filter, point: datetime | Position) -> tuple[str, tuple[Any, ...]]:
        validity, vparams = _validity(point)
        where, params = compile_filter(flt, namespace, Scope(validity, vparams))
        row_validity, rparams = _validity(point, "v.")
        return (
            f"SELECT {_VERSION_COLUMNS} FROM versions v WHERE v.namespace=?{row_validity} AND ({where}) "
            "ORDER BY v.id",
            (namespace, *rparams, *params),
        )

    def scan_at(
        self, namespace: str, flt: Filter, point: datetime | Position, *, batch: int = 1000, after: str = "",
    ) -> Iterator[Container]:
        """``list_at`` (of the IDs after ``after``), one record at a time, in pages by ID.

        Each page is one short statement: the past does not change, so pages need no common
        snapshot, and a scan left half-read never holds the WAL back.
        """
        sql, params = self.list_at_query(namespace, flt, point)
        paged = sql.removesuffix(" ORDER BY v.id") + " AND v.id > ? ORDER BY v.id LIMIT ?"
        while True:
            rows = self.conn.execute(paged, (*params, after, batch)).fetchall()
            for row in rows:
                yield _row_to_container(row, self.spec_of)
            if len(rows) < batch:
                return
            after = rows[-1][0]

    def changed_ids(self, namespace: str, start: datetime | Position, end: datetime | Position) -> list[str]:
        """IDs of the namespace with an event after ``start`` and at or before ``end``, sorted."""
        clauses: list[str] = []
        params: list[Any] = []
        for point, op in ((start, ">"), (end, "<=")):
            if isinstance(point, Position):
                clauses.append(f"position {op} ?")
                params.append(point.number)
            else:
                clauses.append(f"recorded_at {op} ?")
                params.append(micros(point))
        rows = self.conn.execute(
            f"SELECT DISTINCT id FROM audit WHERE namespace=? AND {' AND '.join(clauses)} ORDER BY id",
            (namespace, *params),
        ).fetchall()
        return [r[0] for r in rows]

    def stream_version(self, namespace: str, container_id: str) -> int:
        """The highest version of the name's stream (0 if it never existed)."""
        row = self.conn.execute(
            "SELECT version, to_pos FROM versions WHERE namespace=? AND id=? ORDER BY version DESC LIMIT 1",
            (namespace, container_id),
        ).fetchone()
        if row is None:
            return 0
        return int(row[0]) + (1 if row[1] is not None else 0)  # a closed last row: then deleted

    def audit(
        self,
        *,
        namespace: str | None,
        container_id: str | None,
        actors: Sequence[str] | None,
        kinds: Sequence[str] | None,
        since: datetime | Position | None,
        until: datetime | Position | None,
        correlation_id: str | None,
        client: str | None,
        reason: str | None,
        after: Position | None = None,
        batch: int = 1000,
    ) -> Iterator[AuditRecord]:
        """Audit rows matching every given criterion, in log order, streamed in batches.

        Times are inclusive; a ``Position`` ``since`` means after that event, ``until`` up to it.
        """
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("namespace", namespace), ("id", container_id),
                              ("correlation_id", correlation_id), ("client", client), ("reason", reason)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        for column, values in (("actor", actors), ("kind", kinds)):
            if values is not None:
                clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
                params.extend(values)
        if after is not None:
            clauses.append("position > ?")
            params.append(min(after.number, _MAX_POSITION))
        if isinstance(since, Position):
            clauses.append("position > ?")
            params.append(min(since.number, _MAX_POSITION))
        elif since is not None:
            clauses.append("recorded_at >= ?")
            params.append(micros(since))
        if isinstance(until, Position):
            clauses.append("position <= ?")
            params.append(min(until.number, _MAX_POSITION))
        elif until is not None:
            clauses.append("recorded_at <= ?")
            params.append(micros(until))
        if namespace is not None and container_id is not None:
            # One container's rows: its events' positions from its versions (a range of their
            # primary key; a version's end is the next event or its delete), so the audit table is
            # read by its primary key, not scanned whole.
            clauses.append(
                "position IN (SELECT from_pos FROM versions WHERE namespace = ? AND id = ? UNION ALL "
                "SELECT to_pos FROM versions WHERE namespace = ? AND id = ? AND to_pos IS NOT NULL)")
            params.extend((namespace, container_id, namespace, container_id))
        where = " AND ".join(clauses) or "1"
        cursor = self.conn.execute(f"SELECT {_AUDIT_COLUMNS} FROM audit WHERE {where} ORDER BY position", params)
        try:
            while rows := cursor.fetchmany(batch):
                for r in rows:
                    yield _audit_record(r)
        finally:
            cursor.close()

    def last_change(self, namespace: str, container_id: str) -> AuditRecord | None:
        """The audit row of the name's last event (None if it never existed): its stream's last
        version row ends at its deletion, or else began at its last event."""
        row = self.conn.execute(
            f"SELECT {_AUDIT_COLUMNS} FROM audit WHERE position = (SELECT COALESCE(to_pos, from_pos) FROM versions "
            "WHERE namespace=? AND id=? ORDER BY version DESC LIMIT 1)",
            (namespace, container_id),
        ).fetchone()
        return None if row is None else _audit_record(row)


_AUDIT_COLUMNS = ("position, recorded_at, namespace, id, version, kind, actor, reason, correlation_id, fieldpaths, "
                  "client")


def _audit_record(r: Sequence[Any]) -> AuditRecord:
    return AuditRecord(
        position=r[0], recorded_at=from_micros(r[1]), namespace=r[2], id=r[3], version=r[4], kind=r[5], actor=r[6],
        reason=r[7], correlation_id=r[8], fieldpaths=() if r[9] == "[]" else tuple(json.loads(r[9])), client=r[10],
    )
