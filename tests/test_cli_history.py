"""The commands on the past: history, diff, changes, audit, rebuild, and get/ls --as-of.

The harness is ``tests/test_cli.py``'s: a fresh SQLite file, the n-th command of a test runs
at 2026-11-21T03:00:00Z plus n seconds, and the CLI's ``now`` (what ``2h`` counts back from)
is that same clock. ``story`` writes seven events, so every table is compared whole:

======  ====  =============================================================  =======
pos/t   ns    event                                                          actor
======  ====  =============================================================  =======
1       dflt  web-1 Created: nginx:1, env=prod, tier=web ("first deploy")    alice
2       dflt  db-1 Created: pg:16                                            alice
3       dflt  web-1 LabelsChanged: env=staging, +owner=team-a, -tier         bob
                ("demote")
4       dflt  web-1 ImageChanged: nginx:2 ("security patch")                 bob
5       dflt  web-1 Deleted ("retired")                                      carol
6       dflt  web-1 Created again: nginx:3                                   dave
7       team  db-1 Created in namespace team-b: pg:15                        erin
======  ====  =============================================================  =======

Errors are the store's (``Error: …``, exit 1); usage errors are click's (exit 2); a failed
command changes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import ctrledger
import ctrledger.cli.points as points
import ctrledger.cli.progress as progress
import ctrledger.replay
from ctrledger import FieldChange, Payload, Position, Runtime, Version
from ctrledger.cli.output import echo_json_array, render_change, render_value

from .test_cli import SPEC_TYPE, START, Cli, clock_harness, failed, ok, usage_error


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    harness = clock_harness(tmp_path, monkeypatch)
    monkeypatch.setattr(points, "now", lambda: harness.clock.now)
    yield harness


def story(cli: Cli) -> None:
    """The seven events of the module docstring, at t1..t7 (positions 1..7)."""
    ok(cli("create", "web-1", "--image", "nginx:1", "--label", "env=prod", "--label", "tier=web",
           "--actor", "alice", "--reason", "first deploy", "-q"))
    ok(cli("create", "db-1", "--image", "pg:16", "--actor", "alice", "-q"))
    ok(cli("label", "web-1", "env=staging", "owner=team-a", "tier-", "--actor", "bob", "--reason", "demote", "-q"))
    ok(cli("update", "web-1", "--image", "nginx:2", "--actor", "bob", "--reason", "security patch", "-q"))
    ok(cli("rm", "web-1", "--actor", "carol", "--reason", "retired"))
    ok(cli("create", "web-1", "--image", "nginx:3", "--actor", "dave", "-q"))
    ok(cli("create", "db-1", "-n", "team-b", "--image", "pg:15", "--actor", "erin", "-q"))


def at(n: int) -> str:
    """The time of the n-th command, as tables show it."""
    return (START + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ")


def state(cli: Cli) -> tuple[Any, ...]:
    """Everything a command could change: the containers of both namespaces and the whole log."""
    with ctrledger.open(cli.db) as store:
        return (
            store.list(namespace="default"), store.list(namespace="team-b"),
            [a.to_dict() for a in store.audit()], store.position,
        )


def library(cli: Cli) -> ctrledger.Store:
    return ctrledger.open(cli.db)


SPEC = f"+spec={SPEC_TYPE} (2 bytes)"
RUNC = "+runtime=io.containerd.runc.v2"


# -- history ----------------------------------------------------------------------------


def test_history_table(cli: Cli) -> None:
    story(cli)
    assert ok(cli("history", "web-1")) == (
        "VERSION  INC  POS  KIND           TIME                  ACTOR  REASON          CHANGES\n"
        f"1        1    1    Created        {at(1)}  alice  first deploy    "
        f"+labels.env=prod, +labels.tier=web, +image=nginx:1, {RUNC}, {SPEC}\n"
        f"2        1    3    LabelsChanged  {at(3)}  bob    demote          "
        "labels.env: prod -> staging, +labels.owner=team-a, -labels.tier\n"
        f"3        1    4    ImageChanged   {at(4)}  bob    security patch  image: nginx:1 -> nginx:2\n"
        f"4        1    5    Deleted        {at(5)}  carol  retired         -\n"
        f"5        2    6    Created        {at(6)}  dave   -               +image=nginx:3, {RUNC}, {SPEC}\n"
    )


def test_history_json_is_the_librarys_records_as_one_array(cli: Cli) -> None:
    story(cli)
    with library(cli) as store:
        expected = [e.to_dict() for e in store.history("web-1")]
    out = ok(cli("history", "web-1", "--json"))
    assert out == json.dumps(expected, indent=2) + "\n"
    first = json.loads(out)[0]
    assert list(first) == [
        "namespace", "id", "version", "incarnation", "position", "kind", "recorded_at", "actor", "reason",
        "correlation_id", "fieldpaths", "client", "changes",
    ]
    assert first["recorded_at"] == "2026-11-21T03:00:01Z"
    assert first["changes"][0] == {"field": "labels.env", "old": None, "new": "prod"}


def test_history_nl_is_one_record_per_line(cli: Cli) -> None:
    story(cli)
    lines = ok(cli("history", "web-1", "--nl")).splitlines()
    assert [(r["version"], r["kind"], r["actor"]) for r in map(json.loads, lines)] == [
        (1, "Created", "alice"), (2, "LabelsChanged", "bob"), (3, "ImageChanged", "bob"),
        (4, "Deleted", "carol"), (5, "Created", "dave"),
    ]
    with library(cli) as store:
        assert lines == [json.dumps(e.to_dict()) for e in store.history("web-1")]


@pytest.mark.parametrize("flag", ["--nl", "--json", "--table"])
def test_history_streams_json_and_nl(cli: Cli, flag: str) -> None:
    """Records are printed as they come: a failure midway leaves the first on stdout (not so the table)."""
    story(cli)

    def failing_store(target: Any, **options: Any) -> ctrledger.Store:
        store = cli.open(target, **options)
        real = store.history

        def history(id: str, **kw: Any) -> Iterator[ctrledger.HistoryEntry]:  # noqa: A002
            yield next(real(id, **kw))
            raise ctrledger.Unavailable("disk went away")

        store.history = history  # type: ignore[method-assign]
        return store

    with library(cli) as store:
        first = next(store.history("web-1")).to_dict()
    stdout = {
        "--nl": json.dumps(first) + "\n",
        "--json": "[\n  " + json.dumps(first, indent=2).replace("\n", "\n  "),
        "--table": "",
    }[flag]
    result = cli("history", "web-1", flag, factory=failing_store)
    assert (result.exit_code, result.stdout, result.stderr) == (1, stdout, "Error: disk went away\n")


def test_history_namespaces_are_separate(cli: Cli) -> None:
    story(cli)
    lines = ok(cli("history", "db-1", "-n", "team-b")).splitlines()
    assert len(lines) == 2 and lines[1].split()[:4] == ["1", "1", "7", "Created"]


def test_history_cells_stay_on_their_line(cli: Cli) -> None:
    ok(cli("create", "x", "--label", "note=a b", "--label", "csv=a,b", "--reason", "two\nlines", "-q"))
    ok(cli("label", "x", "note=", "-q"))
    out = ok(cli("history", "x", "--table"))
    assert out.splitlines()[1].split("  ")[-1] == f'+labels.csv="a,b", +labels.note="a b", {RUNC}, {SPEC}'
    assert "two\\x0alines" in out.splitlines()[1]
    assert out.splitlines()[2].endswith("-labels.note")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["nope"], 'container "nope" in namespace "default": not found', id="never-existed"),
        pytest.param(["web-1", "-n", "team-b"], 'container "web-1" in namespace "team-b": not found', id="other-ns"),
        pytest.param(
            ["web-1", "-n", "-bad"],
            'namespace validation: identifier "-bad" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: '
            "invalid argument",
            id="bad-namespace",
        ),
    ],
)
def test_history_failures(cli: Cli, args: list[str], message: str) -> None:
    story(cli)
    failed(cli("history", *args), message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param([], "Missing argument 'ID'.", id="no-id"),
        pytest.param(["web-1", "-q"], "No such option", id="no-quiet"),
        pytest.param(["web-1", "--json", "--nl"], "Give only one of --table, --json, --nl.", id="two-formats"),
        pytest.param(["web-1", "web-2"], "Got unexpected extra argument (web-2)", id="two-ids"),
    ],
)
def test_history_usage_errors(cli: Cli, args: list[str], message: str) -> None:
    usage_error(cli("history", *args), message)


# -- get and ls --as-of ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("as_of", "image", "labels", "version"),
    [
        pytest.param("@1", "nginx:1", {"env": "prod", "tier": "web"}, 1, id="position"),
        pytest.param("@4", "nginx:2", {"env": "staging", "owner": "team-a"}, 3, id="position-later"),
        pytest.param("v2", "nginx:1", {"env": "staging", "owner": "team-a"}, 2, id="version"),
        pytest.param("v5", "nginx:3", {}, 5, id="version-of-the-second-incarnation"),
        pytest.param("2026-11-21T03:00:03Z", "nginx:1", {"env": "staging", "owner": "team-a"}, 2, id="iso-z"),
        pytest.param("2026-11-21T05:00:04+02:00", "nginx:2", {"env": "staging", "owner": "team-a"}, 3,
                     id="iso-offset"),
        pytest.param("5s", "nginx:1", {"env": "staging", "owner": "team-a"}, 2, id="seconds-ago"),
        pytest.param("0m", "nginx:3", {}, 5, id="zero-minutes-ago"),
    ],
)
def test_get_as_of(cli: Cli, as_of: str, image: str, labels: dict[str, str], version: int) -> None:
    story(cli)  # the get is the 8th command, at t8: "5s" is t3
    form = json.loads(ok(cli("get", "web-1", "--as-of", as_of)))
    assert (form["image"], form["labels"], form["version"]) == (image, labels, version)


def test_get_as_of_seconds_ago_counts_from_now(cli: Cli) -> None:
    story(cli)
    ok(cli("ls", "-q"))  # t8; the next command runs at t9, and 5s before it is t4
    assert json.loads(ok(cli("get", "web-1", "--as-of", "5s")))["image"] == "nginx:2"


@pytest.mark.parametrize(
    ("as_of", "message"),
    [
        pytest.param("@5", 'container "web-1" in namespace "default" did not exist at position 5: not found',
                     id="deleted-then"),
        pytest.param("v4", 'container "web-1" in namespace "default" did not exist at version 4: not found',
                     id="deleted-version"),
        pytest.param("@0", 'container "web-1" in namespace "default" did not exist at position 0: not found',
                     id="before-the-log"),
        pytest.param("1w", 'container "web-1" in namespace "default" did not exist at 2026-11-14T03:00:08Z: '
                     "not found", id="a-week-ago"),
        pytest.param("@8", "as_of position 8 is in the future: the log's head is 7: invalid argument",
                     id="future-position"),
        pytest.param("v6", 'as_of version 6 is in the future: "web-1" is at version 5: invalid argument',
                     id="future-version"),
        pytest.param("2026-11-21T03:00:09Z", "as_of 2026-11-21T03:00:09Z is in the future: invalid argument",
                     id="future-time"),
    ],
)
def test_get_as_of_failures(cli: Cli, as_of: str, message: str) -> None:
    story(cli)
    before = state(cli)
    failed(cli("get", "web-1", "--as-of", as_of), message)
    assert state(cli) == before


@pytest.mark.parametrize(
    ("args", "option", "message"),
    [
        pytest.param(["get", "web-1", "--as-of", "2x"], "--as-of", "'2x' is not an ISO-8601 time", id="bad-unit"),
        pytest.param(["get", "web-1", "--as-of", "@x"], "--as-of", "'@x' is not an ISO-8601 time",
                     id="bad-position"),
        pytest.param(["get", "web-1", "--as-of", "v-1"], "--as-of", "'v-1' is not an ISO-8601 time",
                     id="bad-version"),
        pytest.param(["get", "web-1", "--as-of", "@2h"], "--as-of", "'@2h' is not an ISO-8601 time",
                     id="mixed-forms"),
        pytest.param(["get", "web-1", "--as-of", "yesterday"], "--as-of", "'yesterday' is not an ISO-8601 time",
                     id="words"),
        pytest.param(["get", "web-1", "--as-of", "2026-11-21T03:00:03"], "--as-of",
                     "'2026-11-21T03:00:03' has no timezone; add Z or an offset", id="no-zone"),
        pytest.param(["ls", "--as-of", "soon"], "--as-of", "'soon' is not an ISO-8601 time", id="ls"),
        pytest.param(["diff", "web-1", "--since", "later"], "--since", "'later' is not an ISO-8601 time", id="diff"),
        pytest.param(["audit", "--since", "noon"], "--since", "'noon' is not an ISO-8601 time", id="audit"),
        pytest.param(["changes", "--since", "@1", "--until", "then"], "--until", "'then' is not an ISO-8601 time",
                     id="changes"),
    ],
)
def test_points_that_are_not_points_are_usage_errors(cli: Cli, args: list[str], option: str, message: str) -> None:
    """Exit 2, the option named as the user wrote it (not the library's parameter), nothing changed."""
    story(cli)
    before = state(cli)
    usage_error(cli(*args), f"Invalid value for {option!r}: {message}.")
    assert state(cli) == before


@pytest.mark.parametrize(
    ("command", "value"),
    [
        pytest.param("get", "99999999999d", id="days-before-year-one"),
        pytest.param("ls", "9" * 20 + "w", id="weeks-overflow"),
        pytest.param("get", "@" + "9" * 5000, id="too-many-digits"),
    ],
)
def test_points_out_of_range_are_usage_errors(cli: Cli, command: str, value: str) -> None:
    args = ["web-1"] if command == "get" else []
    usage_error(cli(command, *args, "--as-of", value), f"Invalid value for '--as-of': {value!r} is out of range.")


def test_ls_as_of_table(cli: Cli) -> None:
    story(cli)
    assert ok(cli("ls", "--as-of", "@3")) == (
        "ID     IMAGE    RUNTIME                LABELS                    VERSION  UPDATED               STATUS\n"
        f"db-1   pg:16    io.containerd.runc.v2  -                         1        {at(2)}  Created 6s ago\n"
        f"web-1  nginx:1  io.containerd.runc.v2  env=staging,owner=team-a  2        {at(3)}  Created 7s ago\n"
    )


@pytest.mark.parametrize(
    ("args", "ids"),
    [
        pytest.param(["--as-of", "@0"], [], id="before-the-log"),
        pytest.param(["--as-of", "@1"], ["web-1"], id="first-event"),
        pytest.param(["--as-of", "@5"], ["db-1"], id="web-1-deleted"),
        pytest.param(["--as-of", "@2", "labels.env==prod"], ["web-1"], id="filter-then"),
        pytest.param(["--as-of", "@3", "labels.env==prod"], [], id="filter-after-demotion"),
        pytest.param(["--as-of", "4s", "image~=nginx"], ["web-1"], id="relative"),
        pytest.param(["--as-of", at(2)], ["db-1", "web-1"], id="iso"),
        pytest.param(["--as-of", "@7", "-n", "team-b"], ["db-1"], id="other-namespace"),
        pytest.param(["--as-of", "@6", "-n", "team-b"], [], id="other-namespace-earlier"),
    ],
)
def test_ls_as_of(cli: Cli, args: list[str], ids: list[str]) -> None:
    story(cli)
    assert ok(cli("ls", "-q", *args)).splitlines() == ids


def test_ls_as_of_output_formats(cli: Cli) -> None:
    story(cli)
    (form,) = json.loads(ok(cli("ls", "--as-of", "@1", "--json")))
    assert (form["id"], form["version"], form["created_at"]) == ("web-1", 1, "2026-11-21T03:00:01Z")
    assert json.loads(ok(cli("ls", "--as-of", "@1", "--nl"))) == form


@pytest.mark.parametrize(
    ("as_of", "message"),
    [
        pytest.param("v1", "list as_of takes a time or a Position; a Version belongs to one container: "
                     "invalid argument", id="version"),
        pytest.param("@99", "as_of position 99 is in the future: the log's head is 7: invalid argument",
                     id="future"),
    ],
)
def test_ls_as_of_failures(cli: Cli, as_of: str, message: str) -> None:
    story(cli)
    failed(cli("ls", "--as-of", as_of), message)


@pytest.mark.parametrize("args", [["ls", "--as-of"], ["audit", "--since"], ["diff", "web-1", "--since"]])
def test_points_need_a_value(cli: Cli, args: list[str]) -> None:
    result = cli(*args)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"Error: Option {args[-1]!r} requires an argument.\n"


# -- diff ------------------------------------------------------------------------------------


def test_diff_table(cli: Cli) -> None:
    story(cli)
    assert ok(cli("diff", "web-1", "--since", "@1", "--until", "@4")) == (
        "web-1: changed\n"
        "FIELD         BEFORE   AFTER\n"
        "labels.env    prod     staging\n"
        "labels.owner  \u2205        team-a\n"
        "labels.tier   web      \u2205\n"
        "image         nginx:1  nginx:2\n"
    )


@pytest.mark.parametrize(
    ("since", "until", "first_line"),
    [
        pytest.param("v1", "v3", "web-1: changed", id="versions"),
        pytest.param("@4", "@5", "web-1: deleted", id="deleted"),
        pytest.param("@5", "@6", "web-1: created", id="created"),
        pytest.param("@1", None, "web-1: recreated", id="until-now"),
        pytest.param("@6", None, "web-1: unchanged", id="unchanged"),
        pytest.param("7s", "4s", "web-1: changed", id="relative"),  # at t8: t1 to t4
        pytest.param(at(1), at(3), "web-1: changed", id="iso"),
    ],
)
def test_diff_status(cli: Cli, since: str, until: str | None, first_line: str) -> None:
    story(cli)
    out = ok(cli("diff", "web-1", "--since", since, *(["--until", until] if until else [])))
    assert out.splitlines()[0] == first_line
    assert (len(out.splitlines()) == 1) == first_line.endswith("unchanged")


def test_diff_json_and_nl_are_the_librarys_diff(cli: Cli) -> None:
    story(cli)
    with library(cli) as store:
        expected = store.diff("web-1", since=Position(1), until=Position(4)).to_dict()
    out = ok(cli("diff", "web-1", "--since", "@1", "--until", "@4", "--json"))
    assert out == json.dumps(expected, indent=2) + "\n"
    assert list(json.loads(out)) == ["namespace", "id", "before", "after", "changes", "status"]
    nl = ok(cli("diff", "web-1", "--since", "@1", "--until", "@4", "--nl"))
    assert nl == json.dumps(expected) + "\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["nope", "--since", "@1"], 'container "nope" in namespace "default": not found', id="missing"),
        pytest.param(["web-1", "--since", "@99"], "since position 99 is in the future: the log's head is 7: "
                     "invalid argument", id="future-since"),
        pytest.param(["web-1", "--since", "@1", "--until", "v9"], 'until version 9 is in the future: "web-1" is '
                     "at version 5: invalid argument", id="future-until"),
    ],
)
def test_diff_failures(cli: Cli, args: list[str], message: str) -> None:
    story(cli)
    failed(cli("diff", *args), message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["web-1"], "Missing option '--since'.", id="no-since"),
        pytest.param(["--since", "@1"], "Missing argument 'ID'.", id="no-id"),
        pytest.param(["web-1", "--since", "@1", "-q"], "No such option", id="no-quiet"),
    ],
)
def test_diff_usage_errors(cli: Cli, args: list[str], message: str) -> None:
    usage_error(cli("diff", *args), message)


