"""What goes into the log: one event per changed field, audit on every event, stable topics."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

import pytest

import ctrledger
from ctrledger import Container, Payload
from ctrledger.domain import container as ev
from ctrledger.domain.container import stream_id

from .conftest import make


def log(store: ctrledger.Store, cid: str, ns: str = "default") -> list[ev.ContainerEvent]:
    return store.log.events_of(stream_id(ns, cid))


def kinds(events: list[ev.ContainerEvent]) -> list[str]:
    return [e.kind for e in events]


def test_create_emits_created_with_the_stored_record(store: ctrledger.Store) -> None:
    c = store.create(make(labels={"a": "1", "gone": ""}), actor="alice", reason="deploy 42")
    (created,) = log(store, "web-1")
    assert isinstance(created, ev.Created)
    assert created.labels == {"a": "1"}  # empty values never stored
    assert created.incarnation == 1
    assert created.timestamp == c.created_at == c.updated_at
    assert created.audit.actor == "alice"
    assert created.audit.reason == "deploy 42"
    assert created.audit.client == "library"
    assert len(created.audit.correlation_id) == 36


def test_generated_correlation_and_request_ids_are_uuidv7_in_time_order(store: ctrledger.Store) -> None:
    # RFC 9562 version 7: 48 bits of Unix milliseconds, the version, the RFC variant, random bits.
    before = time.time_ns() // 1_000_000
    for i in range(200):
        store.create(make(f"c{i}"))
    after = time.time_ns() // 1_000_000
    ids = [store.log.events_of(stream_id("default", f"c{i}"))[0].audit.correlation_id for i in range(200)]
    requests = [r[0] for r in store.log.read(lambda db: db.all("SELECT request_id FROM {requests}"))]
    # A request id is made up only for a shared log (an append retried after a lost
    # acknowledgement finds the first by it); an embedded log's failed append wrote nothing.
    assert len(requests) == (0 if store.log.definite_failures else 200)
    ids += requests
    parsed = [uuid.UUID(text) for text in ids]
    assert [str(u) for u in parsed] == ids  # the canonical lower-case form
    assert {u.version for u in parsed} == {7} and {u.variant for u in parsed} == {uuid.RFC_4122}
    assert all(before <= u.int >> 80 <= after for u in parsed)
    assert len(set(ids)) == len(ids) == 200 + len(requests)
    # The 74 random bits are random: every hex digit after the time takes many values.
    digits = [text.replace("-", "")[12:] for text in ids]
    assert all(len({d[k] for d in digits}) >= 8 for k in (1, 2, 3, 5, 10, 19))
    assert {d[4] for d in digits} == set("89ab")


def test_the_aggregate_builds_its_events_as_their_init_would() -> None:
    # The aggregate builds events without __init__: the same fields, in the same order (the
    # stored bytes follow it), the same stored state.
    from datetime import UTC, datetime, timedelta

    from ctrledger.domain.model import Audit, Resources
    from ctrledger.persistence.mapper import LedgerMapper
    from ctrledger.persistence.transcoder import MsgPackTranscoder

    mapper = LedgerMapper(transcoder=MsgPackTranscoder())
    t0, audit = datetime(2026, 12, 1, tzinfo=UTC), Audit("alice", "why", "c-1", ("labels",), "test")
    agg = ev.ContainerAggregate.create("default", make(labels={"a": "1", "b": "2"}, snapshotter="overlayfs",
                                                       snapshot_key="k", extensions={"e": Payload("x", b"1")}),
                                       audit, t0)
    agg.change_to(make(labels={"a": "2"}, image="img:2", spec=Payload("t", b"2"), snapshotter="overlayfs",
                       snapshot_key="k2", extensions={}), audit, t0 + timedelta(seconds=1))
    events = list(agg.collect_events())
    agg.change_to(agg.to_container(), audit, t0 + timedelta(seconds=2))  # Touched
    agg.start(42, None, audit, t0 + timedelta(seconds=3))
    agg.pause(None, audit, t0 + timedelta(seconds=4))
    agg.resume(None, audit, t0 + timedelta(seconds=5))
    agg.update_resources(Resources(cpu_quota=5), None, audit, t0 + timedelta(seconds=6))
    agg.exit(1, None, "bye", None, audit, t0 + timedelta(seconds=7))
    agg.delete(audit, t0 + timedelta(seconds=8))
    agg.recreate(make(), audit, t0 + timedelta(seconds=9))
    events += agg.collect_events()
    assert {type(e) for e in events} == set(ev.EVENT_CLASSES)
    for e in events:
        again = type(e)(**vars(e))
        assert again == e and list(vars(again)) == list(vars(e))
        assert mapper.to_stored_event(again) == mapper.to_stored_event(e)


@pytest.mark.parametrize(
    ("request_fields", "paths", "expected"),
    [
        pytest.param({"labels": {"a": "2"}}, ("labels.a",), ["LabelsChanged"], id="one-label"),
        pytest.param({"image": "img:2"}, ("image",), ["ImageChanged"], id="image"),
        pytest.param({"spec": Payload("t", b"new")}, ("spec",), ["SpecUpdated"], id="spec"),
        pytest.param({"snapshot_key": "k2"}, ("snapshotkey",), ["SnapshotKeyChanged"], id="snapshot-key"),
        pytest.param({"extensions": {"e": Payload("x", b"1")}}, ("extensions.e",), ["ExtensionsChanged"], id="ext"),
        pytest.param({"labels": {"a": "1"}}, ("labels.a",), ["Touched"], id="no-change-is-touched"),
        pytest.param({}, ("labels.",), ["Touched"], id="empty-label-path-touches"),
        pytest.param(
            {"labels": {"b": "1"}, "image": "img:3", "spec": Payload("t", b"3")},
            ("labels", "image", "spec"),
            ["LabelsChanged", "ImageChanged", "SpecUpdated"],
            id="several-fields-several-events",
        ),
    ],
)
def test_update_emits_one_event_per_changed_field(
    store: ctrledger.Store, request_fields: dict[str, object], paths: tuple[str, ...], expected: list[str]
) -> None:
    store.create(make(labels={"a": "1"}, snapshotter="overlayfs", snapshot_key="k1"))
    store.update(Container(id="web-1", **request_fields), *paths, reason="why")  # type: ignore[arg-type]
    events = log(store, "web-1")[1:]
    assert kinds(events) == expected
    # One operation: one timestamp, one correlation id, the paths as given.
    assert len({e.timestamp for e in events}) == 1
    assert len({e.audit.correlation_id for e in events}) == 1
    assert all(e.audit.fieldpaths == paths and e.audit.reason == "why" for e in events)


def test_labels_changed_carries_only_the_change(store: ctrledger.Store) -> None:
    store.create(make(labels={"keep": "1", "change": "old", "drop": "x"}))
    store.update(Container(id="web-1", labels={"keep": "1", "change": "new", "add": "y"}), "labels")
    changed = log(store, "web-1")[-1]
    assert isinstance(changed, ev.LabelsChanged)
    assert changed.set == {"change": "new", "add": "y"}
    assert changed.removed == ("drop",)


def test_delete_and_recreate_continue_one_stream(store: ctrledger.Store) -> None:
    store.create(make(labels={"a": "1"}))
    store.delete("web-1", actor="bob", reason="retire")
    again = store.create(make(image="img:2"))
    events = log(store, "web-1")
    assert kinds(events) == ["Created", "Deleted", "Created"]
    assert [e.originator_version for e in events] == [1, 2, 3]
    assert events[1].audit.actor == "bob"
    assert isinstance(events[2], ev.Created) and events[2].incarnation == 2
    assert again.version == 3 and again.labels == {}


def test_failed_operations_append_nothing(store: ctrledger.Store) -> None:
    store.create(make())
    head = store.position
    bad: list[object] = [
        lambda: store.create(make()),
        lambda: store.create(make("x", labels={"": "v"})),
        lambda: store.update(Container(id="web-1"), "runtime"),
        lambda: store.update(Container(id="web-1", labels={"a": "1"}), "labels.a", "id"),
        lambda: store.update(Container(id="web-1"), "spec"),
        lambda: store.update(Container(id="web-1", labels={"a": "1"}), "labels.a", expected_version=7),
        lambda: store.delete("nope"),
        lambda: store.delete("web-1", expected_version=2),
    ]
    for attempt in bad:
        with pytest.raises(ctrledger.StoreError):
            attempt()  # type: ignore[operator]
    assert store.position == head
    assert kinds(log(store, "web-1")) == ["Created"]


@pytest.mark.sqlite_only
def test_topics_are_stable_names_not_module_paths(store: ctrledger.Store, db_path: Path) -> None:
    store.create(make(labels={"a": "1"}))
    store.update(Container(id="web-1", labels={"a": "2"}), "labels.a")
    store.delete("web-1")
    conn = sqlite3.connect(db_path)
    topics = [r[0] for r in conn.execute("SELECT topic FROM stored_events ORDER BY rowid")]
    conn.close()
    assert topics == [
        "ctrledger.container.Created",
        "ctrledger.container.LabelsChanged",
        "ctrledger.container.Deleted",
    ]


def test_every_event_class_has_an_explicit_registered_topic() -> None:
    from eventsourcing.utils import get_topic, resolve_topic

    for cls in ev.EVENT_CLASSES:
        assert cls.TOPIC.startswith("ctrledger.container.")
        assert get_topic(cls) == cls.TOPIC
        assert resolve_topic(cls.TOPIC) is cls


def test_timestamps_move_forward_even_if_the_clock_does_not(db_path: Path) -> None:
    from datetime import UTC, datetime

    frozen = datetime(2026, 1, 1, tzinfo=UTC)
    with ctrledger.open(db_path, clock=lambda: frozen) as store:
        c1 = store.create(make())
        c2 = store.update(make(), "labels")
        c3 = store.update(make(), "labels")
    assert c1.created_at == frozen
    assert c1.updated_at < c2.updated_at < c3.updated_at
    assert c3.created_at == frozen
