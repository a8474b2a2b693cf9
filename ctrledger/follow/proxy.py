"""``ctrledger serve --upstream``: an auditing gRPC proxy in front of a real containerd.

Every call that reaches the proxy's socket is forwarded to containerd as it came (the bytes
of each message, the metadata, the deadline), and containerd's answer goes back unchanged:
its messages, its status code and details, its metadata. Nothing is decoded on the way
except what is recorded, and nothing recorded can change the answer (a failure to record is
logged). Services and methods the proxy does not know pass through all the same, streams
included (a generic handler with identity serializers).

After containerd accepts them, these calls are recorded with the caller's identity (the
socket's ``SO_PEERCRED``: user, pid, process, through ``ctrledger.server``'s unix front) as
actor and the optional ``ctrledger-reason`` metadata as reason:

======================================  ==============================================
call                                    recorded
======================================  ==============================================
Containers/Create, Containers/Update    ``observe`` of the container containerd returned
Containers/Delete                       ``observe(id, None)``
Tasks/Start (the init process)          ``started`` with the pid containerd returned
Tasks/Pause, Tasks/Resume               ``paused`` / ``resumed``
Tasks/Delete                            ``exited`` with its exit status, if not yet seen
======================================  ==============================================

When a call is recorded (``record=``):

* ``"before-answer"`` (the default): containerd's answer goes back to the caller only after
  the call is recorded, so every call a caller saw succeed is in the ledger under its name
  (a proxy killed between containerd's acceptance and the record loses the caller's name for
  that change, never the change: the follower records it as ``containerd``; the caller saw
  its call fail, not succeed).
* ``"after-answer"``: the answer goes back at once, and one thread records the accepted calls
  in the order containerd answered them (``Proxy.flush`` waits for it; ``stop`` records
  everything answered before it returns). Faster for the caller; but a caller may read the
  ledger a few milliseconds before its change is there, and a proxy killed between the answer
  and the record loses the caller's name for a call the caller saw succeed. The calls waiting
  to be recorded are bounded (``queue_size``, 1,024 by default): when that many wait (the store
  is stalled, or slower than the callers), a call's answer waits for room in the queue, so
  nothing is ever dropped and memory stays bounded; the callers then see before-answer latency.

A process exit is not a call: the follower (run beside the proxy by default) records it from
containerd's events, along with every change made directly against containerd's own socket,
as actor ``containerd``. While the proxy records a call, the follower waits for it
(:class:`Claims`), so the change is recorded once, under the caller's name.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import grpc
from google.protobuf import descriptor_pool

import ctrledger
from ctrledger.server.app import unix_path
from ctrledger.server.identity import Caller, UnixFront, caller_of
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2 as cpb
from ctrledger.wire.containerd.services.tasks.v1 import tasks_pb2 as tpb

from .claims import Claims
from .follower import Follower, _not_before, _status
from .observed import observed_container, observed_time

__all__ = ["Claims", "Proxy"]

log = logging.getLogger("ctrledger.follow.proxy")

_MAX = 1 << 30
_NAMESPACE = "containerd-namespace"
_CONTAINERS = "/containerd.services.containers.v1.Containers/"
_TASKS = "/containerd.services.tasks.v1.Tasks/"


def _namespace(metadata: Any) -> str:
    for key, value in metadata or ():
        if key == _NAMESPACE:
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return ""


def _forwarded(metadata: Any) -> list[tuple[str, str | bytes]]:
    """The caller's metadata, minus what gRPC sets itself on each hop."""
    return [(k, v) for k, v in metadata or () if not k.startswith((":", "grpc-")) and k != "user-agent"]


def _timeout(context: grpc.ServicerContext) -> float | None:
    left = context.time_remaining()
    return left if left is not None and left < 1e8 else None


def _shape(method: str) -> tuple[bool, bool] | None:
    """(client streaming, server streaming) of a method known to ctrledger's wire types."""
    service, _, name = method.strip("/").partition("/")
    try:
        desc = descriptor_pool.Default().FindServiceByName(service)
    except KeyError:
        return None
    m = desc.methods_by_name.get(name)
    return None if m is None else (m.client_streaming, m.server_streaming)


Recorder = Callable[[bytes, bytes, str, Caller], None]
RECORD_MODES = ("before-answer", "after-answer")  # when an accepted call is recorded (module docstring)
_Record = tuple[Recorder, bytes, bytes, str, Caller, str, str]  # recorder, request, answer, ns, caller, method, target


