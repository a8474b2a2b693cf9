"""Points in the log, as the command line writes them (``--as-of``, ``--since``, ``--until``).

This is presentation: it turns text into the types the store takes, and decides nothing. The
notation itself is read by ``ctrledger.domain.points`` (the web view reads the same).

====================================  ====================================  ==============================
text                                  meaning                               passed to the store as
====================================  ====================================  ==============================
``@123``                              after the 123rd event of the log      ``ctrledger.Position(123)``
``v7``                                after the container's 7th event       ``ctrledger.Version(7)``
``45s`` ``30m`` ``2h`` ``3d`` ``1w``  that long before ``now()``            an aware UTC ``datetime``
anything else                         an ISO-8601 time with a zone, e.g.    an aware UTC ``datetime``
                                      ``2026-11-21T09:00:00Z``
====================================  ====================================  ==============================

Text that is none of these is a usage error (exit 2) naming the option: not ISO-8601 (``2x``,
``@x``, ``yesterday``), a time without a zone, a number too large to be a point
(``99999999999d`` reaches back before the year 1). The time is read by the library's own
``parse_time``. The store decides the rest and words the error (``Error: …``, exit 1): a point
in the future, a ``Version`` where one container is not meant.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

import ctrledger
from ctrledger.domain.points import read_point

__all__ = ["Point", "forms", "now", "parse_point", "point_option"]

Point = ctrledger.Position | ctrledger.Version | datetime | str
"""A point as the store takes it (``as_of``, ``since``, ``until``)."""


def forms(*, position: bool = True, version: bool = False) -> str:
    """The forms an option takes, for its help, so that every command words them alike."""
    named = ["an ISO-8601 time with a zone (2026-11-21T09:00:00Z)", "a time ago (45s, 30m, 2h, 3d, 1w)"]
    if position:
        named.append("@N (after the N-th event of the whole log)")
    if version:
        named.append("vN (after the container's N-th event)")
    return ", ".join(named[:-1]) + " or " + named[-1]


def now() -> datetime:
    """The current time, in UTC: what relative points count back from (tests replace it)."""
    return datetime.now(UTC)


def parse_point(text: str) -> Point:
    """``text`` as a point for the store (see the module docstring), relative forms counted back from
    :func:`now`; the notation is read by ``ctrledger.domain.points``, shared with the web view.

    ``ValueError`` naming the problem if it is not a point; ``OverflowError`` if the number is
    too large to be one.
    """
    from ctrledger.domain.history import parse_time  # the library's own reading of a time

    try:
        point = read_point(text, now())
    except ValueError:  # more digits than Python converts: far out of range anyway
        raise OverflowError(f"{text!r} is out of range") from None
    return parse_time(point) if isinstance(point, str) else point  # not a form of ours: a time, or ValueError


def point_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Point | None:
    """Click callback: an option's text as a point (``None`` stays ``None``); a usage error (exit 2) if
    it is not one (not a time, not a point of ours, out of range)."""
    if value is None:
        return None
    try:
        return parse_point(value)
    except OverflowError:
        raise click.BadParameter(f"{value!r} is out of range.", ctx=ctx, param=param) from None
    except ValueError as e:
        raise click.BadParameter(f"{e}.", ctx=ctx, param=param) from None
