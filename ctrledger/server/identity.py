"""Who is calling: the peer's credentials, read by the kernel, and what the client adds.

gRPC's Python server does not expose a unix socket's peer, so ``ctrledger serve`` accepts on
the public socket itself (:class:`UnixFront`), reads each connection's ``SO_PEERCRED`` (uid,
gid, pid), and relays the bytes to the gRPC server's private socket (in a 0700 directory).
Each relay connects from its own abstract unix address, which the server sees as the call's
``context.peer()``: that is how a call finds its connection's credentials. A call that comes
in any other way (the private socket is not reachable by other users) has no credentials and
is refused with PERMISSION_DENIED; TCP (``--tcp``) calls are identified by their address only.

Request metadata a client may add (all optional, UTF-8, at most 1024 bytes each):

``ctrledger-reason``          why: recorded as the events' reason
``ctrledger-on-behalf-of``    a claimed actor: recorded in the events' ``client`` as a claim,
                              never as the actor (the actor is always the peer's user name)
``ctrledger-correlation-id``  an id of the client's own to group operations by
"""

from __future__ import annotations

import logging
import os
import pwd
import secrets
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from .status import WireError

__all__ = ["Caller", "Peer", "UnixFront", "caller_of", "peer_caller", "relay"]

log = logging.getLogger("ctrledger.server")

MAX_HEADER = 1024
REASON, ON_BEHALF_OF, CORRELATION_ID = "ctrledger-reason", "ctrledger-on-behalf-of", "ctrledger-correlation-id"


@dataclass(frozen=True)
class Peer:
    """A unix-socket client, as the kernel reported it when it connected."""

    uid: int
    gid: int
    pid: int
    user: str
    process: str

    @classmethod
    def of(cls, conn: socket.socket) -> Peer:
        pid, uid, gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                             struct.calcsize("3i")))
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = f"uid:{uid}"
        try:  # any bytes a process names itself (prctl), kept readable
            process = Path(f"/proc/{pid}/comm").read_bytes().decode("utf-8", "backslashreplace").strip()
        except OSError:
            process = "?"
        return cls(uid, gid, pid, user, process)


@dataclass(frozen=True)
class Caller:
    """What a write records about who asked: the store's ``actor``, ``client``, ``reason``."""

    actor: str
    client: str
    reason: str | None
    correlation_id: str | None


def _header(metadata: Sequence[tuple[str, str | bytes]], name: str) -> str | None:
    for key, value in metadata:
        if key == name:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            if len(text.encode()) > MAX_HEADER:
                raise WireError(grpc.StatusCode.INVALID_ARGUMENT,
                                f"metadata {name} is longer than {MAX_HEADER} bytes: invalid argument")
            return text
    return None


def caller_of(context: grpc.ServicerContext, front: UnixFront | None) -> Caller:
    """The caller of this call: peer credentials (unix) or address (TCP), plus its headers."""
    metadata = context.invocation_metadata() or ()
    where = context.peer()
    peer = front.peer_of(where) if front is not None else None
    if peer is not None:
        return peer_caller(peer, metadata)
    if where.startswith(("ipv4:", "ipv6:")):
        host = where.split(":", 1)[1].rsplit(":", 1)[0]
        return _with_headers(f"tcp:{host}", f"grpc tcp {where.split(':', 1)[1]}", metadata)
    _with_headers("", "", metadata)  # a header too long is named first, whoever calls
    raise WireError(grpc.StatusCode.PERMISSION_DENIED,
                    "connect through ctrledger's socket: this connection has no peer credentials")


def peer_caller(peer: Peer, metadata: Sequence[tuple[str, str | bytes]]) -> Caller:
    """The caller on a unix connection from ``peer``, with its call's headers (``WireError`` if one
    is too long)."""
    return _with_headers(peer.user, f"grpc {peer.process}[{peer.pid}] uid={peer.uid}", metadata)


def _with_headers(actor: str, client: str, metadata: Sequence[tuple[str, str | bytes]]) -> Caller:
    reason = _header(metadata, REASON)
    claim = _header(metadata, ON_BEHALF_OF)
    correlation_id = _header(metadata, CORRELATION_ID)
    if claim:
        client += f" on behalf of {claim} (claimed)"
    return Caller(actor, client, reason or None, correlation_id or None)


