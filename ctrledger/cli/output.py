"""How the CLI shows containers and history records: JSON, newline-delimited JSON, IDs, tables.

The JSON form of a container is the library's (``ctrledger.domain.history.to_json_value``),
the same one the history records' ``to_dict()`` use for ``before``/``after``::

    {"id": "web-1", "labels": {"env": "prod"}, "image": "docker.io/library/nginx:1.27",
     "runtime": {"name": "io.containerd.runc.v2", "options": null},
     "spec": {"type_url": "types.containerd.io/opencontainers/runtime-spec/1/Spec", "value": "e30="},
     "snapshotter": "", "snapshot_key": "", "extensions": {}, "sandbox": "",
     "created_at": "2026-11-21T03:00:01Z", "updated_at": "2026-11-21T03:00:01Z",
     "version": 1}

Payloads (``runtime.options``, ``spec``, each extension) are ``{"type_url", "value"}`` (the
bytes in base64) or ``null``. Times are UTC ISO-8601 with a ``Z`` (microseconds shown when
not zero). Labels and extensions keep the store's order.

The table has the columns of ``ctr containers ls`` and a little more: ID, IMAGE, RUNTIME,
LABELS (``k=v`` joined by commas, a key or value JSON-quoted when it holds a comma, a quote,
a space or, in a key, ``=``: ``"has,comma"``), VERSION, UPDATED (UTC, to the second), and STATUS, as
``crictl ps -a`` words it (``render_status``):

================================  =======================================
History records (``HistoryEntry``, ``Change``, ``AuditRecord``, ``Diff``) are printed as the
library's ``to_dict()`` for ``--json``/``--nl``, and as tables whose columns each command
names. A field change in a table cell (``render_change``):

=============================  =======================================
``+labels.env=prod``           the field was set (it was absent)
``-labels.tier``               the field was removed (or the container deleted)
``image: nginx:1 -> nginx:2``  the field changed
=============================  =======================================

and a value (``render_value``): a Payload as ``<type_url> (<n> bytes)``, a Runtime as its
name (with its options' Payload in brackets when it has options), a time as ISO-8601 UTC
(``2026-11-21T03:12:00Z``), a flag as ``true``/``false``, a map or list (resources) as compact
JSON, an absent value as ``∅``,
a string as itself, or JSON-quoted when it is empty or holds a space, a comma, a quote or
``∅`` (``""``, ``"a b"``). Several changes are joined by ``, ``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import click

import ctrledger

__all__ = [
    "FORMATS",
    "Format",
    "container_to_dict",
    "echo_json",
    "echo_json_array",
    "emit",
    "emit_namespaced",
    "emit_records",
    "iso_time",
    "label_cell",
    "render_change",
    "render_changes",
    "render_rows",
    "render_status",
    "render_table",
    "render_value",
]

Format = Literal["table", "json", "nl", "quiet", "text"]
FORMATS: tuple[Format, ...] = ("table", "json", "nl", "quiet")
"""The formats a flag chooses; ``text`` is the plain lines of a command that prints no table."""

COLUMNS = ("ID", "IMAGE", "RUNTIME", "LABELS", "VERSION", "UPDATED", "STATUS")


def iso_time(ts: datetime | None, timespec: str = "microseconds") -> str | None:
    """``ts`` in UTC as ISO-8601 with a ``Z`` (``None`` stays ``None``)."""
    if ts is None:
        return None
    return ts.astimezone(UTC).replace(tzinfo=None).isoformat(timespec=timespec) + "Z"


def container_to_dict(c: ctrledger.Container) -> dict[str, Any]:
    """The JSON-able form of ``c``: the library's, as in ``Diff.to_dict()`` (see the module docstring)."""
    from ctrledger.domain.history import to_json_value  # on first use: the CLI starts without the domain

    form: dict[str, Any] = to_json_value(c)
    return form


def echo_json(value: Any, fmt: Format) -> None:
    """Print one JSON value: indented for ``json``, on one line for ``nl``."""
    click.echo(json.dumps(value, indent=2 if fmt == "json" else None))


def _printable(text: str) -> str:
    """``text`` with control and other unprintable characters escaped, so a cell stays on its line."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


def _span(since: datetime | None, now: datetime) -> str:
    seconds = 0 if since is None else max(0, int((now - since).total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def render_status(status: ctrledger.Status, now: datetime) -> str:
    """A container's status for the STATUS column (see the module docstring)."""
    if status.state == "RUNNING":
        return "Paused" if status.paused else f"Running {_span(status.started_at, now)}"
    if status.state == "EXITED":
        reason = f" {status.reason}" if status.reason else ""
        return f"Exited ({status.exit_code}){reason} {_span(status.finished_at, now)} ago"
    if status.state == "CREATED":
        return f"Created {_span(status.created_at, now)} ago"
    return status.state.capitalize()


_BARE_KEY = re.compile(r'[^\s,="]+')
_BARE_LABEL_VALUE = re.compile(r'[^\s,"]+')


def label_cell(labels: Mapping[str, str]) -> str:
    """``k=v`` joined by commas, sorted by key; a key or value holding a comma, a quote or a
    space (or ``=``, in a key), or empty, is JSON-quoted, so the cell reads back unambiguously."""
    def quoted(text: str, bare: re.Pattern[str]) -> str:
        return text if bare.fullmatch(text) else json.dumps(text, ensure_ascii=False)

    return ",".join(f"{quoted(k, _BARE_KEY)}={quoted(labels[k], _BARE_LABEL_VALUE)}" for k in sorted(labels))


