"""``ctrledger serve --upstream``: an auditing proxy in front of a real containerd.

Each connection to the proxy's socket is relayed to containerd's socket byte for byte, both
ways: containerd sees the caller's own HTTP/2 connection (its calls, metadata, deadlines,
flow control) and the caller gets containerd's own bytes back (its messages, status codes,
details, metadata). Nothing is re-encoded: there is no gRPC server or client in the path, so
every service and method passes, streams included, at the cost of a byte relay. On the side,
the proxy reads the frames as they pass (:mod:`ctrledger.follow.tap`: every header block is
decoded, the messages of the calls below are kept) and records what containerd accepted;
nothing recorded can change the answer (a failure to record is logged, and a connection it
cannot read is still relayed, its calls left to the follower).

After containerd accepts them (``grpc-status: 0``), these calls are recorded with the caller's
identity (the socket's ``SO_PEERCRED``: user, pid, process, read by ``ctrledger.server``'s unix
front when it accepts) as actor and the optional ``ctrledger-reason`` metadata as reason:

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

* ``"before-answer"`` (the default): the end of containerd's answer (its trailers, which
  complete the call) goes on to the caller only after the call is recorded, so every call a
  caller saw succeed is in the ledger under its name (a proxy killed between containerd's
  acceptance and the record loses the caller's name for that change, never the change: the
  follower records it as ``containerd``; the caller saw its call fail, not succeed).
* ``"after-answer"``: the answer goes on at once, and one thread records the accepted calls
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
(:class:`Claims`: taken before containerd can have the whole request), so the change is
recorded once, under the caller's name.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import grpc

import ctrledger
from ctrledger.server.app import unix_path
from ctrledger.server.identity import Caller, Peer, UnixFront, peer_caller, relay
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2 as cpb
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2_grpc as cgrpc
from ctrledger.wire.containerd.services.tasks.v1 import tasks_pb2 as tpb

from .claims import Claims
from .follower import Follower, _not_before, _status, superseded
from .observed import observed_container, observed_time
from .tap import MAX_MESSAGE, Event, Frames, grpc_message

__all__ = ["Claims", "Proxy"]

log = logging.getLogger("ctrledger.follow.proxy")

_NAMESPACE = "containerd-namespace"
_CONTAINERS = "/containerd.services.containers.v1.Containers/"
_TASKS = "/containerd.services.tasks.v1.Tasks/"
_SUBSCRIBE = "/containerd.services.events.v1.Events/Subscribe"


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


Recorder = Callable[[bytes, bytes, str, Caller], None]
RECORD_MODES = ("before-answer", "after-answer")  # when an accepted call is recorded (module docstring)
# recorder, request, answer, ns, caller, method, target, claimed
_Record = tuple[Recorder, bytes, bytes, str, Caller, str, str, bool]


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
        follow: bool = True, record: str = "before-answer", queue_size: int = 1024,
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
        self._links: set[_Link] = set()
        self._links_lock = threading.Lock()
        self._recordings: dict[tuple[str, str], list[Any]] = {}  # (ns, id) being recorded: [lock, users]
        self._recording_lock = threading.Lock()
        # For the one read a recorder may make itself (a task call on a container not recorded yet).
        self._up = grpc.insecure_channel(f"unix://{upstream}")
        self._containers = cgrpc.ContainersStub(self._up)  # type: ignore[no-untyped-call]
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
        self._started = threading.Event()
        self._stopped = threading.Event()
        try:
            self.front = UnixFront(unix_path(address), upstream, group=group, relay=self._relay)
        except BaseException:
            self._up.close()
            raise

    @property
    def path(self) -> str:
        return self.front.path

    def start(self) -> Proxy:
        self._recorder.start()
        self._started.set()
        if self.follower is not None:
            self._follow_thread = threading.Thread(target=self.follower.run, name="ctrledger-proxy-follow",
                                                   daemon=True)
            self._follow_thread.start()
        return self

    def stop(self, grace: float = 10.0) -> None:
        """Stop accepting; give the calls in flight up to ``grace`` seconds to finish (event
        subscriptions are not waited for: they end now, as containerd's own end when it stops),
        then close every connection; record everything answered (after-answer) before returning."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._started.set()  # a connection waiting for ``start`` is closed now
        self.front.close()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(link.busy() for link in self._open_links()):
            time.sleep(0.01)
        for link in self._open_links():
            link.close()
        closing = time.monotonic() + 5.0  # their relays end: a call answered meanwhile is queued first
        while self._open_links() and time.monotonic() < closing:
            time.sleep(0.005)
        if self._recorder.is_alive():
            self._queue.put(None)  # after everything answered: all of it is recorded first
            self._recorder.join()
        if self.follower is not None:
            self.follower.stop()
            if self._follow_thread is not None:
                self._follow_thread.join(timeout=10)
        self._up.close()

    def wait(self) -> None:
        self._stopped.wait()

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop(grace=1.0)

    # -- relaying -------------------------------------------------------------------

    def _open_links(self) -> list[_Link]:
        with self._links_lock:
            return list(self._links)

    def _relay(self, conn: socket.socket, peer: Peer) -> None:
        """The front's hand-over of a new connection: relay it to containerd."""
        self._started.wait()  # a connection that comes before ``start`` waits for it
        if self._stopped.is_set():
            conn.close()
            return
        up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            up.connect(self.upstream)
        except OSError as e:
            log.warning("cannot reach containerd at %s: %s", self.upstream, e)
            up.close()
            conn.close()  # the caller sees containerd unreachable, as it would directly
            return
        link = _Link(self, peer, conn, up)
        with self._links_lock:
            self._links.add(link)
        link.start()
        if self._stopped.is_set():  # ``stop`` came meanwhile, after it closed the links it saw
            link.close()

    def _closed(self, link: _Link) -> None:
        with self._links_lock:
            self._links.discard(link)

    def _accepted(self, call: _Call, answer: bytes) -> None:
        """containerd accepted ``call``: record it now (before-answer) or queue it (after-answer;
        waits while the queue is full). Releases the call's claim once recorded."""
        queued = False
        try:
            if call.caller is None:
                return
            if self.record_before_answer:
                self._record(call.handler, call.request, answer, call.namespace, call.caller, call.method,
                             call.target)
            else:
                self._queue.put((call.handler, call.request, answer, call.namespace, call.caller, call.method,
                                 call.target, call.claimed))
                queued = True
        finally:
            if not queued:
                call.release(self.claims)

    def _recording(self) -> None:
        """Record the accepted calls, one at a time, in the order containerd answered them."""
        while True:
            item = self._queue.get()
            if item is None:
                return
            recorder, raw, answer, ns, caller, method, target, claimed = item
            try:
                self._record(recorder, raw, answer, ns, caller, method, target)
            finally:
                if claimed:
                    self.claims.release(ns, target)
                self._queue.task_done()

    def flush(self) -> None:
        """Wait until every call containerd has answered so far is recorded."""
        self._queue.join()

    def _record(self, recorder: Recorder, raw: bytes, answer: bytes, ns: str, caller: Caller, method: str,
                target: str) -> None:
        try:
            with self._recording_of(ns, target):
                recorder(raw, answer, ns, caller)
        except Exception as e:  # noqa: BLE001 - recording never changes containerd's answer
            self.errors += 1
            log.warning("could not record %s in %s: %s", method, ns or "no namespace", e)

    @contextmanager
    def _recording_of(self, ns: str, cid: str) -> Iterator[None]:
        """One record of a container at a time: a recorder's look at the ledger and its write are
        not split by another connection's record of the same container."""
        key = (ns, cid)
        with self._recording_lock:
            entry = self._recordings.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._recording_lock:
                entry[1] -= 1
                if not entry[1]:
                    del self._recordings[key]

    # -- recorders ------------------------------------------------------------------

    def _kw(self, ns: str, caller: Caller) -> dict[str, Any]:
        return {"namespace": ns, "actor": caller.actor, "correlation_id": caller.correlation_id,
                "client": caller.client}

    def _container_written(self, raw: bytes, answer: bytes, ns: str, caller: Caller) -> None:
        wire = cpb.CreateContainerResponse.FromString(answer).container  # Update's answer has the same shape
        state = observed_container(wire)
        at = observed_time(wire.updated_at) or observed_time(wire.created_at)
        # two connections' calls on one container are answered (and recorded) in any order: a
        # later change recorded first holds this one too (as the follower's records do)
        if at is not None and superseded(self.store, ns, state.id, state, at):
            return
        self.store.observe(state.id, state, at=at, reason=caller.reason, **self._kw(ns, caller))

    def _container_deleted(self, raw: bytes, answer: bytes, ns: str, caller: Caller) -> None:
        cid = cpb.DeleteContainerRequest.FromString(raw).id
        self.store.observe(cid, None, at=datetime.now(UTC), reason=caller.reason, **self._kw(ns, caller))

    def _ensure(self, ns: str, cid: str, caller: Caller) -> Any:
        """The container's status in the ledger, recording the container first if it is missing."""
        status = _status(self.store, ns, cid)
        if status is None:
            got = self._containers.Get(cpb.GetContainerRequest(id=cid), metadata=((_NAMESPACE, ns),), timeout=30)
            state = observed_container(got.container)
            self.store.observe(cid, state, at=state.created_at, reason=caller.reason, **self._kw(ns, caller))
            status = _status(self.store, ns, cid)
        return status

    def _status_write(self, ns: str, cid: str, write: Callable[[], object], done: Callable[[Any], bool]) -> None:
        """``write()``, unless the store refuses it because the status moved meanwhile to where
        the write would take it (``done(status)``): the follower, beside the proxy, records the
        same change from containerd's events (an exit, above all), and got there first."""
        try:
            write()
        except ctrledger.FailedPrecondition:
            status = _status(self.store, ns, cid)
            if status is None or not done(status):
                raise

    def _task_started(self, raw: bytes, answer: bytes, ns: str, caller: Caller) -> None:
        request = tpb.StartRequest.FromString(raw)
        if request.exec_id:
            return  # an exec: not the container's run
        pid = tpb.StartResponse.FromString(answer).pid
        cid = request.container_id
        status = self._ensure(ns, cid, caller)
        if status.state == "RUNNING" and status.pid == pid:
            return
        self._status_write(ns, cid, lambda: self.store.started(
            cid, pid=pid, at=_not_before(datetime.now(UTC), status), reason=caller.reason, **self._kw(ns, caller)),
            lambda now: now.pid == pid and now.started_at is not None)

    def _task_paused(self, raw: bytes, answer: bytes, ns: str, caller: Caller) -> None:
        cid = tpb.PauseTaskRequest.FromString(raw).container_id
        status = self._ensure(ns, cid, caller)
        if status.state == "RUNNING" and not status.paused:
            self._status_write(ns, cid, lambda: self.store.paused(
                cid, at=_not_before(datetime.now(UTC), status), reason=caller.reason, **self._kw(ns, caller)),
                lambda now: now.paused or now.state != "RUNNING")

    def _task_resumed(self, raw: bytes, answer: bytes, ns: str, caller: Caller) -> None:
        cid = tpb.ResumeTaskRequest.FromString(raw).container_id
        status = self._ensure(ns, cid, caller)
        if status.paused:
            self._status_write(ns, cid, lambda: self.store.resumed(
                cid, at=_not_before(datetime.now(UTC), status), reason=caller.reason, **self._kw(ns, caller)),
                lambda now: not now.paused)

    def _task_deleted(self, raw: bytes, answer: bytes, ns: str, caller: Caller) -> None:
        cid = tpb.DeleteTaskRequest.FromString(raw).container_id
        done = tpb.DeleteResponse.FromString(answer)
        status = _status(self.store, ns, cid)
        if status is not None and status.state == "RUNNING":
            at = _not_before(observed_time(done.exited_at) or datetime.now(UTC), status)
            code = done.exit_status - (1 << 32) if done.exit_status >= 1 << 31 else done.exit_status
            self._status_write(ns, cid, lambda: self.store.exited(
                cid, exit_code=code, at=at, audit_reason=caller.reason, **self._kw(ns, caller)),
                lambda now: now.state != "RUNNING")

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


class _Call:
    """A call to record, as its frames pass: the request's message, the caller, the claim."""

    __slots__ = ("method", "handler", "headers", "body", "answer", "answer_headers", "request", "namespace",
                 "caller", "target", "claimed")

    def __init__(self, method: str, recorder: Recorder, headers: list[tuple[str, str]]) -> None:
        self.method, self.handler, self.headers = method, recorder, headers
        self.body = bytearray()  # the request's DATA so far
        self.answer = bytearray()  # the answer's DATA so far
        self.answer_headers: list[tuple[str, str]] = []
        self.request = b""
        self.namespace = _header(headers, _NAMESPACE) or ""
        self.caller: Caller | None = None
        self.target = ""
        self.claimed = False

    def release(self, claims: Claims) -> None:
        if self.claimed:
            self.claimed = False
            claims.release(self.namespace, self.target)


class _Link:
    """One caller's connection, relayed to its own connection to containerd; the calls on it
    that are recorded. Two threads, one each way; each reads its direction's frames
    (:class:`~ctrledger.follow.tap.Frames`) and holds the bytes back only where a call must
    wait: before the frame that completes a recorded call's request (until its claim is taken)
    and before the trailers that complete its answer (until it is recorded or queued)."""

    def __init__(self, proxy: Proxy, peer: Peer, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy, self.peer, self.client, self.upstream = proxy, peer, client, upstream
        self.calls: dict[int, _Call] = {}
        self.open: set[int] = set()  # streams the caller opened that are not over yet
        self.lock = threading.Lock()
        self.tapping = True
        self.requests = Frames(preface=True, wants=self.calls.__contains__)
        self.answers = Frames(preface=False, wants=self.calls.__contains__)
        self._done = threading.Barrier(2, action=self._finish)

    def start(self) -> None:
        for target, name in ((self._from_caller, "ctrledger-proxy-in"), (self._from_containerd, "ctrledger-proxy-out")):
            threading.Thread(target=target, name=name, daemon=True).start()

    def busy(self) -> bool:
        return bool(self.open)

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _from_caller(self) -> None:
        self._pump(self.client, self.upstream, self.requests, self._request_event)

    def _from_containerd(self) -> None:
        self._pump(self.upstream, self.client, self.answers, self._answer_event)

    def _pump(self, src: socket.socket, dst: socket.socket, frames: Frames,
              judge: Callable[[Event], Callable[[], None] | None]) -> None:
        def tap(chunk: memoryview) -> int:
            """Read the chunk's frames; where an event must hold the bytes back, send what comes
            before its frame, then wait (the relay sends the rest)."""
            sent = 0

            def then(event: Event) -> None:
                nonlocal sent
                hold = judge(event)
                if hold is not None:
                    cut = max(sent, event.start)
                    dst.sendall(chunk[sent:cut])
                    sent = cut
                    hold()

            if self.tapping:
                self._read(frames, chunk, then)
            return sent

        relay(src, dst, self._done, tap)

    def _read(self, frames: Frames, chunk: memoryview, then: Callable[[Event], None]) -> None:
        try:
            frames.feed(chunk, then)
        except OSError:
            raise
        except Exception as e:  # noqa: BLE001 - unreadable: relay on, leave its calls to the follower
            with self.lock:
                if self.tapping:
                    self.tapping = False
                    log.warning("cannot read the calls of %s[%d] (its calls are relayed, the follower records "
                                "them as containerd): %s", self.peer.process, self.peer.pid, e)
                for call in self.calls.values():
                    call.release(self.proxy.claims)
                self.calls.clear()

    def _request_event(self, event: Event) -> Callable[[], None] | None:
        if event.kind == "headers":
            if event.headers is None or event.stream in self.open:
                return None
            method = next((v for k, v in event.headers if k == ":path"), "")
            if method != _SUBSCRIBE:  # a subscription never ends by itself: ``stop`` does not wait for it
                with self.lock:
                    self.open.add(event.stream)
            recorder = self.proxy._recorders.get(method)
            if recorder is not None:
                call = _Call(method, recorder, event.headers)
                try:
                    call.caller = peer_caller(self.peer, event.headers)
                except Exception as e:  # noqa: BLE001 - never refuse a call containerd would take
                    log.warning("cannot tell who called %s (the follower records it): %s", method, e)
                else:
                    with self.lock:
                        if self.tapping:  # not if the other direction just became unreadable
                            self.calls[event.stream] = call
            return None
        if event.kind == "reset":
            with self.lock:
                self.open.discard(event.stream)
            self._drop(event.stream)
            return None
        found = self.calls.get(event.stream)
        if found is None or found.request:
            return None
        call = found
        call.body += event.data
        if len(call.body) > 5 + MAX_MESSAGE:
            self._drop(event.stream)  # containerd refuses it; if not, the follower records it
            return None
        message = grpc_message(call.body, _header(call.headers, "grpc-encoding"))
        if message is None:
            if event.end_stream:
                self._drop(event.stream)  # not one message this can read: the follower records it
            return None
        call.request, call.body = message, bytearray()
        call.target = _target(call.method, message)
        if not call.target:
            return None

        def claim() -> None:  # before containerd has the whole request
            self.proxy.claims.take(call.namespace, call.target)  # may wait (the follower writing it)
            with self.lock:
                if self.calls.get(event.stream) is call:
                    call.claimed = True
                    return
            # meanwhile the connection became unreadable (its calls are left to the follower)
            self.proxy.claims.release(call.namespace, call.target)
        return claim

    def _answer_event(self, event: Event) -> Callable[[], None] | None:
        if event.kind == "data":
            call = self.calls.get(event.stream)
            if call is not None:
                call.answer += event.data
                if len(call.answer) > 5 + MAX_MESSAGE:
                    self._drop(event.stream)
            return None
        if event.kind == "reset" or event.end_stream:
            with self.lock:
                self.open.discard(event.stream)
        if event.kind == "reset":
            self._drop(event.stream)
            return None
        call = self.calls.get(event.stream)
        if call is None:
            return None
        if not event.end_stream:  # the answer's headers
            call.answer_headers = event.headers or []
            return None
        with self.lock:
            self.calls.pop(event.stream, None)
        answer = grpc_message(call.answer, _header(call.answer_headers, "grpc-encoding"))
        if _header(event.headers or [], "grpc-status") != "0" or answer is None or not call.request:
            call.release(self.proxy.claims)
            return None
        return lambda: self.proxy._accepted(call, answer)

    def _drop(self, stream: int) -> None:
        with self.lock:
            call = self.calls.pop(stream, None)
        if call is not None:
            call.release(self.proxy.claims)

    def _finish(self) -> None:
        for sock in (self.client, self.upstream):
            sock.close()
        with self.lock:
            calls = list(self.calls.values())
            self.calls.clear()
            self.open.clear()
        for call in calls:  # cut off before containerd answered: nothing to record
            call.release(self.proxy.claims)
        self.proxy._closed(self)
