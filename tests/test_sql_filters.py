"""Filtering in SQL agrees with the pure-Python matcher, on random containers and filters."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ctrledger
from ctrledger.domain.filters import Conjunction, Filter, Selector, classify, match_fields

from .conftest import make

IDS = [f"c{i}" for i in range(12)]
KEYS = ["a", "b", "a.b", "x-y"]
VALUES = ["", "1", "2", "prod", "web"]
IMAGES = ["", "docker.io/nginx", "quay.io/web", "1"]
STATUS_VALUES = ["RUNNING", "EXITED", "CREATED", "OOMKilled", "Error", "Completed", "0", "1", "137", "-1", "42",
                 "007", "+1", "true", "false", "True"]


def lifecycle(store: ctrledger.Store, cid: str, step: int, rng: Any) -> None:
    """Take ``cid`` through a random part of the status lifecycle."""
    if step == 0:
        return
    store.started(cid, pid=rng.choice([1, 42, 137]), namespace="ns")
    if step == 2:
        store.paused(cid, namespace="ns")
    if step >= 3:
        store.exited(cid, exit_code=rng.choice([0, 1, 137, -1]), reason=rng.choice([None, "OOMKilled"]), namespace="ns")
    if step == 4:
        store.started(cid, pid=42, namespace="ns")


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> tuple[ctrledger.Store, list[ctrledger.Container]]:
    import random

    rng = random.Random(7)
    path = Path(tmp_path_factory.mktemp("sqlf")) / "l.db"
    store = ctrledger.open(path)
    made = []
    for cid in IDS:
        labels = {k: rng.choice(VALUES) for k in rng.sample(KEYS, rng.randint(0, len(KEYS)))}
        store.create(make(cid, image=rng.choice(IMAGES), labels=labels), namespace="ns")
        lifecycle(store, cid, rng.randint(0, 4), rng)
        made.append(store.get(cid, namespace="ns"))
    store.create(make("c0", labels={"a": "1"}), namespace="other")  # must never leak into "ns"
    store.started("c0", pid=42, namespace="other")
    assert {c.status.state for c in made} == {"CREATED", "RUNNING", "EXITED"}
    return store, made


fieldpaths = st.sampled_from(
    [("id",), ("image",), ("runtime", "name"), ("runtime",), ("snapshotter",), ("labels",)]
    + [("labels", *k.split(".")) for k in KEYS]
    + [("labels", "zzz")]
    + [("status", f) for f in ("state", "reason", "exit_code", "pid", "paused", "runs", "message", "foo")]
    + [("status",), ("status", "state", "x"), ("status", "pid", "0")]
)
regexes = st.sampled_from(["", "^$", "^c1", "1$", "prod|web", ".*", "^d", "(?i)PROD", "o",
                           "^RUN", "^1", "true", "^-", "7$", "Error|OOM"])


@st.composite
def selectors(draw: st.DrawFn) -> Selector:
    path = draw(fieldpaths)
    op = draw(st.sampled_from(["", "==", "!=", "~="]))
    if op == "":
        value = ""
    elif op == "~=":
        value = draw(regexes)
    else:
        value = draw(st.sampled_from(VALUES + IDS[:3] + IMAGES + STATUS_VALUES
                                     + [draw(st.text(string.ascii_letters, max_size=3))]))
    kind, key = classify(path)
    return Selector(path, op, value, kind, key)


filters = st.lists(
    st.lists(selectors(), max_size=3).map(lambda s: Conjunction(tuple(s))), max_size=3
).map(lambda cs: Filter(tuple(cs)))


@settings(max_examples=500, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flt=filters)
def test_sql_filtering_equals_the_pure_matcher(
    populated: tuple[ctrledger.Store, list[ctrledger.Container]], flt: Filter
) -> None:
    store, made = populated
    expected = [
        c.id for c in made
        if match_fields(flt, id=c.id, image=c.image, runtime_name=c.runtime.name, labels=c.labels, status=c.status)
    ]
    strings = [conj.render() for conj in flt.any_of]
    got = [c.id for c in store.list(*strings, namespace="ns")]
    assert got == sorted(expected)
