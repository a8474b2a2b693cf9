"""The read-model tables, created with sqlite-utils, and their schema version.

Version history (``ctrledger_meta.read_model_schema``):

* 1: ``containers`` (one row per live container), ``labels`` (the label index),
  ``namespaces`` (every namespace that ever held a container), ``ctrledger_tracking``
  (each view's log position).
* 2: the temporal model: ``versions`` (a container's state after each event of its
  stream, valid from one log position/time to the next; the spec by reference to the
  event that set it), ``label_spans`` (each label value's validity), ``audit`` (one
  row per event: who, why, which operation). A version-1 database is upgraded in place; the
  new views then catch up from the log.
* 3: the status columns (``ctrledger.projections.statuscols``) in ``containers`` and
  ``versions``, and indexes on ``containers`` for the status filters. A version-2 database
  gets the columns with their defaults (CREATED, never started): what a replay of a log
  without status events gives, so nothing needs to catch up.
* 4: partial indexes for the status values most rows do not have (``status_pid``,
  ``status_exit_code``, ``status_reason``): a container that was never started adds no
  entry to them, so a create or a delete writes ~3 fewer pages per commit (39.6 -> 36.2 and
  36.5 -> 33.4 in ``benchmarks/pages.py --n 200 --existing 1500``). SQLite's planner, without
  statistics, answers filters on them through ``(namespace, id)`` as it did with the full
  indexes. A version-3 database has its full indexes
  replaced; nothing needs to catch up.
* 5: one label b-tree. ``labels`` (the live labels, keyed by container, indexed by key and
  value) is dropped: the live labels are the open rows of ``label_spans``, which the
  current-state view now keeps (with or without history), so a write no longer changes two
  (key, value)-ordered b-trees on random leaves for the same labels (create 36.8 -> 28.7
  pages per commit, update 22.5 -> 19.0, delete 33.6 -> 27.4 in ``benchmarks/pages.py``).
  A version-4 database whose temporal view is at the current view's position has those
  spans already and only loses ``labels``; otherwise (history was off for a while) the
  current-state view's tables are emptied and it catches up from the log at open.
* 6: ``containers.record``, every field of the row but the spec's bytes packed in one blob
  (``current.RECORD_FIELDS``), which get, list and scan read with the spec's bytes instead of
  24 columns: the sqlite3 module pays ~2k instructions for each column it returns. A get went
  from 164k to 86k instructions and a list from 93k to 50k per container (callgrind; see
  docs/benchmarks.md). The columns stay, for filters and SQL. A version-5 database gets the
  column, filled from the columns; nothing needs to catch up. A row edited outside ctrledger
  that cannot be packed (text that is not UTF-8) is left without a record: reads report it
  as DataLoss naming the container, and a rebuild repairs it.

A database written by a newer ctrledger (a higher version) is refused with a clear
error rather than misread; an older one is upgraded by the steps in ``MIGRATIONS``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import FailedPrecondition
from ..persistence.sqlite import write_transaction
from .statuscols import STATUS_COLUMN_TYPES

if TYPE_CHECKING:
    import sqlite_utils  # imported by ensure_schema only: a read-only open never needs it

__all__ = ["SCHEMA_VERSION", "ensure_schema", "schema_version"]

SCHEMA_VERSION = 6


def _create_clustered(
    db: sqlite_utils.Database, name: str, columns: dict[str, type], pk: tuple[str, ...], not_null: set[str]
) -> None:
    """A WITHOUT ROWID table clustered on ``pk``: one b-tree where a rowid table needs two.

    sqlite-utils writes the DDL; only the clause it has no option for is added.
    """
    if db.table(name).exists():
        return
    ddl = db.create_table_sql(name, columns, pk=pk, not_null=not_null).rstrip().rstrip(";")
    db.execute(ddl + " WITHOUT ROWID")


def _create_v1(db: sqlite_utils.Database) -> None:
    db.table("ctrledger_tracking").create(
        {"view": str, "position": int}, pk="view", not_null={"position"}, if_not_exists=True
    )
    db.table("namespaces").create({"name": str}, pk="name", if_not_exists=True)
    db.table("containers").create(
        {
            "namespace": str,
            "id": str,
            "version": int,
            "incarnation": int,
            "image": str,
            "runtime_name": str,
            "runtime_options": bytes,
            "spec_type_url": str,
            "spec_value": bytes,
            "snapshotter": str,
            "snapshot_key": str,
            "sandbox": str,
            "labels": bytes,
            "extensions": bytes,
            "created_at": int,
            "updated_at": int,
        },
        not_null={"namespace", "id", "version", "image", "runtime_name", "snapshotter",
                  "snapshot_key", "sandbox", "labels", "extensions", "created_at", "updated_at"},
        if_not_exists=True,
    )
    db.table("containers").create_index(["namespace", "id"], unique=True, if_not_exists=True)
    _create_clustered(
        db, "labels", {"namespace": str, "id": str, "key": str, "value": str},
        pk=("namespace", "id", "key"), not_null={"namespace", "id", "key", "value"},
    )
    db.table("labels").create_index(["namespace", "key", "value"], if_not_exists=True)


def _create_v2(db: sqlite_utils.Database) -> None:
    validity = {"from_pos": int, "to_pos": int, "from_time": int, "to_time": int}
    _create_clustered(
        db, "versions",
        {
            "namespace": str, "id": str, "version": int, "incarnation": int, **validity,
            "image": str, "runtime_name": str, "runtime_options": bytes, "spec_pos": int, "snapshotter": str,
            "snapshot_key": str, "sandbox": str, "labels": bytes, "extensions": bytes,
            "created_at": int, "updated_at": int,
        },
        pk=("namespace", "id", "version"), not_null={"namespace", "id", "version", "from_pos", "from_time"},
    )
    # from_pos and from_time both grow with version inside a stream: one index serves both.
    db.table("versions").create_index(["namespace", "id", "from_pos", "from_time"], if_not_exists=True)
    _create_clustered(
        db, "label_spans", {"namespace": str, "key": str, "value": str, "id": str, **validity},
        pk=("namespace", "key", "value", "id", "from_pos"),
        not_null={"namespace", "id", "key", "value", "from_pos", "from_time"},
    )
    db.table("audit").create(
        {
            "position": int, "recorded_at": int, "namespace": str, "id": str, "version": int,
            "kind": str, "actor": str, "reason": str, "correlation_id": str, "fieldpaths": str,
            "client": str,
        },
        pk="position",
        not_null={"recorded_at", "namespace", "id", "version", "kind", "actor"},
        if_not_exists=True,
    )
    db.table("audit").create_index(["actor", "recorded_at"], if_not_exists=True)
    db.table("audit").create_index(["correlation_id"], if_not_exists=True)


def _add_status_v3(db: sqlite_utils.Database) -> None:
    for table in ("containers", "versions"):
        existing = set(db.table(table).columns_dict)
        for name, (kind, default) in STATUS_COLUMN_TYPES.items():
            if name not in existing:
                db.table(table).add_column(name, kind, not_null_default=default)
    db.table("containers").create_index(["namespace", "status_state", "id"], if_not_exists=True)


# Each partial index, over the rows that have the value. Without statistics SQLite's planner
# reads a namespace through (namespace, id) for these filters (it also gives the order); the
# indexes serve a planner that has them (after ANALYZE) and cost a never-started container nothing.
PARTIAL_INDEXES: dict[str, tuple[str, str, str]] = {
    "idx_containers_status_pid": ("containers", "namespace, status_pid", "status_pid IS NOT NULL"),
    "idx_containers_status_exit_code": ("containers", "namespace, status_exit_code", "status_exit_code IS NOT NULL"),
    "idx_containers_status_reason": ("containers", "namespace, status_reason", "status_reason <> ''"),
}


def _partial_indexes_v4(db: sqlite_utils.Database) -> None:
    # Schema 3's full indexes (sqlite-utils' names).
    for old in ("idx_containers_namespace_status_reason", "idx_containers_namespace_status_exit_code",
                "idx_containers_namespace_status_pid"):
        db.execute(f"DROP INDEX IF EXISTS {old}")
    for name, (table, columns, where) in PARTIAL_INDEXES.items():
        db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table}({columns}) WHERE {where}")


def _one_label_index_v5(db: sqlite_utils.Database) -> None:
    tracked = dict(db.execute("SELECT view, position FROM ctrledger_tracking").fetchall())
    if tracked.get("temporal", 0) != tracked.get("current", 0):
        # The spans lag the live labels: the view that keeps both now starts again from the log.
        for table in ("containers", "label_spans", "namespaces"):
            db.execute(f"DELETE FROM {table}")
        db.execute("DELETE FROM ctrledger_tracking WHERE view='current'")
    db.execute("DROP TABLE IF EXISTS labels")


def _packed_record_v6(db: sqlite_utils.Database) -> None:
    from ..persistence.sqlite import lenient_text
    from ..persistence.transcoder import unpackb
    from .current import RECORD_FIELDS, pack_record

    if "record" not in db.table("containers").columns_dict:
        db.execute("ALTER TABLE containers ADD COLUMN record BLOB")
    factory, db.conn.text_factory = db.conn.text_factory, lenient_text  # a damaged row must not stop the open
    try:
        rows = db.execute(
            f"SELECT namespace, id, {', '.join(RECORD_FIELDS)} FROM containers WHERE record IS NULL").fetchall()
    finally:
        db.conn.text_factory = factory
    labels, extensions = RECORD_FIELDS.index("labels"), RECORD_FIELDS.index("extensions")

    def record(row: Any) -> tuple[bytes, str, str] | None:  # the column values, but the maps unpacked
        values = list(row[2:])
        try:
            values[labels], values[extensions] = unpackb(values[labels]), unpackb(values[extensions])
            row[0].encode(), row[1].encode()
            return pack_record(values), row[0], row[1]
        except Exception:  # a row edited outside ctrledger: left NULL, which reads report as DataLoss
            return None

    db.conn.executemany("UPDATE containers SET record=? WHERE namespace=? AND id=?",
                        [update for update in map(record, rows) if update is not None])


# version reached -> step from the version before it
MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {
    1: _create_v1, 2: _create_v2, 3: _add_status_v3, 4: _partial_indexes_v4, 5: _one_label_index_v5,
    6: _packed_record_v6,
}


def schema_version(conn: sqlite3.Connection) -> int:
    """The read-model schema version recorded in ``conn``'s database, 0 if none."""
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name='ctrledger_meta'"
    ).fetchone()
    if row is None:
        return 0
    found = conn.execute(
        "SELECT value FROM ctrledger_meta WHERE key='read_model_schema'"
    ).fetchone()
    return int(found[0]) if found else 0


def ensure_schema(path: str) -> None:
    """Create or upgrade the read-model tables in the SQLite file ``path``.

    Raises ``FailedPrecondition`` for a schema newer than this code understands.
    """
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        with write_transaction(conn):
            found = schema_version(conn)
            if found > SCHEMA_VERSION:
                raise FailedPrecondition(
                    f"read-model schema version {found} in {path!r} is newer than this "
                    f"ctrledger understands ({SCHEMA_VERSION}); upgrade ctrledger: failed precondition"
                )
            import sqlite_utils

            db = sqlite_utils.Database(conn)
            db.table("ctrledger_meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
            for version in range(found + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[version](db)
            conn.execute(
                "INSERT INTO ctrledger_meta(key, value) VALUES ('read_model_schema', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (str(SCHEMA_VERSION),),
            )
    finally:
        conn.close()