# -- changes ---------------------------------------------------------------------------------


def test_changes_table(cli: Cli) -> None:
    story(cli)
    assert ok(cli("changes", "--since", "@1")) == (
        "ID     STATUS     CHANGES\n"
        f"db-1   created    +image=pg:16, {RUNC}, {SPEC}\n"
        "web-1  recreated  -labels.env, -labels.tier, image: nginx:1 -> nginx:3\n"
    )


@pytest.mark.parametrize(
    ("args", "ids"),
    [
        pytest.param(["--since", "@0"], ["db-1", "web-1"], id="everything"),
        pytest.param(["--since", "@2", "--until", "@4"], ["web-1"], id="window"),
        pytest.param(["--since", "@3", "--until", "@3"], [], id="empty-window"),
        pytest.param(["--since", "@2", "labels.env==prod"], ["web-1"], id="filter-matched-before"),
        pytest.param(["--since", "@0", "image==pg:16"], ["db-1"], id="filter-matched-after"),
        pytest.param(["--since", "@0", "labels.env==nope"], [], id="filter-never-matched"),
        pytest.param(["--since", "@0", "-n", "team-b"], ["db-1"], id="other-namespace"),
        pytest.param(["--since", "3s"], ["web-1"], id="relative"),
        pytest.param(["--since", at(5), "--until", at(6)], ["web-1"], id="iso"),
    ],
)
def test_changes_quiet(cli: Cli, args: list[str], ids: list[str]) -> None:
    story(cli)
    assert ok(cli("changes", "-q", *args)).splitlines() == ids


