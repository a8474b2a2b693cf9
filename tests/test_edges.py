"""Edge cases found in review: each pins a behaviour that was wrong once."""

from __future__ import annotations

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
