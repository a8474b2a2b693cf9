"""Scale-out on PostgreSQL: several nodes share one log, each with its own local read models.

Every test uses its own schema. They need a PostgreSQL server (CI starts one); without
one they skip, saying so.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import ctrledger
from ctrledger.projections.schema import SCHEMA_VERSION

from .conftest import POSTGRES_URL, make, own_postgres_ports, postgres_schema, postgres_url

ROOT = Path(__file__).resolve().parent.parent
VIEW_TABLES = ("containers", "namespaces", "versions", "label_spans", "audit", "ctrledger_tracking")


@pytest.fixture
def schema() -> Iterator[str]:
    with postgres_schema() as name:
        yield name


def dump(readmodel: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every read-model row of a node, in a canonical order (what two converged nodes share)."""
    conn = sqlite3.connect(readmodel)
    try:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in VIEW_TABLES}
    finally:
        conn.close()


def spawn(target: str, name: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.writer_process", target, name, str(count)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_three_nodes_writing_at_once_converge_and_lose_nothing(schema: str, tmp_path: Path) -> None:
    with ctrledger.open(postgres_url(schema, tmp_path / "setup.db"), follow=False) as setup:
        setup.create(make("hot"))
        setup.create(make("hot2"))
    names = ("a", "b", "c")
    nodes = {n: tmp_path / f"node-{n}.db" for n in names}
    writers = [spawn(postgres_url(schema, nodes[n]), n, 25) for n in names]
    acked: list[str] = []
    for w in writers:
        out, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
        acked += out.splitlines()

    # Every node (and a brand-new one) converges on the same read models.
    fresh = tmp_path / "fresh.db"
    for path in [*nodes.values(), fresh]:
        with ctrledger.open(postgres_url(schema, path), follow=False) as node:
            node.position  # noqa: B018 - catching up is what a read does first
    dumps = [dump(p) for p in [*nodes.values(), fresh]]
    assert all(d == dumps[0] for d in dumps[1:])

    with ctrledger.open(postgres_url(schema, fresh), follow=False) as store:
        live = {c.id for c in store.list()}
        created = [line.split()[1] for line in acked if line.startswith("created")]
        assert set(created) <= live
        # each shared name was created exactly once (one incarnation), by whoever won
        assert Counter(n for n in created if n.startswith("shared-")) == {f"shared-{i}": 1 for i in range(10)}
        for i in range(10):
            assert [e.kind for e in store.history(f"shared-{i}")] == ["Created"]
        # every acknowledged update is in the log, none lost
        hot_sets = [(e.actor, c.field, c.new) for e in store.history("hot") for c in e.changes if e.kind != "Created"]
        for line in acked:
            if line.startswith("updated hot "):
                who, value = line.split()[2].split("=")
                assert (who, f"labels.{who}", value) in hot_sets
        assert store.get("hot").labels == {"a": "24", "b": "24", "c": "24"}
        assert store.get("hot").version == 1 + 75
        # updates with an expected version: the acknowledged ones are all there, the rest conflicted
        hot2_updates = sum(1 for e in store.history("hot2") if e.kind == "LabelsChanged")
        assert hot2_updates == sum(1 for line in acked if line.startswith("updated hot2"))
        assert hot2_updates + sum(1 for line in acked if line.startswith("conflict hot2")) == 75
        assert ctrledger.verify(store).ok


def test_a_killed_node_restarts_and_converges(schema: str, tmp_path: Path) -> None:
    with ctrledger.open(postgres_url(schema, tmp_path / "setup.db"), follow=False) as setup:
        setup.create(make("hot"))
        setup.create(make("hot2"))
    victim = tmp_path / "victim.db"
    writer = spawn(postgres_url(schema, victim), "k", 100_000)
    other = spawn(postgres_url(schema, tmp_path / "other.db"), "o", 40)
    assert writer.stdout is not None
    acked = []
    while len(acked) < 60:
        line = writer.stdout.readline()
        assert line, writer.stderr.read() if writer.stderr else ""
        acked.append(line.strip())
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    other.communicate(timeout=300)
    assert other.returncode == 0

    with ctrledger.open(postgres_url(schema, victim), follow=False) as restarted:
        live = {c.id for c in restarted.list()}
        for line in acked:
            if line.startswith("created"):
                assert line.split()[1] in live
    with ctrledger.open(postgres_url(schema, tmp_path / "fresh.db"), follow=False) as fresh:
        fresh.position  # noqa: B018
    assert dump(victim) == dump(tmp_path / "fresh.db")


def test_an_idle_node_receives_new_events_within_a_second(schema: str, tmp_path: Path) -> None:
    idle_file = tmp_path / "idle.db"
    with ctrledger.open(postgres_url(schema, idle_file)), \
            ctrledger.open(postgres_url(schema, tmp_path / "busy.db"), follow=False) as busy:
        time.sleep(0.3)  # the idle node is listening
        for i in range(3):
            busy.create(make(f"c{i}"))
            start = time.monotonic()
            while True:
                conn = sqlite3.connect(idle_file)
                seen = conn.execute("SELECT COUNT(*) FROM containers WHERE id=?", (f"c{i}",)).fetchone()[0]
                conn.close()
                if seen:
                    break
                assert time.monotonic() - start < 1.0, f"c{i} did not reach the idle node within 1 s"
                time.sleep(0.02)


def test_a_node_rides_out_a_lost_connection(schema: str, tmp_path: Path) -> None:
    with ctrledger.open(postgres_url(schema, tmp_path / "n.db"), follow=False) as node:
        node.create(make("before"))
        ours = own_postgres_ports()  # the node's connections (the server is shared with other suites)
        with psycopg.connect(POSTGRES_URL.split("?")[0], autocommit=True) as admin:
            killed = admin.execute(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND client_port = ANY(%s)",
                (ours,),
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        node.create(make("after"))  # reconnects
        assert [c.id for c in node.list()] == ["after", "before"]


def test_a_node_refuses_a_log_schema_it_does_not_understand(schema: str, tmp_path: Path) -> None:
    url = postgres_url(schema, tmp_path / "n.db")
    ctrledger.open(url, follow=False).close()
    with psycopg.connect(POSTGRES_URL.split("?")[0], autocommit=True) as admin:
        admin.execute(f"UPDATE \"{schema}\".ledger_meta SET value='99' WHERE key='log_schema'")
    with pytest.raises(ctrledger.FailedPrecondition, match="schema version 99, newer than this ctrledger"):
        ctrledger.open(url, follow=False)


def test_a_missing_server_is_unavailable_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(ctrledger.Unavailable, match="cannot open"):
        ctrledger.open(f"postgresql://postgres@127.0.0.1:1/test?readmodel={tmp_path / 'n.db'}&connect_timeout=1")


def test_migrate_creates_both_schemas_and_reports_them(target: str) -> None:
    assert ctrledger.migrate(target) == {"log_schema": 1, "read_model_schema": SCHEMA_VERSION, "hashed": 0}
    with ctrledger.open(target, follow=False) as store:  # and a store opens on them
        store.create(make())
        assert ctrledger.migrate(target) == {"log_schema": 1, "read_model_schema": SCHEMA_VERSION, "hashed": 0}
        assert store.get("web-1").version == 1


@pytest.mark.sqlite_only
def test_an_embedded_log_of_a_newer_schema_is_refused(target: str) -> None:
    ctrledger.open(target).close()
    conn = sqlite3.connect(target)
    conn.execute("UPDATE ledger_meta SET value='7' WHERE key='log_schema'")
    conn.commit()
    conn.close()
    with pytest.raises(ctrledger.FailedPrecondition, match="schema version 7"):
        ctrledger.open(target)


@pytest.mark.parametrize("url", ["postgresql://", "postgresql://host-only", "postgresql:///dbonly"])
def test_a_url_without_host_or_database_is_an_invalid_argument(url: str) -> None:
    with pytest.raises(ctrledger.InvalidArgument, match="names a host and a database"):
        ctrledger.open(url)


def _append_trace(node: ctrledger.Store, trace: Path, write: object) -> list[str]:
    """The client's protocol messages (libpq trace) while ``write`` runs on ``node``."""
    pool: Any = node._log._app.recorder.datastore.pool  # type: ignore[attr-defined]
    with trace.open("w") as out:
        traced: list[Any] = []
        getconn = pool.getconn

        def tracing(*args: Any, **kwargs: Any) -> Any:
            conn = getconn(*args, **kwargs)
            conn.pgconn.trace(out.fileno())
            traced.append(conn)
            return conn

        pool.getconn = tracing
        try:
            write()  # type: ignore[operator]
        finally:
            pool.getconn = getconn
            for conn in traced:
                conn.pgconn.untrace()
    return [line.split("\t", 4)[3] + " " + (line.split("\t", 4)[4] if line.count("\t") >= 4 else "")
            for line in trace.read_text().splitlines() if line.split("\t")[1:2] == ["F"]]


def test_an_append_waits_for_the_server_once_and_never_inside_its_transaction(schema: str, tmp_path: Path) -> None:
    # The events table's lock is held from LOCK TABLE to the end of the transaction: a Sync
    # (the client waiting for the server's reply) between BEGIN and COMMIT would hold every
    # other node's append for a round trip.
    with ctrledger.open(postgres_url(schema, tmp_path / "n.db"), follow=False) as node:
        node.create(make("warm"))
        sent = _append_trace(node, tmp_path / "trace", lambda: node.create(make("traced", labels={"a": "b"})))
    begins = [i for i, m in enumerate(sent) if m.startswith("Parse") and '"BEGIN"' in m]
    commits = [i for i, m in enumerate(sent) if m.startswith("Parse") and '"COMMIT"' in m]
    assert len(begins) == len(commits) == 1, sent
    inside = sent[begins[0]:commits[0]]
    assert any("ctrledger_append(" in m for m in inside), inside
    assert not [m for m in inside if m.startswith("Sync")], inside


def test_a_log_without_the_append_function_is_appended_to_as_before(schema: str, tmp_path: Path) -> None:
    # A log created by an older ctrledger, opened without creating (mode 'w'), has no
    # ctrledger_append: appends take eventsourcing's path and the hashing call, and the
    # chain stays one chain across both kinds of append.
    url = postgres_url(schema, tmp_path / "a.db")
    with ctrledger.open(url, follow=False) as node:
        node.create(make("new-1"))
    with psycopg.connect(POSTGRES_URL.split("?")[0], autocommit=True) as admin:
        admin.execute(f'DROP FUNCTION "{schema}".ctrledger_append')
    with ctrledger.open(postgres_url(schema, tmp_path / "b.db"), follow=False, mode="w") as old:
        old.create(make("old-1"), request_id="req-old")
        again = old.create(make("old-1"), request_id="req-old")  # a retry finds the first attempt
        assert again.id == "old-1"
        old.update(make("new-1", labels={"k": "v"}), "labels.k")
        assert ctrledger.verify(old).ok
    with ctrledger.open(url) as node:  # creates the function again
        node.create(make("new-2"))
        assert sorted(c.id for c in node.list()) == ["new-1", "new-2", "old-1"]
        assert node.get("new-1").labels == {"k": "v"}
        report = ctrledger.verify(node)
        assert report.ok, report
