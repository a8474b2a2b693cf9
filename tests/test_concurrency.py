"""Several processes on one SQLite file, and a writer killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import ctrledger
from ctrledger import Container
from ctrledger.domain.container import stream_id

from .conftest import make

ROOT = Path(__file__).resolve().parent.parent


def spawn(db: Path, name: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.writer_process", str(db), name, str(count)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_two_processes_writing_at_once_lose_nothing(db_path: Path) -> None:
    with ctrledger.open(db_path) as store:
        store.create(make("hot"))
        store.create(make("hot2"))
    writers = [spawn(db_path, name, 60) for name in ("a", "b")]
    outputs = []
    for w in writers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        outputs.append(out.splitlines())
    acked = [line for out in outputs for line in out]

    with ctrledger.open(db_path) as store:
        live = {c.id for c in store.list()}
        # every acknowledged create is there; each shared name was created exactly once
        created = [line.split()[1] for line in acked if line.startswith("created")]
        assert set(created) <= live
        assert Counter(n for n in created if n.startswith("shared-")) == {f"shared-{i}": 1 for i in range(10)}
        # every acknowledged update is an event in the log, none lost (last writer wins)
        hot = list(store.log.events_of(stream_id("default", "hot")))
        assert len(hot) == 1 + 120
        assert store.get("hot").labels == {"a": "59", "b": "59"}
        assert store.get("hot").version == 121
        hot2 = sum(1 for e in store.history("hot2") if e.kind == "LabelsChanged")
        assert hot2 == sum(1 for line in acked if line.startswith("updated hot2"))
        # the read model applied every event exactly once
        assert store.position == store.log.head()


def test_a_killed_writer_loses_no_acknowledged_write(db_path: Path) -> None:
    with ctrledger.open(db_path) as store:
        store.create(make("hot"))
        store.create(make("hot2"))
    writer = spawn(db_path, "k", 100_000)
    assert writer.stdout is not None
    acked: list[str] = []
    deadline = time.monotonic() + 60
    while len(acked) < 150 and time.monotonic() < deadline:
        line = writer.stdout.readline()
        if not line:
            break
        acked.append(line.strip())
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    assert len(acked) >= 150, writer.stderr.read() if writer.stderr else ""

    with ctrledger.open(db_path) as store:
        live = {c.id for c in store.list()}
        for line in acked:
            if line.startswith("created"):
                assert line.split()[1] in live
        last_update = max(int(line.split("=")[1]) for line in acked if line.startswith("updated"))
        assert int(store.get("hot").labels["k"]) >= last_update
        # the log and the read model agree after the crash, and the store still works
        assert store.position == store.log.head()
        store.update(Container(id="hot", labels={"after": "crash"}), "labels.after")
        assert store.get("hot").labels["after"] == "crash"
