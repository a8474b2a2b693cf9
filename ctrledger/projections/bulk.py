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
* at the stream's end, its ``containers`` row and its ``labels`` (key order too);
* a label span when it is closed, and an audit row per event: these are keyed by label and
  by log position, so they are appended to unindexed staging tables and copied into their
  tables sorted by key at the end (``finish``);
* ``namespaces`` at the end.

The target is a scratch database holding the views' tables with the store's own DDL
(``create_tables``), their secondary indexes created after the load (``finish``): one
sort each instead of a random insert per row. The finished tables are then copied into the
store's file as they are (``rebuild``'s swap: SQLite's transfer of whole b-trees).

Events are decoded to plain values (``LedgerMapper.to_plain_state``: no event objects;
upcast and shape-checked like every decoded event); a status event is decoded whole,
since its next status is the event's own pure step. Every value is computed by the same
steps the views take (the labels map updated in the same order and packed with the same
encoder, ``columns_of(next_status(...))`` for a status event), so the tables equal those
the views write event by event: ``tests/test_read_model.py`` and ``tests/test_replay.py``
compare them (``verify_projections`` rebuilds with the views).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
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
from ..errors import DataLoss
from ..persistence.log import decode_event
from ..persistence.transcoder import packb, unpackb
from .current import CurrentStateView, from_micros
from .statuscols import STATUS_COLUMN_TYPES, STATUS_COLUMNS, columns_of, status_of
from .temporal import AuditView, TemporalView

__all__ = ["BulkBuilder", "bulk_capable", "create_tables", "view_tables"]

FLUSH_ROWS = 20_000
FLUSH_CONTAINERS = 1_000  # a containers row carries its spec (kilobytes): a few at a time

# One container's state: the columns its current row and its open version row share.
(_INC, _VER, _IMAGE, _RT_NAME, _RT_OPTS, _SPEC_POS, _SPEC_URL, _SPEC_VALUE, _SNAPSHOTTER, _SNAPSHOT_KEY,
 _SANDBOX, _LABELS, _EXT, _CREATED, _UPDATED, _FROM_POS, _FROM_TIME, _STATUS, _SPANS) = range(19)

_DEFAULT_STATUS = tuple(default for _, default in STATUS_COLUMN_TYPES.values())

_CONTAINERS = ("namespace", "id", "version", "incarnation", "image", "runtime_name", "runtime_options",
               "spec_type_url", "spec_value", "snapshotter", "snapshot_key", "sandbox", "labels", "extensions",
               "created_at", "updated_at", *STATUS_COLUMNS)
_VERSIONS = ("namespace", "id", "version", "incarnation", "from_pos", "to_pos", "from_time", "to_time", "image",
             "runtime_name", "runtime_options", "spec_pos", "snapshotter", "snapshot_key", "sandbox", "labels",
             "extensions", "created_at", "updated_at", *STATUS_COLUMNS)
_SPANS_COLS = ("namespace", "key", "value", "id", "from_pos", "to_pos", "from_time", "to_time")
_AUDIT = ("position", "recorded_at", "namespace", "id", "version", "kind", "actor", "reason", "correlation_id",
          "fieldpaths", "client")

# table -> (its columns as written, the staging table its rows go through first (None: written directly),
#           the key order the staged rows are copied in)
_TABLES: dict[str, tuple[tuple[str, ...], str | None, str]] = {
    "containers": (_CONTAINERS, None, ""),
    "labels": (("namespace", "id", "key", "value"), None, ""),
    "namespaces": (("name",), None, ""),
    "versions": (_VERSIONS, None, ""),
    "label_spans": (_SPANS_COLS, "bulk_label_spans", "namespace, key, value, id, from_pos"),
    "audit": (_AUDIT, "bulk_audit", "position"),
}
_OF_VIEW = {
    CurrentStateView.name: ("containers", "labels", "namespaces"),
    TemporalView.name: ("versions", "label_spans"),
    AuditView.name: ("audit",),
}


def view_tables(views: Iterable[str]) -> list[str]:
    """The tables of the views named (each view's ``tables``)."""
    return [t for v in views for t in _OF_VIEW[v]]


def create_tables(target: sqlite3.Connection, ddl: Sequence[tuple[str, str, str]]) -> list[str]:
    """Create the views' tables in ``target`` from the store's own DDL (``(type, table, sql)`` rows of
    its ``sqlite_master``), without their indexes, and the staging tables; returns the index DDL,
    for ``BulkBuilder.finish`` to run after the load (so the tables are exactly the store's)."""
    indexes = []
    for kind, table, sql in ddl:
        if kind == "table":
            target.execute(f'DROP TABLE IF EXISTS "{table}"')
            target.execute(sql)
            staged = _TABLES[table][1] if table in _TABLES else None
            if staged is not None:
                target.execute(f"DROP TABLE IF EXISTS {staged}")
                target.execute(f"CREATE TABLE {staged} ({', '.join(_TABLES[table][0])})")
        else:
            indexes.append(sql)
    return indexes