def test_changes_json_and_nl_are_the_librarys_records(cli: Cli) -> None:
    story(cli)
    with library(cli) as store:
        expected = [c.to_dict() for c in store.changes(since=Position(2), until=Position(4))]
    assert ok(cli("changes", "--since", "@2", "--until", "@4", "--json")) == json.dumps(expected, indent=2) + "\n"
    assert ok(cli("changes", "--since", "@2", "--until", "@4", "--nl")) == "".join(
        json.dumps(c) + "\n" for c in expected
    )
    assert ok(cli("changes", "--since", "@3", "--until", "@3", "--json")) == "[]\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--since", "v1"], "changes takes times or Positions, not Versions: invalid argument",
                     id="version"),
        pytest.param(["--since", "@1", "labels.env="], "filters: parse error: [labels.env >|=|< ]: unsupported "
                     'operator "=": invalid argument: invalid argument', id="bad-filter"),
        pytest.param(["--since", "@1", "--until", "@9"], "until position 9 is in the future: the log's head is 7: "
                     "invalid argument", id="future"),
    ],
)
def test_changes_failures(cli: Cli, args: list[str], message: str) -> None:
    story(cli)
    failed(cli("changes", *args), message)


def test_changes_usage_errors(cli: Cli) -> None:
    usage_error(cli("changes"), "Missing option '--since'.")
    usage_error(cli("changes", "--since", "@0", "-q", "--nl"), "Give only one of --table, --json, --nl, -q.")


