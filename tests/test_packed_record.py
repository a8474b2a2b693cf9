"""The packed record (read-model schema 6) against its columns, and the cold load's short path.

Every containers row carries its fields twice: the columns (for filters and SQL) and
``record`` (what get, list and scan read). These tests run every kind of write, on both
backends, with history on and off, event by event and in bulk, and check after each step
that the record is exactly what its columns say, and that a read through the record
returns what a read through the columns (the schema-5 read path) returned.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import ctrledger
from ctrledger import Container, Payload, Resources, Runtime
from ctrledger.domain.container import ContainerAggregate
from ctrledger.domain.filters import parse_filters
from ctrledger.persistence.application import _project
from ctrledger.persistence.snapshots import SNAPSHOT_EVERY
from ctrledger.persistence.transcoder import unpackb
from ctrledger.projections.current import _COLUMNS, RECORD_FIELDS, _row_to_container, pack_record, row_to_container
from ctrledger.replay import rebuild

from .conftest import StepClock, make
from .test_edges import writes_refused_after

NAMESPACES = ("ns0", "ns1")
NAMES = ("a", "b", "c")
_LABELS, _EXT = RECORD_FIELDS.index("labels"), RECORD_FIELDS.index("extensions")


def rm_path(store: ctrledger.Store) -> Path:
    return Path(store.read_model.path)


def check_records(path: Path) -> int:
    """Every row's record is the one its columns give, and reads through either agree; the rows."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(f"SELECT namespace, id, record, {', '.join(RECORD_FIELDS)} FROM containers").fetchall()
        for ns, cid, record, *values in rows:
            values[_LABELS], values[_EXT] = unpackb(values[_LABELS]), unpackb(values[_EXT])
            assert record is not None, (ns, cid)
            assert unpackb(record) == unpackb(pack_record(values)), (ns, cid, unpackb(record), values)
            assert record == pack_record(values), (ns, cid)
        for row in conn.execute(f"SELECT spec_value, record, {_COLUMNS} FROM containers"):
            cols = row[2:]
            old = row_to_container(cols, Payload.trusted(cols[5], cols[6]))
            new = _row_to_container(row[:2])
            assert new == old
            assert new.__dict__.keys() == old.__dict__.keys()
            assert new.status.__dict__ == old.status.__dict__
    finally:
        conn.close()
    return len(rows)


def one_op(store: ctrledger.Store, rnd: random.Random) -> None:
    ns, name = rnd.choice(NAMESPACES), rnd.choice(NAMES)
    kind = rnd.choice(["create", "create", "create", "create_full", "create_full", "start", "start", "pause",
                       "resume", "labels", "label_rm", "image", "spec", "snapshot", "ext",
                       "ext_rm", "touch", "delete", "start", "exit", "pause", "resume", "resources",
                       "resources_zero", "observe_same", "observe_changed", "observe_replaced", "observe_absent",
                       "observe_many_twice"])
    try:
        if kind == "create":
            store.create(make(name, labels={"env": rnd.choice("ab")}), namespace=ns)
        elif kind == "create_full":
            store.create(make(name, runtime=Runtime("io.containerd.runc.v2", Payload("t/o", b"\x01")),
                              snapshot_key="k", sandbox="sb", snapshotter="overlayfs",
                              labels={"x": "1", "y": "2"}, extensions={"e": Payload("t/e", b"v")}), namespace=ns)
        elif kind == "labels":
            store.update(Container(id=name, labels={rnd.choice("xyz"): rnd.choice("12")}),
                         f"labels.{rnd.choice('xyz')}", namespace=ns)
        elif kind == "label_rm":
            store.update(Container(id=name, labels={}), "labels", namespace=ns)
        elif kind == "image":
            store.update(Container(id=name, image=f"img:{rnd.randint(0, 3)}"), "image", namespace=ns)
        elif kind == "spec":
            store.update(Container(id=name, spec=Payload("t/s", bytes([rnd.randint(0, 3)]))), "spec", namespace=ns)
        elif kind == "snapshot":
            store.update(Container(id=name, snapshot_key=f"k{rnd.randint(0, 2)}"), "snapshotkey", namespace=ns)
        elif kind == "ext":
            store.update(Container(id=name, extensions={rnd.choice("ef"): Payload("t/e", b"w")}),
                         "extensions", namespace=ns)
        elif kind == "ext_rm":
            store.update(Container(id=name, extensions={}), "extensions", namespace=ns)
        elif kind == "touch":
            store.update(store.get(name, namespace=ns), "image", namespace=ns)
        elif kind == "delete":
            store.delete(name, namespace=ns)
        elif kind == "start":
            store.started(name, pid=rnd.randint(1, 99), namespace=ns)
        elif kind == "exit":
            store.exited(name, exit_code=rnd.choice([0, 1, 137]), reason=rnd.choice(["", "Error", "OOMKilled"]),
                         message=rnd.choice(["", "m"]), namespace=ns)
        elif kind == "pause":
            store.paused(name, namespace=ns)
        elif kind == "resume":
            store.resumed(name, namespace=ns)
        elif kind == "resources":
            store.update_resources(name, Resources(cpu_quota=rnd.randint(1, 3) * 1000), namespace=ns)
        elif kind == "resources_zero":  # back to the empty resources: the status may equal the defaults again
            store.update_resources(name, Resources(), namespace=ns)
        elif kind.startswith("observe"):
            live = store.get(name, namespace=ns) if kind != "observe_absent" else None
            if kind == "observe_absent":
                store.observe(name, None, namespace=ns)
            elif kind == "observe_same":
                store.observe(name, live, namespace=ns)
            elif kind == "observe_changed":
                store.observe(name, Container(**{**live.__dict__, "image": "obs", "labels": {"o": "1"}}),
                              namespace=ns)
            elif kind == "observe_replaced":  # another snapshotter: deleted and created again, in one append
                store.observe(name, Container(**{**live.__dict__, "snapshotter": "other"}), namespace=ns)
            else:
                store.observe_many([(name, Container(**{**live.__dict__, "image": "o1"}), None),
                                    (name, Container(**{**live.__dict__, "image": "o2", "labels": {}}), None)],
                                   namespace=ns)
    except (ctrledger.NotFound, ctrledger.AlreadyExists, ctrledger.FailedPrecondition, ctrledger.InvalidArgument):
        pass


