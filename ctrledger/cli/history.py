"""The commands on the past: history, diff, changes, audit, and rebuild.

Each parses its arguments (points with :func:`~.points.point_option`), makes one store call
and prints what it returns: a table by default, the records' own ``to_dict()`` with
``--json``/``--nl``. Which points are allowed where, what exists when, and which event kinds
there are, the store decides.
"""

from __future__ import annotations

import collections
import itertools
import json
from collections.abc import Iterable
from typing import Any, TypeVar

import click
from click.core import ParameterSource

import ctrledger
import ctrledger.replay

from .options import database_options, open_store, output_options, store_options
from .output import Format, emit_records, iso_time, render_changes, render_rows, render_value
from .points import Point, forms, point_option
from .progress import progress_bar

__all__ = ["COMMANDS", "audit", "changes", "diff", "history", "rebuild"]

HISTORY_COLUMNS = ("VERSION", "INC", "POS", "KIND", "TIME", "ACTOR", "REASON", "CHANGES")
CHANGES_COLUMNS = ("ID", "STATUS", "CHANGES")
AUDIT_COLUMNS = ("POS", "TIME", "NAMESPACE", "ID", "VERSION", "KIND", "ACTOR", "REASON", "CLIENT")
DIFF_COLUMNS = ("FIELD", "BEFORE", "AFTER")

_NOW = "  [default: now]"


def _time(entry: ctrledger.HistoryEntry | ctrledger.AuditRecord) -> str:
    return iso_time(entry.recorded_at, "seconds") or ""


def _history_row(e: ctrledger.HistoryEntry) -> list[str]:
    return [
        str(e.version), str(e.incarnation), str(e.position), e.kind, _time(e), e.actor, e.reason,
        render_changes(e.changes),
    ]


def _audit_row(a: ctrledger.AuditRecord) -> list[str]:
    return [str(a.position), _time(a), a.namespace, a.id, str(a.version), a.kind, a.actor, a.reason, a.client]


R = TypeVar("R")


def _window_options(f: Any) -> Any:
    """``--limit N`` (the first N records) and ``--tail N`` (the last N), at most one of them."""
    f = click.option("--tail", type=click.IntRange(min=0), metavar="N", help="Print only the last N events.")(f)
    return click.option("--limit", type=click.IntRange(min=0), metavar="N", help="Print only the first N events.")(f)


def _window(records: Iterable[R], limit: int | None, tail: int | None) -> Iterable[R]:
    if limit is not None and tail is not None:
        raise click.UsageError("Give --limit or --tail, not both.")
    if limit is not None:
        return itertools.islice(records, limit)
    if tail is not None:
        return collections.deque(records, maxlen=tail)  # streamed through: memory for N records only
    return records


@click.command()
@click.argument("container_id", metavar="ID")
@_window_options
@output_options("table", noun="event", quiet=False)
@store_options
def history(
    container_id: str, limit: int | None, tail: int | None, fmt: Format, db: str, namespace: str
) -> None:
    """Show every change to the container ID, oldest first.

    One line per event of the log: the container's VERSION after it, its
    incarnation INC (a deleted ID created again starts the next one), the log
    position POS, the event KIND, when (UTC), who and why, and what changed:

    \b
        +labels.env=prod           set (it was absent)
        -labels.tier               removed
        image: nginx:1 -> nginx:2  changed

    A spec shows as its type and size, a value with spaces or commas in quotes.
    The VERSION and POS columns are the vN and @N points of --as-of and --since.
    --limit N shows the first N events, --tail N the last N.
    """
    store = open_store(db)
    emit_records(
        _window(store.history(container_id, namespace=namespace), limit, tail), fmt,
        columns=HISTORY_COLUMNS, row=_history_row, to_dict=ctrledger.HistoryEntry.to_dict,
    )


@click.command()
@click.argument("container_id", metavar="ID")
@click.option(
    "--since", required=True, callback=point_option, metavar="TIME|@POS|vN",
    help=f"Compare from this point: {forms(version=True)}.",
)
@click.option("--until", callback=point_option, metavar="TIME|@POS|vN", help="Compare up to this point." + _NOW)
@output_options("table", noun="diff", quiet=False)
@store_options
def diff(container_id: str, since: Point, until: Point | None, fmt: Format, db: str, namespace: str) -> None:
    """Show how the container ID changed between two points.

    The first line is 'ID: STATUS', one of created, deleted, recreated (deleted
    and created again in between), changed or unchanged; then each changed field
    with its value BEFORE and AFTER (∅: absent). --json prints the container at
    both points as well.
    """
    store = open_store(db)
    d = store.diff(container_id, namespace=namespace, since=since, until=until)
    if fmt == "table":
        click.echo(f"{d.id}: {d.status}")
        if d.changes:
            click.echo(render_rows(DIFF_COLUMNS, ([c.field, render_value(c.old), render_value(c.new)]
                                                  for c in d.changes)))
    else:
        click.echo(json.dumps(d.to_dict(), indent=2 if fmt == "json" else None))


