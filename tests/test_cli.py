"""The ``ctrledger`` command line: every command's output and exit status, good input and bad.

Commands run through click's CliRunner against a fresh SQLite file, with the store's clock
fixed during each command (the n-th command of a test runs at 2026-11-21T03:00:00Z plus n
seconds), so tables and JSON are compared whole. A spy on ``ctrledger.open`` records what
the CLI asks of the public API. Errors: exit 1 with exactly one ``Error: …`` line on
stderr, the store unchanged; usage errors: exit 2 with click's usage text.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import ctrledger
from ctrledger import Container, FieldChange, NotFound, Payload, Runtime
from ctrledger.cli import main
from ctrledger.cli.output import container_to_dict, iso_time, render_table

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)
SPEC_TYPE = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
NGINX = "docker.io/library/nginx:1.27"
REDIS = "docker.io/library/redis:7"
HEADER = ("ID     IMAGE                         RUNTIME                LABELS             VERSION  UPDATED"
          "               STATUS")
WRITES = {"create", "label", "update", "rm"}
LOG_COMMANDS = {"checkpoint", "verify", "prove", "migrate"}  # on the log as a whole: --json and --nl only
REPLAY_REPORTS = {"export", "import", "verify-projections"}  # a one-line summary, or --json and --nl
SERVERS = {"serve", "follow"}  # long-running: they log, and print no records
NAMESPACE_FILTERS = {"follow"}  # -n picks namespaces to follow (repeatable), with no CTRLEDGER_NAMESPACE default
STORE_WIDE = {"rebuild", "digest", "replay-to", "namespaces", "serve"} | LOG_COMMANDS | REPLAY_REPORTS  # no -n
NO_OUTPUT_FORMAT = {"rm", "rebuild", "digest", "replay-to", "ui", "timeline"} | SERVERS  # IDs, a line, a server, a file
NOT_PER_CONTAINER = {"history", "diff", "audit", "namespaces"}  # records are events, a diff or names: no -q


class FixedClock:
    """The store's clock: fixed during a command; the harness moves it between commands."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Cli:
    """Runs ``ctrledger`` commands on one store and records the calls it makes.

    The CLI is given a store factory (``main(obj=factory)``): :meth:`open`, which opens the
    real store with the harness's clock and records what the CLI asked for.
    """

    db: Path
    clock: FixedClock
    opens: list[dict[str, Any]] = field(default_factory=list)
    writes: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    spy_writes: bool = False

    def open(self, target: Any, **options: Any) -> ctrledger.Store:
        """The store factory given to the CLI."""
        self.opens.append({"target": os.fspath(target), **options})
        store = ctrledger.open(target, clock=self.clock, **options)
        if self.spy_writes:
            for name in ("create", "update", "delete"):
                real = getattr(store, name)

                def record(*args: Any, _name: str = name, _real: Any = real, **kwargs: Any) -> Any:
                    self.writes.append((_name, args, kwargs))
                    return _real(*args, **kwargs)

                setattr(store, name, record)
        return store

    def __call__(
        self, *args: str, input: str | bytes | None = None, env: dict[str, str | None] | None = None,  # noqa: A002
        factory: Any = None,
    ) -> Result:
        self.clock.now += timedelta(seconds=1)
        environ: dict[str, str | None] = {"CTRLEDGER_DATABASE_URL": str(self.db), "CTRLEDGER_NAMESPACE": None}
        environ.update(env or {})
        return CliRunner().invoke(
            main, list(args), input=input, env=environ, prog_name="ctrledger", obj=factory or self.open
        )

    def at(self, seconds: int) -> str:
        """The time the ``seconds``-th command of the test ran at, as the table shows it."""
        return iso_time(START + timedelta(seconds=seconds), "seconds") or ""

    def new_store(self) -> None:
        """Create the (empty) store: read commands never do."""
        ctrledger.open(self.db).close()

    def containers(self, namespace: str = "default") -> list[Container]:
        """The store's state, read through the library."""
        with ctrledger.open(self.db) as store:
            return store.list(namespace=namespace)


def clock_harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """A CLI harness whose stores use its fixed clock, run from ``tmp_path`` (for the other CLI test files)."""
    monkeypatch.chdir(tmp_path)
    return Cli(tmp_path / "ledger.db", FixedClock())


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    monkeypatch.chdir(tmp_path)
    yield Cli(tmp_path / "ledger.db", FixedClock(), spy_writes=True)


def ok(result: Result) -> str:
    """The stdout of a command that must have succeeded without a word on stderr."""
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result.stdout


def failed(result: Result, message: str) -> None:
    """The command failed with exit 1 and exactly the line ``Error: message`` on stderr."""
    assert result.exit_code == 1, result.output
    assert result.stderr == f"Error: {message}\n"
    assert result.stdout == ""


def usage_error(result: Result, message: str) -> None:
    """The command was refused by click: exit 2, usage, and a last line starting ``Error: message``.

    (A prefix, because click words its did-you-mean suggestions differently across versions.)
    """
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Usage: ctrledger")
    assert result.stderr.splitlines()[-1].startswith(f"Error: {message}")
    assert result.stdout == ""


def seed(cli: Cli) -> None:
    """Three containers: web-1 (prod web), web-2 (staging web), cache-1 (no labels)."""
    ok(cli("create", "web-1", "--image", NGINX, "--label", "env=prod", "--label", "tier=web"))
    ok(cli("create", "web-2", "--image", NGINX, "--label", "env=staging", "--label", "tier=web"))
    ok(cli("create", "cache-1", "--image", REDIS))


