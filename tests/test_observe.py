"""Store.observe: bring a container to a state seen on containerd, with the fewest events.

Every test runs on SQLite and on PostgreSQL (the ``store`` and ``target`` fixtures of conftest)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

import ctrledger
from ctrledger import Container, Payload, Runtime

from .conftest import SPEC, make

T0 = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
BASE = make("web-1", labels={"a": "1", "b": "2"}, created_at=T0)


@pytest.mark.parametrize(
    ("observed", "kinds"),
    [
        pytest.param(BASE, (), id="same"),
        pytest.param(replace(BASE, labels={"a": "1", "b": "3", "c": "4"}), ("LabelsChanged",), id="labels"),
        pytest.param(replace(BASE, labels={"a": "1", "b": "2", "e": ""}), (), id="empty-label-is-absent"),
        pytest.param(replace(BASE, image="docker.io/library/nginx:1.28"), ("ImageChanged",), id="image"),
        pytest.param(replace(BASE, spec=Payload(SPEC.type_url, b"{}")), ("SpecUpdated",), id="spec"),
        pytest.param(replace(BASE, snapshotter="overlayfs"), ("Deleted", "Created"), id="snapshotter-replaced"),
        pytest.param(replace(BASE, runtime=Runtime("io.containerd.kata.v2")), ("Deleted", "Created"), id="runtime"),
        pytest.param(replace(BASE, created_at=T0 + timedelta(seconds=1)), ("Deleted", "Created"), id="recreated"),
        pytest.param(replace(BASE, created_at=None), (), id="no-created-at"),
        pytest.param(replace(BASE, image="x", labels={}), ("LabelsChanged", "ImageChanged"), id="two-kinds"),
        pytest.param(None, ("Deleted",), id="absent"),
    ],
)
def test_observe_writes_only_what_differs(store: ctrledger.Store, observed: Container | None,
                                           kinds: tuple[str, ...]) -> None:
    assert store.observe("web-1", BASE, at=T0) == ("Created",)
    head = store.position
    assert store.observe("web-1", observed, reason="seen") == kinds
    assert store.position == head + len(kinds)
    assert store.observe("web-1", observed) == ()  # twice: nothing more
    assert store.position == head + len(kinds)
    if observed is None:
        assert not store.list()
    else:
        got = store.get("web-1")
        assert dict(got.labels) == {k: v for k, v in observed.labels.items() if v}
        assert got.image == observed.image
        assert got.spec == observed.spec
        assert got.runtime == observed.runtime


def test_observe_dates_events_and_records_the_actor(store: ctrledger.Store) -> None:
    assert store.observe("web-1", BASE, at=T0, reason="observed at sync") == ("Created",)
    assert store.get("web-1").created_at == T0
    later = T0 + timedelta(minutes=3)
    store.observe("web-1", replace(BASE, labels={}), at=later.isoformat())
    entries = list(store.history("web-1"))
    assert [(e.kind, e.actor, e.reason, e.recorded_at) for e in entries] == [
        ("Created", "containerd", "observed at sync", T0), ("LabelsChanged", "containerd", "", later)]
    assert store.get("web-1", as_of=T0 + timedelta(minutes=1)).labels == {"a": "1", "b": "2"}


def test_observe_absent_or_deleted_names(store: ctrledger.Store) -> None:
    assert store.observe("ghost", None) == ()
    assert store.position == 0
    store.create(make("web-1"))
    store.delete("web-1")
    assert store.observe("web-1", None) == ()
    assert store.observe("web-1", make("web-1")) == ("Created",)
    assert [e.incarnation for e in store.history("web-1")][-1] == 2


def test_observe_many_is_one_transaction_and_idempotent(store: ctrledger.Store) -> None:
    store.create(make("c1", labels={"x": "1"}))
    batch = [(f"c{i}", make(f"c{i}"), T0) for i in range(5)] + [("c9", None, None)]
    assert store.observe_many(batch) == [("Created",), ("LabelsChanged",), ("Created",), ("Created",),
                                         ("Created",), ()]
    head = store.position
    assert store.observe_many(batch) == [()] * 6
    assert store.position == head


def test_a_batch_of_creates_reads_as_one_by_one_creates(store: ctrledger.Store) -> None:
    # observe_many appends a burst of new containers as one run of Created events, which the
    # read models write together: every read, now and as of a point, agrees with a rebuild.
    store.create(make("c0", labels={"team": "a"}))
    before = store.position
    batch = [(f"c{i}", make(f"c{i}", labels={"team": "ab"[i % 2], f"k{i}": "v"}), T0) for i in range(1, 8)]
    assert store.observe_many(batch) == [("Created",)] * 7
    store.observe_many([("c8", make("c8", labels={"team": "b"}), T0), ("c1", None, None),
                        ("c1", make("c1", labels={"team": "c"}), None), ("c9", make("c9"), None)])
    assert [c.id for c in store.list("labels.team==b")] == ["c3", "c5", "c7", "c8"]
    assert [c.id for c in store.list("labels.team==a", as_of=ctrledger.Position(before))] == ["c0"]
    assert [c.id for c in store.list("labels.team==b", as_of=ctrledger.Position(before + 7))] == [
        "c1", "c3", "c5", "c7"]
    assert [c.id for c in store.list("labels.team==a")] == ["c0", "c2", "c4", "c6"]
    assert store.get("c3").labels == {"team": "b", "k3": "v"}
    assert store.get("c1").labels == {"team": "c"}
    assert [e.kind for e in store.history("c1")] == ["Created", "Deleted", "Created"]
    assert store.verify_projections().ok


def test_observe_sees_another_writer(target: str) -> None:
    # a second node: on PostgreSQL, the same log with a read model of its own
    other = target.replace("node.db", "node2.db") if target.startswith("postgresql") else target
    with ctrledger.open(target) as one, ctrledger.open(other) as two:
        one.observe("web-1", BASE)
        assert one.observe("web-1", BASE) == ()  # cached in one
        two.update(make("web-1", labels={"a": "9"}), "labels")
        assert one.observe("web-1", BASE) == ("LabelsChanged",)  # the stale cache is not trusted
        assert one.get("web-1").labels == {"a": "1", "b": "2"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("web-1", make("web-2")), "is not 'web-1'", id="id-mismatch"),
        pytest.param(("", None), "container ID is required", id="no-id"),
        pytest.param(("web-1", "web-1"), "expected a Container", id="not-a-container"),
        pytest.param(("web-1", make("web-1", spec=None)), "Spec must be set", id="no-spec-on-create"),
        pytest.param(("web-1", make("web-1", runtime=Runtime(""))), "Runtime.Name", id="no-runtime"),
    ],
)
def test_observe_refuses_bad_input_and_writes_nothing(store: ctrledger.Store, args: tuple[object, object],
                                                      message: str) -> None:
    with pytest.raises(ctrledger.InvalidArgument, match=message):
        store.observe(*args)  # type: ignore[arg-type]
    assert store.position == 0


def test_observe_refuses_a_naive_time(store: ctrledger.Store) -> None:
    with pytest.raises(ctrledger.InvalidArgument, match="timezone-aware"):
        store.observe("web-1", BASE, at=datetime(2026, 1, 1))  # noqa: DTZ001
    assert store.position == 0


def test_observe_many_follows_one_id_through_a_batch(store: ctrledger.Store) -> None:
    batch = [("web-1", make("web-1"), T0), ("web-1", make("web-1", labels={"a": "1"}), None),
             ("web-1", None, None), ("web-1", make("web-1", image="x"), None), ("db-1", make("db-1"), None)]
    assert store.observe_many(batch) == [("Created",), ("LabelsChanged",), ("Deleted",), ("Created",), ("Created",)]
    assert [e.kind for e in store.history("web-1")] == ["Created", "LabelsChanged", "Deleted", "Created"]
    assert store.get("web-1").image == "x"
    assert store.observe_many(batch[-2:]) == [(), ()]


def test_observe_many_takes_a_reason_per_item(store: ctrledger.Store) -> None:
    batch = [("web-1", make("web-1"), T0, None), ("db-1", make("db-1"), T0, "seen in its event only"),
             ("web-1", None, None)]
    assert store.observe_many(batch, reason="observed") == [("Created",), ("Created",), ("Deleted",)]
    # one container's events in order (the batch appends them container by container)
    assert sorted((r.id, r.version, r.kind, r.reason) for r in store.audit()) == [
        ("db-1", 1, "Created", "seen in its event only"), ("web-1", 1, "Created", "observed"),
        ("web-1", 2, "Deleted", "observed")]
    head = store.position
    with pytest.raises(ctrledger.InvalidArgument, match="reason must be a string"):
        store.observe_many([("x", make("x"), None, 7)])  # type: ignore[list-item]
    with pytest.raises(ctrledger.InvalidArgument, match="triples"):
        store.observe_many([("x", make("x"), None, None, None)])  # type: ignore[list-item]
    assert store.position == head
