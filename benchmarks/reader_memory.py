#!/usr/bin/env python
"""A reader process for ``benchmarks/run.py``: open, get, list, list-all; print peak RSS as JSON.

Usage: ``python benchmarks/reader_memory.py {store,raw} PATH --n N [--gets G] [--seed S]``

``store`` opens the ctrledger store at PATH; ``raw`` opens the raw SQLite baseline
that ``run.py`` writes (its ``containers`` table, labels as a msgpack blob, and
its ``labels`` index table). Peak RSS (see ``peak_mb``) is reported in MB
(10^6 bytes) after each phase; it only grows.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import sqlite3
import sys
import time
from typing import Any


def peak_mb() -> float:
    """This process's peak RSS in MB (10^6 bytes).

    ``VmHWM`` from ``/proc/self/status`` where there is one: ``ru_maxrss`` would also
    count the parent's RSS, because Linux carries the high-water mark of the image a
    process replaced at ``exec`` (for ``subprocess``, the vforked parent) into it.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def container_id(i: int) -> str:  # same as run.py, without importing it (keeps this process lean)
    return hashlib.sha256(f"ctrledger-bench-{i}".encode()).hexdigest()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=("store", "raw"))
    p.add_argument("path")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--gets", type=int, default=1000)
    p.add_argument("--filter-key", default="k0")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    rng = random.Random(args.seed)
    ids = [container_id(i) for i in rng.sample(range(args.n), min(args.n, args.gets))]
    out: dict[str, Any] = {"kind": args.kind, "gets": len(ids)}
    t0 = time.perf_counter()

    if args.kind == "store":
        import ctrledger

        out["after_import_mb"] = peak_mb()
        out["module"] = ctrledger.__file__
        store = ctrledger.open(args.path)
        out["after_open_mb"] = peak_mb()
        out["open_s"] = time.perf_counter() - t0
        for cid in ids:
            store.get(cid)
        for v in range(5):
            store.list(f"labels.{args.filter_key}==v{v}")
        out["before_list_all_mb"] = peak_mb()
        t1 = time.perf_counter()
        out["scanned"] = sum(1 for _ in store.scan())  # the streamed list-all: constant memory
        out["with_scan_mb"] = peak_mb()
        out["scan_all_s"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        everything = store.list()
        out["listed"] = len(everything)
        out["peak_rss_mb"] = peak_mb()
        out["list_all_s"] = time.perf_counter() - t1
        del everything
        store.close()
    else:
        import msgpack

        out["after_import_mb"] = peak_mb()
        conn = sqlite3.connect(args.path)
        cols = "id, image, runtime, spec_type_url, spec, labels, created_at, updated_at"
        out["after_open_mb"] = peak_mb()
        out["open_s"] = time.perf_counter() - t0

        def decode(row: tuple[Any, ...]) -> tuple[Any, ...]:
            return (*row[:5], msgpack.unpackb(row[5]), *row[6:])

        for cid in ids:
            decode(conn.execute(f"SELECT {cols} FROM containers WHERE id=?", (cid,)).fetchone())
        ccols = ", ".join(f"c.{c.strip()}" for c in cols.split(","))
        for v in range(5):
            rows = conn.execute(
                f"SELECT {ccols} FROM labels l JOIN containers c ON c.id = l.id "
                "WHERE l.key=? AND l.value=? ORDER BY c.id",
                (args.filter_key, f"v{v}"),
            ).fetchall()
            [decode(r) for r in rows]
        out["before_list_all_mb"] = peak_mb()
        t1 = time.perf_counter()
        decoded = [decode(r) for r in conn.execute(f"SELECT {cols} FROM containers ORDER BY id").fetchall()]
        out["listed"] = len(decoded)
        out["peak_rss_mb"] = peak_mb()
        out["list_all_s"] = time.perf_counter() - t1
        del decoded
        conn.close()
    out["total_s"] = time.perf_counter() - t0
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
