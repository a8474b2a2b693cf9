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
(export, import, digest, verify-projections, replay-to), ``progress`` (the progress bar of
long commands on a terminal).
"""

from __future__ import annotations

import errno
from typing import Any

import click

import ctrledger

from . import containers, history, log, replay, status
from .options import debugging

__all__ = ["LedgerGroup", "main"]


class LedgerGroup(click.Group):
    """A click group whose ``invoke`` is the CLI's error boundary."""

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
@click.version_option(package_name="ctrledger", prog_name="ctrledger")
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


for _command in (*containers.COMMANDS, *status.COMMANDS, *history.COMMANDS, *log.COMMANDS, *replay.COMMANDS):
    main.add_command(_command)
