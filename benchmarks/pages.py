#!/usr/bin/env python
"""Pages written per commit: how many WAL frames one create, update and delete append.

Usage::

    python benchmarks/pages.py [--n N] [--existing M] [--by-table]

Opens a fresh embedded store, creates ``M`` containers first (so the b-trees have depth),
then measures ``N`` creates, ``N`` updates (``labels.k1``) and ``N`` deletes, each its own
commit, by the growth of the WAL file (the store checkpoints only every ~10,000 pages, so
the WAL is not reset during a phase of fewer commits than that). Containers have 5 labels
and a 2048-byte spec, as in ``run.py``. Raw SQLite's single-row durable insert writes ~4.4
pages per commit on the same machine (``run.py``'s baseline).

``--by-table`` also attributes each phase's WAL frames to the table or index that owns the
page (the page number in each frame's header, looked up in SQLite's ``dbstat``; a page
freed or not yet in a b-tree is counted as ``(free or new)``), per commit.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import struct
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ctrledger  # noqa: E402
from ctrledger import Container, Payload, Runtime  # noqa: E402


def frames(path: str) -> int:
    wal = path + "-wal"
    size = os.path.getsize(wal) if os.path.exists(wal) else 0
    page = int(sqlite3.connect(path).execute("PRAGMA page_size").fetchone()[0])
    return max(0, (size - 32) // (page + 24))


def owners(path: str, start: int) -> Counter[str]:
    """The WAL frames after byte offset ``start``, counted by the b-tree that owns their page."""
    conn = sqlite3.connect(path)
    try:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        owner = dict(conn.execute("SELECT pageno, name FROM dbstat"))
    finally:
        conn.close()
    data = Path(path + "-wal").read_bytes()
    counts: Counter[str] = Counter()
    offset = max(start, 32)
    while offset + 24 + page <= len(data):
        (pgno,) = struct.unpack(">I", data[offset:offset + 4])
        counts["page 1 (header)" if pgno == 1 else owner.get(pgno, "(free or new)")] += 1
        offset += 24 + page
    return counts


def wal_bytes(path: str) -> int:
    wal = path + "-wal"
    return os.path.getsize(wal) if os.path.exists(wal) else 0


def record(i: int, spec: Payload, rng: random.Random) -> Container:
    return Container(id=f"c{i:07d}", image="img", runtime=Runtime("io.containerd.runc.v2"), spec=spec,
                     labels={f"k{j}": f"v{rng.randrange(100)}" for j in range(5)})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--existing", type=int, default=3000)
    parser.add_argument("--by-table", action="store_true", help="attribute the frames to tables and indexes")
    args = parser.parse_args()
    rng = random.Random(3)
    spec = Payload("types.containerd.io/opencontainers/runtime-spec/1/Spec", rng.randbytes(2048))
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="ctrledger-pages-") as d:
        path = str(Path(d) / "pages.db")
        with ctrledger.open(path, follow=False) as store:
            for i in range(args.existing):
                store.create(record(i, spec, rng))
        order = list(range(args.existing, args.existing + args.n))
        phases: list[tuple[str, Callable[[ctrledger.Store, int], object]]] = [
            ("create", lambda s, i: s.create(record(i, spec, rng))),
            ("update", lambda s, i: s.update(Container(id=f"c{i:07d}", labels={"k1": f"u{i}"}), "labels.k1")),
            ("delete", lambda s, i: s.delete(f"c{i:07d}")),
        ]
        for name, op in phases:
            with ctrledger.open(path, follow=False) as store:
                conn = sqlite3.connect(path)
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.close()
                before, start = frames(path), wal_bytes(path)
                for i in order:
                    op(store, i)
                results[f"{name}_pages_per_commit"] = round((frames(path) - before) / len(order), 1)
                if args.by_table:
                    results[f"{name}_by_table"] = {
                        k: round(v / len(order), 2) for k, v in owners(path, start).most_common()}
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