def expected_json(
    id: str = "web-1",  # noqa: A002
    *,
    labels: dict[str, str] | None = None,
    image: str = NGINX,
    spec: bytes = b"{}",
    created: int = 1,
    updated: int = 1,
    version: int = 1,
    **fields: Any,
) -> dict[str, Any]:
    seconds = "%Y-%m-%dT%H:%M:%SZ"  # the clock is on whole seconds: the library shows no microseconds
    form: dict[str, Any] = {
        "id": id,
        "labels": labels or {},
        "image": image,
        "runtime": {"name": "io.containerd.runc.v2", "options": None},
        "spec": {"type_url": SPEC_TYPE, "value": base64.b64encode(spec).decode()},
        "snapshotter": "",
        "snapshot_key": "",
        "extensions": {},
        "sandbox": "",
        "created_at": (START + timedelta(seconds=created)).strftime(seconds),
        "updated_at": (START + timedelta(seconds=updated)).strftime(seconds),
        "version": version,
        "status": created_status((START + timedelta(seconds=created)).strftime(seconds)),
    }
    form.update(fields)
    return form


def created_status(created_at: str) -> dict[str, Any]:
    """The JSON status of a container that never started."""
    return {
        "state": "CREATED", "pid": 0, "created_at": created_at, "started_at": None, "finished_at": None,
        "exit_code": 0, "reason": "", "message": "", "paused": False,
        "resources": {
            "cpu_period": 0, "cpu_quota": 0, "cpu_shares": 0, "memory_limit_in_bytes": 0, "oom_score_adj": 0,
            "cpuset_cpus": "", "cpuset_mems": "", "hugepage_limits": [], "unified": {},
            "memory_swap_limit_in_bytes": 0,
        },
        "runs": 0,
    }


# -- the command line as a whole ------------------------------------------------


def test_help_lists_every_command(cli: Cli) -> None:
    out = ok(cli("--help"))
    assert out.startswith("Usage: ctrledger [OPTIONS] COMMAND [ARGS]...")
    listed = [line.split()[0] for line in out.split("Commands:\n")[1].splitlines()]
    assert listed == [
        "audit", "changes", "checkpoint", "create", "diff", "digest", "exit", "export", "follow", "get", "history",
        "import", "label", "ls", "migrate", "namespaces", "pause", "prove", "rebuild", "replay-to", "resume", "rm",
        "serve", "start", "timeline", "ui", "update", "update-resources", "verify", "verify-projections",
    ]


def test_no_command_shows_the_usage(cli: Cli) -> None:
    result = cli()
    assert result.exit_code == 2
    assert "Usage: ctrledger [OPTIONS] COMMAND [ARGS]..." in result.output


def test_unknown_command_is_a_usage_error(cli: Cli) -> None:
    result = cli("frobnicate", "web-1")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == "Error: No such command 'frobnicate'."


def test_version(cli: Cli) -> None:
    assert ok(cli("--version")) == "ctrledger, version 0.1.0\n"


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_command_takes_the_shared_options(name: str) -> None:
    options = {opt for p in main.commands[name].params for opt in p.opts}
    assert {"--db", "--debug"} <= options
    assert ({"-n", "--namespace"} <= options) == (name not in STORE_WIDE)
    if name in WRITES:
        assert {"--actor", "--reason"} <= options
    if name in LOG_COMMANDS | REPLAY_REPORTS:
        assert {"--json", "--nl"} <= options
        assert not {"--table", "-q", "--quiet"} & options
    elif name not in NO_OUTPUT_FORMAT:
        assert {"--table", "--json", "--nl"} <= options
        assert ({"-q", "--quiet"} <= options) == (name not in NOT_PER_CONTAINER)


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_command_has_help(cli: Cli, name: str) -> None:
    out = ok(cli(name, "--help"))
    assert ok(cli(name, "-h")) == out
    assert out.startswith(f"Usage: ctrledger {name} [OPTIONS]")
    assert "--db PATH|URL" in out and "CTRLEDGER_DATABASE_URL" in out
    assert ("CTRLEDGER_NAMESPACE" in out) == (name not in STORE_WIDE | NAMESPACE_FILTERS)


