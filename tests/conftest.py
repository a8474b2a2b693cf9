"""Shared fixtures: a fresh SQLite store per test, a deterministic clock, record builders."""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

# The replay kit is an opt-in plugin (test_replay_plugin.py loads it): rewrite its asserts even
# though a test module imports it before pytest loads it as a plugin.
pytest.register_assert_rewrite("ctrledger.testing")

import ctrledger  # noqa: E402
from ctrledger import Container, Payload, Runtime  # noqa: E402

from .live_containerd import Containerd, missing, rootfs  # noqa: E402

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


# -- backends: every test that takes ``target`` (or ``store``) runs on SQLite and on PostgreSQL ----

POSTGRES_URL = os.environ.get("CTRLEDGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def missing_component(reason: str) -> None:
    """A real component (PostgreSQL, containerd, ctr, Chromium) is not there: on CI the test fails, elsewhere it skips.

    CI must run every test against the real thing; a developer's machine may lack one, and says why.
    """
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI needs this component: {reason}", pytrace=False)
    pytest.skip(reason)


def _backend(item: pytest.Item) -> object:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("target") if callspec is not None else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``sqlite_only`` inspect the SQLite file itself: their PostgreSQL variants are not collected."""
    kept = [
        item for item in items
        if not (item.get_closest_marker("sqlite_only") and _backend(item) == "postgres")
    ]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


@functools.cache
def postgres_unreachable() -> str | None:
    """Why PostgreSQL cannot be used for tests, or None if it can."""
    try:
        import psycopg

        from ctrledger.persistence.postgres import parse_url

        settings, _ = parse_url(POSTGRES_URL)
        psycopg.connect(
            host=settings["POSTGRES_HOST"], port=settings["POSTGRES_PORT"], dbname=settings["POSTGRES_DBNAME"],
            user=settings["POSTGRES_USER"], connect_timeout=3,
        ).close()
    except Exception as e:  # noqa: BLE001 - any failure means: no server to test against
        return f"no PostgreSQL server reachable at {POSTGRES_URL} ({type(e).__name__}: {e})"
    return None


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema in the test database (dropped afterwards): runs never interfere."""
    import psycopg

    reason = postgres_unreachable()
    if reason:
        missing_component(reason)
    name = f"t_{uuid.uuid4().hex[:12]}"
    conninfo = POSTGRES_URL.split("?")[0]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


def own_postgres_ports(server_port: int = 5432) -> list[int]:
    """The local ports of this process's TCP connections to the PostgreSQL server (from
    ``/proc``): what a test that terminates backends selects its own by, so that it never cuts
    another suite's connections on a shared server."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = []
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == server_port:
                ports.append(int(local.rsplit(":", 1)[1], 16))
    return sorted(ports)


def postgres_url(schema: str, readmodel: Path) -> str:
    return f"{POSTGRES_URL.split('?')[0]}?schema={schema}&readmodel={readmodel}"


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a store lives: an SQLite file, or a PostgreSQL log with a local read model."""
    if request.param == "sqlite":
        yield str(tmp_path / "ledger.db")
        return
    with postgres_schema() as schema:
        yield postgres_url(schema, tmp_path / "node.db")


@pytest.fixture
def store(target: str, clock: StepClock) -> Iterator[ctrledger.Store]:
    with ctrledger.open(target, clock=clock, actor="tester", follow=False) as s:
        yield s


# -- a real containerd (tests/live_containerd.py) -----------------------------------------


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    """One containerd per test module (temp-dir config, CRI disabled, stopped by PID); each test
    works in namespaces of its own. Missing: a failure on CI, a skip with the reason elsewhere."""
    why = missing()
    if why is not None:
        missing_component(why)
    c = Containerd(tmp_path_factory.mktemp("containerd") / "cd").start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A minimal root filesystem for ``ctr run --rootfs``."""
    return rootfs(tmp_path_factory.mktemp("rootfs"))
