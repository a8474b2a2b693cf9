#!/usr/bin/env python
"""Benchmark export, import and rebuild: events/s and peak RSS, at two log sizes.

Usage::

    python benchmarks/replay.py [--quick] [--sizes N,N] [--json FILE] [--check] [--fixtures DIR]

For each size (200k and 1M events; 20k and 100k with ``--quick``), with one container
per ten events (each created with 5 labels and a 2 KB spec, then label changes spread
over all of them, as ``benchmarks/history.py`` builds them):

1. build a bare log (stored events and their hashes, no read models) directly;
2. ``export`` it to an archive;
3. ``import_`` the archive into a fresh store (log, hashes and every read model);
4. ``export`` that store (the figure reported as *export*);
5. ``rebuild`` its read models (build into a scratch file, check, swap in);

and, before 3, *catch-up*: open a copy of the bare log, whose views are all behind by the
whole log (they catch up on open, in bulk).

Steps 2 to 5 each run in a subprocess of their own, which reports its peak RSS (the
kernel's high-water mark of the process, ``VmHWM``; ``resource.getrusage`` where there is
no ``/proc``), so the figures do not include the builder's memory, and its CPU time beside
the wall time (on a shared machine the two differ: ``cpu_events_per_s`` is the rate the
process would reach with a core of its own, as long as it does not wait for the disk).

``--fixtures DIR`` keeps the bare log and its archive of each size in ``DIR`` and reuses them
on the next run (building the 1M-event log takes minutes; it is the same log every time, from
a fixed seed).

Targets (from the project's issue): export >= 150k events/s, import >= 25k events/s,
rebuild >= 30k events/s, catch-up >= 30k events/s (the rebuild's rate), each with peak RSS
<= 300 MB, and RSS flat as the log grows. Each is printed beside its figure.
The load of the machine (``os.getloadavg``) is printed before and after each step.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ctrledger  # noqa: E402
from ctrledger import Container, Payload, Runtime  # noqa: E402
from ctrledger.domain.container import ContainerAggregate, LabelsChanged  # noqa: E402
from ctrledger.domain.model import Audit  # noqa: E402
from ctrledger.replay import export, import_, rebuild  # noqa: E402
from ctrledger.replay.log import BareLog, append_stored  # noqa: E402

SPEC_TYPE = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
T0 = datetime(2026, 1, 1, tzinfo=UTC)




def build_log(path: Path, events: int, seed: int = 42) -> None:
    """A bare log of ``events`` events (no read models), appended in large transactions."""
    rng = random.Random(seed)
    containers = max(1, events // 10)
    with ctrledger.open(path, clock=lambda: T0 + timedelta(days=3650)) as store:
        mapper = store.mapper
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    head = 0
    batch: list[tuple[Any, ...]] = []

    def flush() -> None:
        nonlocal head
        conn.execute("BEGIN IMMEDIATE")
        append_stored(conn.cursor(), batch, head, [], mapper)
        conn.execute("COMMIT")
        head += len(batch)
        batch.clear()

    def add(agg: ContainerAggregate) -> None:
        for e in agg.collect_events():
            s = mapper.to_stored_event(e)
            batch.append((s.originator_id, s.originator_version, s.topic, s.state))
        if len(batch) >= 10_000:
            flush()

    now = T0
    tick = timedelta(milliseconds=1)
    aggs = []
    for i in range(containers):
        now += tick
        record = Container(
            id=f"c{i:07d}", image=f"registry.example/app:{i % 50}", runtime=Runtime("io.containerd.runc.v2"),
            spec=Payload(SPEC_TYPE, rng.randbytes(2048)),
            labels={"k0": f"v{i % 100}", "k1": f"w{i % 7}", "k2": "x", "k3": str(i), "k4": "y"},
        )
        agg = ContainerAggregate.create("default" if i % 4 else "ns1", record, Audit(f"actor-{i % 100}", "build"),
                                        now)
        add(agg)
        aggs.append(agg)
    for n in range(events - containers):
        now += tick
        agg = aggs[rng.randrange(containers)]
        agg.trigger_event(LabelsChanged, timestamp=now, audit=Audit(f"actor-{n % 100}", "churn"),
                          set={"k1": f"w{n % 7}", "k3": str(n)}, removed=())
        add(agg)
    if batch:
        flush()
    conn.close()


# -- the measured steps (each in a subprocess) -----------------------------------------------------


def step(name: str, a: str, b: str) -> dict[str, Any]:
    t, cpu = time.perf_counter(), time.process_time()
    if name == "export-log":
        with ctrledger.open(tempfile.mktemp(suffix=".db")) as scratch:
            mapper = scratch.mapper
        events = export(BareLog(Path(a), mapper), b).events
    elif name == "export":
        with ctrledger.open(a) as store:
            events = export(store, b).events
    elif name == "import":
        with ctrledger.open(b) as store:
            events = import_(a, into=store).events
    elif name == "rebuild":
        with ctrledger.open(a) as store:
            events = rebuild(store)
    elif name == "catch-up":  # a copy of the bare log: every view is behind by the whole log
        with ctrledger.open(b) as store:
            events = store.position
    else:
        raise SystemExit(f"unknown step {name}")
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    return {"events": events, "seconds": round(seconds, 2), "events_per_s": round(events / seconds),
            "cpu_s": round(cpu, 2), "cpu_events_per_s": round(events / cpu) if cpu else None,
            "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak RSS. Linux keeps ``ru_maxrss`` across exec, so a child forked from a big
    parent reports the parent's size there: read the high-water mark of this image (VmHWM) instead."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []


def measure(name: str, a: Path, b: Path) -> dict[str, Any]:
    before = load()
    out = subprocess.run([sys.executable, __file__, "--step", name, str(a), str(b)], check=True,
                         capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["load_before_after"] = [before, load()]
    return result


def run_size(events: int, directory: Path, fixtures: Path | None = None) -> dict[str, Any]:
    store, again = (directory / f"{events}-{n}" for n in ("store.db", "store.ctrlarchive"))
    kept = fixtures if fixtures is not None else directory
    log, archive = kept / f"{events}-log.db", kept / f"{events}-log.ctrlarchive"
    out: dict[str, Any] = {"events": events}
    if fixtures is None or not (log.exists() and archive.exists()):
        for p in (log, archive):
            p.unlink(missing_ok=True)
        t = time.perf_counter()
        build_log(log, events)
        out["build_s"] = round(time.perf_counter() - t, 1)
        out["export_bare_log"] = measure("export-log", log, archive)
    else:
        out["build_s"] = "reused"
    caught_up = directory / f"{events}-caught-up.db"
    shutil.copyfile(log, caught_up)
    out["catch_up"] = measure("catch-up", log, caught_up)
    caught_up.unlink()
    out["import"] = measure("import", archive, store)
    out["export"] = measure("export", store, again)
    out["rebuild"] = measure("rebuild", store, store)
    out["archive_mb"] = round(archive.stat().st_size / 1e6, 1)
    out["store_mb"] = round(store.stat().st_size / 1e6, 1)
    for p in directory.glob(f"{events}-*"):
        if fixtures is None or p not in (log, archive):
            p.unlink()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20k and 100k events")
    parser.add_argument("--sizes", help="comma-separated event counts (overrides --quick)")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target fails")
    parser.add_argument("--fixtures", metavar="DIR", help="keep the built logs and archives here, and reuse them")
    parser.add_argument("--step", nargs=3, metavar=("NAME", "A", "B"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(step(*args.step)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else (
        [20_000, 100_000] if args.quick else [200_000, 1_000_000])
    with tempfile.TemporaryDirectory(prefix="ctrledger-replay-", dir=os.environ.get("TMPDIR")) as d:
        fixtures = None if args.fixtures is None else Path(args.fixtures)
        if fixtures is not None:
            fixtures.mkdir(parents=True, exist_ok=True)
        results = [run_size(n, Path(d), fixtures) for n in sizes]
    print(json.dumps(results, indent=2))
    big, small = results[-1], results[0]
    rate = {"export": 150_000, "import": 25_000, "rebuild": 30_000, "catch_up": 30_000}
    targets: list[tuple[str, bool]] = []
    for step_name, want in rate.items():
        got = big[step_name]
        targets.append((f"{step_name} >= {want // 1000}k events/s at {big['events']:,}: {got['events_per_s']:,}/s "
                        f"(CPU {got['cpu_events_per_s']:,}/s, load {got['load_before_after'][1][0]})",
                        got["events_per_s"] >= want))
    for step_name in rate:
        peak, first = big[step_name]["peak_rss_mb"], small[step_name]["peak_rss_mb"]
        targets.append((f"{step_name} peak RSS <= 300 MB: {peak} MB", peak <= 300))
        targets.append((f"{step_name} RSS flat (largest <= 1.25x smallest + 20 MB): {first} -> {peak} MB",
                        peak <= 1.25 * first + 20))
    for name, ok in targets:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "targets": dict(targets)}, indent=2))
    return 1 if args.check and not all(ok for _, ok in targets) else 0


if __name__ == "__main__":
    raise SystemExit(main())
