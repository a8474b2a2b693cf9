"""The follower's parts that need no containerd: payload decoding, times, exit codes, the listing
reader, the reconcile's shortcut, and `follow --once` without a containerd."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from google.protobuf import timestamp_pb2

import ctrledger
from ctrledger import Container, Payload, Runtime
from ctrledger.cli import main
from ctrledger.follow import Follower
from ctrledger.follow.follower import _int32, _listed, _unchanged, payload_of
from ctrledger.follow.observed import observed_time
from ctrledger.follow.writer import WriterGone
from ctrledger.wire.containerd.events import container_pb2 as cev
from ctrledger.wire.containerd.events import task_pb2 as tev
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2 as cpb
from ctrledger.wire.containerd.services.events.v1 import events_pb2 as epb


def envelope(topic: str, type_url: str, value: bytes) -> epb.Envelope:
    env = epb.Envelope(topic=topic, namespace="default")
    env.event.type_url, env.event.value = type_url, value
    return env


def test_payloads_decode_by_their_bare_type_name() -> None:
    exit_ = tev.TaskExit(container_id="web-1", id="web-1", pid=42, exit_status=137)
    got = payload_of(envelope("/tasks/exit", "containerd.events.TaskExit", exit_.SerializeToString()))
    assert isinstance(got, tev.TaskExit) and (got.container_id, got.exit_status) == ("web-1", 137)
    labels = cev.ContainerUpdate(id="web-1", labels={"a": "1"})
    got = payload_of(envelope("/containers/update", "type.googleapis.com/containerd.events.ContainerUpdate",
                              labels.SerializeToString()))
    assert isinstance(got, cev.ContainerUpdate) and dict(got.labels) == {"a": "1"}
    assert payload_of(envelope("/snapshot/remove", "containerd.events.SnapshotRemove", b"")) is None


@pytest.mark.parametrize(
    ("seconds", "nanos", "expected"),
    [
        pytest.param(0, 0, None, id="unset"),
        pytest.param(-62135596800, 0, None, id="go-zero-time"),
        pytest.param(1_764_000_000, 123_456_789, datetime(2025, 11, 24, 16, 0, 0, 123456, tzinfo=UTC), id="set"),
    ],
)
def test_observed_time(seconds: int, nanos: int, expected: datetime | None) -> None:
    assert observed_time(timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)) == expected


@pytest.mark.parametrize(("status", "code"), [(0, 0), (3, 3), (137, 137), (2**32 - 1, -1), (2**31, -(2**31))])
def test_exit_status_as_int32(status: int, code: int) -> None:
    assert _int32(status) == code


@pytest.mark.parametrize("kind", ["no-socket", "not-listening"])
def test_follow_once_without_containerd_fails_and_leaves_no_file(tmp_path: Path, kind: str) -> None:
    address = tmp_path / "containerd.sock"
    if kind == "not-listening":  # a socket file nobody accepts on: a containerd that died
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(address))
        s.close()
    db = tmp_path / "ledger.db"
    result = CliRunner().invoke(main, ["follow", "--once", "--address", str(address), "--db", str(db)])
    assert result.exit_code == 1, result.output
    assert f"cannot reach containerd at {address}" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == (["containerd.sock"] if kind == "not-listening" else [])


def _listing(n: int, fail_after: int | None = None) -> Iterator[cpb.ListContainerMessage]:
    for i in range(n):
        if fail_after is not None and i == fail_after:
            raise RuntimeError("the stream broke")
        c = cpb.Container(id=f"c{i}", runtime=cpb.Container.Runtime(name="io.containerd.runc.v2"))
        yield cpb.ListContainerMessage(container=c)


def test_a_listing_is_read_in_chunks_in_order() -> None:
    chunks = list(_listed(_listing(450)))
    assert [len(c) for c in chunks] == [200, 200, 50]
    assert [record.id for chunk in chunks for _, record in chunk] == [f"c{i}" for i in range(450)]
    assert all(wire.id == record.id for chunk in chunks for wire, record in chunk)


def test_a_broken_listing_raises_in_the_reader() -> None:
    got: list[str] = []
    with pytest.raises(RuntimeError, match="the stream broke"):
        for chunk in _listed(_listing(450, fail_after=300)):
            got += [record.id for _, record in chunk]
    assert got == [f"c{i}" for i in range(200)]  # what came before the break, and nothing after it


_SEEN = Container(id="web-1", labels={"a": "1"}, runtime=Runtime("io.containerd.runc.v2"), spec=Payload("t", b"{}"),
                  created_at=datetime(2026, 11, 21, tzinfo=UTC))


@pytest.mark.parametrize(
    ("seen", "unchanged"),
    [
        pytest.param(_SEEN, True, id="same"),
        pytest.param(replace(_SEEN, labels={"a": "1", "b": ""}), True, id="an-empty-label-is-absent"),
        pytest.param(replace(_SEEN, created_at=None), True, id="no-created-at"),
        pytest.param(replace(_SEEN, labels={"a": "2"}), False, id="labels"),
        pytest.param(replace(_SEEN, image="x"), False, id="image"),
        pytest.param(replace(_SEEN, spec=Payload("t", b"[]")), False, id="spec"),
        pytest.param(replace(_SEEN, snapshot_key="k"), False, id="snapshot-key"),
        pytest.param(replace(_SEEN, extensions={"e": Payload("t", b"")}), False, id="extensions"),
        pytest.param(replace(_SEEN, runtime=Runtime("other")), False, id="runtime"),
        pytest.param(replace(_SEEN, created_at=datetime(2026, 11, 22, tzinfo=UTC)), False, id="created-again"),
    ],
)
def test_a_reconcile_skips_only_what_the_store_would_not_write(seen: Container, unchanged: bool) -> None:
    assert _unchanged(_SEEN, seen) is unchanged


def test_a_late_observation_of_a_deleted_incarnation_does_not_bring_it_back(tmp_path: Path) -> None:
    """A create or update seen on containerd before the container was deleted (the deletion
    recorded first, through the proxy) is of the incarnation the ledger deleted: told by
    containerd's created_at, so a container created again under the name, however soon, is new.
    Seen in a soak of ctr runs through the proxy: the follower's late Created brought a deleted
    container back (and once more after a first fix compared containerd's created_at with the
    ledger's, which is its Created event's time: never equal)."""
    import ctrledger
    from ctrledger.follow import Follower
    from ctrledger.follow.claims import Claims
    from ctrledger.follow.follower import deleted_incarnation

    t0 = datetime(2026, 12, 2, 9, 0, 0, tzinfo=UTC)
    spec = Payload("types.containerd.io/opencontainers/runtime-spec/1/Spec", b"{}")

    def seen(created: datetime | None, **labels: str) -> Container:
        return Container(id="x", runtime=Runtime("io.containerd.runc.v2"), spec=spec, labels=labels, created_at=created)

    with ctrledger.open(tmp_path / "l.db") as store:
        assert not deleted_incarnation(store, "ns", seen(t0), t0)  # never seen
        # recorded as the follower does: at the event's time, a little after containerd's created_at
        store.observe("x", seen(t0, a="1"), at=t0.replace(microsecond=1500), namespace="ns")
        store.observe("x", None, at=t0.replace(second=2), namespace="ns")
        later = t0.replace(second=1)  # an update seen before the deletion, recorded after it
        assert deleted_incarnation(store, "ns", seen(t0, a="2"), later)
        assert deleted_incarnation(store, "ns", seen(t0, a="2"), t0.replace(second=5))  # by created_at
        again = t0.replace(second=2, microsecond=500)  # created again after the deletion: new
        assert not deleted_incarnation(store, "ns", seen(again), again)
        # without a created_at, by time: the deletion at or after what was seen
        assert deleted_incarnation(store, "ns", seen(None), later)
        assert not deleted_incarnation(store, "ns", seen(None), t0.replace(second=3))
        # the follower's check before a commit beside the proxy says the same
        follower = Follower(store, str(tmp_path / "no.sock"), claims=Claims())
        assert follower._superseded("ns", ("x", seen(t0, a="2"), later))
        assert not follower._superseded("ns", ("x", seen(again), again))


class _NotFound(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.NOT_FOUND


class _Answer:
    """A Containers/Get in flight: answered (its callbacks run) when the test says so."""

    def __init__(self, found: cpb.Container | None) -> None:
        self.found, self.callbacks = found, []  # type: ignore[var-annotated]

    def add_done_callback(self, fn: Any) -> None:
        self.callbacks.append(fn)

    def result(self) -> cpb.GetContainerResponse:
        if self.found is None:
            raise _NotFound()
        return cpb.GetContainerResponse(container=self.found)

    def answer(self) -> None:
        for fn in self.callbacks:
            fn(self)


class _Gets:
    """The Containers stub of a follower: each Get answers from ``live`` as it is when sent."""

    def __init__(self) -> None:
        self.live: dict[str, cpb.Container] = {}
        self.sent: list[tuple[str, _Answer]] = []
        self.Get = self

    def future(self, request: cpb.GetContainerRequest, **_: Any) -> _Answer:
        answer = _Answer(self.live.get(request.id))
        self.sent.append((request.id, answer))
        return answer


def container_event(topic: str, payload: Any) -> epb.Envelope:
    return envelope(topic, f"containerd.events.{type(payload).__name__}", payload.SerializeToString())


@pytest.fixture
def prefetching(tmp_path: Path) -> Iterator[tuple[Follower, _Gets]]:
    with ctrledger.open(tmp_path / "ledger.db") as store:
        f = Follower(store, str(tmp_path / "no.sock"))
        gets = _Gets()
        f._containers = gets
        yield f, gets


def test_an_update_read_after_a_read_that_found_its_container_gone_sends_no_get(
        prefetching: tuple[Follower, _Gets]) -> None:
    """Its incarnation was deleted before that answer: a Get now could find only its absence or
    a later incarnation, so the update's read is answered None at once."""
    f, gets = prefetching
    create = container_event("/containers/create", cev.ContainerCreate(id="web-1"))
    update = container_event("/containers/update", cev.ContainerUpdate(id="web-1", labels={"a": "1"}))
    f.prefetch(create)  # sent: web-1 is already gone (deleted right after its create)
    f.prefetch(update)  # waits for the create's read
    assert [cid for cid, _ in gets.sent] == ["web-1"]
    gets.sent[0][1].answer()
    assert f._fetched[id(create)][2].result() is None and f._fetched[id(update)][2].result() is None
    assert len(gets.sent) == 1  # no Get for the update
    late = container_event("/containers/update", cev.ContainerUpdate(id="web-1"))
    f.prefetch(late)  # the create's read answered before this update came: still known to be gone
    assert len(gets.sent) == 1 and f._fetched[id(late)][2].result() is None
    # its delete ends the chain: a new incarnation is read again, and so are its updates
    f.prefetch(container_event("/containers/delete", cev.ContainerDelete(id="web-1")))
    gets.live["web-1"] = cpb.Container(id="web-1", labels={"new": "yes"})
    again = container_event("/containers/create", cev.ContainerCreate(id="web-1"))
    f.prefetch(again)
    assert len(gets.sent) == 2
    gets.sent[1][1].answer()
    assert dict(f._fetched[id(again)][2].result().labels) == {"new": "yes"}
    relabel = container_event("/containers/update", cev.ContainerUpdate(id="web-1"))
    f.prefetch(relabel)
    assert len(gets.sent) == 3  # found before: read again
    assert f._last_read == {("default", "web-1"): f._fetched[id(relabel)][2]}


