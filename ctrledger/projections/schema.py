"""The read-model tables, created with sqlite-utils, and their schema version.

Version history (``ctrledger_meta.read_model_schema``):

* 1: ``containers`` (one row per live container), ``labels`` (the label index),
  ``namespaces`` (every namespace that ever held a container), ``ctrledger_tracking``
  (each view's log position).

A database written by a newer ctrledger (a higher version) is refused with a clear
error rather than misread; an older one is upgraded by the steps in ``MIGRATIONS``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import sqlite_utils

from ..errors import FailedPrecondition

__all__ = ["SCHEMA_VERSION", "ensure_schema", "schema_version"]

SCHEMA_VERSION = 1


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
    db.table("labels").create(
        {"namespace": str, "id": str, "key": str, "value": str},
        not_null={"namespace", "id", "key", "value"},
        if_not_exists=True,
    )
    db.table("labels").create_index(["namespace", "id", "key"], unique=True, if_not_exists=True)
    db.table("labels").create_index(["namespace", "key", "value"], if_not_exists=True)


# version reached -> step from the version before it
MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {1: _create_v1}


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
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            found = schema_version(conn)
            if found > SCHEMA_VERSION:
                raise FailedPrecondition(
                    f"read-model schema version {found} in {path!r} is newer than this "
                    f"ctrledger understands ({SCHEMA_VERSION}); upgrade ctrledger: failed precondition"
                )
            db = sqlite_utils.Database(conn)
            db.table("ctrledger_meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
            for version in range(found + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[version](db)
            conn.execute(
                "INSERT INTO ctrledger_meta(key, value) VALUES ('read_model_schema', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (str(SCHEMA_VERSION),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()
