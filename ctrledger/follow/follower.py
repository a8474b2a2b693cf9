"""``ctrledger follow``: record a live containerd, passively, from its events and its lists.

containerd keeps only the present and publishes events that nobody keeps: no cursor, no
replay, no actor. The follower subscribes to ``/containers/*``, ``/tasks/*`` and
``/namespaces/*`` and turns each event into the store's events, dated by containerd's
envelope. Because the stream replays nothing, every (re)connect begins with a reconcile:
the namespaces, containers and tasks are listed and the ledger brought to what containerd
holds (reason ``observed at sync`` the first time, ``observed after a gap`` after that).

Everything the follower writes goes through ``Store.observe_many`` (metadata) or the status
calls (``started``/``exited``/``paused``/``resumed``), each after comparing with the ledger: a
duplicate event (containerd issue 2299), a replayed stream or a second reconcile writes
nothing. Container events are written in batches (group commit: one thread commits a batch
while the next is gathered; see ``Follower._event``), so a burst costs a few commits, not one
per event; a batch that fails to commit ends the session, and the reconcile that starts the
next one records what it held.

Mapping:

=========================  ===============================================================
containerd                 ledger
=========================  ===============================================================
/containers/create|update  ``Containers.Get``, then ``observe`` (the payloads lack the spec;
                           labels, image and snapshot key come from the update's payload)
/containers/delete         ``observe(id, None)``
/tasks/start               ``started(pid, at=envelope time)``
/tasks/oom                 remembered: the next exit of that container is ``OOMKilled``
/tasks/exit, /tasks/delete of the init process (``id`` is the container's): ``exited``
                           (``exit_status``, ``exited_at``); an exec's exit is not recorded
/tasks/paused|resumed      ``paused`` / ``resumed``
/namespaces/create         the new namespace (``payload.name``) is followed
an unseen namespace        reconciled (an implicitly created namespace has no event)
=========================  ===============================================================
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import message

import ctrledger
from ctrledger import Container
from ctrledger.wire.containerd.events import container_pb2 as cev
from ctrledger.wire.containerd.events import namespace_pb2 as nev
from ctrledger.wire.containerd.events import task_pb2 as tev
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2 as cpb
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2_grpc as cgrpc
from ctrledger.wire.containerd.services.events.v1 import events_pb2 as epb
from ctrledger.wire.containerd.services.events.v1 import events_pb2_grpc as egrpc
from ctrledger.wire.containerd.services.namespaces.v1 import namespace_pb2 as npb
from ctrledger.wire.containerd.services.namespaces.v1 import namespace_pb2_grpc as ngrpc
from ctrledger.wire.containerd.services.tasks.v1 import tasks_pb2 as tpb
from ctrledger.wire.containerd.services.tasks.v1 import tasks_pb2_grpc as tgrpc
from ctrledger.wire.containerd.types.task import task_pb2 as ttypes

from .claims import Claims
from .observed import observed_container, observed_time
from .writer import WriterGone, WriterProcess

__all__ = ["AFTER_GAP", "AT_SYNC", "NEW_NAMESPACE", "SEEN_IN_EVENT", "Follower", "Stats", "connect"]

log = logging.getLogger("ctrledger.follow")

AT_SYNC = "observed at sync"
AFTER_GAP = "observed after a gap"
NEW_NAMESPACE = "observed in a new namespace"
SEEN_IN_EVENT = "seen in its event only (gone before it could be read)"
ACTOR = "containerd"
TOPICS = ('topic~="^/containers/"', 'topic~="^/tasks/"', 'topic~="^/namespaces/"')
UNKNOWN_EXIT = 255  # CRI's exit code for a task that vanished unseen (reason "Unknown")
_BATCH = 1000  # observations written in one commit at most
# Seconds from the start of one commit to the start of the next, at least. An event after a
# quiet moment is committed at once; in a burst, what arrives meanwhile gathers. A commit costs
# the follower ~0.4 ms of CPU (sqlite's commit, most of it; ~0.1 ms per change in it). In the
# 6,000-event burst (benchmarks/follow.py, 2 cores under load), committing whenever the writer
# was free made batches of 1.3 and 1.1-1.3 ms of CPU per event; 5 ms gave p50 7 ms but p99
# <= 50 ms in 5 of 15 bursts; 10 ms, p50 10 ms and p99 <= 50 ms in 11 of 18 (docs/benchmarks.md).
_SPACING = 0.010
_EXIT_AHEAD = 0.3  # seconds after a reconcile listed the tasks to wait for the exit of a running one gone from them
_OOM_LATE = 0.5  # seconds after a SIGKILLed task's exit was published to wait for a /tasks/oom published after it
_CHUNK = 200  # containers a reconcile's list reader hands over at once

_PAYLOADS: dict[str, type[message.Message]] = {
    f"containerd.events.{cls.__name__}": cls
    for cls in (cev.ContainerCreate, cev.ContainerUpdate, cev.ContainerDelete, tev.TaskCreate, tev.TaskStart,
                tev.TaskExit, tev.TaskDelete, tev.TaskOOM, tev.TaskPaused, tev.TaskResumed, tev.TaskExecAdded,
                tev.TaskExecStarted, nev.NamespaceCreate, nev.NamespaceUpdate, nev.NamespaceDelete)
}


def payload_of(env: epb.Envelope) -> message.Message | None:
    """The envelope's event, decoded by its bare type name (containerd's type URLs have no
    ``type.googleapis.com/`` prefix, which protobuf's ``Any.Unpack`` needs); None if unknown."""
    cls = _PAYLOADS.get(env.event.type_url.rsplit("/", 1)[-1])
    if cls is None:
        return None
    out = cls()
    out.ParseFromString(env.event.value)
    return out


@dataclass
class Stats:
    """What a follower has done so far (for logs and tests)."""

    connects: int = 0
    reconciles: int = 0
    events: int = 0
    writes: int = 0
    errors: int = 0
    last_error: str = ""
    namespaces: set[str] = field(default_factory=set)


_Item = tuple[str, Container | None, datetime | None, str | None]  # id, state, at, reason (None: the call's)


