"""The commands that replay the log: export, import, digest, verify-projections, replay-to, verify --archive.

The harness is ``tests/test_cli.py``'s: a fresh SQLite file, the n-th command of a test runs at
2026-11-21T03:00:00Z plus n seconds. ``seed`` writes four events: web-1, web-2 and db-1 created
in ``default`` (positions 1-3, at t1-t3), then db-1 created in ``team-b`` (position 4, at t4).

An archive is damaged as a disk or a copy would damage it: cut short, or one bit flipped. Byte
offsets come from the format (``docs/reference/archive-format.md``): a 19-byte preamble, then the
header frame, then the chunks (``verify_archive(...).chunk_offsets``).
"""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ctrledger
import ctrledger.cli.progress as progress
import ctrledger.replay
from ctrledger import Position

from .test_cli import Cli, clock_harness, failed, ok, usage_error

PREAMBLE = 19  # "ctrledger-archive" as a msgpack fixstr, then the format version
PREFIX = 45  # a frame's fixed-width prefix; its last 4 bytes are the body's length, big-endian
HEX64 = re.compile(r"[0-9a-f]{64}\n")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    yield clock_harness(tmp_path, monkeypatch)


def seed(cli: Cli) -> None:
    """Four events: web-1, web-2, db-1 in default (positions 1-3), db-1 in team-b (position 4)."""
    for name in ("web-1", "web-2", "db-1"):
        ok(cli("create", name, "--image", "nginx:1", "-q"))
    ok(cli("create", "db-1", "-n", "team-b", "-q"))


def size(path: str) -> str:
    return f"{Path(path).stat().st_size:,}"


def state(db: str | Path) -> tuple[Any, ...]:
    with ctrledger.open(db) as store:
        return store.list(namespace="default"), store.list(namespace="team-b"), store.position


def cut(src: str, dst: str, length: int) -> str:
    Path(dst).write_bytes(Path(src).read_bytes()[:length])
    return dst


# -- export ----------------------------------------------------------------------------------


def test_export_prints_one_line_summary(cli: Cli) -> None:
    seed(cli)
    out = ok(cli("export", "all.ctrlarchive"))
    assert out == f"exported 4 events (positions 1-4) to all.ctrlarchive: {size('all.ctrlarchive')} bytes\n"
    assert ctrledger.replay.verify_archive("all.ctrlarchive").events == 4


@pytest.mark.parametrize("flag", ["--json", "--nl"])
def test_export_json_is_the_librarys_summary(cli: Cli, flag: str) -> None:
    seed(cli)
    out = ok(cli("export", "all.ctrlarchive", flag))
    assert len(out.splitlines()) == (1 if flag == "--nl" else len(out.splitlines()))
    form = json.loads(out)
    assert list(form) == [f.name for f in dataclasses.fields(ctrledger.ExportSummary)]
    info = ctrledger.replay.verify_archive("all.ctrlarchive")
    assert {k: v for k, v in form.items() if k != "seconds"} == {
        "path": "all.ctrlarchive", "archive_id": info.archive_id, "events": 4, "chunks": 1,
        "bytes": Path("all.ctrlarchive").stat().st_size, "first": 1, "last": 4, "complete": True,
    }


@pytest.mark.parametrize(
    ("args", "summary"),
    [
        pytest.param(["--since", "@1", "--until", "@3"], "2 events (positions 2-3)", id="positions"),
        pytest.param(["--until", "@1"], "1 event (position 1)", id="one"),
        pytest.param(["--since", "@4"], "0 events", id="none"),
        pytest.param(["--since", "2026-11-21T03:00:02Z"], "2 events (positions 3-4)", id="time"),
        pytest.param(["--until", "2026-11-21T03:00:02+00:00"], "2 events (positions 1-2)", id="time-until"),
        pytest.param(["--namespace-filter", "team-b"], "1 event (position 4)", id="namespace"),
        pytest.param(["--namespace-filter", "team-b", "--namespace-filter", "default"], "4 events (positions 1-4)",
                     id="namespaces"),
        pytest.param(["--namespace-filter", "nowhere"], "0 events", id="no-such-namespace"),
    ],
)
def test_export_part_of_the_log(cli: Cli, args: list[str], summary: str) -> None:
    seed(cli)
    out = ok(cli("export", "part.ctrlarchive", *args))
    assert out == f"exported {summary} to part.ctrlarchive: {size('part.ctrlarchive')} bytes\n"


