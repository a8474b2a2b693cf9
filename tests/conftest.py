"""Shared fixtures: a fresh SQLite store per test, a deterministic clock, record builders."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import ctrledger
from ctrledger import Container, Payload, Runtime

SPEC = Payload("types.containerd.io/opencontainers/runtime-spec/1/Spec", b'{"ociVersion":"1.0.2"}')
RUNC = Runtime("io.containerd.runc.v2")


class StepClock:
    """A clock that moves one second per call: timestamps are predictable."""

    def __init__(self, start: datetime = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def make(id: str = "web-1", **fields: object) -> Container:  # noqa: A002
    """A valid container record, with ``fields`` overriding the defaults."""
    base: dict[str, object] = {"id": id, "image": "docker.io/library/nginx:1.27", "runtime": RUNC, "spec": SPEC}
    base.update(fields)
    return Container(**base)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def store(db_path: Path, clock: StepClock) -> Iterator[ctrledger.Store]:
    with ctrledger.open(db_path, clock=clock, actor="tester") as s:
        yield s
