"""The point notation people type: ``@123``, ``v7``, ``2h``, or an ISO-8601 time.

Every shell of the store (the command line's ``--as-of``, the web view's time control) reads
the same notation, so it is written once, here, beside the filter language. Reading it
decides nothing: it turns text into what the store takes as a point, and the store validates
the rest and words the error.

====================================  ====================================  ==============================
text                                  meaning                               read as
====================================  ====================================  ==============================
``@123``                              after the 123rd event of the log      ``Position(123)``
``v7``                                after the container's 7th event       ``Version(7)``
``45s`` ``30m`` ``2h`` ``3d`` ``1w``  that long before ``now``              an aware UTC ``datetime``
anything else                         an ISO-8601 time with a zone, e.g.    the text, unchanged
                                      ``2026-11-21T09:00:00Z``
====================================  ====================================  ==============================

``now`` is passed in: nothing here reads a clock.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from .history import Position, Version

__all__ = ["POINT_FORMS", "TextPoint", "read_point"]

TextPoint = Position | Version | datetime | str
"""A point as the store takes it (``as_of``, ``since``, ``until``)."""

POINT_FORMS = re.compile(r"(@|v|)([0-9]+)([smhdw]?)")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def read_point(text: str, now: datetime) -> TextPoint:
    """``text`` as a point for the store (see the module docstring).

    ``OverflowError`` (or ``ValueError``) if the number is too large to be a point
    (``99999999999d`` reaches back before the year 1).
    """
    form = POINT_FORMS.fullmatch(text.strip())
    if form is None:
        return text
    prefix, digits, unit = form.groups()
    if prefix and not unit:
        number = int(digits)
        return Position(number) if prefix == "@" else Version(number)
    if unit and not prefix:
        return now - timedelta(**{_UNITS[unit]: int(digits)})
    return text  # "@2h", "v3d", "12": not a form of ours
