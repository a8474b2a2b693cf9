"""Compile a parsed containerd filter into a parameterized SQL condition.

Every user-supplied string goes in as a parameter; the SQL text is built only
from fixed fragments. The semantics are those of the pure matcher in
``ctrledger.domain.filters`` (a property test holds the two together):

* ``id``, ``image``, ``runtime.name`` are columns; absent means ``''``.
* ``labels.<key>`` is looked up in ``label_spans`` (its open spans, or those valid at a
  point). A selector that also matches an absent label (``!=``, or a regex matching
  ``""``) adds "or no such label".
* ``status.state`` and ``status.reason`` are text columns (absent means ``''``);
  ``status.pid`` and ``status.exit_code`` integer columns, NULL when absent, compared as
  integers when the value is an integer's decimal form (anything else can equal no
  value); ``status.paused`` a 0/1 column read as ``true``/``false``. State is indexed
  with the ID (so a state filter also gives the order); reason, pid and exit code by
  partial indexes over the rows that have one (``schema.py``, version 4).
* any other field is always absent, so the selector is a constant.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..domain.filters import Filter, Selector

__all__ = ["CURRENT", "Scope", "compile_filter", "register_functions"]

_COLUMN = {"id": "id", "image": "image", "runtime.name": "runtime_name",
           "status.state": "status_state", "status.reason": "status_reason"}
_INT_COLUMN = {"status.pid": "status_pid", "status.exit_code": "status_exit_code"}
_INT64 = (-(1 << 63), (1 << 63) - 1)


@lru_cache(maxsize=256)
def _matcher(pattern: str) -> Selector:
    # The domain's own ~= selector, so SQL and the pure matcher share one RE2 setup.
    return Selector(("id",), "~=", pattern, "id", None)


def _regexp(pattern: str, text: str | None) -> int:
    return 1 if _matcher(pattern).search(text or "") else 0


def register_functions(conn: sqlite3.Connection) -> None:
    """Register ``ctrledger_re(pattern, text)`` (RE2, unanchored search) on ``conn``."""
    conn.create_function("ctrledger_re", 2, _regexp, deterministic=True)


def _value_predicate(sel: Selector, column: str, params: list[Any]) -> str:
    op = sel.operator
    if op == "":
        return f"{column} <> ''"
    if op == "==":
        if sel.value == "":
            return "0"
        params.append(sel.value)
        return f"{column} = ?"
    if op == "!=":
        params.append(sel.value)
        return f"{column} <> ?"
    if op == "~=":
        params.append(sel.value)
        return f"ctrledger_re(?, {column})"
    raise AssertionError(f"unknown operator {op!r}")


def _canonical_int(text: str) -> int | None:
    """The integer whose decimal form is exactly ``text`` (and fits SQLite), else None."""
    try:
        n = int(text)
    except ValueError:
        return None
    return n if str(n) == text and _INT64[0] <= n <= _INT64[1] else None


def _int_predicate(sel: Selector, column: str, params: list[Any]) -> str:
    op, value = sel.operator, sel.value
    if op == "":
        return f"{column} IS NOT NULL"
    if op == "~=":
        params.append(value)
        return f"ctrledger_re(?, COALESCE(CAST({column} AS TEXT), ''))"
    n = _canonical_int(value)
    if op == "==":
        if n is None:
            return "0"
        params.append(n)
        return f"{column} = ?"
    if op == "!=":
        if value == "":
            return f"{column} IS NOT NULL"
        if n is None:
            return "1"
        params.append(n)
        return f"({column} IS NULL OR {column} <> ?)"
    raise AssertionError(f"unknown operator {op!r}")


def _paused_predicate(sel: Selector, params: list[Any]) -> str:
    op, value = sel.operator, sel.value
    flag = {"true": 1, "false": 0}.get(value)
    if op == "":
        return "1"
    if op == "~=":
        params.append(value)
        return "ctrledger_re(?, CASE status_paused WHEN 1 THEN 'true' ELSE 'false' END)"
    if op == "==":
        return "0" if flag is None else f"status_paused = {flag}"
    if op == "!=":
        return "1" if flag is None else f"status_paused <> {flag}"
    raise AssertionError(f"unknown operator {op!r}")


@dataclass(frozen=True)
class Scope:
    """Which label spans a label selector looks up: the open ones (the live labels), or
    those valid at a point.

    ``validity`` is a fixed SQL fragment over ``label_spans``' columns (never user
    text); ``validity_params`` fill its placeholders.
    """

    validity: str = " AND to_pos IS NULL"
    validity_params: tuple[Any, ...] = ()


CURRENT = Scope()


def _selector_sql(sel: Selector, namespace: str, params: list[Any], scope: Scope) -> str:
    if sel.kind in _COLUMN:
        return _value_predicate(sel, _COLUMN[sel.kind], params)
    if sel.kind in _INT_COLUMN:
        return _int_predicate(sel, _INT_COLUMN[sel.kind], params)
    if sel.kind == "status.paused":
        return _paused_predicate(sel, params)
    if sel.kind == "label":
        table, validity = "label_spans", scope.validity
        params.extend((namespace, sel.label_key))
        present = _value_predicate(sel, "value", params)
        params.extend(scope.validity_params)
        sql = f"id IN (SELECT id FROM {table} WHERE namespace = ? AND key = ? AND {present}{validity})"
        if sel.matches("", False):
            params.extend((namespace, sel.label_key, *scope.validity_params))
            sql = f"({sql} OR id NOT IN (SELECT id FROM {table} WHERE namespace = ? AND key = ?{validity}))"
        return sql
    return "1" if sel.matches("", False) else "0"


def compile_filter(flt: Filter, namespace: str, scope: Scope = CURRENT) -> tuple[str, list[Any]]:
    """A SQL condition over container rows of ``namespace`` (live, or as of a point), and its parameters."""
    if flt.matches_everything:
        return "1", []
    params: list[Any] = []
    alternatives = []
    for conj in flt.any_of:
        parts = [_selector_sql(sel, namespace, params, scope) for sel in conj.selectors]
        alternatives.append("(" + " AND ".join(parts) + ")" if parts else "1")
    return " OR ".join(alternatives), params