# -- audit -----------------------------------------------------------------------------------

AUDIT_HEADER = "POS  TIME                  NAMESPACE  ID     VERSION  KIND           ACTOR  REASON          CLIENT"


def test_audit_table_of_the_namespace(cli: Cli) -> None:
    story(cli)
    assert ok(cli("audit")) == (
        f"{AUDIT_HEADER}\n"
        f"1    {at(1)}  default    web-1  1        Created        alice  first deploy    cli\n"
        f"2    {at(2)}  default    db-1   1        Created        alice  -               cli\n"
        f"3    {at(3)}  default    web-1  2        LabelsChanged  bob    demote          cli\n"
        f"4    {at(4)}  default    web-1  3        ImageChanged   bob    security patch  cli\n"
        f"5    {at(5)}  default    web-1  4        Deleted        carol  retired         cli\n"
        f"6    {at(6)}  default    web-1  5        Created        dave   -               cli\n"
    )


def test_audit_all_namespaces(cli: Cli) -> None:
    story(cli)
    out = ok(cli("audit", "-A"))
    assert out.splitlines()[-1] == f"7    {at(7)}  team-b     db-1   1        Created        erin   -               cli"
    assert ok(cli("audit", "--all-namespaces")) == out
    assert ok(cli("audit", "-A", env={"CTRLEDGER_NAMESPACE": "team-b"})) == out  # -A wins over the environment


