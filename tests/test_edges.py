"""Edge cases found in review: each pins a behaviour that was wrong once."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

import ctrledger
from ctrledger import Container

from .conftest import make


def test_a_time_the_store_handed_out_is_never_in_the_future(db_path: Path) -> None:
    """A stalled clock: the store still moves each stream's time forward by 1 µs per write."""
    frozen = datetime(2026, 1, 1, tzinfo=UTC)
    with ctrledger.open(db_path, clock=lambda: frozen) as store:
        store.create(make("x"))
        updated = store.update(Container(id="x", image="i2"), "image")
        assert updated.updated_at is not None and updated.updated_at > frozen
        assert store.get("x", as_of=updated.updated_at).image == "i2"
        assert store.diff("x", since=frozen, until=updated.updated_at).status == "changed"
        with pytest.raises(ctrledger.InvalidArgument, match="in the future"):
            store.get("x", as_of="2027-01-01T00:00:00Z")


@pytest.mark.parametrize("bad", ["1", True, -1, 1.0], ids=["str", "bool", "negative", "float"])
def test_expected_version_must_be_a_non_negative_integer(store: ctrledger.Store, bad: object) -> None:
    store.create(make("x"))
    with pytest.raises(ctrledger.InvalidArgument, match="expected_version must be a non-negative integer"):
        store.update(Container(id="x", image="i2"), "image", expected_version=bad)  # type: ignore[arg-type]
    with pytest.raises(ctrledger.InvalidArgument, match="expected_version must be a non-negative integer"):
        store.delete("x", expected_version=bad)  # type: ignore[arg-type]
    assert store.get("x").version == 1


def test_an_existing_id_with_an_empty_label_key_is_already_exists(store: ctrledger.Store) -> None:
    """D2 is met where containerd meets it: when writing, after the existence check."""
    store.create(make("x"))
    with pytest.raises(ctrledger.AlreadyExists):
        store.create(make("x", labels={"": "v"}))
    with pytest.raises(ctrledger.InvalidArgument, match="label key must not be empty"):
        store.create(make("y", labels={"": "v"}))
    assert [c.id for c in store.list()] == ["x"]


def test_a_closed_store_says_so(target: str) -> None:
    store = ctrledger.open(target, follow=False)
    store.create(make("x"))
    store.close()
    for call in (
        lambda: store.get("x"),
        lambda: store.list(),
        lambda: store.create(make("y")),
        lambda: store.update(Container(id="x", image="i"), "image"),
        lambda: store.delete("x"),
        lambda: store.checkpoint(),
    ):
        with pytest.raises(ctrledger.Unavailable, match="the store is closed"):
            call()


def test_a_version_of_a_name_that_never_existed_is_not_found(store: ctrledger.Store) -> None:
    from ctrledger import Version

    with pytest.raises(ctrledger.NotFound, match='container "ghost" in namespace "default": not found'):
        store.get("ghost", as_of=Version(1))


def test_proofs_refuse_checkpoints_of_another_log(store: ctrledger.Store, tmp_path: Path) -> None:
    store.create(make("x"))
    with ctrledger.open(tmp_path / "other.db") as other:
        other.create(make("x"))
        foreign = other.checkpoint()
    with pytest.raises(ctrledger.InvalidArgument, match="another log"):
        store.prove(1, checkpoint=foreign)
    with pytest.raises(ctrledger.InvalidArgument, match="another log"):
        store.prove_consistency(foreign)


def test_scan_streams_what_list_returns(store: ctrledger.Store) -> None:
    from ctrledger import Position

    for i in range(25):
        store.create(make(f"c{i:02d}", labels={"even": str(i % 2 == 0)}))
    store.delete("c03")
    for filters in [(), ("labels.even==True",), ("id~=^c1", "id==c20")]:
        assert list(store.scan(*filters)) == store.list(*filters)
        assert list(store.scan(*filters, as_of=Position(10))) == store.list(*filters, as_of=Position(10))
    with pytest.raises(ctrledger.InvalidArgument):
        store.scan("id==")


