"""The current-state read model: one row per live container, and the label spans.

``CurrentStateView`` is a pure handler over the tables: given a cursor inside a
write transaction, the new events and their log positions, it updates the rows
and advances its tracking position in that same transaction. It never consults
the event store. It runs inline (in the append transaction of the embedded
store) or from the catch-up runner (rebuilds, other nodes).

``CurrentStateReader`` answers Get and filtered List from the tables.
"""

from __future__ import annotations

import builtins
import gc
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

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
from ..domain.model import Container, Payload, Runtime
from ..domain.validation import go_quote
from ..errors import DataLoss
from ..persistence.transcoder import micros, packb, unpackb
from .sqlfilter import compile_filter, register_functions
from .statuscols import DEFAULT_STATUS, STATUS_COLUMNS, columns_of, status_of

__all__ = ["CurrentStateReader", "CurrentStateView", "advance_tracking", "from_micros", "micros", "row_to_container"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# Below 2**32 seconds (the year 2106), a float's rounding error on microseconds / 1e6 stays under
# half a microsecond, and ``fromtimestamp`` rounds half to even: the exact datetime, a third faster
# than adding a timedelta (whose constructor normalises the count with long-integer arithmetic).
_FLOAT_EXACT = 2**32 * 1_000_000
_fromtimestamp = datetime.fromtimestamp


def from_micros(us: int) -> datetime:
    """The aware UTC datetime ``us`` microseconds after the epoch (exact)."""
    if 0 <= us < _FLOAT_EXACT:
        return _fromtimestamp(us / 1e6, UTC)
    return _EPOCH + timedelta(0, 0, us)  # positional: a third faster than microseconds=


def advance_tracking(cur: sqlite3.Cursor, view: str, position: int) -> None:
    """Move ``view``'s tracked position forward to ``position``, or fail.

    Fails (so the enclosing transaction rolls back) if the view is already at or
    past ``position``: an event is never applied twice.
    """
    cur.execute(
        "INSERT INTO ctrledger_tracking(view, position) VALUES (?, ?) "
        "ON CONFLICT(view) DO UPDATE SET position=excluded.position "
        "WHERE excluded.position > ctrledger_tracking.position",
        (view, position),
    )
    if cur.rowcount != 1:
        raise RuntimeError(f"read model {view!r} has already applied position {position}")


def tracked_position(conn: sqlite3.Connection | sqlite3.Cursor, view: str) -> int:
    row = conn.execute("SELECT position FROM ctrledger_tracking WHERE view=?", (view,)).fetchone()
    return int(row[0]) if row else 0


_INSERT_CONTAINER = (
    "INSERT OR REPLACE INTO containers(namespace, id, version, incarnation, image, runtime_name, runtime_options, "
    "spec_type_url, spec_value, snapshotter, snapshot_key, sandbox, labels, extensions, created_at, updated_at, "
    "record) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_OPEN_SPAN = "INSERT INTO label_spans(namespace, id, key, value, from_pos, from_time) VALUES (?,?,?,?,?,?)"


def apply_events(
    cur: sqlite3.Cursor, events: Sequence[Any], positions: Sequence[int],
    handlers: Mapping[type[ContainerEvent], Callable[[sqlite3.Cursor, Any, int], None]],
    created: Callable[[sqlite3.Cursor, Sequence[tuple[Created, int]]], None],
) -> None:
    """A view's ``apply``: each event (at its position) to its type's handler, except that each
    run of consecutive ``Created`` events goes to ``created`` at once (a few statements for all
    of them). No two events of a run are of one stream: a name is created again only after a
    ``Deleted``, which ends the run."""
    run: list[tuple[Created, int]] = []
    for event, position in zip(events, positions, strict=True):
        if type(event) is Created:
            run.append((event, position))
            continue
        if run:
            created(cur, run)
            run = []
        handler = handlers.get(type(event))
        if handler is not None:
            handler(cur, event, position)
    if run:
        created(cur, run)


def open_spans(cur: sqlite3.Cursor, ns: str, cid: str, pos: int, ts: int, labels: Mapping[str, str]) -> None:
    """Open a span, from ``pos``/``ts``, for each label in ``labels``."""
    cur.executemany(_OPEN_SPAN, [(ns, cid, k, v, pos, ts) for k, v in labels.items()])


def close_spans(cur: sqlite3.Cursor, ns: str, cid: str, pos: int, ts: int, old: Mapping[str, str]) -> None:
    """Close, at ``pos``/``ts``, the open spans of the labels ``old`` (key -> the value it had)."""
    cur.executemany(
        "UPDATE label_spans SET to_pos=?, to_time=? "
        "WHERE namespace=? AND key=? AND value=? AND id=? AND to_pos IS NULL",
        [(pos, ts, ns, k, v, cid) for k, v in old.items()],
    )


class CurrentStateView:
    """Handlers that keep ``containers``, ``label_spans`` and ``namespaces`` current.

    ``label_spans`` is the one label b-tree: a live label is its open span (``to_pos IS
    NULL``), a past one a closed span, so the list now and the list as of a point read the
    same (namespace, key, value)-ordered index, and a write changes that index once.
    Spans are kept here, with or without history: a store opened with ``history=False``
    still closes them (it never deletes one), so turning history on later loses nothing.
    """

    name = "current"
    tables: tuple[str, ...] = ("containers", "label_spans", "namespaces")

    def __init__(self) -> None:
        self._handlers: dict[type[ContainerEvent], Callable[[sqlite3.Cursor, Any, int], None]] = {
            LabelsChanged: self._labels_changed,
            ImageChanged: lambda c, e, p: self._touch(c, e, "image=?, ", (e.image,), {_R_IMAGE: e.image}),
            SpecUpdated: lambda c, e, p: self._touch(c, e, "spec_type_url=?, spec_value=?, ",
                                                     (e.spec.type_url, e.spec.value), {_R_SPEC_URL: e.spec.type_url}),
            SnapshotKeyChanged: lambda c, e, p: self._touch(c, e, "snapshot_key=?, ", (e.snapshot_key,),
                                                            {_R_SNAPSHOT_KEY: e.snapshot_key}),
            ExtensionsChanged: self._extensions_changed,
            Touched: lambda c, e, p: self._touch(c, e),
            Deleted: self._deleted,
            **{cls: self._status_changed for cls in STATUS_EVENT_CLASSES},
        }

    def process(self, cur: sqlite3.Cursor, events: Sequence[Any], positions: Sequence[int]) -> None:
        """Apply ``events`` (at ``positions``) and advance tracking, all on ``cur``."""
        if not events:
            return
        # Tracking first: it is a write, so it takes the write lock before any read.
        advance_tracking(cur, self.name, positions[-1])
        self.apply(cur, events, positions)

    def apply(self, cur: sqlite3.Cursor, events: Sequence[Any], positions: Sequence[int]) -> None:
        """Apply ``events`` (at ``positions``) to the rows; the caller owns the tracking position.

        Consecutive ``Created`` events (a sync, a burst of creates observed on containerd) are
        written together, a few statements for all of them; no two of them are of one stream
        (a name is created again only after a ``Deleted``, which ends the run)."""
        apply_events(cur, events, positions, self._handlers, self._created)

    # Every handler keys rows by the stream, i.e. (namespace, id) from the stream ID.
    @staticmethod
    def _key(event: ContainerEvent) -> tuple[str, str]:
        namespace, _, container_id = event.originator_id.partition("/")
        return namespace, container_id

    def _touch(
        self, cur: sqlite3.Cursor, event: ContainerEvent, sets: str = "", params: tuple[Any, ...] = (),
        fields: Mapping[int, Any] | None = None, record: list[Any] | None = None,
    ) -> None:
        """Set the columns ``sets`` (to ``params``), the record's ``fields`` (index -> value), and
        the version and ``updated_at`` (``record``: the row's, if the caller has read it)."""
        ns, cid = self._key(event)
        ts = micros(event.timestamp)
        if record is None:
            record = _read_record(cur, ns, cid)
        if fields:
            for i, value in fields.items():
                record[i] = value
        record[_R_UPDATED] = ts
        record[_R_VERSION] = event.originator_version
        cur.execute(
            _touch_statement(sets), (*params, event.originator_version, ts, pack_record(record), ns, cid),
        )

    def _created(self, cur: sqlite3.Cursor, created: Sequence[tuple[Created, int]]) -> None:
        """The rows of containers created (each event with its position), a statement per table
        (plain loops, no comprehensions: one create, the common case, pays for no batching)."""
        rows: list[tuple[Any, ...]] = []
        spans: list[tuple[str, str, str, str, int, int]] = []
        namespaces: list[str] = []  # the new namespaces, in order
        for e, pos in created:
            ns, cid = self._key(e)
            ts = micros(e.timestamp)
            if e.incarnation == 1 and ns not in namespaces:
                namespaces.append(ns)
            options = None if e.runtime.options is None else packb(e.runtime.options)
            labels, extensions = packb(dict(e.labels)), packb(dict(e.extensions))
            rows.append((
                ns, cid, e.originator_version, e.incarnation, e.image, e.runtime.name, options,
                e.spec.type_url, e.spec.value, e.snapshotter, e.snapshot_key, e.sandbox, labels, extensions, ts, ts,
                pack_record((cid, e.originator_version, e.spec.type_url, e.image, e.runtime.name, options,
                             e.snapshotter, e.snapshot_key, e.sandbox, dict(e.labels), dict(e.extensions), ts, ts,
                             *DEFAULT_STATUS)),
            ))
            for k, v in e.labels.items():
                spans.append((ns, cid, k, v, pos, ts))
        for ns in namespaces:
            cur.execute("INSERT OR IGNORE INTO namespaces(name) VALUES (?)", (ns,))
        if len(rows) == 1:
            cur.execute(_INSERT_CONTAINER, rows[0])
        else:
            cur.executemany(_INSERT_CONTAINER, rows)
        if spans:
            cur.executemany(_OPEN_SPAN, spans)

    def _labels(self, cur: sqlite3.Cursor, e: ContainerEvent) -> dict[str, str]:
        labels: dict[str, str] = _read_record(cur, *self._key(e), "labels")
        return labels

    def _labels_changed(self, cur: sqlite3.Cursor, e: LabelsChanged, pos: int) -> None:
        ns, cid = self._key(e)
        ts = micros(e.timestamp)
        record: list[Any] = _read_record(cur, ns, cid)
        labels: dict[str, str] = record[_R_LABELS]
        close_spans(cur, ns, cid, pos, ts, {k: labels[k] for k in (*e.removed, *e.set) if k in labels})
        for key in e.removed:
            labels.pop(key, None)
        labels.update(e.set)
        open_spans(cur, ns, cid, pos, ts, e.set)
        self._touch(cur, e, "labels=?, ", (packb(labels),), None, record)

    def _extensions_changed(self, cur: sqlite3.Cursor, e: ExtensionsChanged, pos: int) -> None:
        ns, cid = self._key(e)
        record: list[Any] = _read_record(cur, ns, cid)
        extensions: dict[str, Payload] = record[_R_EXT]
        for key in e.removed:
            extensions.pop(key, None)
        extensions.update(e.set)
        self._touch(cur, e, "extensions=?, ", (packb(extensions),), None, record)

    def _deleted(self, cur: sqlite3.Cursor, e: Deleted, pos: int) -> None:
        ns, cid = self._key(e)
        close_spans(cur, ns, cid, pos, micros(e.timestamp), self._labels(cur, e))
        cur.execute("DELETE FROM containers WHERE namespace=? AND id=?", (ns, cid))

    def _status_changed(self, cur: sqlite3.Cursor, e: StatusEvent, pos: int) -> None:
        # The status after the event, from the status before it (the row) and the event
        # alone: the same pure step the aggregate applies. ``updated_at`` stays.
        ns, cid = self._key(e)
        record: list[Any] = _read_record(cur, ns, cid)
        columns = columns_of(e.next_status(status_of(record[_R_STATUS:], from_micros(record[_R_CREATED]))))
        record[_R_STATUS:] = columns.values()
        record[_R_VERSION] = e.originator_version
        cur.execute(
            f"UPDATE containers SET {''.join(f'{c}=?, ' for c in columns)}version=?, record=? "
            "WHERE namespace=? AND id=?",
            (*columns.values(), e.originator_version, pack_record(record), ns, cid),
        )


_COLUMNS = (
    "id, version, image, runtime_name, runtime_options, spec_type_url, spec_value, "
    "snapshotter, snapshot_key, sandbox, labels, extensions, created_at, updated_at, " + ", ".join(STATUS_COLUMNS)
)


@contextmanager
def no_gc() -> Iterator[None]:
    """The cyclic GC off for the block: building many acyclic records (a list, a bulk build)
    would trip it again and again for nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_EMPTY_MAP = packb({})


@lru_cache(maxsize=1024)
def _runtime(name: str, options: bytes | None) -> Runtime:
    # Runtimes are immutable and few: a list of 100k containers shares a handful.
    return Runtime(name, None if options is None else unpackb(options))


def row_to_container(row: Sequence[Any], spec: Payload) -> Container:
    """A record from a row of ``id, version, image, runtime_name, runtime_options, <spec: 2
    columns>, snapshotter, snapshot_key, sandbox, labels, extensions, created_at, updated_at``
    and the status columns (``STATUS_COLUMNS``) (the spec already decoded by the caller: its
    columns differ between read models)."""
    (cid, version, image, runtime_name, runtime_options, _, _,
     snapshotter, snapshot_key, sandbox, labels, extensions, created_at, updated_at) = row[:14]
    created = from_micros(created_at)
    return Container.trusted(
        id=cid,
        labels=unpackb(labels),
        image=image,
        runtime=_runtime(runtime_name, runtime_options),
        spec=spec,
        snapshotter=snapshotter,
        snapshot_key=snapshot_key,
        created_at=created,
        updated_at=from_micros(updated_at),
        extensions={} if extensions == _EMPTY_MAP else unpackb(extensions),
        sandbox=sandbox,
        version=version,
        status=status_of(row[14:], created),
    )


# ``containers.record``: the row's fields packed in one blob, in this order, then the status
# values (``STATUS_COLUMNS`` order; none for a container never started); labels and
# extensions as maps. The columns stay, for filters and SQL; a read takes the blob: the
# sqlite3 module pays ~2k instructions for every column it hands back (a get of 24 columns
# spent half its SQL time there), one blob and its unpacking far less.
RECORD_FIELDS: tuple[str, ...] = (
    "id", "version", "spec_type_url", "image", "runtime_name", "runtime_options", "snapshotter", "snapshot_key",
    "sandbox", "labels", "extensions", "created_at", "updated_at", *STATUS_COLUMNS)
(_R_ID, _R_VERSION, _R_SPEC_URL, _R_IMAGE, _R_RT_NAME, _R_RT_OPTS, _R_SNAPSHOTTER, _R_SNAPSHOT_KEY, _R_SANDBOX,
 _R_LABELS, _R_EXT, _R_CREATED, _R_UPDATED) = range(13)
_R_STATUS = 13
_RECORD_COLUMNS = "spec_value, record"  # the spec's bytes stay a column: kilobytes, changed by few events
_GET = f"SELECT {_RECORD_COLUMNS} FROM containers WHERE namespace=? AND id=?"


def pack_record(values: Sequence[Any]) -> bytes:
    """``containers.record`` from the values of ``RECORD_FIELDS``, in order: the column values,
    but labels and extensions as maps (one unpacking reads the whole record), and no status
    values at all for a container never started (most of them: ten values fewer to unpack)."""
    values = list(values)
    if len(values) > _R_STATUS and tuple(values[_R_STATUS:]) == DEFAULT_STATUS:
        del values[_R_STATUS:]
    return packb(values)


# The handlers' statements whose text depends on the event, each built once (a text built on
# every write is also hashed again by the driver's statement cache).
@lru_cache(maxsize=64)
def _touch_statement(sets: str) -> str:
    return f"UPDATE containers SET {sets}version=?, updated_at=?, record=? WHERE namespace=? AND id=?"


@lru_cache(maxsize=64)
def _read_statement(column: str) -> str:
    return f"SELECT {column} FROM containers WHERE namespace=? AND id=?"


def _read_record(cur: sqlite3.Cursor, ns: str, cid: str, column: str = "record") -> Any:
    """The row's ``column`` (unpacked) of a container an event changes; the log says it is live, so
    no row means the read model was changed outside ctrledger (the write is refused, nothing applied)."""
    row = cur.execute(_read_statement(column), (ns, cid)).fetchone()
    if row is None:
        raise RuntimeError(f"the read model has no row for container {cid!r} in namespace {ns!r}, which the "
                           "log holds: it was changed outside ctrledger; `ctrledger rebuild` rebuilds it")
    try:
        value = unpackb(row[0])
        if column == "record" and (not isinstance(value, list) or len(value) not in (_R_STATUS, len(RECORD_FIELDS))):
            raise ValueError(f"{len(value) if isinstance(value, list) else type(value).__name__} fields")
    except Exception as e:  # as a read of it reports it (``CurrentStateReader._records``)
        raise _damaged(f"container {go_quote(cid)}", ns, e) from e
    return value


def _damaged(which: str, ns: str, e: Exception) -> DataLoss:
    """The error of a row whose packed record cannot be read (edited outside ctrledger)."""
    return DataLoss(f"the read model's row of {which} in namespace {go_quote(ns)} is damaged: it cannot be read "
                    f"({type(e).__name__}: {e}); `ctrledger rebuild` rebuilds it: data loss")


def _row_to_container(row: Sequence[Any]) -> Container:
    """A record from a row of ``_RECORD_COLUMNS``: two columns (each costs the driver ~2k instructions).

    ``Container.trusted`` and ``Payload.trusted``, inlined: a list builds 100k of these, and
    a call with keyword arguments costs more than the dict literal handed over here."""
    spec_value, record = row
    (cid, version, spec_type_url, image, runtime_name, runtime_options, snapshotter, snapshot_key, sandbox, labels,
     extensions, created_at, updated_at, *status) = unpackb(record)
    created = (_fromtimestamp(created_at / 1e6, UTC) if 0 <= created_at < _FLOAT_EXACT  # from_micros, inlined
               else _EPOCH + timedelta(0, 0, created_at))
    spec = _new(Payload)
    _set(spec, "__dict__", {"type_url": spec_type_url, "value": spec_value})
    obj = _new(Container)
    _set(obj, "__dict__", {
        "id": cid,
        "labels": labels,
        "image": image,
        "runtime": _runtime(runtime_name, runtime_options),
        "spec": spec,
        "snapshotter": snapshotter,
        "snapshot_key": snapshot_key,
        "created_at": created,
        # never changed since its creation (most of a list): the same (immutable) datetime
        "updated_at": created if updated_at == created_at else from_micros(updated_at),
        "extensions": extensions,
        "sandbox": sandbox,
        "version": version,
        "status": status_of(status, created),
    })
    return obj


_new, _set = object.__new__, object.__setattr__


class CurrentStateReader:
    """Queries over the current-state tables through one SQLite connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        register_functions(conn)

    def get(self, namespace: str, container_id: str) -> Container | None:
        row = self.conn.execute(_GET, (namespace, container_id)).fetchone()
        return None if row is None else self._records(namespace, (row,))[0]

    def get_many(self, namespace: str, container_ids: Sequence[str]) -> dict[str, Container]:
        """The live containers among ``container_ids``, by ID (a few queries, not one per ID)."""
        found: dict[str, Container] = {}
        ids = list(container_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            rows = self.conn.execute(
                f"SELECT {_RECORD_COLUMNS} FROM containers WHERE namespace=? AND id IN ({', '.join('?' * len(chunk))})",
                (namespace, *chunk),
            ).fetchall()
            for c in self._records(namespace, rows):
                found[c.id] = c
        return found

    def list(self, namespace: str, flt: Filter) -> list[Container]:
        rows = self.conn.execute(*self.list_query(namespace, flt)).fetchall()
        with no_gc():  # building 100k records trips the cyclic GC for nothing: none has cycles
            return self._records(namespace, rows)

    def _records(self, namespace: str, rows: Sequence[Sequence[Any]]) -> builtins.list[Container]:
        """The records of ``rows``; ``DataLoss`` naming the container whose row cannot be read
        (a packed record edited outside ctrledger), not the decoder's own error."""
        try:
            return [_row_to_container(r) for r in rows]
        except Exception:
            for r in rows:
                try:
                    _row_to_container(r)
                except Exception as e:
                    found = self.conn.execute("SELECT id FROM containers WHERE namespace=? AND record IS ?",
                                              (namespace, r[1])).fetchone()
                    which = "a container" if found is None else f"container {go_quote(str(found[0]))}"
                    raise _damaged(which, namespace, e) from e
            raise

    def versions(self, namespace: str, flt: Filter) -> builtins.list[tuple[str, int]]:
        """(id, version) of the containers ``list`` returns, in its order: two columns, no record built."""
        rows = self.conn.execute(*self.list_query(namespace, flt, "id, version")).fetchall()
        return [(str(r[0]), int(r[1])) for r in rows]

    @staticmethod
    def list_query(namespace: str, flt: Filter, columns: str = _RECORD_COLUMNS) -> tuple[str, tuple[Any, ...]]:
        where, params = compile_filter(flt, namespace)
        return (f"SELECT {columns} FROM containers WHERE namespace=? AND ({where}) ORDER BY id",
                (namespace, *params))

    def scan(
        self, namespace: str, flt: Filter, *, batch: int = 1000,
        then: Callable[[int, str], Iterator[Container]] | None = None, after: str = "",
    ) -> Iterator[Container]:
        """``list`` (of the IDs after ``after``), one record at a time, in pages by ID.

        Each page is read in its own short read transaction, so a scan left half-read
        holds no snapshot and never stops the WAL from being checkpointed. Every page
        shows the read model at the position the scan started at: when a write moves it
        during the scan, ``then(start_position, after_id)`` yields the rest as of that
        position (the temporal model); without ``then`` the later pages show the
        current state.
        """
        sql, params = self.list_query(namespace, flt)
        paged = sql.removesuffix(" ORDER BY id") + " AND id > ? ORDER BY id LIMIT ?"
        start = None  # after "": from the first ID ("" sorts before every ID)
        while True:
            self.conn.execute("BEGIN")
            try:
                position = self.position()
                start = position if start is None else start
                moved = position != start and then is not None
                rows = [] if moved else self.conn.execute(paged, (*params, after, batch)).fetchall()
            finally:
                self.conn.execute("COMMIT")
            if moved:
                assert then is not None
                yield from then(start, after)
                return
            page = self._records(namespace, rows)
            yield from page
            if len(rows) < batch:
                return
            after = page[-1].id

    def namespaces(self) -> builtins.list[str]:
        """Every namespace that has ever held a container, sorted bytewise."""
        return sorted((str(r[0]) for r in self.conn.execute("SELECT name FROM namespaces")),
                      key=lambda n: n.encode("utf-8", "surrogateescape"))

    def namespace_known(self, namespace: str) -> bool:
        """Whether the namespace has ever held a container (containerd's bucket exists)."""
        return self.conn.execute("SELECT 1 FROM namespaces WHERE name=?", (namespace,)).fetchone() is not None

    def position(self, view: str = CurrentStateView.name) -> int:
        return tracked_position(self.conn, view)