class _Pending:
    """Container observations read but not yet committed: the batch being gathered (one
    namespace, in the events' order) and the batch the writer is committing; and the last
    state of each container in them (what the ledger will hold once they are written), which
    the next events are judged against instead of the ledger."""

    def __init__(self) -> None:
        self.namespace = ""
        self.items: list[_Item] = []
        self.number = 0  # of the batch being gathered
        self._states: dict[tuple[str, str], tuple[Container | None, datetime | None, int]] = {}

    def add(self, ns: str, item: _Item) -> None:
        self.items.append(item)
        self._states[(ns, item[0])] = (item[1], item[2], self.number)

    def get(self, ns: str, cid: str) -> tuple[Container | None, datetime | None] | None:
        """The pending last word on ``cid`` (state, time), None if nothing is pending for it."""
        found = self._states.get((ns, cid))
        return None if found is None else found[:2]

    def take(self) -> tuple[str, list[_Item], int]:
        """The gathered batch (namespace, items, number), handed to the writer; a new one begins."""
        batch = (self.namespace, self.items, self.number)
        self.items = []
        self.number += 1
        return batch

    def written(self, number: int) -> None:
        """Batch ``number`` is committed (or abandoned): the ledger holds its word from now on."""
        self._states = {k: v for k, v in self._states.items() if v[2] > number}

    def clear(self) -> None:
        self.items = []
        self._states = {}


class _Gone(Exception):
    """The event stream ended (containerd stopped or the follower is stopping)."""


