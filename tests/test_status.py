"""The status lifecycle (CRI's container status): transitions, refusals, time travel, filters, the log.

Every table runs on both backends (the ``store`` fixture). The clock steps one second per
call, starting at 2026-11-21T03:00:00Z: the n-th store call of a test happens at 03:00:0n.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import ctrledger
from ctrledger import FailedPrecondition, InvalidArgument, NotFound, Position, Resources, Status
from ctrledger.domain.model import derive_state
from ctrledger.projections.schema import SCHEMA_VERSION

from .conftest import StepClock, make, postgres_schema, postgres_url

T0 = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


Op = Callable[[ctrledger.Store], Any]


def start(pid: int = 4242, **kw: Any) -> Op:
    return lambda s: s.started("web-1", pid=pid, **kw)


def exit_(code: int = 0, **kw: Any) -> Op:
    return lambda s: s.exited("web-1", exit_code=code, **kw)


def pause(**kw: Any) -> Op:
    return lambda s: s.paused("web-1", **kw)


def resume(**kw: Any) -> Op:
    return lambda s: s.resumed("web-1", **kw)


def resources(at: datetime | None = None, **kw: Any) -> Op:
    return lambda s: s.update_resources("web-1", Resources(**kw), at=at)


def delete() -> Op:
    return lambda s: s.delete("web-1")


# -- derivation, exactly as CRI's Status.State() -----------------------------------------------


@pytest.mark.parametrize(
    ("created", "started", "finished", "unknown", "state"),
    [
        pytest.param(None, None, None, False, "UNKNOWN", id="nothing-set"),
        pytest.param(T0, None, None, False, "CREATED", id="created"),
        pytest.param(T0, T0, None, False, "RUNNING", id="started"),
        pytest.param(T0, T0, T0, False, "EXITED", id="finished"),
        pytest.param(None, None, T0, False, "EXITED", id="finished-wins-alone"),
        pytest.param(None, T0, None, False, "RUNNING", id="started-without-created"),
        pytest.param(T0, T0, T0, True, "UNKNOWN", id="unknown-flag-wins"),
    ],
)
def test_state_is_derived_as_cri_does(
    created: datetime | None, started: datetime | None, finished: datetime | None, unknown: bool, state: str
) -> None:
    assert derive_state(created, started, finished, unknown) == state
    if not unknown:
        assert Status(created_at=created, started_at=started, finished_at=finished).state == state


def test_status_is_frozen_and_state_is_not_an_argument() -> None:
    s = Status(created_at=T0)
    with pytest.raises(AttributeError):
        s.pid = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        Status(state="RUNNING")  # type: ignore[call-arg]
    assert replace(s, started_at=T0).state == "RUNNING"


# -- transitions -----------------------------------------------------------------------------------

TRANSITIONS = [
    pytest.param([start()], dict(state="RUNNING", pid=4242, started_at=at(2), runs=1), id="created-start"),
    pytest.param([start(), exit_(0)], dict(state="EXITED", pid=0, exit_code=0, reason="Completed",
                                           finished_at=at(3), runs=1), id="exit-0-is-Completed"),
    pytest.param([start(), exit_(1)], dict(state="EXITED", exit_code=1, reason="Error"), id="exit-1-is-Error"),
    pytest.param([start(), exit_(-1)], dict(state="EXITED", exit_code=-1, reason="Error"), id="exit-negative-is-Error"),
    pytest.param([start(), exit_(137, reason="OOMKilled", message="out of memory")],
                 dict(state="EXITED", exit_code=137, reason="OOMKilled", message="out of memory"), id="reason-kept"),
    pytest.param([start(), exit_(0, reason="Killed")], dict(reason="Killed"), id="reason-kept-for-0"),
    pytest.param([start(), exit_(2), start(7)],
                 dict(state="RUNNING", pid=7, started_at=at(4), finished_at=None, exit_code=0, reason="", runs=2),
                 id="start-after-exit-is-a-new-run"),
    pytest.param([start(), pause()], dict(state="RUNNING", paused=True, pid=4242), id="pause"),
    pytest.param([start(), pause(), resume()], dict(state="RUNNING", paused=False), id="pause-resume"),
    pytest.param([start(), pause(), exit_(137)], dict(state="EXITED", paused=False, pid=0), id="exit-while-paused"),
    pytest.param([resources(cpu_quota=5000)], dict(state="CREATED", resources=Resources(cpu_quota=5000)),
                 id="resources-while-created"),
    pytest.param([start(), resources(memory_limit_in_bytes=1 << 30, unified={"memory.high": "1G"})],
                 dict(resources=Resources(memory_limit_in_bytes=1 << 30, unified={"memory.high": "1G"})),
                 id="resources-while-running"),
    pytest.param([resources(cpu_quota=1), resources(cpu_shares=2)], dict(resources=Resources(cpu_shares=2)),
                 id="resources-are-replaced"),
    pytest.param([resources(cpu_quota=1), start(), exit_(0), start()], dict(resources=Resources(cpu_quota=1)),
                 id="resources-survive-runs"),
    pytest.param([start(pid=0)], dict(state="RUNNING", pid=0), id="pid-0-is-a-uint32"),
    pytest.param([start(pid=2**32 - 1), exit_(2**31 - 1)], dict(exit_code=2**31 - 1), id="range-ends"),
    pytest.param([start(at="2026-11-21T03:00:01.5Z")], dict(started_at=at(1.5)), id="at-as-iso-text"),
    pytest.param([start(at=at(1))], dict(started_at=at(1)), id="at-equal-to-creation"),
    pytest.param([start(at=at(100)), exit_(0)], dict(started_at=at(100), finished_at=at(100)),
                 id="default-at-never-before-the-last-change"),
    pytest.param([start(), delete(), lambda s: s.create(make("web-1"))],
                 dict(state="CREATED", pid=0, runs=0, started_at=None, created_at=at(4)), id="re-create-is-CREATED"),
]


@pytest.mark.parametrize(("ops", "expected"), TRANSITIONS)
def test_transitions(store: ctrledger.Store, ops: list[Op], expected: dict[str, Any]) -> None:
    store.create(make("web-1"))
    returned = None
    for op in ops:
        returned = op(store)
    got = store.get("web-1")
    assert returned is not None and returned.status == got.status
    for name, value in expected.items():
        assert getattr(got.status, name) == value, name
    assert got.status.created_at == got.created_at
    assert store.list("status.state==" + got.status.state)[0].status == got.status


def test_a_never_started_container_is_created_with_its_creation_time(store: ctrledger.Store) -> None:
    created = store.create(make("web-1"))
    assert created.status == Status(created_at=at(1))
    assert store.get("web-1").status.state == "CREATED"


def test_status_changes_move_the_version_but_not_updated_at(store: ctrledger.Store) -> None:
    created = store.create(make("web-1"))
    c = store.started("web-1", pid=1)
    assert (c.version, c.updated_at) == (2, created.updated_at)
    assert store.get("web-1", as_of=ctrledger.Version(2)).updated_at == created.updated_at
    relabelled = store.update(ctrledger.Container(id="web-1", labels={"a": "b"}), "labels.a")
    assert relabelled.status == c.status  # metadata updates keep the status


def test_audit_metadata_is_recorded(store: ctrledger.Store) -> None:
    store.create(make("web-1"))
    store.started("web-1", pid=1, actor="kubelet", reason="scheduled", correlation_id="op-1")
    store.exited("web-1", exit_code=137, reason="OOMKilled", actor="follower", audit_reason="containerd event")
    records = list(store.audit(id="web-1"))
    assert [(r.kind, r.actor, r.reason) for r in records] == [
        ("Created", "tester", ""), ("Started", "kubelet", "scheduled"), ("Exited", "follower", "containerd event"),
    ]
    assert records[1].correlation_id == "op-1"
    assert [r.kind for r in store.audit(kinds=["Started", "Exited"])] == ["Started", "Exited"]


def test_status_calls_record_the_client_they_are_given(store: ctrledger.Store) -> None:
    store.create(make("web-1"))
    store.started("web-1", pid=1, client="grpc ctr[42] uid=0")
    store.paused("web-1", client="grpc ctr[43] uid=0")
    store.resumed("web-1")
    store.update_resources("web-1", Resources(cpu_shares=512), client="grpc crictl[45] uid=0")
    store.exited("web-1", exit_code=0, client="grpc ctr[44] uid=0")
    default = next(iter(store.audit(id="web-1"))).client
    assert [(r.kind, r.client) for r in store.audit(id="web-1")] == [
        ("Created", default), ("Started", "grpc ctr[42] uid=0"), ("Paused", "grpc ctr[43] uid=0"),
        ("Resumed", default), ("ResourcesUpdated", "grpc crictl[45] uid=0"), ("Exited", "grpc ctr[44] uid=0")]


# -- refusals: the right category and message, and nothing written --------------------------------

# Argument checks refuse before the log is touched: one backend is enough for them.
ARGUMENT_CHECK = pytest.mark.sqlite_only

REFUSALS = [
    pytest.param([], start(), [start()], FailedPrecondition,
                 'failed to start container "web-1": container is in CONTAINER_RUNNING state: failed precondition',
                 id="start-running"),
    pytest.param([start()], pause(), [start()], FailedPrecondition,
                 'failed to start container "web-1": container is in CONTAINER_RUNNING state', id="start-paused"),
    pytest.param([], None, [exit_()], FailedPrecondition,
                 'failed to exit container "web-1": container is in CONTAINER_CREATED state: failed precondition',
                 id="exit-created"),
    pytest.param([start()], exit_(), [exit_()], FailedPrecondition,
                 'failed to exit container "web-1": container is in CONTAINER_EXITED state', id="exit-exited"),
    pytest.param([], None, [pause()], FailedPrecondition,
                 'failed to pause container "web-1": container is in CONTAINER_CREATED state', id="pause-created"),
    pytest.param([start()], exit_(), [pause()], FailedPrecondition,
                 'failed to pause container "web-1": container is in CONTAINER_EXITED state', id="pause-exited"),
    pytest.param([start()], pause(), [pause()], FailedPrecondition,
                 'failed to pause container "web-1": container is already paused', id="pause-paused"),
    pytest.param([], start(), [resume()], FailedPrecondition,
                 'failed to resume container "web-1": container is not paused', id="resume-running"),
    pytest.param([], None, [resume()], FailedPrecondition,
                 'failed to resume container "web-1": container is in CONTAINER_CREATED state', id="resume-created"),
    pytest.param([start()], exit_(), [resources(cpu_quota=1)], FailedPrecondition,
                 'failed to update resources of container "web-1": container is in CONTAINER_EXITED state',
                 id="resources-exited"),
    pytest.param([], delete(), [start(), exit_(), pause(), resume(), resources()], NotFound,
                 'container "web-1": not found', id="deleted"),
    pytest.param([], None, [lambda s: s.started("nope", pid=1), lambda s: s.exited("nope", exit_code=0),
                            lambda s: s.paused("nope"), lambda s: s.resumed("nope"),
                            lambda s: s.update_resources("nope", Resources())], NotFound,
                 'container "nope": not found', id="missing"),
    pytest.param([], None, [lambda s: s.started("web-1", pid=1, namespace="empty")], NotFound,
                 'cannot start container "web-1" in namespace "empty": not found', id="unknown-namespace"),
    pytest.param([], None, [lambda s: s.started("web-1", pid=1, namespace=None)], FailedPrecondition,
                 "namespace is required: failed precondition", id="no-namespace", marks=ARGUMENT_CHECK),
    pytest.param([], None, [start(pid=-1)], InvalidArgument, "pid -1 is out of range for a uint32", id="pid-negative",
                 marks=ARGUMENT_CHECK),
    pytest.param([], None, [start(pid=2**32)], InvalidArgument, "pid 4294967296 is out of range", id="pid-too-big",
                 marks=ARGUMENT_CHECK),
    pytest.param([], None, [start(pid="42")], InvalidArgument, "pid must be an integer, not str", id="pid-str",
                 marks=ARGUMENT_CHECK),
    pytest.param([], None, [start(pid=True)], InvalidArgument, "pid must be an integer, not bool", id="pid-bool",
                 marks=ARGUMENT_CHECK),
    pytest.param([start()], None, [exit_(2**31)], InvalidArgument, "exit_code 2147483648 is out of range for an int32",
                 id="exit-code-too-big", marks=ARGUMENT_CHECK),
    pytest.param([start()], None, [exit_(-(2**31) - 1)], InvalidArgument, "out of range for an int32",
                 id="exit-code-too-small", marks=ARGUMENT_CHECK),
    pytest.param([start()], None, [exit_(1.0)], InvalidArgument, "exit_code must be an integer, not float",
                 id="exit-code-float", marks=ARGUMENT_CHECK),
    pytest.param([start()], None, [exit_(0, reason=5)], InvalidArgument, "reason must be a string, not int",
                 id="reason-not-str", marks=ARGUMENT_CHECK),
    pytest.param([start()], None, [exit_(0, message=b"x")], InvalidArgument, "message must be a string, not bytes",
                 id="message-not-str", marks=ARGUMENT_CHECK),
    pytest.param([], None, [start(at=at(0.5))], InvalidArgument,
                 'at 2026-11-21T03:00:00.500000Z is earlier than the last status change of "web-1" '
                 "(2026-11-21T03:00:01Z): invalid argument", id="start-before-creation"),
    pytest.param([start(at=at(50))], None, [exit_(0, at=at(49)), pause(at=at(49)), resources(at=at(10))],
                 InvalidArgument, "is earlier than the last status change", id="before-the-previous-status-event"),
    pytest.param([], None, [start(at=datetime(2026, 11, 21, 4))], InvalidArgument, "must be timezone-aware",
                 id="at-naive", marks=ARGUMENT_CHECK),
    pytest.param([], None, [start(at="noon")], InvalidArgument, "at: 'noon' is not an ISO-8601 time", id="at-text",
                 marks=ARGUMENT_CHECK),
    pytest.param([], None, [start(at=Position(1))], InvalidArgument, "at must be a time", id="at-position",
                 marks=ARGUMENT_CHECK),
    pytest.param([], None, [lambda s: s.update_resources("web-1", {"cpu_quota": 1})], InvalidArgument,
                 "expected ctrledger.Resources, not dict", id="resources-not-Resources", marks=ARGUMENT_CHECK),
    pytest.param([], None, [lambda s: s.started("web-1", pid=1, expected_version=5)], ctrledger.Conflict,
                 "is at version 1, not the expected 5", id="stale-expected-version"),
    pytest.param([], None, [lambda s: s.started("web-1", pid=1, actor=3)], InvalidArgument,
                 "actor must be a string, not int", id="actor-not-str", marks=ARGUMENT_CHECK),
]


@pytest.mark.parametrize(("setup", "last", "attempts", "error", "message"), REFUSALS)
def test_refusals_write_nothing(
    store: ctrledger.Store, setup: list[Op], last: Op | None, attempts: list[Op], error: type[Exception], message: str
) -> None:
    store.create(make("web-1"))
    for op in setup + ([last] if last is not None else []):
        op(store)
    position = store.position
    before = store.list() + store.list(namespace="empty")
    for attempt in attempts:
        with pytest.raises(error) as info:
            attempt(store)
        assert message in str(info.value)
    assert store.position == position
    assert store.list() + store.list(namespace="empty") == before


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"cpu_quota": "1"}, "Resources.cpu_quota must be an integer, not str", id="str-int"),
        pytest.param({"cpu_period": 2**63}, "Resources.cpu_period 9223372036854775808 is out of range", id="int64"),
        pytest.param({"cpu_shares": True}, "must be an integer, not bool", id="bool"),
        pytest.param({"oom_score_adj": 1001}, "Resources.oom_score_adj 1001 is out of range [-1000, 1000]", id="oom"),
        pytest.param({"cpuset_cpus": 3}, "Resources.cpuset_cpus must be a string, not int", id="cpuset"),
        pytest.param({"hugepage_limits": [("2MB",)]}, "is not a (page_size, limit) pair", id="hugepage-shape"),
        pytest.param({"hugepage_limits": [("2MB", -1)]}, "hugepage_limits['2MB'] -1 is out of range", id="uint64"),
        pytest.param({"hugepage_limits": "2MB"}, "must be a sequence of (page_size, limit) pairs", id="hugepage-str"),
        pytest.param({"unified": {"": "x"}}, "is not a non-empty string key with a string value", id="unified-key"),
        pytest.param({"unified": [("a", "b")]}, "Resources.unified must be a mapping, not list", id="unified-list"),
    ],
)
def test_resources_are_validated(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        Resources(**fields)
    assert message in str(info.value) and str(info.value).endswith(": invalid argument")


def test_resources_normalise_and_own_their_values() -> None:
    unified = {"memory.high": "1G"}
    r = Resources(hugepage_limits=[["2MB", 5]], unified=unified)  # type: ignore[list-item]
    unified["x"] = "y"
    assert r.hugepage_limits == (("2MB", 5),) and r.unified == {"memory.high": "1G"}


# -- time travel ----------------------------------------------------------------------------------


def test_as_of_answers_with_the_status_then(store: ctrledger.Store) -> None:
    store.create(make("web-1"))                                  # 03:00:01
    store.started("web-1", pid=4242)                             # 03:00:02
    store.exited("web-1", exit_code=137, reason="OOMKilled")     # 03:00:03
    store.started("web-1", pid=5151)                             # 03:00:04
    assert store.get("web-1", as_of=at(1.5)).status.state == "CREATED"
    assert store.get("web-1", as_of=at(2.5)).status.pid == 4242
    then = store.get("web-1", as_of="2026-11-21T03:00:03.5Z").status
    assert (then.state, then.exit_code, then.reason, then.pid) == ("EXITED", 137, "OOMKilled", 0)
    assert store.get("web-1", as_of=Position(4)).status.runs == 2
    assert [c.id for c in store.list("status.reason==OOMKilled", as_of=at(3.5))] == ["web-1"]
    assert store.list("status.reason==OOMKilled") == []
    assert [c.status.state for c in store.scan(as_of=at(2.5))] == ["RUNNING"]


def test_history_diff_and_changes_see_status_events(store: ctrledger.Store) -> None:
    store.create(make("web-1"))
    store.started("web-1", pid=4242)
    store.paused("web-1")
    store.resumed("web-1")
    store.update_resources("web-1", Resources(cpu_quota=5000))
    store.exited("web-1", exit_code=137, reason="OOMKilled")
    entries = list(store.history("web-1"))
    assert [e.kind for e in entries] == ["Created", "Started", "Paused", "Resumed", "ResourcesUpdated", "Exited"]
    changes = {e.kind: {c.field: (c.old, c.new) for c in e.changes} for e in entries}
    assert not any(f.startswith("status.") for f in changes["Created"])
    assert changes["Started"] == {
        "status.state": ("CREATED", "RUNNING"), "status.pid": (None, 4242), "status.started_at": (None, at(2)),
        "status.runs": (0, 1),
    }
    assert changes["Paused"] == {"status.paused": (False, True)}
    assert changes["Resumed"] == {"status.paused": (True, False)}
    assert changes["ResourcesUpdated"] == {"status.resources.cpu_quota": (None, 5000)}
    assert changes["Exited"] == {
        "status.state": ("RUNNING", "EXITED"), "status.pid": (4242, None), "status.finished_at": (None, at(6)),
        "status.exit_code": (None, 137), "status.reason": (None, "OOMKilled"),
    }
    d = store.diff("web-1", since=Position(2))
    assert d.status == "changed"
    assert {c.field: (c.old, c.new) for c in d.changes} == {
        "status.state": ("RUNNING", "EXITED"), "status.pid": (4242, None), "status.finished_at": (None, at(6)),
        "status.exit_code": (None, 137), "status.reason": (None, "OOMKilled"),
        "status.resources.cpu_quota": (None, 5000),
    }
    assert d.to_dict()["after"]["status"]["reason"] == "OOMKilled"
    [change] = store.changes(since=Position(5), filters=["status.state==EXITED"])
    assert [c.field for c in change.changes][:2] == ["status.state", "status.pid"]
    assert list(store.changes(since=Position(5), filters=["status.state==CREATED"])) == []


# -- filters --------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ctrledger.Store]:
    """One store per backend for the whole filter table (read only):
    created-1 (never started), run-1 (pid 42), paused-1 (pid 43, paused), done-0 (exit 0),
    oom-137 (exit 137, OOMKilled), err-1 (exit 1), again-2 (exit 3, then started again, pid 44)."""
    tmp = tmp_path_factory.mktemp("fleet")
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            target = str(tmp / "ledger.db")
        else:
            target = postgres_url(stack.enter_context(postgres_schema()), tmp / "node.db")
        store = stack.enter_context(ctrledger.open(target, clock=StepClock(), follow=False))
        fill_fleet(store)
        yield store


def fill_fleet(store: ctrledger.Store) -> None:
    for cid in ("created-1", "run-1", "paused-1", "done-0", "oom-137", "err-1", "again-2"):
        store.create(make(cid))
    store.started("run-1", pid=42)
    store.started("paused-1", pid=43)
    store.paused("paused-1")
    for cid, code, reason in (("done-0", 0, None), ("oom-137", 137, "OOMKilled"), ("err-1", 1, None),
                              ("again-2", 3, None)):
        store.started(cid, pid=7)
        store.exited(cid, exit_code=code, reason=reason)
    store.started("again-2", pid=44)


@pytest.mark.parametrize(
    ("filters", "ids"),
    [
        pytest.param(["status.state==RUNNING"], ["again-2", "paused-1", "run-1"], id="running"),
        pytest.param(["status.state==CREATED"], ["created-1"], id="created"),
        pytest.param(["status.state==EXITED"], ["done-0", "err-1", "oom-137"], id="exited"),
        pytest.param(["status.state!=EXITED,status.paused==false"], ["again-2", "created-1", "run-1"], id="and"),
        pytest.param(["status.reason==OOMKilled", "status.reason==Completed"], ["done-0", "oom-137"], id="or"),
        pytest.param(["status.reason"], ["done-0", "err-1", "oom-137"], id="reason-present"),
        pytest.param(["status.reason==Error"], ["err-1"], id="reason-default-Error"),
        pytest.param(["status.exit_code==0"], ["done-0"], id="exit-code-0"),
        pytest.param(["status.exit_code!=0"], ["again-2", "created-1", "err-1", "oom-137", "paused-1", "run-1"],
                     id="exit-code-not-0-absent-counts"),
        pytest.param(["status.exit_code"], ["done-0", "err-1", "oom-137"], id="exit-code-present"),
        pytest.param(["status.exit_code~=^1"], ["err-1", "oom-137"], id="exit-code-regex"),
        pytest.param(["status.exit_code==0137"], [], id="exit-code-not-canonical"),
        pytest.param(["status.pid==42"], ["run-1"], id="pid"),
        pytest.param(["status.pid"], ["again-2", "paused-1", "run-1"], id="pid-present"),
        pytest.param(["status.pid~=^4[34]$"], ["again-2", "paused-1"], id="pid-regex"),
        pytest.param(["status.paused==true"], ["paused-1"], id="paused"),
        pytest.param(["status.paused!=true,status.state==RUNNING"], ["again-2", "run-1"], id="not-paused"),
        pytest.param(["status.paused==yes"], [], id="paused-bad-value"),
        pytest.param(["status.foo==x"], [], id="unknown-field-equals"),
        pytest.param(["status.foo"], [], id="unknown-field-present"),
        pytest.param(["status.runs==1"], [], id="runs-is-not-a-filter-field"),
        pytest.param(["status==RUNNING"], [], id="status-alone"),
        pytest.param(['status."state"==RUNNING'], ["again-2", "paused-1", "run-1"], id="quoted-segment"),
    ],
)
def test_status_filters(fleet: ctrledger.Store, filters: list[str], ids: list[str]) -> None:
    assert [c.id for c in fleet.list(*filters)] == ids
    assert [c.id for c in fleet.scan(*filters)] == ids
    assert [c.id for c in fleet.list(*filters, as_of=fleet.now())] == ids


def test_the_state_filter_is_an_index_search(store: ctrledger.Store) -> None:
    from ctrledger.domain.filters import parse_filters
    from ctrledger.projections.current import CurrentStateReader

    fill_fleet(store)
    with store.read_model.synced() as conn:
        sql, params = CurrentStateReader.list_query("default", parse_filters(["status.state==RUNNING"]))
        plan = " ".join(str(r[-1]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
    assert "USING INDEX" in plan and "status_state" in plan and "TEMP B-TREE" not in plan, plan


@pytest.mark.parametrize(
    ("index", "condition"),
    [
        pytest.param("idx_containers_status_pid", "status_pid IS NOT NULL", id="pid"),
        pytest.param("idx_containers_status_exit_code", "status_exit_code IS NOT NULL", id="exit-code"),
        pytest.param("idx_containers_status_reason", "status_reason <> ''", id="reason"),
    ],
)
def test_pid_exit_code_and_reason_are_indexed_only_where_a_container_has_one(
    store: ctrledger.Store, index: str, condition: str
) -> None:
    """Schema 4: a container that never ran adds no entry to these indexes (fewer pages per
    create and delete). Without statistics SQLite answers a filter on them by the
    (namespace, id) index, which also gives the order, as it did with schema 3's full ones."""
    fill_fleet(store)
    with store.read_model.synced() as conn:
        entries = conn.execute(f"SELECT COUNT(*) FROM containers INDEXED BY {index} WHERE {condition}").fetchone()[0]
        having = conn.execute(f"SELECT COUNT(*) FROM containers NOT INDEXED WHERE {condition}").fetchone()[0]
        total = conn.execute("SELECT COUNT(*) FROM containers").fetchone()[0]
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name=?", (index,)).fetchone()[0]
    assert sql.endswith(f"WHERE {condition}")
    assert entries == having < total  # created-1 never ran: it is not in the index


