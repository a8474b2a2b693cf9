#!/usr/bin/env python
"""Benchmark the embedded ctrledger store against raw SQLite, in one run.

Usage::

    python benchmarks/run.py [--quick] [--n N] [--json FILE] [--check] [--dir DIR] [--seed S]

Measures, for N containers (100k by default, 10k with ``--quick``), each with 5
labels and a 2048-byte random spec, the ops/s and p50/p99 latency of create,
get, update (``labels.k1``), started and exited (the status lifecycle: a sample of
containers starts, all but 1% of the containers' worth exit again), delete, list-all, a list
with a label filter (``labels.k0==v<j>``) that matches exactly 1% of the containers and a
``status.state==RUNNING`` list that matches 1% too; and the peak
RSS of a separate reader process. Beside every operation it measures raw SQLite
doing the equivalent work with the same durability (WAL, ``synchronous=FULL``,
one transaction per write), interleaved in chunks with the store's operations so
that drift on a noisy machine hits both sides alike, and reports store/raw.

The raw SQLite baseline (``RawSQLite`` below):

* one table ``containers(id TEXT PRIMARY KEY, image, runtime, spec_type_url,
  spec BLOB, labels BLOB, created_at, updated_at)``; labels are one **msgpack
  blob** in the row (no label rows), so a raw create is one INSERT of one row
  in its own transaction;
* update: one ``UPDATE ... SET labels=?, updated_at=?`` per transaction (the new
  label map is computed by the caller; no read-modify-write);
* delete: one ``DELETE`` per transaction;
* get: ``SELECT`` by primary key, labels unpacked;
* list-all: ``SELECT ... ORDER BY id``, labels unpacked;
* 1% list: a ``labels(id, key, value)`` index table with an index on
  ``(key, value)`` is built *untimed* after the write phases (it is not part of
  the raw write baseline) and the query joins it to ``containers``.

Targets (from the project's issues: the core's, issue 11, and the status lifecycle's), judged
on numbers from this run only:

* create ≥ 0.40 × raw per-transaction INSERT rate (raw inserts interleaved with the creates);
* update ≥ 0.40 × raw per-transaction INSERT rate (raw inserts interleaved with the updates);
* delete ≥ 0.40 × raw per-transaction DELETE rate;
* get ≥ 0.5 × raw SELECT by primary key with the labels unpacked;
* started, exited (the status lifecycle) ≥ 0.40 × raw per-transaction INSERT rate (raw inserts
  interleaved with them);
* 1%-selective list: median ≤ 5 ms (issue 11 asks it at 100k containers: the full run);
* ``status.state==RUNNING`` list, 1% of the containers running: median ≤ 5 ms;
* list-all: median ≤ 8 µs per container;
* peak RSS of a reader process (opens, gets, lists, list-all) ≤ 150 MB (10^6 bytes).

It exits 0 (it is a report) unless ``--check`` is given: then 1 if any target fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import importlib.util
import json
import math
import os
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack

if TYPE_CHECKING:
    import ctrledger

SPEC_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
RUNTIME_NAME = "io.containerd.runc.v2"
SPEC_SIZE = 2048
FILTER_KEY = "k0"  # its value has FILTER_VALUES distinct values: one of them selects 1%
FILTER_VALUES = 100
UPDATE_KEY = "k1"
NAMESPACE = "default"

HERE = Path(__file__).resolve().parent
READER_SCRIPT = HERE / "reader_memory.py"


# -- the dataset -------------------------------------------------------------


def container_id(i: int) -> str:
    """A 64-hex ID, as containerd clients usually make them (random order, not sequential)."""
    return hashlib.sha256(f"ctrledger-bench-{i}".encode()).hexdigest()


def labels_for(i: int) -> dict[str, str]:
    return {
        FILTER_KEY: f"v{i % FILTER_VALUES}",
        UPDATE_KEY: f"team-{i % 13}",
        "k2": f"rev-{i}",
        "k3": "example.com/managed-by-bench",
        "k4": f"{i:08d}",
    }


def image_for(i: int) -> str:
    return f"docker.io/library/app{i % 50}:1.{i % 10}"


def expected_filter_count(n: int, value_index: int) -> int:
    return sum(1 for i in range(n) if i % FILTER_VALUES == value_index)


# -- measurement ---------------------------------------------------------------


@dataclass
class Samples:
    """Per-operation latencies in nanoseconds."""

    ns: list[int] = field(default_factory=list)

    def run(self, fn: Callable[[Any], object], item: Any) -> object:
        t0 = time.perf_counter_ns()
        out = fn(item)
        self.ns.append(time.perf_counter_ns() - t0)
        return out

    def summary(self) -> dict[str, float]:
        if not self.ns:
            return {"n": 0}
        xs = sorted(self.ns)
        total = sum(xs)
        return {
            "n": len(xs),
            "ops_per_s": len(xs) / (total / 1e9) if total else math.inf,
            "p50_us": percentile(xs, 50) / 1e3,
            "p99_us": percentile(xs, 99) / 1e3,
            "mean_us": total / len(xs) / 1e3,
            "max_us": xs[-1] / 1e3,
            "total_s": total / 1e9,
        }


def percentile(sorted_xs: Sequence[int], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    k = max(0, min(len(sorted_xs) - 1, math.ceil(p / 100 * len(sorted_xs)) - 1))
    return float(sorted_xs[k])


Runner = tuple[Samples, Callable[[Any], object]]


def interleave(chunks: Iterable[Sequence[Any]], runners: Sequence[Runner]) -> None:
    """Run every runner over each chunk in turn, alternating who goes first."""
    for ci, chunk in enumerate(chunks):
        order = runners if ci % 2 == 0 else list(reversed(runners))
        for samples, fn in order:
            for item in chunk:
                samples.run(fn, item)


def chunked(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- the raw SQLite baseline -------------------------------------------------------


class RawSQLite:
    """Raw SQLite doing the equivalent work: see the module docstring."""

    COLUMNS = "id, image, runtime, spec_type_url, spec, labels, created_at, updated_at"

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS containers(id TEXT PRIMARY KEY, image TEXT NOT NULL, "
            "runtime TEXT NOT NULL, spec_type_url TEXT NOT NULL, spec BLOB NOT NULL, labels BLOB NOT NULL, "
            "created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)"
        )

    def durability(self) -> tuple[str, int]:
        mode = self.conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = self.conn.execute("PRAGMA synchronous").fetchone()[0]
        return str(mode), int(sync)

    def insert(self, item: tuple[str, str, bytes, dict[str, str]]) -> None:
        cid, image, spec, labels = item
        now = time.time_ns() // 1000
        c = self.conn
        c.execute("BEGIN")
        c.execute(
            f"INSERT INTO containers({self.COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
            (cid, image, RUNTIME_NAME, SPEC_TYPE_URL, spec, msgpack.packb(labels), now, now),
        )
        c.execute("COMMIT")

    def update_labels(self, item: tuple[str, dict[str, str]]) -> None:
        cid, labels = item
        c = self.conn
        c.execute("BEGIN")
        c.execute(
            "UPDATE containers SET labels=?, updated_at=? WHERE id=?",
            (msgpack.packb(labels), time.time_ns() // 1000, cid),
        )
        c.execute("COMMIT")

    def delete(self, cid: str) -> None:
        c = self.conn
        c.execute("BEGIN")
        c.execute("DELETE FROM containers WHERE id=?", (cid,))
        c.execute("COMMIT")

    @staticmethod
    def _decode(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return (*row[:5], msgpack.unpackb(row[5]), *row[6:])

    def get(self, cid: str) -> tuple[Any, ...]:
        row = self.conn.execute(f"SELECT {self.COLUMNS} FROM containers WHERE id=?", (cid,)).fetchone()
        if row is None:
            raise KeyError(cid)
        return self._decode(row)

    def list_all(self) -> list[tuple[Any, ...]]:
        rows = self.conn.execute(f"SELECT {self.COLUMNS} FROM containers ORDER BY id").fetchall()
        return [self._decode(r) for r in rows]

    def list_label(self, key_value: tuple[str, str]) -> list[tuple[Any, ...]]:
        cols = ", ".join(f"c.{c.strip()}" for c in self.COLUMNS.split(","))
        rows = self.conn.execute(
            f"SELECT {cols} FROM labels l JOIN containers c ON c.id = l.id "
            "WHERE l.key=? AND l.value=? ORDER BY c.id",
            key_value,
        ).fetchall()
        return [self._decode(r) for r in rows]

    def build_label_index(self) -> None:
        c = self.conn
        c.execute("BEGIN")
        c.execute("DROP TABLE IF EXISTS labels")
        c.execute("CREATE TABLE labels(id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL)")
        rows = c.execute("SELECT id, labels FROM containers").fetchall()
        c.executemany(
            "INSERT INTO labels(id, key, value) VALUES (?,?,?)",
            ((cid, k, v) for cid, blob in rows for k, v in msgpack.unpackb(blob).items()),
        )
        c.execute("CREATE INDEX labels_kv ON labels(key, value)")
        c.execute("COMMIT")

    def drop_label_index(self) -> None:
        self.conn.execute("DROP TABLE IF EXISTS labels")

    def close(self) -> None:
        self.conn.close()


def store_durability(store: ctrledger.Store) -> tuple[str, int] | None:
    """The writer connection's journal mode and synchronous level (an embedded log's; best effort)."""
    try:
        return store.log.durability()  # type: ignore[attr-defined, no-any-return]
    except Exception:  # noqa: BLE001 - informational only
        return None


def file_size(path: str) -> int:
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


# -- the benchmark ---------------------------------------------------------------------


@dataclass
class Config:
    n: int
    get_sample: int
    update_sample: int
    delete_sample: int
    list_all_reps: int
    filter_reps: int
    reader_gets: int
    chunk: int
    seed: int


def make_config(args: argparse.Namespace) -> Config:
    n = args.n if args.n is not None else (10_000 if args.quick else 100_000)
    if n < FILTER_VALUES:
        raise SystemExit(f"--n must be at least {FILTER_VALUES}")
    quick = args.quick
    return Config(
        n=n,
        get_sample=min(n, 10_000 if quick else 20_000),
        update_sample=min(n, 2_000 if quick else 5_000),
        delete_sample=min(n, 1_000 if quick else 2_000),
        list_all_reps=3,
        filter_reps=50,
        reader_gets=1_000,
        chunk=500,
        seed=args.seed,
    )


def run_benchmark(cfg: Config, workdir: str) -> dict[str, Any]:
    import ctrledger
    from ctrledger import Container, NotFound, Payload, Runtime

    rng = random.Random(cfg.seed)
    store_path = os.path.join(workdir, "store.db")
    raw_path = os.path.join(workdir, "raw.db")
    store = ctrledger.open(store_path)
    raw = RawSQLite(raw_path)
    results: dict[str, Any] = {"ops": {}}
    ids = [container_id(i) for i in range(cfg.n)]
    try:
        results["durability"] = {"store": store_durability(store), "raw": raw.durability()}

        # create: the store creates all N; raw inserts the same rows, interleaved in chunks.
        progress(f"create {cfg.n} (store) + {cfg.n} raw inserts, interleaved")
        s_create, r_insert = Samples(), Samples()
        for start in range(0, cfg.n, cfg.chunk):
            idx = range(start, min(cfg.n, start + cfg.chunk))
            specs = [rng.randbytes(SPEC_SIZE) for _ in idx]
            store_items = [
                Container(
                    id=ids[i],
                    image=image_for(i),
                    runtime=Runtime(RUNTIME_NAME),
                    spec=Payload(SPEC_TYPE_URL, spec),
                    labels=labels_for(i),
                )
                for i, spec in zip(idx, specs, strict=True)
            ]
            raw_items = [(ids[i], image_for(i), spec, labels_for(i)) for i, spec in zip(idx, specs, strict=True)]
            first_store = (start // cfg.chunk) % 2 == 0
            for who in ("store", "raw") if first_store else ("raw", "store"):
                if who == "store":
                    for c in store_items:
                        s_create.run(lambda c: store.create(c, namespace=NAMESPACE), c)
                else:
                    for r in raw_items:
                        r_insert.run(raw.insert, r)
            if (start // cfg.chunk) % 20 == 19:
                progress(f"  {start + cfg.chunk}/{cfg.n}")
        results["ops"]["create"] = pair(s_create, r_insert, "raw: INSERT 1 row/txn")

        # get: a random sample, store and raw interleaved.
        progress(f"get x{cfg.get_sample}")
        sample = [ids[i] for i in rng.choices(range(cfg.n), k=cfg.get_sample)]
        check = store.get(ids[7])
        assert check.labels == labels_for(7) and check.spec is not None and len(check.spec.value) == SPEC_SIZE
        assert raw.get(ids[7])[5] == labels_for(7)
        s_get, r_get = Samples(), Samples()
        interleave(chunked(sample, 1000), [(s_get, store.get), (r_get, raw.get)])
        results["ops"]["get"] = pair(s_get, r_get, "raw: SELECT by primary key")

        # update labels.k1 on distinct random containers; raw UPDATEs and raw INSERTs (of new
        # rows, removed afterwards, untimed) interleaved, so the target's denominator is
        # measured at the same time.
        progress(f"update labels.{UPDATE_KEY} x{cfg.update_sample} (+ raw updates and raw inserts)")
        upd_idx = rng.sample(range(cfg.n), cfg.update_sample)
        upd_items = []
        for j, i in enumerate(upd_idx):
            value = f"updated-{j}"
            new_labels = labels_for(i)
            new_labels[UPDATE_KEY] = value
            probe = (f"probe-{j:08d}", image_for(i), rng.randbytes(SPEC_SIZE), labels_for(i))
            upd_items.append((ids[i], value, new_labels, probe))
        s_upd, r_upd, r_ins2 = Samples(), Samples(), Samples()
        interleave(
            chunked(upd_items, 250),
            [
                (s_upd, lambda it: store.update(Container(id=it[0], labels={UPDATE_KEY: it[1]}),
                                                f"labels.{UPDATE_KEY}", namespace=NAMESPACE)),
                (r_upd, lambda it: raw.update_labels((it[0], it[2]))),
                (r_ins2, lambda it: raw.insert(it[3])),
            ],
        )
        last = upd_items[-1]
        assert store.get(last[0]).labels[UPDATE_KEY] == last[1]
        assert raw.get(last[0])[5] == last[2]
        raw.conn.execute("DELETE FROM containers WHERE id LIKE 'probe-%'")
        results["ops"]["update"] = pair(s_upd, r_upd, "raw: UPDATE 1 row/txn")
        results["ops"]["update"]["raw_insert_same_phase"] = r_ins2.summary()

        # the status lifecycle: `started` on a sample, then `exited` on all of it but 1% of N, so
        # that exactly 1% is RUNNING for the state list; raw INSERTs (of probe rows, removed
        # afterwards, untimed) interleaved with each, as for update.
        running = cfg.n // 100
        status_idx = rng.sample(range(cfg.n), max(cfg.update_sample, running))
        exiting = status_idx[running:]
        progress(f"started x{len(status_idx)}, exited x{len(exiting)} (+ raw inserts)")
        for phase, chosen in (("started", status_idx), ("exited", exiting)):
            s_st, r_st = Samples(), Samples()
            items = [(ids[i], (f"probe-{phase}-{j:08d}", image_for(i), rng.randbytes(SPEC_SIZE), labels_for(i)))
                     for j, i in enumerate(chosen)]
            call = ((lambda it: store.started(it[0], pid=4242, namespace=NAMESPACE)) if phase == "started" else
                    (lambda it: store.exited(it[0], exit_code=137, reason="OOMKilled", namespace=NAMESPACE)))
            interleave(chunked(items, 250), [(s_st, call), (r_st, lambda it: raw.insert(it[1]))])
            results["ops"][phase] = pair(s_st, r_st, "raw: INSERT 1 row/txn")
        raw.conn.execute("DELETE FROM containers WHERE id LIKE 'probe-%'")
        assert store.get(ids[status_idx[0]]).status.state == "RUNNING"
        assert store.get(ids[exiting[0]]).status.state == "EXITED"

        # list-all and the 1% list; raw gets its label index table first (untimed).
        progress("raw: building the label index table (untimed)")
        raw.build_label_index()
        progress(f"list-all x{cfg.list_all_reps}")
        s_all, r_all = Samples(), Samples()
        for rep in range(cfg.list_all_reps):
            order: list[Runner] = [
                (s_all, lambda _: store.list(namespace=NAMESPACE)),
                (r_all, lambda _: raw.list_all()),
            ]
            for samples, fn in order if rep % 2 == 0 else list(reversed(order)):
                got = samples.run(fn, None)
                assert isinstance(got, list) and len(got) == cfg.n, (len(got) if isinstance(got, list) else got)
                del got
        results["ops"]["list_all"] = pair(s_all, r_all, "raw: SELECT all ORDER BY id")
        for side in ("store", "raw"):
            s = results["ops"]["list_all"][side]
            s["p50_us_per_container"] = s["p50_us"] / cfg.n

        progress(f"list {FILTER_KEY}==<value> (1%) x{cfg.filter_reps}")
        s_flt, r_flt = Samples(), Samples()
        for rep in range(cfg.filter_reps):
            vi = (7 + 37 * rep) % FILTER_VALUES
            value = f"v{vi}"
            want = expected_filter_count(cfg.n, vi)
            flt = f"labels.{FILTER_KEY}=={value}"
            flt_order: list[Runner] = [
                (s_flt, functools.partial(lambda f, _: store.list(f, namespace=NAMESPACE), flt)),
                (r_flt, functools.partial(lambda kv, _: raw.list_label(kv), (FILTER_KEY, value))),
            ]
            for samples, fn in flt_order if rep % 2 == 0 else list(reversed(flt_order)):
                got = samples.run(fn, None)
                assert isinstance(got, list) and len(got) == want, (flt, len(got) if isinstance(got, list) else got)
        results["ops"]["list_1pct"] = pair(s_flt, r_flt, "raw: label index table JOIN, ORDER BY id")

        progress(f"list status.state==RUNNING (1%) x{cfg.filter_reps}")
        s_run, r_run = Samples(), Samples()
        for rep in range(cfg.filter_reps):
            vi = (7 + 37 * rep) % FILTER_VALUES
            run_order: list[Runner] = [
                (s_run, lambda _: store.list("status.state==RUNNING", namespace=NAMESPACE)),
                (r_run, functools.partial(lambda kv, _: raw.list_label(kv), (FILTER_KEY, f"v{vi}"))),
            ]
            for samples, fn in run_order if rep % 2 == 0 else list(reversed(run_order)):
                got = samples.run(fn, None)
                assert isinstance(got, list), got
                if samples is s_run:
                    assert len(got) == running, len(got)
        results["ops"]["list_running"] = pair(s_run, r_run, "raw: the 1% label list (as many rows)")
        results["filter_matches"] = expected_filter_count(cfg.n, 7)

        # reader memory: separate processes, store and raw.
        progress("reader memory (separate processes)")
        results["memory"] = {
            "store": reader_memory("store", store_path, cfg),
            "raw": reader_memory("raw", raw_path, cfg),
            "spec_bytes_total_mb": cfg.n * SPEC_SIZE / 1e6,
        }
        raw.drop_label_index()

        # delete a random sample, interleaved.
        progress(f"delete x{cfg.delete_sample}")
        del_ids = [ids[i] for i in rng.sample(range(cfg.n), cfg.delete_sample)]
        s_del, r_del = Samples(), Samples()
        interleave(chunked(del_ids, 250), [(s_del, lambda cid: store.delete(cid, namespace=NAMESPACE)),
                                           (r_del, raw.delete)])
        try:
            store.get(del_ids[0])
            raise AssertionError("deleted container still found")
        except NotFound:
            pass
        results["ops"]["delete"] = pair(s_del, r_del, "raw: DELETE 1 row/txn")
        results["db_bytes"] = {"store": file_size(store_path), "raw": file_size(raw_path)}
    finally:
        store.close()
        raw.close()
    return results


def pair(store: Samples, raw: Samples, raw_desc: str) -> dict[str, Any]:
    s, r = store.summary(), raw.summary()
    return {"store": s, "raw": r, "raw_is": raw_desc, "ratio_ops": s["ops_per_s"] / r["ops_per_s"]}


def reader_memory(kind: str, path: str, cfg: Config) -> dict[str, Any]:
    """Run ``reader_memory.py`` on ``path``; its JSON, or ``{"error": ...}`` if it failed."""
    cmd = [sys.executable, str(READER_SCRIPT), kind, path, "--n", str(cfg.n), "--gets", str(cfg.reader_gets),
           "--filter-key", FILTER_KEY, "--seed", str(cfg.seed)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        lines = out.stderr.strip().splitlines()
        progress(f"reader process ({kind}) failed:\n{out.stderr}")
        return {"error": lines[-1] if lines else f"exit status {out.returncode}"}
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def source_digest(root: Path) -> str:
    """A digest of a ctrledger package's source files."""
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