def positions(out: str) -> list[int]:
    return [int(line.split()[0]) for line in out.splitlines()[1:]]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--actor", "bob"], [3, 4], id="actor"),
        pytest.param(["--actor", "carol", "--actor", "dave"], [5, 6], id="actors"),
        pytest.param(["--actor", "erin"], [], id="actor-in-another-namespace"),
        pytest.param(["--actor", "erin", "-A"], [7], id="actor-all-namespaces"),
        pytest.param(["--kind", "Created"], [1, 2, 6], id="kind"),
        pytest.param(["--kind", "Created", "--kind", "Deleted", "-A"], [1, 2, 5, 6, 7], id="kinds"),
        pytest.param(["--since", at(3), "--until", at(4)], [3, 4], id="iso-window"),
        pytest.param(["--since", "5s"], [4, 5, 6], id="relative"),  # at t9: t4 onwards
        pytest.param(["--until", "7s"], [1, 2], id="relative-until"),
        pytest.param(["--id", "db-1", "-A"], [2, 7], id="id"),
        pytest.param(["--reason", "retired"], [5], id="reason"),
        pytest.param(["--reason", "retire"], [], id="reason-is-exact"),
        pytest.param(["--client", "cli"], [1, 2, 3, 4, 5, 6], id="client"),
        pytest.param(["--client", "library"], [], id="other-client"),
        pytest.param(["--actor", "bob", "--kind", "ImageChanged"], [4], id="all-must-hold"),
        pytest.param(["-n", "team-b"], [7], id="namespace"),
    ],
)
def test_audit_filters(cli: Cli, args: list[str], expected: list[int]) -> None:
    story(cli)
    ok(cli("ls", "-q"))  # t8: the audit runs at t9
    assert positions(ok(cli("audit", *args))) == expected


