#!/usr/bin/env python
"""Benchmark the web view (``ctrledger ui``): its pages rendered end to end, in one run.

Usage::

    python benchmarks/ui.py [--quick] [--json FILE] [--check]

Builds a store of N containers (100k; 10k with ``--quick``), each with 5 labels and a 2 KB
spec, and one "hot" container with E events (5,000; 1,000 with ``--quick``): label changes,
with a delete and a re-create every 500 events. The events are appended in batches through the
store's own log and inline read models (the same path as every write, batched so the build is
quick). Then, through Flask's test client (routing, the store's reads, templates, the response
body), it times each page R times:

* the containers list, first page (100 rows) now, and at a past log position (the temporal model);
* the containers list, the last page (page 1,000 of 1,000 at 100k), reached as its "next" link does:
  ``after=`` the last ID of the page before (keyset paging: ``Store.scan(after=)`` starts there);
  and the page halfway down as of a past position;
* the hot container's page (its timeline SVG over every event, the record, the newest 100 events);
  and its page of older events (``before=`` a version halfway down);
* the hot container's timeline SVG alone; the audit page of one actor; the last page of the whole
  audit, reached as its "next" links do (``after=`` the position the page before ended with);
* for comparison, the hot container's whole ``Store.history`` (every event decoded), which the
  container page read before it drew from the audit rows.

Beside each page it times the store call the page makes (the baseline in the same run: the
first 101 records of ``Store.scan`` from where the page starts; the hot container's
``Store.audit`` rows and, for its page, the 101 records ``Store.get`` reads at the versions of its
table; the first 101 of ``Store.audit``), so the view's own cost is reported as a ratio to the
store's.

Targets (from the project's issue): the list page at 100k containers and the 5,000-event
timeline each render in ≤ 300 ms (median); so does the audit's last page. It exits 0 (a
report) unless ``--check`` is given: then 1 if a target fails.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ctrledger  # noqa: E402
from ctrledger import Container, Payload, Runtime  # noqa: E402
from ctrledger.domain.container import ContainerAggregate, LabelsChanged  # noqa: E402
from ctrledger.domain.model import Audit  # noqa: E402
from ctrledger.ui.app import EVENTS_PAGE_SIZE, create_app  # noqa: E402

SPEC_TYPE = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def build(path: Path, containers: int, events: int, rng: random.Random) -> dict[str, Any]:
    """Append the dataset through the store's log and inline read models, in batches."""
    tick = timedelta(milliseconds=10)
    now = T0
    batch: list[object] = []
    store = ctrledger.open(path, clock=lambda: T0 + timedelta(days=3650))
    append = store.log.append  # the store's own append path, with the inline read models

    def flush() -> None:
        if batch:
            append(batch)
            batch.clear()

    def record(i: int) -> Container:
        return Container(
            id=f"c{i:06d}", image=f"registry.example/app:{i % 50}", runtime=Runtime("io.containerd.runc.v2"),
            spec=Payload(SPEC_TYPE, rng.randbytes(2048)),
            labels={"k0": f"v{i % 100}", "k1": f"w{i % 7}", "k2": "x", "k3": str(i), "k4": "y"},
        )

    hot = ContainerAggregate.create("default", record(0), Audit("alice", "build"), now)
    batch.extend(hot.collect_events())
    middle = 0
    for i in range(1, containers):
        now += tick
        agg = ContainerAggregate.create("default", record(i), Audit(f"actor-{i % 100}", "build"), now)
        batch.extend(agg.collect_events())
        if i == containers // 2:
            flush()
            middle = store.position
        if len(batch) >= 2000:
            flush()
    flush()
    for n in range(1, events):
        now += tick
        if n % 500 == 0:
            hot.delete(Audit("bob", "recycle"), now)
            now += tick
            hot.recreate(record(0), Audit("alice", "again"), now)
        else:
            hot.trigger_event(
                LabelsChanged, timestamp=now, audit=Audit(f"actor-{n % 10}", "churn"),
                set={"k1": f"w{n % 7}", "k3": str(n)}, removed=(),
            )
        batch.extend(hot.collect_events())
        if len(batch) >= 2000:
            flush()
    flush()
    head = store.position
    version = hot.version
    store.close()
    return {"head": head, "middle": middle, "hot": "c000000", "hot_version": version}


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    fn()  # warm: templates compiled, pages of the file in the cache
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1e3, 2)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k containers, 1,000 events")
    parser.add_argument("--containers", type=int)
    parser.add_argument("--events", type=int)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path, help="build the store here, or reuse the one already there")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    containers = args.containers or (10_000 if args.quick else 100_000)
    events = args.events or (1_000 if args.quick else 5_000)
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "ui.db"
        t = time.perf_counter()
        meta = path.with_name(path.name + ".json")
        if args.keep and meta.exists():
            data = json.loads(meta.read_text())
        else:
            data = build(path, containers, events, rng)
            if args.keep:
                meta.write_text(json.dumps(data))
        built = time.perf_counter() - t
        print(f"built {containers:,} containers and a {events:,}-event history "
              f"({data['head']:,} events) in {built:.1f} s", file=sys.stderr)
        with ctrledger.open(path) as store:
            client = create_app(store, source=str(path)).test_client()
            hot, middle = data["hot"], data["middle"]
            last_after = f"c{containers - 101:06d}"  # the last ID of the page before the last page
            deep_after = data["head"] - 100  # the last page of the whole audit: its 100 newest records
            half_after = f"c{containers // 4 - 1:06d}"  # ... of the page halfway down the list as of middle
            half_version = data["hot_version"] // 2

            def reads(newest: int) -> object:
                """The container page's store calls: its audit rows, and the record at each version
                of its table (a page of them, and the one before) to tell what each event changed."""
                rows = list(store.audit(namespace="default", id=hot))
                states: list[ctrledger.Container | None] = []
                for v in range(newest - EVENTS_PAGE_SIZE, newest + 1):
                    try:
                        states.append(store.get(hot, as_of=ctrledger.Version(v)))
                    except ctrledger.NotFound:
                        states.append(None)
                return rows, states

            def get(url: str) -> Callable[[], object]:
                def fetch() -> object:
                    response = client.get(url)
                    assert response.status_code == 200, (url, response.status_code, response.text[:300])
                    return response.data
                return fetch

            pages: dict[str, tuple[str, Callable[[], object]]] = {
                "list_page_now": ("/", lambda: list(islice(store.scan(), 101))),
                "list_page_past": (f"/?at=@{middle}",
                                   lambda: list(islice(store.scan(as_of=ctrledger.Position(middle)), 101))),
                "list_page_last": (f"/?after={last_after}&start={containers - 99}",
                                   lambda: list(islice(store.scan(after=last_after), 101))),
                "list_page_half_past": (
                    f"/?at=@{middle}&after={half_after}",
                    lambda: list(islice(store.scan(as_of=ctrledger.Position(middle), after=half_after), 101))),
                "container_page": (f"/containers/{hot}", lambda: reads(data["hot_version"])),
                "container_older": (f"/containers/{hot}?before=v{half_version}", lambda: reads(half_version - 1)),
                "timeline_svg": (f"/containers/{hot}/timeline.svg",
                                 lambda: list(store.audit(namespace="default", id=hot))),
                "(history stream)": ("", lambda: list(store.history(hot))),
                "audit_page": ("/audit?actor=bob", lambda: list(islice(store.audit(actor="bob"), 101))),
                # The audit's last page of everything, reached as its "next" links do (after= the
                # position the page before ended with): keyset paging, no walk over what precedes it.
                "audit_page_last": (f"/audit?after={deep_after}",
                                    lambda: list(islice(store.audit(after=ctrledger.Position(deep_after)), 101))),
            }
            results: dict[str, Any] = {
                "containers": containers, "events": events, "hot_version": data["hot_version"],
                "head": data["head"], "build_s": round(built, 1),
            }
            for name, (url, baseline) in pages.items():
                repeat = args.repeat
                if not url:  # a store call alone, for comparison
                    base = timed(baseline, repeat)
                    results[name] = {"url": "", "median_ms": median_ms(base), "max_ms": round(max(base) * 1e3, 2),
                                     "store_call_ms": median_ms(base), "ratio_to_store_call": 1.0, "bytes": 0}
                    continue
                view = timed(get(url), repeat)
                base = timed(baseline, repeat)
                size = len(get(url)())  # type: ignore[arg-type]
                results[name] = {
                    "url": url, "median_ms": median_ms(view), "max_ms": round(max(view) * 1e3, 2),
                    "store_call_ms": median_ms(base), "ratio_to_store_call": round(
                        statistics.median(view) / max(statistics.median(base), 1e-9), 2),
                    "bytes": size,
                }
    targets = [
        (f"list page at {containers:,} containers <= 300 ms", results["list_page_now"]["median_ms"] <= 300),
        (f"last list page at {containers:,} containers <= 300 ms", results["list_page_last"]["median_ms"] <= 300),
        (f"{events:,}-event timeline (container page) <= 300 ms", results["container_page"]["median_ms"] <= 300),
        (f"last audit page of {data['head']:,} events <= 300 ms", results["audit_page_last"]["median_ms"] <= 300),
    ]
    results["targets"] = {name: ok for name, ok in targets}
    width = max(len(k) for k in pages)
    print(f"{'page':<{width}}  {'median ms':>9}  {'max ms':>8}  {'store ms':>8}  {'ratio':>6}  {'bytes':>9}")
    for name in pages:
        r = results[name]
        print(f"{name:<{width}}  {r['median_ms']:>9}  {r['max_ms']:>8}  {r['store_call_ms']:>8}  "
              f"{r['ratio_to_store_call']:>6}  {r['bytes']:>9,}")
    for name, ok in targets:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if args.check and not all(ok for _, ok in targets) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