# -- targets and report --------------------------------------------------------------------


@dataclass
class Target:
    name: str
    value: float
    op: str  # ">=" or "<="
    threshold: float
    unit: str

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold if self.op == ">=" else self.value <= self.threshold


def targets(res: dict[str, Any], n: int) -> list[Target]:
    ops = res["ops"]
    create_ratio = ops["create"]["store"]["ops_per_s"] / ops["create"]["raw"]["ops_per_s"]
    update_ratio = ops["update"]["store"]["ops_per_s"] / ops["update"]["raw_insert_same_phase"]["ops_per_s"]
    # The single-writer, get and list targets are issue 11's (the core); started/exited and the
    # RUNNING list the status issue's; the reader's RSS the first benchmark's.
    return [
        Target("create / raw INSERT rate", create_ratio, ">=", 0.4, "x"),
        Target("update / raw INSERT rate", update_ratio, ">=", 0.4, "x"),
        Target("delete / raw DELETE rate", ops["delete"]["ratio_ops"], ">=", 0.4, "x"),
        Target("started / raw INSERT rate", ops["started"]["ratio_ops"], ">=", 0.4, "x"),
        Target("exited / raw INSERT rate", ops["exited"]["ratio_ops"], ">=", 0.4, "x"),
        Target("get / raw SELECT by key + decode", ops["get"]["ratio_ops"], ">=", 0.5, "x"),
        Target("1% list, median", ops["list_1pct"]["store"]["p50_us"] / 1e3, "<=", 5, "ms"),
        Target("status.state==RUNNING list (1%), median", ops["list_running"]["store"]["p50_us"] / 1e3, "<=", 5,
               "ms"),
        Target("list-all per container, median", ops["list_all"]["store"]["p50_us_per_container"], "<=", 8, "us"),
        Target(f"reader peak RSS at {n:,} containers", res["memory"]["store"].get("peak_rss_mb", math.inf),
               "<=", 150, "MB"),
        Target(f"reader peak RSS at {n:,} containers, list-all streamed (Store.scan)",
               res["memory"]["store"].get("with_scan_mb", math.inf), "<=", 150, "MB"),
    ]


