"""``ctrledger follow``: record a live containerd (``ctrledger.follow`` does the work)."""

from __future__ import annotations

import logging
import signal
import sys
import threading

import click
import grpc

import ctrledger
from ctrledger.follow import Follower, WriterProcess, connect
from ctrledger.server.app import unix_path

from .options import database_options, store_factory

__all__ = ["COMMANDS", "follow"]


@click.command()
@click.option("--address", "-a", default="/run/containerd/containerd.sock", show_default=True, metavar="SOCKET",
              help="containerd's gRPC socket.")
@click.option("--namespace", "-n", "namespaces", multiple=True, metavar="NS",
              help="Follow only this namespace (repeatable).  [default: every namespace]")
@click.option("--relist", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds between namespace re-lists (implicit namespaces have no event).")
@click.option("--once", is_flag=True, help="Reconcile once and exit (no events; fails if containerd is down).")
@click.option("--quiet", "-q", is_flag=True, help="Only report errors.")
@database_options
def follow(address: str, namespaces: tuple[str, ...], relist: float, once: bool, quiet: bool, db: str) -> None:
    """Record a live containerd: every container change and task start, exit,
    pause and OOM, with containerd's times, as actor containerd.

    Starts with a sync (containers and tasks not yet in the ledger, or
    different, are recorded as "observed at sync"), then follows containerd's
    events. On every reconnect, and after a restart, it reconciles again
    ("observed after a gap"). Reconnects with backoff while containerd is down.
    Runs until SIGTERM or Ctrl-C; with --once, reconciles once and exits.
    """
    ctx = click.get_current_context()
    if once:  # containerd first: a sync that cannot start leaves no ledger file behind
        try:
            connect(unix_path(address)).close()
        except OSError as e:
            raise click.ClickException(str(e)) from e
    factory = store_factory(ctx)
    store = ctx.with_resource(factory(db, client="follow", mode="c"))
    if once:
        f = Follower(store, unix_path(address), namespaces=list(namespaces) or None)
        try:
            written = f.sync_once()
        except (OSError, grpc.RpcError) as e:
            raise click.ClickException(str(e) if isinstance(e, OSError) else
                                       f"containerd at {address}: {e.details()}") from e
        if not quiet:
            click.echo(f"{written} events recorded from {address}")
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("ctrledger follow: %(message)s"))
    logger = logging.getLogger("ctrledger.follow")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)

    def ready(f: Follower) -> None:
        if not quiet and f.stats.connects == 1:
            click.echo(f"ctrledger follow: {address} into {db} ({f.stats.writes} events at sync)", err=True)

    # The writes in a process of their own, for an embedded store opened as usual (a store
    # another factory made may have its own clock or options, which a new process would lack):
    # in one process they share one GIL with the reading of containerd's events. And shorter
    # GIL turns (0.5 ms, not 5) for the threads that read events and answers: they wait less
    # behind the judging of the events before them (docs/benchmarks.md).
    writer = WriterProcess(store.path, client="follow") if factory is ctrledger.open and store.log.inline else None
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    follower = Follower(store, unix_path(address), namespaces=list(namespaces) or None, relist=relist,
                        on_ready=ready, writer=writer)
    previous = {s: signal.signal(s, lambda signum, frame: follower.stop()) for s in (signal.SIGTERM, signal.SIGINT)}
    worker = threading.Thread(target=follower.run, name="ctrledger-follow", daemon=True)
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.5)
    finally:
        follower.stop()
        sys.setswitchinterval(interval)
        for s, old in previous.items():
            signal.signal(s, old)
        logger.removeHandler(handler)
    if not quiet:
        st = follower.stats
        click.echo(f"ctrledger follow: stopped; {st.events} events seen, {st.writes} recorded, "
                   f"{st.connects} connections", err=True)


COMMANDS: tuple[click.Command, ...] = (follow,)
