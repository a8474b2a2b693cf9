"""``ctrledger serve`` with real clients: the real ``ctr``, a Python gRPC client, the real CLI.

The server runs in-process on a temporary unix socket (one test starts ``ctrledger serve`` as a
subprocess). ``ctr`` is containerd's own client (Debian's containerd package): missing, the
tests fail on CI and skip elsewhere (``missing_component``).
"""

from __future__ import annotations

import json
import os
import pwd
import queue
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, field_mask_pb2

import ctrledger
from ctrledger.server import Server
from ctrledger.wire import decode_event, encode_event
from ctrledger.wire.containerd.events import container_pb2 as evpb
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2 as cpb
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2_grpc as cgrpc
from ctrledger.wire.containerd.services.events.v1 import events_pb2 as epb
from ctrledger.wire.containerd.services.events.v1 import events_pb2_grpc as egrpc
from ctrledger.wire.containerd.services.namespaces.v1 import namespace_pb2 as npb
from ctrledger.wire.containerd.services.namespaces.v1 import namespace_pb2_grpc as ngrpc
from ctrledger.wire.containerd.services.tasks.v1 import tasks_pb2 as tpb
from ctrledger.wire.containerd.services.tasks.v1 import tasks_pb2_grpc as tgrpc
from ctrledger.wire.containerd.services.version.v1 import version_pb2_grpc as vgrpc
from ctrledger.wire.ctrledger.v1 import ledger_pb2 as lpb
from ctrledger.wire.ctrledger.v1 import ledger_pb2_grpc as lgrpc

from .conftest import SPEC, make
from .serving import channel, ctr, ctr_binary, metadata, served, short_dir, wait_for_socket

ME = pwd.getpwuid(os.getuid()).pw_name
MD = metadata("default")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ctrledger.Store]:
    with ctrledger.open(tmp_path / "ledger.db", synchronous="NORMAL") as s:
        yield s


@pytest.fixture
def server(store: ctrledger.Store) -> Iterator[Server]:
    with served(store) as srv:
        yield srv


@pytest.fixture
def stub(server: Server) -> Iterator[cgrpc.ContainersStub]:
    ch = channel(server)
    yield cgrpc.ContainersStub(ch)
    ch.close()


def wire_container(cid: str, **labels: str) -> cpb.Container:
    c = cpb.Container(id=cid, image="docker.io/library/busybox:1.36")
    c.runtime.name = "io.containerd.runc.v2"
    c.spec.type_url, c.spec.value = SPEC.type_url, SPEC.value
    c.labels.update(labels)
    return c