def expected_from_log(store: ctrledger.Store) -> dict[tuple[str, str], Container]:
    out = {}
    for ns in NAMESPACES:
        for name in NAMES:
            agg = store._log.load(f"{ns}/{name}")
            if agg is not None and not agg.deleted:
                out[ns, name] = agg.to_container()
    return out


def reads(store: ctrledger.Store) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ns in NAMESPACES:
        for f in ("", "labels.env==a", "labels.x", "image==obs", "status.state==RUNNING"):
            try:
                out[f"list {ns} {f}"] = store.list(f, namespace=ns)
            except ctrledger.InvalidArgument:
                pass
        out[f"scan {ns}"] = list(store.scan(namespace=ns))
        for name in NAMES:
            try:
                out[f"get {ns} {name}"] = store.get(name, namespace=ns)
            except ctrledger.NotFound:
                out[f"get {ns} {name}"] = None
    return out


@pytest.mark.parametrize("seed", range(4))
def test_the_record_agrees_with_its_columns_after_every_kind_of_write(
        target: str, tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    with ctrledger.open(target, clock=StepClock(), follow=False) as store:
        for step in range(120):
            one_op(store, rnd)
            if step % 10 == 0:
                check_records(rm_path(store))
        check_records(rm_path(store))
        want = reads(store)
        for (ns, name), c in expected_from_log(store).items():
            got = store.get(name, namespace=ns)
            assert (got.labels, got.image, got.spec, got.extensions, got.version, got.status, got.snapshot_key) == (
                c.labels, c.image, c.spec, c.extensions, c.version, c.status, c.snapshot_key)
        digest = store.digest()
        rebuild(store)  # in bulk
        check_records(rm_path(store))
        assert store.digest() == digest
        assert reads(store) == want
        assert store.verify_projections().ok
    # history off for a while, then on: the history views catch up behind the current one
    with ctrledger.open(target, clock=StepClock(), follow=False, history=False) as store:
        for _ in range(60):
            one_op(store, rnd)
        check_records(rm_path(store))
    with ctrledger.open(target, clock=StepClock(), follow=False) as store:
        for _ in range(20):
            one_op(store, rnd)
        check_records(rm_path(store))
        want = reads(store)
        digest = store.digest()
        rebuild(store)
        assert store.digest() == digest
        assert reads(store) == want
        assert store.verify_projections().ok


@pytest.mark.parametrize("seed", range(2))
def test_a_lost_read_model_caught_up_in_bulk_has_the_records_the_views_write(
        target: str, tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from ctrledger.projections import bulk

    monkeypatch.setattr(bulk, "CATCH_UP_MIN", 1)
    rnd = random.Random(100 + seed)
    with ctrledger.open(target, clock=StepClock(), follow=False, history=False) as store:
        for _ in range(150):
            one_op(store, rnd)
        want = reads(store)
        path = rm_path(store)
    conn = sqlite3.connect(path, isolation_level=None)
    inline = conn.execute("SELECT namespace, id, record FROM containers ORDER BY 1, 2").fetchall()
    for table in ("containers", "label_spans", "namespaces"):
        conn.execute(f"DELETE FROM {table}")
    conn.execute("DELETE FROM ctrledger_tracking WHERE view='current'")
    conn.close()
    with ctrledger.open(target, clock=StepClock(), follow=False) as store:  # current in bulk; history too
        assert sqlite3.connect(path).execute(
            "SELECT namespace, id, record FROM containers ORDER BY 1, 2").fetchall() == inline
        check_records(path)
        assert reads(store) == want
        assert store.verify_projections().ok


def test_a_schema_5_file_written_with_history_off_migrates_and_catches_up(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    rnd = random.Random(7)
    with ctrledger.open(path, clock=StepClock()) as store:
        for _ in range(40):
            one_op(store, rnd)
    with ctrledger.open(path, clock=StepClock(), history=False) as store:
        for _ in range(60):
            one_op(store, rnd)
        want = reads(store)
    conn = sqlite3.connect(path, isolation_level=None)
    records = conn.execute("SELECT namespace, id, record FROM containers ORDER BY 1, 2").fetchall()
    conn.execute("ALTER TABLE containers DROP COLUMN record")
    conn.execute("UPDATE ctrledger_meta SET value='5' WHERE key='read_model_schema'")
    conn.close()
    with ctrledger.open(path, clock=StepClock()) as store:
        assert sqlite3.connect(path).execute(
            "SELECT namespace, id, record FROM containers ORDER BY 1, 2").fetchall() == records
        check_records(path)
        assert reads(store) == want
        for _ in range(30):
            one_op(store, rnd)
        check_records(path)
        assert store.verify_projections().ok


# -- the cold load: the last SNAPSHOT_EVERY events first ----------------------------------------------


def _events(store: ctrledger.Store, stream: str) -> list[Any]:
    return store._log.events_of(stream)


@pytest.mark.parametrize("n", [1, 2, SNAPSHOT_EVERY - 1, SNAPSHOT_EVERY, SNAPSHOT_EVERY + 1,
                               2 * SNAPSHOT_EVERY - 1, 2 * SNAPSHOT_EVERY, 2 * SNAPSHOT_EVERY + 1])
@pytest.mark.parametrize("recreated", [False, True], ids=["one-incarnation", "recreated"])
def test_a_cold_load_of_a_stream_of_n_events_is_its_projection(
        target: str, n: int, recreated: bool) -> None:
    with ctrledger.open(target, clock=StepClock(), follow=False) as store:
        store.create(make("x", labels={"i": "0"}))
        written = 1
        if recreated:
            store.delete("x")
            store.create(make("x", image="again"))
            written = 3
        while written < n:
            kind = written % 3
            if kind == 0:
                store.update(Container(id="x", labels={"i": str(written)}), "labels.i")
            elif kind == 1:
                store.update(Container(id="x", image=f"i{written}"), "image")
            else:
                store.update_resources("x", Resources(cpu_quota=written))
            written += 1
        want = store.get("x")
    with ctrledger.open(target, clock=StepClock(), follow=False) as store:
        events = _events(store, "default/x")
        assert len(events) == max(n, 3 if recreated else 1)
        projected = _project(None, events)
        loaded = store._log.load("default/x")
        assert isinstance(loaded, ContainerAggregate)
        assert loaded.version == projected.version == len(events)
        assert loaded.to_container() == projected.to_container()
        assert loaded.__dict__.keys() == projected.__dict__.keys()
        for k in projected.__dict__:
            if k not in ("_pending_events",):
                assert getattr(loaded, k) == getattr(projected, k), k
        assert store.get("x") == want
        assert store._log.load("default/none") is None
        store.update(Container(id="x", image="after"), "image")  # a write from the cold load
        assert store.get("x").version == len(events) + 1


def test_a_deleted_stream_loads_as_deleted(target: str) -> None:
    with ctrledger.open(target, clock=StepClock(), follow=False) as store:
        store.create(make("x"))
        store.delete("x")
    with ctrledger.open(target, clock=StepClock(), follow=False) as store:
        agg = store._log.load("default/x")
        assert agg is not None and agg.deleted
        with pytest.raises(ctrledger.NotFound):
            store.update(Container(id="x", image="i"), "image")
        store.create(make("x", image="new"))
        assert store.get("x").image == "new"


# -- a damaged record, named ------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["x'c1ff'", "NULL", "x'93a178a13102'", "'text'"],
                         ids=["undecodable", "null", "too-short", "text"])
def test_a_damaged_record_is_data_loss_naming_its_container_in_every_read(db_path: Path, damage: str) -> None:
    with ctrledger.open(db_path) as store:
        for cid in ("a", "x", "y"):
            store.create(make(cid))
    conn = sqlite3.connect(db_path)
    conn.execute(f"UPDATE containers SET record={damage} WHERE id='x'")
    conn.commit()
    conn.close()
    with ctrledger.open(db_path) as store:
        reads = {
            "get": lambda: store.get("x"),
            "list": lambda: store.list(),
            "scan": lambda: list(store.scan()),
            "scan in pages": lambda: list(store.read_model.current.scan("default", parse_filters([]), batch=1)),
            "observe (get_many)": lambda: store.observe("x", make("x", image="other")),
        }
        for what, read in reads.items():
            with pytest.raises(ctrledger.DataLoss, match="row of container \"x\" in namespace \"default\" is damaged"):
                read()
                pytest.fail(f"{what} read a damaged record")
        assert store.get("y").id == "y"
        store.rebuild()
        assert [c.id for c in store.list()] == ["a", "x", "y"]


def test_a_status_back_to_the_defaults_packs_no_status_values_on_both_paths(target: str) -> None:
    with ctrledger.open(target, clock=StepClock(), follow=False) as store:
        store.create(make("x"))
        store.update_resources("x", Resources(cpu_quota=1000, unified={"a": "b"}))
        store.update_resources("x", Resources())  # the status equals a container never started again
        assert store.get("x").version == 3
        path = rm_path(store)
        record = sqlite3.connect(path).execute("SELECT record FROM containers").fetchone()[0]
        assert len(unpackb(record)) == len(RECORD_FIELDS) - 10  # no status values
        check_records(path)
        want, digest = store.get("x"), store.digest()
        assert want.status == ctrledger.Status(created_at=want.created_at)
        rebuild(store)
        assert sqlite3.connect(path).execute("SELECT record FROM containers").fetchone()[0] == record
        assert store.get("x") == want and store.digest() == digest
        store.started("x", pid=5)
        check_records(path)
        assert store.get("x").status.pid == 5 and store.get("x").status.runs == 1


def test_a_rebuild_with_history_off_gives_the_records_the_views_wrote(target: str) -> None:
    rnd = random.Random(11)
    with ctrledger.open(target, clock=StepClock(), follow=False, history=False) as store:
        for _ in range(150):
            one_op(store, rnd)
        path = rm_path(store)
        check_records(path)
        want, digest = reads(store), store.digest()
        inline = sqlite3.connect(path).execute("SELECT namespace, id, record FROM containers ORDER BY 1, 2").fetchall()
        rebuild(store)
        assert sqlite3.connect(path).execute(
            "SELECT namespace, id, record FROM containers ORDER BY 1, 2").fetchall() == inline
        assert reads(store) == want and store.digest() == digest


def test_a_schema_5_file_with_a_damaged_text_column_migrates_and_the_row_is_data_loss(tmp_path: Path) -> None:
    # Text that is not UTF-8 (edited by hand) in a schema-5 row: the migration cannot pack it
    # into a record; the store still opens (the other rows read), the row is DataLoss naming it,
    # and a rebuild repairs it (before, the open itself failed and so did `ctrledger rebuild`).
    path = tmp_path / "l.db"
    with ctrledger.open(path) as store:
        store.create(make("x"))
        store.create(make("y"))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("ALTER TABLE containers DROP COLUMN record")
    conn.execute("UPDATE ctrledger_meta SET value='5' WHERE key='read_model_schema'")
    conn.execute("UPDATE containers SET image=CAST(x'ff' AS TEXT) WHERE id='x'")
    conn.close()
    with ctrledger.open(path) as store:
        assert store.get("y").id == "y"
        with pytest.raises(ctrledger.DataLoss, match="row of container \"x\" in namespace \"default\" is damaged"):
            store.get("x")
        store.rebuild()
        assert [(c.id, c.image) for c in store.list()] == [("x", make("x").image), ("y", make("y").image)]
        check_records(path)


@pytest.mark.parametrize("damage", ["x'c1ff'", "NULL", "x'93a178a13102'"], ids=["undecodable", "null", "too-short"])
def test_a_write_to_a_container_whose_record_is_damaged_is_data_loss_naming_it(db_path: Path, damage: str) -> None:
    # As a read of it: not "storage error: " with the decoder's message (or none), which says
    # retry when only a rebuild helps; nothing is written.
    store = writes_refused_after(
        db_path, f"UPDATE containers SET record={damage}", ctrledger.DataLoss,
        lambda cid: f"row of container \"{cid}\" in namespace \"default\" is damaged.*rebuild",
        kinds="xyz")  # a delete reads the labels column only: it needs no record
    store.close()
    check_records(db_path)


@pytest.mark.parametrize("history", [True, False], ids=["history", "history-off"])
def test_imports_and_replays_give_the_records_the_views_write(tmp_path: Path, history: bool) -> None:
    rnd = random.Random(21)
    with ctrledger.open(tmp_path / "src.db", clock=StepClock(), follow=False) as src:
        for _ in range(120):
            one_op(src, rnd)
        first = src.position
        mid = reads(src)
        src.export(tmp_path / "a.ctrlarchive")
        for _ in range(120):
            one_op(src, rnd)
        src.export(tmp_path / "b.ctrlarchive", since=first)
        src.export(tmp_path / "ns0.ctrlarchive", namespaces=["ns0"])
        want = reads(src)
        replayed = src.replay_to(tmp_path / "replayed.db", as_of=ctrledger.Position(first))
    with ctrledger.open(replayed, follow=False, history=history) as store:
        check_records(replayed)
        assert reads(store) == mid
    into = tmp_path / "into.db"
    with ctrledger.open(into, follow=False, history=history) as store:
        ctrledger.import_(tmp_path / "a.ctrlarchive", store)
        check_records(into)
        assert reads(store) == mid
        ctrledger.import_(tmp_path / "b.ctrlarchive", store)  # continues the streams the first import left
        check_records(into)
        assert reads(store) == want
    with ctrledger.open(tmp_path / "ns0.db", follow=False, history=history) as store:
        ctrledger.import_(tmp_path / "ns0.ctrlarchive", store)
        check_records(tmp_path / "ns0.db")
        assert {k: v for k, v in reads(store).items() if " ns0" in k} == {k: v for k, v in want.items() if " ns0" in k}
    with ctrledger.open(into, follow=False) as store:  # history (back) on: the history views catch up
        assert store.verify_projections().ok


def test_stored_times_read_back_exactly_on_both_paths() -> None:
    """``from_micros`` (and the record reader's inlined copy) takes a float's fast path below
    2**32 seconds: it must give the exact datetime the long way gives, at every microsecond
    that could round wrong, at the edges of the fast path, and outside it (Go's zero time,
    before the epoch, the year 9999)."""
    from datetime import UTC, datetime, timedelta

    from ctrledger.persistence.transcoder import micros
    from ctrledger.projections.current import _FLOAT_EXACT, from_micros

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    rng = random.Random(7)
    limit = _FLOAT_EXACT
    values = [0, 1, 999_999, 1_000_000, limit - 1, limit, limit + 1, -1, -1_000_001,
              micros(datetime(1, 1, 1, tzinfo=UTC)), micros(datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC))]
    values += [rng.randrange(0, limit) for _ in range(50_000)]
    values += [rng.randrange(limit - 10**12, limit) for _ in range(20_000)]  # where a float's error is largest
    values += [s * 1_000_000 + us for s in (rng.randrange(0, 2**32) for _ in range(2_000))
               for us in (0, 1, 499_999, 500_000, 500_001, 999_999)]
    for us in values:
        want = epoch + timedelta(0, 0, us)
        got = from_micros(us)
        assert (got, got.tzinfo, got.utcoffset()) == (want, UTC, timedelta(0)), us
        assert micros(got) == us
    record = Container(id="c", image="i", runtime=Runtime("r"), spec=Payload("t", b"x"))
    for us in values[:2_000:7]:
        row = pack_record(["c", 1, "t", "i", "r", None, "", "", "", {}, {}, us, us + 1])
        read = _row_to_container((b"x", row))
        assert (read.created_at, read.updated_at) == (from_micros(us), from_micros(us + 1)), us
        assert read.status.created_at == read.created_at
        assert (read.id, read.image) == (record.id, record.image)
