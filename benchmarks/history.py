#!/usr/bin/env python
"""Benchmark history, audit and time travel (the temporal read model), in one run.

Usage::

    python benchmarks/history.py [--quick] [--json FILE] [--check]

Builds a store of N containers (100k; 10k with ``--quick``) and M events (1M;
100k with ``--quick``): each container is created with 5 labels and a 2 KB spec,
one "hot" container receives 1% of the events (10k; 1k with ``--quick``), and the
rest are label changes spread over all containers by 100 actors. The events are
appended in batches of 2,000 per transaction through the store's own log and
inline projections (the same code path as every write, batched so the build is
quick); then it measures:

* ``get(as_of=...)`` of the hot container at random past times, versions and positions;
* a 1%-selective ``list("labels.k0==vJ", as_of=...)`` at random past positions;
* ``history()`` streaming of the hot container, events/s;
* ``audit(actor=...)`` of one actor over the whole log;
* write cost of the temporal model: single-operation creates and ``labels.<k>``
  updates on two fresh stores, one keeping history (the default) and one opened
  with ``history=False``, interleaved in chunks so noise hits both alike.

Targets (from the project's issue): get as_of ≤ 2 ms, 1% list as_of ≤ 50 ms,
history ≥ 100k events/s, audit ≤ 200 ms, writes with history take ≤ 1.25× the
time without it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ctrledger  # noqa: E402
from ctrledger import Container, Payload, Position, Runtime, Version  # noqa: E402
from ctrledger.domain.container import ContainerAggregate, LabelsChanged  # noqa: E402
from ctrledger.domain.model import Audit  # noqa: E402

SPEC_TYPE = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def build(path: Path, containers: int, events: int, rng: random.Random) -> dict[str, object]:
    """Append the dataset through the store's log and inline projections, in batches."""
    tick = timedelta(milliseconds=1)
    now = T0
    batch: list[object] = []
    store = ctrledger.open(path, clock=lambda: T0 + timedelta(days=3650))
    append = store.log.append  # the store's own append path, with the inline read models

    def flush() -> None:
        if batch:
            append(batch)
            batch.clear()

    aggs = []
    for i in range(containers):
        now += tick
        record = Container(
            id=f"c{i:06d}", image=f"registry.example/app:{i % 50}", runtime=Runtime("io.containerd.runc.v2"),
            spec=Payload(SPEC_TYPE, rng.randbytes(2048)),
            labels={"k0": f"v{i % 100}", "k1": f"w{i % 7}", "k2": "x", "k3": str(i), "k4": "y"},
        )
        agg = ContainerAggregate.create("default", record, Audit(f"actor-{i % 100}", "build"), now)
        batch.extend(agg.collect_events())
        aggs.append(agg)
        if len(batch) >= 2000:
            flush()
    hot = aggs[0]
    hot_events = events // 100
    for n in range(events - containers):
        now += tick
        agg = hot if n < hot_events else aggs[rng.randrange(containers)]
        agg.trigger_event(
            LabelsChanged, timestamp=now, audit=Audit(f"actor-{n % 100}", "churn"),
            set={"k1": f"w{n % 7}", "k3": str(n)}, removed=(),
        )
        batch.extend(agg.collect_events())
        if len(batch) >= 2000:
            flush()
    flush()
    head = store.position
    store.close()
    return {"head": head, "start": T0, "end": now, "hot": hot.container_id, "hot_version": hot.version}


def timed(fn: object, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - t)
    return out


def ms(values: list[float]) -> dict[str, float]:
    s = sorted(values)
    return {"p50_ms": round(statistics.median(s) * 1e3, 3), "p99_ms": round(s[int(len(s) * 0.99) - 1] * 1e3, 3)}


