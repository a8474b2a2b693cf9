#!/usr/bin/env python
"""How long the ``ctrledger`` command takes to start, beside ``python -c pass``, in one run.

Usage::

    python benchmarks/startup.py [--runs N] [--containers N] [--check]

Runs, interleaved round by round so that drift on a noisy machine hits all alike, N times each
(15 by default):

* ``python -c pass``: the interpreter alone, the baseline;
* ``python -c "import sqlite3"``: the interpreter and SQLite, which every store command needs;
* ``ctrledger --version``;
* ``ctrledger ls`` (the table) of a SQLite store holding 1,000 containers (5 labels each),
  created untimed before the rounds.

``ctrledger`` is run as ``python -m ctrledger`` with this interpreter, as the console script
does (the script's wrapper adds nothing measurable), from this checkout, with its bytecode
cached (``PYTHONPYCACHEPREFIX`` in the run's temporary directory, written by a warm-up run),
as an installed package has it: with ``PYTHONDONTWRITEBYTECODE`` set, every run would compile
ctrledger's sources again. It prints the median
and minimum wall time of each, and each command's median minus the interpreter's and its ratio
to it.

Targets (from the project's issue), absolute medians: ``--version`` ≤ 0.15 s, ``ls`` of 1,000
containers ≤ 0.25 s. On a loaded machine every process starts slower, the baseline included:
the ratios to ``python -c pass`` say how much of a miss is the machine. Exits 0 (a report)
unless ``--check``: then 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"ctrledger --version": 0.15, "ctrledger ls (1,000 containers)": 0.25}


def seed(path: Path, n: int) -> None:
    sys.path.insert(0, str(ROOT))
    import ctrledger

    spec = ctrledger.Payload("types.containerd.io/opencontainers/runtime-spec/1/Spec", b"{}")
    with ctrledger.open(path, synchronous="NORMAL") as store:
        for i in range(n):
            store.create(ctrledger.Container(
                id=f"web-{i:04d}", image="docker.io/library/nginx:1.27",
                runtime=ctrledger.Runtime("io.containerd.runc.v2"), spec=spec,
                labels={f"k{j}": f"v{(i * 7 + j) % 100}" for j in range(5)},
            ))


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--containers", type=int, default=1000)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ctrledger-startup-") as tmp:
        db = Path(tmp) / "ledger.db"
        seed(db, args.containers)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "CTRLEDGER_DATABASE_URL": str(db),
               "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its .pyc files
        py = sys.executable
        commands = {
            "python -c pass": [py, "-c", "pass"],
            "python -c 'import sqlite3'": [py, "-c", "import sqlite3"],
            "ctrledger --version": [py, "-m", "ctrledger", "--version"],
            f"ctrledger ls ({args.containers:,} containers)": [py, "-m", "ctrledger", "ls"],
        }
        for argv in commands.values():  # warm the OS caches and the .pyc files
            timed(argv, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                times[name].append(timed(argv, env))

    base = statistics.median(times["python -c pass"])
    print(f"ctrledger start-up, {args.runs} runs each, interleaved (python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f})")
    print(f"{'command':<36} {'median':>8} {'min':>8} {'- python':>9} {'x python':>9} {'target':>8}")
    missed = []
    for name, values in times.items():
        median = statistics.median(values)
        target = TARGETS.get(name.replace(f"{args.containers:,}", "1,000"))
        verdict = ""
        if target is not None:
            verdict = f"{target:.2f} {'ok' if median <= target else 'MISSED'}"
            if median > target:
                missed.append(name)
        print(f"{name:<36} {median:>7.3f}s {min(values):>7.3f}s {median - base:>8.3f}s {median / base:>8.2f}x "
              f"{verdict:>8}")
    if missed:
        print("missed: " + ", ".join(missed))
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