class Follower:
    """Follow the containerd at ``address`` (a unix socket path) into ``store``.

    ``namespaces``: follow only these (default: every namespace). ``relist``: seconds between
    namespace re-lists. ``backoff``: first and longest wait between reconnects, doubled after
    each failure. ``run()`` returns only when ``stop()`` is called; transient errors (containerd
    down, a refused record) are logged and retried, never raised. ``writer``: write through
    this ``WriterProcess`` (over ``store``'s file) instead of ``store``, from a process of its
    own (``ctrledger follow`` does; see :mod:`ctrledger.follow.writer`); ``store`` is still
    what the follower reads. ``run()`` ends the process when it returns, as ``close()`` does.
    """

    def __init__(
        self,
        store: ctrledger.Store,
        address: str,
        *,
        namespaces: Sequence[str] | None = None,
        relist: float = 10.0,
        backoff: tuple[float, float] = (0.1, 5.0),
        on_ready: Callable[[Follower], None] | None = None,
        claims: Claims | None = None,
        writer: WriterProcess | None = None,
    ) -> None:
        if writer is not None and claims is not None:
            raise ValueError("a follower beside a proxy writes in the proxy's process (the claims are that "
                             "process's locks): give it no writer process")
        self.store = store
        self.address = address
        self.only = frozenset(namespaces) if namespaces else None
        self.relist = relist
        self.backoff = backoff
        self.on_ready = on_ready
        self.claims = claims
        self.writer = writer
        # What the follower writes with: the store, or its writer process (the same calls).
        self._writes: Any = store if writer is None else writer
        self.stats = Stats()
        self._stop = threading.Event()
        self._oom: set[tuple[str, str]] = set()
        self._known: set[str] = set()
        self._call: Any = None
        # by id(envelope): the envelope, its decoded payload and the read started for it
        # (``prefetch``). The envelope is held so that its id is not reused while its entry is
        # here: one the last session's stream reader prefetched as that session ended, then
        # freed, would otherwise hand its payload and read to a new envelope of the same id.
        self._fetched: dict[int, tuple[epb.Envelope, message.Message, Future[cpb.Container | None]]] = {}
        self._last_read: dict[tuple[str, str], Future[cpb.Container | None]] = {}
        self._reads_lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        # Group commit: one thread commits a batch of observations while the events that
        # arrive meanwhile are read and judged (against ``_pending``), to be the next batch.
        self._pending = _Pending()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="ctrledger-follow-write")
        self._writing: tuple[Future[int], int, str] | None = None  # the batch being committed: number, namespace
        self._commit_at = 0.0  # when the next commit may begin (time.monotonic)
        self._wake: Callable[[], None] | None = None  # tells the event loop a commit is done
        self._ahead: deque[epb.Envelope] = deque()  # events read, not yet recorded (in order)
        self._inbox: queue.SimpleQueue[epb.Envelope | BaseException | None] | None = None
        self._ended: BaseException | None = None  # how the stream ended, once read
        self._listed_at = 0.0  # when the last reconcile listed the tasks (time.monotonic)
        self._synced = False  # the session has reconciled: its break starts the backoff over

    # -- lifecycle ------------------------------------------------------------------

    def stop(self) -> None:
        """Ask ``run`` to return (from any thread, or a signal handler); closes the connection."""
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()

    def close(self) -> None:
        """Close the connection ``reconcile`` or ``apply`` opened outside ``run``, and end the
        writer process."""
        self._close_channel()
        if self.writer is not None:
            self.writer.close()

    def run(self) -> None:
        """Follow until ``stop()``: connect, subscribe, reconcile, apply events; on any break,
        wait (with backoff) and do it again."""
        wait = self.backoff[0]
        first = True
        while not self._stop.is_set():
            self._synced = False
            try:
                self._session(AT_SYNC if first and self._ledger_is_new() else AFTER_GAP)
                wait = self.backoff[0]
            except (grpc.RpcError, _Gone, ctrledger.StoreError, OSError) as e:
                if self._stop.is_set():
                    break
                if self._synced:  # the break of a session that had reconciled: wait from the shortest again
                    wait = self.backoff[0]
                self.stats.errors += 1
                self.stats.last_error = _describe(e)
                log.warning("follow %s: %s; retrying in %.1fs", self.address, self.stats.last_error, wait)
            except Exception as e:  # noqa: BLE001 - a bug must not stop the recording: log it, start over
                if self._stop.is_set():
                    break
                if self._synced:
                    wait = self.backoff[0]
                self.stats.errors += 1
                self.stats.last_error = f"unexpected {type(e).__name__}: {e}"
                log.exception("follow %s: unexpected error; reconciling again in %.1fs", self.address, wait)
            finally:
                first = False
                self._finish_writes()
                self._close_channel()
            if self._stop.wait(wait):
                break
            wait = min(wait * 2, self.backoff[1])
        if self.writer is not None:
            self.writer.close()

    def _ledger_is_new(self) -> bool:
        """Nothing recorded from containerd yet: the first reconcile is the initial sync."""
        try:
            return next(iter(self.store.audit(actor=ACTOR)), None) is None
        except ctrledger.FailedPrecondition:  # a store without history: judge by its log
            return self.store.position == 0

    def _close_channel(self) -> None:
        if self._call is not None:
            self._call.cancel()
            self._call = None
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def sync_once(self) -> int:
        """Connect, reconcile once (``observed at sync`` on a new ledger, else ``observed after a
        gap``) and disconnect; returns the events written. Raises ``OSError`` or ``grpc.RpcError``
        if containerd cannot be reached (``run`` retries instead)."""
        try:
            return self.reconcile(AT_SYNC if self._ledger_is_new() else AFTER_GAP)
        finally:
            self._close_channel()

    def _connect(self) -> grpc.Channel:
        self._channel = channel = connect(self.address)
        self._containers = cgrpc.ContainersStub(channel)  # type: ignore[no-untyped-call]
        self._tasks = tgrpc.TasksStub(channel)  # type: ignore[no-untyped-call]
        self._namespaces = ngrpc.NamespacesStub(channel)  # type: ignore[no-untyped-call]
        return channel

    def _session(self, reason: str) -> None:
        if self.writer is not None:
            self.writer.start()  # again if it died: the break that ended the last session
        channel = self._connect()
        events = egrpc.EventsStub(channel)  # type: ignore[no-untyped-call]
        # Subscribe before listing, so nothing that happens while we list is lost: those
        # events wait in the queue and are applied after the reconcile (idempotently).
        call = events.Subscribe(epb.SubscribeRequest(filters=list(TOPICS)))
        self._call = call
        inbox: queue.SimpleQueue[epb.Envelope | BaseException | None] = queue.SimpleQueue()
        self._fetched.clear()
        self._last_read.clear()
        self._wake = lambda: inbox.put(None)
        self._inbox, self._ended = inbox, None
        reader = threading.Thread(target=_pump, args=(call, inbox, self.prefetch), name="ctrledger-follow-events",
                                  daemon=True)
        reader.start()
        time.sleep(0.05)  # let the subscription reach containerd (it sends no headers before an event)
        self.stats.connects += 1
        self.reconcile(reason)
        self._synced = True
        if self.on_ready is not None:
            self.on_ready(self)
        next_relist = time.monotonic() + self.relist
        wait = 0.5
        while not self._stop.is_set():
            # Woken by an event, by the writer's word that a commit is done, or when the
            # gathered batch may go to the writer.
            batch, ended = _drain(inbox, timeout=max(0.0, min(wait, next_relist - time.monotonic())))
            self._ahead.extend(batch)
            self._ended = self._ended or ended
            while self._ahead:
                self._event(self._ahead.popleft())
            wait = self._write_if_free()
            if self._ended is not None:
                raise self._ended
            if time.monotonic() >= next_relist:
                self._relist_namespaces()
                next_relist = time.monotonic() + self.relist

    # -- reconcile ------------------------------------------------------------------

    def reconcile(self, reason: str = AFTER_GAP, namespaces: Iterable[str] | None = None) -> int:
        """Bring the ledger to containerd's state now (every followed namespace, or
        ``namespaces``); returns the number of events written."""
        if self._channel is None:
            self._connect()
        self._write(wait=True)  # the ledger it compares with includes every event read so far
        names = sorted(set(namespaces) if namespaces is not None else self._containerd_namespaces()
                       | set(self.store.namespaces()) | set(self.only or ()))
        written = 0
        for ns in names:
            if not self._follows(ns):
                continue
            written += self._reconcile_namespace(ns, reason)
            self._known.add(ns)
        self.stats.reconciles += 1
        self.stats.writes += written
        self.stats.namespaces = set(self._known)
        if written:
            log.info("reconciled %s: %d events (%s)", ", ".join(names) or "no namespace", written, reason)
        return written

    def _containerd_namespaces(self) -> set[str]:
        found = self._namespaces.List(npb.ListNamespacesRequest(), timeout=30)
        return {n.name for n in found.namespaces}

    def _relist_namespaces(self) -> None:
        new = {n for n in self._containerd_namespaces() if self._follows(n)} - self._known
        if new:
            self.reconcile(AFTER_GAP, new)

    def _follows(self, ns: str) -> bool:
        return self.only is None or ns in self.only

    def _reconcile_namespace(self, ns: str, reason: str) -> int:
        md = _ns(ns)
        seen: set[str] = set()
        ledger = {c.id: c for c in self.store.list(namespace=ns)}
        written = 0
        batch: list[_Item] = []
        # What the listing lacks was gone when containerd listed, not when the listing is read
        # through: a name created again meanwhile has an event later than its deletion.
        listed_at = datetime.now(UTC)
        for chunk in _listed(self._containers.ListStream(cpb.ListContainersRequest(), metadata=md, timeout=600)):
            for wire, c in chunk:
                seen.add(c.id)
                have = ledger.get(c.id)
                if have is not None and _unchanged(have, c):
                    continue  # the common case of a reconcile: not worth a round through the store
                at = c.created_at if have is None else (observed_time(wire.updated_at) or None)
                batch.append((c.id, c, at, reason))
                if len(batch) >= _BATCH:
                    written += self._commit(ns, batch)
                    batch = []
        batch += [(cid, None, listed_at, reason) for cid in ledger if cid not in seen]
        # As the events' batches: beside a proxy, nothing the proxy recorded since the listing is undone
        written += self._commit(ns, batch)
        # containerd lists each container's task (its init process) under its id, the container's
        # ID: container_id is left empty (1.6 and 1.7; read either)
        asked = {c.id: _mark(c) for c in self.store.list(namespace=ns)}  # the ledger before containerd's answer
        listed = self._tasks.List(tpb.ListTasksRequest(), metadata=md, timeout=60).tasks
        self._listed_at = time.monotonic()
        tasks = {t.container_id or t.id: t for t in listed}
        for cid in sorted(seen):
            known = ledger.get(cid)
            if cid in tasks or (known is not None and known.status.state == "RUNNING"):
                written += self._reconcile_task(ns, cid, tasks.get(cid), asked.get(cid), reason)
        return written

    def _observe(self, ns: str, batch: Sequence[_Item | tuple[str, Container | None, datetime | None]],
                 reason: str) -> int:
        """Write ``batch`` in one commit (``reason`` for the items without one of their own);
        the number of events written."""
        if not batch:
            return 0
        # The batch's command id, through a writer process (whose death may come after its commit,
        # before its answer): written again after its writer died, a batch that was committed
        # is found by it and not applied twice (observing one state is idempotent, but a batch
        # with two words on one container, or a deletion and the name created again, is not).
        # In this process, a failed write wrote nothing: no id, no row for it in the commit.
        # Time-ordered (as the store's own ids are), so that it lands at the end of the index of
        # command ids, not on a random page of it.
        command = None if self.writer is None else f"follow-{time.time_ns():019d}-{os.urandom(6).hex()}"
        try:
            kinds = self._observe_batch(ns, batch, reason, command)
        except WriterGone as e:
            # Committed or not: the same batch once more, as the same command, through a new
            # writer process, and the session goes on (a second death ends it).
            log.warning("%s; writing its batch again through a new one", e)
            kinds = self._observe_batch(ns, batch, reason, command)
        return sum(len(k) for k in kinds)

    def _observe_batch(self, ns: str, batch: Sequence[_Item | tuple[str, Container | None, datetime | None]],
                       reason: str, command: str | None) -> list[tuple[str, ...]]:
        try:
            kinds: list[tuple[str, ...]] = self._writes.observe_many(batch, namespace=ns, actor=ACTOR, reason=reason,
                                                                      client="follow", request_id=command)
            return kinds
        except ctrledger.InvalidArgument:
            kinds = []  # one record the store refuses must not keep the others out
            for i, item in enumerate(batch):
                try:
                    kinds.append(self._writes.observe(*item[:2], at=item[2], namespace=ns, actor=ACTOR,
                                                      reason=item[3] if len(item) == 4 else reason,
                                                      client="follow",
                                                      request_id=None if command is None else f"{command}/{i}"))
                except ctrledger.InvalidArgument as e:
                    log.warning("cannot record %s/%s: %s", ns, item[0], e)
            return kinds

    # -- group commit -----------------------------------------------------------------

    def _commit(self, ns: str, items: list[_Item]) -> int:
        """The writer's work: ``items`` in one commit. Beside a proxy, first without what the
        proxy recorded since it was observed: an observation older than the ledger's last change
        of the container would take the ledger back (the proxy cannot record these containers
        meanwhile: ``Claims.writing``)."""
        if self.claims is None:
            return self._observe(ns, items, "")
        with self.claims.writing({(ns, item[0]) for item in items}):
            return self._observe(ns, [item for item in items if not self._superseded(ns, item)], "")

    def _superseded(self, ns: str, item: _Item) -> bool:
        """The ledger holds a change of ``item``'s container later than the item's time."""
        cid, state, at = item[:3]
        return at is not None and superseded(self.store, ns, cid, state, at)

    def _write(self, wait: bool = False) -> None:
        """Hand the gathered observations to the writer (once the batch before them is
        committed: one commit at a time, in order); with ``wait``, return once they are
        committed too. A write error is raised here (``Unavailable``: to the session, which
        reconnects and reconciles) or logged (any other refusal)."""
        if self._pending.items:
            self._written(wait=True)
            ns, items, number = self._pending.take()
            self._commit_at = time.monotonic() + _SPACING
            future = self._writer.submit(self._commit, ns, items)
            self._writing = (future, number, ns)
            wake = self._wake
            if wake is not None:
                future.add_done_callback(lambda _: wake())
        if wait:
            self._written(wait=True)

    def _write_if_free(self) -> float:
        """Hand the gathered batch to the writer if the writer is free and ``_SPACING`` has
        passed since the last commit began (a batch is what gathered meanwhile; an event after a
        quiet moment goes at once, alone). Returns how long the event loop may wait for events
        before it calls again: until the spacing has passed, or 0.5 s (nothing is pending, or
        the writer is busy and wakes the loop when its commit is done)."""
        if not self._pending.items or not self._written(wait=False):
            return 0.5
        left = self._commit_at - time.monotonic()
        if left > 0:
            return left
        self._write()
        return 0.5

    def _written(self, wait: bool) -> bool:
        """Account for the batch being committed if it is done (``wait``: once it is); True
        when the writer is free."""
        if self._writing is None:
            return True
        future, number, ns = self._writing
        if not wait and not future.done():
            return False
        self._writing = None
        try:
            exc = future.exception()
        finally:
            self._pending.written(number)
        if exc is None:
            self.stats.writes += future.result()
        elif isinstance(exc, ctrledger.StoreError) and not isinstance(exc, ctrledger.Unavailable):
            self.stats.errors += 1
            self.stats.last_error = f"container events in {ns}: {exc}"
            log.warning("cannot record container events in %s: %s", ns, exc)
        else:
            raise exc
        return True

    def _finish_writes(self) -> None:
        """At the end of a session: commit what was read (when stopping, or after a broken
        stream), or give it up to the next reconcile if the store refuses."""
        try:
            self._write(wait=True)
        except Exception as e:  # noqa: BLE001 - the reconcile that starts the next session makes up for it
            self.stats.errors += 1
            self.stats.last_error = _describe(e)
            log.warning("could not record the last events read (the next reconcile will): %s", e)
        finally:
            self._writing = None
            self._pending.clear()
            self._wake = self._inbox = None
            self._ahead.clear()  # read but not recorded: the next session's reconcile makes up for them

    def _reconcile_task(self, ns: str, cid: str, task: ttypes.Process | None, asked: tuple[int, object] | None,
                        reason: str) -> int:
        """Bring the container's status to its task's (None: it has no task), as containerd
        answered when the ledger's record of the container was ``asked`` (``_mark``)."""
        if self.claims is not None:
            self.claims.wait(ns, cid)  # a proxied call records it first, under its caller's name
        try:
            have = self.store.get(cid, namespace=ns)
        except ctrledger.NotFound:
            return 0
        if asked is None or _mark(have) != asked:
            # recorded since containerd was asked (through the proxy, or an event read since):
            # the answer may be older than that record, and cannot overrule it. Found in a
            # hostile soak: a task listed CREATED (or not yet there), then started through the
            # proxy before the reconcile looked at the ledger, was ended as Unknown (255); one
            # listed PAUSED, then resumed through the proxy, was recorded paused again.
            return 0
        status = have.status
        running = status.state == "RUNNING"
        now = datetime.now(UTC)
        written = 0
        kw: dict[str, Any] = {"namespace": ns, "actor": ACTOR}
        if task is None or task.status in (ttypes.STOPPED, ttypes.UNKNOWN, ttypes.CREATED):
            if running:
                if task is not None and task.status == ttypes.STOPPED:
                    self._exited(ns, cid, task.exit_status, observed_time(task.exited_at) or now, reason)
                elif task is None and self._exit_ahead(ns, cid):
                    return written  # gone since it exited: its exit, read already, says how
                else:
                    self._writes.exited(cid, exit_code=UNKNOWN_EXIT, at=_not_before(now, status), reason="Unknown",
                                      message="the task was gone when the follower looked again",
                                      audit_reason=reason, **kw)
                written += 1
            elif task is not None and task.status == ttypes.STOPPED and status.state == "CREATED":
                # the task ran and exited while nobody watched: its run, dated by its exit
                at = _not_before(observed_time(task.exited_at) or now, status)
                self._writes.started(cid, pid=task.pid, at=at, reason=reason, **kw)
                self._exited(ns, cid, task.exit_status, at, reason)
                written += 2
            return written
        if running and status.pid != task.pid:  # another run began and this one ended unseen
            self._writes.exited(cid, exit_code=UNKNOWN_EXIT, at=_not_before(now, status), reason="Unknown",
                              message="a new task replaced it while nobody watched", audit_reason=reason, **kw)
            written += 1
            running = False
        if not running:
            self._writes.started(cid, pid=task.pid, at=_not_before(now, _status(self.store, ns, cid)), reason=reason,
                               **kw)
            written += 1
        status = _status(self.store, ns, cid)
        assert status is not None
        paused = task.status in (ttypes.PAUSED, ttypes.PAUSING)
        if paused and not status.paused:
            self._writes.paused(cid, at=_not_before(now, status), reason=reason, **kw)
            written += 1
        elif not paused and status.paused:
            self._writes.resumed(cid, at=_not_before(now, status), reason=reason, **kw)
            written += 1
        return written

    # -- events ---------------------------------------------------------------------

    def apply(self, batch: list[epb.Envelope]) -> None:
        """Record what these envelopes say (in order) and return once it is committed; what is
        already recorded writes nothing."""
        if self._channel is None:
            self._connect()
        self._ahead.extend(batch)
        while self._ahead:
            self._event(self._ahead.popleft())
        self._write(wait=True)

    def _event(self, env: epb.Envelope) -> None:
        """Record one event. A container event joins the batch being gathered, which goes to
        the writer as soon as the writer is free and ``_SPACING`` has passed since the last
        commit began, or at ``_BATCH`` observations, or when an event of another namespace
        comes (a batch is one namespace's): group commit, while one batch is committed the
        events that arrive meanwhile are read and judged (against what is pending rather than
        the ledger) and become the next. A task or namespace event, or a
        reconcile, first waits for everything pending to be committed (they read the ledger)."""
        self.stats.events += 1
        ns = env.namespace
        pending = self._pending
        if env.topic.startswith("/namespaces/"):
            self._write(wait=True)
            self._namespace_event(env)
            return
        if not self._follows(ns):
            return
        if ns not in self._known:  # a namespace created implicitly: no event said so
            self.reconcile(NEW_NAMESPACE, [ns])
        try:
            if env.topic.startswith("/containers/"):
                if ns != pending.namespace:
                    self._write()
                    pending.namespace = ns
                found = self._container_event(env, pending)
                if found is None:
                    return
                item, why = found
                pending.add(ns, (*item, why or None))
                if len(pending.items) >= _BATCH:
                    self._write()
                else:
                    self._write_if_free()
            elif env.topic.startswith("/tasks/"):
                self._write(wait=True)
                self._task_event(env)
        except ctrledger.StoreError as e:
            if isinstance(e, ctrledger.Unavailable):
                raise
            self.stats.errors += 1
            self.stats.last_error = f"{env.topic} in {ns}: {e}"
            log.warning("cannot record %s: %s", env.topic, e)

    def _namespace_event(self, env: epb.Envelope) -> None:
        payload = payload_of(env)
        if env.topic == "/namespaces/create" and isinstance(payload, nev.NamespaceCreate):
            if self._follows(payload.name) and payload.name not in self._known:
                self.reconcile(NEW_NAMESPACE, [payload.name])
        elif env.topic == "/namespaces/delete":
            self._known.discard(env.namespace)

    def prefetch(self, env: epb.Envelope) -> None:
        """Start reading the container of a create or update event as soon as the event arrives
        (the event stream's reader calls this; the reads are asynchronous calls, many at once,
        but those of one container one after the other, in the events' order), so the state
        read is as close to the event as it can be: the payloads lack the spec, and a create's
        its labels. A delete event ends its container's chain of reads (``_read_after``)."""
        if not env.topic.startswith("/containers/") or not self._follows(env.namespace):
            return
        payload = payload_of(env)
        if isinstance(payload, cev.ContainerDelete):
            with self._reads_lock:
                self._last_read.pop((env.namespace, payload.id), None)
        elif isinstance(payload, (cev.ContainerCreate, cev.ContainerUpdate)):
            key, ns, cid = (env.namespace, payload.id), env.namespace, payload.id
            read: Future[cpb.Container | None] = Future()
            with self._reads_lock:
                before = self._last_read.get(key)
                self._last_read[key] = read
            read.add_done_callback(lambda done: self._forget_read(key, done))
            self._fetched[id(env)] = (env, payload, read)
            if before is None:
                self._start_read(ns, cid, read)
            elif isinstance(payload, cev.ContainerUpdate):
                before.add_done_callback(lambda done: self._read_after(done, ns, cid, read))
            else:
                before.add_done_callback(lambda _: self._start_read(ns, cid, read))

    def _read_after(self, before: Future[cpb.Container | None], ns: str, cid: str,
                    read: Future[cpb.Container | None]) -> None:
        """An update's read, once the read before it (of the same container: its create's or an
        earlier update's) is answered. None, without a call, when that read found the container
        gone: the update's incarnation was deleted before that answer (it existed from its create
        event, which came before the read was sent, to its deletion), so a read now could find
        only its absence or a later incarnation, which the update is not about. In a burst of
        short-lived containers this saves the Get of most updates."""
        if before.exception() is None and before.result() is None:
            read.set_result(None)
        else:
            self._start_read(ns, cid, read)

    def _start_read(self, ns: str, cid: str, read: Future[cpb.Container | None]) -> None:
        """Send ``Containers/Get`` for ``cid``; its answer (None: not found) settles ``read``."""
        def done(call: Any) -> None:
            try:
                read.set_result(call.result().container)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.NOT_FOUND:
                    read.set_result(None)
                else:
                    read.set_exception(e)
            except Exception as e:  # noqa: BLE001 - a cancelled call, a closed channel: the event reads again
                read.set_exception(e)

        try:
            self._containers.Get.future(cpb.GetContainerRequest(id=cid), metadata=_ns(ns),
                                        timeout=30).add_done_callback(done)
        except Exception as e:  # noqa: BLE001 - as above
            read.set_exception(e)

    def _read(self, ns: str, cid: str) -> cpb.Container | None:
        """The container as containerd holds it now; None if it is gone."""
        try:
            found: cpb.Container = self._containers.Get(cpb.GetContainerRequest(id=cid), metadata=_ns(ns),
                                                        timeout=30).container
            return found
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def _forget_read(self, key: tuple[str, str], read: Future[cpb.Container | None]) -> None:
        """A read is answered: the next read of its container need not wait for it, unless it
        found the container gone, which the updates read after it are told (``_read_after``)
        until the container's delete event comes (so what is kept is bounded by the containers
        that exist, or did until a moment ago)."""
        if read.exception() is None and read.result() is None:
            return
        with self._reads_lock:
            if self._last_read.get(key) is read:
                del self._last_read[key]

    def _container_event(
        self, env: epb.Envelope, pending: _Pending,
    ) -> tuple[tuple[str, Container | None, datetime | None], str] | None:
        """The observation an event makes, and its reason ("" for an ordinary event)."""
        fetched = self._fetched.pop(id(env), None)
        payload, started = (payload_of(env), None) if fetched is None else fetched[1:]
        at = observed_time(env.timestamp)
        if isinstance(payload, cev.ContainerDelete):
            if self.claims is not None:
                self.claims.wait(env.namespace, payload.id)
            known = self._known_record(env.namespace, payload.id, pending)
            if known is not None and at is not None and known.created_at is not None and known.created_at > at:
                return None  # an old delete, replayed: the ledger knows of a later incarnation
            return (payload.id, None, at), ""
        if not isinstance(payload, (cev.ContainerCreate, cev.ContainerUpdate)):
            return None
        if self.claims is not None:
            self.claims.wait(env.namespace, payload.id)
        known = self._known_record(env.namespace, payload.id, pending)
        if known is not None and at is not None and known.updated_at is not None and known.updated_at >= at:
            return None  # the ledger already holds a state as new (a reconcile read it since, or a duplicate)
        if known is None and at is not None and self._deleted_since(env.namespace, payload.id, at, pending):
            return None  # deleted (through the proxy, or a later event) after this event: do not bring it back
        wire: cpb.Container | None
        try:
            wire = started.result() if started is not None else self._read(env.namespace, payload.id)
        except Exception:  # noqa: BLE001 - the early read failed (its call, or the channel): once more, now
            wire = self._read(env.namespace, payload.id)
        if wire is None:  # deleted before it could be read: record what the event says
            return self._from_payload(env.namespace, payload, at, known, pending)
        state = observed_container(wire)
        if isinstance(payload, cev.ContainerUpdate):  # what this update set, not what came after it
            state = _with(state, labels=dict(payload.labels), image=payload.image,
                            snapshot_key=payload.snapshot_key)
        return (payload.id, state, at), ""

    def _deleted_since(self, ns: str, cid: str, at: datetime, pending: _Pending) -> bool:
        """The ledger's last word on ``cid`` (or the pending one's) is a deletion at or after ``at``.
        A pending deletion older than ``at`` does not hide the ledger's: behind a reconcile that
        found the name gone, the events queued meanwhile are older than its deletion (delete,
        create again, delete: the create's incarnation is gone too)."""
        word = pending.get(ns, cid)
        if word is not None:
            state, when = word
            if state is not None:
                return False
            if when is not None and when >= at:
                return True
        return _deleted_since(self.store, ns, cid, at)

    def _known_record(self, ns: str, cid: str, pending: _Pending) -> Container | None:
        """The container as the ledger will hold it once ``pending`` is written (None: absent)."""
        word = pending.get(ns, cid)
        if word is not None:
            state, when = word
            return None if state is None else _with(state, updated_at=when)
        try:
            return self.store.get(cid, namespace=ns)
        except ctrledger.NotFound:
            return None

    def _from_payload(
        self, ns: str, payload: cev.ContainerCreate | cev.ContainerUpdate, at: datetime | None,
        known: Container | None, pending: _Pending,
    ) -> tuple[tuple[str, Container | None, datetime | None], str] | None:
        if isinstance(payload, cev.ContainerCreate):
            last = None
            word = pending.get(ns, payload.id)
            if word is not None:
                last = word[1]
            else:
                entry = _last_word(self.store, ns, payload.id)
                last = None if entry is None else entry.recorded_at
            if last is not None and at is not None and last >= at:
                return None  # an old create, replayed: the ledger has seen this name since
            options = (ctrledger.Payload(payload.runtime.options.type_url, payload.runtime.options.value)
                       if payload.runtime.HasField("options") else None)
            state = Container(id=payload.id, image=payload.image, spec=ctrledger.Payload(),
                              runtime=ctrledger.Runtime(payload.runtime.name, options))
            return (payload.id, state, at), SEEN_IN_EVENT
        if known is None:
            return None
        state = _with(known, labels=dict(payload.labels), image=payload.image, snapshot_key=payload.snapshot_key)
        return (payload.id, state, at), SEEN_IN_EVENT

    def _task_event(self, env: epb.Envelope) -> None:
        ns, payload, at = env.namespace, payload_of(env), observed_time(env.timestamp)
        if payload is None:
            return
        cid: str = getattr(payload, "container_id", "")
        if not cid:
            return
        if self.claims is not None:
            self.claims.wait(ns, cid)
        if isinstance(payload, tev.TaskOOM):
            self._oom.add((ns, cid))
            return
        if isinstance(payload, (tev.TaskExit, tev.TaskDelete)):
            if payload.id and payload.id != cid:
                return  # an exec process: not the container's exit
            exited_at = observed_time(payload.exited_at) or at
            if not _exit_applies(_status(self.store, ns, cid), payload, exited_at):
                return
            if payload.exit_status == 137 and (ns, cid) not in self._oom and self._oom_follows(ns, cid, at):
                self._oom.add((ns, cid))
            with self._holding(ns, cid):
                # again, held: a proxied call may have recorded the exit (Tasks/Delete) or the
                # container's deletion since the look above (or during the wait for an OOM)
                if _exit_applies(_status(self.store, ns, cid), payload, exited_at):
                    self._exited(ns, cid, payload.exit_status, exited_at, "")
                    self.stats.writes += 1
            return
        if not isinstance(payload, (tev.TaskStart, tev.TaskPaused, tev.TaskResumed)):
            return
        with self._holding(ns, cid):
            known = self._status_event(ns, cid, payload, at)
        if not known:
            if at is not None and _deleted_since(self.store, ns, cid, at):
                return  # the event of a container deleted since (the follower is behind): nothing to do
            self.reconcile(AFTER_GAP, [ns])  # the container came before its event: fetch it

    @contextmanager
    def _holding(self, ns: str, cid: str) -> Iterator[None]:
        """Beside a proxy, no proxied call records ``cid`` while the block looks at the ledger
        and writes (``Claims.writing``): the look and the write are not split by its record."""
        if self.claims is None:
            yield
            return
        with self.claims.writing({(ns, cid)}):
            yield

    def _status_event(self, ns: str, cid: str, payload: tev.TaskStart | tev.TaskPaused | tev.TaskResumed,
                      at: datetime | None) -> bool:
        """Record a start, pause or resume; False if the ledger does not have the container."""
        status = _status(self.store, ns, cid)
        if status is None:
            return False
        kw: dict[str, Any] = {"namespace": ns, "actor": ACTOR, "at": _not_before(at, status)}
        last = max((t for t in (status.started_at, status.finished_at) if t is not None), default=None)
        if at is not None and last is not None and at <= last:
            return True  # no newer than what the ledger knows: a duplicate, or queued while a reconcile recorded it
        if isinstance(payload, tev.TaskStart):
            if status.state == "RUNNING" and status.pid == payload.pid:
                return True  # a duplicate
            if status.state == "RUNNING":
                self._writes.exited(cid, exit_code=UNKNOWN_EXIT, reason="Unknown",
                                  message="a new task started before its exit was seen", **kw)
            self._oom.discard((ns, cid))
            self._writes.started(cid, pid=payload.pid, **kw)
        else:
            pause = isinstance(payload, tev.TaskPaused)
            if status.state != "RUNNING" or status.paused == pause:
                return True
            try:
                (self._writes.paused if pause else self._writes.resumed)(cid, **kw)
            except ctrledger.InvalidArgument:
                # dated before the last status change recorded: a pause or resume recorded
                # since, through the proxy (at the time containerd answered it, after this
                # event), or by a reconcile (at the time it looked). The event is an old one:
                # the task as containerd has it now is what the status must say.
                asked = _mark(self.store.get(cid, namespace=ns))
                self.stats.writes += self._reconcile_task(ns, cid, self._task(ns, cid), asked, AFTER_GAP)
                return True
        self.stats.writes += 1
        return True

    def _task(self, ns: str, cid: str) -> ttypes.Process | None:
        """The container's task as containerd has it now (None: it has none)."""
        try:
            got: tpb.GetResponse = self._tasks.Get(tpb.GetRequest(container_id=cid), metadata=_ns(ns), timeout=30)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return got.process

    def _exit_ahead(self, ns: str, cid: str) -> bool:
        """Whether an exit of ``cid`` is among the events read and not yet recorded (waiting for
        more until ``_EXIT_AHEAD`` after the reconcile listed the tasks). A task deleted before a
        reconcile listed them (a ctr run --rm, over in milliseconds) published its exit before:
        while following, the exit is read or about to be, with its code; ending the run as
        Unknown (255) would have the ledger ignore it."""
        if self._inbox is None:
            return False
        deadline = self._listed_at + _EXIT_AHEAD
        seen = 0
        while True:
            for i in range(seen, len(self._ahead)):
                env = self._ahead[i]
                if env.namespace == ns and env.topic in ("/tasks/exit", "/tasks/delete"):
                    got = payload_of(env)
                    if getattr(got, "container_id", "") == cid and getattr(got, "id", cid) in (cid, ""):
                        return True
            seen = len(self._ahead)
            left = deadline - time.monotonic()
            if self._ended is not None or left <= 0:
                return False
            batch, ended = _drain(self._inbox, timeout=left)
            self._ahead.extend(batch)
            self._ended = ended

    def _oom_follows(self, ns: str, cid: str, published: datetime | None) -> bool:
        """Whether a ``/tasks/oom`` of ``cid`` comes among the next events (taken out of them),
        waiting for more until ``_OOM_LATE`` after the exit was ``published``: containerd
        publishes a task's OOM and its exit from two places of the shim, and the OOM is
        sometimes the later (one run in ten on a quiet machine, more under load). The wait
        is counted from the exit's publication, not from now: exits read late (a follower
        behind, many tasks killed at once) wait little or not at all, and what has arrived
        meanwhile is looked at first."""
        wait = _OOM_LATE if published is None else _OOM_LATE - (time.time() - published.timestamp())
        deadline = time.monotonic() + min(max(wait, 0.0), _OOM_LATE)
        seen, looked = 0, False
        while True:
            for i in range(seen, len(self._ahead)):
                env = self._ahead[i]
                if (env.topic == "/tasks/oom" and env.namespace == ns
                        and getattr(payload_of(env), "container_id", "") == cid):
                    del self._ahead[i]
                    return True
            seen = len(self._ahead)
            left = deadline - time.monotonic()
            if self._inbox is None or self._ended is not None or (left <= 0 and looked):
                return False
            batch, ended = _drain(self._inbox, timeout=max(left, 0.0))
            looked = True
            self._ahead.extend(batch)
            self._ended = ended

    def _exited(self, ns: str, cid: str, code: int, at: datetime | None, reason: str) -> None:
        oom = (ns, cid) in self._oom
        self._oom.discard((ns, cid))
        status = _status(self.store, ns, cid)
        self._writes.exited(cid, exit_code=_int32(code), at=_not_before(at, status),
                          reason="OOMKilled" if oom else None, namespace=ns, actor=ACTOR,
                          audit_reason=reason or None)