def test_a_create_read_after_a_read_that_found_nothing_is_still_sent(prefetching: tuple[Follower, _Gets]) -> None:
    """A create is a new incarnation even when the read before it (of an earlier one, whose
    delete event has not come yet in this order of calls) found nothing."""
    f, gets = prefetching
    f.prefetch(container_event("/containers/create", cev.ContainerCreate(id="web-1")))
    gets.sent[0][1].answer()  # gone
    gets.live["web-1"] = cpb.Container(id="web-1")
    f.prefetch(container_event("/containers/create", cev.ContainerCreate(id="web-1")))
    assert len(gets.sent) == 2


def test_a_prefetched_envelope_is_held_while_its_read_waits(prefetching: tuple[Follower, _Gets]) -> None:
    """The prefetched reads are found by the envelope's id: the entry holds the envelope, so a
    new envelope can never have the id of one whose entry is still there (one the last
    session's stream reader prefetched as that session ended, and nobody will ask for)."""
    f, _ = prefetching
    env = container_event("/containers/create", cev.ContainerCreate(id="web-1"))
    before = sys.getrefcount(env)
    f.prefetch(env)
    assert f._fetched[id(env)][0] is env and sys.getrefcount(env) > before


class _DyingWriter:
    """A follower's writer process that dies during its first ``deaths`` batches, having
    committed each (``committed=True``: its answer was lost) or not."""

    def __init__(self, store: ctrledger.Store, deaths: int, committed: bool) -> None:
        self.store, self.deaths, self.committed, self.calls = store, deaths, committed, 0

    def observe_many(self, *args: Any, **kwargs: Any) -> list[tuple[str, ...]]:
        self.calls += 1
        if self.calls <= self.deaths:
            if self.committed:
                self.store.observe_many(*args, **kwargs)
            raise WriterGone("the follower's writer process ended (killed by signal 9)")
        return self.store.observe_many(*args, **kwargs)