def status_of(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as ei:
        call()
    return ei.value.code(), ei.value.details()


# -- the socket and who is calling ------------------------------------------------------------


def test_socket_is_0660_and_refuses_a_second_server(server: Server, store: ctrledger.Store) -> None:
    assert server.path is not None
    assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o660
    with pytest.raises(OSError, match="another server is listening"):
        Server(store, address=f"unix://{server.path}")


def test_every_write_records_the_peer_and_the_claims(server: Server, stub: cgrpc.ContainersStub,
                                                      store: ctrledger.Store) -> None:
    stub.Create(cpb.CreateContainerRequest(container=wire_container("web-1")), metadata=metadata(
        "default", ctrledger_reason="deploy 42", ctrledger_on_behalf_of="alice"))
    [created] = store.history("web-1")
    assert created.actor == ME  # the kernel's word, not the claim
    assert created.reason == "deploy 42"
    assert created.client == f"grpc python[{os.getpid()}] uid={os.getuid()} on behalf of alice (claimed)"


def test_the_private_socket_is_not_a_way_around_the_credentials(server: Server) -> None:
    private = Path(server.front._backend)  # type: ignore[union-attr]
    assert stat.S_IMODE(os.stat(private.parent).st_mode) == 0o700
    ch = grpc.insecure_channel(f"unix:{private}")
    code, message = status_of(lambda: cgrpc.ContainersStub(ch).Create(
        cpb.CreateContainerRequest(container=wire_container("sneaky")), metadata=MD))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "peer credentials" in message
    ch.close()


def test_tcp_only_when_asked_and_identified_by_address(store: ctrledger.Store) -> None:
    with served(store, tcp="127.0.0.1:0") as srv:
        assert srv.tcp_port
        ch = grpc.insecure_channel(f"127.0.0.1:{srv.tcp_port}")
        cgrpc.ContainersStub(ch).Create(cpb.CreateContainerRequest(container=wire_container("t1")), metadata=MD)
        ch.close()
    [entry] = store.history("t1")
    assert entry.actor == "tcp:127.0.0.1" and entry.client.startswith("grpc tcp 127.0.0.1:")


# -- the real ctr -------------------------------------------------------------------------------


def test_ctr_containers_ls_with_filters(server: Server, store: ctrledger.Store) -> None:
    for i in range(3):
        store.create(make(f"web-{i}", labels={"tier": "web" if i < 2 else "db"}))
    assert ctr(server, "containers", "ls", "-q").stdout.split() == ["web-0", "web-1", "web-2"]
    assert ctr(server, "containers", "ls", "-q", "labels.tier==db").stdout.split() == ["web-2"]
    assert ctr(server, "containers", "ls", "-q", "id~=^web-[01]$").stdout.split() == ["web-0", "web-1"]
    bad = ctr(server, "containers", "ls", "id==", check=False)
    assert bad.returncode != 0 and "expected value or quoted" in bad.stderr
    assert ctr(server, "containers", "ls", "-q", namespace="other").stdout == ""


def test_ctr_info_label_and_unlabel(server: Server, store: ctrledger.Store) -> None:
    store.create(make("web-1", labels={"a": "1"}))
    info = json.loads(ctr(server, "containers", "info", "web-1").stdout)
    assert info["ID"] == "web-1" and info["Labels"] == {"a": "1"} and info["Image"] == "docker.io/library/nginx:1.27"
    assert info["Runtime"]["Name"] == "io.containerd.runc.v2"
    ctr(server, "containers", "label", "web-1", "env=prod")
    assert store.get("web-1").labels == {"a": "1", "env": "prod"}
    ctr(server, "containers", "label", "web-1", "a=")
    assert store.get("web-1").labels == {"env": "prod"}
    kinds = [(h.kind, h.fieldpaths, h.actor) for h in store.history("web-1")][1:]
    assert kinds == [("LabelsChanged", ("labels.env",), ME), ("LabelsChanged", ("labels.a",), ME)]
    missing = ctr(server, "containers", "info", "nope", check=False)
    assert missing.returncode != 0 and 'container "nope" in namespace "default": not found' in missing.stderr


def test_ctr_rm_and_create_rootfs(server: Server, store: ctrledger.Store, tmp_path: Path) -> None:
    store.create(make("old", snapshotter="overlayfs", snapshot_key="old-snap"))
    ctr(server, "containers", "rm", "old")  # Tasks/Get and Snapshots/Remove answer NOT_FOUND: rm goes on
    assert store.list() == []
    ctr(server, "containers", "create", "--rootfs", str(tmp_path), "new")  # Leases/Create, Create, Leases/Delete
    got = store.get("new")
    assert got.runtime.name == "io.containerd.runc.v2"
    assert got.spec is not None and got.spec.type_url == "types.containerd.io/opencontainers/runtime-spec/1/Spec"
    assert json.loads(got.spec.value)["root"]["path"] == str(tmp_path)
    entry = list(store.history("new"))[-1]
    assert entry.actor == ME and entry.client.startswith("grpc ctr[")


def test_ctr_namespaces_ls(server: Server, store: ctrledger.Store) -> None:
    store.create(make("a"), namespace="team-b")
    store.create(make("a"), namespace="default")
    lines = ctr(server, "namespaces", "ls", "-q").stdout.split()
    assert lines == ["default", "team-b"]
    table = ctr(server, "namespaces", "ls").stdout.splitlines()
    assert [line.split() for line in table] == [["NAME", "LABELS"], ["default"], ["team-b"]]  # no labels kept


@pytest.mark.parametrize("args", [
    pytest.param(("label", "team-b", "owner=ops"), id="label"),
    pytest.param(("label", "team-b", "owner="), id="unlabel"),
    pytest.param(("create", "new-ns", "owner=ops"), id="create"),
    pytest.param(("remove", "team-b"), id="remove"),
])
def test_ctr_namespace_writes_are_refused_and_write_nothing(server: Server, store: ctrledger.Store,
                                                            args: tuple[str, ...]) -> None:
    store.create(make("a"), namespace="team-b")
    before = store.position
    result = ctr(server, "namespaces", *args, check=False)
    assert result.returncode != 0
    assert "ctrledger keeps no namespace records or labels" in result.stderr
    assert "Unimplemented" in result.stderr or "unimplemented" in result.stderr
    assert store.position == before
    assert store.namespaces() == ["team-b"]
    assert ctr(server, "namespaces", "ls", "-q").stdout.split() == ["team-b"]


def test_ctr_events_sees_a_change_made_by_another_client(server: Server, stub: cgrpc.ContainersStub) -> None:
    proc = subprocess.Popen([ctr_binary(), "-a", str(server.path), "events"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        deadline = time.monotonic() + 15
        seen: list[str] = []
        n = 0
        while time.monotonic() < deadline and not any("/containers/create" in s for s in seen):
            n += 1  # ctr subscribes asynchronously: write until its subscription sees one
            stub.Create(cpb.CreateContainerRequest(container=wire_container(f"ev-{n}")), metadata=MD)
            try:
                seen.append(lines.get(timeout=0.5))
            except queue.Empty:
                continue
        create = next(s for s in seen if "/containers/create" in s)
        assert "default" in create and '"id":"ev-' in create.replace(" ", "")
        stub.Update(cpb.UpdateContainerRequest(container=wire_container("ev-1", env="prod"),
                                               update_mask=field_mask_pb2.FieldMask(paths=["labels.env"])),
                    metadata=MD)
        update = ""
        while "/containers/update" not in update:
            update = lines.get(timeout=10)
        assert '"env":"prod"' in update.replace(" ", "")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- a Python gRPC client ---------------------------------------------------------------------


def test_the_calls_ctr_needs_around_containers(server: Server) -> None:
    ch = channel(server)
    code, _ = status_of(lambda: tgrpc.TasksStub(ch).Get(tpb.GetRequest(container_id="x"), metadata=MD))
    assert code == grpc.StatusCode.NOT_FOUND
    assert vgrpc.VersionStub(ch).Version(empty_pb2.Empty()).version.startswith("1.6")
    ns = ngrpc.NamespacesStub(ch)
    code, message = status_of(lambda: ns.Get(npb.GetNamespaceRequest(name="nope"), metadata=MD))
    assert (code, message) == (grpc.StatusCode.NOT_FOUND, 'namespace "nope": not found')
    code, _ = status_of(lambda: ns.Create(npb.CreateNamespaceRequest(namespace=npb.Namespace(name="x")),
                                          metadata=MD))
    assert code == grpc.StatusCode.UNIMPLEMENTED
    unknown = ch.unary_unary("/containerd.services.images.v1.Images/List")
    code, _ = status_of(lambda: unknown(b"", metadata=MD))
    assert code == grpc.StatusCode.UNIMPLEMENTED
    ch.close()


def test_list_beyond_16_mib_and_liststream(server: Server, stub: cgrpc.ContainersStub, store: ctrledger.Store) -> None:
    big = ctrledger.Payload("example.com/blob", b"x" * (1 << 20))
    for i in range(18):
        store.create(make(f"c{i:04d}", extensions={"blob": big}))  # 18 x 1 MiB
    ch = grpc.insecure_channel(f"unix:{server.path}", options=[("grpc.max_receive_message_length", 64 << 20)])
    got = cgrpc.ContainersStub(ch).List(cpb.ListContainersRequest(), metadata=MD)
    assert got.ByteSize() > 16 << 20 and len(got.containers) == 18
    streamed = [m.container.id for m in stub.ListStream(cpb.ListContainersRequest(filters=["id~=^c000"]), metadata=MD)]
    assert streamed == [f"c{i:04d}" for i in range(10)]
    ch.close()


def test_bad_input_on_the_wire_is_refused_and_writes_nothing(server: Server, stub: cgrpc.ContainersStub,
                                                             store: ctrledger.Store) -> None:
    stub.Create(cpb.CreateContainerRequest(container=wire_container("web-1", a="1")), metadata=MD)
    before = store.position
    mask = field_mask_pb2.FieldMask(paths=["labels.b", "snapshot_key"])
    code, message = status_of(lambda: stub.Update(cpb.UpdateContainerRequest(
        container=wire_container("web-1", b="2"), update_mask=mask), metadata=MD))
    assert (code, message) == (grpc.StatusCode.INVALID_ARGUMENT,
                               'cannot update "snapshot_key" field on "web-1": invalid argument')
    code, message = status_of(lambda: stub.Update(cpb.UpdateContainerRequest(
        container=wire_container("web-1"), update_mask=field_mask_pb2.FieldMask(paths=[""])), metadata=MD))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    raw = channel(server).unary_unary("/containerd.services.containers.v1.Containers/Create")
    code, message = status_of(lambda: raw(b"\x0a\xff\xff\xff", metadata=MD))  # a truncated message
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "containerd.services.containers.v1.CreateContainerRequest" in message
    wrong_any = wire_container("web-2")
    wrong_any.ClearField("spec")  # no spec Any at all: containerd's validation message
    code, message = status_of(lambda: stub.Create(cpb.CreateContainerRequest(container=wrong_any), metadata=MD))
    assert (code, message) == (grpc.StatusCode.INVALID_ARGUMENT,
                               "create container failed validation: container.Spec must be set: invalid argument")
    huge = wire_container("web-3", big="x" * (17 << 20))
    code, _ = status_of(lambda: stub.Create(cpb.CreateContainerRequest(container=huge), metadata=MD))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    code, message = status_of(lambda: stub.Delete(cpb.DeleteContainerRequest(id="web-1"), metadata=(
        ("containerd-namespace", "default"), ("ctrledger-reason", "r" * 2000))))
    assert (code, message) == (grpc.StatusCode.INVALID_ARGUMENT,
                               "metadata ctrledger-reason is longer than 1024 bytes: invalid argument")
    assert store.position == before  # nothing written
    assert [c.id for c in store.list()] == ["web-1"]
    assert stub.Get(cpb.GetContainerRequest(id="web-1"), metadata=MD).container.labels == {"a": "1"}


def test_list_answers_from_kept_encodings_and_reads_only_what_changed(
    server: Server, stub: cgrpc.ContainersStub, store: ctrledger.Store, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """List asks the store which versions it holds; when each is encoded already (by a Get, a
    List, a write through the server), the answer is those bytes and no record is read."""
    for i in range(5):
        store.create(make(f"k{i}", labels={"i": str(i)}))
    reads: list[tuple[str, ...]] = []
    real = store.list
    monkeypatch.setattr(store, "list", lambda *f, **kw: reads.append(f) or real(*f, **kw))

    def listed(*filters: str) -> bytes:
        return stub.List(cpb.ListContainersRequest(filters=list(filters)), metadata=MD).SerializeToString()

    first = listed()
    assert len(reads) == 1  # nothing kept yet: the records were read (and their encodings kept)
    assert listed() == first and len(reads) == 1  # all kept: answered without reading a record
    assert cpb.ListContainersResponse.FromString(listed("labels.i==3")).containers[0].id == "k3"
    assert len(reads) == 1
    store.update(ctrledger.Container(id="k2", labels={"i": "twenty"}), "labels.i")  # not through the server
    after = cpb.ListContainersResponse.FromString(listed())
    assert [c.labels["i"] for c in after.containers] == ["0", "1", "twenty", "3", "4"] and len(reads) == 2
    stub.Update(cpb.UpdateContainerRequest(container=wire_container("k4", i="forty")), metadata=MD)  # kept
    store.delete("k0")
    after = cpb.ListContainersResponse.FromString(listed())
    assert [c.id for c in after.containers] == ["k1", "k2", "k3", "k4"] and len(reads) == 2
    assert after.containers[3].labels["i"] == "forty"


def test_liststream_across_pages_sends_each_record_once_in_order(
    server: Server, stub: cgrpc.ContainersStub, store: ctrledger.Store,
) -> None:
    from ctrledger.server.containerd import STREAM_PAGE

    n = 2 * STREAM_PAGE + 7  # two whole pages and a part
    for i in range(n):
        store.create(make(f"p{i:05d}", labels={"i": str(i)}))
    got = list(stub.ListStream(cpb.ListContainersRequest(), metadata=MD))
    assert [m.container.id for m in got] == [f"p{i:05d}" for i in range(n)]
    assert [m.container.labels["i"] for m in got] == [str(i) for i in range(n)]
    evens = [m.container.id for m in stub.ListStream(cpb.ListContainersRequest(filters=["labels.i~=[02468]$"]),
                                                       metadata=MD)]
    assert evens == [f"p{i:05d}" for i in range(0, n, 2)]


def test_a_client_that_stops_reading_costs_nothing(server: Server, store: ctrledger.Store,
                                                   stub: cgrpc.ContainersStub) -> None:
    pad = ctrledger.Payload("example.com/pad", b"p" * 100_000)
    for i in range(100):
        store.create(make(f"c{i:05d}", extensions={"pad": pad}))  # 10 MB: more than the stream's window
    ch = channel(server)
    stream = cgrpc.ContainersStub(ch).ListStream(cpb.ListContainersRequest(), metadata=MD)
    assert next(stream).container.id == "c00000"  # ...and never reads on: flow control holds the server
    events = egrpc.EventsStub(ch).Subscribe(epb.SubscribeRequest(), metadata=MD)  # never read either
    # Still served (a held server would miss the deadline: DEADLINE_EXCEEDED fails the test).
    stub.Create(cpb.CreateContainerRequest(container=wire_container("still-served")), metadata=MD, timeout=30)
    got = stub.Get(cpb.GetContainerRequest(id="still-served"), metadata=MD, timeout=30)
    assert got.container.id == "still-served"
    stream.cancel()
    events.cancel()
    ch.close()


def test_publish_and_forward_are_refused_and_reach_no_subscriber(server: Server, stub: cgrpc.ContainersStub) -> None:
    ch = channel(server)
    events = egrpc.EventsStub(ch)
    live = events.Subscribe(epb.SubscribeRequest())
    fake = epb.Envelope(namespace="default", topic="/containers/delete")
    fake.event.CopyFrom(encode_event(evpb.ContainerDelete(id="x")))
    publish = epb.PublishRequest(topic="/containers/delete", event=fake.event)
    for method, call in [
        ("Publish", lambda: events.Publish(publish, metadata=MD)),
        ("Forward", lambda: events.Forward(epb.ForwardRequest(envelope=fake), metadata=MD)),
    ]:
        code, message = status_of(call)
        assert code == grpc.StatusCode.UNIMPLEMENTED
        assert message.startswith(f"Events/{method} is not served: ctrledger's events are its log's")
    stub.Create(cpb.CreateContainerRequest(container=wire_container("real")), metadata=MD)
    first = next(live)  # the first envelope this subscriber sees is the log's create, not the fake delete
    assert (first.topic, decode_event(first.event).id) == ("/containers/create", "real")  # type: ignore[union-attr]
    live.cancel()
    ch.close()


def _watcher(server: Server, store: ctrledger.Store) -> subprocess.Popen[str]:
    """A Ledger/Watch client in its own process, live (it has received one event), then stopped."""
    import select

    proc = subprocess.Popen([sys.executable, "-m", "tests.watcher_process", str(server.path)],
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
    assert proc.stdout is not None
    n = 0
    while not select.select([proc.stdout], [], [], 0.2)[0]:
        n += 1  # it subscribes asynchronously: write until its subscription sees one
        store.create(make(f"warm-{n}"))
        server.hub.notify()
        assert proc.poll() is None, "the watcher process ended"
    assert proc.stdout.readline().strip() == "first"
    os.kill(proc.pid, signal.SIGSTOP)  # from now on it reads nothing
    return proc


def _flood(server: Server, store: ctrledger.Store, count: int) -> list[int]:
    """``count`` updates, each an envelope of ~80 KB (the full label set): far more than a
    transport buffers. Returns their log positions."""
    store.create(make("big"))
    positions = []
    for i in range(count):
        labels = {f"k{j:02d}": f"{i}-" + "v" * 4000 for j in range(20)}
        store.update(ctrledger.Container(id="big", labels=labels), "labels")
        positions.append(store.position)
        server.hub.notify()
    return positions


def _read_all(stream: Any, count: int) -> list[int]:
    return [next(stream).position for _ in range(count)]


def test_a_subscriber_that_never_reads_is_cut_off_and_can_resume(store: ctrledger.Store) -> None:
    with served(store, event_queue=50) as server:
        proc = _watcher(server, store)
        try:
            ch = channel(server)
            ledger = lgrpc.LedgerStub(ch)
            head = store.position
            fast = ledger.Watch(lpb.WatchRequest(after=head))  # a subscriber that reads, all along
            reading = ThreadPoolExecutor(1).submit(_read_all, fast, 151)
            positions = _flood(server, store, 150)
            # the others get everything, in order, while the stopped one holds nothing back
            assert reading.result(timeout=60) == [head + 1, *positions]
            assert cgrpc.ContainersStub(ch).Get(cpb.GetContainerRequest(id="big"), metadata=MD).container.id == "big"
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        out, _ = proc.communicate(timeout=60)
        ended = json.loads(out.splitlines()[-1])
        got = ended["positions"]
        # what the transport already held, then a clear status naming where to resume
        assert ended["code"] == "RESOURCE_EXHAUSTED"
        assert ended["details"] == (f"this subscriber fell more than 50 events behind; resume after position "
                                    f"{got[-1]} (metadata ctrledger-from-position)")
        assert got == list(range(got[0], got[-1] + 1)) and got[-1] < positions[-1]
        resumed = ledger.Watch(lpb.WatchRequest(after=got[-1]))
        rest = _read_all(resumed, positions[-1] - got[-1])
        assert got + rest == list(range(got[0], positions[-1] + 1))  # no gap, no repeat
        containerd_resumed = egrpc.EventsStub(ch).Subscribe(epb.SubscribeRequest(),
                                                            metadata=(("ctrledger-from-position", str(got[-1])),))
        assert next(containerd_resumed).topic == "/containers/update"
        for stream in (fast, resumed, containerd_resumed):
            stream.cancel()
        ch.close()


def test_a_cut_off_subscriber_that_stays_stalled_is_cancelled_and_frees_its_thread(store: ctrledger.Store) -> None:
    # four workers: the stalled watcher, the reading one, and two for the calls below
    with served(store, event_queue=20, event_stall=0, max_workers=4) as server:
        proc = _watcher(server, store)
        try:
            ch = channel(server)
            ledger = lgrpc.LedgerStub(ch)
            fast = ledger.Watch(lpb.WatchRequest(after=store.position))
            reading = ThreadPoolExecutor(1).submit(_read_all, fast, 121)
            positions = _flood(server, store, 120)
            assert reading.result(timeout=60)[-1] == positions[-1]
            # its thread is free again: two more streams and a call fit in the four workers
            more = [ledger.Watch(lpb.WatchRequest(after=0), timeout=30) for _ in range(2)]
            assert [next(m).position for m in more] == [1, 1]
            for m in more:
                m.cancel()
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        out, _ = proc.communicate(timeout=60)
        assert json.loads(out.splitlines()[-1])["code"] == "CANCELLED"
        fast.cancel()
        ch.close()


def test_subscribe_filters_and_resumes_from_a_position(server: Server, stub: cgrpc.ContainersStub,
                                                        store: ctrledger.Store) -> None:
    ch = channel(server)
    events = egrpc.EventsStub(ch)
    stub.Create(cpb.CreateContainerRequest(container=wire_container("a")), metadata=MD)
    store.update(ctrledger.Container(id="a", image="i2", labels={"x": "1"}), "image", "labels.x")  # one operation
    stub.Delete(cpb.DeleteContainerRequest(id="a"), metadata=MD)
    replay = events.Subscribe(epb.SubscribeRequest(filters=['topic~="/containers/"']),
                              metadata=(("ctrledger-from-position", "0"),))
    got = [next(replay) for _ in range(3)]
    assert [e.topic for e in got] == ["/containers/create", "/containers/update", "/containers/delete"]
    assert [e.event.type_url for e in got] == [
        "containerd.events.ContainerCreate", "containerd.events.ContainerUpdate", "containerd.events.ContainerDelete"]
    update = decode_event(got[1].event)
    assert isinstance(update, evpb.ContainerUpdate)
    assert (update.id, update.image, dict(update.labels)) == ("a", "i2", {"x": "1"})
    live = events.Subscribe(epb.SubscribeRequest(filters=['topic=="/containers/delete"', "namespace==other"]))
    time.sleep(0.2)
    stub.Create(cpb.CreateContainerRequest(container=wire_container("b")), metadata=MD)
    stub.Create(cpb.CreateContainerRequest(container=wire_container("b")), metadata=metadata("other"))
    stub.Delete(cpb.DeleteContainerRequest(id="b"), metadata=MD)
    assert [(e.namespace, e.topic) for e in (next(live), next(live))] == [
        ("other", "/containers/create"), ("default", "/containers/delete")]
    code, message = status_of(lambda: next(events.Subscribe(epb.SubscribeRequest(filters=["topic=="]))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "expected value or quoted" in message
    code, _ = status_of(lambda: next(events.Subscribe(epb.SubscribeRequest(),
                                                      metadata=(("ctrledger-from-position", "x"),))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    replay.cancel()
    live.cancel()
    ch.close()


def test_ledger_watch_history_and_checkpoint(server: Server, stub: cgrpc.ContainersStub) -> None:
    ch = channel(server)
    ledger = lgrpc.LedgerStub(ch)
    stub.Create(cpb.CreateContainerRequest(container=wire_container("w", a="1")), metadata=MD)
    stub.Update(cpb.UpdateContainerRequest(container=wire_container("w", a="2"),
                                           update_mask=field_mask_pb2.FieldMask(paths=["labels.a"])), metadata=MD)
    watch = ledger.Watch(lpb.WatchRequest(after=1))
    first = next(watch)
    assert (first.position, first.envelope.topic, first.kind, first.actor) == (2, "/containers/update",
                                                                               "LabelsChanged", ME)
    history = list(ledger.History(lpb.HistoryRequest(id="w"), metadata=MD))
    assert [h.kind for h in history] == ["Created", "LabelsChanged"]
    change = history[1].changes[0]
    assert (change.field, json.loads(change.old_json), json.loads(change.new_json)) == ("labels.a", "1", "2")
    then = ledger.Get(lpb.GetRequest(id="w", as_of=lpb.Point(position=1)), metadata=MD)
    assert then.container.labels == {"a": "1"} and then.version == 1
    cp = ledger.Checkpoint(lpb.CheckpointRequest())
    assert cp.size == 2
    assert ledger.Verify(lpb.VerifyRequest(checkpoint=cp)).ok
    assert ledger.Prove(lpb.ProveRequest(position=2, checkpoint=cp)).root == cp.root
    code, message = status_of(lambda: ledger.Get(lpb.GetRequest(id="w", as_of=lpb.Point(position=99)),
                                                 metadata=MD))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "in the future" in message
    watch.cancel()
    ch.close()


# -- the real command ----------------------------------------------------------------------------


def test_ctrledger_serve_command_serves_ctr_and_drains_on_sigterm(tmp_path: Path) -> None:
    d = Path(short_dir())
    sock = d / "s.sock"
    proc = subprocess.Popen([sys.executable, "-m", "ctrledger", "serve", "--db", str(tmp_path / "l.db"),
                             "--address", f"unix://{sock}"], stderr=subprocess.PIPE, text=True)
    try:
        wait_for_socket(sock)
        srv = type("S", (), {"path": str(sock)})()
        ctr(srv, "containers", "create", "--rootfs", str(tmp_path), "web-1")  # type: ignore[arg-type]
        assert ctr(srv, "containers", "ls", "-q").stdout.split() == ["web-1"]  # type: ignore[arg-type]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "ctrledger serve:" in err
    assert not sock.exists()
    with ctrledger.open(tmp_path / "l.db") as s:
        assert [h.client.split("[")[0] for h in s.history("web-1")] == ["grpc ctr"]


HOWTO = Path(__file__).resolve().parent.parent / "docs" / "howto" / "serve-containerd-clients.md"


def test_the_howto_ctr_session_runs(server: Server, store: ctrledger.Store, tmp_path: Path) -> None:
    text = HOWTO.read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```console\n")[1:]]
    assert blocks, "the how-to has no console block"
    env = {**os.environ, "SOCK": str(server.path), "ROOTFS": str(tmp_path)}
    ran = 0
    for block in blocks:
        steps: list[tuple[str, list[str]]] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line.rstrip())
        for command, expected in steps:
            assert command.startswith("ctr "), command
            ctr_binary()
            proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=30)
            assert proc.returncode == 0, f"{command}: {proc.stderr}"
            got = "\n".join(line.rstrip() for line in proc.stdout.splitlines()).strip("\n")
            assert got == "\n".join(expected).strip("\n"), command
            ran += 1
    assert ran >= 8
    assert [h.kind for h in store.history("web-1")] == ["Created", "LabelsChanged", "LabelsChanged", "Deleted"]


def test_many_clients_at_once_each_call_its_own_transaction(server: Server, store: ctrledger.Store) -> None:
    def client(k: int) -> list[str]:
        ch = channel(server)
        stub = cgrpc.ContainersStub(ch)
        done = []
        for i in range(15):
            cid = f"t{k}-{i}"
            stub.Create(cpb.CreateContainerRequest(container=wire_container(cid)), metadata=MD)
            stub.Update(cpb.UpdateContainerRequest(container=wire_container(cid, n=str(i)),
                                                   update_mask=field_mask_pb2.FieldMask(paths=["labels.n"])),
                        metadata=MD)
            done.append(cid)
        ch.close()
        return done

    ch = channel(server)
    watch = lgrpc.LedgerStub(ch).Watch(lpb.WatchRequest(after=0))  # from the start: it sees all 240
    seen = ThreadPoolExecutor(1).submit(lambda: [next(watch) for _ in range(240)])
    with ThreadPoolExecutor(8) as pool:
        made = sorted(cid for ids in pool.map(client, range(8)) for cid in ids)
    assert [c.id for c in store.list()] == made and len(made) == 120
    assert all(c.labels == {"n": c.id.split("-")[1]} for c in store.list())
    assert store.position == 240  # one create and one label event each: nothing lost, nothing doubled
    # eight writers fanning out their own events: each once, in log order
    events = seen.result(timeout=60)
    assert [e.position for e in events] == list(range(1, 241))
    assert sorted(e.envelope.topic for e in events) == ["/containers/create"] * 120 + ["/containers/update"] * 120
    watch.cancel()
    ch.close()


def test_records_are_encoded_once_per_version_and_the_cache_is_bounded(store: ctrledger.Store) -> None:
    from ctrledger.server.translate import EncodedRecords, container_to_wire

    a, b = store.create(make("a", labels={"x": "1"})), store.create(make("b"))
    one = len(EncodedRecords().field1("default", a))
    cache = EncodedRecords(max_bytes=one)
    assert cache.field1("default", a) == cpb.GetContainerResponse(container=container_to_wire(a)).SerializeToString()
    assert cache.size == one
    listed = cpb.ListContainersResponse.FromString(cache.many("default", [a, b]))
    assert [container_to_wire(c) for c in (a, b)] == list(listed.containers)
    assert 0 < cache.size <= one  # two records do not fit: the older went
    a2 = store.update(ctrledger.Container(id="a", labels={"x": "2"}), "labels.x")
    assert cpb.GetContainerResponse.FromString(cache.field1("default", a2)).container.labels["x"] == "2"


def test_stop_ends_event_streams_and_removes_the_socket(store: ctrledger.Store) -> None:
    with served(store) as srv:
        ch = channel(srv)
        stream = egrpc.EventsStub(ch).Subscribe(epb.SubscribeRequest())
        reader = ThreadPoolExecutor(1).submit(lambda: list(stream))
        time.sleep(0.3)
        started = time.monotonic()
        srv.stop(grace=5)
        assert time.monotonic() - started < 5
        assert reader.result(timeout=5) == []  # the stream ended, with OK
        assert srv.path is not None and not os.path.exists(srv.path)
        ch.close()


def test_status_events_are_containerds_task_events(server: Server, store: Any) -> None:
    from ctrledger.wire.containerd.events import task_pb2

    store.create(make("web-1"))
    ch = channel(server)
    stream = egrpc.EventsStub(ch).Subscribe(epb.SubscribeRequest(filters=['topic~="^/tasks/"']),
                                            metadata=(("ctrledger-from-position", "0"),))
    store.started("web-1", pid=4242)
    store.paused("web-1")
    store.resumed("web-1")
    store.exited("web-1", exit_code=137, reason="OOMKilled")
    got = [next(stream) for _ in range(4)]
    assert [e.topic for e in got] == ["/tasks/start", "/tasks/paused", "/tasks/resumed", "/tasks/exit"]
    start, exit_ = decode_event(got[0].event), decode_event(got[3].event)
    assert isinstance(start, task_pb2.TaskStart) and (start.container_id, start.pid) == ("web-1", 4242)
    assert isinstance(exit_, task_pb2.TaskExit)
    assert (exit_.container_id, exit_.id, exit_.pid, exit_.exit_status) == ("web-1", "web-1", 4242, 137)
    assert exit_.exited_at.seconds > 0
    stream.cancel()
    ch.close()