def _mark(record: Container) -> tuple[int, object]:
    """What changes whenever anything of the container is recorded: its version in its
    incarnation (told apart by its creation time)."""
    return record.version, record.created_at


def _exit_applies(status: Any, payload: tev.TaskExit | tev.TaskDelete, exited_at: datetime | None) -> bool:
    """Whether an exit is this run's and not yet recorded: the container is running, and the
    exit is not that of an earlier run, replayed (a reconcile may date this run's start after
    its exit: it saw the task running, and the exit came before it recorded that)."""
    if status is None or status.state != "RUNNING":
        return False
    return not (exited_at is not None and status.started_at is not None and exited_at < status.started_at
                and payload.pid != status.pid)


def connect(address: str, timeout: float = 5.0) -> grpc.Channel:
    """A channel to the containerd at ``address`` (a unix socket path), once it answers;
    ``OSError`` saying why if it does not within ``timeout`` seconds."""
    if not os.path.exists(address):
        raise OSError(f"cannot reach containerd at {address}: no such socket")
    channel = grpc.insecure_channel(f"unix://{address}", options=[("grpc.max_receive_message_length", 1 << 30)])
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        channel.close()
        raise OSError(f"cannot reach containerd at {address}: it does not answer") from None
    return channel


def superseded(store: ctrledger.Store, ns: str, cid: str, state: Container | None, at: datetime) -> bool:
    """Recording ``state`` (None: deleted) of ``cid``, seen at ``at``, would take the ledger back:
    it holds a later change (an observation and a proxied record, or two proxied records, are
    written in any order), or it deleted that incarnation since (``deleted_incarnation``)."""
    try:
        have = store.get(cid, namespace=ns)
    except ctrledger.NotFound:  # deleted meanwhile (through the proxy): not brought back
        return state is not None and deleted_incarnation(store, ns, state, at)
    last = have.updated_at if state is not None else have.created_at
    return last is not None and last > at


