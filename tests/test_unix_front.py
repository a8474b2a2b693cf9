"""The unix front (``ctrledger.server.identity.UnixFront``) in front of a plain socket server
standing in for gRPC's: each client's credentials behind the abstract name its relayed connection
comes from, forged names refused, bytes both ways with half-close and back-pressure, many
clients at once, a killed server's socket taken over.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

import ctrledger
from ctrledger.server import Server
from ctrledger.server.identity import UnixFront
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2 as cpb
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2_grpc as cgrpc

from .serving import metadata, short_dir

BUFFER = 256 * 1024  # what the relay reads at once


class Backend:
    """A unix socket server: each connection runs ``handler(conn)`` in a thread of its own."""

    def __init__(self, path: str, handler: Callable[[socket.socket], None]) -> None:
        self.path = path
        self.handler = handler
        self.peers: list[str] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(128)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, addr = self.sock.accept()
            except OSError:
                return
            self.peers.append(addr.decode() if isinstance(addr, bytes) else addr)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with conn:
            try:
                self.handler(conn)
            except OSError:
                pass


def echo(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


@pytest.fixture
def where() -> Iterator[Path]:
    d = Path(short_dir())
    yield d
    subprocess.run(["rm", "-rf", str(d)], check=False)


def fronted(where: Path, handler: Callable[[socket.socket], None]) -> tuple[UnixFront, Backend]:
    backend = Backend(str(where / "backend.sock"), handler)
    return UnixFront(str(where / "front.sock"), backend.path), backend


def connect(front: UnixFront) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)  # a relay that loses an EOF fails the test instead of hanging it
    s.connect(front.path)
    return s


def recv_all(s: socket.socket) -> bytes:
    chunks = []
    while data := s.recv(1 << 20):
        chunks.append(data)
    return b"".join(chunks)


# -- credentials through the relay -----------------------------------------------------------------------


def test_the_backend_sees_each_client_under_its_own_credentials(where: Path) -> None:
    front, backend = fronted(where, echo)
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", "import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]);"
             "s.sendall(b'hi'); s.recv(2); print('ok', flush=True); time.sleep(60)", front.path],
            stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None and child.stdout.readline() == "ok\n"
            mine = connect(front)
            mine.sendall(b"x")
            assert mine.recv(1) == b"x"
            peers = [front.peer_of("unix-abstract:" + name.lstrip("\0")) for name in backend.peers]
            assert len(peers) == 2 and None not in peers
            by_pid = {p.pid: p for p in peers if p is not None}
            assert set(by_pid) == {child.pid, os.getpid()}
            for pid, p in by_pid.items():
                assert (p.uid, p.gid) == (os.getuid(), os.getgid())
                assert p.process == Path(f"/proc/{pid}/comm").read_text().strip()
            mine.close()
        finally:
            child.kill()
            child.wait()
    finally:
        front.close()


def _forwarder(listen: str, backend: str, name: str) -> socket.socket:
    """A relay of the test's own: connects to ``backend`` from the abstract address ``name``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(listen)
    sock.listen(8)

    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            back = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            back.bind("\0" + name)
            back.connect(backend)
            for a, b in ((conn, back), (back, conn)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return sock


def _other_token(front: UnixFront) -> str:
    while (token := secrets.token_hex(6)) == front._token:
        pass
    return token


@pytest.mark.parametrize("forged", [
    # Abstract names are one namespace for the whole machine: each forged name is new, so two test
    # runs at once do not take each other's (the forwarder could not bind it: a timeout, not a refusal).
    pytest.param(lambda front: f"ctrledger-{_other_token(front)}-1", id="another-token"),
    pytest.param(lambda front: f"ctrledger-{front._token}-999999", id="the-token-and-a-number-not-given-out"),
    pytest.param(lambda front: f"forged-{secrets.token_hex(8)}", id="not-the-front-s-format"),
])
def test_a_forged_abstract_name_is_refused(tmp_path: Path, forged: Callable[[UnixFront], str]) -> None:
    with ctrledger.open(tmp_path / "l.db", synchronous="NORMAL") as store:
        d = Path(short_dir())
        try:
            with Server(store, address=f"unix://{d}/s.sock") as server:
                assert server.front is not None
                fake = _forwarder(str(d / "fake.sock"), server.front._backend, forged(server.front))
                ch = grpc.insecure_channel(f"unix:{d}/fake.sock")
                with pytest.raises(grpc.RpcError) as ei:
                    cgrpc.ContainersStub(ch).Create(  # type: ignore[no-untyped-call]
                        cpb.CreateContainerRequest(container=cpb.Container(id="forged")), metadata=metadata("default"))
                assert ei.value.code() == grpc.StatusCode.PERMISSION_DENIED
                ch.close()
                fake.close()
            assert store.list() == []  # nothing written
        finally:
            subprocess.run(["rm", "-rf", str(d)], check=False)


# -- bytes both ways ---------------------------------------------------------------------------------------


def test_big_messages_both_ways_and_many_clients_at_once(where: Path) -> None:
    front, _ = fronted(where, echo)
    try:
        def client(k: int) -> bool:
            payload = hashlib.sha256(str(k).encode()).digest() * (1 << 15 if k % 10 == 0 else 64)  # 1 MiB or 2 KiB
            s = connect(front)
            sender = threading.Thread(target=lambda: (s.sendall(payload), s.shutdown(socket.SHUT_WR)))
            sender.start()
            got = recv_all(s)  # the echo ends when our EOF, passed on, ends it
            sender.join()
            s.close()
            return got == payload

        results: list[bool] = []
        threads = [threading.Thread(target=lambda k=k: results.append(client(k))) for k in range(60)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert results == [True] * 60
    finally:
        front.close()


def test_a_half_close_is_passed_on_both_ways(where: Path) -> None:
    def answer_after_eof(conn: socket.socket) -> None:
        question = recv_all(conn)  # returns only once the client's SHUT_WR has come through
        conn.sendall(b"answer to " + question)
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)  # ...and the server's EOF reaches the client while this side is still open

    front, _ = fronted(where, answer_after_eof)
    try:
        s = connect(front)
        s.sendall(b"question")
        s.shutdown(socket.SHUT_WR)
        assert recv_all(s) == b"answer to question"
        s.close()
    finally:
        front.close()


def test_a_client_that_never_reads_holds_the_backend_back_not_the_relay_s_memory(where: Path) -> None:
    total = 64 << 20
    sent = [0]

    def stream(conn: socket.socket) -> None:
        chunk = b"z" * 65536
        while sent[0] < total:
            sent[0] += conn.send(chunk)

    front, _ = fronted(where, stream)
    try:
        s = connect(front)  # ...and never reads
        last, steady = -1, 0
        deadline = time.monotonic() + 60
        while steady < 10 and sent[0] < total and time.monotonic() < deadline:
            time.sleep(0.1)
            steady = steady + 1 if sent[0] == last else 0
            last = sent[0]
        # held back: what the sockets buffer and one read in the relay, not the 64 MiB
        assert sent[0] < 8 * BUFFER + (8 << 20), sent[0]
        s.close()
    finally:
        front.close()


# -- a server that dies --------------------------------------------------------------------------------------

_HOLDER = """
import socket, sys, time
from ctrledger.server.identity import UnixFront
back = socket.socket(socket.AF_UNIX); back.bind(sys.argv[2]); back.listen(8)
front = UnixFront(sys.argv[1], sys.argv[2])
print("ready", flush=True)
conn, _ = back.accept()
while data := conn.recv(65536):
    conn.sendall(data)
time.sleep(60)
"""


def test_a_killed_server_s_socket_is_stale_and_taken_over(where: Path) -> None:
    path = str(where / "front.sock")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, path, str(where / "b.sock")], stdout=subprocess.PIPE,
                              text=True, cwd=Path(__file__).parent.parent)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(60)
        s.connect(path)
        s.sendall(b"still there")
        assert s.recv(64) == b"still there"
        holder.kill()  # the server dies without a word: its socket file stays behind
        holder.wait()
        assert recv_all(s) == b""  # the client's connection ends
        s.close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert os.path.exists(path)
    front = UnixFront(path, str(where / "b.sock"))  # stale (nobody listens): taken over
    try:
        probe = socket.socket(socket.AF_UNIX)
        probe.connect(path)  # the new front accepts
        probe.close()
        with pytest.raises(OSError, match="another server is listening"):
            UnixFront(path, str(where / "b.sock"))
    finally:
        front.close()
    assert not os.path.exists(path)