@pytest.mark.parametrize("committed", [True, False], ids=["after-its-commit", "before-its-commit"])
def test_a_batch_the_writer_died_in_is_written_again_once(tmp_path: Path, committed: bool) -> None:
    """Committed or not, the batch is observed again through a new writer: once, and the session
    goes on (observing is idempotent: nothing is applied twice)."""
    at = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    state = Container(id="web-1", runtime=Runtime("io.containerd.runc.v2"), spec=Payload("t", b"{}"),
                      labels={"a": "1"})
    with ctrledger.open(tmp_path / "ledger.db") as store:
        writer = _DyingWriter(store, deaths=1, committed=committed)
        f = Follower(store, str(tmp_path / "no.sock"), writer=writer)  # type: ignore[arg-type]
        written = f._commit("default", [("web-1", state, at, None)])
        assert writer.calls == 2
        assert [e.kind for e in store.history("web-1")] == ["Created"]
        assert store.get("web-1").labels == {"a": "1"}
        assert written == (0 if committed else 1)  # what the second attempt wrote


def test_a_writer_that_dies_twice_in_one_batch_ends_the_session(tmp_path: Path) -> None:
    with ctrledger.open(tmp_path / "ledger.db") as store:
        writer = _DyingWriter(store, deaths=2, committed=False)
        f = Follower(store, str(tmp_path / "no.sock"), writer=writer)  # type: ignore[arg-type]
        with pytest.raises(WriterGone):
            f._commit("default", [("web-1", None, datetime(2026, 12, 2, tzinfo=UTC), None)])
        assert writer.calls == 2