def test_export_of_an_empty_store(cli: Cli) -> None:
    cli.new_store()
    assert ok(cli("export", "empty.ctrlarchive")) == (
        f"exported 0 events to empty.ctrlarchive: {size('empty.ctrlarchive')} bytes\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--since", "v2"], "export since takes a time or a Position, not a Version: invalid argument",
                     id="version"),
        pytest.param(["--until", "@9"], "export range after position 0 through 9 is not within the log (head 4): "
                     "invalid argument", id="future"),
        pytest.param(["--since", "@3", "--until", "@2"], "export since position 3 is after until position 2: "
                     "invalid argument", id="backwards"),
    ],
)
def test_export_failures(cli: Cli, args: list[str], message: str) -> None:
    seed(cli)
    failed(cli("export", "x.ctrlarchive", *args), message)
    assert not Path("x.ctrlarchive").exists()
    assert not Path("x.ctrlarchive.partial").exists()


def test_export_usage_errors(cli: Cli) -> None:
    usage_error(cli("export"), "Missing argument 'FILE'")
    usage_error(cli("export", "x", "-n", "team-b"), "No such option")
    Path("adir").mkdir()
    usage_error(cli("export", "adir"), "Invalid value for 'FILE'")


# -- import ----------------------------------------------------------------------------------


def test_round_trip_gives_the_same_digest(cli: Cli) -> None:
    seed(cli)
    ok(cli("export", "all.ctrlarchive"))
    assert ok(cli("import", "all.ctrlarchive", "--db", "copy.db")) == (
        "imported 4 events (positions 1-4, as in the archive)\n"
    )
    original = ok(cli("digest"))
    assert HEX64.fullmatch(original)
    assert ok(cli("digest", "--db", "copy.db")) == original
    assert state("copy.db") == state(cli.db)
    assert ok(cli("ls", "--db", "copy.db", "--nl")) == ok(cli("ls", "--nl"))


def test_import_twice_imports_once(cli: Cli) -> None:
    seed(cli)
    ok(cli("export", "all.ctrlarchive"))
    ok(cli("import", "all.ctrlarchive", "--db", "copy.db"))
    archive_id = ctrledger.replay.verify_archive("all.ctrlarchive").archive_id
    assert ok(cli("import", "all.ctrlarchive", "--db", "copy.db")) == (
        f"already imported: nothing to do (archive {archive_id[:12]})\n"
    )
    assert state("copy.db") == state(cli.db)


def test_import_continues_a_copy_in_increments(cli: Cli) -> None:
    seed(cli)
    ok(cli("export", "first.ctrlarchive", "--until", "@2"))
    ok(cli("export", "rest.ctrlarchive", "--since", "@2"))
    assert ok(cli("import", "first.ctrlarchive", "--db", "copy.db")) == (
        "imported 2 events (positions 1-2, as in the archive)\n"
    )
    assert ok(cli("import", "rest.ctrlarchive", "--db", "copy.db")) == (
        "imported 2 events (positions 3-4, as in the archive)\n"
    )
    assert ok(cli("digest", "--db", "copy.db")) == ok(cli("digest"))


def test_import_of_a_filtered_archive_renumbers(cli: Cli) -> None:
    seed(cli)
    ok(cli("export", "team-b.ctrlarchive", "--namespace-filter", "team-b"))
    ok(cli("create", "other", "--db", "copy.db", "-q"))
    assert ok(cli("import", "team-b.ctrlarchive", "--db", "copy.db")) == "imported 1 event (position 2, renumbered)\n"
    assert ok(cli("ls", "-q", "-n", "team-b", "--db", "copy.db")) == "db-1\n"


@pytest.mark.parametrize("flag", ["--json", "--nl"])
def test_import_json_is_the_librarys_summary(cli: Cli, flag: str) -> None:
    seed(cli)
    ok(cli("export", "all.ctrlarchive"))
    out = ok(cli("import", "all.ctrlarchive", "--db", "copy.db", flag))
    if flag == "--nl":
        assert out.count("\n") == 1
    form = json.loads(out)
    assert list(form) == [f.name for f in dataclasses.fields(ctrledger.ImportSummary)]
    assert {k: v for k, v in form.items() if k != "seconds"} == {
        "archive_id": ctrledger.replay.verify_archive("all.ctrlarchive").archive_id, "events": 4, "chunks": 1,
        "first": 1, "last": 4, "positions_preserved": True, "resumed": False, "already_imported": False,
    }


