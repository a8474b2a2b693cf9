"""The auditing proxy (``ctrledger serve --upstream``) under hostile callers, against a real
containerd: odd processes, running out of file descriptors, raw HTTP/2 that stops or breaks
half-way, streams that never end. What must hold: containerd's answers pass unchanged, every
accepted change is recorded once under its caller, no claim is left held, and the proxy keeps
accepting and stops within its grace."""

from __future__ import annotations

import contextlib
import os
import resource
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import hpack
import pytest

import ctrledger
from ctrledger.follow import Proxy
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2 as cpb
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2_grpc as cgrpc

from .live_containerd import CTR, Containerd, wait_until

SPEC_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
CREATE = "/containerd.services.containers.v1.Containers/Create"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST, SETTINGS = 0x0, 0x1, 0x3, 0x4


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ctrledger.Store]:
    with ctrledger.open(tmp_path / "ledger.db") as s:
        yield s


def me() -> str:
    return subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()


def wire_container(cid: str, **labels: str) -> cpb.Container:
    c = cpb.Container(id=cid, runtime=cpb.Container.Runtime(name="io.containerd.runc.v2"), labels=labels)
    c.spec.type_url, c.spec.value = SPEC_URL, b"{}"
    return c


def create(path: str, ns: str, cid: str, timeout: float = 10) -> None:
    with grpc.insecure_channel(f"unix://{path}") as ch:
        cgrpc.ContainersStub(ch).Create(cpb.CreateContainerRequest(container=wire_container(cid)),
                                        metadata=(("containerd-namespace", ns),), timeout=timeout)


def own_connection(path: str) -> grpc.Channel:
    """A channel on a connection of its own (grpcio otherwise shares one between channels)."""
    return grpc.insecure_channel(f"unix://{path}", options=(("grpc.use_local_subchannel_pool", 1),))


def ids(cd: Containerd, ns: str) -> set[str]:
    with grpc.insecure_channel(f"unix://{cd.socket}") as ch:
        got = cgrpc.ContainersStub(ch).List(cpb.ListContainersRequest(), metadata=(("containerd-namespace", ns),),
                                            timeout=30)
        return {c.id for c in got.containers}


