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
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import click

import ctrledger

from .output import FORMATS, Format

__all__ = [
    "DEBUG_KEY",
    "DEFAULT_DB",
    "DEFAULT_NAMESPACE",
    "database_options",
    "debugging",
    "log_options",
    "open_store",
    "output_options",
    "parse_label_options",
    "split_label",
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
    "The store: a SQLite file (created if missing) or a postgresql://USER@HOST:PORT/DB?schema=S&readmodel=PATH URL."
)
LOG_DB_HELP = (
    "The store to check: a SQLite file (only read, never created) or a postgresql://USER@HOST:PORT/DB?schema=S URL."
)


def _db_option(f: F, text: str = DB_HELP) -> F:
    return click.option(
        "--db", default=DEFAULT_DB, envvar="CTRLEDGER_DATABASE_URL", show_envvar=True, show_default=True,
        metavar="PATH|URL", help=text,
    )(f)


def store_options(f: F) -> F:
    """``--db``, ``-n/--namespace`` and ``--debug``: the options of every command on one namespace."""
    f = _debug_option(f)
    f = click.option(
        "-n", "--namespace", default=DEFAULT_NAMESPACE, envvar="CTRLEDGER_NAMESPACE", show_envvar=True,
        show_default=True, help="Namespace of the containers.",
    )(f)
    return _db_option(f)


def database_options(f: F) -> F:
    """``--db`` and ``--debug``: the options of a command on the whole store."""
    return _db_option(_debug_option(f))


def log_options(f: F) -> F:
    """``--db`` and ``--debug`` for a command that reads the log without opening the store (verify)."""
    return _db_option(_debug_option(f), LOG_DB_HELP)


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


def open_store(db: str, actor: str | None = None) -> ctrledger.Store:
    """Open the store at ``db`` for the current command; it is closed when the command ends."""
    store = ctrledger.open(db, client="cli", actor=actor)
    return click.get_current_context().with_resource(store)


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