@pytest.mark.sqlite_only
def test_a_schema_3_read_model_gets_the_partial_indexes(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with ctrledger.open(path, clock=StepClock()) as store:
        fill_fleet(store)
        want = {s: store.list(s) for s in ("status.pid==42", "status.reason==OOMKilled", "status.exit_code==137")}
    conn = sqlite3.connect(path, isolation_level=None)  # what ctrledger with schema 3 wrote
    for column in ("status_reason", "status_exit_code", "status_pid"):
        conn.execute(f"DROP INDEX idx_containers_{column}")
        conn.execute(f"CREATE INDEX idx_containers_namespace_{column} ON containers(namespace, {column})")
    conn.execute("UPDATE ctrledger_meta SET value='3' WHERE key='read_model_schema'")
    conn.close()
    assert ctrledger.migrate(path)["read_model_schema"] == SCHEMA_VERSION
    conn = sqlite3.connect(path)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    conn.close()
    assert {"idx_containers_status_pid", "idx_containers_status_exit_code", "idx_containers_status_reason"} <= names
    assert not {n for n in names if n.startswith("idx_containers_namespace_status_") and not n.endswith("state_id")}
    with ctrledger.open(path) as store:
        assert {s: store.list(s) for s in want} == want
        assert store.verify_projections().ok


# -- the log: export, import, rebuild, older logs ----------------------------------------------------


def busy_status_history(store: ctrledger.Store) -> None:
    store.create(make("web-1"))
    store.create(make("db-1"), namespace="other")
    store.started("web-1", pid=4242)
    store.update_resources("web-1", Resources(cpu_quota=5000, hugepage_limits=[("2MB", 1024)], unified={"a": "b"}))
    store.paused("web-1")
    store.exited("web-1", exit_code=137, reason="OOMKilled", message="killed")
    store.started("web-1", pid=5151, at=store.now() + timedelta(seconds=10))
    store.started("db-1", pid=1, namespace="other")


def test_export_import_rebuild_round_trip_with_status_events(target: str, tmp_path: Path) -> None:
    with ctrledger.open(target, clock=StepClock(), follow=False) as source:
        busy_status_history(source)
        archive = source.export(tmp_path / "a.ctrlarchive")
        assert archive.events == 8
        want = (source.list(), source.list(namespace="other"), source.get("web-1", as_of=Position(6)))
        history = [(e.kind, e.changes) for e in source.history("web-1")]
        digest = source.digest()
        assert source.verify_projections().ok
        assert ctrledger.verify(source).ok
        source.rebuild()
        assert source.digest() == digest
        assert (source.list(), source.list(namespace="other"), source.get("web-1", as_of=Position(6))) == want
    with ctrledger.open(tmp_path / "copy.db") as copy:
        ctrledger.import_(tmp_path / "a.ctrlarchive", copy)
        assert (copy.list(), copy.list(namespace="other"), copy.get("web-1", as_of=Position(6))) == want
        assert [(e.kind, e.changes) for e in copy.history("web-1")] == history
        assert copy.get("web-1").status.runs == 2
        assert ctrledger.verify(copy).ok


def test_a_v1_log_loads_unchanged_and_its_containers_are_created(tmp_path: Path) -> None:
    golden = Path(__file__).parent / "golden" / "replay-v1-created.ctrlarchive"
    with ctrledger.open(tmp_path / "old.db") as store:
        ctrledger.import_(golden, store)
        namespaces = ["ns0", "ns1", "ns2"]
        listed = [c for ns in namespaces for c in store.list(namespace=ns)]
        assert listed and {c.status.state for c in listed} == {"CREATED"}
        assert all(c.status == Status(created_at=c.created_at) for c in listed)
        assert store.list("status.state==RUNNING", namespace="ns0") == []


@pytest.mark.sqlite_only
def test_a_schema_2_read_model_is_migrated_and_equals_a_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with ctrledger.open(path, clock=StepClock()) as store:
        store.create(make("web-1", labels={"a": "1"}))
        store.create(make("web-2"))
        store.update(ctrledger.Container(id="web-1", labels={"a": "2"}), "labels.a")
        store.delete("web-2")
    # Turn the read model into what ctrledger with schema 2 wrote: no status columns, no packed
    # record (schema 6), version 2.
    conn = sqlite3.connect(path, isolation_level=None)
    for index in ("idx_containers_namespace_status_state_id", "idx_containers_status_reason",
                  "idx_containers_status_exit_code", "idx_containers_status_pid"):
        conn.execute(f"DROP INDEX {index}")
    for table in ("containers", "versions"):
        for column in [r[1] for r in conn.execute(f"PRAGMA table_info({table})")
                       if r[1].startswith("status_") or r[1] == "record"]:
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    conn.execute("UPDATE ctrledger_meta SET value='2' WHERE key='read_model_schema'")
    conn.close()
    assert ctrledger.migrate(path)["read_model_schema"] == SCHEMA_VERSION
    with ctrledger.open(path) as store:
        assert store.get("web-1").status == Status(created_at=at(1))
        assert store.get("web-1", as_of=Position(1)).status.state == "CREATED"
        result = store.verify_projections()
        assert result.ok, result
        digest = store.digest()
        store.rebuild()
        assert store.digest() == digest
        store.started("web-1", pid=3)
        assert [c.id for c in store.list("status.state==RUNNING")] == ["web-1"]


def test_status_writes_are_idempotent_by_request_id(store: ctrledger.Store) -> None:
    """A retry with the same request id is the same command: its first result, never a second event."""
    store.create(make("web-1"))
    first = store.started("web-1", pid=4242, request_id="s1")
    again = store.started("web-1", pid=4242, request_id="s1")  # not FailedPrecondition: already running
    assert (again.version, again.status.pid) == (first.version, 4242)
    assert store.paused("web-1", request_id="p1").version == store.paused("web-1", request_id="p1").version
    assert store.resumed("web-1", request_id="r1").version == store.resumed("web-1", request_id="r1").version
    done = store.exited("web-1", exit_code=3, request_id="e1")
    assert store.exited("web-1", exit_code=3, request_id="e1").version == done.version
    kinds = [e.kind for e in store.history("web-1")]
    assert kinds == ["Created", "Started", "Paused", "Resumed", "Exited"]
    with pytest.raises(ctrledger.InvalidArgument, match="request_id"):
        store.started("web-1", pid=1, request_id="")


def test_a_records_resources_cannot_be_changed_under_it(tmp_path: Path) -> None:
    """Records share their resources (every never-started container its empty ones): the
    mapping is read-only, so changing one record's cannot reach another's; copies and pickles
    keep the values."""
    import copy
    import pickle

    r = ctrledger.Resources(cpu_shares=2, unified={"memory.high": "1G"})
    with pytest.raises(TypeError):
        r.unified["memory.max"] = "2G"  # type: ignore[index]
    assert copy.deepcopy(r) is r and copy.copy(r) is r
    back = pickle.loads(pickle.dumps(r))
    assert back == r and back.unified == {"memory.high": "1G"} and back.cpu_shares == 2
    with ctrledger.open(tmp_path / "l.db") as store:
        for cid in ("a", "b"):
            store.create(ctrledger.Container(id=cid, runtime=ctrledger.Runtime("io.containerd.runc.v2"),
                                             spec=ctrledger.Payload("t", b"{}")))
        a, b = store.get("a"), store.get("b")
        with pytest.raises(TypeError):
            a.status.resources.unified["x"] = "y"  # type: ignore[index]
        assert b.status.resources.unified == {} and store.get("a").status.resources == ctrledger.Resources()


def test_a_created_status_is_the_dataclass_built_the_long_way() -> None:
    """``created_status`` (a create's status, and a never-started record's read back) skips the
    frozen dataclass's ``__init__``: the same fields, values, field order and behaviour."""
    from dataclasses import fields, replace
    from datetime import UTC, datetime

    from ctrledger.domain.model import Status, created_status

    at = datetime(2026, 12, 2, 3, 4, 5, 678_901, tzinfo=UTC)
    fast, slow = created_status(at), Status(created_at=at)
    assert type(fast) is Status and fast == slow and repr(fast) == repr(slow) and fast.state == "CREATED"
    assert list(vars(fast)) == [f.name for f in fields(Status)] and vars(fast) == vars(slow)
    assert fast.to_dict() == slow.to_dict()
    assert replace(fast, pid=3).pid == 3 and fast.pid == 0
    assert created_status(at) is not created_status(at)
