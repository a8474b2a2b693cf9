"""Compile a parsed containerd filter into a parameterized SQL condition.

Every user-supplied string goes in as a parameter; the SQL text is built only
from fixed fragments. The semantics are those of the pure matcher in
``ctrledger.domain.filters`` (a property test holds the two together):

* ``id``, ``image``, ``runtime.name`` are columns; absent means ``''``.
* ``labels.<key>`` is looked up in the label index. A selector that also matches
  an absent label (``!=``, or a regex matching ``""``) adds "or no such label".
* any other field is always absent, so the selector is a constant.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..domain.filters import Filter, Selector

__all__ = ["CURRENT", "Scope", "compile_filter", "register_functions"]

_COLUMN = {"id": "id", "image": "image", "runtime.name": "runtime_name"}


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


@dataclass(frozen=True)
class Scope:
    """Where labels are looked up: the live index, or the label spans valid at a point.

    ``validity`` is a fixed SQL fragment over the label table's columns (never user
    text); ``validity_params`` fill its placeholders.
    """

    label_table: str = "labels"
    validity: str = ""
    validity_params: tuple[Any, ...] = ()


CURRENT = Scope()


def _selector_sql(sel: Selector, namespace: str, params: list[Any], scope: Scope) -> str:
    if sel.kind in _COLUMN:
        return _value_predicate(sel, _COLUMN[sel.kind], params)
    if sel.kind == "label":
        table, validity = scope.label_table, scope.validity
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
