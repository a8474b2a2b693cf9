"""``Follower._oom_follows``: the wait for an OOM published after a SIGKILLed task's exit counts
from the exit's publication (the timeouts it waits with are asserted, not measured)."""

from __future__ import annotations

import queue
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ctrledger.follow import follower as fmod
from ctrledger.follow.follower import Follower
from ctrledger.wire.containerd.events import task_pb2 as tev
from ctrledger.wire.containerd.services.events.v1 import events_pb2 as epb


def oom(cid: str, ns: str = "default") -> epb.Envelope:
    env = epb.Envelope(topic="/tasks/oom", namespace=ns)
    env.event.type_url, env.event.value = "containerd.events.TaskOOM", tev.TaskOOM(container_id=cid).SerializeToString()
    return env


class Inbox(queue.Queue[Any]):
    """A queue that records the timeouts it is asked to wait for."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float | None] = []

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        self.timeouts.append(timeout)
        return super().get(False)  # never actually waits: the test asserts the timeout asked for


def follower(*queued: epb.Envelope) -> tuple[Follower, Inbox]:
    f = object.__new__(Follower)
    inbox = Inbox()
    for env in queued:
        inbox.put(env)
    f._inbox, f._ahead, f._ended = inbox, [], None  # type: ignore[assignment]
    return f, inbox


def test_an_exit_read_late_does_not_wait_but_still_finds_an_oom_that_has_arrived() -> None:
    f, inbox = follower(oom("other"), oom("x", ns="elsewhere"), oom("x"))
    assert f._oom_follows("default", "x", datetime.now(UTC) - timedelta(seconds=10))
    assert inbox.timeouts[0] == 0.0
    assert [(e.namespace, fmod.payload_of(e).container_id) for e in f._ahead] == [  # type: ignore[union-attr]
        ("default", "other"), ("elsewhere", "x")]  # the others' stay, in order


def test_an_exit_read_late_without_an_oom_looks_once_without_waiting() -> None:
    f, inbox = follower()
    assert not f._oom_follows("default", "x", datetime.now(UTC) - timedelta(seconds=10))
    assert inbox.timeouts == [0.0]


@pytest.mark.parametrize("published", [None, "now", "future"])
def test_an_exit_read_at_once_waits_at_most_the_oom_delay(published: str | None) -> None:
    f, inbox = follower()
    at = {None: None, "now": datetime.now(UTC), "future": datetime.now(UTC) + timedelta(hours=1)}[published]
    f._oom_follows("default", "x", at)
    assert inbox.timeouts and 0 < inbox.timeouts[0] <= fmod._OOM_LATE  # type: ignore[operator]
