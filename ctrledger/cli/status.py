"""The status commands: start, exit, pause, resume, update-resources.

Each records one status change of a container, as CRI's container store would see it
(the store decides what is allowed), and prints the container. ``--at`` is when it
happened, as the runtime reported it: an ISO-8601 time with a zone, or a time ago
(``45s``); by default, now.
"""

from __future__ import annotations

from datetime import datetime

import click

import ctrledger

from .options import open_store, output_options, store_options, write_options
from .output import Format, emit
from .points import parse_point

__all__ = ["COMMANDS", "exit_", "pause", "resume", "start", "update_resources"]


def _at_option(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | str | None:
    if value is None:
        return None
    try:
        point = parse_point(value)
    except OverflowError:
        raise click.BadParameter(f"{value!r} is out of range.", ctx=ctx, param=param) from None
    except ValueError as e:  # not a time: named as the option, like --as-of
        raise click.BadParameter(f"{e}.", ctx=ctx, param=param) from None
    if isinstance(point, (ctrledger.Position, ctrledger.Version)):
        raise click.BadParameter(f"{value!r} is not a time.", ctx=ctx, param=param)
    return point


_at = click.option(
    "--at", callback=_at_option, metavar="TIME",
    help="When it happened: an ISO-8601 time with a zone (2026-11-21T09:00:00Z) or a time ago (45s, 30m).  "
         "[default: now]",
)
_ID = click.argument("container_id", metavar="ID")


@click.command()
@_ID
@click.option("--pid", type=int, required=True, help="The process ID of the container's init process.")
@_at
@write_options
@output_options("table")
@store_options
def start(
    container_id: str, pid: int, at: datetime | str | None, actor: str | None, reason: str | None,
    fmt: Format, db: str, namespace: str,
) -> None:
    """Record that the container ID started, with process PID; print it.

    A container that exited may start again: a new run. Refused (exit 1) if it is
    running.
    """
    store = open_store(db, actor, mode="w")
    emit([store.started(container_id, pid=pid, at=at, namespace=namespace, reason=reason)], fmt, single=True,
         now=store.now())


@click.command("exit")
@_ID
@click.option("--code", "exit_code", type=int, required=True, help="The exit code.")
@click.option("--reason", "exit_reason", default=None,
              help="Why it exited, CRI's reason (OOMKilled...).  [default: Completed for 0, else Error]")
@click.option("--message", default=None, help="A human-readable message about the exit.")
@_at
@click.option("--actor", default=None, help="Who: recorded with the change.  [default: the OS user]")
@click.option("--audit-reason", default=None, help="Why it is recorded: the audit's reason.")
@output_options("table")
@store_options
def exit_(
    container_id: str, exit_code: int, exit_reason: str | None, message: str | None, at: datetime | str | None,
    actor: str | None, audit_reason: str | None, fmt: Format, db: str, namespace: str,
) -> None:
    """Record that the container ID exited with exit code CODE; print it.

    Refused (exit 1) if it is not running.
    """
    store = open_store(db, actor, mode="w")
    emit([store.exited(container_id, exit_code=exit_code, at=at, reason=exit_reason, message=message,
                       namespace=namespace, audit_reason=audit_reason)], fmt, single=True, now=store.now())


@click.command()
@_ID
@_at
@write_options
@output_options("table")
@store_options
def pause(
    container_id: str, at: datetime | str | None, actor: str | None, reason: str | None,
    fmt: Format, db: str, namespace: str,
) -> None:
    """Record that the running container ID was paused; print it."""
    store = open_store(db, actor, mode="w")
    emit([store.paused(container_id, at=at, namespace=namespace, reason=reason)], fmt, single=True,
         now=store.now())


@click.command()
@_ID
@_at
@write_options
@output_options("table")
@store_options
def resume(
    container_id: str, at: datetime | str | None, actor: str | None, reason: str | None,
    fmt: Format, db: str, namespace: str,
) -> None:
    """Record that the paused container ID was resumed; print it."""
    store = open_store(db, actor, mode="w")
    emit([store.resumed(container_id, at=at, namespace=namespace, reason=reason)], fmt, single=True,
         now=store.now())


def _hugepage(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    out = []
    for text in values:
        size, sep, limit = text.partition("=")
        if not sep or not size or not limit.isdigit():
            raise click.BadParameter(f"{text!r} is not PAGESIZE=LIMIT.", ctx=ctx, param=param)
        out.append((size, int(limit)))
    return tuple(out)


def _unified(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for text in values:
        key, sep, value = text.partition("=")
        if not sep:
            raise click.BadParameter(f"{text!r} is not KEY=VALUE.", ctx=ctx, param=param)
        out[key] = value
    return out


@click.command("update-resources")
@_ID
@click.option("--cpu-period", type=int, default=0, help="CPU CFS period (microseconds).")
@click.option("--cpu-quota", type=int, default=0, help="CPU CFS quota (microseconds).")
@click.option("--cpu-shares", type=int, default=0, help="CPU shares (relative weight).")
@click.option("--memory-limit", "memory_limit_in_bytes", type=int, default=0, help="Memory limit in bytes.")
@click.option("--memory-swap-limit", "memory_swap_limit_in_bytes", type=int, default=0,
              help="Memory plus swap limit in bytes.")
@click.option("--oom-score-adj", type=int, default=0, help="OOM score adjustment (-1000..1000).")
@click.option("--cpuset-cpus", default="", help="CPUs to use, e.g. 0-3,6.")
@click.option("--cpuset-mems", default="", help="Memory nodes to use, e.g. 0,1.")
@click.option("--hugepage-limit", "hugepage_limits", multiple=True, metavar="PAGESIZE=LIMIT", callback=_hugepage,
              help="A huge page limit, e.g. 2MB=1073741824; repeat for more.")
@click.option("--unified", multiple=True, metavar="KEY=VALUE", callback=_unified,
              help="A cgroup v2 setting, e.g. memory.high=1073741824; repeat for more.")
@_at
@write_options
@output_options("table")
@store_options
def update_resources(
    container_id: str, cpu_period: int, cpu_quota: int, cpu_shares: int, memory_limit_in_bytes: int,
    memory_swap_limit_in_bytes: int, oom_score_adj: int, cpuset_cpus: str, cpuset_mems: str,
    hugepage_limits: tuple[tuple[str, int], ...], unified: dict[str, str], at: datetime | str | None,
    actor: str | None, reason: str | None, fmt: Format, db: str, namespace: str,
) -> None:
    """Set the resources of the container ID (CRI UpdateContainerResources); print it.

    The resources given replace the current ones: an option left out is not set.
    Refused (exit 1) once the container has exited.
    """
    resources = ctrledger.Resources(
        cpu_period=cpu_period, cpu_quota=cpu_quota, cpu_shares=cpu_shares,
        memory_limit_in_bytes=memory_limit_in_bytes, oom_score_adj=oom_score_adj, cpuset_cpus=cpuset_cpus,
        cpuset_mems=cpuset_mems, hugepage_limits=hugepage_limits, unified=unified,
        memory_swap_limit_in_bytes=memory_swap_limit_in_bytes,
    )
    store = open_store(db, actor, mode="w")
    emit([store.update_resources(container_id, resources, at=at, namespace=namespace, reason=reason)], fmt,
         single=True, now=store.now())


COMMANDS: tuple[click.Command, ...] = (start, exit_, pause, resume, update_resources)
