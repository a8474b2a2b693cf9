"""The read models built in bulk: the log read stream by stream, each row written once.

``CurrentStateView``, ``TemporalView`` and ``AuditView`` apply one event at a time with a
few SQL statements each (they run inside every append). Rebuilding a read model from a
long log that way costs ~15 random b-tree writes per event. ``BulkBuilder`` is fed the log
**in stream order** (each container's events in version order, one container after the
other) and keeps the state of one container only (the state after its last event, its
open version, its open label spans), so its memory does not grow with the log nor with the
number of containers. Each row is written once, when it is final, with ``executemany``:

* a version row when the next event of its stream closes it (or at the stream's end, open);
  in stream order these come in the ``versions`` table's key order;
* at the stream's end, its ``containers`` row (key order too);
* a label span when it is closed (the live labels are the spans still open at the stream's
  end), and an audit row per event: these are keyed by label and by log position, so they
  are appended to unindexed staging tables and copied into their tables sorted by key at
  the end (``finish``);
* ``namespaces`` at the end.

The target is a scratch database holding the views' tables with the store's own DDL
(``create_tables``); the indexes whose entries arrive in order are kept while loading, the
others created after the load (``finish``): one sort each instead of a random insert per
row. The finished tables are then copied into the store's file as they are
(``install_built``: SQLite's transfer of whole b-trees).

Events are decoded to plain values (``LedgerMapper.plain_decoder``: no event objects;
upcast and shape-checked like every decoded event); a status event is decoded whole,
since its next status is the event's own pure step. Every value is computed by the same
steps the views take (the labels map updated in the same order and packed with the same
encoder, ``columns_of(next_status(...))`` for a status event), so the tables equal those
the views write event by event: ``tests/test_read_model.py`` and ``tests/test_replay.py``
compare them (``verify_projections`` rebuilds with the views).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from eventsourcing.persistence import Mapper

from ..domain.container import (
    STATUS_EVENT_CLASSES,
    Created,
    Deleted,
    ExtensionsChanged,
    ImageChanged,
    LabelsChanged,
    SnapshotKeyChanged,
    SpecUpdated,
    Touched,
)
from ..errors import DataLoss, FailedPrecondition
from ..persistence.log import decode_event
from ..persistence.sqlite import read_only_connection, write_transaction
from ..persistence.transcoder import packb, unpackb
from .current import CurrentStateView, from_micros, no_gc, pack_record
from .runner import View, read_log
from .statuscols import DEFAULT_STATUS, STATUS_COLUMNS, columns_of, status_of
from .temporal import AuditView, TemporalView

__all__ = [
    "BULK_BATCH", "BulkBuilder", "build_in_bulk", "bulk_capable", "catch_up_in_bulk", "create_tables",
    "install_built", "view_tables",
]

BULK_BATCH = 20_000  # events read, applied and committed at a time
FLUSH_ROWS = 20_000
FLUSH_CONTAINERS = 1_000  # a containers row carries its spec (kilobytes): a few at a time

# One container's state: the columns its current row and its open version row share.
(_INC, _VER, _IMAGE, _RT_NAME, _RT_OPTS, _SPEC_POS, _SPEC_URL, _SPEC_VALUE, _SNAPSHOTTER, _SNAPSHOT_KEY,
 _SANDBOX, _LABELS, _EXT, _CREATED, _UPDATED, _FROM_POS, _FROM_TIME, _STATUS, _SPANS) = range(19)


# Each table's columns: those every row gives, then groups that a row gives only when they are not
# their usual value (an open version has no end yet; most containers have no runtime options and their
# status is the default). A row leaves a group out by writing it as SQL literals instead of parameters:
# a None or a bytes parameter costs the sqlite3 module ~0.3 µs each (its adapter lookup); a literal, nothing.
_Group = tuple[tuple[str, ...], tuple[Any, ...]]  # (columns, their usual values)
_OPEN: _Group = (("to_pos", "to_time"), (None, None))
_NO_OPTIONS: _Group = (("runtime_options",), (None,))
_STATUS_GROUP: _Group = (STATUS_COLUMNS, DEFAULT_STATUS)

_CONTAINERS = ("namespace", "id", "version", "incarnation", "image", "runtime_name", "spec_type_url", "spec_value",
               "snapshotter", "snapshot_key", "sandbox", "labels", "extensions", "created_at", "updated_at",
               "record")
_VERSIONS = ("namespace", "id", "version", "incarnation", "from_pos", "from_time", "image", "runtime_name",
             "spec_pos", "snapshotter", "snapshot_key", "sandbox", "labels", "extensions", "created_at", "updated_at")
_SPANS_COLS = ("namespace", "key", "value", "id", "from_pos", "from_time")
_AUDIT = ("position", "recorded_at", "namespace", "id", "version", "kind", "actor", "reason", "correlation_id",
          "fieldpaths", "client")

# table -> (the columns every row gives, its optional groups (bit i of a row's variant: it gives group i),
#           the staging table its rows go through first (None: written directly), the key order they are
#           copied in from there)
_TABLES: dict[str, tuple[tuple[str, ...], tuple[_Group, ...], str | None, str]] = {
    "containers": (_CONTAINERS, (_NO_OPTIONS, _STATUS_GROUP), None, ""),
    "namespaces": (("name",), (), None, ""),
    "versions": (_VERSIONS, (_OPEN, _NO_OPTIONS, _STATUS_GROUP), None, ""),
    "label_spans": (_SPANS_COLS, (_OPEN,), "bulk_label_spans", "namespace, key, value, id, from_pos"),
    "audit": (_AUDIT, (), "bulk_audit", "position"),
}


def _blob(value: Any) -> bytearray:
    """``packb(value)``, as the bytearray the sqlite3 module binds without its adapter lookup (a BLOB
    either way)."""
    return bytearray(packb(value))


def _optional(row: tuple[Any, ...], variant: int, bit: int, s: list[Any]) -> tuple[int, tuple[Any, ...]]:
    """``row`` extended with the state's runtime options and status where they are not their usual
    values, and ``variant`` with bits ``bit`` and ``bit + 1`` set to say so (see ``_TABLES``)."""
    if s[_RT_OPTS] is not None:
        row += (s[_RT_OPTS],)
        variant |= 1 << bit
    if s[_STATUS] is not DEFAULT_STATUS:
        row += s[_STATUS]
        variant |= 2 << bit
    return variant, row


def _columns(table: str) -> tuple[str, ...]:
    fixed, groups = _TABLES[table][:2]
    return fixed + tuple(c for columns, _ in groups for c in columns)


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(int(value))


def _insert(table: str, variant: int) -> str:
    """The INSERT of ``table``'s rows of ``variant`` (see ``_TABLES``)."""
    fixed, groups, staged, _ = _TABLES[table]
    values = ["?"] * len(fixed)
    for i, (columns, usual) in enumerate(groups):
        values += ["?"] * len(columns) if variant >> i & 1 else [_literal(v) for v in usual]
    return f"INSERT INTO {staged or table}({', '.join(_columns(table))}) VALUES ({', '.join(values)})"


