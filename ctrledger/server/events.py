"""containerd's events, from the ledger's log: the hub behind Events/Subscribe and Ledger/Watch.

The server's own writes are fanned out on commit: the handler that made the write reads the
new events, turns each operation's events into one containerd envelope and hands it to every
subscriber's queue before its reply goes out (as containerd publishes before it answers), so
a subscriber can have the envelope before the writer has its acknowledgement. One thread also
looks at the log every 50 ms, for writes by other processes. One lock orders the fan-outs:
each envelope goes out once, in log order. A subscriber that asked to start from a log position first reads the
log from there itself, then joins the live queue without gap or repeat (positions decide).

================================  ======================  ==========================================
ledger event kind(s)              topic                   payload (type URL is the bare name)
================================  ======================  ==========================================
Created                           /containers/create      ContainerCreate{id, image, runtime}
LabelsChanged, ImageChanged,      /containers/update      ContainerUpdate{id, image, labels (the full
SpecUpdated, SnapshotKeyChanged,                          set after it), snapshot_key}: one envelope
ExtensionsChanged, Touched                                per operation (one correlation id)
Deleted                           /containers/delete      ContainerDelete{id}
Started                           /tasks/start            TaskStart{container_id, pid}
Exited                            /tasks/exit             TaskExit{container_id, id, pid, exit_status,
                                                          exited_at}
Paused / Resumed                  /tasks/paused, resumed  TaskPaused / TaskResumed{container_id}
================================  ======================  ==========================================

Other kinds (e.g. ResourcesUpdated) have no containerd event and are not published. The
envelope's timestamp is the event's recorded time.

A subscriber that does not read costs a bounded amount: at most ``queue_limit`` envelopes
wait for it here (and what gRPC's flow-control window holds). One more, and it is cut off: its
queue is dropped at once, nothing more is queued for it, and its stream ends with
RESOURCE_EXHAUSTED naming the last position it was sent (resume from there with
``ctrledger-from-position``). It sees that status as soon as it reads what the transport
already holds; one that still has not taken anything ``stall_seconds`` later (its stream is
blocked on a full window) is cancelled, so it holds no server thread either. Delivery to the
others never waits for it: the hub only ever offers to a queue, never blocks on one.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message

import ctrledger
from ctrledger.wire import encode_event
from ctrledger.wire.containerd.events import container_pb2, task_pb2
from ctrledger.wire.containerd.services.events.v1 import events_pb2

from .status import WireError
from .translate import payload_to_any, timestamp

log = logging.getLogger("ctrledger.server")

__all__ = ["EventHub", "Published", "envelopes_of", "event_filter"]

QUEUE_LIMIT = 10_000
STALL_SECONDS = 30.0
POLL_SECONDS = 0.05
BATCH = 1000
_UPDATES = {"LabelsChanged", "ImageChanged", "SpecUpdated", "SnapshotKeyChanged", "ExtensionsChanged", "Touched"}


@dataclass(frozen=True)
class Published:
    """One envelope with where it comes from in the log."""

    position: int
    envelope: events_pb2.Envelope
    kinds: tuple[str, ...]
    actor: str = ""
    client: str = ""
    reason: str = ""
    correlation_id: str = ""


def _status(c: ctrledger.Container | None) -> Any:
    return getattr(c, "status", None)


Before = Callable[[ctrledger.LogEvent], "ctrledger.Container | None"]


def _payload(first: ctrledger.LogEvent, last: ctrledger.LogEvent, before: Before) -> tuple[str, message.Message] | None:
    kind, c = first.kind, last.container
    if kind == "Created" and c is not None:
        create = container_pb2.ContainerCreate(id=c.id, image=c.image)
        create.runtime.name = c.runtime.name
        if c.runtime.options is not None:
            create.runtime.options.CopyFrom(payload_to_any(c.runtime.options))
        return "/containers/create", create
    if kind in _UPDATES and c is not None:
        update = container_pb2.ContainerUpdate(id=c.id, image=c.image, snapshot_key=c.snapshot_key)
        update.labels.update(c.labels)
        return "/containers/update", update
    if kind == "Deleted":
        return "/containers/delete", container_pb2.ContainerDelete(id=first.id)
    status = _status(c)
    if kind == "Started":
        return "/tasks/start", task_pb2.TaskStart(container_id=first.id, pid=int(getattr(status, "pid", 0) or 0))
    if kind == "Exited":
        ran = _status(before(first))  # an exit clears the pid: containerd's TaskExit names the one that ran
        exit_ = task_pb2.TaskExit(container_id=first.id, id=first.id, pid=int(getattr(ran, "pid", 0) or 0),
                                  exit_status=int(getattr(status, "exit_code", 0) or 0) & 0xFFFFFFFF)
        exit_.exited_at.CopyFrom(timestamp(getattr(status, "finished_at", None) or first.recorded_at))
        return "/tasks/exit", exit_
    if kind == "Paused":
        return "/tasks/paused", task_pb2.TaskPaused(container_id=first.id)
    if kind == "Resumed":
        return "/tasks/resumed", task_pb2.TaskResumed(container_id=first.id)
    return None


def envelopes_of(events: Sequence[ctrledger.LogEvent], before: Before) -> Iterator[Published]:
    """The containerd envelopes of a run of log events: an operation's update events are one.
    ``before(event)`` is the container just before an event (read only for an exit)."""
    i = 0
    while i < len(events):
        first = events[i]
        j = i + 1
        if first.kind in _UPDATES:
            while (j < len(events) and events[j].kind in _UPDATES and events[j].namespace == first.namespace
                   and events[j].id == first.id and events[j].correlation_id == first.correlation_id):
                j += 1
        last = events[j - 1]
        found = _payload(first, last, before)
        if found is not None:
            topic, payload = found
            env = events_pb2.Envelope(timestamp=timestamp(first.recorded_at), namespace=first.namespace, topic=topic)
            env.event.CopyFrom(encode_event(payload))
            yield Published(last.position, env, tuple(e.kind for e in events[i:j]), first.actor, first.client,
                            first.reason, first.correlation_id)
        i = j


def event_filter(filters: Sequence[str]) -> Callable[[events_pb2.Envelope], bool]:
    """containerd's envelope filter: ``topic``, ``namespace`` and ``event.<field>`` of the payload
    (containerd's filter language; the strings are OR'ed). INVALID_ARGUMENT if one is bad."""
    from ctrledger.wire import decode_event

    matches = ctrledger.filter_matcher(*filters)

    def test(env: events_pb2.Envelope) -> bool:
        decoded: list[Any] = []

        def field(path: tuple[str, ...]) -> str | None:
            head = path[0] if path else ""
            if head == "topic":
                return env.topic or None
            if head == "namespace":
                return env.namespace or None
            if head == "event" and len(path) >= 2:
                if not decoded:
                    decoded.append(decode_event(env.event))
                payload = decoded[0]
                if payload is None or path[1] not in payload.DESCRIPTOR.fields_by_name:
                    return None
                value = getattr(payload, path[1])
                if path[1] == "labels" and len(path) >= 3:
                    key = ".".join(path[2:])
                    return value[key] if key in value else None
                return str(value) if isinstance(value, (str, int)) and value != "" else None
            return None

        return matches(field)

    return test


class _Subscriber:
    def __init__(self, test: Callable[[events_pb2.Envelope], bool], limit: int,
                 cancel: Callable[[], object] | None) -> None:
        self.test = test
        self.queue: queue.Queue[Published | None] = queue.Queue(limit)
        self.cancel = cancel
        self.overflowed_at: float | None = None
        self.cancelled = False

    @property
    def overflowed(self) -> bool:
        return self.overflowed_at is not None


class EventHub:
    """Follows the log and fans envelopes out to subscribers (see the module docstring)."""

    def __init__(self, store: ctrledger.Store, *, queue_limit: int = QUEUE_LIMIT,
                 stall_seconds: float = STALL_SECONDS) -> None:
        if queue_limit < 1:
            raise ValueError(f"queue_limit must be at least 1, not {queue_limit}")
        self._store = store
        self._limit = queue_limit
        self._stall = stall_seconds
        self._subscribers: set[_Subscriber] = set()
        self._lock = threading.Lock()  # the subscriber set and the head
        self._fanout = threading.Lock()  # one fan-out at a time, so envelopes go out in log order
        self._stop = threading.Event()
        self._head: int | None = None
        self._thread = threading.Thread(target=self._run, name="ctrledger-serve-events", daemon=True)
        self._thread.start()

    def _before(self, event: ctrledger.LogEvent) -> ctrledger.Container | None:
        try:
            return self._store.get(event.id, namespace=event.namespace, as_of=ctrledger.Position(event.position - 1))
        except ctrledger.StoreError:
            return None

    def notify(self) -> None:
        """A write was acknowledged by the store: fan its envelopes out now, in this thread.
        Never raises: the write is done; if the log cannot be read now, the poll retries."""
        try:
            self._catch_up()
        except ctrledger.StoreError:
            pass
        except Exception:  # noqa: BLE001 - a bug here must not turn an acknowledged write into an error
            log.exception("fanning out events failed; the next poll retries")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            for sub in self._subscribers:
                _offer(sub, None)

    def subscribe(
        self, filters: Sequence[str], after: int | None, is_active: Callable[[], bool],
        cancel: Callable[[], object] | None = None,
    ) -> Iterator[Published]:
        """Envelopes matching ``filters``: from log position ``after`` (None: from now), then live.
        ``cancel`` ends the call when its subscriber is cut off but stalled (module docstring)."""
        sub = _Subscriber(event_filter(filters), self._limit, cancel)
        if after is not None and after < 0:
            raise WireError(grpc.StatusCode.INVALID_ARGUMENT, f"position {after} is negative: invalid argument")
        with self._fanout, self._lock:  # between two fan-outs: what it has not seen comes live
            self._subscribers.add(sub)
            if self._head is None:
                self._head = self._store.position
            live_from = self._head
        try:
            sent = live_from if after is None else after
            if after is not None:
                if after > live_from:
                    raise WireError(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"position {after} is in the future: the log's head is {live_from}: "
                                    "invalid argument")
                while sent < live_from and is_active():
                    batch = self._store.events_after(sent, limit=BATCH)
                    if not batch:
                        break
                    batch = [e for e in batch if e.position <= live_from]
                    for p in envelopes_of(batch, self._before):
                        if sub.test(p.envelope):
                            yield p
                    sent = batch[-1].position
            while not self._stop.is_set() and is_active():
                try:
                    item = sub.queue.get(timeout=0.5)
                except queue.Empty:
                    continue
                if item is None:
                    if sub.overflowed:
                        raise WireError(
                            grpc.StatusCode.RESOURCE_EXHAUSTED,
                            f"this subscriber fell more than {self._limit} events behind; resume after position "
                            f"{sent} (metadata ctrledger-from-position)",
                        )
                    return
                if item.position <= sent:
                    continue
                sent = item.position
                yield item
        finally:
            with self._lock:
                self._subscribers.discard(sub)

    def _deliver(self, items: Sequence[Published]) -> None:
        with self._lock:
            subs = list(self._subscribers)
        for sub in subs:
            if sub.overflowed:
                continue
            for item in items:
                if sub.test(item.envelope) and not _offer(sub, item):
                    sub.overflowed_at = time.monotonic()
                    with sub.queue.mutex:
                        sub.queue.queue.clear()
                    _offer(sub, None)
                    break

    def _cut_stalled(self) -> None:
        """Cancel the calls of subscribers cut off ``stall_seconds`` ago that are still open."""
        now = time.monotonic()
        with self._lock:
            stalled = [s for s in self._subscribers if s.overflowed_at is not None and not s.cancelled
                       and now - s.overflowed_at >= self._stall]
        for sub in stalled:
            sub.cancelled = True
            if sub.cancel is not None:
                sub.cancel()

    def _catch_up(self) -> None:
        """Hand every event after the head to the subscribers, in order (one fan-out at a time)."""
        with self._fanout:
            while True:
                with self._lock:
                    if not self._subscribers or self._head is None:
                        self._head = None
                        return
                    head = self._head
                events = self._store.events_after(head, limit=BATCH)
                if not events:
                    return
                items = list(envelopes_of(events, self._before))
                with self._lock:
                    self._head = events[-1].position
                self._deliver(items)
                if len(events) < BATCH:
                    return

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self._cut_stalled()
            try:
                self._catch_up()
            except ctrledger.StoreError:
                continue  # storage unreachable for now: the next round retries


def _offer(sub: _Subscriber, item: Published | None) -> bool:
    try:
        sub.queue.put_nowait(item)
    except queue.Full:
        return False
    return True
