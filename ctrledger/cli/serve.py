"""``ctrledger serve``: containerd's gRPC APIs over the store (``ctrledger.server`` does the work)."""

from __future__ import annotations

import signal
import sys
import threading

import click

from ctrledger.server import Server
from ctrledger.server import serve as run_server
from ctrledger.server.app import unix_path

from .options import database_options, store_factory

__all__ = ["COMMANDS", "serve"]


@click.command()
@click.option("--address", "-a", default="unix:///run/ctrledger/ctrledger.sock", show_default=True,
              metavar="unix:///PATH", help="The unix socket to serve on (created 0660: owner and --group).")
@click.option("--group", default=None, metavar="GROUP", help="Group that may use the socket.  [default: yours]")
@click.option("--tcp", default=None, metavar="HOST:PORT",
              help="Also serve on TCP, unauthenticated: give a loopback host (127.0.0.1:PORT) unless you mean it.")
@click.option("--grace", default=10.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds calls in flight may take to finish on SIGTERM or Ctrl-C.")
@click.option("--upstream", default=None, metavar="SOCKET",
              help="Proxy a real containerd at this socket instead: every call is forwarded, "
                   "and container writes and task calls are recorded with the caller's identity.")
@click.option("--follow/--no-follow", "follow", default=True, show_default=True,
              help="With --upstream: also follow containerd's events (changes made directly on its socket).")
@click.option("--record", type=click.Choice(["before-answer", "after-answer"]), default="before-answer",
              show_default=True,
              help="With --upstream: record each accepted call before containerd's answer goes back (every call "
                   "a caller saw succeed is in the ledger under its name), or after it (faster; a proxy killed "
                   "in between loses the caller's name for that change, not the change).")
@database_options
def serve(address: str, group: str | None, tcp: str | None, grace: float, upstream: str | None, follow: bool,
          record: str, db: str) -> None:
    """Serve containerd's gRPC APIs (and ctrledger.v1) over the store.

    containerd's clients work unchanged: ctr -a SOCKET containers ls|info|
    label|rm|create, namespaces ls, events. Every change is recorded with the
    caller's identity from the socket (user, pid, process). Clients may add
    the metadata ctrledger-reason and ctrledger-on-behalf-of (recorded as a
    claim); Events/Subscribe resumes after a log position given as
    ctrledger-from-position. Runs until SIGTERM or Ctrl-C.

    With --upstream SOCKET, an auditing proxy in front of a real containerd:
    containerd answers every call, unchanged; see docs/howto/follow-containerd.md.
    """
    if upstream is not None:
        if tcp is not None:
            raise click.UsageError("--tcp is not available with --upstream (the proxy needs peer credentials)")
        return _proxy(db, upstream, address, group, grace, follow, record)
    if tcp is not None and tcp.rpartition(":")[0] not in ("127.0.0.1", "localhost", "[::1]"):
        click.echo(f"warning: serving unauthenticated TCP on {tcp}, beyond this machine", err=True)
    ctx = click.get_current_context()
    store = ctx.with_resource(store_factory(ctx)(db, client="serve", mode="c"))  # serve writes: "c", as the writes

    def ready(server: Server) -> None:
        where = [f"unix://{server.path}"] if server.path else []
        if server.tcp_port is not None:
            where.append(f"tcp {tcp.rpartition(':')[0] if tcp else ''}:{server.tcp_port}")
        click.echo(f"ctrledger serve: {db} on {', '.join(where)}", err=True)
        sys.stderr.flush()

    try:
        run_server(store, address=address, group=group, tcp=tcp, grace=grace, ready=ready)
    except OSError as e:
        raise click.ClickException(f"cannot serve on {address}: {e.strerror or e}") from e


def _proxy(db: str, upstream: str, address: str, group: str | None, grace: float, follow: bool,
           record: str) -> None:
    from ctrledger.follow import Proxy

    ctx = click.get_current_context()
    store = ctx.with_resource(store_factory(ctx)(db, client="proxy", mode="c"))
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda signum, frame: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        proxy = Proxy(store, unix_path(upstream), address=address, group=group, follow=follow,
                      record=record).start()
    except OSError as e:
        raise click.ClickException(f"cannot serve on {address}: {e.strerror or e}") from e
    try:
        click.echo(f"ctrledger serve: {db} on unix://{proxy.path}, proxying {upstream}", err=True)
        sys.stderr.flush()
        while not stop.wait(0.5):
            pass
    finally:
        proxy.stop(grace)
        for s, handler in previous.items():
            signal.signal(s, handler)


COMMANDS: tuple[click.Command, ...] = (serve,)
