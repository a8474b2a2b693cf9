"""Hostile input through the whole public API: only StoreError escapes, and a refused call
leaves the log as it was (issue 10: lone surrogates, 999+ filters, wrong types, extreme
datetimes and integers)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ctrledger
from ctrledger import Container, Payload, Position, Runtime, StoreError, Version

from .conftest import StepClock, make

SURROGATE = "\udc80"
hostile_text = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["", "web-1", "default", "ns", SURROGATE, f"a{SURROGATE}b", "a" * 300, "labels.x", "image",
                     "id==web-1", "labels.x==1", "@1", "2026-11-21T03:00:00Z", "x" * 5000, "\x00", "Created"]),
)
hostile_int = st.one_of(st.integers(-3, 30), st.sampled_from([10**20, -(10**20), 2**63, 2**64 + 1]))
extreme_time = st.sampled_from([
    datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC), datetime(2026, 11, 21, 3, 0, 1, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=23))),
    datetime(9999, 12, 31, tzinfo=timezone(timedelta(hours=-23))),
    datetime(2026, 1, 1),  # naive
])
numbers = st.sampled_from([0, 1, 3, 5, 10**20, 2**63])
point = st.one_of(extreme_time, hostile_text, hostile_int, numbers.map(Version), numbers.map(Position),
                  st.none(), st.floats(allow_nan=True))
scalar = st.one_of(hostile_text, hostile_int, st.none(), st.booleans(), st.binary(max_size=4), extreme_time,
                   st.floats(allow_nan=True))
many_strings = st.one_of(
    st.lists(hostile_text, max_size=4),
    st.sampled_from([["id==x"] * 1200, [f"labels.k{i}==v" for i in range(1000)]]),
    st.just([",".join(f"id==x{i}" for i in range(1100))]),
)
anything = st.one_of(scalar, many_strings, st.dictionaries(hostile_text, scalar, max_size=2), point)


@st.composite
def containers(draw: Any) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(anything)
    return Container(
        id=draw(st.one_of(st.sampled_from(["web-1", "db", "c0"]), hostile_text)),
        labels=draw(st.one_of(st.dictionaries(hostile_text, hostile_text, max_size=3),
                              st.dictionaries(hostile_text, scalar, max_size=2))),
        image=draw(st.one_of(hostile_text, scalar)),
        runtime=draw(st.one_of(st.just(Runtime("runc")), hostile_text.map(Runtime), hostile_text, scalar)),
        spec=draw(st.one_of(st.just(Payload("t", b"")), hostile_text.map(lambda t: Payload(t, b"")), scalar)),
        snapshotter=draw(st.one_of(st.just(""), hostile_text)),
        snapshot_key=draw(st.one_of(st.just(""), hostile_text)),
        extensions=draw(st.one_of(st.just({}), st.dictionaries(hostile_text, st.just(Payload("e", b"")), max_size=2),
                                  st.dictionaries(hostile_text, scalar, max_size=1))),
        sandbox=draw(st.one_of(st.just(""), hostile_text)),
    )


def kw(**strategies: Any) -> Any:
    return st.fixed_dictionaries({}, optional=strategies)


common = {"namespace": st.one_of(st.just("default"), hostile_text, scalar)}
write = {**common, "actor": scalar, "reason": scalar, "correlation_id": scalar, "request_id": scalar}
CALLS: dict[str, Any] = {
    "get": st.tuples(st.tuples(st.one_of(st.just("c0"), hostile_text, scalar)), kw(as_of=point, **common)),
    "list": st.tuples(many_strings.map(tuple), kw(as_of=point, **common)),
    "scan": st.tuples(many_strings.map(tuple), kw(as_of=point, **common)),
    "history": st.tuples(st.tuples(st.one_of(st.just("c0"), hostile_text, scalar)), kw(**common)),
    "diff": st.tuples(st.tuples(st.one_of(st.just("c0"), hostile_text)),
                      st.fixed_dictionaries({"since": point}, optional={"until": point, **common})),
    "changes": st.tuples(st.just(()), st.fixed_dictionaries(
        {"since": point}, optional={"until": point, "filters": anything, **common})),
    "audit": st.tuples(st.just(()), kw(actor=anything, since=point, until=point, kinds=anything, namespace=scalar,
                                       id=anything, correlation_id=anything, client=anything, reason=anything)),
    "create": st.tuples(st.tuples(containers()), kw(**write)),
    "update": st.tuples(st.tuples(containers()).flatmap(lambda c: many_strings.map(lambda p: (*c, *p))),
                        kw(expected_version=anything, **write)),
    "delete": st.tuples(st.tuples(st.one_of(st.just("c0"), hostile_text, scalar)),
                        kw(expected_version=anything, **write)),
    "prove": st.tuples(st.tuples(st.one_of(hostile_int, scalar)), kw(checkpoint=anything)),
    "prove_consistency": st.tuples(st.tuples(anything), kw(new=anything)),
    "checkpoint": st.tuples(st.just(()), kw(sign_with=anything)),
    "export": st.tuples(st.just(()), kw(since=point, until=point, namespaces=anything)),
    "replay_to": st.tuples(st.just(()), st.fixed_dictionaries({"as_of": point})),
    "verify": st.tuples(st.tuples(anything), st.just({})),
    "migrate": st.tuples(st.just(()), kw(accept_unhashed=anything)),
    "namespaces": st.tuples(st.just(()), st.just({})),
    "events_after": st.tuples(st.one_of(st.just(()), st.tuples(st.one_of(hostile_int, scalar))),
                              kw(limit=st.one_of(hostile_int, scalar))),
    "observe": st.tuples(st.tuples(st.one_of(st.just("c0"), hostile_text, scalar),
                                   st.one_of(st.none(), containers())),
                         kw(at=point, client=scalar, **write)),
    "observe_many": st.tuples(
        st.tuples(st.one_of(anything, st.lists(st.one_of(
            st.tuples(st.one_of(st.just("c0"), hostile_text, scalar), st.one_of(st.none(), containers()), point),
            anything), max_size=3))),
        kw(client=scalar, **write)),
}
_TMP = Path(tempfile.mkdtemp(prefix="ctrledger-fuzz-"))
_STORE: ctrledger.Store | None = None


def _store() -> ctrledger.Store:
    global _STORE
    if _STORE is None:
        _STORE = ctrledger.open(_TMP / "fuzz.db", clock=StepClock(), follow=False)
        for i in range(3):
            _STORE.create(make(f"c{i}", labels={"k": str(i)}))
        _STORE.update(Container(id="c0", image="i:2"), "image")
    return _STORE


def _run(store: ctrledger.Store, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if name == "export":
        return store.export(_TMP / "out.ctrlarchive", **kwargs)
    if name == "replay_to":
        target = _TMP / "then.db"
        target.unlink(missing_ok=True)
        return store.replay_to(target, **kwargs)
    if name == "verify":
        return ctrledger.verify(args[0]) if isinstance(args[0], ctrledger.Store) else ctrledger.verify(store, *args)
    if name == "migrate":
        return ctrledger.migrate(store.path, **kwargs)
    result = getattr(store, name)(*args, **kwargs)
    if hasattr(result, "__next__"):
        result = list(result)
    return result


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(sorted(CALLS)).flatmap(lambda n: st.tuples(st.just(n), CALLS[n])))
def test_only_store_errors_escape_and_a_refusal_writes_nothing(call: Any) -> None:
    name, (args, kwargs) = call
    store = _store()
    before = store.position
    try:
        _run(store, name, args, kwargs)
    except StoreError:
        assert store.position == before, f"{name} refused but wrote"
    # anything else propagates and fails the test, naming the input


BAD = f"web{SURROGATE}1"
ID_CALLS: dict[str, Callable[[ctrledger.Store, str, str], object]] = {  # every Store method that takes an ID
    "get": lambda s, cid, ns: s.get(cid, namespace=ns),
    "get-as-of": lambda s, cid, ns: s.get(cid, namespace=ns, as_of=Version(1)),
    "history": lambda s, cid, ns: list(s.history(cid, namespace=ns)),
    "diff": lambda s, cid, ns: s.diff(cid, namespace=ns, since=Position(1)),
    "audit": lambda s, cid, ns: list(s.audit(namespace=ns, id=cid)),
    "create": lambda s, cid, ns: s.create(make(cid), namespace=ns),
    "update": lambda s, cid, ns: s.update(Container(id=cid, labels={"a": "1"}), "labels.a", namespace=ns),
    "delete": lambda s, cid, ns: s.delete(cid, namespace=ns),
    "started": lambda s, cid, ns: s.started(cid, pid=1, namespace=ns),
    "exited": lambda s, cid, ns: s.exited(cid, exit_code=1, namespace=ns),
    "paused": lambda s, cid, ns: s.paused(cid, namespace=ns),
    "resumed": lambda s, cid, ns: s.resumed(cid, namespace=ns),
    "update_resources": lambda s, cid, ns: s.update_resources(cid, ctrledger.Resources(), namespace=ns),
    "observe-absent": lambda s, cid, ns: s.observe(cid, None, namespace=ns),
    "observe": lambda s, cid, ns: s.observe(cid, make(cid), namespace=ns),
    "observe_many-absent": lambda s, cid, ns: s.observe_many([(cid, None, None)], namespace=ns),
}


def test_a_lone_surrogate_in_an_id_or_a_namespace_is_invalid_argument_everywhere(tmp_path: Path) -> None:
    """The class of the campaign's find (observe of an absent ID with a lone surrogate raised
    UnicodeEncodeError): every method that takes an ID refuses such text by name, and writes nothing."""
    with ctrledger.open(tmp_path / "s.db", clock=StepClock()) as store:
        store.create(make("web-1"))
        head = store.position
        for name, call in ID_CALLS.items():
            for cid, ns in ((BAD, "default"), ("web-1", f"default{SURROGATE}")):
                try:
                    call(store, cid, ns)
                except ctrledger.InvalidArgument as e:
                    assert "lone surrogate" in str(e) or "invalid" in str(e), (name, e)
                else:
                    raise AssertionError(f"{name}({cid!r}, namespace={ns!r}) was accepted")
        assert store.position == head
