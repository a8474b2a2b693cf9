#!/usr/bin/env python
"""CPU instructions per write operation of the embedded store, counted by callgrind.

Usage::

    python benchmarks/instructions.py [--n N] [--existing M] [--ops OP,OP...] [--json FILE]
    python benchmarks/instructions.py --profile OP [--n N]   # cProfile of the same work, natively

Instructions, not time: valgrind's callgrind counts every instruction the process executes,
whatever else the machine is doing, so two runs of the same work agree to a fraction of a
percent, and a change that saves 2% shows as 2%.

How: a store of ``M`` containers (1,000 by default; 5 labels, a 2048-byte spec, as in
``run.py`` and ``pages.py``) is built once, natively, and copied for every run. For each
operation, two runs of this script under ``valgrind --tool=callgrind`` do the same work: open
the copy (``synchronous=NORMAL``: no fsync to wait for; the instructions are the same as with
``FULL``), run the operation's preparation, then ``N`` operations in one run (200 by default)
and none in the other (the WAL emptied before them, so that no automatic checkpoint falls among
them). The difference of the two totals, divided by ``N``, is the cost of one
operation: the interpreter's start-up, the imports, opening the store and the preparation
cancel out. ``PYTHONHASHSEED`` is fixed, so both runs hash alike.

Operations (each of its own commit, as a client's call):

* ``create``: a new name.
* ``update``: ``update(Container(id, labels={"k1": ...}), "labels.k1")`` of a container whose
  aggregate the store holds in its cache (the preparation updates each one once).
* ``update_cold``: the same on a container the store has not touched since it was opened (its
  aggregate is read from the log: a snapshot and the events after it).
* ``delete``: of a cached container (the preparation updates each one once).
* ``delete_cold``: of a container not touched since the store was opened.
* ``observe10``: ``observe_many`` of 10 new containers as ``ctrledger follow`` records a burst
  of ``/containers/create`` from a live containerd (one group commit: containerd's
  ``created_at``, the envelope's time, actor ``containerd``, client ``follow``). ``N / 10``
  calls, so that as many containers are written as by the other operations; counted per call.
* ``observe10_labels``: ``observe_many`` of 10 existing, cached containers whose labels changed
  (``/containers/update``), per call of 10, likewise.

``--profile OP`` runs the preparation and ``N`` operations natively under cProfile and prints
where the Python time goes (callgrind cannot name Python frames; the split is cProfile's).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ctrledger  # noqa: E402
from ctrledger import Container, Payload, Runtime  # noqa: E402

OPS = ("create", "update", "update_cold", "delete", "delete_cold", "observe10", "observe10_labels")
SPEC_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
BATCH = 10  # observe_many: containers per call


def record(i: int, spec: Payload, rng: random.Random) -> Container:
    return Container(id=f"c{i:07d}", image="img", runtime=Runtime("io.containerd.runc.v2"), spec=spec,
                     labels={f"k{j}": f"v{rng.randrange(100)}" for j in range(5)})


def spec_payload() -> Payload:
    return Payload(SPEC_TYPE_URL, random.Random(3).randbytes(2048))


def build(path: str, existing: int) -> None:
    """The starting store: ``existing`` containers, written natively."""
    rng = random.Random(3)
    spec = spec_payload()
    with ctrledger.open(path, follow=False, synchronous="NORMAL") as store:
        for i in range(existing):
            store.create(record(i, spec, rng))
    checkpoint(path)  # one file to copy


def workload(op: str, existing: int, n: int) -> tuple[Callable[[], None], Callable[[int], None]]:
    """(prepare, operation i) of ``op`` on a store of ``existing`` containers; both use ``store``."""
    rng = random.Random(7)
    spec = spec_payload()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    store = STORE

    def relabel(i: int, value: str) -> None:
        store.update(Container(id=f"c{i:07d}", labels={"k1": value}), "labels.k1")

    def nothing() -> None:
        pass

    def warm() -> None:  # the first n containers' aggregates into the store's cache
        for i in range(n):
            relabel(i, "warm")

    def create(i: int) -> None:
        store.create(record(existing + i, spec, rng))

    def update(i: int) -> None:
        relabel(i, f"u{i}")

    def delete(i: int) -> None:
        store.delete(f"c{i:07d}")

    if op == "create":
        return nothing, create
    if op in ("update", "delete"):
        return warm, update if op == "update" else delete
    if op in ("update_cold", "delete_cold"):
        return nothing, update if op == "update_cold" else delete

    def observed(i: int, labels: dict[str, str]) -> Container:
        return Container(id=f"c{i:07d}", image="img", runtime=Runtime("io.containerd.runc.v2"), spec=spec,
                         labels=labels, snapshotter="overlayfs", snapshot_key=f"c{i:07d}",
                         created_at=t0 + timedelta(seconds=i))

    def observe(batch: list[tuple[str, Container, datetime]]) -> None:
        store.observe_many(batch, actor="containerd", reason="", client="follow")

    if op == "observe10":
        def new(k: int) -> None:
            base = existing + k * BATCH
            observe([(f"c{i:07d}", observed(i, {f"k{j}": f"v{rng.randrange(100)}" for j in range(5)}),
                      t0 + timedelta(seconds=i)) for i in range(base, base + BATCH)])
        return (lambda: None), new
    if op == "observe10_labels":
        current = {i: store.get(f"c{i:07d}") for i in range(n)}

        def prepare() -> None:
            for k in range(n // BATCH):
                observe([(f"c{i:07d}", observed(i, {**current[i].labels, "k1": "warm"}), t0)
                         for i in range(k * BATCH, (k + 1) * BATCH)])

        def changed(k: int) -> None:
            observe([(f"c{i:07d}", observed(i, {**current[i].labels, "k1": f"u{k}"}), t0 + timedelta(hours=1))
                     for i in range(k * BATCH, (k + 1) * BATCH)])
        return prepare, changed
    raise SystemExit(f"unknown operation {op!r}; one of {', '.join(OPS)}")


STORE: ctrledger.Store


def work(path: str, op: str, existing: int, n: int, runs: int) -> None:
    """What one callgrind run executes: open, prepare, ``runs`` operations (0 or n)."""
    global STORE
    with ctrledger.open(path, follow=False, synchronous="NORMAL") as STORE:
        prepare, operation = workload(op, existing, n)
        prepare()
        checkpoint(path)
        for i in range(runs):
            operation(i)


def checkpoint(path: str) -> None:
    """Empty the WAL, so that no automatic checkpoint (every 10,000 pages) falls in the measured
    operations of one run and not the other's."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def calls(op: str, n: int) -> int:
    """Operations in a measured run: ``n``, or ``n / 10`` calls of ``observe_many``."""
    return n // BATCH if op.startswith("observe") else n