def write_cost(base: Path, n: int, rng: random.Random) -> dict[str, float]:
    """Seconds per create and per labels.<k> update, with and without the temporal model."""
    stores = {
        "history": ctrledger.open(base / "w-history.db"),
        "plain": ctrledger.open(base / "w-plain.db", history=False),
    }
    spec = Payload(SPEC_TYPE, rng.randbytes(2048))
    spent = {f"{k}_{op}": 0.0 for k in stores for op in ("create", "update")}
    chunk = 50
    for start in range(0, n, chunk):
        for name, store in (stores.items() if (start // chunk) % 2 == 0 else reversed(stores.items())):
            t = time.perf_counter()
            for i in range(start, start + chunk):
                store.create(Container(id=f"c{i}", image="img", runtime=Runtime("io.containerd.runc.v2"),
                                       spec=spec, labels={f"k{j}": f"v{i % 100}" for j in range(5)}))
            spent[f"{name}_create"] += time.perf_counter() - t
            t = time.perf_counter()
            for i in range(start, start + chunk):
                store.update(Container(id=f"c{i}", labels={"k1": "x"}), "labels.k1")
            spent[f"{name}_update"] += time.perf_counter() - t
    for s in stores.values():
        s.close()
    return {
        "create_ratio": round(spent["history_create"] / spent["plain_create"], 3),
        "update_ratio": round(spent["history_update"] / spent["plain_update"], 3),
        "history_create_per_s": round(n / spent["history_create"]),
        "plain_create_per_s": round(n / spent["plain_create"]),
        "history_update_per_s": round(n / spent["history_update"]),
        "plain_update_per_s": round(n / spent["plain_update"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k containers, 100k events")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target fails")
    parser.add_argument("--writes", type=int, default=2000, help="operations per side for the write-cost ratio")
    args = parser.parse_args()
    containers, events = (10_000, 100_000) if args.quick else (100_000, 1_000_000)
    rng = random.Random(42)
    results: dict[str, object] = {"containers": containers, "events": events}
    with tempfile.TemporaryDirectory(prefix="ctrledger-hist-") as d:
        path = Path(d) / "ledger.db"
        t = time.perf_counter()
        info = build(path, containers, events, rng)
        results["build_s"] = round(time.perf_counter() - t, 1)
        results["build_events_per_s"] = round(events / (time.perf_counter() - t))
        head, hot, hot_version = int(info["head"]), str(info["hot"]), int(info["hot_version"])  # type: ignore[call-overload]
        span = (info["end"] - info["start"]).total_seconds()  # type: ignore[operator]
        with ctrledger.open(path, clock=lambda: T0 + timedelta(days=3650)) as store:
            def at() -> datetime:
                return T0 + timedelta(seconds=rng.uniform(span * 0.05, span))

            results["get_as_of_time"] = ms(timed(lambda: store.get(hot, as_of=at()), 300))
            results["get_as_of_version"] = ms(
                timed(lambda: store.get(hot, as_of=Version(rng.randint(1, hot_version))), 300))
            results["get_as_of_position"] = ms(
                timed(lambda: store.get(hot, as_of=Position(rng.randint(head // 2, head))), 300))
            value = f"v{rng.randrange(100)}"
            sizes = []

            def list_one_percent() -> None:
                sizes.append(len(store.list(f"labels.k0=={value}", as_of=Position(rng.randint(head // 2, head)))))

            results["list_1pct_as_of"] = ms(timed(list_one_percent, 30))
            results["list_1pct_size"] = statistics.median(sizes)
            t = time.perf_counter()
            streamed = sum(1 for _ in store.history(hot))
            results["history_events"] = streamed
            results["history_events_per_s"] = round(streamed / (time.perf_counter() - t))
            audit_counts = []

            def audit_one_actor() -> None:
                audit_counts.append(sum(1 for _ in store.audit(actor=f"actor-{rng.randrange(100)}")))

            results["audit_one_actor"] = ms(timed(audit_one_actor, 10))
            results["audit_rows_per_actor"] = statistics.median(audit_counts)
        results["db_size_mb"] = round(os.path.getsize(path) / 1e6, 1)
        results["write_cost"] = write_cost(Path(d), args.writes, rng)

    wc = results["write_cost"]
    targets = [
        ("get as_of (time) p50 <= 2 ms", results["get_as_of_time"]["p50_ms"] <= 2),  # type: ignore[index]
        ("get as_of (version) p50 <= 2 ms", results["get_as_of_version"]["p50_ms"] <= 2),  # type: ignore[index]
        ("1% list as_of p50 <= 50 ms", results["list_1pct_as_of"]["p50_ms"] <= 50),  # type: ignore[index]
        ("history >= 100k events/s", results["history_events_per_s"] >= 100_000),  # type: ignore[operator]
        ("audit one actor p50 <= 200 ms", results["audit_one_actor"]["p50_ms"] <= 200),  # type: ignore[index]
        ("create with history <= 1.25x time", wc["create_ratio"] <= 1.25),  # type: ignore[index]
        ("update with history <= 1.25x time", wc["update_ratio"] <= 1.25),  # type: ignore[index]
    ]
    print(json.dumps(results, indent=2, default=str))
    for name, ok in targets:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    results["targets"] = {name: ok for name, ok in targets}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 1 if args.check and not all(ok for _, ok in targets) else 0


if __name__ == "__main__":
    raise SystemExit(main())
