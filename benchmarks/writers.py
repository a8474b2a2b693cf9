#!/usr/bin/env python
"""Concurrent writers on one embedded store: 8 threads against one, in the same run.

Usage::

    python benchmarks/writers.py [--n N] [--threads T] [--rounds R]

Each round times ``N`` creates from one thread, then ``N`` creates split over ``T``
threads (one store, shared), on the same file, alternating which goes first. Reported:
creates/s of each and the ratio (target: 8 writers >= 1.5x the single writer, by group
commit: several writers' events in one fsync, each acknowledged only after it).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ctrledger  # noqa: E402
from ctrledger import Container, Payload, Runtime  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rng = random.Random(5)
    spec = Payload("types.containerd.io/opencontainers/runtime-spec/1/Spec", rng.randbytes(2048))
    counter = iter(range(10**9))
    lock = threading.Lock()

    def create(store: ctrledger.Store) -> None:
        with lock:
            i = next(counter)
        store.create(Container(id=f"c{i:07d}", image="img", runtime=Runtime("io.containerd.runc.v2"), spec=spec,
                               labels={f"k{j}": f"v{i % 100}" for j in range(5)}))

    spent = {"single": 0.0, "concurrent": 0.0}
    with tempfile.TemporaryDirectory(prefix="ctrledger-writers-") as d, \
            ctrledger.open(Path(d) / "w.db", follow=False) as store:
        for _ in range(50):  # warm-up
            create(store)
        for r in range(args.rounds):
            order = ["single", "concurrent"] if r % 2 == 0 else ["concurrent", "single"]
            for name in order:
                t = time.perf_counter()
                if name == "single":
                    for _ in range(args.n):
                        create(store)
                else:
                    per = args.n // args.threads
                    def writer(count: int) -> None:
                        for _ in range(count):
                            create(store)

                    threads = [threading.Thread(target=writer, args=(per,)) for _ in range(args.threads)]
                    for th in threads:
                        th.start()
                    for th in threads:
                        th.join()
                spent[name] += time.perf_counter() - t
    total = args.n * args.rounds
    single, concurrent = total / spent["single"], (args.n // args.threads) * args.threads * args.rounds / spent[
        "concurrent"]
    result = {"single_creates_per_s": round(single), f"{args.threads}_writers_creates_per_s": round(concurrent),
              "ratio": round(concurrent / single, 2)}
    print(json.dumps(result, indent=2))
    print(f"{'PASS' if result['ratio'] >= 1.5 else 'FAIL'}  {args.threads} writers >= 1.5x one writer")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
