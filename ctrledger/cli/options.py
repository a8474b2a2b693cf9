"""The options every command shares, and the helpers that turn them into calls.

============================  ===========================================================
decorator                     options
============================  ===========================================================
``store_options``             ``--db`` (env ``CTRLEDGER_DATABASE_URL``), ``-n/--namespace``
                              (env ``CTRLEDGER_NAMESPACE``), ``--debug``: on every command
                              that works in one namespace
``database_options``          ``--db`` and ``--debug`` alone: on store-wide commands (rebuild,
                              checkpoint, prove, migrate)
``log_options``               the same, ``--db`` worded for a command that only reads the
                              log and never creates it (verify)
``write_options``             ``--actor`` (default: the OS user), ``--reason``: on writes
``output_options(default)``   ``--table``, ``--json``, ``--nl``, ``-q/--quiet`` (or the
                              ``formats`` given), passed on as one ``fmt`` parameter; at
                              most one of them
============================  ===========================================================

``--db`` takes a SQLite path or a ``postgresql://`` URL, as ``ctrledger.open`` does.

Nothing here knows a business rule: ``KEY=VALUE`` parsing only splits text, the
store decides whether a key or value is acceptable.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import click

import ctrledger

from .output import FORMATS, Format

__all__ = [
    "DEBUG_KEY",
    "DEFAULT_DB",
    "DEFAULT_NAMESPACE",
    "GLOBAL_KEY",
    "StoreFactory",
    "database_options",
    "expected_version_option",
    "extension_options",
    "debugging",
    "log_options",
    "open_store",
    "output_options",
    "parse_label_options",
    "remember_global",
    "split_label",
    "store_factory",
    "store_options",
    "write_options",
]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DB = "./ctrledger.db"
DEFAULT_NAMESPACE = "default"
DEBUG_KEY = "ctrledger.debug"


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[DEBUG_KEY] = True


def debugging(ctx: click.Context | None = None) -> bool:
    """Whether ``--debug`` was given (errors then surface with their traceback)."""
    ctx = ctx or click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(DEBUG_KEY))


def _debug_option(f: F) -> F:
    return click.option(
        "--debug", is_flag=True, expose_value=False, callback=_set_debug,
        help="Show the traceback of an error instead of a one-line message.",
    )(f)


DB_HELP = (
    "The store: a SQLite file or a postgresql://USER@HOST:PORT/DB?schema=S&readmodel=PATH URL. "
    "Writes create a missing store; reads never create or change it."
)
LOG_DB_HELP = (
    "The store to check: a SQLite file (only read, never created) or a postgresql://USER@HOST:PORT/DB?schema=S URL."
)


GLOBAL_KEY = "ctrledger.global"  # ctx.meta: the --db and -n given before the subcommand


def _from_group(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A subcommand's ``--db``/``-n``: its own if given, else the group's, else the environment's."""
    source = ctx.get_parameter_source(param.name or "")
    given = ctx.meta.get(GLOBAL_KEY, {}).get(param.name)
    if source is not click.core.ParameterSource.COMMANDLINE and given is not None:
        return given
    if param.name == "db" and source is click.core.ParameterSource.DEFAULT and (
        os.environ.get("CTRLEDGER_DATABASE_URL") == ""
    ):
        raise click.BadParameter("CTRLEDGER_DATABASE_URL is set but empty; name a store.", ctx=ctx, param=param)
    return value


