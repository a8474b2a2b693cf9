"""The CLI never harms what it reads, and the asks of issue 10's trial.

Read commands never create or change a file: a missing store is an error naming it, a file
that is not a store is refused with its bytes unchanged (SHA-256), a store read by every read
command keeps its bytes. Then: an empty ``CTRLEDGER_DATABASE_URL``, ``--db``/``-n`` before the
subcommand, the store factory, unambiguous label cells, ``audit @N``, reversed ranges,
``export -``/``import -``, ``--expected-version``, ``namespaces`` and ``ls -A``, ``--sort``,
``--limit``, ``--tail``, ``--sandbox``/``--extension`` and shell completion.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import ctrledger
from ctrledger.cli import main

from .test_cli import Cli, FixedClock, failed, ok, usage_error
from .test_open_modes import readonly_mount, remount_read_only  # noqa: F401 - a fixture

READS = {
    "get": ["get", "web-1"],
    "ls": ["ls"],
    "ls-A": ["ls", "-A"],
    "namespaces": ["namespaces"],
    "history": ["history", "web-1"],
    "diff": ["diff", "web-1", "--since", "@1"],
    "changes": ["changes", "--since", "@1"],
    "audit": ["audit"],
    "checkpoint": ["checkpoint"],
    "prove": ["prove", "1"],
    "export": ["export", "out.ctrlarchive"],
    "digest": ["digest"],
    "verify-projections": ["verify-projections"],
    "replay-to": ["replay-to", "then.db", "--as-of", "@1"],
}


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    monkeypatch.chdir(tmp_path)
    yield Cli(tmp_path / "ledger.db", FixedClock())


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files(where: Path) -> set[str]:
    return {p.name for p in where.iterdir() if not p.name.endswith(("-wal", "-shm"))}


def seed(cli: Cli) -> None:
    ok(cli("create", "web-1", "--label", "env=prod", "-q"))
    ok(cli("label", "web-1", "tier=web", "-q"))
    ok(cli("create", "db-1", "-n", "backend", "-q"))


# -- read commands never create or change a file ---------------------------------------------


@pytest.mark.parametrize("args", list(READS.values()), ids=list(READS))
def test_a_read_of_a_missing_store_names_it_and_creates_nothing(cli: Cli, tmp_path: Path, args: list[str]) -> None:
    target = tmp_path / "nonexistent" / "dir" / "x.db"
    failed(cli(*args, "--db", str(target)), f"no store at {str(target)!r} (no such file): not found")
    assert files(tmp_path) == set()


def test_verify_of_a_missing_store_creates_nothing(cli: Cli, tmp_path: Path) -> None:
    result = cli("verify", "--db", "nope/x.db")
    assert result.exit_code == 1
    assert "no such file: nope/x.db" in result.stdout
    assert files(tmp_path) == set()


@pytest.mark.parametrize("args", [*READS.values(), ["verify"]], ids=[*READS, "verify"])
def test_a_file_that_is_not_a_store_is_refused_untouched(cli: Cli, tmp_path: Path, args: list[str]) -> None:
    other = tmp_path / "mine.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE notes(text)")
    conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.commit()
    conn.close()
    before = sha(other)
    result = cli(*args, "--db", str(other))
    assert result.exit_code == 1
    assert "not a ctrledger store (no table stored_events, ctrledger_meta)" in result.output
    assert "verified" not in result.output
    assert sha(other) == before
    assert files(tmp_path) == {"mine.db"}


@pytest.mark.parametrize("args", [*READS.values(), ["verify"]], ids=[*READS, "verify"])
def test_read_commands_leave_the_store_byte_for_byte(cli: Cli, tmp_path: Path, args: list[str]) -> None:
    seed(cli)
    before = sha(cli.db)
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert sha(cli.db) == before
    if args[0] != "verify":  # verify opens no store: it reads the file itself
        assert cli.opens[-1]["mode"] == "r"


def test_an_empty_database_url_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    for args in (["ls"], ["create", "x"]):
        usage_error(cli(*args, env={"CTRLEDGER_DATABASE_URL": ""}),
                    "Invalid value for '--db' (env var: 'CTRLEDGER_DATABASE_URL'): CTRLEDGER_DATABASE_URL is set "
                    "but empty; name a store.")
    assert files(tmp_path) == set()


def test_commands_on_a_read_only_mount(cli: Cli, readonly_mount: Path) -> None:  # noqa: F811
    cli.db = readonly_mount / "ledger.db"
    seed(cli)
    remount_read_only(readonly_mount)
    assert ok(cli("ls", "-q")) == "web-1\n"
    assert ok(cli("verify")).startswith("OK: positions 1-3 verified")
    assert ok(cli("history", "web-1", "--tail", "1", "--nl")).count("\n") == 1
    assert json.loads(ok(cli("checkpoint")))["size"] == 3
    result = cli("rm", "web-1")
    assert result.exit_code == 1 and "Error: " in result.stderr  # refused, with a message, not a traceback


# -- the store factory, --db and -n before the subcommand --------------------------------------


def test_the_cli_opens_stores_through_its_factory(tmp_path: Path) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def factory(target: str, **options: Any) -> ctrledger.Store:
        calls.append((target, options))
        return ctrledger.open(target, **options)

    db = str(tmp_path / "f.db")
    runner = CliRunner()
    assert runner.invoke(main, ["create", "x", "--db", db, "-q"], obj=factory).exit_code == 0
    assert runner.invoke(main, ["ls", "--db", db, "-q"], obj=factory).stdout == "x\n"
    assert runner.invoke(main, ["rm", "x", "--db", db], obj=factory).exit_code == 0
    assert [(t, o["mode"], o["client"]) for t, o in calls] == [(db, "c", "cli"), (db, "r", "cli"), (db, "w", "cli")]


def test_db_and_namespace_before_the_subcommand(cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    ok(cli("--db", str(other), "-n", "team", "create", "x", "-q"))
    assert cli.opens[-1]["target"] == str(other)
    assert ok(cli("--db", str(other), "-n", "team", "ls", "-q")) == "x\n"
    assert ok(cli("--db", str(other), "--namespace", "team", "ls", "-n", "default", "-q")) == ""  # its own wins
    assert not cli.db.exists()  # the environment's store was never touched


# -- output and points ----------------------------------------------------------------------


def test_label_cells_are_unambiguous(cli: Cli) -> None:
    ok(cli("create", "a", "--label", "x=has,comma", "--label", "y=plain", "-q"))
    ok(cli("create", "b", "--label", "x=has", "--label", "comma,y=plain", "-q"))
    cells = ok(cli("ls")).splitlines()[1:]
    assert 'x="has,comma",y=plain' in cells[0]
    assert '"comma,y"=plain,x=has' in cells[1]


def test_audit_takes_positions_and_refuses_reversed_ranges(cli: Cli) -> None:
    seed(cli)
    lines = ok(cli("audit", "-A", "--since", "@1", "--until", "@2")).splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["2"]
    for args in (["audit", "--since", "@3", "--until", "@1"], ["changes", "--since", "@3", "--until", "@1"],
                 ["diff", "web-1", "--since", "@2", "--until", "@1"], ["export", "x.arch", "--since", "@3", "--until",
                                                                        "@1"]):
        result = cli(*args)
        assert result.exit_code == 1, args
        assert "since position 3 is after until position 1" in result.stderr or (
            "since position 2 is after until position 1" in result.stderr), result.stderr
    assert not Path("x.arch").exists()


def test_export_to_stdout_and_import_from_stdin(cli: Cli, tmp_path: Path) -> None:
    seed(cli)
    result = CliRunner().invoke(main, ["export", "-", "--db", str(cli.db)])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("exported 3 events (positions 1-3) to -")
    archive = result.stdout_bytes
    Path("file.ctrlarchive").write_bytes(archive)
    assert ctrledger.verify("file.ctrlarchive").ok
    copy = tmp_path / "copy.db"
    imported = CliRunner().invoke(main, ["import", "-", "--db", str(copy)], input=archive)
    assert imported.exit_code == 0, imported.output
    with ctrledger.open(copy, mode="r") as store, ctrledger.open(cli.db, mode="r") as source:
        assert store.digest() == source.digest()
    assert files(tmp_path) == {"ledger.db", "file.ctrlarchive", "copy.db"}  # no spool left behind


def test_export_to_a_missing_directory_names_it(cli: Cli) -> None:
    seed(cli)
    failed(cli("export", "no/such/dir/x.ctrlarchive"),
           "cannot write no/such/dir/x.ctrlarchive: the directory no/such/dir does not exist: invalid argument")


# -- asks -------------------------------------------------------------------------------------


def test_expected_version_on_writes(cli: Cli) -> None:
    seed(cli)  # web-1 is at version 2
    for args in (["label", "web-1", "a=b"], ["update", "web-1", "--image", "x"], ["rm", "web-1"]):
        result = cli(*args, "--expected-version", "1")
        assert result.exit_code == 1, args
        assert result.stderr == 'Error: container "web-1" is at version 2, not the expected 1: conflict\n'
    assert ok(cli("label", "web-1", "a=b", "--expected-version", "2", "--json")).count('"version": 3') == 1
    assert ok(cli("rm", "web-1", "--expected-version", "3")) == "web-1\n"
    usage_error(cli("rm", "web-1", "--expected-version", "-1"), "Invalid value for '--expected-version'")


def test_namespaces_and_ls_all_namespaces(cli: Cli) -> None:
    seed(cli)
    assert ok(cli("namespaces")) == "NAMESPACE\nbackend\ndefault\n"
    assert json.loads(ok(cli("namespaces", "--json"))) == ["backend", "default"]
    assert ok(cli("ls", "-A", "-q")) == "backend/db-1\ndefault/web-1\n"
    table = ok(cli("ls", "-A")).splitlines()
    assert table[0].split()[:2] == ["NAMESPACE", "ID"]
    assert [line.split()[:2] for line in table[1:]] == [["backend", "db-1"], ["default", "web-1"]]
    assert [(d["namespace"], d["id"]) for d in json.loads(ok(cli("ls", "-A", "--json")))] == [
        ("backend", "db-1"), ("default", "web-1")]
    usage_error(cli("ls", "-A", "-n", "backend"), "Give -n/--namespace or -A/--all-namespaces, not both.")


def test_ls_sort_and_limit(cli: Cli) -> None:
    for name in ("c", "a", "b"):
        ok(cli("create", name, "-q"))
    ok(cli("label", "c", "x=1", "-q"))
    assert ok(cli("ls", "-q")) == "a\nb\nc\n"
    assert ok(cli("ls", "-q", "--sort", "created")) == "c\na\nb\n"
    assert ok(cli("ls", "-q", "--sort", "updated")) == "a\nb\nc\n"
    assert ok(cli("ls", "-q", "--sort", "created", "--limit", "2")) == "c\na\n"
    assert ok(cli("ls", "--nl", "--limit", "0")) == ""
    usage_error(cli("ls", "--sort", "size"), "Invalid value for '--sort'")


def test_history_and_audit_limit_and_tail(cli: Cli) -> None:
    seed(cli)
    versions = [json.loads(line)["version"] for line in ok(cli("history", "web-1", "--nl")).splitlines()]
    assert versions == [1, 2]
    assert [json.loads(x)["version"] for x in ok(cli("history", "web-1", "--nl", "--tail", "1")).splitlines()] == [2]
    assert [json.loads(x)["version"] for x in ok(cli("history", "web-1", "--nl", "--limit", "1")).splitlines()] == [1]
    assert [json.loads(x)["position"] for x in ok(cli("audit", "-A", "--nl", "--tail", "2")).splitlines()] == [2, 3]
    usage_error(cli("history", "web-1", "--limit", "1", "--tail", "1"), "Give --limit or --tail, not both.")


def test_sandbox_and_extensions(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "ext.bin").write_bytes(b"\x01\x02")
    created = json.loads(ok(cli("create", "x", "--sandbox", "pod-1", "--extension", "note", "types/Note", "ext.bin",
                                "--json")))
    assert created["sandbox"] == "pod-1"
    assert created["extensions"] == {"note": {"type_url": "types/Note", "value": "AQI="}}
    result = cli("update", "x", "--extension", "more", "types/More", "-", "--json", input=b"\x03")
    updated = json.loads(ok(result))
    assert set(updated["extensions"]) == {"note", "more"}
    removed = json.loads(ok(cli("update", "x", "--remove-extension", "note", "--json")))
    assert set(removed["extensions"]) == {"more"}


def test_shell_completion_is_clicks() -> None:
    env = {**os.environ, "_CTRLEDGER_COMPLETE": "bash_source"}
    done = subprocess.run([sys.executable, "-m", "ctrledger"], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0
    assert "_ctrledger_completion" in done.stdout
    env = {**os.environ, "_CTRLEDGER_COMPLETE": "bash_complete", "COMP_WORDS": "ctrledger nam", "COMP_CWORD": "1"}
    done = subprocess.run([sys.executable, "-m", "ctrledger"], env=env, capture_output=True, text=True, check=False)
    assert "namespaces" in done.stdout
