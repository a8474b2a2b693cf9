"""The read model: rebuildable from the log, self-healing, versioned."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ctrledger
from ctrledger import Container, Payload, Resources, Runtime
from ctrledger.projections.schema import SCHEMA_VERSION
from ctrledger.replay import rebuild

from .conftest import StepClock, make
from .test_history import NAMES, NAMESPACES, run
from .test_history import ops as history_ops

pytestmark = pytest.mark.sqlite_only

VIEW_TABLES = ("containers", "namespaces", "versions", "label_spans", "audit")


def dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {
            t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
            for t in (*VIEW_TABLES, "ctrledger_tracking")
        }
    finally:
        conn.close()


def wipe(path: Path, *, tracking: str) -> None:
    conn = sqlite3.connect(path)
    conn.executescript("".join(f"DELETE FROM {t};" for t in VIEW_TABLES) + tracking)
    conn.close()


def busy_history(store: ctrledger.Store) -> None:
    for i in range(20):
        store.create(make(f"c{i}", labels={"i": str(i), "even": str(i % 2 == 0)}), namespace=f"ns{i % 3}")
    store.update(Container(id="c3", labels={"x": "1"}, extensions={"e": Payload("t", b"v")}), "labels.x",
                 "extensions", namespace="ns0")
    store.delete("c4", namespace="ns1")
    store.create(make("c4", image="again"), namespace="ns1")
    store.update(make("c5", snapshotter="", labels={"z": "9"}), namespace="ns2")


def test_rebuild_reproduces_the_inline_model_exactly(store: ctrledger.Store, db_path: Path) -> None:
    busy_history(store)
    before = dump(db_path)
    assert rebuild(store) == store.position
    assert dump(db_path) == before


def test_a_lost_read_model_is_caught_up_on_open(store: ctrledger.Store, db_path: Path) -> None:
    busy_history(store)
    before = dump(db_path)
    wipe(db_path, tracking="DELETE FROM ctrledger_tracking;")
    with ctrledger.open(db_path) as again:
        assert dump(db_path) == before
        assert again.get("c4", namespace="ns1").image == "again"


def test_views_far_behind_the_log_catch_up_in_bulk_to_the_rows_the_views_write(
    store: ctrledger.Store, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ctrledger.projections import bulk

    busy_history(store)
    store.close()
    before = dump(db_path)
    conn = sqlite3.connect(db_path)  # the history views lost (a handle with history=False wrote it all)
    conn.executescript("DELETE FROM versions; DELETE FROM audit; "
                       "DELETE FROM ctrledger_tracking WHERE view != 'current';")
    conn.close()
    built: list[list[str]] = []
    real = bulk.build_in_bulk
    monkeypatch.setattr(bulk, "CATCH_UP_MIN", 10)  # (10k by default: this log is short)
    monkeypatch.setattr(bulk, "build_in_bulk",
                        lambda log, scratch, views, *a, **k: built.append([v.name for v in views]) or real(
                            log, scratch, views, *a, **k))
    with ctrledger.open(db_path) as again:
        assert built == [["temporal", "audit"]]  # the current view was up to date: left as it was
        assert dump(db_path) == before
        assert [h.kind for h in again.history("c4", namespace="ns1")] == ["Created", "Deleted", "Created"]
    assert not [p for p in db_path.parent.iterdir() if ".catch-up-" in p.name]  # no scratch file left


def test_a_catch_up_scratch_file_of_a_killed_process_is_removed_by_the_next(
    store: ctrledger.Store, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ctrledger.projections import bulk

    busy_history(store)
    store.close()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = db_path.parent / f"{db_path.name}.catch-up-{int(gone.stdout)}-1"  # its process has ended
    orphan.write_bytes(b"half a build")
    alive = db_path.parent / f"{db_path.name}.catch-up-{os.getpid()}-1"  # a running process's: kept
    alive.write_bytes(b"in use")
    monkeypatch.setattr(bulk, "CATCH_UP_MIN", 10)
    wipe(db_path, tracking="DELETE FROM ctrledger_tracking;")
    with ctrledger.open(db_path) as again:
        assert again.get("c4", namespace="ns1").image == "again"
    assert not orphan.exists() and alive.exists()


def test_a_lagging_view_catches_up_inside_the_next_append(store: ctrledger.Store, db_path: Path) -> None:
    busy_history(store)
    wipe(db_path, tracking="UPDATE ctrledger_tracking SET position = 0;")
    store.create(make("late"), namespace="ns0")  # the inline hook replays what it missed first
    assert [c.id for c in store.list(namespace="ns0")] == ["c0", "c12", "c15", "c18", "c3", "c6", "c9", "late"]
    rebuilt = dump(db_path)
    rebuild(store)
    assert dump(db_path) == rebuilt


def test_a_newer_schema_is_refused_with_a_clear_error(db_path: Path) -> None:
    ctrledger.open(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE ctrledger_meta SET value='99' WHERE key='read_model_schema'")
    conn.commit()
    conn.close()
    with pytest.raises(ctrledger.FailedPrecondition, match="schema version 99 .* newer"):
        ctrledger.open(db_path)


def _rebuilt_as_written(operations: list[tuple[object, ...]],
                        runner: Callable[[ctrledger.Store, tuple[object, ...]], None],
                        then: Callable[[ctrledger.Store], None] = lambda store: None) -> None:
    """Run ``operations``, rebuild, check the tables equal those the inline views wrote, then
    ``then`` on the still open store."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "l.db"
        with ctrledger.open(path, clock=StepClock()) as store:
            for op in operations:
                runner(store, op)
            inline = dump(path)
            rebuild(store)
            assert dump(path) == inline
            then(store)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=history_ops)