def test_scan_after_an_id_resumes_where_a_page_ended(store: ctrledger.Store) -> None:
    from ctrledger import Position

    for i in range(25):
        store.create(make(f"c{i:02d}", labels={"even": str(i % 2 == 0)}))
    store.delete("c03")
    then = Position(store.position - 1)  # before the delete: c03 still there
    for filters, as_of in [((), None), (("labels.even==True",), None), ((), then), (("labels.even==False",), then)]:
        everything = store.list(*filters, as_of=as_of)
        pages, after = [], ""
        while True:  # keyset paging, 4 to a page: each page starts after the last ID of the one before
            page = list(itertools.islice(store.scan(*filters, as_of=as_of, after=after), 4))
            if not page:
                break
            pages.append(page)
            after = page[-1].id
        assert [c for p in pages for c in p] == everything, (filters, as_of)
        assert len(pages) == -(-len(everything) // 4)
    assert [c.id for c in store.scan(after="c03")][:2] == ["c04", "c05"]  # a deleted ID still marks the place
    assert [c.id for c in store.scan(after="c02", as_of=then)][:1] == ["c03"]
    assert [c.id for c in store.scan(after="c0")][:1] == ["c00"]  # any string: a prefix sorts first
    assert list(store.scan(after="zzz")) == []
    with pytest.raises(ctrledger.InvalidArgument, match="after must be a string"):
        store.scan(after=3)  # type: ignore[arg-type]
    with pytest.raises(ctrledger.InvalidArgument, match="after: .* is not valid Unicode"):
        store.scan(after="x\ud800")


def test_replay_to_creates_missing_directories(db_path: Path, tmp_path: Path) -> None:
    from ctrledger import Position

    with ctrledger.open(db_path) as store:
        store.create(make("x"))
        out = store.replay_to(tmp_path / "new" / "dir" / "then.db", as_of=Position(1))
    with ctrledger.open(out) as then:
        assert [c.id for c in then.list()] == ["x"]


def test_a_damaged_event_is_a_clear_error_not_a_driver_error(db_path: Path) -> None:
    import sqlite3

    with ctrledger.open(db_path) as store:
        store.create(make("x"))
        store.update(Container(id="x", image="i2"), "image")
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE stored_events SET state = X'00' || state WHERE rowid = 2")  # now TEXT, not a blob
    conn.commit()
    conn.close()
    with ctrledger.open(db_path) as store:
        with pytest.raises(ctrledger.DataLoss, match="log position 2"):
            list(store.history("x"))
        with pytest.raises(ctrledger.DataLoss, match="log position 2"):
            store.rebuild()
        report = ctrledger.verify(store)
        assert report.first_problem is not None and report.first_problem.position == 2


def test_list_and_scan_refuse_a_version_alike(store: ctrledger.Store) -> None:
    from ctrledger import Version

    store.create(make("x"))
    for call in (lambda: store.list(as_of=Version(1)), lambda: store.scan(as_of=Version(1))):
        with pytest.raises(ctrledger.InvalidArgument, match="^list as_of takes a time or a Position"):
            call()


def test_the_digest_does_not_depend_on_who_wrote_without_history(tmp_path: Path) -> None:
    with ctrledger.open(tmp_path / "a.db") as store:
        store.create(make("x"))
        with ctrledger.open(tmp_path / "a.db", history=False) as plain:
            plain.create(make("y"))
        store.export(tmp_path / "a.ctrlarchive")
        with ctrledger.open(tmp_path / "b.db") as copy:
            ctrledger.import_(tmp_path / "a.ctrlarchive", into=copy)
            assert store.digest() == copy.digest()
        assert store.verify_projections().ok


def test_a_rebuild_never_resumes_from_another_logs_scratch_file(tmp_path: Path) -> None:
    import os

    path = tmp_path / "l.db"
    with ctrledger.open(path) as store:
        for i in range(30):
            store.create(make(f"c{i}", labels={"a": "old"}))
        calls = 0

        def stop(done: int, total: int) -> None:
            nonlocal calls
            calls += 1
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            store.rebuild(progress=stop)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.remove(f"{path}{suffix}")
    with ctrledger.open(path) as store:  # another log at the same path
        for i in range(30):
            store.create(make(f"c{i}", labels={"a": "new"}))
        store.rebuild()
        assert {c.labels["a"] for c in store.list()} == {"new"}
        assert store.verify_projections().ok


def test_a_hand_edited_text_value_changes_the_digest_and_is_named(db_path: Path) -> None:
    import sqlite3

    with ctrledger.open(db_path) as store:
        store.create(make("x"), reason="why")
        before = store.digest()
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE audit SET reason=CAST(x'ff' AS TEXT) WHERE position=1")
    conn.commit()
    conn.close()
    with ctrledger.open(db_path) as store:
        assert store.digest() != before
        result = store.verify_projections()
        assert not result.ok and "audit" in result.differences


def test_a_damaged_packed_record_is_data_loss_naming_the_container(db_path: Path) -> None:
    # A read decodes one packed blob per container: a blob edited outside ctrledger is DataLoss
    # naming the container (not the decoder's own error), the other containers stay readable,
    # and verify_projections names the table.
    import sqlite3

    with ctrledger.open(db_path) as store:
        store.create(make("x"))
        store.create(make("y"))
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE containers SET record=x'c1ff' WHERE id='x'")
    conn.commit()
    conn.close()
    with ctrledger.open(db_path) as store:
        for read in (lambda: store.get("x"), lambda: store.list(), lambda: list(store.scan())):
            with pytest.raises(ctrledger.DataLoss, match="row of container \"x\" in namespace \"default\" is damaged"):
                read()
        assert store.get("y").id == "y"
        result = store.verify_projections()
        assert not result.ok and "containers" in result.differences
        store.rebuild()
        assert [c.id for c in store.list()] == ["x", "y"]


def test_text_that_is_not_utf8_in_a_version_row_is_read_with_its_bytes_kept(db_path: Path) -> None:
    import sqlite3

    with ctrledger.open(db_path) as store:
        store.create(make("x"))
        at = ctrledger.Position(store.position)
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE versions SET image=CAST(x'ff' AS TEXT) WHERE id='x'")
    conn.commit()
    conn.close()
    with ctrledger.open(db_path) as store:
        assert store.get("x", as_of=at).image == "\udcff"
        assert [c.image for c in store.list(as_of=at)] == ["\udcff"]


def writes_refused_after(db_path: Path, damage: str, error: type[ctrledger.StoreError],
                         message: Callable[[str], str], kinds: str = "xyzw") -> ctrledger.Store:
    """Four containers, the read model then damaged by the SQL ``damage``: a write to each of
    ``kinds`` (x an image update, y a label update, z a start, w a delete) is refused with
    ``error`` matching ``message(id)``, nothing written; after a rebuild a write works again.
    Returns the store, still open (for the caller's own checks)."""
    import sqlite3

    with ctrledger.open(db_path) as store:
        for cid in ("x", "y", "z", "w"):
            store.create(make(cid, labels={"a": "1"}))
    conn = sqlite3.connect(db_path)
    conn.execute(damage)
    conn.commit()
    conn.close()
    store = ctrledger.open(db_path)
    head = store.log.head()
    writes = {
        "x": lambda: store.update(ctrledger.Container(id="x", image="i:2"), "image"),
        "y": lambda: store.update(ctrledger.Container(id="y", labels={"b": "2"}), "labels.b"),
        "z": lambda: store.started("z", pid=1),
        "w": lambda: store.delete("w"),
    }
    for cid in kinds:
        with pytest.raises(error, match=message(cid)):
            writes[cid]()
    assert store.log.head() == head  # nothing was written
    store.rebuild()
    writes["x"]()
    assert store.get("x").image == "i:2"
    return store


@pytest.mark.parametrize("table", ["containers", "versions"])
def test_a_write_to_a_container_whose_row_was_deleted_by_hand_is_refused_clearly(db_path: Path, table: str) -> None:
    # The current row, or the version the event follows: either missing means the read model was
    # edited; the write is refused (not applied to one view and silently skipped by the other).
    writes_refused_after(db_path, f"DELETE FROM {table}", ctrledger.Unavailable,
                         lambda cid: f"no (row for|version 1 of) container '{cid}'.*rebuild").close()


def test_an_export_refuses_a_chunk_its_reader_could_not_read(
    db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ctrledger.replay import archive

    monkeypatch.setattr(archive, "MAX_BODY", 1000)
    with ctrledger.open(db_path) as store:
        store.create(make("x", spec=ctrledger.Payload("t", b"x" * 5000)))
        with pytest.raises(ctrledger.InvalidArgument, match="more than an archive chunk holds"):
            store.export(tmp_path / "big.ctrlarchive")
    assert not (tmp_path / "big.ctrlarchive").exists()