def callgrind(script_args: list[str], out: Path) -> int:
    """Total instructions of this script run with ``script_args`` under callgrind."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                    sys.executable, __file__, *script_args], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    text = out.read_text()
    found = re.search(r"^(?:summary|totals): (\d+)", text, re.MULTILINE)
    if found is None:
        raise SystemExit(f"no totals in {out}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="operations per measured run")
    parser.add_argument("--existing", type=int, default=1000, help="containers in the store first")
    parser.add_argument("--ops", default=",".join(OPS), help="comma-separated, of: " + ", ".join(OPS))
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--template", help="the starting store: built here if missing, else reused (so that "
                                           "two trees are measured on the same file)")
    parser.add_argument("--profile", metavar="OP", help="cProfile OP natively instead of counting")
    parser.add_argument("--work", nargs=4, metavar=("PATH", "OP", "EXISTING", "RUNS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.work:
        path, op, existing, runs = args.work
        work(path, op, int(existing), args.n, int(runs))
        return 0
    if shutil.which("valgrind") is None and not args.profile:
        raise SystemExit("valgrind is not installed")
    ops = args.ops.split(",")
    with tempfile.TemporaryDirectory(prefix="ctrledger-instr-") as d:
        template = args.template or str(Path(d) / "template.db")
        if args.existing < args.n:
            raise SystemExit("--existing must be at least --n (updates and deletes take existing containers)")
        if not Path(template).exists():
            build(template, args.existing)
        compileall.compile_dir(str(Path(ctrledger.__file__).parent), quiet=1)  # no run compiles what it imports
        if args.profile:
            import cProfile
            import pstats

            global STORE
            with ctrledger.open(template, follow=False, synchronous="NORMAL") as STORE:
                prepare, operation = workload(args.profile, args.existing, args.n)
                prepare()
                profile = cProfile.Profile()
                profile.enable()
                for i in range(calls(args.profile, args.n)):
                    operation(i)
                profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(40)
            return 0
        results: dict[str, int] = {}
        for op in ops:
            totals = []
            for runs in (0, calls(op, args.n)):
                db = str(Path(d) / f"{op}-{runs}.db")
                shutil.copy(template, db)
                totals.append(callgrind(["--n", str(args.n), "--work", db, op, str(args.existing), str(runs)],
                                        Path(d) / f"{op}-{runs}.out"))
            results[op] = round((totals[1] - totals[0]) / calls(op, args.n))
            print(f"{op:18} {results[op]:>12,} instructions per operation", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"n": args.n, "existing": args.existing, **results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