def test_batched_projection_equals_event_by_event_projection(operations: list[tuple[object, ...]]) -> None:
    """Rebuild applies the log in batches (a different code path from the one-write-at-a-time
    handlers): the tables must come out identical, row for row."""
    _rebuilt_as_written(operations, run)


every_kind = st.lists(
    st.one_of(
        history_ops.map(lambda ops: ops[0]),  # one of test_history's operations
        st.tuples(st.just("spec"), st.sampled_from(NAMESPACES), st.sampled_from(NAMES), st.binary(max_size=3)),
        st.tuples(st.just("snapshot"), st.sampled_from(NAMESPACES), st.sampled_from(NAMES),
                  st.sampled_from(["k1", "k2"])),
        st.tuples(st.just("extensions"), st.sampled_from(NAMESPACES), st.sampled_from(NAMES),
                  st.dictionaries(st.sampled_from(["e1", "e2"]), st.binary(max_size=2), max_size=2)),
        st.tuples(st.just("touch"), st.sampled_from(NAMESPACES), st.sampled_from(NAMES)),
        st.tuples(st.just("create_snapshotted"), st.sampled_from(NAMESPACES), st.sampled_from(NAMES)),
        st.tuples(st.just("labels"), st.sampled_from(NAMESPACES), st.sampled_from(NAMES),
                  st.dictionaries(st.sampled_from(["env", "tier", "x"]), st.sampled_from(["a", "b"]), max_size=3)),
    ),
    min_size=1,
    max_size=30,
)


def run_any(store: ctrledger.Store, op: tuple[object, ...]) -> None:
    kind, ns, name = str(op[0]), str(op[1]), str(op[2])
    try:
        if kind == "spec":
            store.update(Container(id=name, spec=Payload("t", bytes(op[3]))), "spec", namespace=ns)  # type: ignore[arg-type]
        elif kind == "snapshot":
            store.update(Container(id=name, snapshot_key=str(op[3])), "snapshotkey", namespace=ns)
        elif kind == "extensions":
            ext = {k: Payload("e", v) for k, v in op[3].items()}  # type: ignore[attr-defined]
            store.update(Container(id=name, extensions=ext), "extensions", namespace=ns)
        elif kind == "touch":  # an update that changes nothing (Touched)
            store.update(store.get(name, namespace=ns), "image", namespace=ns)
        elif kind == "create_snapshotted":
            store.create(make(name, snapshotter="overlayfs", snapshot_key="k0", labels={"env": "a"}), namespace=ns)
        elif kind == "labels":  # the whole map: keys removed, set, kept
            store.update(Container(id=name, labels=dict(op[3])), "labels", namespace=ns)  # type: ignore[call-overload]
        else:
            run(store, op)
    except (ctrledger.NotFound, ctrledger.AlreadyExists, ctrledger.FailedPrecondition, ctrledger.InvalidArgument):
        pass


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=every_kind)
def test_a_bulk_rebuild_equals_the_views_applied_event_by_event(operations: list[tuple[object, ...]]) -> None:
    """Every kind of event: the bulk rebuild (``projections.bulk``) gives the tables the inline views
    wrote, row for row, and ``verify_projections`` (which applies the views event by event) agrees."""
    def projections_verify(store: ctrledger.Store) -> None:
        assert store.verify_projections().ok

    _rebuilt_as_written(operations, run_any, projections_verify)