def _last_word(store: ctrledger.Store, ns: str, cid: str) -> ctrledger.AuditRecord | None:
    """The audit record of ``cid``'s last change (None: never seen, or a store without history)."""
    try:
        return store.last_change(cid, namespace=ns)
    except ctrledger.FailedPrecondition:
        return None


def _deleted_since(store: ctrledger.Store, ns: str, cid: str, at: datetime) -> bool:
    """The ledger's last word on ``cid`` is a deletion at or after ``at``."""
    last = _last_word(store, ns, cid)
    return last is not None and last.kind == "Deleted" and last.recorded_at >= at


def deleted_incarnation(store: ctrledger.Store, ns: str, state: Container, at: datetime | None) -> bool:
    """``state``, seen on containerd at ``at`` for a name the ledger does not hold now, is of the
    incarnation the ledger last deleted: recording it would bring a deleted container back (a
    late record of a call or event that came before the deletion). Told by containerd's
    ``created_at`` of what was seen (else ``at``): at or before the deletion's recorded time, it
    is the incarnation deleted; after it, one created again. (The ledger's own ``created_at`` is
    its Created event's time, not containerd's: they cannot be compared for equality.)"""
    seen = state.created_at if state.created_at is not None else at
    return seen is not None and _deleted_since(store, ns, state.id, seen)