_OF_VIEW = {
    CurrentStateView.name: ("containers", "label_spans", "namespaces"),
    TemporalView.name: ("versions",),
    AuditView.name: ("audit",),
}


def view_tables(views: Iterable[str]) -> list[str]:
    """The tables of the views named (each view's ``tables``)."""
    return [t for v in views for t in _OF_VIEW[v]]


def create_tables(target: sqlite3.Connection, ddl: Sequence[tuple[str, str, str]]) -> list[str]:
    """Create the views' tables in ``target`` from the store's own DDL (``(type, table, sql)`` rows of
    its ``sqlite_master``, tables first) and the staging tables; returns the DDL of the indexes left
    for ``BulkBuilder.finish`` to create after the load (so the tables are exactly the store's).

    The indexes of ``containers`` and ``versions`` are created at once: their rows arrive in stream
    order, which is (nearly) their indexes' order too, so each entry is appended, and a build after
    the load would read the whole table (``containers`` carries the specs) once per index. The others'
    entries would land at random: those are sorted once, after the load."""
    later = []
    for kind, table, sql in ddl:
        if kind == "table":
            target.execute(f'DROP TABLE IF EXISTS "{table}"')
            target.execute(sql)
            staged = _TABLES[table][2] if table in _TABLES else None
            if staged is not None:
                target.execute(f"DROP TABLE IF EXISTS {staged}")
                target.execute(f"CREATE TABLE {staged} ({', '.join(_columns(table))})")
        elif table in ("containers", "versions"):
            target.execute(sql)
        else:
            later.append(sql)
    return later