class UnixFront:
    """The public unix socket: accepts, reads peer credentials, relays to the gRPC server.

    ``relay``: instead, hand each accepted connection and its peer to this callable (which owns
    the connection from then on; ``backend`` is unused)."""

    def __init__(self, path: str, backend: str, *, group: str | None = None,
                 relay: Callable[[socket.socket, Peer], None] | None = None) -> None:
        self.path = path
        self._relay = relay
        self._backend = backend
        self._token = secrets.token_hex(6)
        self._peers: dict[str, Peer] = {}
        self._lock = threading.Lock()
        self._count = 0
        self._closed = threading.Event()
        if os.path.exists(path):
            if not stat.S_ISSOCK(os.stat(path).st_mode):
                raise OSError(f"{path} exists and is not a socket")
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)  # a stale socket left by a server that died
            else:
                raise OSError(f"{path}: another server is listening there")
            finally:
                probe.close()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        gid = _group_id(group) if group is not None else None
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # created 0600, then opened to the group: never world-accessible
        try:
            self._sock.bind(path)
        finally:
            os.umask(old)
        if gid is not None:
            os.chown(path, -1, gid)
        os.chmod(path, 0o660)
        self._sock.listen(128)
        self._thread = threading.Thread(target=self._accept, name="ctrledger-serve-accept", daemon=True)
        self._thread.start()

    def peer_of(self, where: str) -> Peer | None:
        with self._lock:
            return self._peers.get(where)

    def close(self) -> None:
        """Stop accepting; relays already open finish with their calls."""
        self._closed.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _accept(self) -> None:
        failing = False
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError as e:
                if self._closed.is_set():
                    return
                # out of file descriptors (EMFILE, ENFILE), say: the connection waits in the
                # backlog; accept again once connections have closed, never stop serving
                if not failing:
                    log.warning("cannot accept connections on %s (retrying): %s", self.path, e)
                failing = True
                time.sleep(0.05)
                continue
            failing = False
            try:
                self._open(conn)
            except Exception as e:  # noqa: BLE001 - one connection's failure never stops the others'
                log.warning("cannot serve a connection on %s: %s", self.path, e)
                conn.close()

    def _open(self, conn: socket.socket) -> None:
        peer = Peer.of(conn)
        if self._relay is not None:
            self._relay(conn, peer)
            return
        with self._lock:
            self._count += 1
            name = f"ctrledger-{self._token}-{self._count}"
            self._peers[f"unix-abstract:{name}"] = peer
        back = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            back.bind("\0" + name)
            back.connect(self._backend)
        except OSError:
            back.close()
            self._forget(name)
            raise
        done = threading.Barrier(2, action=lambda: self._finish(conn, back, name))
        for src, dst in ((conn, back), (back, conn)):
            threading.Thread(target=relay, args=(src, dst, done), name="ctrledger-serve-relay", daemon=True).start()

    def _forget(self, name: str) -> None:
        with self._lock:
            self._peers.pop(f"unix-abstract:{name}", None)

    def _finish(self, a: socket.socket, b: socket.socket, name: str) -> None:
        a.close()
        b.close()
        self._forget(name)


_CHUNK = 64 * 1024  # per direction and connection: four HTTP/2 frames of the default size


def relay(src: socket.socket, dst: socket.socket, done: threading.Barrier,
          tap: Callable[[memoryview], int] | None = None) -> None:
    """Copy ``src``'s bytes to ``dst`` until ``src`` ends, then half-close both ways and wait at
    ``done`` (the other direction's relay). ``tap`` sees each chunk first and may send a prefix
    of it to ``dst`` itself: it returns how many bytes it sent."""
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    try:
        while n := src.recv_into(buf):
            chunk = view[:n]
            sent = tap(chunk) if tap is not None else 0
            dst.sendall(chunk[sent:])
    except OSError:
        pass
    for sock, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
        try:
            sock.shutdown(how)
        except OSError:
            pass
    done.wait()


def _group_id(group: str) -> int:
    import grp

    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        if group.isdigit():
            return int(group)
        raise OSError(f"no such group: {group}") from None
