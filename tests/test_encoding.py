"""The msgpack encoding: every event round-trips exactly through the stored form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import msgpack
from eventsourcing.persistence import Mapper
from hypothesis import given
from hypothesis import strategies as st

from ctrledger.domain import container as ev
from ctrledger.domain.model import Audit, Payload, Resources, Runtime, Status
from ctrledger.persistence.transcoder import MsgPackTranscoder, packb, unpackb

mapper: Mapper[str] = Mapper(transcoder=MsgPackTranscoder())

text = st.text(max_size=20)
payloads = st.builds(Payload, text, st.binary(max_size=64))
runtimes = st.builds(Runtime, text, st.none() | payloads)
audits = st.builds(Audit, text, text, text, st.lists(text, max_size=4).map(tuple), text)
timestamps = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
labels = st.dictionaries(text, text, max_size=5)
extensions = st.dictionaries(text, payloads, max_size=3)
removed = st.lists(text, max_size=3).map(tuple)


def common() -> dict[str, Any]:
    return {
        "originator_id": st.text(min_size=1, max_size=30),
        "originator_version": st.integers(1, 2**40),
        "timestamp": timestamps,
        "audit": audits,
    }


EVENT_STRATEGIES = [
    st.builds(
        ev.Created, **common(), namespace=text, container_id=text, incarnation=st.integers(1, 1000),
        image=text, runtime=runtimes, spec=payloads, snapshotter=text, snapshot_key=text,
        labels=labels, extensions=extensions, sandbox=text,
    ),
    st.builds(ev.LabelsChanged, **common(), set=labels, removed=removed),
    st.builds(ev.ImageChanged, **common(), image=text),
    st.builds(ev.SpecUpdated, **common(), spec=payloads),
    st.builds(ev.SnapshotKeyChanged, **common(), snapshot_key=text),
    st.builds(ev.ExtensionsChanged, **common(), set=extensions, removed=removed),
    st.builds(ev.Touched, **common()),
    st.builds(ev.Deleted, **common()),
    st.builds(ev.Started, **common(), pid=st.integers(0, 2**32 - 1), started_at=timestamps),
    st.builds(ev.Exited, **common(), exit_code=st.integers(-(2**31), 2**31 - 1), reason=text, message=text,
              finished_at=timestamps),
    st.builds(ev.Paused, **common(), at=timestamps),
    st.builds(ev.Resumed, **common(), at=timestamps),
    st.builds(ev.ResourcesUpdated, **common(), at=timestamps, changed=st.fixed_dictionaries({}, optional={
        "cpu_quota": st.integers(-(2**63), 2**63 - 1), "cpuset_cpus": text,
        "hugepage_limits": st.lists(st.tuples(text, st.integers(0, 2**64 - 1)), max_size=2).map(tuple),
        "unified": st.dictionaries(text, text, max_size=2),
    })),
]
events = st.one_of(*EVENT_STRATEGIES)


def test_the_strategy_covers_every_event_class() -> None:
    built = {repr(s).removeprefix("builds(").split(",")[0] for s in EVENT_STRATEGIES}
    assert built == {cls.__name__ for cls in ev.EVENT_CLASSES}



@given(events)
def test_every_event_round_trips_through_the_stored_form(event: ev.ContainerEvent) -> None:
    stored = mapper.to_stored_event(event)
    assert stored.topic == type(event).TOPIC
    back = mapper.to_domain_event(stored)
    assert type(back) is type(event)
    assert back == event
    assert back.timestamp.tzinfo is not None


def _reference(obj: Any) -> msgpack.ExtType:
    """The module docstring's table, spelled out with ``msgpack.ExtType`` and ``msgpack.packb``."""
    def pack(value: Any) -> bytes:
        data: bytes = msgpack.packb(value, default=_reference, strict_types=True, use_bin_type=True)
        return data

    if isinstance(obj, datetime):
        return msgpack.ExtType(1, pack((obj - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)))
    if isinstance(obj, tuple):
        return msgpack.ExtType(6, pack(list(obj)))
    if isinstance(obj, Payload):
        return msgpack.ExtType(3, pack([obj.type_url, obj.value]))
    if isinstance(obj, Runtime):
        return msgpack.ExtType(4, pack([obj.name, obj.options]))
    if isinstance(obj, Audit):
        return msgpack.ExtType(5, pack([obj.actor, obj.reason, obj.correlation_id, list(obj.fieldpaths), obj.client]))
    if isinstance(obj, Resources):
        return msgpack.ExtType(7, pack([
            obj.cpu_period, obj.cpu_quota, obj.cpu_shares, obj.memory_limit_in_bytes, obj.oom_score_adj,
            obj.cpuset_cpus, obj.cpuset_mems, [list(p) for p in obj.hugepage_limits], dict(obj.unified),
            obj.memory_swap_limit_in_bytes]))
    raise TypeError(type(obj).__name__)


@given(events)
def test_the_stored_bytes_are_the_documented_encoding(event: ev.ContainerEvent) -> None:
    """Byte for byte (the hashes cover them): the packer's shortcuts change nothing stored."""
    state = {k: v for k, v in vars(event).items() if k not in ("originator_id", "originator_version")}
    if getattr(type(event), "class_version", 1) > 1:
        state["class_version"] = type(event).class_version
    assert mapper.to_stored_event(event).state == msgpack.packb(
        state, default=_reference, strict_types=True, use_bin_type=True)


@given(st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text() | st.binary()
    | timestamps | st.uuids() | payloads,
    lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=4).map(tuple)
    | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
))
def test_values_round_trip_exactly(value: Any) -> None:
    assert unpackb(packb(value)) == value


def test_types_survive_not_just_values() -> None:
    value = {"t": (1, 2), "l": [1, 2], "b": b"\x00\xff", "u": UUID(int=7), "d": datetime(2026, 1, 1, tzinfo=UTC)}
    back = unpackb(packb(value))
    assert type(back["t"]) is tuple and type(back["l"]) is list and type(back["b"]) is bytes
    assert type(back["u"]) is UUID and back["d"].tzinfo is not None


def test_non_utc_datetimes_are_stored_as_the_same_instant() -> None:
    from datetime import timezone

    local = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert unpackb(packb(local)) == local


def test_naive_datetimes_are_refused() -> None:
    import pytest

    with pytest.raises(TypeError, match="naive"):
        packb(datetime(2026, 1, 1))


def test_a_status_round_trips_exactly_for_snapshots() -> None:
    """Snapshots hold the aggregate's Status and Resources: both round-trip, state derived again."""
    t0 = datetime(2026, 11, 30, 3, 12, tzinfo=UTC)
    resources = Resources(cpu_period=100_000, cpu_quota=50_000, memory_limit_in_bytes=16 << 20, oom_score_adj=-500,
                          cpuset_cpus="0-1", hugepage_limits=(("2MB", 4 << 20),), unified={"memory.high": "max"})
    for status in (Status(created_at=t0),
                   Status(pid=4242, created_at=t0, started_at=t0 + timedelta(seconds=1), resources=resources, runs=1),
                   Status(pid=0, created_at=t0, started_at=t0, finished_at=t0 + timedelta(hours=1), exit_code=137,
                          reason="OOMKilled", message="killed", paused=False, resources=resources, runs=3)):
        back = unpackb(packb({"status": status}))["status"]
        assert back == status and back.state == status.state
        assert type(back.resources.hugepage_limits) is tuple
