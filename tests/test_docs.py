"""The docs are tested: the CLI reference is generated, every command is documented, snippets run.

* ``docs/reference/cli.md`` must equal a fresh ``scripts/gen_cli_reference.py`` generation and
  have a section per command.
* ``docs/cli.md`` must show every command in a tested snippet.
* Every ```console block of ``docs/cli.md`` runs, in order, as one session in an empty
  directory. A ``$ `` line is a command; the lines after it, up to the next ``$ `` line or the
  end of the block, are its expected output (stdout and stderr, as a terminal shows them).
  ``ctrledger …`` commands (optionally after ``VAR=value`` assignments) run through click's
  CliRunner, with the clock fixed per command: the n-th command of the session runs at
  2026-11-21T09:00:00Z plus n minutes, and relative points (``--as-of 15m``) count back from
  it; the OS user, the default actor, is ``sam``. A ``ctrledger`` command may end in
  ``> FILE``: its stdout is written to FILE and only its stderr is shown. Any other command
  runs with ``bash -c`` in the same directory (``echo … > file``, ``sqlite3``, ``openssl``).
  Output with an ``Error:`` line must come with a non-zero exit status, other output with
  status 0. In expected output, ``…`` stands for any text within its line: for what depends on
  the directory the session runs in or on random IDs (an archive's size, a digest). Blocks in
  other languages (```bash, ```json) are not run.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner

import ctrledger
import ctrledger.cli.points
from ctrledger.cli import main as cli

ROOT = Path(__file__).resolve().parent.parent
HOWTO = ROOT / "docs" / "cli.md"
REFERENCE = ROOT / "docs" / "reference" / "cli.md"
START = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
DOC_USER = "sam"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cli_reference", ROOT / "scripts" / "gen_cli_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
COMMANDS = sorted(cli.commands)


# -- the reference ------------------------------------------------------------


def test_reference_is_generated_from_the_help() -> None:
    assert REFERENCE.read_text() == GEN.render(), "run: python scripts/gen_cli_reference.py"


def test_generator_check_mode_agrees() -> None:
    assert GEN.main(["--check"]) == 0


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_a_reference_section(name: str) -> None:
    assert f"\n## ctrledger {name}\n" in REFERENCE.read_text()


def test_reference_lists_exactly_the_commands() -> None:
    assert GEN.commands() == COMMANDS


# -- the how-to ---------------------------------------------------------------


@dataclass
class Step:
    command: str
    expected: str
    line: int


def console_steps(text: str) -> list[Step]:
    """The ``$ `` commands of every ```console block of ``text``, with their expected output."""
    steps: list[Step] = []
    for block in re.finditer(r"^```console\n(.*?)^```$", text, flags=re.M | re.S):
        first_line = text.count("\n", 0, block.start()) + 2
        current: Step | None = None
        for offset, line in enumerate(block.group(1).splitlines()):
            if line.startswith("$ "):
                current = Step(line[2:], "", first_line + offset)
                steps.append(current)
            else:
                assert current is not None, f"docs/cli.md:{first_line + offset}: output before any '$ ' command"
                current.expected += line + "\n"
    return steps


STEPS = console_steps(HOWTO.read_text())


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_is_in_a_tested_snippet(name: str) -> None:
    assert any(re.match(rf"(\w+=\S+ )*ctrledger {name}\b", s.command) for s in STEPS), (
        f"docs/cli.md has no ```console snippet running 'ctrledger {name}'"
    )


class DocClock:
    """The session's clock: fixed during a command, one minute later for the next."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DocClock]:
    clock = DocClock()
    monkeypatch.setattr(ctrledger.cli.points, "now", clock)
    monkeypatch.setenv("LOGNAME", DOC_USER)  # getpass.getuser() reads it first
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CTRLEDGER_DATABASE_URL", raising=False)
    monkeypatch.delenv("CTRLEDGER_NAMESPACE", raising=False)
    yield clock


def run_step(step: Step, clock: DocClock) -> tuple[int, str]:
    words = shlex.split(step.command)
    env: dict[str, str | None] = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    if words and words[0] == "ctrledger":
        target = None
        if len(words) > 2 and words[-2] == ">":
            target, words = words[-1], words[:-2]
        assert not set(words) & {"|", ">", "<", "&&", "||", ";"}, "ctrledger steps run without a shell"

        def open_with_clock(target: Any, **options: Any) -> ctrledger.Store:  # the CLI's store factory
            return ctrledger.open(target, clock=clock, **options)

        result = CliRunner().invoke(
            cli, words[1:], env=env, catch_exceptions=False, prog_name="ctrledger", obj=open_with_clock
        )
        if target is not None:
            Path(target).write_text(result.stdout)
            return result.exit_code, result.stderr
        return result.exit_code, result.output
    proc = subprocess.run(["bash", "-c", step.command], capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def matches(output: str, expected: str) -> bool:
    """Whether ``output`` is ``expected``, where each ``…`` of a line stands for any text within it."""
    lines, wanted = output.rstrip("\n").split("\n"), expected.rstrip("\n").split("\n")
    return len(lines) == len(wanted) and all(
        re.fullmatch(".*".join(map(re.escape, want.split("…"))), line) for line, want in zip(lines, wanted, strict=True)
    )


@pytest.mark.parametrize(
    ("output", "expected", "result"),
    [
        ("a 1,234 b\n", "a … b\n", True),
        ("a 1,234 b", "a … b", True),
        ("a b", "a … b", False),
        ("a 1\nb\n", "a …", False),
        ("a 1\nx 2 b\n", "a …\n… b", True),
        ("a 1\nb 2\n", "a …\nc …", False),
        ("same\n", "same\n", True),
        ("a.b", "a…", True),
        ("a(b)", "a(b)", True),
    ],
)
def test_ellipsis_matches_within_a_line(output: str, expected: str, result: bool) -> None:
    assert matches(output, expected) is result


def test_howto_snippets_run(session: DocClock) -> None:
    assert STEPS, "docs/cli.md has no ```console blocks"
    for n, step in enumerate(STEPS, start=1):
        session.now = START + timedelta(minutes=n)
        status, output = run_step(step, session)
        where = f"docs/cli.md:{step.line}: $ {step.command}"
        if "…" in step.expected:
            assert matches(output, step.expected), f"{where}\n{output}"
        else:
            assert output.rstrip("\n") == step.expected.rstrip("\n"), where
        failed = any(line.startswith("Error:") for line in step.expected.splitlines())
        assert (status != 0) == failed, f"{where}: exit status {status}"
