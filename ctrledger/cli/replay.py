"""The commands that replay the log: export, import, digest, verify-projections, replay-to.

Each makes one library call and prints what it returns: ``Store.export``, ``ctrledger.import_``,
``Store.digest``, ``Store.verify_projections``, ``ctrledger.replay.replay_to`` (which takes a
progress callback). All work on the whole store (no ``-n``). On a terminal, export, import
and replay-to draw a progress bar on stderr, as rebuild does.

An archive that is corrupt, truncated or of an unknown format is the library's
``ArchiveError``, naming the byte offset of the problem: ``Error: …``, exit status 1, and
nothing imported. ``verify-projections`` prints what it found whether the read models agree
with the log or not; the exit status says which (1, with one ``Error: …`` line, when not).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click

import ctrledger
import ctrledger.replay

from .options import database_options, open_store, output_options
from .output import Format, echo_json
from .points import Point, forms, point_option
from .progress import progress_bar

__all__ = ["COMMANDS", "digest", "export", "import_", "replay_to", "verify_projections"]

_ARCHIVE = click.Path(dir_okay=False, path_type=Path, allow_dash=True)
_EXISTING_ARCHIVE = click.Path(exists=True, dir_okay=False, path_type=Path, allow_dash=True)
STDIO = Path("-")


@contextlib.contextmanager
def _spooled(name: str) -> Iterator[Path]:
    """A path in a temporary directory of its own, removed afterwards (an archive on its way
    to stdout or from stdin: the library reads and writes archives as files)."""
    with tempfile.TemporaryDirectory(prefix="ctrledger-") as tmp:
        yield Path(tmp) / name


def _events(n: int) -> str:
    return f"{n:,} event{'' if n == 1 else 's'}"


def _positions(first: int | None, last: int | None) -> str:
    """``position 3``, ``positions 1-7``, or nothing when there were no events."""
    if first is None or last is None:
        return ""
    return f"position {first}" if first == last else f"positions {first}-{last}"


def export_line(s: ctrledger.ExportSummary) -> str:
    """``exported 7 events (positions 1-7) to FILE: 2,345 bytes``."""
    positions = _positions(s.first, s.last)
    return f"exported {_events(s.events)}{f' ({positions})' if positions else ''} to {s.path}: {s.bytes:,} bytes"


def import_line(s: ctrledger.ImportSummary) -> str:
    """``imported 7 events (positions 1-7, as in the archive)``; resumed or already imported said so."""
    if s.already_imported:
        return f"already imported: nothing to do (archive {s.archive_id[:12]})"
    positions = _positions(s.first, s.last)
    if positions:
        positions = f" ({positions}, {'as in the archive' if s.positions_preserved else 'renumbered'})"
    return f"{'resumed: ' if s.resumed else ''}imported {_events(s.events)}{positions}"


@click.command()
@click.argument("file", type=_ARCHIVE)
@click.option(
    "--since", callback=point_option, metavar="TIME|@POS",
    help=f"Only the events after this point: {forms()}.  [default: the start of the log]",
)
@click.option(
    "--until", callback=point_option, metavar="TIME|@POS",
    help="Only the events up to this point (included).  [default: now]",
)
@click.option(
    "--namespace-filter", "namespaces", multiple=True, metavar="NS",
    help="Only the events of this namespace; repeat for more.  [default: all]",
)
@output_options("text", noun="summary", formats=("json", "nl"))
@database_options
def export(
    file: Path, since: Point | None, until: Point | None, namespaces: tuple[str, ...], fmt: Format, db: str
) -> None:
    """Write the log (or part of it) to the archive FILE; print a summary.

    The archive holds the events exactly as stored, in checksummed chunks,
    from one consistent snapshot of the log; writers are not blocked. FILE
    appears (replacing any file of that name) only once complete. 'import'
    loads it into another store.

    \b
        ctrledger export backup.ctrlarchive
        ctrledger export nightly.ctrlarchive --since @1000

    An archive of every event (no --namespace-filter, no time) keeps its log
    positions when imported, so --since @N continues a copy whose log ends at
    N. --json prints the library's ExportSummary. FILE '-' writes the archive
    to stdout (built in a temporary file first) and the summary to stderr.
    """
    store = open_store(db)
    with contextlib.ExitStack() as stack:
        target = stack.enter_context(_spooled("export.ctrlarchive")) if file == STDIO else file
        with progress_bar("Exporting") as bar:
            summary = store.export(
                target, since=since, until=until, namespaces=list(namespaces) or None, progress=bar,
            )
        if file == STDIO:
            out = sys.stdout.buffer
            with target.open("rb") as archive:
                shutil.copyfileobj(archive, out)
            out.flush()
    to_stderr = file == STDIO
    if to_stderr:
        summary = dataclasses.replace(summary, path="-")
    if fmt == "text":
        click.echo(export_line(summary), err=to_stderr)
    else:
        click.echo(json.dumps(dataclasses.asdict(summary), indent=2 if fmt == "json" else None), err=to_stderr)


@click.command("import")
@click.argument("file", type=_EXISTING_ARCHIVE)
@output_options("text", noun="summary", formats=("json", "nl"))
@database_options
def import_(file: Path, fmt: Format, db: str) -> None:
    """Load the archive FILE (from 'export') into the store; print a summary.

    The whole archive is checked first: a corrupt or truncated one is refused
    with the byte offset of the problem, and nothing is imported. An archive
    of every event continues the store's log and keeps its positions; a
    filtered one is appended after the store's head. Importing an archive
    twice does nothing the second time; an interrupted import continues where
    it stopped when run again. --json prints the library's ImportSummary. FILE
    '-' reads the archive from stdin (into a temporary file first).
    """
    with contextlib.ExitStack() as stack:
        if file == STDIO:
            file = stack.enter_context(_spooled("import.ctrlarchive"))
            with file.open("wb") as spool:
                shutil.copyfileobj(sys.stdin.buffer, spool)
        ctrledger.replay.verify_archive(file)  # refuse a bad archive before the store is opened (and created)
        store = open_store(db, mode="c")
        with progress_bar("Importing") as bar:
            summary = ctrledger.import_(file, into=store, progress=bar)
    if fmt == "text":
        click.echo(import_line(summary))
    else:
        echo_json(dataclasses.asdict(summary), fmt)


@click.command()
@database_options
def digest(db: str) -> None:
    """Print the SHA-256 of the store's read models, in hex.

    The digest covers every read-model table in a canonical order: two stores
    that applied the same log have the same digest, on any machine. Compare
    a copy with its original after an import, or a store before and after a
    rebuild.
    """
    store = open_store(db)
    click.echo(store.digest())


@click.command("verify-projections")
@output_options("text", noun="result", formats=("json", "nl"))
@database_options
def verify_projections(fmt: Format, db: str) -> None:
    """Check the read models against a rebuild from the log; exit 1 if they differ.

    Rebuilds every read model into a scratch file beside the store, up to the
    position the live ones applied, and compares them table by table. Prints
    'OK: ...', or 'DRIFT: ...' with the tables that differ (a read model edited
    behind the store's back, say); 'rebuild' then repairs them. On drift,
    stderr has one 'Error: ...' line too. --json prints the library's
    VerifyResult, the exit status the same.
    """
    store = open_store(db)
    result = store.verify_projections()
    if fmt == "text":
        click.echo(str(result))
    else:
        echo_json(dataclasses.asdict(result), fmt)
    if not result.ok:
        raise click.ClickException(f"the read models differ from the log in {', '.join(result.differences)}")


@click.command("replay-to")
@click.argument("file", type=_ARCHIVE)
@click.option(
    "--as-of", required=True, callback=point_option, metavar="TIME|@POS",
    help=f"The point to replay up to: {forms()}.",
)
@database_options
def replay_to(file: Path, as_of: Point, db: str) -> None:
    """Write the store as it was at a point to the new SQLite file FILE; print its path.

    FILE's log is this store's log up to --as-of, with its hashes, and every
    read model is built from it: '--db FILE' then answers as this store did
    then, without touching it. This store is only read. FILE must not exist.
    """
    store = open_store(db)
    with progress_bar("Replaying") as bar:
        path = ctrledger.replay.replay_to(store, file, as_of=as_of, progress=bar)
    click.echo(str(path))


COMMANDS: tuple[click.Command, ...] = (export, import_, digest, verify_projections, replay_to)