def test_python_dash_m_runs_the_cli(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    env = {**os.environ, "CTRLEDGER_DATABASE_URL": str(db)}
    run = [sys.executable, "-m", "ctrledger"]
    created = subprocess.run([*run, "create", "web-1", "-q"], capture_output=True, text=True, env=env, check=False)
    assert (created.returncode, created.stdout, created.stderr) == (0, "web-1\n", "")
    missing = subprocess.run([*run, "get", "nope"], capture_output=True, text=True, env=env, check=False)
    assert missing.returncode == 1
    assert missing.stderr == 'Error: container "nope" in namespace "default": not found\n'
    usage = subprocess.run([*run, "get"], capture_output=True, text=True, env=env, check=False)
    assert usage.returncode == 2
    assert usage.stderr.startswith("Usage: ctrledger get [OPTIONS] ID")


# -- create ---------------------------------------------------------------------


def test_create_prints_the_new_container_as_a_table(cli: Cli) -> None:
    out = ok(cli("create", "web-1", "--image", NGINX, "--label", "tier=web", "--label", "env=prod"))
    assert out == (
        f"{HEADER}\n"
        f"web-1  {NGINX}  io.containerd.runc.v2  env=prod,tier=web  1        {cli.at(1)}  Created 0s ago\n"
    )


def test_create_defaults_runtime_and_spec(cli: Cli) -> None:
    out = ok(cli("create", "web-1", "--json"))
    assert json.loads(out) == expected_json(image="")
    (c,) = cli.containers()
    assert c.runtime == Runtime("io.containerd.runc.v2")
    assert c.spec == Payload(SPEC_TYPE, b"{}")


def test_create_json_keys_in_documented_order(cli: Cli) -> None:
    form = json.loads(ok(cli("create", "web-1", "--json")))
    assert list(form) == [
        "id", "labels", "image", "runtime", "spec", "snapshotter", "snapshot_key",
        "extensions", "sandbox", "created_at", "updated_at", "version", "status",
    ]
    assert list(form["status"]) == [
        "state", "pid", "created_at", "started_at", "finished_at", "exit_code", "reason", "message", "paused",
        "resources", "runs",
    ]


def test_create_with_every_option(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_bytes(b'{"ociVersion": "1.1.0"}')
    out = ok(cli(
        "create", "db-1", "--image", "docker.io/library/postgres:16", "--runtime", "io.containerd.runsc.v1",
        "--label", "env=prod", "--spec-file", str(spec), "--spec-type", "example.com/Spec",
        "--snapshotter", "overlayfs", "--snapshot-key", "db-1-rootfs", "--json",
    ))
    assert json.loads(out) == expected_json(
        "db-1", labels={"env": "prod"}, image="docker.io/library/postgres:16",
        runtime={"name": "io.containerd.runsc.v1", "options": None},
        spec=spec.read_bytes(), snapshotter="overlayfs", snapshot_key="db-1-rootfs",
    ) | {"spec": {"type_url": "example.com/Spec", "value": base64.b64encode(spec.read_bytes()).decode()}}


def test_create_reads_the_spec_from_stdin(cli: Cli) -> None:
    ok(cli("create", "web-1", "--spec-file", "-", "-q", input=b'{"a": 1}'))
    assert cli.containers()[0].spec == Payload(SPEC_TYPE, b'{"a": 1}')


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        pytest.param("-q", "web-1\n", id="quiet"),
        pytest.param("--quiet", "web-1\n", id="quiet-long"),
        pytest.param("--nl", json.dumps(expected_json(image="")) + "\n", id="nl"),
        pytest.param("--json", json.dumps(expected_json(image=""), indent=2) + "\n", id="json"),
    ],
)
def test_create_output_formats(cli: Cli, flag: str, expected: str) -> None:
    assert ok(cli("create", "web-1", flag)) == expected


@pytest.mark.parametrize(
    ("label", "stored"),
    [
        pytest.param("env=prod", {"env": "prod"}, id="plain"),
        pytest.param("url=a=b", {"url": "a=b"}, id="value-with-equals"),
        pytest.param("env=", {}, id="empty-value-not-stored"),
        pytest.param("io.containerd/x=ü", {"io.containerd/x": "ü"}, id="dotted-key-unicode-value"),
    ],
)
def test_create_label_forms(cli: Cli, label: str, stored: dict[str, str]) -> None:
    ok(cli("create", "web-1", "--label", label, "-q"))
    assert cli.containers()[0].labels == stored


def test_create_repeated_label_key_last_wins(cli: Cli) -> None:
    ok(cli("create", "web-1", "--label", "env=dev", "--label", "env=prod", "-q"))
    assert cli.containers()[0].labels == {"env": "prod"}


CREATE_FAILURES = [
    pytest.param(["web-1"], 'container "web-1": already exists', id="already-exists"),
    pytest.param(
        ["bad id"],
        'create container failed validation: container.ID: identifier "bad id" must match '
        "^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument",
        id="invalid-id",
    ),
    pytest.param(
        ["web-9", "--snapshot-key", "k"],
        "create container failed validation: container.Snapshotter must be set if container.SnapshotKey is set: "
        "invalid argument",
        id="snapshot-key-without-snapshotter",
    ),
    pytest.param(
        ["web-9", "--runtime", ""],
        "create container failed validation: container.Runtime.Name must be set: invalid argument",
        id="empty-runtime",
    ),
    pytest.param(
        ["web-9", "--label", "=v"],
        'create container failed validation: containers.Labels: label key must not be empty (value "v"): '
        "invalid argument",
        id="empty-label-key",
    ),
    pytest.param(
        ["web-9", "-n", "bad ns"],
        'namespace validation: identifier "bad ns" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: '
        "invalid argument",
        id="bad-namespace",
    ),
]


@pytest.mark.parametrize(("args", "message"), CREATE_FAILURES)
def test_create_failures_leave_the_store_unchanged(cli: Cli, args: list[str], message: str) -> None:
    ok(cli("create", "web-1", "--image", NGINX))
    before = cli.containers()
    failed(cli("create", *args), message)
    assert cli.containers() == before


