"""The status columns of the read models (``containers`` and ``versions``): one layout, two tables.

=========================  ========  ====================================================
column                     type      holds
=========================  ========  ====================================================
``status_state``           TEXT      ``CREATED`` / ``RUNNING`` / ``EXITED`` (derived, kept
                                     for the filters' index)
``status_pid``             INTEGER   the pid; NULL for 0 (no process)
``status_started_at``      INTEGER   microseconds since the epoch, or NULL
``status_finished_at``     INTEGER   microseconds since the epoch, or NULL
``status_exit_code``       INTEGER   the exit code while EXITED, else NULL
``status_reason``          TEXT      ``""`` when none
``status_message``         TEXT      ``""`` when none
``status_paused``          INTEGER   0 or 1
``status_resources``       BLOB      msgpack map of the resource fields that are set, or
                                     NULL when none is
``status_runs``            INTEGER   how many times this incarnation started
=========================  ========  ====================================================

NULL stands where a filter sees the field as absent, so ``status.pid`` (presence) is
``status_pid IS NOT NULL``. A row written before these columns existed (schema 2) gets
their defaults: a container that never started, CREATED, exactly what a replay of its
events gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from ..domain.model import NO_RESOURCES, RESOURCE_FIELDS, Resources, Status, created_status
from ..persistence.transcoder import packb, unpackb

__all__ = ["DEFAULT_STATUS", "STATUS_COLUMNS", "STATUS_COLUMN_TYPES", "columns_of", "status_of"]

#: name -> (SQL type, NOT NULL default or None)
STATUS_COLUMN_TYPES: Final[dict[str, tuple[type, object]]] = {
    "status_state": (str, "CREATED"),
    "status_pid": (int, None),
    "status_started_at": (int, None),
    "status_finished_at": (int, None),
    "status_exit_code": (int, None),
    "status_reason": (str, ""),
    "status_message": (str, ""),
    "status_paused": (int, 0),
    "status_resources": (bytes, None),
    "status_runs": (int, 0),
}
STATUS_COLUMNS: Final = tuple(STATUS_COLUMN_TYPES)
#: the column values of a container never started (each column's default)
DEFAULT_STATUS: Final = tuple(default for _, default in STATUS_COLUMN_TYPES.values())

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(ts: datetime | None) -> int | None:
    if ts is None:
        return None
    d = ts - _EPOCH
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


def columns_of(status: Status) -> dict[str, Any]:
    """The status as column values."""
    r = status.resources
    set_fields = {name: getattr(r, name) for name in RESOURCE_FIELDS if getattr(r, name)}
    if "unified" in set_fields:
        set_fields["unified"] = dict(set_fields["unified"])
    return {
        "status_state": status.state,
        "status_pid": status.pid or None,
        "status_started_at": _micros(status.started_at),
        "status_finished_at": _micros(status.finished_at),
        "status_exit_code": status.exit_code if status.finished_at is not None else None,
        "status_reason": status.reason,
        "status_message": status.message,
        "status_paused": 1 if status.paused else 0,
        "status_resources": packb(set_fields) if set_fields else None,
        "status_runs": status.runs,
    }


def status_of(values: Sequence[Any], created_at: datetime) -> Status:
    """A ``Status`` from the column values (in ``STATUS_COLUMNS`` order; none: ``DEFAULT_STATUS``),
    without re-validating."""
    if not values:
        return created_status(created_at)  # what DEFAULT_STATUS reads as, the long way
    _state, pid, started, finished, exit_code, reason, message, paused, resources, runs = values
    obj = object.__new__(Status)
    object.__setattr__(obj, "__dict__", {  # a literal, handed over: no keyword arguments, no copy
        "state": _state,
        "pid": pid or 0,
        "created_at": created_at,
        "started_at": None if started is None else _EPOCH + timedelta(0, 0, started),
        "finished_at": None if finished is None else _EPOCH + timedelta(0, 0, finished),
        "exit_code": exit_code or 0,
        "reason": reason,
        "message": message,
        "paused": bool(paused),
        "resources": NO_RESOURCES if resources is None else Resources(**unpackb(resources)),
        "runs": runs,
    })
    return obj