def fmt_us(us: float) -> str:
    if us >= 1e6:
        return f"{us / 1e6:.2f} s"
    if us >= 1e3:
        return f"{us / 1e3:.2f} ms"
    return f"{us:.1f} us"


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.2f}"


def render(res: dict[str, Any], meta: dict[str, Any], tgts: list[Target]) -> str:
    lines: list[str] = []
    lines.append(
        f"ctrledger {meta['ctrledger']} ({meta['git']}) benchmark: {meta['n']:,} containers "
        f"(5 labels, {SPEC_SIZE} B spec), "
        f"{meta['cpus']} CPUs, SQLite {meta['sqlite']}, Python {meta['python']}"
    )
    d = res["durability"]
    lines.append(f"durability: store {d['store']}, raw {d['raw']} (journal_mode, synchronous: 2 = FULL)")
    lines.append("")
    header = ("op", "n", "store ops/s", "p50", "p99", "raw ops/s", "p50", "p99", "store/raw")
    rows: list[tuple[str, ...]] = [header]
    names = [("create", "create"), ("get", "get"), ("update", f"update labels.{UPDATE_KEY}"),
             ("started", "started"), ("exited", "exited"),
             ("delete", "delete"), ("list_all", "list-all"), ("list_1pct", "list 1% filter"),
             ("list_running", "list RUNNING (1%)")]
    for key, label in names:
        o = res["ops"][key]
        s, r = o["store"], o["raw"]
        rows.append((label, f"{s['n']:,}", fmt_rate(s["ops_per_s"]), fmt_us(s["p50_us"]), fmt_us(s["p99_us"]),
                     fmt_rate(r["ops_per_s"]), fmt_us(r["p50_us"]), fmt_us(r["p99_us"]), f"{o['ratio_ops']:.2f}x"))
    u = res["ops"]["update"]["raw_insert_same_phase"]
    rows.append(("(raw INSERT, upd phase)", f"{u['n']:,}", "", "", "", fmt_rate(u["ops_per_s"]),
                 fmt_us(u["p50_us"]), fmt_us(u["p99_us"]), ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for k, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths,
                                                                                                   strict=True))))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    lines.append("raw baseline: " + "; ".join(f"{label}: {res['ops'][key]['raw_is']}" for key, label in names))
    lines.append("  (labels stored as one msgpack blob in the row; the 1% list's label table is built untimed)")
    la = res["ops"]["list_all"]
    lines.append(f"list-all per container (median): store {la['store']['p50_us_per_container']:.2f} us, "
                 f"raw {la['raw']['p50_us_per_container']:.2f} us")
    m = res["memory"]
    lines.append("reader process peak RSS (MB = 10^6 B): " + ", ".join(
        f"{side}: ERROR {m[side]['error']}" if "error" in m[side] else
        f"{side}: after open {m[side]['after_open_mb']:.0f} (open took {m[side]['open_s']:.2f} s), "
        f"after {m[side]['gets']} gets + 1% lists {m[side]['before_list_all_mb']:.0f}, "
        + (f"with a streamed list-all {m[side]['with_scan_mb']:.0f}, " if "with_scan_mb" in m[side] else "")
        + f"with list-all {m[side]['peak_rss_mb']:.0f}"
        for side in ("store", "raw")))
    lines.append(f"  (the {meta['n']:,} specs alone are {m['spec_bytes_total_mb']:.0f} MB: "
                 "a list-all that materialises every record cannot stay below that)")
    db = res["db_bytes"]
    lines.append(f"database size (file + WAL) after the run: store {db['store'] / 1e6:.0f} MB, "
                 f"raw {db['raw'] / 1e6:.0f} MB ({db['store'] / meta['n']:,.0f} vs {db['raw'] / meta['n']:,.0f} "
                 "bytes per container)")
    lines.append("")
    lines.append("targets:")
    for t in tgts:
        val = f"{t.value:,.2f}" if t.value < 1000 else f"{t.value:,.0f}"
        lines.append(f"  {'PASS' if t.passed else 'FAIL'}  {t.name}: {val} {t.unit} "
                     f"(target {t.op} {t.threshold:g} {t.unit})")
    lines.append("")
    lines.append(f"elapsed: {meta['elapsed_s']:.1f} s")
    if meta["source_changed_during_run"]:
        lines.append("note: ctrledger's working tree changed during the run; the run measured the copy taken "
                     f"at its start ({meta['git']})")
    return "\n".join(lines)


