"""Trust under faults and hostile input (issue 10): tamper holes, damaged data, bad input.

Each test reproduces an attack or a fault from the campaign that found it, on a real
SQLite file edited with plain SQL.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import ctrledger
from ctrledger import Container, FailedPrecondition

from .conftest import StepClock, make


def _populated(path: Path, n: int = 6) -> None:
    with ctrledger.open(path, clock=StepClock()) as store:
        for i in range(n):
            store.create(make(f"c{i}", labels={"i": str(i)}))


def _forge_insert(path: Path) -> int:
    """An attacker appends a Created event with plain SQL; returns its position."""
    conn = sqlite3.connect(path)
    topic, state = conn.execute(
        "SELECT topic, state FROM stored_events WHERE originator_id='default/c0' AND originator_version=1"
    ).fetchone()
    conn.execute("INSERT INTO stored_events(originator_id, originator_version, topic, state) VALUES (?,?,?,?)",
                 ("default/forged", 1, topic, state))
    position = int(conn.execute("SELECT MAX(rowid) FROM stored_events").fetchone()[0])
    conn.commit()
    conn.close()
    return position


def test_an_event_inserted_with_sql_stays_a_finding_after_reopening(db_path: Path) -> None:
    _populated(db_path)
    position = _forge_insert(db_path)
    for _ in range(2):  # opening (twice) must not launder it
        with ctrledger.open(db_path) as store:
            report = ctrledger.verify(store)
            assert not report.ok
            assert report.first_problem is not None and report.first_problem.position == position
            assert report.first_problem.kind == "event inserted"
            with pytest.raises(FailedPrecondition, match=f"position {position}"):
                store.create(make("later"))
            with pytest.raises(FailedPrecondition, match=f"position {position}"):
                store.update(Container(id="c1", image="x:2"), "image")
            # the forged event never reaches the read models
            assert [c.id for c in store.list()] == [f"c{i}" for i in range(6)]
    report = ctrledger.verify(db_path)
    assert not report.ok and report.first_problem is not None and report.first_problem.position == position


def test_a_catch_up_in_bulk_leaves_out_an_event_inserted_with_sql(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ctrledger.projections import bulk

    _populated(db_path)
    position = _forge_insert(db_path)
    conn = sqlite3.connect(db_path)  # every view lost: they catch up on open, in bulk (the threshold lowered)
    conn.executescript("DELETE FROM containers; DELETE FROM label_spans; DELETE FROM namespaces; "
                       "DELETE FROM versions; DELETE FROM audit; DELETE FROM ctrledger_tracking;")
    conn.close()
    monkeypatch.setattr(bulk, "CATCH_UP_MIN", 2)
    with ctrledger.open(db_path) as store:
        assert [c.id for c in store.list()] == [f"c{i}" for i in range(6)]  # not "forged"
        assert [a.position for a in store.audit()] == list(range(1, position))
        assert store.position == position - 1


def test_an_edit_with_its_hashes_deleted_stays_a_finding_after_reopening(db_path: Path) -> None:
    _populated(db_path)
    conn = sqlite3.connect(db_path)
    state = bytearray(conn.execute("SELECT state FROM stored_events WHERE rowid=4").fetchone()[0])
    state[-3] ^= 0x01
    conn.execute("UPDATE stored_events SET state=? WHERE rowid=4", (bytes(state),))
    conn.execute("DELETE FROM event_hashes WHERE position >= 4")
    conn.execute("DELETE FROM merkle_nodes WHERE level=0 AND idx >= 3")
    conn.execute("DELETE FROM merkle_nodes WHERE level>0")
    conn.commit()
    conn.close()
    for _ in range(2):
        with ctrledger.open(db_path) as store:
            report = ctrledger.verify(store)
            assert not report.ok and report.first_problem is not None
            assert report.first_problem.position == 4
            with pytest.raises(FailedPrecondition, match="position 4"):
                store.create(make("later"))


def test_a_log_written_without_hashes_is_hashed_only_by_migrate(db_path: Path) -> None:
    _populated(db_path, 5)
    conn = sqlite3.connect(db_path)
    conn.executescript("DELETE FROM event_hashes; DELETE FROM merkle_nodes;")
    conn.close()
    with ctrledger.open(db_path) as store:
        assert not ctrledger.verify(store).ok  # opening hashed nothing
        with pytest.raises(FailedPrecondition, match="ctrledger migrate"):
            store.create(make("x"))
    result = ctrledger.migrate(db_path)
    assert result["hashed"] == 5
    assert ctrledger.verify(db_path).ok
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT first_position, last_position FROM integrity_upgrades").fetchall() == [(1, 5)]
    conn.close()
    assert ctrledger.migrate(db_path)["hashed"] == 0  # once


def test_migrate_refuses_to_launder_unhashed_events_in_a_hashed_log(db_path: Path) -> None:
    _populated(db_path)
    position = _forge_insert(db_path)
    with pytest.raises(FailedPrecondition, match=f"position {position}"):
        ctrledger.migrate(db_path)
    assert not ctrledger.verify(db_path).ok
    # an operator who has looked and accepts them says so, and it is recorded
    assert ctrledger.migrate(db_path, accept_unhashed=True)["hashed"] == 1
    assert ctrledger.verify(db_path).ok
    conn = sqlite3.connect(db_path)
    notes = [r[0] for r in conn.execute("SELECT note FROM integrity_upgrades")]
    conn.close()
    assert any("accepted" in n for n in notes)


def test_deleting_the_last_event_names_the_real_cause_on_the_next_write(db_path: Path) -> None:
    _populated(db_path)
    conn = sqlite3.connect(db_path)
    conn.execute("DELETE FROM stored_events WHERE rowid=(SELECT MAX(rowid) FROM stored_events)")
    conn.commit()
    conn.close()
    with ctrledger.open(db_path) as store, pytest.raises(FailedPrecondition, match="position 6"):
        store.create(make("later"))


def test_read_model_edits_are_reported_by_verify(db_path: Path) -> None:
    _populated(db_path)
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE label_spans SET value='evil' WHERE key='i'")
    conn.commit()
    conn.close()
    with ctrledger.open(db_path) as store:
        report = ctrledger.verify(store)
        assert report.read_models_ok is False
        assert not report.ok
        assert "read models" in str(report)
        assert any(p.kind == "read models differ" and "label_spans" in p.detail for p in report.problems)
        assert ctrledger.verify(db_path).read_models_ok is None  # a path: the log only, and it is intact
        assert ctrledger.verify(db_path).ok
        store.rebuild()
        repaired = ctrledger.verify(store)
        assert repaired.ok and repaired.read_models_ok is True
        assert str(repaired).endswith("; the read models match the log")


def _archive(store: ctrledger.Store, path: Path) -> Path:
    store.export(path)
    return path


def test_import_refuses_an_archive_with_an_event_removed_and_checksums_recomputed(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src.db"
    _populated(src, 8)
    with ctrledger.open(src) as store:
        good = _archive(store, tmp_path / "good.ctrlarchive")
    bad = tmp_path / "bad.ctrlarchive"
    _drop_event(good, bad, index=3)
    assert not ctrledger.verify(bad).ok
    target = tmp_path / "target.db"
    with ctrledger.open(target) as store:
        with pytest.raises(ctrledger.InvalidArgument, match="fails verification: position"):
            ctrledger.import_(bad, store)
        assert store.list() == []
        assert store.position == 0
        assert ctrledger.verify(store).ok
        ctrledger.import_(good, store)  # the intact archive still goes in
        assert len(store.list()) == 8


def _drop_event(good: Path, bad: Path, index: int) -> None:
    """An attacker removes one event and rewrites every frame with valid checksums and counts."""
    from ctrledger.replay.archive import ArchiveReader, ArchiveWriter

    with ArchiveReader(good) as reader, bad.open("wb") as out:
        header = {k: v for k, v in reader.header.items() if k not in ("format", "format_version", "columns")}
        header["events"] = int(header["events"]) - 1
        writer = ArchiveWriter(out, header)
        seen = 0
        for chunk in reader.chunks():
            rows = [r for i, r in enumerate(chunk.rows, start=seen) if i != index]
            seen += len(chunk.rows)
            writer.write_chunk(rows, chunk.chain)
        assert reader.trailer is not None
        writer.finish(reader.trailer.get("chain"))


# -- damaged data ------------------------------------------------------------------------------


def _confuse_types(path: Path, position: int) -> None:
    """Damage that still decodes: the event's ``set`` field becomes a list, as a flipped
    type marker would make it (the bytes are valid msgpack, the shape is wrong)."""
    from ctrledger.persistence.transcoder import packb, unpackb

    conn = sqlite3.connect(path)
    state = conn.execute("SELECT state FROM stored_events WHERE rowid=?", (position,)).fetchone()[0]
    body = unpackb(state)
    body["set"] = list(body["set"])
    conn.execute("UPDATE stored_events SET state=? WHERE rowid=?", (packb(body), position))
    conn.commit()
    conn.close()


@pytest.mark.parametrize("damage", ["type-marker", "truncated"])
def test_one_damaged_event_is_data_loss_naming_it_everywhere(db_path: Path, tmp_path: Path, damage: str) -> None:
    with ctrledger.open(db_path, clock=StepClock()) as store:
        store.create(make("x", labels={"a": "1"}))
        store.create(make("y"))
        store.update(Container(id="x", labels={"a": "2"}), "labels.a")  # position 3
    if damage == "type-marker":
        _confuse_types(db_path, 3)
    else:
        conn = sqlite3.connect(db_path)
        conn.execute("UPDATE stored_events SET state=substr(state, 1, 9) WHERE rowid=3")
        conn.commit()
        conn.close()
    with ctrledger.open(db_path) as store:
        assert store.get("y").id == "y"  # other containers keep working
        assert store.get("x").labels == {"a": "2"}  # the read model was built before the damage
        with pytest.raises(ctrledger.DataLoss, match="position 3"):
            list(store.history("x"))
        with pytest.raises(ctrledger.DataLoss, match="'default/x' at version 2"):
            store.update(Container(id="x", image="i:2"), "image")
        with pytest.raises(ctrledger.DataLoss, match="'default/x' at version 2"):
            store.delete("x")
        with pytest.raises(ctrledger.DataLoss, match="position 3"):
            store.rebuild()
        with pytest.raises(ctrledger.DataLoss, match="position 3"):
            store.verify_projections()
        with pytest.raises(ctrledger.DataLoss, match="position 3"):
            store.replay_to(tmp_path / "then.db", as_of=ctrledger.Position(3))
        store.update(Container(id="y", image="i:2"), "image")  # writes to other containers keep working
        report = ctrledger.verify(store)
        assert report.first_problem is not None and report.first_problem.position == 3
        store.export(tmp_path / "a.ctrlarchive")
    with ctrledger.open(tmp_path / "other.db") as other:
        with pytest.raises(ctrledger.InvalidArgument, match="fails verification: position 1: .* positions 1-4"):
            ctrledger.import_(tmp_path / "a.ctrlarchive", other)  # the chain of that chunk does not hold
        with pytest.raises(ctrledger.DataLoss, match="position 3"):
            ctrledger.import_(tmp_path / "a.ctrlarchive", other, verify=False)
        assert other.list() == []


# -- bad input ------------------------------------------------------------------------------------

S = "\udc80"  # a lone surrogate: a str Python accepts, but not Unicode text any store can hold
BAD_INPUT = [
    pytest.param(lambda s: s.create(make(f"x{S}")), "container.ID", id="surrogate-in-id"),
    pytest.param(lambda s: s.create(make("x", image=f"i{S}")), "container.Image", id="surrogate-in-image"),
    pytest.param(lambda s: s.create(make("x", labels={"k": S})), "Labels", id="surrogate-in-label"),
    pytest.param(lambda s: s.create(make("x"), actor=S), "actor", id="surrogate-in-actor"),
    pytest.param(lambda s: s.get(S), "id", id="surrogate-get"),
    pytest.param(lambda s: s.update(Container(id=S, image="i")), "container.ID", id="surrogate-update"),
    pytest.param(lambda s: s.update(Container(id="c0", image="i"), f"image{S}"), "field path",
                 id="surrogate-fieldpath"),
    pytest.param(lambda s: s.delete(S), "id", id="surrogate-delete"),
    pytest.param(lambda s: list(s.history(S)), "id", id="surrogate-history"),
    pytest.param(lambda s: s.list(f"labels.k=={S}"), "filter", id="surrogate-filter"),
    pytest.param(lambda s: list(s.audit(reason=S)), "reason", id="surrogate-audit"),
    pytest.param(lambda s: s.list(*["id==x"] * 1000), "too many", id="1000-filters"),
    pytest.param(lambda s: s.list(",".join(f"labels.k{i}==v" for i in range(1000))), "too many selectors",
                 id="1000-selectors"),
    pytest.param(lambda s: list(s.audit(kinds=5)), "kinds", id="audit-kinds-int"),
    pytest.param(lambda s: list(s.audit(actor=[1])), "actor", id="audit-actor-list-of-int"),
    pytest.param(lambda s: list(s.audit(id=5)), "id", id="audit-id-int"),
    pytest.param(lambda s: s.get("c0", as_of=datetime.max.replace(tzinfo=UTC)), "as_of", id="datetime-max"),
    pytest.param(lambda s: s.get("c0", as_of=datetime.min.replace(tzinfo=timezone(timedelta(hours=5)))),
                 "as_of", id="datetime-min-offset"),
    pytest.param(lambda s: s.get("c0", as_of="0001-01-01T00:00:00+05:00"), "as_of", id="iso-min-offset"),
    pytest.param(lambda s: s.prove(10**20), "position", id="prove-huge"),
    pytest.param(lambda s: s.prove(1, checkpoint="cp"), "Checkpoint", id="prove-checkpoint-str"),
    pytest.param(lambda s: ctrledger.verify(s, "cp"), "Checkpoint", id="verify-checkpoint-str"),
    pytest.param(lambda s: s.checkpoint(sign_with="key"), "sign_with", id="sign-with-str"),
    pytest.param(lambda s: s.export("/dev/null", namespaces=5), "namespaces", id="export-namespaces-int"),
    pytest.param(lambda s: s.create(make("x"), request_id=5), "request_id", id="request-id-int"),
]


@pytest.mark.parametrize(("call", "named"), BAD_INPUT)
def test_bad_input_is_invalid_argument_naming_it_and_writes_nothing(db_path: Path, call: Any, named: str) -> None:
    with ctrledger.open(db_path, clock=StepClock()) as store:
        store.create(make("c0"))
        before = store.position
        with pytest.raises(ctrledger.InvalidArgument, match=re.escape(named)):
            call(store)
        assert store.position == before


def test_obvious_meanings_work(db_path: Path) -> None:
    with ctrledger.open(db_path, clock=StepClock()) as store:
        created = store.create(Container(id="x", runtime="runc", spec=ctrledger.Payload("t", b"")))  # type: ignore[arg-type]
        assert created.runtime == ctrledger.Runtime("runc")
        store.update(Container(id="x", image="i:2"), "image")
        assert [r.kind for r in store.audit(kinds="Created")] == ["Created"]  # one kind, not five letters
        assert [r.kind for r in store.audit(actor=store.get("x") and _actor(store))] != []
        assert [c.id for c in store.changes(since=ctrledger.Position(0), filters="id==x")] == ["x"]


def _actor(store: ctrledger.Store) -> str:
    return next(iter(store.audit())).actor


# -- resources ------------------------------------------------------------------------------------


def _decodes(store: ctrledger.Store, work: Any) -> int:
    """How many stored events (and snapshots) ``work`` decodes."""
    from ctrledger.persistence.mapper import LedgerMapper

    count = 0
    original = LedgerMapper.to_domain_event

    def counting(self: Any, stored: Any) -> Any:
        nonlocal count
        count += 1
        return original(self, stored)

    LedgerMapper.to_domain_event = counting  # type: ignore[method-assign]
    try:
        work()
    finally:
        LedgerMapper.to_domain_event = original  # type: ignore[method-assign]
    return count


def test_a_cold_write_does_not_replay_the_containers_history(db_path: Path) -> None:
    with ctrledger.open(db_path, history=False, synchronous="NORMAL") as store:
        store.create(make("busy"))
        for i in range(1050):
            store.update(Container(id="busy", labels={"n": str(i)}), "labels.n")
    with ctrledger.open(db_path, history=False) as store:  # a new handle: its cache is empty
        cold = _decodes(store, lambda: store.update(Container(id="busy", image="i:2"), "image"))
        refused = _decodes(store, lambda: pytest.raises(
            ctrledger.Conflict, store.update, Container(id="busy", image="i:3"), "image", expected_version=1))
        assert store.get("busy").version == 1052
    assert cold <= 100 and refused <= 100, (cold, refused)  # not 1,051


@pytest.mark.parametrize("history", [True, False])
def test_a_half_read_scan_does_not_hold_the_wal(db_path: Path, history: bool) -> None:
    with ctrledger.open(db_path, synchronous="NORMAL", history=history) as store:
        for i in range(2100):
            store.create(make(f"c{i:04}"))
        scan = store.scan()
        first = [next(scan) for _ in range(1100)]  # more than one page (of 1,000), then left half-read
        for i in range(100):
            store.update(Container(id=f"c{i:04}", labels={"n": "1"}), "labels.n")
        store.delete("c1150")
        store.create(make("c1150x"))
        conn = sqlite3.connect(db_path)
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        conn.close()
        assert busy == 0  # no reader holds the WAL back
        assert Path(f"{db_path}-wal").stat().st_size == 0
        rest = list(scan)
    ids = [c.id for c in first + rest]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    if history:  # one consistent view: the store as it was when the scan started
        assert ids == [f"c{i:04}" for i in range(2100)]
        assert all(c.labels == {} for c in first + rest)
