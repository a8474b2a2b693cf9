"""The follower's writer process (``ctrledger.follow.WriterProcess``): the store's writes made
in a process of their own, answered as the store answers them, and a process that never
outlives the follower."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import ctrledger
from ctrledger import Container, Payload, Runtime
from ctrledger.follow import Claims, Follower, WriterProcess

from .live_containerd import wait_until

AT = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def web(labels: dict[str, str]) -> Container:
    return Container(id="web-1", image="busybox", runtime=Runtime("io.containerd.runc.v2"),
                     spec=Payload("types.containerd.io/opencontainers/runtime-spec/1/Spec", b"{}"), labels=labels)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ctrledger.Store]:
    with ctrledger.open(tmp_path / "ledger.db") as s:
        yield s


@pytest.fixture
def writer(store: ctrledger.Store) -> Iterator[WriterProcess]:
    w = WriterProcess(store.path, client="follow")
    yield w
    w.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too (its parent has not waited for it yet)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_writes_are_answered_as_the_store_answers_them(store: ctrledger.Store, writer: WriterProcess) -> None:
    assert writer.pid is None  # started on first use
    kinds = writer.observe_many([("web-1", web({"a": "1"}), AT)], namespace="ns", actor="containerd", reason="seen")
    assert kinds == [("Created",)] and writer.pid not in (None, os.getpid())
    # what the writer process committed, this process reads at once
    got = store.get("web-1", namespace="ns")
    assert got.labels == {"a": "1"} and got.created_at == AT
    [entry] = store.audit(namespace="ns")
    assert (entry.actor, entry.reason, entry.client) == ("containerd", "seen", "follow")
    assert writer.observe("web-1", web({"a": "2"}), at=AT.replace(minute=1), namespace="ns") == ("LabelsChanged",)
    assert writer.observe("web-1", web({"a": "2"}), at=AT.replace(minute=2), namespace="ns") == ()  # idempotent
    writer.started("web-1", pid=42, at=AT.replace(minute=3), namespace="ns", actor="containerd")
    writer.exited("web-1", exit_code=137, reason="OOMKilled", at=AT.replace(minute=4), namespace="ns")
    status = store.get("web-1", namespace="ns").status
    assert (status.state, status.exit_code, status.reason) == ("EXITED", 137, "OOMKilled")
    assert [e.kind for e in store.history("web-1", namespace="ns")] == [
        "Created", "LabelsChanged", "Started", "Exited"]


def test_a_refusal_is_the_stores_own_error_and_leaves_the_process_serving(
        store: ctrledger.Store, writer: WriterProcess) -> None:
    with pytest.raises(ctrledger.InvalidArgument, match="bad/id"):
        writer.observe("bad/id", Container(id="bad/id"), at=AT, namespace="ns")
    with pytest.raises(ctrledger.NotFound):
        writer.started("nobody", pid=1, namespace="ns")
    with pytest.raises(ctrledger.InvalidArgument, match="namespace"):
        writer.observe_many([("web-1", None, AT)], namespace="Not A Namespace!")
    pid = writer.pid
    assert writer.observe("web-1", web({}), at=AT, namespace="ns") == ("Created",)
    assert writer.pid == pid  # the same process all along
    assert store.position == 1  # the refusals wrote nothing


def test_only_the_writes_are_sent(writer: WriterProcess) -> None:
    with pytest.raises(ValueError, match="not a write"):
        writer.call("delete", "web-1")
    with pytest.raises(AttributeError):
        writer.list  # noqa: B018 - reads are the follower's own store's


def test_a_writer_dead_between_writes_is_replaced(store: ctrledger.Store, writer: WriterProcess) -> None:
    writer.start()
    pid = writer.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid), what="the writer to die")
    assert writer.observe("web-1", web({}), at=AT, namespace="ns") == ("Created",)  # by a new one
    assert writer.pid not in (None, pid)
    assert store.get("web-1", namespace="ns").labels == {}


def test_a_write_the_writer_dies_in_is_unavailable(store: ctrledger.Store, writer: WriterProcess) -> None:
    writer.start()
    pid = writer.pid
    assert pid is not None
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the writer's commit waits for this lock
    try:
        threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
        with pytest.raises(ctrledger.Unavailable, match="writer process ended .killed by signal 9"):
            writer.observe("web-1", web({}), at=AT, namespace="ns")
    finally:
        blocker.rollback()
        blocker.close()
    assert writer.pid is None
    with pytest.raises(ctrledger.NotFound):
        store.get("web-1", namespace="ns")  # it died before its commit: nothing of it is in the ledger
    assert writer.observe("web-1", web({}), at=AT, namespace="ns") == ("Created",)  # a new one


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_to_the_followers_process_group_leaves_its_write_to_finish(
        store: ctrledger.Store, writer: WriterProcess, signum: int) -> None:
    """Ctrl-C in a terminal (SIGINT to the foreground process group) or a service manager's
    SIGTERM to every process of the service reaches the writer too: the follower stops on it
    and commits what it had read, so its writer must not die of it mid-commit."""
    writer.start()
    pid = writer.pid
    assert pid is not None
    blocker = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # the writer's commit waits for this lock
    try:
        threading.Timer(0.3, os.kill, (pid, signum)).start()
        threading.Timer(0.8, blocker.rollback).start()
        assert writer.observe("web-1", web({}), at=AT, namespace="ns") == ("Created",)
    finally:
        time.sleep(0.9)
        blocker.close()
    assert writer.pid == pid  # the same process: the follower's close ends it
    assert store.get("web-1", namespace="ns").labels == {}


def test_the_writer_runs_the_followers_own_code_wherever_it_was_started(
        store: ctrledger.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A follower started in a directory that holds another ``ctrledger`` (a checkout of
    another version) writes with its own code, not that one (``python -c`` puts the working
    directory first on the path)."""
    shadow = tmp_path / "checkout" / "ctrledger"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('another ctrledger')\n")
    monkeypatch.chdir(shadow.parent)
    w = WriterProcess(store.path, client="follow")
    try:
        assert w.observe("web-1", web({}), at=AT, namespace="ns") == ("Created",)
    finally:
        w.close()