def remember_global(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Callback of the group's own ``--db``/``-n``: kept for the subcommand."""
    if value is not None:
        ctx.meta.setdefault(GLOBAL_KEY, {})[param.name] = value
    return value


def _db_option(f: F, text: str = DB_HELP) -> F:
    return click.option(
        "--db", default=DEFAULT_DB, envvar="CTRLEDGER_DATABASE_URL", show_envvar=True, show_default=True,
        metavar="PATH|URL", help=text, callback=_from_group,
    )(f)


def store_options(f: F) -> F:
    """``--db``, ``-n/--namespace`` and ``--debug``: the options of every command on one namespace."""
    f = _debug_option(f)
    f = click.option(
        "-n", "--namespace", default=DEFAULT_NAMESPACE, envvar="CTRLEDGER_NAMESPACE", show_envvar=True,
        show_default=True, help="Namespace of the containers.", callback=_from_group,
    )(f)
    return _db_option(f)


def database_options(f: F) -> F:
    """``--db`` and ``--debug``: the options of a command on the whole store."""
    return _db_option(_debug_option(f))


def log_options(f: F) -> F:
    """``--db`` and ``--debug`` for a command that reads the log without opening the store (verify)."""
    return _db_option(_debug_option(f), LOG_DB_HELP)


def expected_version_option(f: F) -> F:
    """``--expected-version N``: the write applies only if the container is at version N (else Conflict)."""
    return click.option(
        "--expected-version", type=click.IntRange(min=0), metavar="N", default=None,
        help="Change the container only if it is at version N (see 'get'); otherwise fail with a conflict.",
    )(f)


def extension_options(f: F) -> F:
    """``--extension NAME TYPE_URL FILE`` (repeatable), passed on as ``extensions``: a name -> Payload map."""

    def parse(ctx: click.Context, param: click.Parameter, values: tuple[tuple[str, str, Any], ...]) -> dict[str, Any]:
        return {name: ctrledger.Payload(type_url, file.read()) for name, type_url, file in values}

    return click.option(
        "--extension", "extensions", multiple=True, nargs=3, type=(str, str, click.File("rb")),
        metavar="NAME TYPE_URL FILE", callback=parse,
        help="An extension: its name, type URL and the file holding its bytes ('-': stdin); repeat for more.",
    )(f)


def write_options(f: F) -> F:
    """``--actor`` and ``--reason``: recorded with every write."""
    f = click.option("--reason", default=None, help="Why: recorded with the change.")(f)
    f = click.option("--actor", default=None, help="Who: recorded with the change.  [default: the OS user]")(f)
    return f


_FORMAT_FLAGS: tuple[tuple[tuple[str, ...], Format, str], ...] = (
    (("--table",), "table", "Print an aligned table."),
    (("--json",), "json", "Print JSON."),
    (("--nl",), "nl", "Print newline-delimited JSON: one {noun} per line."),
    (("-q", "--quiet"), "quiet", "Print IDs only, one per line."),
)


def output_options(
    default: Format, *, noun: str = "container", quiet: bool = True, formats: Sequence[Format] | None = None
) -> Callable[[F], F]:
    """``--table``, ``--json``, ``--nl``, ``-q/--quiet``, passed on as ``fmt`` (``default`` if none).

    ``noun`` is what ``--nl`` prints one of per line; ``quiet=False`` leaves out ``-q``
    (for commands whose records are not one per container); ``formats`` names the flags
    to offer instead (``default`` need not be one of them: ``text`` has no flag). Giving
    two of them is a usage error.
    """
    offered = formats if formats is not None else [f for f in FORMATS if quiet or f != "quiet"]
    flags = [flag for flag in _FORMAT_FLAGS if flag[1] in offered]
    names = ", ".join(flag[0][0] for flag in flags)

    def decorator(f: F) -> F:
        @functools.wraps(f)
        def command(**kwargs: Any) -> Any:
            chosen = [value for _, value, _ in flags if kwargs.pop(f"_format_{value}")]
            if len(chosen) > 1:
                raise click.UsageError(f"Give only one of {names}.")
            return f(fmt=chosen[0] if chosen else default, **kwargs)

        for opts, value, text in reversed(flags):
            click.option(
                *opts, f"_format_{value}", is_flag=True,
                help=text.format(noun=noun) + ("  [default]" if value == default else ""),
            )(command)
        return cast(F, command)

    return decorator


StoreFactory = Callable[..., "ctrledger.Store"]
"""What opens a store: ``factory(target, **options) -> Store``, as ``ctrledger.open`` does.

The group's context object (``main(obj=factory)``, or ``CliRunner().invoke(main, args,
obj=factory)``) replaces ``ctrledger.open``: tests inject a store with a fixed clock this way.
"""


def store_factory(ctx: click.Context) -> StoreFactory:
    """The context's store factory (``ctrledger.open`` unless the caller gave one)."""
    obj = ctx.find_root().obj
    return cast(StoreFactory, obj) if callable(obj) else ctrledger.open


def open_store(db: str, actor: str | None = None, *, mode: str = "r") -> ctrledger.Store:
    """Open the store at ``db`` for the current command; it is closed when the command ends.

    ``mode`` is ``ctrledger.open``'s: read commands open read-only (``"r"``: nothing created
    or changed); writes ``"c"`` (the store is created if missing), or ``"w"``.
    """
    ctx = click.get_current_context()
    store = store_factory(ctx)(db, client="cli", actor=actor, mode=mode)
    return ctx.with_resource(store)


def split_label(text: str) -> tuple[str, str] | None:
    """``"k=v"`` as ``("k", "v")`` (split at the first ``=``); ``None`` without an ``=``."""
    key, sep, value = text.partition("=")
    return (key, value) if sep else None


def parse_label_options(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    """Click callback: repeated ``--label k=v`` as a dict (a later key wins); a usage error names a bad one."""
    labels: dict[str, str] = {}
    for text in values:
        pair = split_label(text)
        if pair is None:
            raise click.BadParameter(f"{text!r} is not KEY=VALUE.", ctx=ctx, param=param)
        labels[pair[0]] = pair[1]
    return labels