def _with(record: Container, **fields: Any) -> Container:
    """``record`` with ``fields`` replaced, without ``replace``'s checks and copies: what the
    follower builds is checked by ``observe`` before anything is written."""
    return Container.trusted(**{**record.__dict__, **fields})


def _unchanged(have: Container, seen: Container) -> bool:
    """Every field an observation compares is equal (``Store.observe`` would write nothing):
    a shortcut for the reconcile, which otherwise sends every container to the store. Any
    difference at all, even one the store would ignore, goes to the store, which decides."""
    return (have.labels == {k: v for k, v in seen.labels.items() if v} and have.image == seen.image
            and have.spec == seen.spec and have.runtime == seen.runtime and have.snapshotter == seen.snapshotter
            and have.snapshot_key == seen.snapshot_key and have.sandbox == seen.sandbox
            and have.extensions == seen.extensions
            and (seen.created_at is None or have.created_at is None or seen.created_at <= have.created_at))


_Listed = list[tuple[cpb.Container, Container]]


def _listed(call: Iterator[cpb.ListContainerMessage]) -> Iterator[_Listed]:
    """A ``ListStream``'s containers (as containerd sent them, and as records), in chunks, read
    and converted by a thread of its own while the caller records the previous chunk (read one
    by one between writes, the stream stalls: 20,000 containers took 8x their reading time)."""
    chunks: queue.Queue[_Listed | BaseException | None] = queue.Queue(maxsize=64)
    stop = threading.Event()

    def put(item: _Listed | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        chunk: _Listed = []
        try:
            for msg in call:
                chunk.append((msg.container, observed_container(msg.container)))
                if len(chunk) >= _CHUNK:
                    if not put(chunk):
                        return
                    chunk = []
            if put(chunk):
                put(None)
        except BaseException as e:  # noqa: BLE001 - handed to the caller, which raises it
            put(e)

    reader = threading.Thread(target=read, name="ctrledger-follow-list", daemon=True)
    reader.start()
    try:
        while True:
            item = chunks.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        cancel = getattr(call, "cancel", None)
        if cancel is not None:
            cancel()
        reader.join(5)


def _status(store: ctrledger.Store, ns: str, cid: str) -> Any:
    try:
        return store.get(cid, namespace=ns).status
    except ctrledger.NotFound:
        return None


def _not_before(at: datetime | None, status: Any) -> datetime | None:
    """``at``, or the container's last status time if containerd's clock says earlier (the store
    refuses a status change dated before the previous one, its creation included: a reconcile
    may record the container after the event it is now behind)."""
    if at is None or status is None:
        return at
    last = max((t for t in (status.created_at, status.started_at, status.finished_at) if t is not None),
               default=None)
    return last if last is not None and at < last else at


def _int32(code: int) -> int:
    return code - (1 << 32) if code >= 1 << 31 else code


def _ns(namespace: str) -> tuple[tuple[str, str], ...]:
    return (("containerd-namespace", namespace),)


def _pump(call: Iterator[epb.Envelope], inbox: queue.SimpleQueue[epb.Envelope | BaseException | None],
          prefetch: Callable[[epb.Envelope], None]) -> None:
    try:
        for env in call:
            prefetch(env)
            inbox.put(env)
        inbox.put(_Gone("containerd ended the event stream"))
    except grpc.RpcError as e:
        inbox.put(e)
    except Exception as e:  # noqa: BLE001 - handed to the follower's loop, which logs and reconnects
        inbox.put(e)


def _drain(
    inbox: queue.SimpleQueue[epb.Envelope | BaseException | None], timeout: float,
) -> tuple[list[epb.Envelope], BaseException | None]:
    """What the stream has delivered (waiting up to ``timeout`` for the first, or for a
    ``None``: the writer's word that a commit is done), and how it ended if it did."""
    try:
        first = inbox.get(timeout=timeout)
    except queue.Empty:
        return [], None
    items = [first]
    while len(items) < 5 * _BATCH:
        try:
            items.append(inbox.get_nowait())
        except queue.Empty:
            break
    out: list[epb.Envelope] = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, BaseException):
            return out, item if isinstance(item, (grpc.RpcError, _Gone)) else _Gone(f"event stream failed: {item!r}")
        out.append(item)
    return out, None


def _describe(e: BaseException) -> str:
    if isinstance(e, grpc.RpcError):
        code = e.code() if hasattr(e, "code") else None
        details = e.details() if hasattr(e, "details") else str(e)
        return f"{getattr(code, 'name', code)}: {details}"
    return str(e) or type(e).__name__
