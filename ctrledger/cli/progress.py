"""Progress on a terminal: click's progress bar on stderr for long work (rebuild, export, import, replay-to).

``progress_bar(label)`` is a context manager giving a ``progress(done, total)`` callback, as
``ctrledger.replay`` takes one, when stderr is a terminal, and ``None`` otherwise, so that
piped and captured output never holds a bar. The bar appears at the callback's first call.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import click

__all__ = ["Progress", "on_terminal", "progress_bar"]

Progress = Callable[[int, int], None]


def on_terminal() -> bool:
    """Whether stderr is a terminal (then long work draws a progress bar there)."""
    return sys.stderr.isatty()


class _Bar:
    """A ``progress(done, total)`` callback drawing click's progress bar on stderr, from its first call."""

    def __init__(self, stack: ExitStack, label: str) -> None:
        self._stack = stack
        self._label = label
        self._update: Callable[[int], None] | None = None
        self._shown = 0

    def __call__(self, done: int, total: int) -> None:
        if self._update is None:
            # a total of 0 is unknown (an export with a time bound counts as it goes)
            bar = click.progressbar(length=max(total, done), label=self._label, file=sys.stderr)
            self._update = self._stack.enter_context(bar).update
        self._update(done - self._shown)
        self._shown = done


@contextmanager
def progress_bar(label: str) -> Iterator[Progress | None]:
    """A progress callback drawing a bar labelled ``label`` on stderr if it is a terminal, else ``None``."""
    if not on_terminal():
        yield None
        return
    with ExitStack() as stack:
        yield _Bar(stack, label)