class Proxy:
    """The proxy in-process: ``with Proxy(store, "/run/containerd/containerd.sock",
    address="unix:///run/ctrledger/containerd.sock"): ...``.

    ``follow``: also run a :class:`Follower` on the upstream (default), so changes made
    directly against containerd are recorded too. ``record``: when an accepted call is
    recorded (module docstring); ``queue_size``: with ``"after-answer"``, how many answered
    calls may wait to be recorded before an answer waits for room.
    """

    def __init__(
        self, store: ctrledger.Store, upstream: str, *, address: str, group: str | None = None,
        max_workers: int = 64, follow: bool = True, record: str = "before-answer", queue_size: int = 1024,
    ) -> None:
        if record not in RECORD_MODES:
            raise ctrledger.InvalidArgument(f"record must be one of {', '.join(RECORD_MODES)}, not {record!r}: "
                                            "invalid argument")
        if not isinstance(queue_size, int) or isinstance(queue_size, bool) or queue_size < 1:
            raise ctrledger.InvalidArgument(f"queue_size must be a positive integer, not {queue_size!r}: "
                                            "invalid argument")
        self.record_before_answer = record == "before-answer"
        self.store = store
        self.upstream = upstream
        self.claims = Claims()
        self.errors = 0
        self._private = tempfile.mkdtemp(prefix="ctrledger-proxy-")
        backend = os.path.join(self._private, "grpc.sock")
        self._up = grpc.insecure_channel(f"unix://{upstream}", options=[
            ("grpc.max_receive_message_length", _MAX), ("grpc.max_send_message_length", _MAX)])
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="ctrledger-proxy"),
            options=[("grpc.max_receive_message_length", _MAX), ("grpc.max_send_message_length", _MAX),
                     ("grpc.so_reuseport", 0)],
        )
        self._grpc.add_insecure_port(f"unix:{backend}")
        try:
            self.front = UnixFront(unix_path(address), backend, group=group)
        except BaseException:
            shutil.rmtree(self._private, ignore_errors=True)
            self._up.close()
            raise
        self._grpc.add_generic_rpc_handlers([_Forward(self)])
        self._stubs: dict[tuple[str, str], Any] = {}
        self._stubs_lock = threading.Lock()
        self._recorders: dict[str, Recorder] = {
            _CONTAINERS + "Create": self._container_written, _CONTAINERS + "Update": self._container_written,
            _CONTAINERS + "Delete": self._container_deleted, _TASKS + "Start": self._task_started,
            _TASKS + "Pause": self._task_paused, _TASKS + "Resume": self._task_resumed,
            _TASKS + "Delete": self._task_deleted,
        }
        self.follower = Follower(store, upstream, claims=self.claims) if follow else None
        self._follow_thread: threading.Thread | None = None
        # bounded: a full queue makes the call wait for room (backpressure), never drops a record
        self._queue: queue.Queue[_Record | None] = queue.Queue(maxsize=queue_size)
        self._recorder = threading.Thread(target=self._recording, name="ctrledger-proxy-record", daemon=True)
        self._stopped = threading.Event()

    @property
    def path(self) -> str:
        return self.front.path

    def start(self) -> Proxy:
        self._recorder.start()
        self._grpc.start()
        if self.follower is not None:
            self._follow_thread = threading.Thread(target=self.follower.run, name="ctrledger-proxy-follow",
                                                   daemon=True)
            self._follow_thread.start()
        return self

    def stop(self, grace: float = 10.0) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.front.close()
        self._grpc.stop(grace).wait()
        if self._recorder.is_alive():
            self._queue.put(None)  # after everything answered: all of it is recorded first
            self._recorder.join()
        if self.follower is not None:
            self.follower.stop()
            if self._follow_thread is not None:
                self._follow_thread.join(timeout=10)
        self._up.close()
        shutil.rmtree(self._private, ignore_errors=True)

    def wait(self) -> None:
        self._stopped.wait()

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop(grace=1.0)

    # -- forwarding -----------------------------------------------------------------

    def stub(self, kind: str, method: str) -> Any:
        key = (kind, method)
        with self._stubs_lock:
            found = self._stubs.get(key)
            if found is None:
                found = self._stubs[key] = getattr(self._up, kind)(method)
            return found

    def unary(self, method: str, raw: bytes, context: grpc.ServicerContext) -> bytes:
        metadata = context.invocation_metadata()
        recorder = self._recorders.get(method)
        if recorder is None:
            return self._forward(method, raw, metadata, context)
        caller = self._caller(context)
        ns = _namespace(metadata)
        target = _target(method, raw)
        if target:
            self.claims.take(ns, target)  # released once recorded, or now if nothing is to be
        queued = False
        try:
            answer = self._forward(method, raw, metadata, context)
            if caller is not None and self.record_before_answer:
                self._record(recorder, raw, answer, ns, caller, method)
            elif caller is not None:
                self._queue.put((recorder, raw, answer, ns, caller, method, target))  # waits while full
                queued = True
        finally:
            if target and not queued:
                self.claims.release(ns, target)
        return answer

    def _forward(self, method: str, raw: bytes, metadata: Any, context: grpc.ServicerContext) -> bytes:
        try:
            answer, call = self.stub("unary_unary", method).with_call(
                raw, metadata=_forwarded(metadata), timeout=_timeout(context))
        except grpc.RpcError as e:
            _relay_error(context, e)
        _relay_metadata(context, call)
        result: bytes = answer
        return result

    def _recording(self) -> None:
        """Record the accepted calls, one at a time, in the order containerd answered them."""
        while True:
            item = self._queue.get()
            if item is None:
                return
            recorder, raw, answer, ns, caller, method, target = item
            try:
                self._record(recorder, raw, answer, ns, caller, method)
            finally:
                if target:
                    self.claims.release(ns, target)
                self._queue.task_done()

    def flush(self) -> None:
        """Wait until every call containerd has answered so far is recorded."""
        self._queue.join()

    def _caller(self, context: grpc.ServicerContext) -> Caller | None:
        try:
            return caller_of(context, self.front)
        except Exception as e:  # noqa: BLE001 - never refuse a call containerd would take
            log.warning("cannot tell who called: %s", e)
            return None

    def _record(self, recorder: Recorder, raw: bytes, answer: bytes, ns: str, caller: Caller, method: str) -> None:
        try:
            recorder(raw, answer, ns, caller)
        except Exception as e:  # noqa: BLE001 - recording never changes containerd's answer
            self.errors += 1
            log.warning("could not record %s in %s: %s", method, ns or "no namespace", e)

    # -- recorders ------------------------------------------------------------------

    def _kw(self, ns: str, caller: Caller) -> dict[str, Any]:
        return {"namespace": ns, "actor": caller.actor, "correlation_id": caller.correlation_id,
                "client": caller.client}

    def _container_written(self, raw: bytes, answer: bytes, ns: str, caller: Caller) -> None:
        wire = cpb.CreateContainerResponse.FromString(answer).container  # Update's answer has the same shape
        state = observed_container(wire)
        at = observed_time(wire.updated_at) or observed_time(wire.created_at)
        self.store.observe(state.id, state, at=at, reason=caller.reason, **self._kw(ns, caller))

    def _container_deleted(self, raw: bytes, answer: bytes, ns: str, caller: Caller) -> None:
        cid = cpb.DeleteContainerRequest.FromString(raw).id
        self.store.observe(cid, None, at=datetime.now(UTC), reason=caller.reason, **self._kw(ns, caller))

    def _ensure(self, ns: str, cid: str, caller: Caller) -> Any:
        """The container's status in the ledger, recording the container first if it is missing."""
        status = _status(self.store, ns, cid)
        if status is None:
            got = self.stub("unary_unary", _CONTAINERS + "Get")(
                cpb.GetContainerRequest(id=cid).SerializeToString(), metadata=((_NAMESPACE, ns),), timeout=30)
            state = observed_container(cpb.GetContainerResponse.FromString(got).container)
            self.store.observe(cid, state, at=state.created_at, reason=caller.reason, **self._kw(ns, caller))
            status = _status(self.store, ns, cid)
        return status

    def _task_started(self, raw: bytes, answer: bytes, ns: str, caller: Caller) -> None:
        request = tpb.StartRequest.FromString(raw)
        if request.exec_id:
            return  # an exec: not the container's run
        pid = tpb.StartResponse.FromString(answer).pid
        status = self._ensure(ns, request.container_id, caller)
        if status.state == "RUNNING" and status.pid == pid:
            return
        self.store.started(request.container_id, pid=pid, at=_not_before(datetime.now(UTC), status),
                           reason=caller.reason, **self._kw(ns, caller))

    def _task_paused(self, raw: bytes, answer: bytes, ns: str, caller: Caller) -> None:
        cid = tpb.PauseTaskRequest.FromString(raw).container_id
        status = self._ensure(ns, cid, caller)
        if status.state == "RUNNING" and not status.paused:
            self.store.paused(cid, at=_not_before(datetime.now(UTC), status), reason=caller.reason,
                              **self._kw(ns, caller))

    def _task_resumed(self, raw: bytes, answer: bytes, ns: str, caller: Caller) -> None:
        cid = tpb.ResumeTaskRequest.FromString(raw).container_id
        status = self._ensure(ns, cid, caller)
        if status.paused:
            self.store.resumed(cid, at=_not_before(datetime.now(UTC), status), reason=caller.reason,
                               **self._kw(ns, caller))

    def _task_deleted(self, raw: bytes, answer: bytes, ns: str, caller: Caller) -> None:
        cid = tpb.DeleteTaskRequest.FromString(raw).container_id
        done = tpb.DeleteResponse.FromString(answer)
        status = _status(self.store, ns, cid)
        if status is not None and status.state == "RUNNING":
            at = _not_before(observed_time(done.exited_at) or datetime.now(UTC), status)
            code = done.exit_status - (1 << 32) if done.exit_status >= 1 << 31 else done.exit_status
            self.store.exited(cid, exit_code=code, at=at, audit_reason=caller.reason, **self._kw(ns, caller))


