"""The read models built in bulk: the whole log applied in memory, the rows written in large batches.

``CurrentStateView``, ``TemporalView`` and ``AuditView`` apply one event at a time with a
few SQL statements each (they run inside every append). Rebuilding a read model from a
long log that way costs ~15 random b-tree writes per event. ``BulkBuilder`` applies the
same events to a compact in-memory state per container instead (the state after its
last event, its open version, its open label spans), and writes every row once, when it
is final, with ``executemany`` into unindexed staging tables (``stage``):

* a version row when the next event of its stream closes it (or at the end, open);
* a label span when it is closed (or at the end, open);
* an audit row per event; a spec per event that sets one (``bulk_specs``: the live
  containers' specs are joined in at the end, so no spec is kept in memory);
* at the end, one ``containers`` row and its open label spans per live container, and
  ``namespaces``.

``install`` then copies the staging tables into the views' tables, sorted by their
primary keys, with their secondary indexes dropped for the copy and created again
afterwards (one sort each instead of a random insert per row).

Every value is computed by the same steps the views take (the labels map updated in
the same order and packed with the same encoder, ``columns_of(next_status(...))`` for a
status event), so the tables equal those the views write event by event:
``tests/test_replay.py`` compares them (``verify_projections`` rebuilds with the views).
Memory grows with the number of live containers (about 1 KB each), not with the log.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgpack

from ..domain.container import (
    STATUS_EVENT_CLASSES,
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
from ..persistence.transcoder import packb, unpackb
from .current import CurrentStateView, from_micros, micros
from .statuscols import STATUS_COLUMN_TYPES, STATUS_COLUMNS, columns_of, status_of
from .temporal import AuditView, TemporalView

__all__ = ["BulkBuilder", "bulk_capable", "create_stage", "install", "installed_columns", "stage_tables"]

FLUSH_ROWS = 20_000
FLUSH_SPECS = 500  # specs are large (kilobytes): a few at a time

# One container's state: the columns its current row and its open version row share.
(_INC, _VER, _IMAGE, _RT_NAME, _RT_OPTS, _SPEC_POS, _SNAPSHOTTER, _SNAPSHOT_KEY, _SANDBOX, _LABELS, _EXT,
 _CREATED, _UPDATED, _FROM_POS, _FROM_TIME, _STATUS, _SPANS, _BASE) = range(18)

_DEFAULT_STATUS = tuple(default for _, default in STATUS_COLUMN_TYPES.values())

# The staging tables: the views' columns (containers with spec_pos for its two spec columns).
_CONTAINERS = ("namespace", "id", "version", "incarnation", "image", "runtime_name", "runtime_options",
               "spec_pos", "snapshotter", "snapshot_key", "sandbox", "labels", "extensions", "created_at",
               "updated_at", *STATUS_COLUMNS)
# A version row is staged narrow: what changes with every event, and a reference to a staged row of
# what changes rarely (its "base", shared by consecutive versions until one of those columns changes).
_BASES = ("id", "incarnation", "image", "runtime_name", "runtime_options", "spec_pos", "snapshotter",
          "snapshot_key", "sandbox", "extensions", "created_at", *STATUS_COLUMNS)
_VERSIONS = ("namespace", "id", "version", "from_pos", "to_pos", "from_time", "to_time", "labels", "updated_at",
             "base")
_SPANS_COLS = ("namespace", "key", "value", "id", "from_pos", "to_pos", "from_time", "to_time")
_AUDIT = ("position", "recorded_at", "namespace", "id", "version", "kind", "actor", "reason", "correlation_id",
          "fieldpaths", "client")

STAGES: dict[str, tuple[str, ...]] = {
    "bulk_containers": _CONTAINERS, "bulk_namespaces": ("name",), "bulk_specs": ("pos", "type_url", "value"),
    "bulk_versions": _VERSIONS, "bulk_bases": _BASES, "bulk_label_spans": _SPANS_COLS, "bulk_audit": _AUDIT,
}
_OF_VIEW = {
    CurrentStateView.name: ("bulk_containers", "bulk_label_spans", "bulk_namespaces", "bulk_specs"),
    TemporalView.name: ("bulk_versions", "bulk_bases"),
    AuditView.name: ("bulk_audit",),
}


def _pack(state: list[Any]) -> bytes:
    data: bytes = msgpack.packb(state, use_bin_type=True)
    return data


def _unpack(data: bytes) -> list[Any]:
    # Plain values only (str, int, bytes, None, lists, a map): msgpack's C code, no hooks.
    state: list[Any] = msgpack.unpackb(data, raw=False, strict_map_key=False)
    return state


def stage_tables(views: Iterable[str]) -> list[str]:
    """The staging tables the views named need."""
    return [t for v in views for t in _OF_VIEW[v]]


def create_stage(conn: sqlite3.Connection, views: Iterable[str], schema: str = "main") -> None:
    """Empty staging tables (no types, no keys, no indexes: rows are only appended)."""
    for table in stage_tables(views):
        conn.execute(f"DROP TABLE IF EXISTS {schema}.{table}")
        keyed = {("bulk_bases", "id"), ("bulk_specs", "pos")}  # looked up by the copy's joins: rowids
        columns = ", ".join(f"{c} INTEGER PRIMARY KEY" if (table, c) in keyed else c for c in STAGES[table])
        conn.execute(f"CREATE TABLE {schema}.{table} ({columns})")


class BulkBuilder:
    """Applies events in log order to in-memory state and stages the rows (see the module docstring)."""

    def __init__(self, conn: sqlite3.Connection, views: Iterable[str], schema: str = "main") -> None:
        self.views = set(views)
        unknown = self.views - set(_OF_VIEW)
        if unknown:
            raise ValueError(f"no bulk build for the view(s) {sorted(unknown)}")
        self.conn = conn
        self.schema = schema
        self.current = CurrentStateView.name in self.views
        self.temporal = TemporalView.name in self.views
        self.audited = AuditView.name in self.views
        # Each container's state, packed (one bytes object of ~300 bytes instead of ~40 objects of 1.5 KB),
        # by stream ID; the state of the event being applied is unpacked in ``_loaded`` and packed back after it.
        self.state: dict[str, bytes] = {}
        self._loaded: tuple[str, list[Any]] | None = None
        self.namespaces: set[str] = set()
        self._bases = 0
        self._fieldpaths: dict[Any, str] = {}
        self._rows: dict[str, list[tuple[Any, ...]]] = {t: [] for t in stage_tables(self.views)}
        self._sql = {t: f"INSERT INTO {schema}.{t} VALUES ({', '.join('?' * len(STAGES[t]))})" for t in STAGES}
        self._handlers: dict[type, Callable[[Any, int, int, tuple[str, str]], None]] = {
            Created: self._created,
            LabelsChanged: self._labels_changed,
            ImageChanged: self._image_changed,
            SpecUpdated: self._spec_updated,
            SnapshotKeyChanged: self._snapshot_key_changed,
            ExtensionsChanged: self._extensions_changed,
            Touched: self._touched,
            Deleted: self._deleted,
            **{cls: self._status_changed for cls in STATUS_EVENT_CLASSES},
        }

    # -- feeding ------------------------------------------------------------------------------------

    def apply(self, events: Sequence[Any], positions: Sequence[int]) -> None:
        """Apply events (in log order, each exactly once) at their log positions."""
        handlers = self._handlers
        audit = self._rows.get("bulk_audit")
        for event, pos in zip(events, positions, strict=True):
            namespace, _, container_id = event.originator_id.partition("/")
            ts = micros(event.timestamp)
            if audit is not None:
                a = event.audit
                fieldpaths = tuple(a.fieldpaths)
                paths = self._fieldpaths.get(fieldpaths)
                if paths is None:
                    paths = json.dumps(list(fieldpaths))
                    if len(self._fieldpaths) < 4096:  # a few combinations recur: encode each once
                        self._fieldpaths[fieldpaths] = paths
                audit.append((pos, ts, namespace, container_id, event.originator_version, type(event).__name__,
                              a.actor, a.reason, a.correlation_id, paths, a.client))
            handler = handlers.get(type(event))
            if handler is not None:
                handler(event, pos, ts, (namespace, container_id))
                if self._loaded is not None:
                    self.state[self._loaded[0]] = _pack(self._loaded[1])
                    self._loaded = None
        for table, rows in self._rows.items():
            if len(rows) >= (FLUSH_SPECS if table == "bulk_specs" else FLUSH_ROWS):
                self._flush(table)

    def finish(self) -> None:
        """Stage what is still open (the live containers, their versions and spans) and flush."""
        for stream, packed in self.state.items():
            namespace, _, container_id = stream.partition("/")
            key, s = (namespace, container_id), _unpack(packed)
            self._stage_current(key, s)
            self._close(key, s, None, None)
            self._close_spans(key, s[_SPANS], list(s[_SPANS]), None, None)
        self.state.clear()
        if self.current:
            self._rows["bulk_namespaces"].extend((n,) for n in sorted(self.namespaces))
        for table in self._rows:
            self._flush(table)

    def _flush(self, table: str) -> None:
        rows = self._rows[table]
        if rows:
            self.conn.executemany(self._sql[table], rows)
            rows.clear()

    # -- staging ------------------------------------------------------------------------------------

    def _stage_current(self, key: tuple[str, str], s: list[Any]) -> None:
        if not self.current:
            return
        ns, cid = key
        self._rows["bulk_containers"].append((
            ns, cid, s[_VER], s[_INC], s[_IMAGE], s[_RT_NAME], s[_RT_OPTS], s[_SPEC_POS], s[_SNAPSHOTTER],
            s[_SNAPSHOT_KEY], s[_SANDBOX], s[_LABELS], s[_EXT], s[_CREATED], s[_UPDATED], *s[_STATUS]))

    def _close(self, key: tuple[str, str], s: list[Any], pos: int | None, ts: int | None) -> None:
        """Stage the open version row of ``s`` (closed at ``pos``/``ts``, or left open with None)."""
        if not self.temporal:
            return
        base = s[_BASE]
        if base is None:
            self._bases += 1
            base = s[_BASE] = self._bases
            self._rows["bulk_bases"].append((
                base, s[_INC], s[_IMAGE], s[_RT_NAME], s[_RT_OPTS], s[_SPEC_POS], s[_SNAPSHOTTER],
                s[_SNAPSHOT_KEY], s[_SANDBOX], s[_EXT], s[_CREATED], *s[_STATUS]))
        self._rows["bulk_versions"].append((
            key[0], key[1], s[_VER], s[_FROM_POS], pos, s[_FROM_TIME], ts, s[_LABELS], s[_UPDATED], base))

    def _close_spans(self, key: tuple[str, str], spans: dict[str, tuple[str, int, int]], keys: Iterable[str],
                     pos: int | None, ts: int | None) -> None:
        if not self.current:  # the spans are the current view's (its live labels are the open ones)
            return
        ns, cid = key
        out = self._rows["bulk_label_spans"]
        for k in keys:
            value, from_pos, from_time = spans[k]
            out.append((ns, k, value, cid, from_pos, pos, from_time, ts))

    def _get(self, stream: str) -> list[Any] | None:
        packed = self.state.get(stream)
        if packed is None:
            return None
        s = _unpack(packed)
        self._loaded = stream, s
        return s

    def _pop(self, stream: str) -> list[Any] | None:
        packed = self.state.pop(stream, None)
        return None if packed is None else _unpack(packed)

    def _spec(self, pos: int, spec: Any) -> None:
        if self.current:
            self._rows["bulk_specs"].append((pos, spec.type_url, spec.value))

    def _next(self, e: Any, pos: int, ts: int, key: tuple[str, str], touch: bool = True) -> list[Any] | None:
        """Close the open version of the stream and start the next (the caller then changes it)."""
        s = self._get(e.originator_id)
        if s is None:
            return None  # the views find no row to change either
        self._close(key, s, pos, ts)
        s[_VER] = e.originator_version
        s[_FROM_POS], s[_FROM_TIME] = pos, ts
        if touch:
            s[_UPDATED] = ts
        return s

    # -- handlers (the views' steps, in memory) -----------------------------------------------------

    def _created(self, e: Created, pos: int, ts: int, key: tuple[str, str]) -> None:
        old = self._pop(e.originator_id)
        if old is not None:  # created again without a delete (the views leave the old rows open)
            self._close(key, old, None, None)
            self._close_spans(key, old[_SPANS], list(old[_SPANS]), None, None)
        if e.incarnation == 1:
            self.namespaces.add(key[0])
        labels = dict(e.labels)
        self._loaded = e.originator_id, [
            e.incarnation, e.originator_version, e.image, e.runtime.name,
            None if e.runtime.options is None else packb(e.runtime.options), pos, e.snapshotter, e.snapshot_key,
            e.sandbox, packb(labels), packb(dict(e.extensions)), ts, ts, pos, ts, _DEFAULT_STATUS,
            {k: (v, pos, ts) for k, v in labels.items()}, None,
        ]
        self._spec(pos, e.spec)

    def _labels_changed(self, e: LabelsChanged, pos: int, ts: int, key: tuple[str, str]) -> None:
        s = self._next(e, pos, ts, key)
        if s is None:
            return
        spans: dict[str, tuple[str, int, int]] = s[_SPANS]
        closing = dict.fromkeys(k for k in (*e.removed, *e.set) if k in spans)
        self._close_spans(key, spans, closing, pos, ts)
        for k in e.removed:
            spans.pop(k, None)
        for k, v in e.set.items():
            spans[k] = (v, pos, ts)
        s[_LABELS] = packb({k: v for k, (v, _, _) in spans.items()})

    def _image_changed(self, e: ImageChanged, pos: int, ts: int, key: tuple[str, str]) -> None:
        s = self._next(e, pos, ts, key)
        if s is not None:
            s[_IMAGE], s[_BASE] = e.image, None

    def _spec_updated(self, e: SpecUpdated, pos: int, ts: int, key: tuple[str, str]) -> None:
        s = self._next(e, pos, ts, key)
        if s is not None:
            s[_SPEC_POS], s[_BASE] = pos, None
            self._spec(pos, e.spec)

    def _snapshot_key_changed(self, e: SnapshotKeyChanged, pos: int, ts: int, key: tuple[str, str]) -> None:
        s = self._next(e, pos, ts, key)
        if s is not None:
            s[_SNAPSHOT_KEY], s[_BASE] = e.snapshot_key, None

    def _extensions_changed(self, e: ExtensionsChanged, pos: int, ts: int, key: tuple[str, str]) -> None:
        s = self._next(e, pos, ts, key)
        if s is None:
            return
        extensions = unpackb(s[_EXT])
        for k in e.removed:
            extensions.pop(k, None)
        extensions.update(e.set)
        s[_EXT], s[_BASE] = packb(extensions), None

    def _touched(self, e: Touched, pos: int, ts: int, key: tuple[str, str]) -> None:
        self._next(e, pos, ts, key)

    def _deleted(self, e: Deleted, pos: int, ts: int, key: tuple[str, str]) -> None:
        s = self._pop(e.originator_id)
        if s is not None:
            self._close_spans(key, s[_SPANS], list(s[_SPANS]), pos, ts)
            self._close(key, s, pos, ts)

    def _status_changed(self, e: StatusEvent, pos: int, ts: int, key: tuple[str, str]) -> None:
        s = self._next(e, pos, ts, key, touch=False)
        if s is not None:
            status = e.next_status(status_of(s[_STATUS], from_micros(s[_CREATED])))
            columns = columns_of(status)
            s[_STATUS], s[_BASE] = tuple(columns[c] for c in STATUS_COLUMNS), None


# -- installing ---------------------------------------------------------------------------------------


def _copy(table: str, source: str) -> tuple[str, str]:
    """(INSERT ... SELECT from the staging table in ``source``, its row count query), in primary-key order."""
    if table == "containers":
        cols = [*_CONTAINERS[:7], "spec_type_url", "spec_value", *_CONTAINERS[8:]]
        picked = [*(f"c.{c}" for c in _CONTAINERS[:7]), "s.type_url", "s.value", *(f"c.{c}" for c in _CONTAINERS[8:])]
        return (f"INSERT INTO main.containers({', '.join(cols)}) SELECT {', '.join(picked)} "
                f"FROM {source}.bulk_containers c LEFT JOIN {source}.bulk_specs s ON s.pos = c.spec_pos "
                "ORDER BY c.namespace, c.id",
                f"SELECT COUNT(*) FROM {source}.bulk_containers")
    if table == "versions":
        cols = [*_VERSIONS[:-1], *_BASES[1:]]
        picked = [*(f"v.{c}" for c in _VERSIONS[:-1]), *(f"b.{c}" for c in _BASES[1:])]
        return (f"INSERT INTO main.versions({', '.join(cols)}) SELECT {', '.join(picked)} "
                f"FROM {source}.bulk_versions v JOIN {source}.bulk_bases b ON b.id = v.base "
                "ORDER BY v.namespace, v.id, v.version",
                f"SELECT COUNT(*) FROM {source}.bulk_versions")
    order = {"namespaces": "name",
             "label_spans": "namespace, key, value, id, from_pos", "audit": "position"}[table]
    same = ", ".join(STAGES[f"bulk_{table}"])
    return (f"INSERT INTO main.{table}({same}) SELECT {same} FROM {source}.bulk_{table} ORDER BY {order}",
            f"SELECT COUNT(*) FROM {source}.bulk_{table}")


def install(cur: sqlite3.Cursor, tables: Sequence[str], source: str) -> dict[str, int]:
    """Replace the rows of the views' ``tables`` in ``main`` with the staged rows in schema ``source``.

    Runs in the caller's write transaction: each table's secondary indexes are dropped, the
    table emptied and refilled in primary-key order, and the indexes created again from
    their recorded definitions (so they are exactly the schema's). Returns each table's
    staged row count, for the caller to compare.
    """
    counts: dict[str, int] = {}
    for table in tables:
        indexes = cur.execute(
            "SELECT name, sql FROM main.sqlite_master WHERE type='index' AND tbl_name=? AND sql IS NOT NULL",
            (table,)).fetchall()
        for name, _ in indexes:
            cur.execute(f'DROP INDEX main."{name}"')
        cur.execute(f"DELETE FROM main.{table}")
        insert, count = _copy(table, source)
        cur.execute(insert)
        for _, sql in indexes:
            cur.execute(sql)
        counts[table] = int(cur.execute(count).fetchone()[0])
    return counts


def installed_columns(table: str) -> set[str]:
    """The columns ``install`` writes in a view's table (all of them, in a table of this schema)."""
    if table == "containers":
        return {c for c in _CONTAINERS if c != "spec_pos"} | {"spec_type_url", "spec_value"}
    if table == "versions":
        return {*_VERSIONS[:-1], *_BASES[1:]}
    return set(STAGES[f"bulk_{table}"])


def bulk_capable(views: Iterable[Any]) -> bool:
    """Whether every view is one this module builds (a view of another kind is built event by event)."""
    return all(type(v) in (CurrentStateView, TemporalView, AuditView) for v in views)
