"""The gRPC server: containerd's services and ``ctrledger.v1`` over one store.

Concurrency: gRPC's thread pool (``max_workers``, default 64; each event stream holds a
worker while it is open); every request is its own store call, so its own transaction.
Messages: requests up to 16 MiB (containerd's default; larger ones get RESOURCE_EXHAUSTED),
responses up to 1 GiB, so a unary List of a large namespace does not fail where containerd's
does (a client must raise its own receive limit too: ListStream is the better call).
Shutdown (:meth:`Server.stop`, SIGTERM or SIGINT under :func:`serve`): stop accepting
connections, end the event streams, let calls in flight finish for ``grace`` seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable
from concurrent import futures
from types import FrameType, TracebackType
from typing import Any

import grpc
from google.protobuf import descriptor_pool, message_factory

import ctrledger

from .containerd import ContainerdServices
from .events import QUEUE_LIMIT, STALL_SECONDS, EventHub
from .identity import UnixFront
from .ledger import LedgerService
from .status import decoding, guarded, guarded_stream

__all__ = ["MAX_RECEIVE", "MAX_SEND", "Server", "serve", "unix_path"]

MAX_RECEIVE = 16 * 1024 * 1024
MAX_SEND = 1024 * 1024 * 1024


def unix_path(address: str) -> str:
    """The socket path of ``unix:///run/x.sock``, ``unix:/run/x.sock`` or a bare path."""
    for prefix in ("unix://", "unix:"):
        if address.startswith(prefix):
            return address[len(prefix):]
    return address


def _encode(response: Any) -> bytes:
    """A response message's encoding; a handler may also answer with the bytes themselves."""
    return response if isinstance(response, bytes) else bytes(response.SerializeToString())


def _generic_handler(service: str, methods: dict[str, Callable[..., Any]]) -> grpc.GenericRpcHandler:
    desc = descriptor_pool.Default().FindServiceByName(service)
    handlers = {}
    for m in desc.methods:
        fn = methods.get(m.name)
        if fn is None:
            continue  # not served: gRPC answers UNIMPLEMENTED
        request = message_factory.GetMessageClass(m.input_type)
        # The request arrives as bytes and is decoded inside the guard: a malformed one is
        # INVALID_ARGUMENT naming the message, not gRPC's INTERNAL "Exception deserializing".
        if m.server_streaming:
            handlers[m.name] = grpc.unary_stream_rpc_method_handler(
                guarded_stream(decoding(request, fn)), response_serializer=_encode)
        else:
            handlers[m.name] = grpc.unary_unary_rpc_method_handler(
                guarded(decoding(request, fn)), response_serializer=_encode)
    return grpc.method_handlers_generic_handler(service, handlers)


class Server:
    """``ctrledger serve`` in-process: ``with Server(store, address="unix:///tmp/x.sock"): ...``.

    ``address``: the unix socket (created 0660, owner and ``group``); ``tcp``: also listen on
    ``host:port`` (give a loopback host unless you mean it; port 0 picks one, see ``tcp_port``).
    ``event_queue``: envelopes an event subscriber may fall behind before it is cut off;
    ``event_stall``: seconds a cut-off subscriber that reads nothing keeps its call before it
    is cancelled (``ctrledger.server.events``).
    """

    def __init__(
        self, store: ctrledger.Store, *, address: str | None = None, group: str | None = None,
        tcp: str | None = None, max_workers: int = 64, event_queue: int = QUEUE_LIMIT,
        event_stall: float = STALL_SECONDS,
    ) -> None:
        if address is None and tcp is None:
            raise ValueError("give a unix socket address, a TCP address, or both")
        if event_queue < 1:
            raise ValueError(f"event_queue must be at least 1, not {event_queue}")
        self.store = store
        self._private = tempfile.mkdtemp(prefix="ctrledger-serve-")  # 0700: only this user reaches it
        backend = os.path.join(self._private, "grpc.sock")
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="ctrledger-serve"),
            options=[("grpc.max_receive_message_length", MAX_RECEIVE),
                     ("grpc.max_send_message_length", MAX_SEND),
                     ("grpc.so_reuseport", 0)],
        )
        self.hub = EventHub(store, queue_limit=event_queue, stall_seconds=event_stall)
        self.front: UnixFront | None = None
        self.tcp_port: int | None = None
        try:
            self._grpc.add_insecure_port(f"unix:{backend}")
            if tcp is not None:
                self.tcp_port = self._grpc.add_insecure_port(tcp)
                if not self.tcp_port:
                    raise OSError(f"cannot listen on {tcp}")
            self.front = UnixFront(unix_path(address), backend, group=group) if address is not None else None
        except BaseException:
            self.hub.close()
            shutil.rmtree(self._private, ignore_errors=True)
            raise
        containerd = ContainerdServices(store, self.hub, self.front)
        services = {**containerd.handlers(), **LedgerService(containerd).handlers()}
        self._grpc.add_generic_rpc_handlers([_generic_handler(name, m) for name, m in services.items()])
        self._stopped = threading.Event()

    @property
    def path(self) -> str | None:
        """The unix socket's path."""
        return self.front.path if self.front is not None else None

    def start(self) -> Server:
        self._grpc.start()
        return self

    def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, end event streams, give calls in flight ``grace`` seconds. Idempotent."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.front is not None:
            self.front.close()
        self.hub.close()
        self._grpc.stop(grace).wait()
        shutil.rmtree(self._private, ignore_errors=True)

    def wait(self) -> None:
        self._stopped.wait()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop(grace=1.0)


def serve(
    store: ctrledger.Store, *, address: str | None, group: str | None = None, tcp: str | None = None,
    grace: float = 10.0, ready: Callable[[Server], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then drain (``grace`` seconds) and return."""
    server = Server(store, address=address, group=group, tcp=tcp).start()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if ready is not None:
            ready(server)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop(grace)
        for s, handler in previous.items():
            signal.signal(s, handler)
