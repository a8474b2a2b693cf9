"""A terminal progress bar for long replays: items, rate and ETA, redrawn in place.

``TerminalProgress`` is a ``progress(done, total)`` callback: pass it to ``rebuild``,
``export``, ``import_`` or ``replay_to``. ``terminal_progress(label)`` returns one
only when the stream is a terminal (None otherwise), so piped output stays clean.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["TerminalProgress", "terminal_progress"]


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class TerminalProgress:
    """Draws ``label  [#####.....]  52% 520,000/1,000,000 events  41,210/s  ETA 0:12``."""

    def __init__(
        self, label: str, *, stream: TextIO | None = None, unit: str = "events", width: int = 24,
        interval: float = 0.1, clock: Callable[[], float] | None = None,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.unit = unit
        self.width = width
        self.interval = interval
        self._now = clock or time.monotonic
        self._start: float | None = None
        self._first = 0
        self._drawn = 0.0
        self._last = ""

    def line(self, done: int, total: int, now: float) -> str:
        """The bar's text for ``done`` of ``total`` at time ``now``."""
        if self._start is None:
            self._start, self._first = now, done
        elapsed = now - self._start
        rate = (done - self._first) / elapsed if elapsed > 0 else 0.0
        parts = [self.label]
        if total > 0:
            fraction = min(done / total, 1.0)
            filled = int(fraction * self.width)
            parts.append(f"[{'#' * filled}{'.' * (self.width - filled)}] {fraction:4.0%}")
            parts.append(f"{done:,}/{total:,} {self.unit}")
        else:
            parts.append(f"{done:,} {self.unit}")
        if rate > 0:
            parts.append(f"{rate:,.0f}/s")
            if total > done:
                parts.append(f"ETA {_duration((total - done) / rate)}")
        return "  ".join(parts)

    def __call__(self, done: int, total: int) -> None:
        now: float = self._now()
        if self._start is not None and now - self._drawn < self.interval and done < total:
            return
        text = self.line(done, total, now)
        self._drawn = now
        pad = " " * max(0, len(self._last) - len(text))
        self.stream.write(f"\r{text}{pad}")
        self.stream.flush()
        self._last = text

    def close(self) -> None:
        """End the bar's line."""
        if self._last:
            self.stream.write("\n")
            self.stream.flush()


def terminal_progress(label: str, stream: TextIO | None = None) -> TerminalProgress | None:
    """A bar on ``stream`` (stderr by default) if it is a terminal, else None."""
    out = stream if stream is not None else sys.stderr
    return TerminalProgress(label, stream=out) if out.isatty() else None