def test_a_writer_whose_follower_died_before_asking_anything_ends_quietly() -> None:
    """A follower killed while it spawned its writer (before its first request): the writer
    ends, with no traceback on the follower's stderr (which it shares)."""
    done = subprocess.run([sys.executable, "-c", "from ctrledger.follow.writer import main; main()"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr == "" and done.stdout == ""


def test_a_writer_that_cannot_open_the_store_says_why(tmp_path: Path) -> None:
    w = WriterProcess(tmp_path / "missing.db")
    with pytest.raises(ctrledger.NotFound, match="missing.db"):
        w.start()  # it opens with mode "w": the follower's store made the file
    assert w.pid is None and not (tmp_path / "missing.db").exists()


def test_close_ends_the_process(writer: WriterProcess) -> None:
    writer.start()
    pid = writer.pid
    assert pid is not None and alive(pid)
    writer.close()
    assert writer.pid is None and not alive(pid)
    writer.close()  # twice is harmless


def test_the_writer_dies_with_its_parent(store: ctrledger.Store, tmp_path: Path) -> None:
    """A follower killed with SIGKILL leaves no writer behind to commit an old batch beside the
    follower started after it (its parent-death signal)."""
    script = textwrap.dedent(f"""
        import sys, time
        from ctrledger.follow import WriterProcess
        w = WriterProcess({str(store.path)!r})
        w.start()
        print(w.pid, flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert alive(child)
        parent.kill()  # the parent alone, not its process group
        parent.wait()
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child)
    finally:
        parent.kill()
        parent.wait()


def test_a_follower_beside_a_proxy_keeps_its_writes_in_its_process(store: ctrledger.Store) -> None:
    with pytest.raises(ValueError, match="proxy"):
        Follower(store, "/nonexistent.sock", claims=Claims(), writer=WriterProcess(store.path))