# -- schema 5: one label b-tree ------------------------------------------------------------------


def _as_schema_5(path: Path) -> None:
    """Turn a read model into what ctrledger with schema 5 wrote: no ``containers.record``."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("ALTER TABLE containers DROP COLUMN record")
    conn.execute("UPDATE ctrledger_meta SET value='5' WHERE key='read_model_schema'")
    conn.close()


def _as_schema_4(path: Path, *, history: bool) -> None:
    """Turn a read model into what ctrledger with schema 4 wrote: a ``labels`` table of the live
    labels beside the spans (with history), or without the temporal views at all (``history=False``:
    no spans, no versions, no audit)."""
    _as_schema_5(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE labels (namespace TEXT NOT NULL, id TEXT NOT NULL, key TEXT NOT NULL, "
                 "value TEXT NOT NULL, PRIMARY KEY (namespace, id, key)) WITHOUT ROWID")
    conn.execute("INSERT INTO labels SELECT namespace, id, key, value FROM label_spans WHERE to_pos IS NULL")
    if not history:
        for table in ("label_spans", "versions", "audit"):
            conn.execute(f"DELETE FROM {table}")
        conn.execute("DELETE FROM ctrledger_tracking WHERE view IN ('temporal', 'audit')")
    conn.execute("UPDATE ctrledger_meta SET value='4' WHERE key='read_model_schema'")
    conn.close()


@pytest.mark.parametrize("history", [True, False], ids=["with-history", "history-off"])
def test_a_schema_4_read_model_is_migrated_to_one_label_index(tmp_path: Path, history: bool) -> None:
    path = tmp_path / "l.db"
    with ctrledger.open(path, clock=StepClock()) as store:
        busy_history(store)
        want = {(ns, f): store.list(f, namespace=ns) for ns in ("ns0", "ns1", "ns2")
                for f in ("", "labels.even==True", "labels.i!=1", "labels.x", "labels.z==9")}
        digest = store.digest()
    spans = dump(path)["label_spans"]
    _as_schema_4(path, history=history)
    assert ctrledger.migrate(path)["read_model_schema"] == SCHEMA_VERSION
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert "labels" not in tables
    # With history off there were no spans: the current view started again from the log.
    assert dump(path)["label_spans"] == spans
    with ctrledger.open(path) as store:
        assert {(ns, f): store.list(f, namespace=ns) for ns, f in want} == want
        assert store.digest() == digest
        assert store.verify_projections().ok


# -- schema 6: the packed record -------------------------------------------------------------------


def test_a_schema_5_read_model_gets_its_packed_records_from_its_columns(tmp_path: Path) -> None:
    # Every field the record packs differs from its default somewhere: labels, extensions,
    # runtime options, a snapshot key, a sandbox, a status that ran, exited and was resized.
    path = tmp_path / "l.db"
    with ctrledger.open(path, clock=StepClock()) as store:
        busy_history(store)
        store.create(make("opt", runtime=Runtime("io.containerd.runc.v2", Payload("t/o", b"\x01")),
                          snapshot_key="k", sandbox="sb", snapshotter="overlayfs"), namespace="ns0")
        store.started("opt", pid=42, namespace="ns0")
        store.update_resources("opt", Resources(memory_limit_in_bytes=1 << 24), namespace="ns0")
        store.exited("opt", exit_code=3, reason="Error", message="bye", namespace="ns0")
        store.started("c0", pid=7, namespace="ns0")
        want = {ns: store.list(namespace=ns) for ns in ("ns0", "ns1", "ns2")}
        digest = store.digest()
    records = {row[:2]: row[2] for row in sqlite3.connect(path).execute("SELECT namespace, id, record FROM containers")}
    _as_schema_5(path)
    assert ctrledger.migrate(path)["read_model_schema"] == SCHEMA_VERSION
    conn = sqlite3.connect(path)
    assert {row[:2]: row[2] for row in conn.execute("SELECT namespace, id, record FROM containers")} == records
    conn.close()
    with ctrledger.open(path) as store:
        assert {ns: store.list(namespace=ns) for ns in want} == want
        assert store.get("opt", namespace="ns0").status.exit_code == 3
        assert store.digest() == digest
        assert store.verify_projections().ok