class BulkBuilder:
    """Applies the log, fed in stream order, and writes the rows (see the module docstring)."""

    def __init__(self, conn: sqlite3.Connection, views: Iterable[str], mapper: Mapper[Any]) -> None:
        self.views = set(views)
        unknown = self.views - set(_OF_VIEW)
        if unknown:
            raise ValueError(f"no bulk build for the view(s) {sorted(unknown)}")
        self.conn = conn
        self.mapper = mapper
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
        self._rows: dict[str, list[tuple[Any, ...]]] = {t: [] for t in self.tables}
        self._sql = {}
        for table in self.tables:
            columns, staged = _TABLES[table][:2]
            self._sql[table] = (f"INSERT INTO {staged or table}({', '.join(columns)}) "
                                f"VALUES ({', '.join('?' * len(columns))})")
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
        audit = self._rows.get("audit")
        to_plain = self.mapper.to_plain_state  # type: ignore[attr-defined]
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
                fieldpaths = tuple(a[3])
                paths = self._fieldpaths.get(fieldpaths)
                if paths is None:
                    paths = json.dumps(a[3])
                    if len(self._fieldpaths) < 4096:  # a few combinations recur: encode each once
                        self._fieldpaths[fieldpaths] = paths
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
        for table, buffered in self._rows.items():
            if len(buffered) >= (FLUSH_CONTAINERS if table == "containers" else FLUSH_ROWS):
                self._flush(table)

    def finish(self, indexes: Sequence[str]) -> None:
        """Write what is still open (the last stream), the namespaces, the staged tables in key order,
        then create the tables' ``indexes``."""
        self._end_stream()
        self._stream = None
        if self.current:
            self._rows["namespaces"].extend((n,) for n in sorted(self.namespaces))
        for table in self._rows:
            self._flush(table)
        for table in self.tables:
            columns, staged, order = _TABLES[table]
            if staged is not None:
                cols = ", ".join(columns)
                self.conn.execute(f"INSERT INTO {table}({cols}) SELECT {cols} FROM {staged} ORDER BY {order}")
                self.conn.execute(f"DROP TABLE {staged}")
        for sql in indexes:
            self.conn.execute(sql)

    def _flush(self, table: str) -> None:
        rows = self._rows[table]
        if rows:
            self.conn.executemany(self._sql[table], rows)
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
            self._rows["containers"].append((
                ns, cid, s[_VER], s[_INC], s[_IMAGE], s[_RT_NAME], s[_RT_OPTS], s[_SPEC_URL], s[_SPEC_VALUE],
                s[_SNAPSHOTTER], s[_SNAPSHOT_KEY], s[_SANDBOX], s[_LABELS], s[_EXT], s[_CREATED], s[_UPDATED],
                *s[_STATUS]))
            self._rows["labels"].extend((ns, cid, k, v) for k, (v, _, _) in sorted(s[_SPANS].items()))
        self._close(s, None, None)
        self._close_spans(s[_SPANS], list(s[_SPANS]), None, None)

    def _close(self, s: list[Any], pos: int | None, ts: int | None) -> None:
        """Write the open version row of ``s`` (closed at ``pos``/``ts``, or left open with None)."""
        if not self.temporal:
            return
        ns, cid = self._key
        self._rows["versions"].append((
            ns, cid, s[_VER], s[_INC], s[_FROM_POS], pos, s[_FROM_TIME], ts, s[_IMAGE], s[_RT_NAME], s[_RT_OPTS],
            s[_SPEC_POS], s[_SNAPSHOTTER], s[_SNAPSHOT_KEY], s[_SANDBOX], s[_LABELS], s[_EXT], s[_CREATED],
            s[_UPDATED], *s[_STATUS]))

    def _close_spans(self, spans: dict[str, tuple[str, int, int]], keys: Iterable[str], pos: int | None,
                     ts: int | None) -> None:
        if not self.temporal:
            return
        ns, cid = self._key
        out = self._rows["label_spans"]
        for k in keys:
            value, from_pos, from_time = spans[k]
            out.append((ns, k, value, cid, from_pos, pos, from_time, ts))

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
            d["snapshotter"], d["snapshot_key"], d["sandbox"], packb(labels), packb(dict(d["extensions"])), ts, ts,
            pos, ts, _DEFAULT_STATUS, {k: (v, pos, ts) for k, v in labels.items()},
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
        s[_LABELS] = packb({k: v for k, (v, _, _) in spans.items()})

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
        s[_EXT] = packb(extensions)

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


def bulk_capable(views: Iterable[Any]) -> bool:
    """Whether every view is one this module builds (a view of another kind is built event by event)."""
    return all(type(v) in (CurrentStateView, TemporalView, AuditView) for v in views)