CREATE_USAGE_ERRORS = [
    pytest.param([], "Missing argument 'ID'.", id="no-id"),
    pytest.param(["web-1", "--label", "env"], "Invalid value for '--label': 'env' is not KEY=VALUE.", id="label-no-eq"),
    pytest.param(
        ["web-1", "--spec-file", "nope.json"],
        "Invalid value for '--spec-file': 'nope.json': No such file or directory",
        id="missing-spec-file",
    ),
    pytest.param(["web-1", "--imag", "x"], "No such option", id="unknown-option"),
    pytest.param(["web-1", "--json", "--nl"], "Give only one of --table, --json, --nl, -q.", id="two-formats"),
    pytest.param(["web-1", "web-2"], "Got unexpected extra argument (web-2)", id="two-ids"),
]


@pytest.mark.parametrize(("args", "message"), CREATE_USAGE_ERRORS)
def test_create_usage_errors(cli: Cli, args: list[str], message: str) -> None:
    usage_error(cli("create", *args), message)
    assert cli.containers() == []


# -- get ------------------------------------------------------------------------


def test_get_prints_pretty_json(cli: Cli) -> None:
    seed(cli)
    out = ok(cli("get", "web-2"))
    assert out == json.dumps(expected_json("web-2", labels={"env": "staging", "tier": "web"}, created=2, updated=2),
                             indent=2) + "\n"


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        pytest.param("--table", f"{HEADER}\nweb-1  {NGINX}  io.containerd.runc.v2  env=prod,tier=web  1        "
                                "2026-11-21T03:00:01Z  Created 3s ago\n", id="table"),
        pytest.param("--json", json.dumps(expected_json(labels={"env": "prod", "tier": "web"}), indent=2) + "\n",
                     id="json"),
        pytest.param("--nl", json.dumps(expected_json(labels={"env": "prod", "tier": "web"})) + "\n", id="nl"),
        pytest.param("-q", "web-1\n", id="quiet"),
    ],
)
def test_get_output_formats(cli: Cli, flag: str, expected: str) -> None:
    seed(cli)
    assert ok(cli("get", "web-1", flag)) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["missing"], 'container "missing" in namespace "default": not found', id="missing"),
        pytest.param(["web-1", "-n", "other"], 'container "web-1" in namespace "other": not found', id="other-ns"),
        pytest.param(["bad id"], 'container "bad id" in namespace "default": not found', id="malformed-id"),
        pytest.param(
            ["web-1", "-n", "-bad"],
            'namespace validation: identifier "-bad" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: '
            "invalid argument",
            id="bad-namespace",
        ),
    ],
)
def test_get_failures(cli: Cli, args: list[str], message: str) -> None:
    seed(cli)
    failed(cli("get", *args), message)


def test_get_usage_errors(cli: Cli) -> None:
    usage_error(cli("get"), "Missing argument 'ID'.")
    usage_error(cli("get", "a", "b"), "Got unexpected extra argument (b)")


def test_debug_shows_the_exception_instead_of_the_line(cli: Cli) -> None:
    result = cli("get", "missing", "--debug")
    assert result.exit_code == 1
    assert isinstance(result.exception, NotFound)
    assert "Error:" not in result.stderr


def test_errors_never_show_a_traceback(cli: Cli) -> None:
    result = cli("get", "missing")
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


# -- ls -------------------------------------------------------------------------


def test_ls_prints_an_aligned_table_sorted_by_id(cli: Cli) -> None:
    seed(cli)
    assert ok(cli("ls")) == (
        "ID       IMAGE                         RUNTIME                LABELS                VERSION  UPDATED"
        "               STATUS\n"
        f"cache-1  {REDIS}     io.containerd.runc.v2  -                     1        {cli.at(3)}  Created 1s ago\n"
        f"web-1    {NGINX}  io.containerd.runc.v2  env=prod,tier=web     1        {cli.at(1)}  Created 3s ago\n"
        f"web-2    {NGINX}  io.containerd.runc.v2  env=staging,tier=web  1        {cli.at(2)}  Created 2s ago\n"
    )


def test_ls_on_an_empty_store_prints_the_header(cli: Cli) -> None:
    cli.new_store()
    assert ok(cli("ls")) == "ID  IMAGE  RUNTIME  LABELS  VERSION  UPDATED  STATUS\n"
    assert ok(cli("ls", "-q")) == ""
    assert ok(cli("ls", "--nl")) == ""
    assert ok(cli("ls", "--json")) == "[]\n"


@pytest.mark.parametrize(
    ("filters", "ids"),
    [
        pytest.param([], ["cache-1", "web-1", "web-2"], id="no-filter"),
        pytest.param([""], ["cache-1", "web-1", "web-2"], id="empty-filter"),
        pytest.param(["labels.env==prod"], ["web-1"], id="label-equals"),
        pytest.param(["labels.env!=prod"], ["cache-1", "web-2"], id="label-not-equals"),
        pytest.param(["labels.tier==web,labels.env==staging"], ["web-2"], id="and"),
        pytest.param(["labels.env==prod", "image~=redis"], ["cache-1", "web-1"], id="or"),
        pytest.param(["labels.tier"], ["web-1", "web-2"], id="presence"),
        pytest.param(["image~=^docker\\.io/library/nginx"], ["web-1", "web-2"], id="regex"),
        pytest.param(["runtime.name==io.containerd.runc.v2,id==web-2"], ["web-2"], id="runtime-and-id"),
        pytest.param(['labels."env"=="prod"'], ["web-1"], id="quoted"),
        pytest.param(["id==nothing"], [], id="none"),
    ],
)
def test_ls_filters(cli: Cli, filters: list[str], ids: list[str]) -> None:
    seed(cli)
    assert ok(cli("ls", "-q", *filters)).splitlines() == ids