class BulkBuilder:
    """Applies the log, fed in stream order, and writes the rows (see the module docstring)."""

    def __init__(self, conn: sqlite3.Connection, views: Iterable[str], mapper: Mapper[Any]) -> None:
        self.views = set(views)
        unknown = self.views - set(_OF_VIEW)
        if unknown:
            raise ValueError(f"no bulk build for the view(s) {sorted(unknown)}")
        self.conn = conn
        self.mapper = mapper
        self._decode = mapper.plain_decoder()  # type: ignore[attr-defined]
        self.current = CurrentStateView.name in self.views
        self.temporal = TemporalView.name in self.views
        self.audited = AuditView.name in self.views
        self.tables = view_tables(self.views)
        self.namespaces: set[str] = set()
        self._stream: str | None = None
        self._key = ("", "")
        self._s: list[Any] | None = None  # the state of the stream being read (None: no live container)
        self._fieldpaths: dict[tuple[str, ...], str] = {}
        self._classes: dict[str, type] = {}
        # rows by (table, variant), each variant's own INSERT
        self._rows: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
        for table in self.tables:
            for variant in range(1 << len(_TABLES[table][1])):
                self._rows[table, variant] = []
        self._sql = {key: _insert(*key) for key in self._rows}
        self._audit = self._rows.get(("audit", 0))
        self._spans = (self._rows["label_spans", 0], self._rows["label_spans", 1]) if self.current else None
        self._handlers = {
            Created: self._created,
            LabelsChanged: self._labels_changed,
            ImageChanged: self._image_changed,
            SpecUpdated: self._spec_updated,
            SnapshotKeyChanged: self._snapshot_key_changed,
            ExtensionsChanged: self._extensions_changed,
            Touched: self._touched,
            Deleted: self._deleted,
        }

    # -- feeding ------------------------------------------------------------------------------------

    def apply(self, rows: Iterable[Sequence[Any]]) -> None:
        """Apply stored events ``(position, stream, version, topic, state)``, each exactly once, each
        stream's in version order and the streams one after the other (``ORDER BY`` the stream)."""
        handlers = self._handlers
        audit = self._audit
        to_plain = self._decode
        for pos, stream, version, topic, state in rows:
            if stream != self._stream:
                self._end_stream()
                self._stream = stream
                namespace, _, container_id = stream.partition("/")
                self._key = (namespace, container_id)
            try:
                cls, d = to_plain(stream, version, topic, state)
            except DataLoss as e:
                raise DataLoss(f"at log position {pos}: {e.message}; 'ctrledger verify' tells what changed") from e
            ts = d["timestamp"]
            if audit is not None:
                a = d["audit"]
                if a[3]:
                    fieldpaths = tuple(a[3])
                    paths = self._fieldpaths.get(fieldpaths)
                    if paths is None:
                        paths = json.dumps(a[3])
                        if len(self._fieldpaths) < 4096:  # a few combinations recur: encode each once
                            self._fieldpaths[fieldpaths] = paths
                else:
                    paths = "[]"
                audit.append((pos, ts, self._key[0], self._key[1], version, cls.__name__, a[0], a[1], a[2], paths,
                              a[4]))
            handler = handlers.get(cls)
            if handler is not None:
                try:
                    handler(d, pos, version, ts)
                except KeyError as e:  # what an event object without the field raises
                    raise AttributeError(f"the {cls.__name__} event at log position {pos} has no field "
                                         f"{e.args[0]!r} (is an upcaster missing?)") from None
            elif cls in STATUS_EVENT_CLASSES:
                self._status_changed(decode_event(self.mapper, pos, stream, version, topic, state), pos, version,
                                     ts)
        for key, buffered in self._rows.items():
            if len(buffered) >= (FLUSH_CONTAINERS if key[0] == "containers" else FLUSH_ROWS):
                self._flush(key)

    def finish(self, indexes: Sequence[str]) -> None:
        """Write what is still open (the last stream), the namespaces, the staged tables in key order,
        then create the tables' ``indexes``."""
        self._end_stream()
        self._stream = None
        if self.current:
            self._rows["namespaces", 0].extend((n,) for n in sorted(self.namespaces))
        for key in self._rows:
            self._flush(key)
        for table in self.tables:
            _, _, staged, order = _TABLES[table]
            if staged is not None:
                cols = ", ".join(_columns(table))
                self.conn.execute(f"INSERT INTO {table}({cols}) SELECT {cols} FROM {staged} ORDER BY {order}")
                self.conn.execute(f"DROP TABLE {staged}")
        for sql in indexes:
            self.conn.execute(sql)

    def _flush(self, key: tuple[str, int]) -> None:
        rows = self._rows[key]
        if rows:
            self.conn.executemany(self._sql[key], rows)
            rows.clear()

    # -- writing ------------------------------------------------------------------------------------

    def _end_stream(self) -> None:
        """The stream read is complete: write its live container and what it left open."""
        s = self._s
        if s is None:
            return
        self._s = None
        if self.current:
            ns, cid = self._key
            row: tuple[Any, ...] = (
                ns, cid, s[_VER], s[_INC], s[_IMAGE], s[_RT_NAME], s[_SPEC_URL], s[_SPEC_VALUE], s[_SNAPSHOTTER],
                s[_SNAPSHOT_KEY], s[_SANDBOX], s[_LABELS], s[_EXT], s[_CREATED], s[_UPDATED],
                bytearray(pack_record((cid, s[_VER], s[_SPEC_URL], s[_IMAGE], s[_RT_NAME], s[_RT_OPTS], s[_SNAPSHOTTER],
                                       s[_SNAPSHOT_KEY], s[_SANDBOX], unpackb(s[_LABELS]), unpackb(s[_EXT]),
                                       s[_CREATED], s[_UPDATED], *s[_STATUS]))))
            variant, row = _optional(row, 0, 0, s)
            self._rows["containers", variant].append(row)
        self._close(s, None, None)
        self._close_spans(s[_SPANS], list(s[_SPANS]), None, None)

    def _close(self, s: list[Any], pos: int | None, ts: int | None) -> None:
        """Write the open version row of ``s`` (closed at ``pos``/``ts``, or left open with None)."""
        if not self.temporal:
            return
        ns, cid = self._key
        row: tuple[Any, ...] = (
            ns, cid, s[_VER], s[_INC], s[_FROM_POS], s[_FROM_TIME], s[_IMAGE], s[_RT_NAME], s[_SPEC_POS],
            s[_SNAPSHOTTER], s[_SNAPSHOT_KEY], s[_SANDBOX], s[_LABELS], s[_EXT], s[_CREATED], s[_UPDATED])
        if pos is not None:
            row += (pos, ts)
        variant, row = _optional(row, pos is not None, 1, s)
        self._rows["versions", variant].append(row)

    def _close_spans(self, spans: dict[str, tuple[str, int, int]], keys: Iterable[str], pos: int | None,
                     ts: int | None) -> None:
        if not self.current:  # the spans are the current view's (its live labels are the open ones)
            return
        ns, cid = self._key
        assert self._spans is not None
        if pos is None:
            out = self._spans[0]
            for k in keys:
                value, from_pos, from_time = spans[k]
                out.append((ns, k, value, cid, from_pos, from_time))
        else:
            out = self._spans[1]
            for k in keys:
                value, from_pos, from_time = spans[k]
                out.append((ns, k, value, cid, from_pos, from_time, pos, ts))

    def _next(self, pos: int, version: int, ts: int, touch: bool = True) -> list[Any] | None:
        """Close the open version of the stream and start the next (the caller then changes it)."""
        s = self._s
        if s is None:
            return None  # the views find no row to change either
        self._close(s, pos, ts)
        s[_VER] = version
        s[_FROM_POS], s[_FROM_TIME] = pos, ts
        if touch:
            s[_UPDATED] = ts
        return s

    # -- handlers (the views' steps, in memory) -----------------------------------------------------

    def _created(self, d: dict[str, Any], pos: int, version: int, ts: int) -> None:
        old = self._s
        if old is not None:  # created again without a delete (the views leave the old rows open)
            self._close(old, None, None)
            self._close_spans(old[_SPANS], list(old[_SPANS]), None, None)
        incarnation = d["incarnation"]
        if incarnation == 1:
            self.namespaces.add(self._key[0])
        labels = dict(d["labels"])
        runtime, spec = d["runtime"], d["spec"]
        self._s = [
            incarnation, version, d["image"], runtime.name,
            None if runtime.options is None else packb(runtime.options), pos, spec.type_url, spec.value,
            d["snapshotter"], d["snapshot_key"], d["sandbox"], _blob(labels), _blob(dict(d["extensions"])), ts, ts,
            pos, ts, DEFAULT_STATUS, {k: (v, pos, ts) for k, v in labels.items()},
        ]

    def _labels_changed(self, d: dict[str, Any], pos: int, version: int, ts: int) -> None:
        s = self._next(pos, version, ts)
        if s is None:
            return
        spans: dict[str, tuple[str, int, int]] = s[_SPANS]
        removed, changed = d["removed"], d["set"]
        self._close_spans(spans, dict.fromkeys(k for k in (*removed, *changed) if k in spans), pos, ts)
        for k in removed:
            spans.pop(k, None)
        for k, v in changed.items():
            spans[k] = (v, pos, ts)
        s[_LABELS] = _blob({k: v for k, (v, _, _) in spans.items()})

    def _image_changed(self, d: dict[str, Any], pos: int, version: int, ts: int) -> None:
        s = self._next(pos, version, ts)
        if s is not None:
            s[_IMAGE] = d["image"]

    def _spec_updated(self, d: dict[str, Any], pos: int, version: int, ts: int) -> None:
        s = self._next(pos, version, ts)
        if s is not None:
            spec = d["spec"]
            s[_SPEC_POS], s[_SPEC_URL], s[_SPEC_VALUE] = pos, spec.type_url, spec.value

    def _snapshot_key_changed(self, d: dict[str, Any], pos: int, version: int, ts: int) -> None:
        s = self._next(pos, version, ts)
        if s is not None:
            s[_SNAPSHOT_KEY] = d["snapshot_key"]

    def _extensions_changed(self, d: dict[str, Any], pos: int, version: int, ts: int) -> None:
        s = self._next(pos, version, ts)
        if s is None:
            return
        extensions = unpackb(s[_EXT])
        for k in d["removed"]:
            extensions.pop(k, None)
        extensions.update(d["set"])
        s[_EXT] = _blob(extensions)

    def _touched(self, d: dict[str, Any], pos: int, version: int, ts: int) -> None:
        self._next(pos, version, ts)

    def _deleted(self, d: dict[str, Any], pos: int, version: int, ts: int) -> None:
        s, self._s = self._s, None
        if s is not None:
            self._close_spans(s[_SPANS], list(s[_SPANS]), pos, ts)
            self._close(s, pos, ts)

    def _status_changed(self, e: Any, pos: int, version: int, ts: int) -> None:
        s = self._next(pos, version, ts, touch=False)
        if s is not None:
            columns = columns_of(e.next_status(status_of(s[_STATUS], from_micros(s[_CREATED]))))
            s[_STATUS] = tuple(columns[c] for c in STATUS_COLUMNS)


