"""The ``ctrledger`` command line: a thin click shell over the public API.

Commands parse their arguments, call ``ctrledger.Store`` (or ``ctrledger.verify``,
``ctrledger.migrate``) and format what it returns; they import nothing but ``ctrledger``
itself, and ``cryptography`` to read the keys of signed checkpoints. Errors are translated in
one place, :class:`LedgerGroup`: a ``ctrledger.StoreError`` becomes the line
``Error: <message>`` on stderr and exit status 1 (``--debug``: the traceback
instead). Usage errors are click's: a message and exit status 2.

Modules: ``options`` (the shared option decorators), ``points`` (``--as-of``,
``--since`` and ``--until`` text as the store's points), ``output`` (containers and
history records as JSON, newline-delimited JSON, IDs or a table), ``containers``
(create, get, ls, label, update, rm), ``status`` (start, exit, pause, resume,
update-resources: the status lifecycle), ``history`` (history, diff, changes, audit,
rebuild), ``log`` (checkpoint, verify, prove, migrate: the log as a whole), ``replay``
(export, import, digest, verify-projections, replay-to), ``view`` (ui, timeline: the web view and
its SVG timeline, over ``ctrledger.ui``), ``serve`` (containerd's gRPC APIs, ``ctrledger.server``;
with ``--upstream``, the auditing proxy), ``follow`` (a live containerd, ``ctrledger.follow``),
``progress`` (the progress bar of long commands on a terminal).
"""

from __future__ import annotations

import errno
from types import ModuleType
from typing import Any

import click

import ctrledger

from .options import debugging, remember_global

__all__ = ["LedgerGroup", "main"]

# Which module defines each command: a command's module (and what it imports) is loaded only
# when that command runs, so ``ctrledger --version`` or ``ctrledger ls`` stays quick. A command
# missing here is still found: every module is then loaded and its ``COMMANDS`` searched.
COMMAND_MODULES = {
    **dict.fromkeys(("create", "get", "ls", "label", "update", "rm", "namespaces"), "containers"),
    **dict.fromkeys(("history", "diff", "changes", "audit", "rebuild"), "history"),
    **dict.fromkeys(("checkpoint", "verify", "prove", "migrate"), "log"),
    **dict.fromkeys(("export", "import", "digest", "verify-projections", "replay-to"), "replay"),
    **dict.fromkeys(("start", "exit", "pause", "resume", "update-resources"), "status"),
    **dict.fromkeys(("ui", "timeline"), "view"),
    "serve": "serve",
    "follow": "follow",
}


def _module(name: str) -> ModuleType:
    # Plain import statements, one per module, so the architecture test sees them.
    if name == "containers":
        from . import containers

        return containers
    if name == "history":
        from . import history

        return history
    if name == "log":
        from . import log

        return log
    if name == "status":
        from . import status

        return status
    if name == "view":
        from . import view

        return view
    if name == "serve":
        from . import serve

        return serve
    if name == "follow":
        from . import follow

        return follow
    from . import replay

    return replay


def _commands(module: str) -> dict[str, click.Command]:
    return {c.name: c for c in _module(module).COMMANDS if c.name is not None}


class LedgerGroup(click.Group):
    """A click group whose ``invoke`` is the CLI's error boundary, and whose commands load lazily.

    Running one command imports its module only; ``commands`` (and ``--help``) load them all.
    """

    _loaded: dict[str, click.Command]

    @property  # type: ignore[override]
    def commands(self) -> dict[str, click.Command]:
        for module in sorted(set(COMMAND_MODULES.values())):
            for name, command in _commands(module).items():
                self._loaded.setdefault(name, command)
        return self._loaded

    @commands.setter
    def commands(self, value: dict[str, click.Command]) -> None:
        self._loaded = dict(value)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._loaded:
            return self._loaded[cmd_name]
        if cmd_name in COMMAND_MODULES:
            found = _commands(COMMAND_MODULES[cmd_name]).get(cmd_name)
            if found is not None:
                return found
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ctrledger.StoreError as e:
            if debugging(ctx):
                raise
            raise click.ClickException(str(e)) from e
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except OSError as e:
            if e.errno == errno.EPIPE or debugging(ctx):
                raise  # click handles a closed pipe quietly
            raise click.ClickException(f"{e.strerror or e}") from e
        except Exception as e:
            if debugging(ctx):
                raise
            raise click.ClickException(
                f"unexpected {type(e).__name__}: {e} (a bug; run with --debug for the traceback)"
            ) from e


@click.group(cls=LedgerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(ctrledger.__version__, prog_name="ctrledger")  # not importlib.metadata: slow to import
@click.option(
    "--db", metavar="PATH|URL", default=None, expose_value=False, callback=remember_global,
    help="The store, for the subcommand (its own --db wins).",
)
@click.option(
    "-n", "--namespace", default=None, expose_value=False, callback=remember_global,
    help="The namespace, for the subcommand (its own -n wins).",
)
def main() -> None:
    """ctrledger: an event-sourced, containerd-compatible container metadata store.

    Every command takes --db (a SQLite file or a postgresql:// URL; env
    CTRLEDGER_DATABASE_URL) and, but for the commands on the whole store
    (rebuild, checkpoint, verify, prove, migrate, export, import, digest,
    verify-projections, replay-to), -n/--namespace (env CTRLEDGER_NAMESPACE).
    Times are UTC. Errors print one 'Error: ...' line and exit 1; usage errors
    exit 2; verify, verify-projections and prove --check exit 1 when the check
    fails.
    """