def _row(c: ctrledger.Container, now: datetime) -> list[str]:
    labels = label_cell(c.labels)
    return [c.id, c.image, c.runtime.name, labels, str(c.version), iso_time(c.updated_at, "seconds") or "",
            render_status(c.status, now)]


def render_rows(columns: Sequence[str], cells: Iterable[Sequence[str]]) -> str:
    """An aligned table: the header line ``columns``, then a line per row of ``cells``.

    Unprintable characters are escaped and an empty cell shows ``-``.
    """
    rows = [list(columns), *([_printable(cell) or "-" for cell in row] for row in cells)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def render_table(containers: Sequence[ctrledger.Container], now: datetime | None = None) -> str:
    """The containers as an aligned table with a header line (just the header when empty);
    STATUS durations count to ``now`` (default: the system clock)."""
    at = now if now is not None else datetime.now(UTC)
    return render_rows(COLUMNS, (_row(c, at) for c in containers))


def emit(
    containers: Iterable[ctrledger.Container], fmt: Format, *, single: bool = False, now: datetime | None = None
) -> None:
    """Print ``containers`` to stdout in ``fmt``; ``single``: ``--json`` prints one object, not a list;
    ``now``: what the table's STATUS durations count to.

    Every format but the table (which needs its column widths) prints as records arrive,
    so a streamed ``Store.scan`` never sits in memory.
    """
    if fmt == "quiet":
        for c in containers:
            click.echo(c.id)
    elif fmt == "nl":
        for c in containers:
            click.echo(json.dumps(container_to_dict(c)))
    elif fmt == "json" and single:
        dicts = [container_to_dict(c) for c in containers]
        click.echo(json.dumps(dicts[0] if len(dicts) == 1 else dicts, indent=2))
    elif fmt == "json":
        echo_json_array(container_to_dict(c) for c in containers)
    else:
        click.echo(render_table(list(containers), now))


def emit_namespaced(
    pairs: Iterable[tuple[str, ctrledger.Container]], fmt: Format, *, now: datetime | None = None
) -> None:
    """Containers of several namespaces (``ls -A``): a NAMESPACE column first; ``namespace`` in
    each JSON object; ``-q`` prints ``namespace/id`` (neither holds a ``/``)."""
    if fmt == "quiet":
        for ns, c in pairs:
            click.echo(f"{ns}/{c.id}")
    elif fmt in ("nl", "json"):
        dicts = ({"namespace": ns, **container_to_dict(c)} for ns, c in pairs)
        if fmt == "nl":
            for d in dicts:
                click.echo(json.dumps(d))
        else:
            echo_json_array(dicts)
    else:
        at = now if now is not None else datetime.now(UTC)
        click.echo(render_rows(("NAMESPACE", *COLUMNS), ([ns, *_row(c, at)] for ns, c in pairs)))


# -- history records ----------------------------------------------------------------

R = TypeVar("R")

ABSENT = "\u2205"  # ∅
_BARE = re.compile(r'[^\s,"\u2205]+')


def render_value(value: object) -> str:
    """One value of a field change, for a table cell (see the module docstring)."""
    from ctrledger.domain.history import to_json_value  # on first use: the CLI starts without the domain

    if value is None:
        return ABSENT
    if isinstance(value, ctrledger.Payload):
        size = len(value.value)
        return f"{value.type_url} ({size} byte{'' if size == 1 else 's'})"
    if isinstance(value, ctrledger.Runtime):
        return value.name if value.options is None else f"{value.name} [{render_value(value.options)}]"
    if isinstance(value, str):
        return value if _BARE.fullmatch(value) else json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return str(to_json_value(value))
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(to_json_value(value), ensure_ascii=False, separators=(",", ":"))
    return str(value)


def render_change(change: ctrledger.FieldChange) -> str:
    """``+field=new``, ``-field`` or ``field: old -> new``."""
    if change.old is None:
        return f"+{change.field}={render_value(change.new)}"
    if change.new is None:
        return f"-{change.field}"
    return f"{change.field}: {render_value(change.old)} -> {render_value(change.new)}"


def render_changes(changes: Iterable[ctrledger.FieldChange]) -> str:
    """The changes of one record, joined by ``, `` (``""`` for none)."""
    return ", ".join(render_change(c) for c in changes)


def echo_json_array(items: Iterable[Any]) -> None:
    """Print ``items`` as ``json.dumps(list(items), indent=2)`` would, one item at a time."""
    first = True
    for item in items:
        text = json.dumps(item, indent=2).replace("\n", "\n  ")
        click.echo(("[\n  " if first else ",\n  ") + text, nl=False)
        first = False
    click.echo("[]" if first else "\n]")


def emit_records(
    records: Iterable[R],
    fmt: Format,
    *,
    columns: Sequence[str],
    row: Callable[[R], Sequence[str]],
    to_dict: Callable[[R], dict[str, Any]],
    ident: Callable[[R], str] | None = None,
) -> None:
    """Print ``records`` in ``fmt``: a table of ``columns`` (a ``row`` each), JSON of ``to_dict``,
    or (``quiet``) the ``ident`` of each. Only the table waits for every record (for its widths).
    """
    if fmt == "quiet":
        if ident is None:
            raise ValueError("quiet output needs an ident")  # a command offering -q must give one
        for r in records:
            click.echo(ident(r))
    elif fmt == "nl":
        for r in records:
            click.echo(json.dumps(to_dict(r)))
    elif fmt == "json":
        echo_json_array(to_dict(r) for r in records)
    else:
        click.echo(render_rows(columns, [row(r) for r in records]))
