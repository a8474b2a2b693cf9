"""Points in the log, as the command line writes them (``--as-of``, ``--since``, ``--until``).

This is presentation: it turns text into the types the store takes, and decides nothing.

====================================  ====================================  ==============================
text                                  meaning                               passed to the store as
====================================  ====================================  ==============================
``@123``                              after the 123rd event of the log      ``ctrledger.Position(123)``
``v7``                                after the container's 7th event       ``ctrledger.Version(7)``
``45s`` ``30m`` ``2h`` ``3d`` ``1w``  that long before ``now()``            an aware UTC ``datetime``
anything else                         an ISO-8601 time with a zone, e.g.    the text, unchanged
                                      ``2026-11-21T09:00:00Z``
====================================  ====================================  ==============================

The store validates the rest and words the error (``Error: …``, exit 1): text that is not
ISO-8601 (``2x``, ``@x``, ``yesterday``), a time without a zone, a point in the future, a
``Version`` where one container is not meant. The only usage error (exit 2) here is a
number too large to be a point (``99999999999d`` reaches back before the year 1).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import click

import ctrledger

__all__ = ["Point", "forms", "now", "parse_point", "point_option"]

Point = ctrledger.Position | ctrledger.Version | datetime | str
"""A point as the store takes it (``as_of``, ``since``, ``until``)."""

_FORM = re.compile(r"(@|v|)([0-9]+)([smhdw]?)")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}



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
    """``text`` as a point for the store (see the module docstring).

    ``OverflowError`` (or ``ValueError``) if the number is too large to be a point.
    """
    form = _FORM.fullmatch(text.strip())
    if form is None:
        return text
    prefix, digits, unit = form.groups()
    if prefix and not unit:
        number = int(digits)
        return ctrledger.Position(number) if prefix == "@" else ctrledger.Version(number)
    if unit and not prefix:
        return now() - timedelta(**{_UNITS[unit]: int(digits)})
    return text  # "@2h", "v3d", "12": not a form of ours


def point_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Point | None:
    """Click callback: an option's text as a point (``None`` stays ``None``); a usage error if out of range."""
    if value is None:
        return None
    try:
        return parse_point(value)
    except (OverflowError, ValueError):
        raise click.BadParameter(f"{value!r} is out of range.", ctx=ctx, param=param) from None
