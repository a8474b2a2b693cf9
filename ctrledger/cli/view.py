"""The commands that draw the ledger: ``ui`` (the local web view) and ``timeline --svg``.

Both are shells over ``ctrledger.ui``: ``timeline`` writes the SVG that the web view's
container page shows (``ctrledger.ui.timeline``, standard library only); ``ui`` serves the
Flask application of ``ctrledger.ui.app`` with waitress. Flask and waitress come with the
``ui`` extra and are imported only when ``ui`` runs, so no other command pays for them; without
them ``ui`` says how to install them.

Neither command creates a store: a SQLite file that does not exist is an error.
"""

from __future__ import annotations

from typing import IO

import click

import ctrledger
from ctrledger.ui.timeline import render_svg

from .log import load_checkpoint
from .options import open_store, store_options

__all__ = ["COMMANDS", "timeline", "ui"]

INSTALL_HINT = "pip install 'ctrledger[ui]'"


def _open_existing(db: str) -> ctrledger.Store:
    """The store at ``db``, opened read-only (``mode="r"``): reading it never creates or changes it."""
    return open_store(db, mode="r")


@click.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True,
    help="Address to listen on. The default answers this machine only; another address serves the network.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="Port (0: any free one).")
@click.option(
    "--checkpoint", type=click.File("r"), metavar="FILE",
    help="A checkpoint kept elsewhere (ctrledger checkpoint > FILE): the integrity page checks the log against it.",
)
@store_options
def ui(host: str, port: int, checkpoint: IO[str] | None, db: str, namespace: str) -> None:
    """Serve a read-only web view of the store on http://HOST:PORT/ until Ctrl-C.

    Pages: the containers of a namespace, filtered as 'ls' filters, now or at
    any point (a slider over the log, or a typed @N, 2h or ISO time); one
    container's timeline of incarnations, runs and changes, each event with
    its actor, reason and correlation id; a diff between any two points; the
    audit, searched by actor, kind, time and correlation id; and the log's
    integrity (verify, and the checkpoint given with --checkpoint). The view
    only reads: nothing it does writes to the store. Every asset is served
    from the package; nothing is fetched from the network.

    Needs the ui extra: pip install 'ctrledger[ui]'.
    """
    try:
        from ctrledger.ui.app import create_app
        from ctrledger.ui.serve import make_server
    except ImportError as e:
        raise click.ClickException(
            f"the web view needs the ui extra ({e.name or 'a module'} is not installed): {INSTALL_HINT}"
        ) from None
    kept = load_checkpoint(checkpoint) if checkpoint is not None else None
    store = _open_existing(db)
    app = create_app(store, source=db, checkpoint=kept, namespace=namespace)
    server = make_server(app, host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{server.effective_port}/"
    click.echo(f"Serving a read-only view of {db} on {url} (Ctrl-C to stop)", err=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


@click.command()
@click.argument("container_id", metavar="ID")
@click.option(
    "--svg", "svg_file", required=True, type=click.File("w", atomic=True), metavar="FILE",
    help="Write the timeline to FILE as an SVG picture (-: stdout).",
)
@click.option(
    "--axis", type=click.Choice(["time", "sequence"]), default="time", show_default=True,
    help="Space the events by their time, or evenly in their order (for events that crowd into moments).",
)
@store_options
def timeline(container_id: str, svg_file: IO[str], axis: str, db: str, namespace: str) -> None:
    """Draw the container ID's history as a timeline, the one 'ctrledger ui' shows.

    Its incarnations (created to deleted), runs (started to exited, with the
    exit code and reason; paused stretches hatched) and every other change, on
    a time axis; each event's tooltip says its version, kind, time, actor,
    reason and correlation id.
    """
    store = _open_existing(db)
    svg = render_svg(
        store.history(container_id, namespace=namespace), title=f"{container_id} in {namespace}",
        axis="sequence" if axis == "sequence" else "time",
    )
    svg_file.write(svg)


COMMANDS: tuple[click.Command, ...] = (ui, timeline)
