"""The container commands: create, get, ls, label, update, rm.

Each command parses its arguments, makes one store call per container and prints
the result; the rules (what is valid, what may change) are the store's.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from datetime import datetime
from typing import IO

import click
from click.core import ParameterSource

import ctrledger

from .options import (
    database_options,
    debugging,
    expected_version_option,
    extension_options,
    open_store,
    output_options,
    parse_label_options,
    split_label,
    store_options,
    write_options,
)
from .output import Format, emit, emit_namespaced
from .points import Point, forms, point_option

__all__ = ["COMMANDS", "create", "get", "label", "ls", "namespaces", "rm", "update"]

DEFAULT_RUNTIME = "io.containerd.runc.v2"
SPEC_TYPE = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
DEFAULT_SPEC = b"{}"


def _now(store: ctrledger.Store, as_of: Point | None) -> datetime:
    """What the STATUS column counts to: the ``--as-of`` time when it is one, else the store's now."""
    if isinstance(as_of, datetime):
        return as_of
    if isinstance(as_of, str):
        try:
            parsed = datetime.fromisoformat(as_of.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return store.now()
        if parsed.tzinfo is not None:
            return parsed
    return store.now()


def _report(error: ctrledger.StoreError) -> None:
    """Print ``Error: …`` for one failed operation of several (``--debug``: raise it)."""
    if debugging():
        raise error
    click.echo(f"Error: {error}", err=True)


@click.command()
@click.argument("container_id", metavar="ID")
@click.option("--image", default="", help="Image reference, e.g. docker.io/library/nginx:1.27.")
@click.option("--runtime", default=DEFAULT_RUNTIME, show_default=True, help="Runtime name.")
@click.option(
    "--label", "labels", multiple=True, metavar="KEY=VALUE", callback=parse_label_options,
    help="A label; repeat for more.",
)
@click.option(
    "--spec-file", type=click.File("rb"),
    help="Read the runtime spec from this file ('-': stdin).  [default: the bytes {}]",
)
@click.option("--spec-type", default=SPEC_TYPE, help="Type URL of the spec.  [default: the OCI runtime spec]")
@click.option("--snapshotter", default="", help="Snapshotter name (needed with --snapshot-key).")
@click.option("--snapshot-key", default="", help="Snapshot key of the root filesystem.")
@click.option("--sandbox", default="", metavar="ID", help="The sandbox (pod) the container belongs to.")
@extension_options
@write_options
@output_options("table")
@store_options
def create(
    container_id: str,
    image: str,
    runtime: str,
    labels: dict[str, str],
    spec_file: IO[bytes] | None,
    spec_type: str,
    snapshotter: str,
    snapshot_key: str,
    sandbox: str,
    extensions: dict[str, ctrledger.Payload],
    actor: str | None,
    reason: str | None,
    fmt: Format,
    db: str,
    namespace: str,
) -> None:
    """Create the container ID and print it.

    Labels with an empty value are not stored. The spec's default type is the
    OCI runtime spec:

    \b
        types.containerd.io/opencontainers/runtime-spec/1/Spec
    """
    spec = ctrledger.Payload(spec_type, spec_file.read() if spec_file is not None else DEFAULT_SPEC)
    record = ctrledger.Container(
        id=container_id,
        labels=labels,
        image=image,
        runtime=ctrledger.Runtime(runtime),
        spec=spec,
        snapshotter=snapshotter,
        snapshot_key=snapshot_key,
        sandbox=sandbox,
        extensions=extensions,
    )
    store = open_store(db, actor, mode="c")
    emit([store.create(record, namespace=namespace, reason=reason)], fmt, single=True, now=store.now())


@click.command()
@click.argument("container_id", metavar="ID")
@click.option(
    "--as-of", callback=point_option, metavar="TIME|@POS|vN",
    help=f"Show the container as it was then: {forms(version=True)}.",
)
@output_options("json")
@store_options
def get(container_id: str, as_of: Point | None, fmt: Format, db: str, namespace: str) -> None:
    """Print the container ID (pretty-printed JSON by default).

    With --as-of, print it as it was at that point; it is not found if it did not
    exist then.
    """
    store = open_store(db)
    emit([store.get(container_id, namespace=namespace, as_of=as_of)], fmt, single=True, now=_now(store, as_of))


SORT_KEYS = {
    "id": None,  # the store's order: by ID, bytewise
    "created": lambda c: (c.created_at, c.id.encode()),
    "updated": lambda c: (c.updated_at, c.id.encode()),
}


@click.command()
@click.argument("filters", nargs=-1, metavar="[FILTER]...")
@click.option(
    "--as-of", callback=point_option, metavar="TIME|@POS",
    help=f"List the containers that existed then, as they were: {forms()}.",
)
@click.option(
    "-A", "--all-namespaces", is_flag=True,
    help="List the containers of every namespace (see 'namespaces'), not only the one of -n.",
)
@click.option(
    "--sort", type=click.Choice(list(SORT_KEYS)), default="id", show_default=True,
    help="Order by ID (bytewise), or by creation or last update time (oldest first).",
)
@click.option("--limit", type=click.IntRange(min=0), metavar="N", help="Print at most N containers.")
@output_options("table")
@store_options
def ls(
    filters: tuple[str, ...], as_of: Point | None, all_namespaces: bool, sort: str, limit: int | None,
    fmt: Format, db: str, namespace: str,
) -> None:
    """List the containers matching any FILTER, sorted by ID.

    A FILTER is containerd's: comma-separated selectors that must all match, such
    as 'labels.env==prod,image~=nginx'. Fields: id, image, runtime.name,
    labels.KEY, status.state (CREATED, RUNNING, EXITED), status.reason,
    status.exit_code, status.pid, status.paused (true, false); operators == !=
    ~= (regular expression), or none (the field is present). No FILTER lists
    every container of the namespace. With --as-of, the filters apply to the
    containers as they were then. With -A, every
    namespace in turn (by name), with a NAMESPACE column; -q then prints
    NAMESPACE/ID.
    """
    ctx = click.get_current_context()
    if all_namespaces and ctx.get_parameter_source("namespace") is ParameterSource.COMMANDLINE:
        raise click.UsageError("Give -n/--namespace or -A/--all-namespaces, not both.")
    store = open_store(db)
    spaces = store.namespaces() if all_namespaces else [namespace]
    # Streamed (a namespace of any size prints in constant memory) unless sorted by time.
    pairs: Iterable[tuple[str, ctrledger.Container]] = (
        (ns, c) for ns in spaces for c in store.scan(*filters, namespace=ns, as_of=as_of))
    key = SORT_KEYS[sort]
    if key is not None:
        pairs = sorted(pairs, key=lambda pair: key(pair[1]))
    if limit is not None:
        pairs = itertools.islice(pairs, limit)
    now = _now(store, as_of)
    if all_namespaces:
        emit_namespaced(pairs, fmt, now=now)
    else:
        emit((c for _, c in pairs), fmt, now=now)


@click.command()
@output_options("table", noun="namespace", formats=("table", "json", "nl"))
@database_options
def namespaces(fmt: Format, db: str) -> None:
    """List the namespaces that have ever held a container, by name.

    A namespace stays listed after its last container is deleted (its history
    is still there). 'ls -A' lists the containers of all of them.
    """
    names = open_store(db).namespaces()
    if fmt == "table":
        click.echo("\n".join(["NAMESPACE", *names]))
    elif fmt == "json":
        click.echo(json.dumps(names, indent=2))
    else:
        for name in names:
            click.echo(json.dumps(name))


def _parse_label_changes(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str | None]:
    changes: dict[str, str | None] = {}
    for text in values:
        pair = split_label(text)
        if pair is not None:
            changes[pair[0]] = pair[1]
        elif text.endswith("-") and len(text) > 1:
            changes[text[:-1]] = None
        else:
            raise click.BadParameter(f"{text!r} is neither KEY=VALUE nor KEY-.", ctx=ctx, param=param)
    return changes


@click.command()
@click.argument("container_id", metavar="ID")
@click.argument("changes", nargs=-1, required=True, metavar="KEY=VALUE|KEY-...", callback=_parse_label_changes)
@expected_version_option
@write_options
@output_options("table")
@store_options
def label(
    container_id: str,
    changes: dict[str, str | None],
    expected_version: int | None,
    actor: str | None,
    reason: str | None,
    fmt: Format,
    db: str,
    namespace: str,
) -> None:
    """Set (KEY=VALUE) or remove (KEY-) labels of the container ID.

    All changes are one update; other labels are kept. KEY= (an empty value)
    removes the label too. Prints the updated container.
    """
    labels = {k: v for k, v in changes.items() if v is not None}
    paths = [f"labels.{k}" for k in changes]
    store = open_store(db, actor, mode="w")
    updated = store.update(
        ctrledger.Container(id=container_id, labels=labels), *paths, namespace=namespace, reason=reason,
        expected_version=expected_version,
    )
    emit([updated], fmt, single=True, now=store.now())


@click.command()
@click.argument("container_id", metavar="ID")
@click.option("--image", default=None, help="New image reference ('' clears it).")
@click.option("--spec-file", type=click.File("rb"), help="Read the new runtime spec from this file ('-': stdin).")
@click.option(
    "--spec-type", default=None, help="Type URL of the new spec (with --spec-file).  [default: the OCI runtime spec]"
)
@click.option("--snapshot-key", default=None, help="New snapshot key ('' clears it).")
@click.option(
    "--label", "labels", multiple=True, metavar="KEY=VALUE", callback=parse_label_options,
    help="Replace all labels with these; repeat for more (see 'label' to change a few).",
)
@extension_options
@click.option(
    "--remove-extension", "removed_extensions", multiple=True, metavar="NAME",
    help="Remove this extension; repeat for more.",
)
@expected_version_option
@write_options
@output_options("table")
@store_options
def update(
    container_id: str,
    image: str | None,
    spec_file: IO[bytes] | None,
    spec_type: str | None,
    snapshot_key: str | None,
    labels: dict[str, str],
    extensions: dict[str, ctrledger.Payload],
    removed_extensions: tuple[str, ...],
    expected_version: int | None,
    actor: str | None,
    reason: str | None,
    fmt: Format,
    db: str,
    namespace: str,
) -> None:
    """Change the given fields of the container ID; the others are kept.

    Runtime and snapshotter cannot change. Prints the updated container. The
    spec's default type is the OCI runtime spec:

    \b
        types.containerd.io/opencontainers/runtime-spec/1/Spec
    """
    if spec_type is not None and spec_file is None:
        raise click.UsageError("--spec-type needs --spec-file.")
    paths: list[str] = []
    if image is not None:
        paths.append("image")
    spec = None
    if spec_file is not None:
        spec = ctrledger.Payload(spec_type or SPEC_TYPE, spec_file.read())
        paths.append("spec")
    if snapshot_key is not None:
        paths.append("snapshotkey")
    if labels:
        paths.append("labels")
    paths += [f"extensions.{name}" for name in [*extensions, *removed_extensions]]
    if not paths:
        raise click.UsageError(
            "Nothing to update: give --image, --spec-file, --snapshot-key, --label, --extension or --remove-extension."
        )
    request = ctrledger.Container(
        id=container_id, labels=labels, image=image or "", spec=spec, snapshot_key=snapshot_key or "",
        extensions=extensions,
    )
    store = open_store(db, actor, mode="w")
    emit([store.update(request, *paths, namespace=namespace, reason=reason, expected_version=expected_version)],
         fmt, single=True, now=store.now())


@click.command()
@click.argument("container_ids", nargs=-1, required=True, metavar="ID...")
@expected_version_option
@write_options
@store_options
def rm(
    container_ids: tuple[str, ...], expected_version: int | None, actor: str | None, reason: str | None, db: str,
    namespace: str,
) -> None:
    """Delete the containers ID...; print each ID deleted.

    Each ID is deleted on its own, in order, as 'ctr containers rm' does: when one
    fails, its Error line is printed and the others are still deleted; the exit
    status is then 1. A deleted container's history stays in the log, and its ID
    can be created again.
    """
    store = open_store(db, actor, mode="w")
    failed = False
    for container_id in container_ids:
        try:
            store.delete(container_id, namespace=namespace, reason=reason, expected_version=expected_version)
        except ctrledger.StoreError as e:
            _report(e)
            failed = True
        else:
            click.echo(container_id)
    if failed:
        click.get_current_context().exit(1)


COMMANDS: tuple[click.Command, ...] = (create, get, ls, label, update, rm, namespaces)