def test_ls_json_is_a_list(cli: Cli) -> None:
    seed(cli)
    listed = json.loads(ok(cli("ls", "--json", "labels.tier==web")))
    assert listed == [
        expected_json("web-1", labels={"env": "prod", "tier": "web"}),
        expected_json("web-2", labels={"env": "staging", "tier": "web"}, created=2, updated=2),
    ]


def test_ls_nl_is_one_object_per_line(cli: Cli) -> None:
    seed(cli)
    lines = ok(cli("ls", "--nl")).splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["cache-1", "web-1", "web-2"]
    assert json.loads(lines[0]) == expected_json("cache-1", image=REDIS, created=3, updated=3)


def test_ls_namespaces_are_separate(cli: Cli) -> None:
    seed(cli)
    ok(cli("create", "web-1", "-n", "team-b", "--image", "httpd"))
    assert ok(cli("ls", "-q", "-n", "team-b")) == "web-1\n"
    assert ok(cli("ls", "-q", env={"CTRLEDGER_NAMESPACE": "team-b"})) == "web-1\n"
    assert ok(cli("ls", "-q", "--namespace", "default")) == "cache-1\nweb-1\nweb-2\n"
    assert ok(cli("ls", "-q", "-n", "nobody")) == ""


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        pytest.param(
            ["labels.env=prod"],
            'filters: parse error: [labels.env >|=|< prod]: unsupported operator "=": invalid argument: '
            "invalid argument",
            id="bad-operator",
        ),
        pytest.param(
            ["labels.env=="],
            "filters: parse error: [labels.env==]: expected value or quoted: invalid argument: invalid argument",
            id="no-value",
        ),
    ],
)
def test_ls_bad_filters(cli: Cli, filters: list[str], message: str) -> None:
    seed(cli)
    failed(cli("ls", *filters), message)


def test_ls_usage_errors(cli: Cli) -> None:
    usage_error(cli("ls", "-q", "--json"), "Give only one of --table, --json, --nl, -q.")
    usage_error(cli("ls", "--all"), "No such option")


# -- label ----------------------------------------------------------------------


def test_label_sets_and_removes_in_one_update(cli: Cli) -> None:
    seed(cli)
    cli.writes.clear()
    out = ok(cli("label", "web-2", "env=prod", "owner=team-a", "tier-"))
    assert out == (
        "ID     IMAGE                         RUNTIME                LABELS                 VERSION  UPDATED"
        "               STATUS\n"
        f"web-2  {NGINX}  io.containerd.runc.v2  env=prod,owner=team-a  2        {cli.at(4)}  Created 2s ago\n"
    )
    ((name, args, kwargs),) = cli.writes
    assert name == "update"
    request, *paths = args
    assert paths == ["labels.env", "labels.owner", "labels.tier"]
    assert request.id == "web-2" and dict(request.labels) == {"env": "prod", "owner": "team-a"}
    assert kwargs["namespace"] == "default"


@pytest.mark.parametrize(
    ("changes", "labels"),
    [
        pytest.param(["env=dev"], {"env": "dev", "tier": "web"}, id="change"),
        pytest.param(["new=1"], {"env": "prod", "new": "1", "tier": "web"}, id="add"),
        pytest.param(["env-"], {"tier": "web"}, id="remove"),
        pytest.param(["env="], {"tier": "web"}, id="empty-value-removes"),
        pytest.param(["absent-"], {"env": "prod", "tier": "web"}, id="remove-absent"),
        pytest.param(["env=dev", "env-"], {"tier": "web"}, id="last-wins"),
        pytest.param(["a-b=c=d"], {"a-b": "c=d", "env": "prod", "tier": "web"}, id="dash-and-equals-in-pair"),
    ],
)
def test_label_changes(cli: Cli, changes: list[str], labels: dict[str, str]) -> None:
    seed(cli)
    form = json.loads(ok(cli("label", "web-1", *changes, "--json")))
    assert form["labels"] == labels
    assert form["version"] == 2


def test_label_failures(cli: Cli) -> None:
    seed(cli)
    failed(cli("label", "nope", "a=b"), 'container "nope": not found')
    failed(
        cli("label", "web-1", "=v"),
        'update failed validation: containers.Labels: label key must not be empty (value "v"): invalid argument',
    )
    failed(cli("label", "web-1", "a=b", "-n", "team-b"), 'cannot update container "web-1" in namespace "team-b": '
                                                         "not found")
    assert [c.version for c in cli.containers()] == [1, 1, 1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["web-1"], "Missing argument 'KEY=VALUE|KEY-...'.", id="no-changes"),
        pytest.param(["web-1", "oops"], "Invalid value for 'KEY=VALUE|KEY-...': 'oops' is neither KEY=VALUE nor KEY-.",
                     id="neither"),
        pytest.param(["web-1", "-"], "Invalid value for 'KEY=VALUE|KEY-...': '-' is neither KEY=VALUE nor KEY-.",
                     id="bare-dash"),
        pytest.param(["web-1", "a=1", "b"], "Invalid value for 'KEY=VALUE|KEY-...': 'b' is neither KEY=VALUE nor KEY-.",
                     id="one-bad-of-two"),
        pytest.param([], "Missing argument 'ID'.", id="nothing"),
    ],
)
def test_label_usage_errors(cli: Cli, args: list[str], message: str) -> None:
    seed(cli)
    usage_error(cli("label", *args), message)
    assert [c.version for c in cli.containers()] == [1, 1, 1]


