"""Ctrl-C at any point of a command leaves the store as it was and no scratch file behind.

``rebuild`` is interrupted two ways: by a ``KeyboardInterrupt`` from its progress callback
after each batch (deterministic), and by a real SIGINT sent to ``ctrledger rebuild`` in a
child process at points spread over its whole run, the final swap included (timing: which
step each signal lands in varies from run to run, so the test asserts the property at every
point, not which step it hit). After each: the read models' digest is what it was,
``verify_projections`` passes, there is no ``.rebuild`` scratch file, and the CLI said no
"(a bug)" and printed no traceback.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ctrledger
from ctrledger.persistence.sqlite import rollback
from ctrledger.replay.rebuild import scratch_path

from .conftest import make

CHILD = """
import sys
from ctrledger.cli import main
print("ready", flush=True)
main(["rebuild", "--db", sys.argv[1]], prog_name="ctrledger")
"""


def seeded(path: Path, containers: int, updates: int) -> Path:
    with ctrledger.open(path, synchronous="NORMAL") as store:
        for i in range(containers):
            store.create(make(f"c-{i}", labels={"n": str(i)}))
        for i in range(updates):
            store.update(make(f"c-{i % containers}", labels={"n": str(i), "k": "v"}), "labels")
    return path


def state(path: Path) -> tuple[str, bool, bool]:
    with ctrledger.open(path, mode="r") as store:
        return store.digest(), store.verify_projections().ok, scratch_path(store).exists()


def test_rollback_tolerates_a_transaction_sqlite_already_ended(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    conn.execute("CREATE TABLE t(x)")
    conn.execute("BEGIN")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.execute("ROLLBACK")  # as SQLite does itself after an interrupt or a full disk
    with pytest.raises(sqlite3.OperationalError, match="no transaction is active"):
        conn.execute("ROLLBACK")  # what the old handlers did, hiding the exception being handled
    rollback(conn)  # no error
    conn.execute("BEGIN")
    conn.execute("INSERT INTO t VALUES (2)")
    rollback(conn)
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 0


@pytest.mark.parametrize("batch_no", [1, 2, 3])
def test_keyboard_interrupt_in_rebuild_leaves_the_store_and_no_scratch(tmp_path: Path, batch_no: int) -> None:
    path = seeded(tmp_path / "ledger.db", 60, 120)
    before = state(path)
    calls = 0

    def interrupt(done: int, total: int) -> None:
        nonlocal calls
        calls += 1
        if calls == batch_no:
            raise KeyboardInterrupt

    with ctrledger.open(path) as store:
        with pytest.raises(KeyboardInterrupt):
            ctrledger.replay.rebuild(store, interrupt, batch=50)
        assert not scratch_path(store).exists()
    assert state(path) == before


def test_sigint_at_any_point_of_cli_rebuild(tmp_path: Path) -> None:
    path = seeded(tmp_path / "ledger.db", 150, 600)
    before = state(path)
    assert before[1:] == (True, False)

    def run(delay: float | None) -> tuple[int, str]:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        if delay is not None:
            time.sleep(delay)
            child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
        return child.returncode, err

    started = time.perf_counter()
    assert run(None) == (0, "")
    whole = time.perf_counter() - started
    outcomes = []
    for step in range(1, 7):
        code, err = run(whole * step / 6)
        assert "a bug" not in err and "Traceback" not in err, err
        # Done; or stopped ("Aborted!", click's exit 1); or the signal came as Python exited (-SIGINT)
        assert (code, err.strip()) in {(0, ""), (1, "Aborted!"), (-signal.SIGINT, "")}, (code, err)
        outcomes.append(code)
        assert state(path) == before, f"interrupted at {step}/6 of the run"
    assert 1 in outcomes  # at least one signal landed while the rebuild was running