# -- raw HTTP/2, for what a grpc library would not send ------------------------------------


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def request_headers(enc: hpack.Encoder, path: str, ns: str) -> bytes:
    return enc.encode([(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
                       ("content-type", "application/grpc"), ("te", "trailers"), ("containerd-namespace", ns)])


def create_message(cid: str) -> bytes:
    body = cpb.CreateContainerRequest(container=wire_container(cid)).SerializeToString()
    return b"\0" + len(body).to_bytes(4, "big") + body


# -- the unix front: whoever connects, it keeps accepting ------------------------------------

_NAMED = r"""
import ctypes, sys
import grpc
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2 as cpb
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2_grpc as cgrpc
ctypes.CDLL(None).prctl(15, ctypes.c_char_p(b"odd\xff\xfename"), 0, 0, 0)  # PR_SET_NAME
c = cpb.Container(id=sys.argv[3], runtime=cpb.Container.Runtime(name="io.containerd.runc.v2"))
c.spec.type_url, c.spec.value = "types.containerd.io/opencontainers/runtime-spec/1/Spec", b"{}"
with grpc.insecure_channel("unix://" + sys.argv[1]) as ch:
    cgrpc.ContainersStub(ch).Create(cpb.CreateContainerRequest(container=c),
                                    metadata=(("containerd-namespace", sys.argv[2]),), timeout=10)
"""


def test_a_caller_whose_process_name_is_not_utf8_is_served_and_named(tmp_path: Path, store: ctrledger.Store,
                                                                      containerd: Containerd) -> None:
    """A process may name itself any bytes (prctl): reading that name once killed the accepting
    thread (UnicodeDecodeError), and the proxy accepted no connection after it."""
    ns = "hostile-comm"
    with Proxy(store, containerd.socket, address=f"unix://{tmp_path}/proxy.sock", follow=False) as proxy:
        done = subprocess.run([sys.executable, "-c", _NAMED, proxy.path, ns, "odd1"], capture_output=True,
                              text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        [entry] = store.history("odd1", namespace=ns)
        assert (entry.kind, entry.actor) == ("Created", me())
        assert entry.client.startswith("grpc odd\\xff\\xfename["), entry.client
        create(proxy.path, ns, "after", timeout=5)  # and the next caller is served as ever
        assert [e.kind for e in store.history("after", namespace=ns)] == ["Created"]


def test_running_out_of_file_descriptors_does_not_stop_accepting(tmp_path: Path, store: ctrledger.Store,
                                                                 containerd: Containerd) -> None:
    """accept() failing with EMFILE (too many connections for the process's limit) once ended the
    accepting thread for good: once descriptors are free again, the proxy serves again."""
    ns = "hostile-emfile"
    with Proxy(store, containerd.socket, address=f"unix://{tmp_path}/proxy.sock", follow=False) as proxy:
        # a caller that connects on cue, from its own process (its own descriptors)
        caller = subprocess.Popen([sys.executable, "-c", "import socket, sys\nsys.stdin.read(1)\n"
                                   "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); sys.stdin.read(1)",
                                   proxy.path], stdin=subprocess.PIPE)
        assert caller.stdin is not None
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        held: list[int] = []
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(512, hard), hard))
            try:
                while True:
                    held.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                pass
            # The pending accept() holds one descriptor already; leave one more, for the relay's
            # socket to containerd: the accept after it finds none.
            os.close(held.pop())
            caller.stdin.write(b"x")
            caller.stdin.flush()
            time.sleep(0.3)
        finally:
            for fd in held:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        caller.communicate(b"x", timeout=10)
        create(proxy.path, ns, "later", timeout=5)
        assert [e.kind for e in store.history("later", namespace=ns)] == ["Created"]


# -- calls on one container from two connections ----------------------------------------------


class _Stalled:
    """A store whose ``observe`` of container ``w`` labelled ``k=x`` waits for ``go`` (a slow disk, say)."""

    def __init__(self, store: ctrledger.Store) -> None:
        self.store = store
        self.go = threading.Event()
        self.waiting = threading.Event()

    def observe(self, cid: str, state: ctrledger.Container | None, **kwargs: object) -> object:
        if cid == "w" and state is not None and state.labels.get("k") == "x":
            self.waiting.set()
            assert self.go.wait(30)
        return self.store.observe(cid, state, **kwargs)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


class _FollowerFirst:
    """A store on which the follower records each exit just before the proxy does (as it may: it
    reads ``/tasks/exit`` while the proxy records the ``Tasks/Delete`` that follows)."""

    def __init__(self, store: ctrledger.Store) -> None:
        self.store = store

    def exited(self, cid: str, **kwargs: Any) -> object:
        self.store.exited(cid, exit_code=kwargs["exit_code"], at=kwargs["at"], namespace=kwargs["namespace"],
                          actor="containerd")
        return self.store.exited(cid, **kwargs)

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


def test_an_exit_the_follower_recorded_first_is_no_error(tmp_path: Path, store: ctrledger.Store,
                                                         containerd: Containerd, root: Path) -> None:
    """The proxy checks the status, then records the exit; the follower may record it in
    between. The store then refuses the proxy's write (already exited): that is the change
    recorded, not a failure to record (it was counted and logged as one)."""
    ns = "hostile-exit-race"
    with Proxy(_FollowerFirst(store), containerd.socket, address=f"unix://{tmp_path}/proxy.sock",  # type: ignore[arg-type]
               follow=False) as proxy:
        done = containerd.ctr("run", "--rm", "--rootfs", str(root), "race1", "/bin/sh", "-c", "exit 5",
                              namespace=ns, address=proxy.path, check=False)
        assert done.returncode == 5
        entries = [(e.kind, e.actor) for e in store.history("race1", namespace=ns)]
        assert entries == [("Created", me()), ("Started", me()), ("Exited", "containerd"), ("Deleted", me())]
        exited = list(store.history("race1", namespace=ns))[2]
        assert store.get("race1", namespace=ns, as_of=exited.recorded_at).status.exit_code == 5
        assert proxy.errors == 0