def test_audit_by_correlation_id(cli: Cli) -> None:
    story(cli)
    with library(cli) as store:
        correlation = [e.correlation_id for e in store.history("web-1")][1]
    assert positions(ok(cli("audit", "--correlation-id", correlation))) == [3]


def test_audit_json_and_nl_are_the_librarys_records(cli: Cli) -> None:
    story(cli)
    with library(cli) as store:
        expected = [a.to_dict() for a in store.audit(actor="bob", namespace="default")]
    assert ok(cli("audit", "--actor", "bob", "--json")) == json.dumps(expected, indent=2) + "\n"
    assert ok(cli("audit", "--actor", "bob", "--nl")) == "".join(json.dumps(a) + "\n" for a in expected)
    assert list(expected[0]) == [
        "position", "recorded_at", "namespace", "id", "version", "kind", "actor", "reason", "correlation_id",
        "fieldpaths", "client",
    ]
    assert expected[0]["fieldpaths"] == ["labels.env", "labels.owner", "labels.tier"]


def test_audit_of_an_empty_store(cli: Cli) -> None:
    cli.new_store()
    assert ok(cli("audit")) == "POS  TIME  NAMESPACE  ID  VERSION  KIND  ACTOR  REASON  CLIENT\n"
    assert ok(cli("audit", "--json")) == "[]\n"
    assert ok(cli("audit", "--nl")) == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--kind", "Renamed"], "unknown event kind(s) 'Renamed'; known: Created, Deleted, Exited, "
                     "ExtensionsChanged, ImageChanged, LabelsChanged, Paused, ResourcesUpdated, Resumed, "
                     "SnapshotKeyChanged, SpecUpdated, Started, Touched: invalid argument", id="unknown-kind"),
        pytest.param(["--until", "v1"], "audit until must be a time or a Position, not a Version: invalid argument",
                     id="version"),
        pytest.param(["--since", "@5", "--until", "@2"], "audit since position 5 is after until position 2: "
                     "invalid argument", id="reversed"),
        pytest.param(
            ["-n", "Bad!"],
            'namespace validation: identifier "Bad!" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: '
            "invalid argument",
            id="bad-namespace",
        ),
    ],
)
def test_audit_failures(cli: Cli, args: list[str], message: str) -> None:
    story(cli)
    failed(cli("audit", *args), message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["-A", "-n", "team-b"], "Give -n/--namespace or -A/--all-namespaces, not both.", id="A-and-n"),
        pytest.param(["-q"], "No such option", id="no-quiet"),
        pytest.param(["web-1"], "Got unexpected extra argument (web-1)", id="id-is-an-option"),
    ],
)
def test_audit_usage_errors(cli: Cli, args: list[str], message: str) -> None:
    usage_error(cli("audit", *args), message)