def test_a_batch_committed_before_its_writer_died_is_not_applied_again(tmp_path: Path) -> None:
    """A batch with two words on one container (a label change, a deletion and the name created
    again): written again after a commit whose answer was lost, it must not take the ledger back
    and forth (the retry is recognised as the same command)."""
    t = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)

    def state(labels: dict[str, str], created: datetime) -> Container:
        return Container(id="web-1", runtime=Runtime("io.containerd.runc.v2"), spec=Payload("t", b"{}"),
                         labels=labels, created_at=created)

    batch = [("web-1", state({"a": "1"}, t), t + timedelta(seconds=1), None),
             ("web-1", state({"a": "2"}, t), t + timedelta(seconds=2), None),
             ("web-1", None, t + timedelta(seconds=3), None),
             ("web-1", state({"b": "1"}, t + timedelta(seconds=4)), t + timedelta(seconds=4), None)]
    with ctrledger.open(tmp_path / "ledger.db") as store:
        f = Follower(store, str(tmp_path / "no.sock"), writer=_DyingWriter(store, deaths=1, committed=True))  # type: ignore[arg-type]
        f._commit("default", batch)
        assert [(e.kind, e.incarnation) for e in store.history("web-1")] == [
            ("Created", 1), ("LabelsChanged", 1), ("Deleted", 1), ("Created", 2)]
        assert store.get("web-1").labels == {"b": "1"}