# -- building into a scratch file, and installing it ----------------------------------------------------


def open_scratch(path: str | os.PathLike[str], like: sqlite3.Connection) -> sqlite3.Connection:
    """A scratch file for a bulk build, with the page size of the store ``like`` (so its b-trees are
    copied as they are): no journal, no syncs (it is built again from scratch if anything fails)."""
    conn = sqlite3.connect(os.fspath(path), isolation_level=None, timeout=30)
    conn.execute(f"PRAGMA page_size={int(like.execute('PRAGMA page_size').fetchone()[0])}")
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-32768")  # 32 MiB: also what SQLite's sorter buffers, per sort
    conn.execute("CREATE TABLE IF NOT EXISTS ctrledger_meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("CREATE TABLE IF NOT EXISTS ctrledger_tracking (view TEXT PRIMARY KEY, position INTEGER NOT NULL)")
    return conn


def build_in_bulk(
    log: sqlite3.Connection,
    scratch: str | os.PathLike[str],
    views: Sequence[View],
    mapper: Mapper[Any],
    upto: int,
    *,
    progress: Callable[[int, int], None] | None = None,
    batch: int = BULK_BATCH,
    each_batch: Callable[[sqlite3.Cursor, int], None] | None = None,
) -> int:
    """Build the tables of ``views`` from the events of ``log`` up to position ``upto`` in a new
    file ``scratch``, with the store's own DDL (read from ``log``, a connection to the store's file in a
    read transaction) and the views' tracking positions at ``upto``: one pass over the log in stream
    order. After each batch (in its transaction on the scratch file) ``each_batch(cursor, events done)``,
    then ``progress(done, total)``. Returns the number of events."""
    names = [view.name for view in views]
    tables = view_tables(names)
    ddl = log.execute(
        f"SELECT type, tbl_name, sql FROM sqlite_master WHERE tbl_name IN ({', '.join('?' * len(tables))}) "
        "AND sql IS NOT NULL ORDER BY type = 'index', name", tables).fetchall()
    missing = set(tables) - {t for kind, t, _ in ddl if kind == "table"}
    if missing:
        raise FailedPrecondition(f"the store has no table {sorted(missing)} to build: failed precondition")
    head = int(log.execute("SELECT COALESCE(MAX(rowid), 0) FROM stored_events").fetchone()[0])
    total = int(log.execute("SELECT COUNT(*) FROM stored_events WHERE rowid <= ?", (upto,)).fetchone()[0])
    # Stream order (the log's unique index): a container's events one after the other.
    cursor = log.execute("SELECT rowid, originator_id, originator_version, topic, state FROM stored_events "
                         "ORDER BY originator_id, originator_version")
    done = 0
    target = open_scratch(scratch, log)
    try:
        indexes = create_tables(target, ddl)
        builder = BulkBuilder(target, names, mapper)
        with no_gc():  # nothing built here is in a cycle: a full collection is wasted
            while rows := cursor.fetchmany(batch):
                if head > upto:  # (the unique index has no position: events after upto are left out here)
                    rows = [r for r in rows if r[0] <= upto]
                with write_transaction(target) as cur:
                    builder.apply(rows)
                    done += len(rows)
                    if each_batch is not None:
                        each_batch(cur, done)
                if progress is not None:
                    progress(done, total)
            with write_transaction(target) as cur:
                builder.finish(indexes)
                cur.executemany("INSERT INTO ctrledger_tracking(view, position) VALUES (?, ?)",
                                [(name, upto) for name in names if upto > 0])  # an empty log: no position
    finally:
        target.close()
    return done


def _table_columns(conn: sqlite3.Connection, schema: str, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA {schema}.table_info({table})")]


def install_built(conn: sqlite3.Connection, scratch: str | os.PathLike[str], views: Sequence[View],
                  mapper: Mapper[Any], upto: int, through: int | None = None) -> int:
    """Replace the tables and tracking positions of ``views`` in ``conn``'s file (at ``upto``) with those
    built in ``scratch``, and apply the events appended since ``upto``, in one ``BEGIN IMMEDIATE``
    transaction on ``conn`` (readers see the old tables until it commits). Each table is emptied and
    refilled with ``INSERT ... SELECT *`` from an identical table: SQLite transfers its b-trees and
    indexes as they are. Returns the number of events applied since ``upto`` (up to ``through``, when
    given)."""
    names = [view.name for view in views]
    tables = [t for view in views for t in view.tables]
    caught_up = 0
    conn.execute("ATTACH DATABASE ? AS rebuilt", (os.fspath(scratch),))
    try:
        with write_transaction(conn) as cur:
            for table in tables:
                live, new = _table_columns(conn, "main", table), _table_columns(conn, "rebuilt", table)
                if live != new:
                    raise FailedPrecondition(f"table {table} has columns {live} in the store but {new} in the "
                                             "rebuilt model: failed precondition")
                cur.execute(f"DELETE FROM main.{table}")
                cur.execute(f"INSERT INTO main.{table} SELECT * FROM rebuilt.{table}")
                want = cur.execute(f"SELECT COUNT(*) FROM rebuilt.{table}").fetchone()[0]
                got = cur.execute(f"SELECT COUNT(*) FROM main.{table}").fetchone()[0]
                if got != want:
                    raise FailedPrecondition(f"copying {table} gave {got} rows, not {want}: failed precondition")
            marks = ", ".join("?" * len(names))
            cur.execute(f"DELETE FROM main.ctrledger_tracking WHERE view IN ({marks})", names)
            cur.execute(f"INSERT INTO main.ctrledger_tracking(view, position) SELECT view, position "
                        f"FROM rebuilt.ctrledger_tracking WHERE view IN ({marks})", names)
            for events, positions in read_log(cur, mapper, upto, None if through is None else through + 1):
                for view in views:
                    view.process(cur, events, positions)
                caught_up += len(events)
    finally:
        conn.execute("DETACH DATABASE rebuilt")
    return caught_up


CATCH_UP_MIN = 10_000  # a view at least this far behind may catch up in bulk ...
CATCH_UP_SHARE = 4  # ... when it lags by at least 1/4 of the log (a bulk build reads the whole log, ~8x faster)


def catch_up_in_bulk(conn: sqlite3.Connection, views: Sequence[View], mapper: Mapper[Any], *,
                     through: int | None = None) -> int:
    """Bring the views that are far behind the log (``CATCH_UP_MIN``, ``CATCH_UP_SHARE``: a view that
    was added or reset, or left behind by handles that did not keep it) up to it by building their
    tables anew in bulk and installing them (``install_built``), instead of event by event. ``conn``
    is the read model's connection to its file; ``through``: apply nothing after this position.
    Returns the number of events the views caught up by (summed over them); 0 when none was that far
    behind (``runner.catch_up`` then applies what is missing, event by event)."""
    head = int(conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM stored_events").fetchone()[0])
    limit = head if through is None else min(head, through)
    tracked = dict(conn.execute("SELECT view, position FROM ctrledger_tracking").fetchall())
    lagging = [v for v in views if bulk_capable([v]) and limit - int(tracked.get(v.name, 0)) >= CATCH_UP_MIN
               and (limit - int(tracked.get(v.name, 0))) * CATCH_UP_SHARE >= limit]
    if not lagging:
        return 0
    path = next(row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main")
    _remove_orphans(path)
    scratch = Path(f"{path}.catch-up-{os.getpid()}-{threading.get_ident()}")  # one per process and thread
    scratch.unlink(missing_ok=True)
    try:
        log = read_only_connection(path)
        try:
            log.execute("BEGIN")
            head = int(log.execute("SELECT COALESCE(MAX(rowid), 0) FROM stored_events").fetchone()[0])
            upto = head if through is None else min(head, through)
            build_in_bulk(log, scratch, lagging, mapper, upto)
        finally:
            log.close()
        install_built(conn, scratch, lagging, mapper, upto, through)
    finally:
        scratch.unlink(missing_ok=True)
    return sum(limit - int(tracked.get(v.name, 0)) for v in lagging)


def _remove_orphans(path: str) -> None:
    """Delete the catch-up scratch files of ``path`` left by processes that no longer run (killed)."""
    for found in Path(path).parent.glob(Path(path).name + ".catch-up-*"):
        pid = found.name.rsplit(".catch-up-", 1)[1].split("-")[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            found.unlink(missing_ok=True)
        except PermissionError:
            pass  # another user's process: it runs


def bulk_capable(views: Iterable[Any]) -> bool:
    """Whether every view is one this module builds (a view of another kind is built event by event)."""
    return all(type(v) in (CurrentStateView, TemporalView, AuditView) for v in views)