def _target(method: str, raw: bytes) -> str:
    """The container a recorded call changes (for :class:`Claims`)."""
    try:
        if method.startswith(_CONTAINERS):
            if method.endswith("/Delete"):
                return str(cpb.DeleteContainerRequest.FromString(raw).id)
            return str(cpb.CreateContainerRequest.FromString(raw).container.id)  # Update's request: same field
        return str(tpb.StartRequest.FromString(raw).container_id)  # every Tasks request: field 1
    except Exception:  # noqa: BLE001 - containerd will judge the request; we only name it if we can
        return ""


def _relay_error(context: grpc.ServicerContext, e: grpc.RpcError) -> Any:
    trailing = e.trailing_metadata() if hasattr(e, "trailing_metadata") else None
    if trailing:
        context.set_trailing_metadata(tuple(_forwarded(trailing)))
    code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
    details = e.details() if hasattr(e, "details") else str(e)
    context.abort(code, details or "")


def _relay_metadata(context: grpc.ServicerContext, call: Any) -> None:
    initial = _forwarded(call.initial_metadata())
    if initial:
        context.send_initial_metadata(tuple(initial))
    trailing = _forwarded(call.trailing_metadata())
    if trailing:
        context.set_trailing_metadata(tuple(trailing))


class _Forward(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Every method: unary calls ctrledger's wire knows as unary, anything else as a stream of
    raw messages each way (which carries unary calls too: the framing is the same)."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method
        found = self._handlers.get(method)
        if found is None:
            found = self._handler(method)
            if len(self._handlers) < 4096:  # method names come from callers: a bounded cache
                self._handlers[method] = found
        return found

    def _handler(self, method: str) -> grpc.RpcMethodHandler:
        shape = _shape(method)
        proxy = self.proxy
        if shape == (False, False):
            return grpc.unary_unary_rpc_method_handler(lambda raw, ctx: proxy.unary(method, raw, ctx))
        if shape == (False, True):
            return grpc.unary_stream_rpc_method_handler(lambda raw, ctx: _stream(proxy, "unary_stream", method,
                                                                                  raw, ctx))
        if shape == (True, False):
            return grpc.stream_unary_rpc_method_handler(lambda it, ctx: _stream_unary(proxy, method, it, ctx))
        return grpc.stream_stream_rpc_method_handler(lambda it, ctx: _stream(proxy, "stream_stream", method, it, ctx))


def _stream(proxy: Proxy, kind: str, method: str, request: Any, context: grpc.ServicerContext) -> Iterator[bytes]:
    call = proxy.stub(kind, method)(request, metadata=_forwarded(context.invocation_metadata()),
                                   timeout=_timeout(context))
    context.add_callback(call.cancel)
    try:
        initial = _forwarded(call.initial_metadata())
        if initial:
            context.send_initial_metadata(tuple(initial))
        yield from call
        trailing = _forwarded(call.trailing_metadata())
        if trailing:
            context.set_trailing_metadata(tuple(trailing))
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.CANCELLED and not context.is_active():
            return  # our caller went away: we cancelled upstream
        _relay_error(context, e)


def _stream_unary(proxy: Proxy, method: str, request: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    try:
        answer, call = proxy.stub("stream_unary", method).with_call(
            request, metadata=_forwarded(context.invocation_metadata()), timeout=_timeout(context))
    except grpc.RpcError as e:
        _relay_error(context, e)
    _relay_metadata(context, call)
    result: bytes = answer
    return result