def _label(k: str, cid: str = "u") -> cpb.UpdateContainerRequest:
    return cpb.UpdateContainerRequest(container=wire_container(cid, k=k), update_mask={"paths": ["labels.k"]})


@pytest.mark.parametrize("then", ["update", "delete"])
def test_a_late_record_of_an_earlier_call_does_not_take_the_ledger_back(
    tmp_path: Path, store: ctrledger.Store, containerd: Containerd, then: str
) -> None:
    """Two connections' calls on one container: containerd applies A then B, but each connection's
    answers are recorded by its own thread, so B may be recorded first (here: A's connection is
    still recording an earlier call, of another container, when A's answer comes). A's state,
    recorded after B's, once took the ledger back to it (B's label change undone, or B's delete
    undone: the container brought back), and the ledger disagreed with containerd for good."""
    ns = f"hostile-order-{then}"
    md = (("containerd-namespace", ns),)
    stalled = _Stalled(store)
    with Proxy(stalled, containerd.socket, address=f"unix://{tmp_path}/proxy.sock",  # type: ignore[arg-type]
               follow=False) as proxy, own_connection(proxy.path) as one, own_connection(proxy.path) as two:
        a, b = cgrpc.ContainersStub(one), cgrpc.ContainersStub(two)
        for cid in ("u", "w"):
            b.Create(cpb.CreateContainerRequest(container=wire_container(cid, k="zero")), metadata=md, timeout=10)
        first = [a.Update.future(_label("x", "w"), metadata=md, timeout=30)]
        assert stalled.waiting.wait(10)  # connection one records w: its answers wait
        first.append(a.Update.future(_label("first"), metadata=md, timeout=30))
        with grpc.insecure_channel(f"unix://{containerd.socket}") as ch:
            direct = cgrpc.ContainersStub(ch)
            wait_until(lambda: direct.Get(cpb.GetContainerRequest(id="u"), metadata=md, timeout=10)
                       .container.labels["k"] == "first", what="containerd to apply A")
            if then == "update":
                b.Update(_label("second"), metadata=md, timeout=10)
            else:
                b.Delete(cpb.DeleteContainerRequest(id="u"), metadata=md, timeout=10)
            stalled.go.set()
            for f in first:
                f.result(timeout=10)
            real = {c.id: dict(c.labels) for c in direct.List(cpb.ListContainersRequest(), metadata=md,
                                                              timeout=10).containers}
        assert real == ({"u": {"k": "second"}, "w": {"k": "x"}} if then == "update" else {"w": {"k": "x"}})
        assert {c.id: dict(c.labels) for c in store.list(namespace=ns)} == real
        kinds = [e.kind for e in store.history("u", namespace=ns)]
        assert kinds == (["Created", "LabelsChanged"] if then == "update" else ["Created", "Deleted"]), kinds
        assert proxy.errors == 0


def subscribed(events: subprocess.Popen[str], path: str, ns: str) -> str:
    """Once ``ctr events`` (``events``) is subscribed: a container is created in ``ns`` until its
    event comes through. Returns what it printed."""
    assert events.stdout is not None
    deadline = time.monotonic() + 10
    seen = ""
    while "/containers/create" not in seen and time.monotonic() < deadline:
        create(path, ns, f"probe{int(time.monotonic() * 1000)}")
        if select.select([events.stdout], [], [], 0.5)[0]:
            seen += events.stdout.readline()
    return seen


# -- stopping -----------------------------------------------------------------------------------