def test_import_of_a_truncated_archive_names_the_offset_and_imports_nothing(cli: Cli) -> None:
    seed(cli)
    ok(cli("export", "all.ctrlarchive"))
    (chunk,) = ctrledger.replay.verify_archive("all.ctrlarchive").chunk_offsets
    cut("all.ctrlarchive", "short.ctrlarchive", chunk + 50)  # inside the only chunk
    result = cli("import", "short.ctrlarchive", "--db", "copy.db")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith("Error: archive short.ctrlarchive: truncated: ")
    assert result.stderr.endswith(f" (at byte {chunk}): invalid argument\n")
    assert result.stderr.count("\n") == 1
    assert state("copy.db") == ([], [], 0)


def test_import_of_an_archive_cut_inside_its_header(cli: Cli) -> None:
    seed(cli)
    ok(cli("export", "all.ctrlarchive"))
    declared = int.from_bytes(Path("all.ctrlarchive").read_bytes()[PREAMBLE + 41:PREAMBLE + 45], "big")
    cut("all.ctrlarchive", "short.ctrlarchive", PREAMBLE + PREFIX + 15)  # 15 bytes of the header's body
    failed(
        cli("import", "short.ctrlarchive", "--db", "copy.db"),
        f"archive short.ctrlarchive: truncated: the frame declares {declared} bytes of body but only 15 remain "
        f"(at byte {PREAMBLE}): invalid argument",
    )


def test_import_of_a_damaged_archive_names_the_chunk(cli: Cli) -> None:
    seed(cli)
    ok(cli("export", "all.ctrlarchive"))
    (chunk,) = ctrledger.replay.verify_archive("all.ctrlarchive").chunk_offsets
    data = bytearray(Path("all.ctrlarchive").read_bytes())
    data[chunk + 100] ^= 0x01
    Path("damaged.ctrlarchive").write_bytes(bytes(data))
    result = cli("import", "damaged.ctrlarchive", "--db", "copy.db")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: archive damaged.ctrlarchive: checksum mismatch in chunk #0 ")
    assert result.stderr.endswith(f"(at byte {chunk}): invalid argument\n")
    assert state("copy.db") == ([], [], 0)


def test_import_that_does_not_continue_the_log_fails(cli: Cli) -> None:
    seed(cli)
    ok(cli("export", "rest.ctrlarchive", "--since", "@2"))
    result = cli("import", "rest.ctrlarchive", "--db", "copy.db")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert state("copy.db") == ([], [], 0)


def test_import_usage_errors(cli: Cli) -> None:
    usage_error(cli("import"), "Missing argument 'FILE'")
    usage_error(cli("import", "missing.ctrlarchive"), "Invalid value for 'FILE'")
    usage_error(cli("import", "x", "-n", "team-b"), "No such option")


def test_import_of_a_file_that_is_no_archive(cli: Cli) -> None:
    Path("notes.txt").write_text("hello\n")
    result = cli("import", "notes.txt")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: archive notes.txt: ") and "(at byte 0)" in result.stderr


# -- digest ------------------------------------------------------------------------------------


def test_digest_is_one_hex_line_that_follows_the_read_models(cli: Cli) -> None:
    cli.new_store()
    empty = ok(cli("digest"))
    assert HEX64.fullmatch(empty)
    seed(cli)
    seeded = ok(cli("digest"))
    assert HEX64.fullmatch(seeded) and seeded != empty
    with ctrledger.open(cli.db) as store:
        assert seeded == store.digest() + "\n"
    assert ok(cli("digest")) == seeded  # reading changes nothing
    ok(cli("rebuild"))
    assert ok(cli("digest")) == seeded


def test_digest_takes_no_output_format(cli: Cli) -> None:
    usage_error(cli("digest", "--json"), "No such option")
    usage_error(cli("digest", "-n", "team-b"), "No such option")


# -- verify-projections --------------------------------------------------------------------


def test_verify_projections_ok(cli: Cli) -> None:
    seed(cli)
    live = ok(cli("digest"))[:12]
    assert ok(cli("verify-projections")) == (
        f"OK: the read model at position 4 equals a rebuild from the log ({live})\n"
    )