# -- rebuild ---------------------------------------------------------------------------------


def test_rebuild_reports_the_events_and_changes_no_answer(cli: Cli) -> None:
    story(cli)
    before = state(cli)
    history = ok(cli("history", "web-1", "--nl"))
    assert ok(cli("rebuild")) == "rebuilt 7 events\n"
    assert state(cli) == before
    assert ok(cli("history", "web-1", "--nl")) == history
    assert ok(cli("ls", "-q", "--as-of", "@3")) == "db-1\nweb-1\n"


def test_rebuild_counts(cli: Cli) -> None:
    cli.new_store()
    assert ok(cli("rebuild")) == "rebuilt 0 events\n"
    ok(cli("create", "x", "-q"))
    assert ok(cli("rebuild")) == "rebuilt 1 event\n"


def test_rebuild_draws_a_progress_bar_on_a_terminal_only(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    story(cli)
    real = ctrledger.replay.rebuild
    calls: list[tuple[int, int]] = []

    def spy(store: ctrledger.Store, progress: Any = None, **kw: Any) -> int:
        def recorded(done: int, total: int) -> None:
            calls.append((done, total))
            progress(done, total)

        return real(store, recorded if progress is not None else None, **kw)

    monkeypatch.setattr(ctrledger.replay, "rebuild", spy)
    assert ok(cli("rebuild")) == "rebuilt 7 events\n"  # CliRunner's stderr is no terminal: no bar
    assert calls == []
    monkeypatch.setattr(progress, "on_terminal", lambda: True)
    result = cli("rebuild")
    assert (result.exit_code, result.stdout) == (0, "rebuilt 7 events\n")
    assert result.stderr == "Rebuilding\n"  # click draws only the label when the stream is not a tty
    assert calls == [(7, 7)]


def test_rebuild_is_store_wide(cli: Cli) -> None:
    usage_error(cli("rebuild", "-n", "team-b"), "No such option")
    usage_error(cli("rebuild", "--json"), "No such option")


def test_rebuild_failure_is_one_line(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    story(cli)
    before = state(cli)

    def broken(store: object) -> int:
        raise ctrledger.Unavailable("database is locked")

    monkeypatch.setattr(ctrledger.replay, "rebuild", broken)
    failed(cli("rebuild"), "database is locked")
    assert state(cli) == before


# -- the store is only read ------------------------------------------------------------------

QUERIES = [
    pytest.param(["history", "web-1"], id="history"),
    pytest.param(["diff", "web-1", "--since", "@1"], id="diff"),
    pytest.param(["changes", "--since", "@1"], id="changes"),
    pytest.param(["audit", "-A"], id="audit"),
    pytest.param(["get", "web-1", "--as-of", "@1"], id="get"),
    pytest.param(["ls", "--as-of", "@1"], id="ls"),
]


@pytest.mark.parametrize("args", QUERIES)
def test_queries_change_nothing_and_record_no_actor(cli: Cli, args: list[str]) -> None:
    story(cli)
    before = state(cli)
    opened = len(cli.opens)
    ok(cli(*args))
    assert state(cli) == before
    assert [o.get("actor") for o in cli.opens[opened:]] == [None]


def test_failed_commands_change_nothing(cli: Cli) -> None:
    story(cli)
    before = state(cli)
    for args in (
        ["history", "nope"], ["diff", "web-1", "--since", "@99"], ["changes", "--since", "v1"],
        ["audit", "--kind", "Nope"], ["get", "web-1", "--as-of", "@5"], ["ls", "--as-of", "v1"],
    ):
        assert cli(*args).exit_code == 1, args
    for args in (["diff", "web-1"], ["audit", "-A", "-n", "x"], ["ls", "--as-of", "9" * 30 + "d"],
                 ["diff", "web-1", "--since", "x"]):
        assert cli(*args).exit_code == 2, args
    assert state(cli) == before


# -- the pieces ------------------------------------------------------------------------------

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "point"),
    [
        pytest.param("@0", Position(0), id="position-zero"),
        pytest.param("@123", Position(123), id="position"),
        pytest.param("v7", Version(7), id="version"),
        pytest.param(" v7 ", Version(7), id="spaces"),
        pytest.param("45s", NOW - timedelta(seconds=45), id="seconds"),
        pytest.param("30m", NOW - timedelta(minutes=30), id="minutes"),
        pytest.param("2h", NOW - timedelta(hours=2), id="hours"),
        pytest.param("3d", NOW - timedelta(days=3), id="days"),
        pytest.param("1w", NOW - timedelta(weeks=1), id="weeks"),
        pytest.param("2026-11-21T09:00:00Z", datetime(2026, 11, 21, 9, tzinfo=UTC), id="iso"),
        pytest.param("2026-11-21T10:00:00+01:00", datetime(2026, 11, 21, 9, tzinfo=UTC), id="iso-offset"),
    ],
)
def test_parse_point(monkeypatch: pytest.MonkeyPatch, text: str, point: object) -> None:
    monkeypatch.setattr(points, "now", lambda: NOW)
    assert points.parse_point(text) == point


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("2x", id="unknown-unit"),
        pytest.param("12", id="bare-number"),
        pytest.param("@2h", id="mixed"),
        pytest.param("V7", id="capital-v"),
        pytest.param("v\u0663", id="non-ascii-digit"),
        pytest.param("", id="empty"),
        pytest.param("2026-11-21T09:00:00", id="no-zone"),
    ],
)
def test_parse_point_refuses_what_is_not_a_point(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        points.parse_point(text)


def test_now_is_aware_utc() -> None:
    assert points.now().tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        pytest.param(None, "\u2205", id="absent"),
        pytest.param("nginx:1", "nginx:1", id="plain"),
        pytest.param("", '""', id="empty"),
        pytest.param("a b", '"a b"', id="space"),
        pytest.param("a,b", '"a,b"', id="comma"),
        pytest.param('say "hi"', '"say \\"hi\\""', id="quotes"),
        pytest.param("\u2205", '"\u2205"', id="looks-absent"),
        pytest.param("ü", "ü", id="unicode"),
        pytest.param(Payload("t/x", b"{}"), "t/x (2 bytes)", id="payload"),
        pytest.param(Payload("t/x", b"{"), "t/x (1 byte)", id="payload-one-byte"),
        pytest.param(Runtime("io.containerd.runc.v2"), "io.containerd.runc.v2", id="runtime"),
        pytest.param(Runtime("r", Payload("t/o", b"")), "r [t/o (0 bytes)]", id="runtime-with-options"),
        pytest.param(3, "3", id="other"),
    ],
)
def test_render_value(value: object, shown: str) -> None:
    assert render_value(value) == shown


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        pytest.param(FieldChange("labels.x", None, "1"), "+labels.x=1", id="set"),
        pytest.param(FieldChange("labels.y", "1", None), "-labels.y", id="removed"),
        pytest.param(FieldChange("image", "a", "b"), "image: a -> b", id="changed"),
        pytest.param(FieldChange("image", "a", ""), 'image: a -> ""', id="cleared"),
        pytest.param(FieldChange("spec", Payload("t", b"1"), Payload("t", b"22")), "spec: t (1 byte) -> t (2 bytes)",
                     id="payload"),
    ],
)
def test_render_change(change: FieldChange, shown: str) -> None:
    assert render_change(change) == shown


@pytest.mark.parametrize(
    "items",
    [
        pytest.param([], id="empty"),
        pytest.param([{"a": 1}], id="one"),
        pytest.param([{"a": [1, {"b": None}], "c": "x\ny"}, [], {}, "s"], id="nested"),
    ],
)
def test_echo_json_array_prints_what_json_dumps_would(capsys: pytest.CaptureFixture[str], items: list[Any]) -> None:
    echo_json_array(iter(items))
    assert capsys.readouterr().out == json.dumps(items, indent=2) + "\n"
