#!/usr/bin/env python
"""Benchmark the PostgreSQL scale-out: write throughput and how far a second node lags.

Usage::

    python benchmarks/scaleout.py [--url postgresql://postgres@127.0.0.1:5432/test] [--n 1000] [--json FILE]

Runs in a fresh schema (dropped afterwards), on loopback:

* creates from one client (one process), then from four concurrent clients
  (four processes, each a node with its own read model);
* then, under the load of three writer nodes, a probe node creates containers one at a
  time and a follower node (LISTEN/NOTIFY + polling, no reads of its own) is watched
  for each: the lag is from the probe's acknowledgement to the row in the follower's
  read model.

Targets (from the project's issue): create ≥ 500/s from one client and ≥ 1,000/s from
four; the second node's lag p99 ≤ 100 ms under that load.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

import ctrledger  # noqa: E402
from ctrledger import Container, Payload, Runtime  # noqa: E402

SPEC = Payload("types.containerd.io/opencontainers/runtime-spec/1/Spec", os.urandom(2048))


def node_url(base: str, schema: str, readmodel: Path) -> str:
    return f"{base}?schema={schema}&readmodel={readmodel}"


def writer(url: str, name: str, n: int, start: mp.synchronize.Event, out: mp.Queue) -> None:  # type: ignore[type-arg]
    with ctrledger.open(url, follow=False) as store:
        start.wait()
        t = time.perf_counter()
        for i in range(n):
            store.create(Container(id=f"{name}-{i}", image="img", runtime=Runtime("io.containerd.runc.v2"),
                                   spec=SPEC, labels={f"k{j}": f"v{i % 100}" for j in range(5)}))
        out.put((name, time.perf_counter() - t))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("CTRLEDGER_TEST_POSTGRES",
                                                        "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--n", type=int, default=1000, help="creates per client")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    base = args.url.split("?")[0]
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    results: dict[str, object] = {"creates_per_client": args.n}
    try:
        with tempfile.TemporaryDirectory(prefix="ctrledger-scale-") as d:
            # the log's insert time, for the lag measurement
            first = ctrledger.open(node_url(base, schema, Path(d) / "one.db"), follow=False)
            t = time.perf_counter()
            for i in range(args.n):
                first.create(Container(id=f"single-{i}", image="img", runtime=Runtime("io.containerd.runc.v2"),
                                       spec=SPEC, labels={f"k{j}": f"v{i % 100}" for j in range(5)}))
            results["one_client_creates_per_s"] = round(args.n / (time.perf_counter() - t))
            first.close()

            ctx = mp.get_context("spawn")
            start = ctx.Event()
            out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
            procs = [ctx.Process(target=writer, args=(node_url(base, schema, Path(d) / f"w{k}.db"), f"w{k}",
                                                      args.n, start, out)) for k in range(4)]
            for p in procs:
                p.start()
            time.sleep(2.0)  # all four connected
            t = time.perf_counter()
            start.set()
            for p in procs:
                p.join()
            results["four_clients_creates_per_s"] = round(4 * args.n / (time.perf_counter() - t))
            lags = measure_lag(base, schema, d)
            results["follower_lag_ms"] = lags
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
    targets = [
        ("one client >= 500 creates/s", results["one_client_creates_per_s"] >= 500),  # type: ignore[operator]
        ("four clients >= 1000 creates/s", results["four_clients_creates_per_s"] >= 1000),  # type: ignore[operator]
        ("follower lag p99 <= 100 ms", results["follower_lag_ms"]["p99"] <= 100),  # type: ignore[index]
    ]
    print(json.dumps(results, indent=2))
    for name, ok in targets:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    if args.json:
        Path(args.json).write_text(json.dumps({**results, "targets": dict(targets)}, indent=2))
    return 0


def measure_lag(base: str, schema: str, d: str) -> dict[str, float]:
    """Lag of a following node behind acknowledged writes, under four concurrent writers.

    A probe writer stamps each create with its acknowledgement time; the follower's
    read model is polled for each probe; the lag is arrival minus acknowledgement.
    """
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    load = [ctx.Process(target=writer, args=(node_url(base, schema, Path(d) / f"l{k}.db"), f"l{k}", 400,
                                             start, out)) for k in range(3)]
    for p in load:
        p.start()
    follower_file = Path(d) / "lag-follower.db"
    follower = ctrledger.open(node_url(base, schema, follower_file))
    probe = ctrledger.open(node_url(base, schema, Path(d) / "probe.db"), follow=False)
    time.sleep(2.0)
    start.set()
    conn = sqlite3.connect(follower_file)
    lags = []
    for i in range(150):
        probe.create(Container(id=f"probe-{i}", runtime=Runtime("io.containerd.runc.v2"), spec=SPEC))
        acked = time.perf_counter()
        while not conn.execute("SELECT 1 FROM containers WHERE id=?", (f"probe-{i}",)).fetchone():
            time.sleep(0.001)
        lags.append((time.perf_counter() - acked) * 1e3)
    conn.close()
    for p in load:
        p.join()
    probe.close()
    follower.close()
    lags.sort()
    return {"p50": round(statistics.median(lags), 1), "p99": round(lags[int(len(lags) * 0.99) - 1], 1),
            "max": round(lags[-1], 1)}


if __name__ == "__main__":
    raise SystemExit(main())