def git_revision() -> str | None:
    """The checked-out commit, with "+dirty" if ctrledger/ has changes (read-only git calls)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # never let git rewrite the index
    root = HERE.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, env=env,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "ctrledger"], cwd=root, env=env,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


_PINNED = "CTRLEDGER_BENCH_WORKDIR"  # set for the inner run: its work directory


def package_dir() -> Path:
    spec = importlib.util.find_spec("ctrledger")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("ctrledger is not importable: install it (pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="10k containers and smaller samples (< 1 minute)")
    p.add_argument("--n", type=int, default=None, help="number of containers (default 100000, 10000 with --quick)")
    p.add_argument("--json", metavar="FILE", help="also write machine-readable results to FILE")
    p.add_argument("--check", action="store_true", help="exit 1 if any target fails")
    p.add_argument("--dir", help="directory for the temporary databases (default: the system temp dir)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--keep", action="store_true", help="keep the databases (for profiling); prints where")
    args = p.parse_args(argv)
    cfg = make_config(args)
    if _PINNED in os.environ:
        return inner_main(args, cfg, os.environ[_PINNED])

    # Outer run: copy the ctrledger package, then run the benchmark (and its reader
    # processes) on that copy, so that edits to the working tree during a run cannot
    # mix two versions of the code in one measurement.
    src = package_dir()
    workdir = tempfile.mkdtemp(prefix="ctrledger-bench-", dir=args.dir)
    try:
        shutil.copytree(src, os.path.join(workdir, "src", "ctrledger"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        env = {
            **os.environ,
            _PINNED: workdir,
            "CTRLEDGER_BENCH_GIT": git_revision() or "unknown",
            "CTRLEDGER_BENCH_LIVE": str(src),
            "PYTHONPATH": os.pathsep.join(
                [os.path.join(workdir, "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        argv_ = sys.argv[1:] if argv is None else argv
        return subprocess.run([sys.executable, str(Path(__file__).resolve()), *argv_], env=env).returncode
    finally:
        if args.keep:
            progress(f"databases kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def inner_main(args: argparse.Namespace, cfg: Config, workdir: str) -> int:
    import ctrledger

    t0 = time.perf_counter()
    pinned = package_dir()
    if not str(pinned).startswith(str(Path(workdir).resolve())):
        raise SystemExit(f"expected the copied ctrledger under {workdir}, imported {pinned}")
    db_dir = os.path.join(workdir, "db")
    os.makedirs(db_dir, exist_ok=True)
    progress(f"databases in {db_dir}; ctrledger from {pinned}")
    res = run_benchmark(cfg, db_dir)
    live = os.environ.get("CTRLEDGER_BENCH_LIVE")
    meta = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "n": cfg.n,
        "quick": args.quick,
        "config": cfg.__dict__,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "ctrledger": ctrledger.__version__,
        "git": os.environ.get("CTRLEDGER_BENCH_GIT"),
        "source_changed_during_run": bool(live) and source_digest(Path(str(live))) != source_digest(pinned),
        "elapsed_s": time.perf_counter() - t0,
    }
    tgts = targets(res, cfg.n)
    print(render(res, meta, tgts))
    if args.json:
        doc = {
            "meta": meta,
            "results": res,
            "targets": [{**t.__dict__, "passed": t.passed} for t in tgts],
        }
        Path(args.json).write_text(json.dumps(doc, indent=2, default=str) + "\n")
    if args.check and not all(t.passed for t in tgts):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