def test_verify_projections_names_a_hand_edited_table(cli: Cli) -> None:
    seed(cli)
    with sqlite3.connect(cli.db) as conn:
        conn.execute("DELETE FROM containers WHERE id='web-2'")
    conn.close()
    result = cli("verify-projections")
    assert result.exit_code == 1
    assert result.stdout == (
        "DRIFT: the read model at position 4 differs from a rebuild from the log in containers\n"
    )
    assert result.stderr == "Error: the read models differ from the log in containers\n"
    form = json.loads(cli("verify-projections", "--json").stdout)
    assert (form["ok"], form["position"], form["differences"]) == (False, 4, ["containers"])
    assert form["live"] != form["rebuilt"]
    ok(cli("rebuild"))
    assert ok(cli("verify-projections")).startswith("OK: ")


@pytest.mark.parametrize("flag", ["--json", "--nl"])
def test_verify_projections_json_is_the_librarys_result(cli: Cli, flag: str) -> None:
    seed(cli)
    form = json.loads(ok(cli("verify-projections", flag)))
    digest = ok(cli("digest")).strip()
    assert form == {"ok": True, "position": 4, "live": digest, "rebuilt": digest, "differences": []}


# -- replay-to ---------------------------------------------------------------------------------


def test_replay_to_writes_the_past_in_a_new_file(cli: Cli) -> None:
    seed(cli)
    assert ok(cli("replay-to", "at-2.db", "--as-of", "@2")) == "at-2.db\n"
    assert ok(cli("ls", "--db", "at-2.db", "--nl")) == ok(cli("ls", "--as-of", "@2", "--nl"))
    with ctrledger.open("at-2.db") as then:
        assert then.position == 2
    assert state(cli.db)[2] == 4  # the original is only read


def test_replay_to_a_time(cli: Cli) -> None:
    seed(cli)
    ok(cli("replay-to", "then.db", "--as-of", "2026-11-21T03:00:03Z"))
    assert ok(cli("ls", "-q", "--db", "then.db")) == "db-1\nweb-1\nweb-2\n"
    assert ok(cli("ls", "-q", "-n", "team-b", "--db", "then.db")) == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--as-of", "@9"], "as_of position 9 is in the future: the log's head is 4: invalid argument",
                     id="future"),
        pytest.param(["--as-of", "v2"], "replay_to takes a time or a Position, not a Version: invalid argument",
                     id="version"),
    ],
)
def test_replay_to_failures(cli: Cli, args: list[str], message: str) -> None:
    seed(cli)
    failed(cli("replay-to", "then.db", *args), message)
    assert not Path("then.db").exists()


def test_replay_to_never_overwrites(cli: Cli) -> None:
    seed(cli)
    Path("then.db").write_text("precious")
    failed(cli("replay-to", "then.db", "--as-of", "@1"), "then.db: already exists; replay_to writes a new file")
    assert Path("then.db").read_text() == "precious"


def test_replay_to_usage_errors(cli: Cli) -> None:
    usage_error(cli("replay-to", "then.db"), "Missing option '--as-of'")
    usage_error(cli("replay-to", "--as-of", "@1"), "Missing argument 'FILE'")


# -- a progress bar on a terminal only -------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "label"),
    [
        pytest.param(["export", "p.ctrlarchive"], "Exporting", id="export"),
        pytest.param(["import", "all.ctrlarchive", "--db", "copy.db"], "Importing", id="import"),
        pytest.param(["replay-to", "then.db", "--as-of", "@3"], "Replaying", id="replay-to"),
    ],
)
def test_progress_bar_on_a_terminal_only(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, args: list[str], label: str
) -> None:
    seed(cli)
    with ctrledger.open(cli.db) as store:
        store.export("all.ctrlarchive")
    plain = cli(*args)
    assert (plain.exit_code, plain.stderr) == (0, "")  # CliRunner's stderr is no terminal: no bar
    for made in ("p.ctrlarchive", "then.db", "copy.db"):
        Path(made).unlink(missing_ok=True)
    monkeypatch.setattr(progress, "on_terminal", lambda: True)
    drawn = cli(*args)
    assert (drawn.exit_code, drawn.stdout) == (0, plain.stdout)
    assert drawn.stderr == f"{label}\n"  # click draws only the label when the stream is not a tty


def test_progress_bar_follows_the_callback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "on_terminal", lambda: False)
    with progress.progress_bar("x") as none:
        assert none is None
    monkeypatch.setattr(progress, "on_terminal", lambda: True)
    with progress.progress_bar("x") as bar:
        assert bar is not None
        bar(0, 0)  # an unknown total (an export with a time bound) is accepted
        bar(5, 0)


# -- verify --archive ------------------------------------------------------------------------