# -- update ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "paths", "changed"),
    [
        pytest.param(["--image", "nginx:2"], ["image"], {"image": "nginx:2"}, id="image"),
        pytest.param(["--image", ""], ["image"], {"image": ""}, id="clear-image"),
        pytest.param(["--label", "a=1", "--label", "b=2"], ["labels"], {"labels": {"a": "1", "b": "2"}},
                     id="replace-labels"),
        pytest.param(
            ["--label", "a=1", "--image", "x"], ["image", "labels"], {"image": "x", "labels": {"a": "1"}},
            id="image-and-labels",
        ),
    ],
)
def test_update_changes_only_the_given_fields(
    cli: Cli, args: list[str], paths: list[str], changed: dict[str, Any]
) -> None:
    seed(cli)
    cli.writes.clear()
    form = json.loads(ok(cli("update", "web-1", *args, "--json")))
    before = expected_json(labels={"env": "prod", "tier": "web"})
    assert form["version"] > 1  # the store's count of recorded changes, not the CLI's business
    assert form == {**before, **changed, "updated_at": "2026-11-21T03:00:04Z", "version": form["version"]}
    ((name, call_args, _),) = cli.writes
    assert (name, list(call_args[1:])) == ("update", paths)


def test_update_spec_from_a_file(cli: Cli, tmp_path: Path) -> None:
    seed(cli)
    spec = tmp_path / "new.json"
    spec.write_bytes(b'{"ociVersion": "1.2.0"}')
    ok(cli("update", "web-1", "--spec-file", str(spec), "-q"))
    ok(cli("update", "web-2", "--spec-file", "-", "--spec-type", "example.com/T", "-q", input=b"raw"))
    by_id = {c.id: c for c in cli.containers()}
    assert by_id["web-1"].spec == Payload(SPEC_TYPE, b'{"ociVersion": "1.2.0"}')
    assert by_id["web-2"].spec == Payload("example.com/T", b"raw")


def test_update_snapshot_key(cli: Cli) -> None:
    ok(cli("create", "db-1", "--snapshotter", "overlayfs", "--snapshot-key", "k1", "-q"))
    assert json.loads(ok(cli("update", "db-1", "--snapshot-key", "k2", "--nl")))["snapshot_key"] == "k2"
    assert json.loads(ok(cli("update", "db-1", "--snapshot-key", "", "--nl")))["snapshot_key"] == ""
    failed(
        cli("update", "db-2", "--snapshot-key", "k"), 'container "db-2": not found'
    )


def test_update_failures_leave_the_store_unchanged(cli: Cli) -> None:
    seed(cli)
    before = cli.containers()
    failed(
        cli("update", "cache-1", "--snapshot-key", "k"),
        "update failed validation: container.Snapshotter must be set if container.SnapshotKey is set: "
        "invalid argument",
    )
    failed(cli("update", "nope", "--image", "x"), 'container "nope": not found')
    assert cli.containers() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["web-1"], "Nothing to update: give --image, --spec-file, --snapshot-key, --label, --extension or "
                     "--remove-extension.",
                     id="nothing"),
        pytest.param(["web-1", "--spec-type", "x"], "--spec-type needs --spec-file.", id="spec-type-alone"),
        pytest.param(["web-1", "--label", "x"], "Invalid value for '--label': 'x' is not KEY=VALUE.", id="bad-label"),
        pytest.param(["web-1", "--runtime", "x"], "No such option", id="runtime-is-immutable"),
        pytest.param(["web-1", "--spec-file", "nope.json"],
                     "Invalid value for '--spec-file': 'nope.json': No such file or directory", id="missing-file"),
        pytest.param([], "Missing argument 'ID'.", id="no-id"),
    ],
)
def test_update_usage_errors(cli: Cli, args: list[str], message: str) -> None:
    seed(cli)
    usage_error(cli("update", *args), message)
    assert [c.version for c in cli.containers()] == [1, 1, 1]


# -- rm -------------------------------------------------------------------------


def test_rm_deletes_several_and_prints_each_id(cli: Cli) -> None:
    seed(cli)
    assert ok(cli("rm", "web-2", "cache-1")) == "web-2\ncache-1\n"
    assert [c.id for c in cli.containers()] == ["web-1"]


def test_rm_goes_on_past_a_failure_and_exits_1(cli: Cli) -> None:
    seed(cli)
    result = cli("rm", "web-1", "missing", "web-2")
    assert result.exit_code == 1
    assert result.stdout == "web-1\nweb-2\n"
    assert result.stderr == "Error: container missing: not found\n"
    assert [c.id for c in cli.containers()] == ["cache-1"]


def test_rm_in_an_unknown_namespace(cli: Cli) -> None:
    seed(cli)
    failed(cli("rm", "web-1", "-n", "team-b"), 'cannot delete container "web-1" in namespace "team-b": not found')
    assert len(cli.containers()) == 3


def test_rm_with_debug_raises_the_first_failure(cli: Cli) -> None:
    seed(cli)
    result = cli("rm", "missing", "web-1", "--debug")
    assert result.exit_code == 1
    assert isinstance(result.exception, NotFound)
    assert [c.id for c in cli.containers()] == ["cache-1", "web-1", "web-2"]