@click.command()
@click.argument("filters", nargs=-1, metavar="[FILTER]...")
@click.option(
    "--since", required=True, callback=point_option, metavar="TIME|@POS",
    help=f"Changes after this point: {forms()}.",
)
@click.option("--until", callback=point_option, metavar="TIME|@POS", help="Changes up to this point." + _NOW)
@output_options("table", noun="change")
@store_options
def changes(
    filters: tuple[str, ...], since: Point, until: Point | None, fmt: Format, db: str, namespace: str
) -> None:
    """List the containers that changed between two points, by ID.

    Each with its STATUS (created, deleted, recreated or changed) and its field
    changes, written as 'history' writes them. With FILTERs (as 'ls' takes
    them), only containers that matched one at either point.
    """
    store = open_store(db)
    emit_records(
        store.changes(namespace=namespace, since=since, until=until, filters=list(filters)), fmt,
        columns=CHANGES_COLUMNS, row=lambda c: [c.id, c.status, render_changes(c.changes)],
        to_dict=ctrledger.Change.to_dict, ident=lambda c: c.id,
    )


@click.command()
@click.option(
    "--actor", "actors", multiple=True, metavar="ACTOR", help="Events by this actor; repeat for any of several.",
)
@click.option(
    "--since", callback=point_option, metavar="TIME|@POS",
    help=f"Events at or after this time, or after the event at @POS: {forms()}.",
)
@click.option(
    "--until", callback=point_option, metavar="TIME|@POS", help="Events at or before this time, or up to @POS." + _NOW
)
@click.option(
    "--kind", "kinds", multiple=True, metavar="KIND",
    help="Events of this kind, such as Created, LabelsChanged, Deleted; repeat for any of several.",
)
@click.option("--id", "container_id", metavar="ID", help="Events of this container ID.")
@click.option("--correlation-id", metavar="ID", help="Events of one operation.")
@click.option("--client", metavar="NAME", help="Events written through this client (cli, library, ...).")
@click.option("--reason", metavar="TEXT", help="Events with exactly this reason.")
@click.option(
    "-A", "--all-namespaces", is_flag=True, help="Events of every namespace, not only the one of -n.",
)
@_window_options
@output_options("table", noun="event", quiet=False)
@store_options
def audit(
    actors: tuple[str, ...],
    since: Point | None,
    until: Point | None,
    kinds: tuple[str, ...],
    container_id: str | None,
    correlation_id: str | None,
    client: str | None,
    reason: str | None,
    all_namespaces: bool,
    limit: int | None,
    tail: int | None,
    fmt: Format,
    db: str,
    namespace: str,
) -> None:
    """Show who did what, when and why: the events of the log, in order.

    Every option given must hold; without any, every event of the namespace is
    listed. An unknown KIND is an error that lists the known ones.
    """
    ctx = click.get_current_context()
    if all_namespaces and ctx.get_parameter_source("namespace") == ParameterSource.COMMANDLINE:
        raise click.UsageError("Give -n/--namespace or -A/--all-namespaces, not both.")
    store = open_store(db)
    records = store.audit(
        actor=list(actors) or None, since=since, until=until, kinds=list(kinds) or None,
        namespace=None if all_namespaces else namespace, id=container_id, correlation_id=correlation_id,
        client=client, reason=reason,
    )
    emit_records(_window(records, limit, tail), fmt, columns=AUDIT_COLUMNS, row=_audit_row,
                 to_dict=ctrledger.AuditRecord.to_dict)


@click.command()
@database_options
def rebuild(db: str) -> None:
    """Rebuild the read models from the log; print how many events it read.

    The models are built again from every event, beside the live ones, then
    swapped in at once: other readers see the old models until then, and an
    interrupted rebuild leaves them as they were. On a terminal, a progress bar
    on stderr shows how far it got; otherwise it prints one line when done.
    """
    store = open_store(db, mode="w")
    with progress_bar("Rebuilding") as bar:
        count = ctrledger.replay.rebuild(store, progress=bar) if bar is not None else ctrledger.replay.rebuild(store)
    click.echo(f"rebuilt {count} event{'' if count == 1 else 's'}")


COMMANDS: tuple[click.Command, ...] = (history, diff, changes, audit, rebuild)
