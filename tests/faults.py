"""Fault injection for the campaign and its tests: a TCP proxy that loses replies.

``LossyProxy`` sits between a client and PostgreSQL. With probability ``p_commit``
it forwards a client message holding ``COMMIT`` to the server, lets the server run it,
and then cuts the connection before the reply reaches the client: the commit happened,
its acknowledgement is lost (the window eventsourcing's ``@retry`` falls into). With
probability ``p_any`` it does the same to any other message.
"""

from __future__ import annotations

import random
import socket
import threading
import time


def _close(*sockets: socket.socket) -> None:
    # shutdown() first: close() alone does not wake the other pump blocked in recv(), and
    # the connection would stay open (a backend idle in its transaction, holding locks).
    for s in sockets:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


class LossyProxy:
    def __init__(self, host: str, port: int, *, p_commit: float = 0.1, p_any: float = 0.002, seed: int = 1) -> None:
        self.target = (host, port)
        self.p_commit, self.p_any = p_commit, p_any
        self.random = random.Random(seed)
        self.cuts = 0
        self.commit_cuts = 0
        self.enabled = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._lock = threading.Lock()
        self.server_ports: set[int] = set()  # the proxy's own ends of its server connections

    def __enter__(self) -> LossyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            for end in (client, server):  # relay each message at once, as the direct connection would
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.server_ports.add(server.getsockname()[1])
            threading.Thread(target=self._pump_up, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(server, client), daemon=True).start()

    def _cut_now(self, data: bytes) -> bool:
        if not self.enabled:
            return False
        with self._lock:
            p = self.p_commit if b"COMMIT" in data else self.p_any
            cut = self.random.random() < p
            if cut:
                self.cuts += 1
                self.commit_cuts += b"COMMIT" in data
            return cut

    def _pump_up(self, client: socket.socket, server: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                cut = self._cut_now(data)
                if cut:
                    client.shutdown(socket.SHUT_RDWR)  # the reply will never reach the client
                server.sendall(data)
                if cut:
                    time.sleep(0.05)  # the server runs it (and commits) meanwhile
                    break
        except OSError:
            pass
        _close(client, server)

    def _pump_down(self, server: socket.socket, client: socket.socket) -> None:
        try:
            while data := server.recv(65536):
                client.sendall(data)
        except OSError:
            pass
        _close(client, server)