def test_rm_then_create_again(cli: Cli) -> None:
    seed(cli)
    ok(cli("rm", "web-1"))
    failed(cli("get", "web-1"), 'container "web-1" in namespace "default": not found')
    assert ok(cli("create", "web-1", "--image", REDIS, "-q")) == "web-1\n"
    assert cli.containers()[1].image == REDIS


def test_rm_usage_errors(cli: Cli) -> None:
    usage_error(cli("rm"), "Missing argument 'ID...'.")
    usage_error(cli("rm", "x", "--json"), "No such option")


# -- who, why, where --------------------------------------------------------------


def test_writes_record_actor_and_reason(cli: Cli) -> None:
    ok(cli("create", "web-1", "--actor", "alice", "--reason", "new service", "-q"))
    ok(cli("label", "web-1", "a=1", "--actor", "bob", "--reason", "tagging", "-q"))
    ok(cli("update", "web-1", "--image", "x", "--reason", "patch", "-q"))
    ok(cli("rm", "web-1", "--actor", "carol", "--reason", "retired"))
    assert [(o["client"], o["actor"]) for o in cli.opens] == [("cli", "alice"), ("cli", "bob"), ("cli", None),
                                                              ("cli", "carol")]
    assert [(name, kw["reason"]) for name, _, kw in cli.writes] == [
        ("create", "new service"), ("update", "tagging"), ("update", "patch"), ("delete", "retired"),
    ]


def test_actor_defaults_to_the_os_user_and_reason_to_none(cli: Cli) -> None:
    ok(cli("create", "web-1", "-q"))
    assert cli.opens[0]["actor"] is None  # the store then records the OS user
    assert cli.writes[0][2]["reason"] is None


def test_reads_open_the_store_without_an_actor(cli: Cli) -> None:
    cli.new_store()
    ok(cli("ls"))
    failed(cli("get", "x"), 'container "x" in namespace "default": not found')
    assert [o["actor"] for o in cli.opens] == [None, None]