def test_verify_archive_checks_the_events_without_a_database(cli: Cli, tmp_path: Path) -> None:
    seed(cli)
    ok(cli("export", "all.ctrlarchive"))
    Path("cp.json").write_text(ok(cli("checkpoint")))
    env = {"CTRLEDGER_DATABASE_URL": "absent.db"}
    assert ok(cli("verify", "--archive", "all.ctrlarchive", env=env)) == "OK: positions 1-4 verified\n"
    assert ok(cli("verify", "--archive", "all.ctrlarchive", "--checkpoint", "cp.json", env=env)) == (
        "OK: positions 1-4 verified, consistent with the checkpoint at 4\n"
    )
    assert not (tmp_path / "absent.db").exists()


@pytest.mark.parametrize("flag", ["--json", "--nl"])
def test_verify_archive_json_is_the_report(cli: Cli, flag: str) -> None:
    seed(cli)
    ok(cli("export", "all.ctrlarchive"))
    form = json.loads(ok(cli("verify", "--archive", "all.ctrlarchive", flag)))
    assert form == json.loads(ok(cli("verify", flag)))  # the archive holds the whole log: the same report


def test_verify_archive_truncated_names_the_offset(cli: Cli) -> None:
    seed(cli)
    ok(cli("export", "all.ctrlarchive"))
    (chunk,) = ctrledger.replay.verify_archive("all.ctrlarchive").chunk_offsets
    cut("all.ctrlarchive", "short.ctrlarchive", chunk + 50)
    result = cli("verify", "--archive", "short.ctrlarchive")
    assert result.exit_code == 1
    assert result.stdout.startswith("FAILED at position 0: unreadable: archive short.ctrlarchive: truncated: ")
    assert f"(at byte {chunk})" in result.stdout.splitlines()[0]
    assert result.stderr == "Error: the log failed verification\n"
    form = json.loads(cli("verify", "--archive", "short.ctrlarchive", "--json").stdout)
    assert form["ok"] is False
    assert [p["kind"] for p in form["problems"]] == ["unreadable"]
    assert f"(at byte {chunk})" in form["problems"][0]["detail"]


def test_verify_archive_cut_inside_its_header(cli: Cli) -> None:
    seed(cli)
    ok(cli("export", "all.ctrlarchive"))
    cut("all.ctrlarchive", "short.ctrlarchive", PREAMBLE + PREFIX + 15)
    result = cli("verify", "--archive", "short.ctrlarchive")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith("Error: archive short.ctrlarchive: truncated: ")
    assert result.stderr.endswith(f"(at byte {PREAMBLE}): invalid argument\n")


def test_verify_archive_of_a_file_that_is_no_archive(cli: Cli) -> None:
    seed(cli)
    failed(cli("verify", "--archive", str(cli.db)), f"archive {cli.db}: not a ctrledger archive (no "
           "'ctrledger-archive' preamble) (at byte 0): invalid argument")


def test_verify_archive_of_part_of_the_log_against_a_checkpoint(cli: Cli) -> None:
    seed(cli)
    ok(cli("export", "rest.ctrlarchive", "--since", "@2"))
    assert ok(cli("verify", "--archive", "rest.ctrlarchive")) == "OK: positions 3-4 verified\n"
    Path("cp.json").write_text(ok(cli("checkpoint")))
    result = cli("verify", "--archive", "rest.ctrlarchive", "--checkpoint", "cp.json")
    assert result.exit_code == 1
    assert result.stdout.startswith("FAILED at position 0: incomplete: ")
    assert result.stderr == "Error: the log failed verification\n"


def test_verify_archive_usage_errors(cli: Cli) -> None:
    seed(cli)
    ok(cli("export", "all.ctrlarchive"))
    usage_error(cli("verify", "--archive", "missing.ctrlarchive"), "Invalid value for '--archive'")
    usage_error(cli("verify", "--archive", "all.ctrlarchive", "--db", "x.db"), "Give --db or --archive, not both")
    usage_error(cli("verify", "--archive", "all.ctrlarchive", "--public-key", "all.ctrlarchive"),
                "--public-key needs --checkpoint")


def test_library_and_cli_agree_on_export(cli: Cli) -> None:
    seed(cli)
    ok(cli("export", "cli.ctrlarchive", "--until", "@3"))
    with ctrledger.open(cli.db) as store:
        store.export("lib.ctrlarchive", until=Position(3))
    assert Path("cli.ctrlarchive").read_bytes() == Path("lib.ctrlarchive").read_bytes()
