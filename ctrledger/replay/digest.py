"""A canonical digest of the read models, and a check of the live model against a rebuild.

``digest(store)`` is a SHA-256 over every table of every view of the store, in a
canonical order, plus the views' tracking positions and the read-model schema
version, read in one snapshot. Two stores that applied the same log with the same
views give the same digest, on any machine:

* views by name, their tables in the order the view declares them;
* each table: its name, its column names (schema order), then every row ordered by
  the primary key (or, with none, a unique index; or, with neither, all columns),
  each row encoded as a msgpack array (type-tagged and canonical: the smallest
  integer encoding, UTF-8 strings, raw bytes, float64), then its row count;
* never the rowid (an implementation detail that differs between an inline and a
  rebuilt model), never tables outside the views (the log, import progress).

``verify_projections(store)`` rebuilds the read models into a scratch file, up to the
position the live model has applied, and compares digests table by table: a
read model that drifted or was edited by hand is detected and the tables named.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import msgpack

from ..projections.current import tracked_position
from ..projections.runner import View
from ..projections.schema import schema_version
from .rebuild import Source, build_views, open_scratch, read_only, source_of, synced

__all__ = ["VerifyResult", "digest", "table_digests", "verify_projections"]

DIGEST_VERSION = 1
_FETCH = 5000


def _order_columns(conn: sqlite3.Connection, table: str, columns: list[str]) -> list[str]:
    pk = sorted((r[5], r[1]) for r in conn.execute(f"PRAGMA table_info({table})") if r[5] > 0)
    if pk:
        return [name for _, name in pk]
    for index in conn.execute(f"PRAGMA index_list({table})"):
        if index[2]:  # unique
            return [r[2] for r in conn.execute(f"PRAGMA index_info({index[1]})")]
    return columns


def table_digest(conn: sqlite3.Connection, table: str) -> str:
    """The SHA-256 of one table's rows in canonical order (see the module docstring)."""
    columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    order = _order_columns(conn, table, columns)
    packer = msgpack.Packer(use_bin_type=True, autoreset=True, unicode_errors="surrogateescape")
    h = hashlib.sha256(packer.pack(["table", table, columns]))
    cursor = conn.execute(
        f"SELECT {', '.join(columns)} FROM {table} ORDER BY {', '.join(order)}"
    )
    count = 0
    while rows := cursor.fetchmany(_FETCH):
        h.update(b"".join(map(packer.pack, rows)))
        count += len(rows)
    h.update(packer.pack(["rows", count]))
    return h.hexdigest()


def table_digests(conn: sqlite3.Connection, views: Sequence[View]) -> dict[str, str]:
    """Each view table's digest, and ``tracking:<view>`` for each view's position, by name."""
    out: dict[str, str] = {}
    for view in sorted(views, key=lambda v: v.name):
        for table in view.tables:
            out[table] = table_digest(conn, table)
        out[f"tracking:{view.name}"] = str(tracked_position(conn, view.name))
    return out


def _combine(parts: dict[str, str], schema: int) -> str:
    packer = msgpack.Packer(use_bin_type=True, unicode_errors="surrogateescape")
    return hashlib.sha256(packer.pack(["ctrledger-read-model", DIGEST_VERSION, schema, sorted(parts.items())])
                          ).hexdigest()


def _snapshot_digests(path: str, views: Sequence[View]) -> tuple[str, dict[str, str], int]:
    with closing(read_only(path)) as conn:
        conn.execute("BEGIN")
        parts = table_digests(conn, views)
        schema = schema_version(conn)
        positions = [tracked_position(conn, v.name) for v in views]
        conn.execute("COMMIT")
    return _combine(parts, schema), parts, max(positions, default=0)


def digest(source: Source) -> str:
    """The hex SHA-256 of the store's read models, canonical (see the module docstring)."""
    store = source_of(source)
    synced(store)
    return _snapshot_digests(store.path, store.views)[0]


@dataclass(frozen=True)
class VerifyResult:
    """What ``verify_projections`` found: ``ok``, both digests, and the tables that differ."""

    ok: bool
    position: int
    live: str
    rebuilt: str
    differences: tuple[str, ...]

    def __str__(self) -> str:
        if self.ok:
            return f"OK: the read model at position {self.position} equals a rebuild from the log ({self.live[:12]})"
        return (f"DRIFT: the read model at position {self.position} differs from a rebuild from the log in "
                f"{', '.join(self.differences)}")


def verify_projections(source: Source) -> VerifyResult:
    """Rebuild the read models into a scratch file and compare them with the live ones."""
    store = source_of(source)
    views = list(store.views)
    synced(store)
    live, live_parts, _ = _snapshot_digests(store.path, views)
    positions = {name[len("tracking:"):]: int(v) for name, v in live_parts.items() if name.startswith("tracking:")}
    upto = max(positions.values(), default=0)
    directory = Path(store.path).resolve().parent
    # beside the store (same disk) when it may be written there; a read-only store's in the temp directory
    scratch_dir = directory if os.access(directory, os.W_OK) and not store.readonly else None
    with tempfile.TemporaryDirectory(prefix=".ctrledger-verify-", dir=scratch_dir) as tmp:
        scratch = Path(tmp) / "rebuilt.db"
        with closing(read_only(store.path)) as log, closing(open_scratch(scratch)) as target:
            log.execute("BEGIN")
            for at in sorted(set(positions.values())):  # each view up to the position the live one applied
                build_views(log, target, [v for v in views if positions[v.name] == at], store.mapper, at)
            log.execute("COMMIT")
            rebuilt_parts = table_digests(target, views)
            rebuilt = _combine(rebuilt_parts, schema_version(target))
    differences = tuple(sorted(k for k in set(live_parts) | set(rebuilt_parts)
                               if live_parts.get(k) != rebuilt_parts.get(k)))
    return VerifyResult(live == rebuilt, upto, live, rebuilt, differences)