def test_db_option_overrides_the_environment(cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    ok(cli("create", "web-1", "--db", str(other), "-q"))
    assert cli.containers() == []
    assert ok(cli("ls", "-q", "--db", str(other))) == "web-1\n"
    assert cli.opens[-1]["target"] == str(other)


def test_default_db_is_ctrledger_db_in_the_current_directory(cli: Cli, tmp_path: Path) -> None:
    ok(cli("create", "web-1", "-q", env={"CTRLEDGER_DATABASE_URL": None}))
    assert cli.opens[-1]["target"] == "./ctrledger.db"
    assert (tmp_path / "ctrledger.db").exists()


@pytest.mark.parametrize(
    ("command", "target", "message"),
    [
        pytest.param("ls", ".", "'.' is not a ctrledger store (a directory); it was left as it is: "
                     "failed precondition", id="directory"),
        pytest.param("ls", "notes.txt/x.db", "no store at 'notes.txt/x.db' (no such file): not found",
                     id="directory-is-a-file"),
        pytest.param("create", ".", "cannot open '.': unable to open database file", id="create-in-directory"),
        pytest.param("create", "notes.txt/x.db",
                     "cannot open 'notes.txt/x.db': [Errno 17] File exists: 'notes.txt'",
                     id="create-where-directory-is-a-file"),
    ],
)
def test_unusable_db(cli: Cli, tmp_path: Path, command: str, target: str, message: str) -> None:
    (tmp_path / "notes.txt").write_text("a file, not a directory")
    args = ["x"] if command == "create" else []
    failed(cli(command, *args, "--db", target), message)


def test_a_file_that_is_not_a_database(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a database " * 100)
    failed(cli("ls", "--db", "notes.txt"),
           "'notes.txt' is not a ctrledger store (file is not a database); it was left as it is: failed precondition")
    failed(cli("create", "x", "--db", "notes.txt"), "cannot open 'notes.txt': file is not a database")


def test_unexpected_errors_are_one_line_too(cli: Cli) -> None:
    def broken(target: Any, **options: Any) -> ctrledger.Store:
        raise RuntimeError("boom")

    failed(cli("ls", factory=broken), "unexpected RuntimeError: boom (a bug; run with --debug for the traceback)")
    result = cli("ls", "--debug", factory=broken)
    assert isinstance(result.exception, RuntimeError)


# -- output ---------------------------------------------------------------------


def test_container_to_dict_is_the_librarys_json_shape() -> None:
    """Payload bytes in base64 under ``value``, times in UTC with a ``Z``, maps in the record's order."""
    c = Container(
        id="x",
        labels={"b": "2", "a": "1"},
        runtime=Runtime("r", Payload("t/opts", b"\x00\x01")),
        spec=None,
        extensions={"z": Payload("t/z", b"z"), "m": Payload("t/m", b"")},
        sandbox="sb",
        created_at=datetime(2026, 1, 2, 5, 4, 5, 123456, tzinfo=timezone(timedelta(hours=2))),
        updated_at=None,
        version=7,
    )
    form = container_to_dict(c)
    assert form == {
        "id": "x",
        "labels": {"b": "2", "a": "1"},
        "image": "",
        "runtime": {"name": "r", "options": {"type_url": "t/opts", "value": "AAE="}},
        "spec": None,
        "snapshotter": "",
        "snapshot_key": "",
        "extensions": {"z": {"type_url": "t/z", "value": "eg=="}, "m": {"type_url": "t/m", "value": ""}},
        "sandbox": "sb",
        "created_at": "2026-01-02T03:04:05.123456Z",
        "updated_at": None,
        "version": 7,
        "status": {**created_status("x"), "state": "UNKNOWN", "created_at": None},  # a record never stored
    }
    assert form == FieldChange("x", None, c).to_dict()["new"]  # what history records hold
    assert container_to_dict(replace(c, created_at=datetime(2026, 1, 2, tzinfo=UTC)))["created_at"] == (
        "2026-01-02T00:00:00Z"
    )
    json.dumps(form)


def test_get_json_agrees_with_diff_and_changes_json(cli: Cli) -> None:
    """One JSON shape for a container: ``get --json`` prints what ``diff``/``changes --json`` hold."""
    seed(cli)
    ok(cli("update", "web-1", "--image", "nginx:2", "-q"))  # t4, position 4
    first = json.loads(ok(cli("get", "web-1", "--as-of", "v1")))
    now = json.loads(ok(cli("get", "web-1")))
    diff = json.loads(ok(cli("diff", "web-1", "--since", "v1", "--json")))
    assert (diff["before"], diff["after"]) == (first, now)
    (change,) = json.loads(ok(cli("changes", "--since", "@3", "--json")))
    assert (change["before"], change["after"]) == (first, now)
    assert json.loads(ok(cli("ls", "--nl", "id==web-1"))) == now


def test_table_escapes_unprintable_characters() -> None:
    c = Container(id="x", labels={"note": "two\nlines\t\u200b"}, image="", runtime=Runtime("r"), version=1)
    assert render_table([c]).splitlines() == [
        "ID  IMAGE  RUNTIME  LABELS                     VERSION  UPDATED  STATUS",
        'x   -      r        note="two\\nlines\\t\\u200b"  1        -        Unknown',  # quoted: it holds white space
    ]


# -- the walkthrough --------------------------------------------------------------


def test_walkthrough_runs(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "ctrledger").exists(), f"the ctrledger script is not installed in {bin_dir}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTRLEDGER_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)  # this checkout's ctrledger, wherever the script's install points
    proc = subprocess.run(
        ["bash", str(ROOT / "examples" / "walkthrough.sh")],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""
    out = proc.stdout
    assert "Traceback" not in out
    assert "\n$ ctrledger ls -q labels.env==prod,labels.tier==web\nweb-1\n" in out
    assert "\n$ ctrledger ls labels.env==prod\nID " in out
    assert '\n$ ctrledger get missing\nError: container "missing" in namespace "default": not found\n' \
           "(exit status 1)\n" in out
    assert 'Error: container "web-1": already exists\n(exit status 1)\n' in out
    assert "is neither KEY=VALUE nor KEY-.\n(exit status 2)\n" in out
    final = out.rsplit("$ ctrledger ls\n", 1)[1].split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in final[1:]] == ["db-1", "web-1"]
    assert final[2].split()[1:5] == ["docker.io/library/nginx:1.28", "io.containerd.runc.v2", "env=prod,tier=web", "2"]
    history = out.split("\n$ ctrledger history web-1\n", 1)[1].split("\n\n")[0].splitlines()
    assert history[0].split() == ["VERSION", "INC", "POS", "KIND", "TIME", "ACTOR", "REASON", "CHANGES"]
    assert [line.split()[3] for line in history[1:]] == ["Created", "ImageChanged"]
    assert re.split(r"  +", history[2])[-3:] == [
        "alice", "security patch", "image: docker.io/library/nginx:1.27 -> docker.io/library/nginx:1.28",
    ]
    then = out.split("\n$ ctrledger ls --as-of @3\n", 1)[1].split("\n\n")[0].splitlines()
    assert [(line.split()[0], line.split()[3]) for line in then[1:]] == [
        ("db-1", "env=prod,tier=db"), ("web-1", "env=prod,tier=web"), ("web-2", "env=staging,tier=web"),
    ]
    audit = out.split("\n$ ctrledger audit --actor alice\n", 1)[1].split("\n\n")[0].splitlines()
    assert [line.split()[3:6] for line in audit[1:]] == [
        ["web-2", "2", "LabelsChanged"], ["web-1", "2", "ImageChanged"],
    ]
    assert (
        "\n$ ctrledger checkpoint > cp.json\n"
        "\n$ ctrledger verify --checkpoint cp.json\nOK: positions 1-6 verified, consistent with the checkpoint at 6\n"
    ) in out
    replay = out.split("\n$ ctrledger export backup.ctrlarchive\n", 1)[1]
    assert re.fullmatch(
        r"exported 6 events \(positions 1-6\) to backup\.ctrlarchive: [0-9,]+ bytes\n"
        r"\n\$ ctrledger import backup\.ctrlarchive --db copy\.db\n"
        r"imported 6 events \(positions 1-6, as in the archive\)\n"
        r"\n\$ ctrledger digest\n([0-9a-f]{64})\n"
        r"\n\$ ctrledger digest --db copy\.db\n\1\n",  # the copy's digest is the original's
        replay,
    ), replay
    assert list(tmp_path.iterdir()) == []  # the walkthrough cleans up after itself