def test_after_answer_stop_records_a_call_answered_while_it_runs(tmp_path: Path, store: ctrledger.Store,
                                                                 containerd: Containerd) -> None:
    """A call whose answer came in just as stop began (its relay still queueing the record) is
    recorded: stop waits for the relays it closed to end before the recording thread's last
    item (before, the record could be queued after it, and never written)."""
    ns = "hostile-stop-race"
    proxy = Proxy(store, containerd.socket, address=f"unix://{tmp_path}/proxy.sock", follow=False,
                  record="after-answer").start()
    queueing, late = threading.Event(), threading.Event()
    accepted = proxy._accepted

    def slow(call: object, answer: bytes) -> None:
        queueing.set()
        assert late.wait(10)  # stop has begun
        time.sleep(0.2)  # and has closed the relays by now
        accepted(call, answer)  # type: ignore[arg-type]

    proxy._accepted = slow  # type: ignore[method-assign]
    def call() -> None:
        with contextlib.suppress(grpc.RpcError):  # stop closes the connection before the answer is relayed
            create(proxy.path, ns, "late1")

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    assert queueing.wait(10)
    stopping = threading.Thread(target=proxy.stop, kwargs={"grace": 0.0})
    stopping.start()
    late.set()
    stopping.join(15)
    assert not stopping.is_alive()
    assert [(e.id, e.kind, e.actor) for e in store.audit(namespace=ns)] == [("late1", "Created", me())]


