"""The status commands (start, exit, pause, resume, update-resources) and the STATUS column.

The harness of ``tests/test_cli.py``: the n-th command of a test runs at 03:00:00Z + n seconds.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import ctrledger
from ctrledger.cli.output import render_status

from .test_cli import Cli, clock_harness, failed, ok, usage_error

T0 = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    harness = clock_harness(tmp_path, monkeypatch)
    monkeypatch.setattr(ctrledger.cli.points, "now", harness.clock)  # relative --at counts back from it
    ok(harness("create", "web-1", "--image", "nginx:1", "-q"))  # command 1
    return harness


def status_cells(out: str) -> list[str]:
    """The STATUS cell of each row of a table."""
    header, *rows = out.splitlines()
    at = header.index("STATUS")
    return [row[at:] for row in rows]


def test_the_lifecycle_in_the_status_column(cli: Cli) -> None:
    assert status_cells(ok(cli("ls"))) == ["Created 1s ago"]                              # 2
    assert status_cells(ok(cli("start", "web-1", "--pid", "4242"))) == ["Running 0s"]     # 3
    assert status_cells(ok(cli("ls"))) == ["Running 1s"]                                  # 4
    assert status_cells(ok(cli("pause", "web-1"))) == ["Paused"]                          # 5
    assert status_cells(ok(cli("resume", "web-1"))) == ["Running 3s"]                     # 6
    out = ok(cli("exit", "web-1", "--code", "137", "--reason", "OOMKilled", "--message", "limit"))  # 7
    assert status_cells(out) == ["Exited (137) OOMKilled 0s ago"]
    assert status_cells(ok(cli("ls"))) == ["Exited (137) OOMKilled 1s ago"]               # 8
    ok(cli("start", "web-1", "--pid", "5151", "-q"))                                      # 9
    assert status_cells(ok(cli("exit", "web-1", "--code", "0"))) == ["Exited (0) Completed 0s ago"]  # 10
    kinds = [e["kind"] for e in json.loads(ok(cli("history", "web-1", "--json")))]
    assert kinds == ["Created", "Started", "Paused", "Resumed", "Exited", "Started", "Exited"]


def test_the_json_holds_the_status_and_at_sets_the_time(cli: Cli) -> None:
    form = json.loads(ok(cli("start", "web-1", "--pid", "7", "--at", "2026-11-21T03:00:01.5Z", "--json")))
    assert form["status"]["state"] == "RUNNING" and form["status"]["pid"] == 7
    assert form["status"]["started_at"] == "2026-11-21T03:00:01.500000Z"
    assert form["version"] == 2 and form["updated_at"] == "2026-11-21T03:00:01Z"
    form = json.loads(ok(cli("exit", "web-1", "--code", "1", "--at", "1s", "--json")))
    assert (form["status"]["reason"], form["status"]["finished_at"]) == ("Error", "2026-11-21T03:00:02Z")


def test_ls_filters_on_the_status(cli: Cli) -> None:
    ok(cli("create", "web-2", "-q"))
    ok(cli("create", "web-3", "-q"))
    ok(cli("start", "web-1", "--pid", "1", "-q"))
    ok(cli("start", "web-2", "--pid", "2", "-q"))
    ok(cli("exit", "web-2", "--code", "137", "--reason", "OOMKilled", "-q"))
    assert ok(cli("ls", "status.state==RUNNING", "-q")) == "web-1\n"
    assert ok(cli("ls", "status.state==EXITED,status.reason==OOMKilled", "-q")) == "web-2\n"
    assert ok(cli("ls", "status.state==CREATED", "status.pid==1", "-q")) == "web-1\nweb-3\n"
    # as of an earlier time: the status then, and the durations count to that time
    then = ok(cli("ls", "--as-of", "2026-11-21T03:00:06Z"))
    assert status_cells(then) == ["Running 2s", "Exited (137) OOMKilled 0s ago", "Created 3s ago"]


def test_update_resources(cli: Cli) -> None:
    form = json.loads(ok(cli(
        "update-resources", "web-1", "--memory-limit", "536870912", "--cpu-quota", "50000",
        "--hugepage-limit", "2MB=1024", "--unified", "memory.high=1G", "--json",
    )))
    assert form["status"]["resources"] | {} == {
        "cpu_period": 0, "cpu_quota": 50000, "cpu_shares": 0, "memory_limit_in_bytes": 536870912,
        "oom_score_adj": 0, "cpuset_cpus": "", "cpuset_mems": "", "hugepage_limits": [["2MB", 1024]],
        "unified": {"memory.high": "1G"}, "memory_swap_limit_in_bytes": 0,
    }
    history = ok(cli("history", "web-1"))
    assert "+status.resources.hugepage_limits=[[\"2MB\",1024]]" in history
    assert "+status.resources.unified={\"memory.high\":\"1G\"}" in history


def test_the_audit_options(cli: Cli) -> None:
    ok(cli("start", "web-1", "--pid", "1", "--actor", "kubelet", "--reason", "scheduled", "-q"))
    ok(cli("exit", "web-1", "--code", "2", "--reason", "Error", "--actor", "follower", "--audit-reason", "event",
           "-q"))
    records = json.loads(ok(cli("audit", "--kind", "Started", "--kind", "Exited", "--json")))
    assert [(r["kind"], r["actor"], r["reason"], r["client"]) for r in records] == [
        ("Started", "kubelet", "scheduled", "cli"), ("Exited", "follower", "event", "cli"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["exit", "web-1", "--code", "0"],
                     'failed to exit container "web-1": container is in CONTAINER_CREATED state: failed precondition',
                     id="exit-created"),
        pytest.param(["pause", "web-1"],
                     'failed to pause container "web-1": container is in CONTAINER_CREATED state: failed precondition',
                     id="pause-created"),
        pytest.param(["resume", "web-1"],
                     'failed to resume container "web-1": container is in CONTAINER_CREATED state: failed precondition',
                     id="resume-created"),
        pytest.param(["start", "nope", "--pid", "1"], 'container "nope": not found', id="missing"),
        pytest.param(["start", "web-1", "--pid", "-1"], "pid -1 is out of range for a uint32: invalid argument",
                     id="bad-pid"),
        pytest.param(["start", "web-1", "--pid", "1", "--at", "2026-11-21T03:00:00Z"],
                     'at 2026-11-21T03:00:00Z is earlier than the last status change of "web-1" '
                     "(2026-11-21T03:00:01Z): invalid argument", id="at-before-creation"),
        pytest.param(["update-resources", "web-1", "--oom-score-adj", "2000"],
                     "Resources.oom_score_adj 2000 is out of range [-1000, 1000]: invalid argument", id="bad-resource"),
    ],
)
def test_refusals(cli: Cli, args: list[str], message: str) -> None:
    before = cli.containers()
    failed(cli(*args), message)
    assert cli.containers() == before


def test_start_on_a_running_container_is_refused(cli: Cli) -> None:
    ok(cli("start", "web-1", "--pid", "1", "-q"))
    before = cli.containers()
    failed(cli("start", "web-1", "--pid", "2"),
           'failed to start container "web-1": container is in CONTAINER_RUNNING state: failed precondition')
    assert cli.containers() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["start", "web-1"], "Missing option '--pid'", id="no-pid"),
        pytest.param(["start", "web-1", "--pid", "x"], "Invalid value for '--pid'", id="pid-not-int"),
        pytest.param(["exit", "web-1"], "Missing option '--code'", id="no-code"),
        pytest.param(["start", "web-1", "--pid", "1", "--at", "@3"], "Invalid value for '--at': '@3' is not a time.",
                     id="at-position"),
        pytest.param(["start", "web-1", "--pid", "1", "--at", "noon"],
                     "Invalid value for '--at': 'noon' is not an ISO-8601 time.", id="at-not-a-time"),
        pytest.param(["update-resources", "web-1", "--hugepage-limit", "2MB"],
                     "Invalid value for '--hugepage-limit': '2MB' is not PAGESIZE=LIMIT.", id="hugepage"),
        pytest.param(["update-resources", "web-1", "--unified", "x"],
                     "Invalid value for '--unified': 'x' is not KEY=VALUE.", id="unified"),
    ],
)
def test_usage_errors(cli: Cli, args: list[str], message: str) -> None:
    usage_error(cli(*args), message)


@pytest.mark.parametrize(
    ("status", "text"),
    [
        pytest.param(ctrledger.Status(created_at=T0), "Created 59s ago", id="created-seconds"),
        pytest.param(ctrledger.Status(created_at=T0 - timedelta(minutes=4, seconds=59)), "Created 5m ago",
                     id="created-minutes"),
        pytest.param(ctrledger.Status(created_at=T0, started_at=T0 - timedelta(minutes=3, seconds=1)), "Running 4m",
                     id="running"),
        pytest.param(ctrledger.Status(created_at=T0, started_at=T0, paused=True), "Paused", id="paused"),
        pytest.param(ctrledger.Status(created_at=T0, started_at=T0, finished_at=T0 - timedelta(hours=2),
                                      exit_code=137, reason="OOMKilled"), "Exited (137) OOMKilled 2h ago", id="exited"),
        pytest.param(ctrledger.Status(created_at=T0, started_at=T0, finished_at=T0 - timedelta(days=3)),
                     "Exited (0) 3d ago", id="exited-without-reason"),
        pytest.param(ctrledger.Status(created_at=T0 + timedelta(hours=1)), "Created 0s ago", id="future"),
        pytest.param(ctrledger.Status(), "Unknown", id="unknown"),
    ],
)
def test_render_status(status: ctrledger.Status, text: str) -> None:
    assert render_status(status, T0 + timedelta(seconds=59)) == text
