#!/usr/bin/env python
"""The trust campaign (issue 10), rerun in bounded time: every promise under faults and hostile input.

Usage::

    python benchmarks/campaign.py [--seconds S] [--fuzz N] [--no-postgres]

Experiments, each bounded (about two minutes in all by default):

* **crash**: writer processes (``tests/writer_process.py``) SIGKILLed at random moments; every
  write they acknowledged must be in the log, and the log must verify.
* **concurrency**: threads updating one container without ``expected_version`` and racing
  creates of one name; every acknowledged update exactly once, exactly one create wins.
* **postgres**: writes through a proxy that loses replies after commits while backends are
  terminated (``pg_terminate_backend``); acknowledged = committed, refused = not written,
  nothing applied twice (``tests/test_trust_postgres.py``).
* **fuzz**: hostile calls through the whole public API (``tests/test_fuzz_api.py``'s
  strategies); only ``StoreError`` may escape, and a refusal writes nothing.
* **tamper**: plain-SQL edits of a store file (insert, edit with hashes removed, flip, delete
  the last event, read-model rows); each must be reported by ``verify`` and must not be
  laundered by reopening; a write after an edit at the log's end must be refused.
* **archive**: archives edited and rewritten with valid checksums; ``import_`` must refuse
  each one before writing anything.

Prints one line per experiment: attempts, failures (refusals that were right to happen are
not failures), lost, applied twice, non-StoreError escapes, and for tamper and archive the
edits that went unnoticed. Exit status 1 if any of those is not zero.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ctrledger  # noqa: E402
from ctrledger import Container, Payload, Runtime, StoreError  # noqa: E402

SPEC = Payload("types.containerd.io/opencontainers/runtime-spec/1/Spec", b"{}")


def make(cid: str, **fields: object) -> Container:
    return Container(id=cid, runtime=Runtime("runc"), spec=SPEC, **fields)  # type: ignore[arg-type]


@dataclass
class Row:
    name: str
    attempts: int = 0
    failures: int = 0
    lost: int = 0
    applied_twice: int = 0
    escapes: int = 0
    unnoticed: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.failures or self.lost or self.applied_twice or self.escapes or self.unnoticed)


# -- crash ----------------------------------------------------------------------------------


def _events(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def crash(tmp: Path, seconds: float) -> Row:
    row = Row("crash (SIGKILL a writer)")
    deadline = time.monotonic() + seconds
    round_ = 0
    while time.monotonic() < deadline:
        round_ += 1
        db = tmp / f"crash{round_}.db"
        with ctrledger.open(db) as store:
            store.create(make("hot"))
            store.create(make("hot2"))
        procs = [subprocess.Popen([sys.executable, "-m", "tests.writer_process", str(db), f"w{i}", "100000"],
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                 for i in range(2)]
        started = time.monotonic()  # wait until they write (start-up is slow on a busy machine), then kill
        while time.monotonic() - started < 20 and _events(db) < 12:
            time.sleep(0.1)
        time.sleep(random.uniform(0.1, 1.0))
        for p in procs:
            p.send_signal(signal.SIGKILL)
        acknowledged = []
        for p in procs:
            out, _ = p.communicate()
            acknowledged += out.splitlines()
        row.attempts += len(acknowledged)
        with ctrledger.open(db) as store:
            ids = {c.id for c in store.list()}
            hot = store.get("hot").labels
            if not ctrledger.verify(store).ok:
                row.failures += 1
                row.notes.append(f"round {round_}: the log does not verify after the crash")
        for line in acknowledged:
            words = line.split()
            if words[0] == "created" and words[1] not in ids:
                row.lost += 1
            elif words[:2] == ["updated", "hot"]:
                writer, value = words[2].split("=")
                if int(hot.get(writer, "-1")) < int(value):
                    row.lost += 1
    return row


# -- concurrency ------------------------------------------------------------------------------


def concurrency(tmp: Path, seconds: float) -> Row:
    row = Row("concurrency (threads, one container)")
    db = tmp / "race.db"
    escapes: list[str] = []
    acknowledged: list[str] = []
    wins = Counter[str]()
    with ctrledger.open(db) as store:
        store.create(make("hot"))
        deadline = time.monotonic() + seconds

        def updater(n: int) -> None:
            i = 0
            while time.monotonic() < deadline:
                i += 1
                cid = f"t{n}-{i}"
                try:
                    store.update(Container(id="hot", labels={f"t{n}": str(i)}), f"labels.t{n}", correlation_id=cid)
                    acknowledged.append(cid)
                    name = f"race-{i % 50}"
                    try:
                        store.create(make(name))
                        wins[name] += 1
                    except ctrledger.AlreadyExists:
                        pass
                except StoreError as e:
                    escapes.append(f"refused: {e}")
                except Exception as e:  # noqa: BLE001 - counted
                    escapes.append(repr(e))

        threads = [threading.Thread(target=updater, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        per = Counter(r.correlation_id for r in store.audit(id="hot"))
        row.attempts = len(acknowledged) + sum(wins.values())
        row.lost = sum(1 for cid in acknowledged if per[cid] == 0)
        row.applied_twice = sum(1 for cid in acknowledged if per[cid] > 1) + sum(1 for n in wins.values() if n > 1)
        row.escapes = sum(1 for e in escapes if not e.startswith("refused"))
        row.failures = sum(1 for e in escapes if e.startswith("refused"))
        if not ctrledger.verify(store).ok:
            row.failures += 1
    return row


# -- postgres ----------------------------------------------------------------------------------


def postgres(seconds: float) -> Row:
    row = Row("postgres (lost replies + pg_terminate_backend)")
    from tests.conftest import postgres_schema, postgres_unreachable, postgres_url
    from tests.test_trust_postgres import run_connection_loss

    reason = postgres_unreachable()
    if reason:
        row.notes.append(f"skipped: {reason}")
        row.failures = 1
        return row
    with postgres_schema() as schema, tempfile.TemporaryDirectory() as d:
        url = postgres_url(schema, Path(d) / "node.db")
        # Writes for the whole time given (no count of writes ends it first).
        f = run_connection_loss(url, url.split("?")[0], schema, writes=sys.maxsize, seconds=seconds)
    row.attempts = f.attempts
    row.failures = f.failed_but_committed  # a reported failure that committed
    row.lost = f.lost
    row.applied_twice = f.applied_twice
    row.escapes = len(f.escapes)
    row.notes.append(f"{f.kills} connections cut ({f.commit_cuts} right after a COMMIT), {f.acknowledged} "
                     f"acknowledged, {f.failed_nothing_written} refused and not written, "
                     f"{f.unknown_then_retried} 'outcome unknown' retried with the same request id")
    return row


# -- fuzz ----------------------------------------------------------------------------------------


def fuzz(calls: int) -> Row:
    row = Row("fuzz (whole public API)")
    from hypothesis import strategies as st

    from tests import test_fuzz_api as F

    strategy = st.sampled_from(sorted(F.CALLS)).flatmap(lambda n: st.tuples(st.just(n), F.CALLS[n]))
    kinds = Counter[str]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(calls):
            name, (args, kwargs) = strategy.example()
            store = F._store()
            before = store.position
            row.attempts += 1
            try:
                F._run(store, name, args, kwargs)
            except StoreError:
                if store.position != before:
                    row.failures += 1
                    row.notes.append(f"{name} refused but wrote")
            except Exception as e:  # noqa: BLE001 - counted
                row.escapes += 1
                kinds[f"{name}: {type(e).__name__}"] += 1
    row.notes += [f"{n}x {k}" for k, n in kinds.most_common(5)]
    return row


# -- tamper ----------------------------------------------------------------------------------------


def _seed(path: Path) -> None:
    with ctrledger.open(path) as store:
        for i in range(6):
            store.create(make(f"c{i}", labels={"i": str(i)}))


def tamper(tmp: Path) -> Row:
    row = Row("tamper (plain SQL on the file)")

    def insert(c: sqlite3.Connection) -> None:
        topic, state = c.execute("SELECT topic, state FROM stored_events WHERE rowid=1").fetchone()
        c.execute("INSERT INTO stored_events VALUES ('default/forged', 1, ?, ?)", (topic, state))

    def edit_unhash(c: sqlite3.Connection) -> None:
        state = bytearray(c.execute("SELECT state FROM stored_events WHERE rowid=4").fetchone()[0])
        state[-3] ^= 1
        c.execute("UPDATE stored_events SET state=? WHERE rowid=4", (bytes(state),))
        c.execute("DELETE FROM event_hashes WHERE position>=4")
        c.execute("DELETE FROM merkle_nodes")

    def flip(c: sqlite3.Connection) -> None:
        state = bytearray(c.execute("SELECT state FROM stored_events WHERE rowid=3").fetchone()[0])
        state[20] ^= 1
        c.execute("UPDATE stored_events SET state=? WHERE rowid=3", (bytes(state),))

    edits = {
        "insert an event": (insert, True),
        "edit + delete its hashes": (edit_unhash, True),
        "flip one bit": (flip, False),
        "delete the last event": (lambda c: c.execute("DELETE FROM stored_events WHERE rowid=6"), True),
        "delete a middle event": (lambda c: c.execute("DELETE FROM stored_events WHERE rowid=3"), False),
        "edit a live label": (lambda c: c.execute("UPDATE label_spans SET value='evil' WHERE to_pos IS NULL"), False),
        "edit a containers row": (lambda c: c.execute("UPDATE containers SET image='evil'"), False),
    }
    for name, (edit, at_the_end) in edits.items():
        db = tmp / f"tamper-{len(row.notes)}-{row.attempts}.db"
        _seed(db)
        conn = sqlite3.connect(db)
        edit(conn)
        conn.commit()
        conn.close()
        row.attempts += 1
        for _ in range(2):  # reopening must not launder it
            try:
                with ctrledger.open(db) as store:
                    if ctrledger.verify(store).ok:
                        row.unnoticed += 1
                        row.notes.append(f"{name}: verify says OK")
                    if at_the_end:
                        try:
                            store.create(make("after"))
                            row.failures += 1
                            row.notes.append(f"{name}: a write was accepted")
                        except ctrledger.FailedPrecondition:
                            pass
            except StoreError:
                pass
            except Exception as e:  # noqa: BLE001 - counted
                row.escapes += 1
                row.notes.append(f"{name}: {e!r}")
    return row


# -- archive ---------------------------------------------------------------------------------------


def archive(tmp: Path) -> Row:
    row = Row("archive mutation (checksums recomputed)")
    from ctrledger.replay.archive import ArchiveReader, ArchiveWriter

    src = tmp / "archive-src.db"
    _seed(src)
    with ctrledger.open(src) as store:
        for i in range(6):
            store.update(Container(id=f"c{i}", image=f"i:{i}"), "image")
        good = tmp / "good.ctrlarchive"
        store.export(good)

    def rewrite(name: str, mutate: object) -> Path:
        out = tmp / f"{name}.ctrlarchive"
        with ArchiveReader(good) as reader, out.open("wb") as f:
            header = {k: v for k, v in reader.header.items() if k not in ("format", "format_version", "columns")}
            rows = [r for chunk in reader.chunks() for r in chunk.rows]
            chains = [chunk.chain for chunk in ArchiveReader(good).chunks()]
            trailer = dict(reader.trailer or {})
            rows = mutate(rows)  # type: ignore[operator]
            header["events"] = len(rows)
            writer = ArchiveWriter(f, header)
            writer.write_chunk(rows, chains[-1])
            writer.finish(trailer.get("chain"), trailer.get("root"))
        return out

    def flip(rows: list[tuple]) -> list[tuple]:  # type: ignore[type-arg]
        state = bytearray(rows[4][4])
        state[-2] ^= 1
        return [*rows[:4], (*rows[4][:4], bytes(state)), *rows[5:]]

    mutations = {
        "drop one event": lambda rows: rows[:3] + rows[4:],
        "drop the last event": lambda rows: rows[:-1],
        "flip one bit": flip,
        "swap two events": lambda rows: [*rows[:2], (rows[2][0], *rows[3][1:]), (rows[3][0], *rows[2][1:]),
                                          *rows[4:]],
        "duplicate an event": lambda rows: [*rows, (rows[-1][0] + 1, *rows[-1][1:])],
    }
    for name, mutate in mutations.items():
        bad = rewrite(name.replace(" ", "-"), mutate)
        row.attempts += 1
        target = tmp / f"into-{row.attempts}.db"
        with ctrledger.open(target) as store:
            try:
                ctrledger.import_(bad, store)
                row.unnoticed += 1
                row.notes.append(f"{name}: imported")
            except StoreError:
                if store.position != 0:
                    row.failures += 1
                    row.notes.append(f"{name}: refused after writing")
            except Exception as e:  # noqa: BLE001 - counted
                row.escapes += 1
                row.notes.append(f"{name}: {e!r}")
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="for each timed experiment")
    parser.add_argument("--fuzz", type=int, default=2000, help="fuzzed calls")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="ctrledger-campaign-") as d:
        tmp = Path(d)
        experiments: list[Callable[[], Row]] = [
            lambda: crash(tmp, args.seconds),
            lambda: concurrency(tmp, args.seconds),
            *([] if args.no_postgres else [lambda: postgres(args.seconds)]),
            lambda: fuzz(args.fuzz),
            lambda: tamper(tmp),
            lambda: archive(tmp),
        ]
        for run in experiments:
            started = time.perf_counter()
            r = run()
            r.seconds = time.perf_counter() - started
            rows.append(r)
            print(f"{r.name:48} attempts {r.attempts:6}  failures {r.failures}  lost {r.lost}  applied twice "
                  f"{r.applied_twice}  non-StoreError {r.escapes}  unnoticed {r.unnoticed}  ({r.seconds:.0f} s)",
                  flush=True)
            for note in r.notes[:6]:
                print(f"    {note}")
    clean = all(r.clean for r in rows)
    print("ALL ZERO" if clean else "NOT ALL ZERO")
    return 0 if clean else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