def test_stop_ends_an_event_subscription_at_once(tmp_path: Path, store: ctrledger.Store,
                                                  containerd: Containerd) -> None:
    """``ctr events`` through the proxy: its events pass; on stop, the subscription (a call that
    never ends by itself) once kept the proxy waiting its whole grace, as if a call were in flight.
    It ends at once now, as when containerd stops (``Unavailable``)."""
    ns = "hostile-events"
    with Proxy(store, containerd.socket, address=f"unix://{tmp_path}/proxy.sock", follow=False) as proxy:
        events = subprocess.Popen([CTR, "-a", proxy.path, "events"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        try:
            seen = subscribed(events, proxy.path, ns)
            assert f" {ns} /containers/create " in seen, seen
            began = time.monotonic()
            proxy.stop(grace=5)
            took = time.monotonic() - began
            _, err = events.communicate(timeout=10)
        finally:
            events.kill()
            events.wait()
        assert took < 2, took
        assert events.returncode != 0 and "Unavailable" in err, err


# -- claims -------------------------------------------------------------------------------------


def test_a_claim_taken_while_the_connection_becomes_unreadable_is_released(
    tmp_path: Path, store: ctrledger.Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A recorded call's claim is taken before its last frame goes on, and may wait (the follower
    committing that container). If the other direction becomes unreadable meanwhile, the call is
    no longer followed: its claim, taken afterwards, was never released, and the follower would
    wait 30 s on every event of that container from then on. Here the upstream is a socket that
    answers with a frame the reader refuses (containerd's own bytes never are)."""
    ns, cid = "hostile-claim", "c1"
    upstream = socket.socket(socket.AF_UNIX)
    upstream.bind(str(tmp_path / "upstream.sock"))
    upstream.listen(1)
    body = create_message(cid)
    with upstream, Proxy(store, str(tmp_path / "upstream.sock"), address=f"unix://{tmp_path}/proxy.sock",
                         follow=False) as proxy, socket.socket(socket.AF_UNIX) as caller:
        caller.connect(proxy.path)
        up, _ = upstream.accept()
        with up:
            up.settimeout(10)
            with proxy.claims.writing({(ns, cid)}):  # the follower committing c1: the claim waits
                caller.sendall(PREFACE + frame(SETTINGS, 0, 0, b"")
                               + frame(HEADERS, 0x4, 1, request_headers(hpack.Encoder(), CREATE, ns))
                               + frame(DATA, 0x1, 1, body))
                up.sendall(frame(0x9, 0x4, 1, b"x"))  # CONTINUATION without HEADERS: unreadable
                wait_until(lambda: "cannot read the calls" in caplog.text, timeout=5, what="the tap to give up")
            got = b""
            while not got.endswith(body):  # the request went on, after its claim
                got += up.recv(65536)
            began = time.monotonic()
            proxy.claims.wait(ns, cid, timeout=3)  # as the follower does, for an event of c1
            assert time.monotonic() - began < 1, "the claim on c1 is still held"


def test_a_call_with_metadata_that_is_not_utf8_is_recorded_and_so_are_the_next(
    tmp_path: Path, store: ctrledger.Store, containerd: Containerd
) -> None:
    """containerd takes a metadata value that is not UTF-8 (a Latin-1 reason, say): the proxy once
    stopped reading that connection at it, and none of its calls was recorded under its caller."""
    ns = "hostile-latin1"
    with Proxy(store, containerd.socket, address=f"unix://{tmp_path}/proxy.sock", follow=False) as proxy, \
            socket.socket(socket.AF_UNIX) as caller:
        caller.connect(proxy.path)
        enc = hpack.Encoder()
        out = PREFACE + frame(SETTINGS, 0, 0, b"")
        for stream, cid in ((1, "l1"), (3, "l2")):
            block = enc.encode([(":method", "POST"), (":scheme", "http"), (":path", CREATE), (":authority", "x"),
                                ("content-type", "application/grpc"), ("te", "trailers"),
                                ("containerd-namespace", ns), (b"ctrledger-reason", b"caf\xe9")])
            out += frame(HEADERS, 0x4, stream, block) + frame(DATA, 0x1, stream, create_message(cid))
        caller.sendall(out)
        wait_until(lambda: ids(containerd, ns) == {"l1", "l2"}, what="containerd to create both")
        wait_until(lambda: len(list(store.audit(namespace=ns))) == 2, timeout=5)
        assert sorted((e.id, e.kind, e.actor, e.reason) for e in store.audit(namespace=ns)) == [
            ("l1", "Created", me(), "caf\\xe9"), ("l2", "Created", me(), "caf\\xe9")]


# -- ctr through the proxy, pinned ----------------------------------------------------------------


def test_ctr_run_detached_exec_pause_kill_and_remove_through_the_proxy(
    tmp_path: Path, store: ctrledger.Store, containerd: Containerd, root: Path
) -> None:
    """The real ctr, with the follower beside the proxy: each change under the caller's name but
    the exit (not a call: the follower's, as containerd); an exec neither starts nor ends the
    container, and its exit code comes back as directly; ``ctr events`` through the proxy sees it
    all; no claim is left held and nothing failed to record."""
    ns = "hostile-ctr"
    user = me()
    with Proxy(store, containerd.socket, address=f"unix://{tmp_path}/proxy.sock") as proxy:
        events = subprocess.Popen([CTR, "-a", proxy.path, "events"], stdout=subprocess.PIPE, text=True)
        try:
            def ctr(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
                return containerd.ctr(*args, namespace=ns, address=proxy.path, check=check)

            assert "/containers/create" in subscribed(events, proxy.path, f"{ns}-probe")
            ctr("run", "-d", "--rootfs", str(root), "d1", "/bin/sleep", "100")
            assert ctr("tasks", "exec", "--exec-id", "x1", "d1", "/bin/echo", "hi").stdout == "hi\n"
            codes = [containerd.ctr("tasks", "exec", "--exec-id", f"x{i}", "d1", "/bin/sh", "-c", "exit 3",
                                    namespace=ns, address=a, check=False).returncode
                     for i, a in ((2, proxy.path), (3, containerd.socket))]
            assert codes == [3, 3]
            ctr("tasks", "pause", "d1")
            ctr("tasks", "resume", "d1")
            ctr("tasks", "kill", "-s", "KILL", "d1")
            wait_until(lambda: store.get("d1", namespace=ns).status.state == "EXITED", what="the exit")
            ctr("tasks", "rm", "d1")
            ctr("containers", "rm", "d1")
            wait_until(lambda: len(list(store.history("d1", namespace=ns))) >= 6)
        finally:
            events.terminate()
            out, _ = events.communicate(timeout=10)
        entries = [(e.kind, e.actor) for e in store.history("d1", namespace=ns)]
        assert entries == [("Created", user), ("Started", user), ("Paused", user), ("Resumed", user),
                           ("Exited", "containerd"), ("Deleted", user)], entries
        assert store.get("d1", namespace=ns, as_of=list(store.history("d1", namespace=ns))[4].recorded_at
                         ).status.exit_code == 137
        topics = [line.split()[5] for line in out.splitlines() if line.split()[4:5] == [ns]]
        for topic in ("/containers/create", "/tasks/start", "/tasks/exec-started", "/tasks/paused",
                      "/tasks/resumed", "/tasks/exit", "/tasks/delete", "/containers/delete"):
            assert topic in topics, (topic, topics)
        began = time.monotonic()
        proxy.claims.wait(ns, "d1", timeout=2)
        assert time.monotonic() - began < 0.5 and proxy.errors == 0


# -- connections that stop half-way, pinned ---------------------------------------------------------


def test_connections_cut_anywhere_leave_no_thread_socket_or_claim(tmp_path: Path, store: ctrledger.Store,
                                                                   containerd: Containerd) -> None:
    """Callers that hang up at once, after the preface, half-closed, mid-request, after a whole
    request (before its answer), after resetting it, or with bytes that are not HTTP/2: every
    link ends, its threads and descriptors with it, no claim stays held, nothing is recorded twice
    or that containerd does not have (what it took without answering is the follower's)."""
    ns = "hostile-cut"
    with Proxy(store, containerd.socket, address=f"unix://{tmp_path}/proxy.sock", follow=False) as proxy:
        create(proxy.path, ns, "warm")  # the proxy's own threads and channel are up
        wait_until(lambda: not proxy._open_links(), what="the first connection to end")
        threads, fds = threading.active_count(), len(os.listdir("/proc/self/fd"))
        for i in range(16):
            kind, cid = i % 8, f"k{i}"
            enc = hpack.Encoder()
            start = PREFACE + frame(SETTINGS, 0, 0, b"") + frame(HEADERS, 0x4, 1, request_headers(enc, CREATE, ns))
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(proxy.path)
                s.settimeout(10)
                if kind == 1:
                    s.sendall(PREFACE)
                elif kind == 2:
                    s.sendall(PREFACE + frame(SETTINGS, 0, 0, b""))
                    s.shutdown(socket.SHUT_WR)
                    while s.recv(65536):  # containerd hangs up: so does the proxy
                        pass
                elif kind == 3:
                    s.sendall(b"garbage" * 100)
                elif kind == 4:
                    s.sendall(start + frame(DATA, 0x1, 1, create_message(cid)))
                elif kind == 5:
                    s.sendall(start + frame(DATA, 0, 1, create_message(cid)[:10]))
                elif kind == 6:
                    s.sendall(start + frame(DATA, 0x1, 1, create_message(cid)) + frame(RST, 0, 1, b"\0\0\0\x08"))
                elif kind == 7:
                    s.sendall(start + frame(DATA, 0x1, 1, create_message(cid)))
                    s.shutdown(socket.SHUT_WR)
                    while s.recv(65536):
                        pass
        wait_until(lambda: not proxy._open_links(), what="every link to end")
        wait_until(lambda: threading.active_count() == threads and len(os.listdir("/proc/self/fd")) == fds,
                   what=f"threads {threads} and descriptors {fds} as before")
        for i in range(16):
            began = time.monotonic()
            proxy.claims.wait(ns, f"k{i}", timeout=2)
            assert time.monotonic() - began < 0.5, f"a claim on k{i} is held"
        recorded = [e.id for e in store.audit(namespace=ns)]
        assert recorded[0] == "warm" and len(set(recorded)) == len(recorded) and set(recorded) <= ids(containerd, ns)
        create(proxy.path, ns, "after")  # and the proxy serves on
        assert [e.id for e in store.audit(namespace=ns)] == [*recorded, "after"]
