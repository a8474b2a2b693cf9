"""How the CLI shows containers: JSON-able dicts, JSON, newline-delimited JSON, IDs, a table.

The JSON form of a container::

    {"id": "web-1", "labels": {"env": "prod"}, "image": "docker.io/library/nginx:1.27",
     "runtime": {"name": "io.containerd.runc.v2", "options": null},
     "spec": {"type_url": "types.containerd.io/opencontainers/runtime-spec/1/Spec", "value_base64": "e30="},
     "snapshotter": "", "snapshot_key": "", "extensions": {}, "sandbox": "",
     "created_at": "2026-11-21T03:00:01.000000Z", "updated_at": "2026-11-21T03:00:01.000000Z",
     "version": 1}

Payloads (``runtime.options``, ``spec``, each extension) are ``{"type_url", "value_base64"}``
or ``null``. Times are UTC ISO-8601 with a ``Z``. Labels and extensions are sorted by key.

The table has the columns of ``ctr containers ls`` and a little more: ID, IMAGE, RUNTIME,
LABELS (``k=v`` joined by commas), VERSION, UPDATED (UTC, to the second). Columns are
aligned with spaces; an empty cell shows ``-``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import click

import ctrledger

__all__ = ["FORMATS", "Format", "container_to_dict", "emit", "iso_time", "render_table"]

Format = Literal["table", "json", "nl", "quiet"]
FORMATS: tuple[Format, ...] = ("table", "json", "nl", "quiet")

COLUMNS = ("ID", "IMAGE", "RUNTIME", "LABELS", "VERSION", "UPDATED")


def iso_time(ts: datetime | None, timespec: str = "microseconds") -> str | None:
    """``ts`` in UTC as ISO-8601 with a ``Z`` (``None`` stays ``None``)."""
    if ts is None:
        return None
    return ts.astimezone(UTC).replace(tzinfo=None).isoformat(timespec=timespec) + "Z"


def payload_to_dict(p: ctrledger.Payload | None) -> dict[str, str] | None:
    if p is None:
        return None
    return {"type_url": p.type_url, "value_base64": base64.b64encode(p.value).decode("ascii")}


def container_to_dict(c: ctrledger.Container) -> dict[str, Any]:
    """The JSON-able form of ``c`` (see the module docstring)."""
    return {
        "id": c.id,
        "labels": {k: c.labels[k] for k in sorted(c.labels)},
        "image": c.image,
        "runtime": {"name": c.runtime.name, "options": payload_to_dict(c.runtime.options)},
        "spec": payload_to_dict(c.spec),
        "snapshotter": c.snapshotter,
        "snapshot_key": c.snapshot_key,
        "extensions": {k: payload_to_dict(c.extensions[k]) for k in sorted(c.extensions)},
        "sandbox": c.sandbox,
        "created_at": iso_time(c.created_at),
        "updated_at": iso_time(c.updated_at),
        "version": c.version,
    }


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


def _row(c: ctrledger.Container) -> list[str]:
    labels = ",".join(f"{k}={c.labels[k]}" for k in sorted(c.labels))
    cells = [c.id, c.image, c.runtime.name, labels, str(c.version), iso_time(c.updated_at, "seconds") or ""]
    return [_printable(cell) or "-" for cell in cells]


def render_table(containers: Sequence[ctrledger.Container]) -> str:
    """The containers as an aligned table with a header line (just the header when empty)."""
    rows = [list(COLUMNS), *(_row(c) for c in containers)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def emit(containers: Sequence[ctrledger.Container], fmt: Format, *, single: bool = False) -> None:
    """Print ``containers`` to stdout in ``fmt``; ``single``: ``--json`` prints one object, not a list."""
    if fmt == "quiet":
        for c in containers:
            click.echo(c.id)
    elif fmt == "nl":
        for c in containers:
            click.echo(json.dumps(container_to_dict(c)))
    elif fmt == "json":
        dicts = [container_to_dict(c) for c in containers]
        click.echo(json.dumps(dicts[0] if single and len(dicts) == 1 else dicts, indent=2))
    else:
        click.echo(render_table(containers))
