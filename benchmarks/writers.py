#!/usr/bin/env python
"""Concurrent writers on one embedded store: 8 threads against one, in the same run.

Usage::

    python benchmarks/writers.py [--n N] [--threads T] [--rounds R] [--processes P]

Each round times ``N`` creates from one thread, then ``N`` creates split over ``T``
threads (one store, shared), on the same file, alternating which goes first. Reported:
creates/s of each and the ratio (target: 8 writers >= 1.5x the single writer, by group
commit: several writers' events in one fsync, each acknowledged only after it).

With ``--processes P``, each round also times ``N`` creates split over ``P`` processes,
each with its own store open on the same file (timed from a barrier all have reached with
their store open to the last one's end): SQLite serialises their transactions, so only
their work outside the write lock overlaps; there is no group commit across processes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ctrledger  # noqa: E402
from ctrledger import Container, Payload, Runtime  # noqa: E402


def _spec() -> Payload:
    return Payload("types.containerd.io/opencontainers/runtime-spec/1/Spec", random.Random(5).randbytes(2048))


def _record(i: int, spec: Payload) -> Container:
    return Container(id=f"c{i:07d}", image="img", runtime=Runtime("io.containerd.runc.v2"), spec=spec,
                     labels={f"k{j}": f"v{i % 100}" for j in range(5)})


def _process_writer(path: str, first: int, count: int, barrier: Any) -> None:
    """One writer process: its own store on the file, ``count`` creates from ID ``first`` once all
    writers (and the parent) have reached ``barrier``."""
    spec = _spec()
    with ctrledger.open(path, follow=False) as store:
        barrier.wait()
        for i in range(first, first + count):
            store.create(_record(i, spec))


def _in_processes(path: str, first: int, n: int, processes: int) -> float:
    """Seconds for ``n`` creates split over ``processes`` writer processes (see ``_process_writer``)."""
    ctx = multiprocessing.get_context("spawn")  # not fork: the parent has the store's connections open
    barrier = ctx.Barrier(processes + 1)
    per = n // processes
    workers = [ctx.Process(target=_process_writer, args=(path, first + k * per, per, barrier))
               for k in range(processes)]
    for w in workers:
        w.start()
    barrier.wait()
    t = time.perf_counter()
    for w in workers:
        w.join()
    spent = time.perf_counter() - t
    if any(w.exitcode != 0 for w in workers):
        raise SystemExit(f"a writer process failed: exit codes {[w.exitcode for w in workers]}")
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--processes", type=int, default=0, help="also time N creates over P writer processes")
    args = parser.parse_args()
    spec = _spec()
    counter = iter(range(10**9))
    lock = threading.Lock()

    def create(store: ctrledger.Store) -> None:
        with lock:
            i = next(counter)
        store.create(_record(i, spec))

    spent = {"single": 0.0, "concurrent": 0.0, "processes": 0.0}
    first = 10**8  # the processes' IDs: after every thread's
    with tempfile.TemporaryDirectory(prefix="ctrledger-writers-") as d, \
            ctrledger.open(Path(d) / "w.db", follow=False) as store:
        for _ in range(50):  # warm-up
            create(store)
        for r in range(args.rounds):
            order = ["single", "concurrent"] if r % 2 == 0 else ["concurrent", "single"]
            if args.processes:
                order.insert(1, "processes")
            for name in order:
                if name == "processes":
                    spent[name] += _in_processes(str(Path(d) / "w.db"), first, args.n, args.processes)
                    first += args.n
                    continue
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
    result: dict[str, float] = {"single_creates_per_s": round(single),
                                f"{args.threads}_writers_creates_per_s": round(concurrent),
                                "ratio": round(concurrent / single, 2)}
    if args.processes:
        procs = (args.n // args.processes) * args.processes * args.rounds / spent["processes"]
        result[f"{args.processes}_processes_creates_per_s"] = round(procs)
        result["processes_ratio"] = round(procs / single, 2)
    print(json.dumps(result, indent=2))
    print(f"{'PASS' if result['ratio'] >= 1.5 else 'FAIL'}  {args.threads} writer threads >= 1.5x one writer")
    if args.processes:
        print(f"{'PASS' if result['processes_ratio'] >= 1.5 else 'FAIL'}  {args.processes} writer processes "
              ">= 1.5x one writer")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
