"""The ctrledger test kit, an opt-in pytest plugin: given/when/then over a real store, golden
logs, deterministic runs.

Nothing is loaded unless a project asks for it: ``pytest -p ctrledger.testing``, or
``pytest_plugins = ["ctrledger.testing"]`` in a test module or the root ``conftest.py``.
Every fixture is namespaced ``ctrledger_``:

==========================  ===========================================================================
fixture                     what it gives
==========================  ===========================================================================
``ctrledger_store``         a fresh store in ``tmp_path``, with ``ctrledger_clock``, actor ``"tester"``
                            and correlation ids from ``ctrledger_ids``: the same test writes the same bytes
``ctrledger_clock``         ``DeterministicClock``: 2026-01-01T00:00:00Z, one second later per call
``ctrledger_ids``           ``DeterministicIds``: UUID-shaped ids 00000000-0000-4000-8000-000000000001, ...
``ctrledger_scenario``      ``Scenario`` on ``ctrledger_store``: ``given(...)``, ``when(...)``,
                            ``then_events(...)``, ``then_raises(...)``, ``then(...)``
``ctrledger_golden_log``    ``GoldenLog``: replay an archive, compare the answers with a JSON file;
                            ``pytest --ctrledger-regen`` rewrites the files instead
==========================  ===========================================================================

A worked example is in ``docs/howto/replay.md``. The kit sits above the store (it opens
stores through the public API), beside the CLI.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent

from ..domain.container import ContainerAggregate, ContainerEvent
from ..domain.history import Position, to_json_value
from ..domain.model import Audit, Container
from ..errors import StoreError
from ..persistence.log import SQLiteLog, log_head
from ..replay.exchange import import_
from ..replay.log import check_streams
from ..store import Store
from ..store import open as open_store

__all__ = ["DeterministicClock", "DeterministicIds", "GoldenLog", "Scenario", "created"]

START = datetime(2026, 1, 1, tzinfo=UTC)
REGEN = "--ctrledger-regen"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ctrledger")
    group.addoption(REGEN, action="store_true", default=False,
                    help="ctrledger: rewrite golden-log expectation files from the current answers")


# -- determinism ------------------------------------------------------------------------------


class DeterministicClock:
    """A clock for stores: ``start``, then ``step`` later on every call."""

    def __init__(self, start: datetime = START, step: timedelta = timedelta(seconds=1)) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


class DeterministicIds:
    """Correlation ids in UUID form, numbered from 1."""

    def __init__(self) -> None:
        self.issued = 0

    def __call__(self) -> str:
        self.issued += 1
        return str(uuid.UUID(int=self.issued, version=4))


@pytest.fixture
def ctrledger_clock() -> DeterministicClock:
    return DeterministicClock()


@pytest.fixture
def ctrledger_ids() -> DeterministicIds:
    return DeterministicIds()


@pytest.fixture
def ctrledger_store(
    tmp_path: Path, ctrledger_clock: DeterministicClock, ctrledger_ids: DeterministicIds
) -> Iterator[Store]:
    """A fresh ``ctrledger.Store`` that writes the same bytes every run."""
    with open_store(tmp_path / "ledger.db", clock=ctrledger_clock, actor="tester",
                    correlation_ids=ctrledger_ids) as store:
        yield store


# -- given / when / then ------------------------------------------------------------------------


def created(
    record: Container, *, namespace: str = "default", at: datetime = START, actor: str = "tester",
    correlation_id: str = "given",
) -> ContainerEvent:
    """The ``Created`` event of ``record`` (version 1 of its stream), for ``given``."""
    agg = ContainerAggregate.create(namespace, record, Audit(actor, "", correlation_id), at)
    event: ContainerEvent = agg.collect_events()[0]  # type: ignore[assignment]
    return event


Fact = Any  # a domain event, an iterable of them, an archive path, or a callable taking the store
Expected = str | type | Callable[[Any], bool]


class Scenario:
    """Given some history, when a command runs, then these events (or this error).

    Every method returns the scenario, so a test reads as one chain::

        scenario.given(created(make("web"))).when(lambda s: s.delete("web")).then_events("Deleted")
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.result: Any = None
        self.error: BaseException | None = None
        self.events: list[Any] = []
        self._ran = False

    # given

    def given(self, *facts: Fact) -> Scenario:
        """Put history in the log: domain events (appended as stored by the store's mapper),
        archive paths (imported), or callables run against the store (its own commands)."""
        pending: list[Any] = []
        for fact in facts:
            if isinstance(fact, (str, os.PathLike)):
                self._append(pending)
                pending = []
                import_(fact, into=self.store)
            elif _is_event(fact):
                pending.append(fact)
            elif callable(fact):
                self._append(pending)
                pending = []
                fact(self.store)
            elif isinstance(fact, Iterable):
                items = list(fact)
                if not all(_is_event(e) for e in items):
                    raise TypeError("given() takes domain events, archive paths or callables")
                pending.extend(items)
            else:
                raise TypeError(f"given() cannot use {type(fact).__name__}")
        self._append(pending)
        return self

    def _append(self, events: Sequence[Any]) -> None:
        if not events:
            return
        log = self.store.log
        rows = [(s.originator_id, s.originator_version, s.topic, s.state)
                for s in map(log.mapper.to_stored_event, events)]
        if not isinstance(log, SQLiteLog):
            raise TypeError("given() appends events to an embedded (SQLite) log only")
        log.append_stored(
            rows, check=lambda cur, head: check_streams(cur, rows, list(range(head + 1, head + 1 + len(rows)))))

    # when

    def when(self, command: Callable[[Any], Any]) -> Scenario:
        """Run ``command(store)``; a ``StoreError`` it raises is kept for ``then_raises``."""
        with self.store.read_model.synced() as conn:
            before = log_head(conn)
        try:
            self.result = command(self.store)
        except StoreError as e:
            self.error = e
        self._ran = True
        with self.store.read_model.synced() as conn:
            rows = conn.execute(
                "SELECT originator_id, originator_version, topic, state FROM stored_events WHERE rowid > ? "
                "ORDER BY rowid", (before,)).fetchall()
        self.events = [self.store.mapper.to_domain_event(StoredEvent(*r)) for r in rows]
        return self

    # then

    def _require_run(self) -> None:
        if not self._ran:
            raise AssertionError("then_*() before when(): run the command first")

    def then_events(self, *expected: Expected) -> Scenario:
        """The command emitted exactly these events, in order: kind names (``"LabelsChanged"``),
        event classes, or predicates over the event."""
        self._require_run()
        if self.error is not None:
            raise AssertionError(f"expected events, but the command raised {self.error!r}") from self.error
        kinds = [type(e).__name__ for e in self.events]
        assert len(self.events) == len(expected), f"expected {len(expected)} event(s), got {kinds}"
        for n, (event, want) in enumerate(zip(self.events, expected, strict=True)):
            if isinstance(want, str):
                ok = type(event).__name__ == want
            elif isinstance(want, type):
                ok = isinstance(event, want)
            else:
                ok = bool(want(event))
            assert ok, f"event #{n} ({kinds[n]}: {event!r}) does not match {want!r}; all: {kinds}"
        return self

    def then_raises(self, error: type[BaseException], match: str | None = None) -> Scenario:
        """The command raised ``error`` (with a message matching ``match``) and appended nothing."""
        self._require_run()
        assert self.error is not None, (
            f"expected {error.__name__}, but the command succeeded with {[type(e).__name__ for e in self.events]}")
        assert isinstance(self.error, error), f"expected {error.__name__}, got {self.error!r}"
        if match is not None:
            assert re.search(match, str(self.error)), f"{str(self.error)!r} does not match {match!r}"
        assert not self.events, f"a failed command appended {[type(e).__name__ for e in self.events]}"
        return self

    def then(self, check: Callable[[Any], object]) -> Scenario:
        """Run ``check(store)``, a predicate about the state after the command: it fails the
        test by returning a false value (``False``, ``[]``, ...) or by raising. A check that
        returns ``None`` made its own assertions."""
        self._require_run()
        result = check(self.store)
        assert result is None or result, f"then({_name(check)}) returned {result!r}"
        return self


def _name(check: Callable[..., object]) -> str:
    name = getattr(check, "__qualname__", None) or repr(check)
    return str(name)


def _is_event(value: object) -> bool:
    return hasattr(value, "originator_id") and hasattr(value, "originator_version") and not isinstance(value, type)


@pytest.fixture
def ctrledger_scenario(ctrledger_store: Store) -> Scenario:
    return Scenario(ctrledger_store)


# -- golden logs --------------------------------------------------------------------------------


def answers(store: Any, points: Sequence[Position] = ()) -> dict[str, Any]:
    """What the store answers: ``list()`` of every namespace, now and at each point, as JSON values."""
    with store.read_model.synced() as conn:
        namespaces = [r[0] for r in conn.execute("SELECT name FROM namespaces ORDER BY name")]
        events = log_head(conn)

    def listing(**kw: Any) -> dict[str, Any]:
        return {ns: [to_json_value(c) for c in store.list(namespace=ns, **kw)] for ns in namespaces}

    out: dict[str, Any] = {"log_events": events, "list": listing()}
    for point in points:
        out[f"list as_of position {point.number}"] = listing(as_of=point)
    return out


class GoldenLog:
    """Replays archives and compares the answers with recorded expectation files."""

    def __init__(self, regen: bool, tmp_path: Path, clock: DeterministicClock) -> None:
        self.regen = regen
        self.tmp_path = tmp_path
        self.clock = clock

    def replay(self, archive: str | os.PathLike[str]) -> Any:
        """A fresh store (in ``tmp_path``) holding the archive's log."""
        path = self.tmp_path / f"golden-{Path(archive).stem}.db"
        store = open_store(path, clock=self.clock, actor="tester")
        import_(archive, into=store)
        return store

    def check(self, store: Any, expected: str | os.PathLike[str], points: Sequence[Position] = ()) -> None:
        """Compare ``answers(store, points)`` with the JSON file ``expected`` (rewritten with --ctrledger-regen)."""
        actual = json.dumps(answers(store, points), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        path = Path(expected)
        if self.regen:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual)
            return
        if not path.exists():
            pytest.fail(f"no golden file {path}: run pytest {REGEN} to record it", pytrace=False)
        recorded = path.read_text()
        if recorded != actual:
            assert json.loads(actual) == json.loads(recorded), f"answers differ from {path} ({REGEN} to rewrite)"
            assert actual == recorded, f"answers differ from {path} in formatting only ({REGEN} to rewrite)"

    def replay_and_check(
        self, archive: str | os.PathLike[str], expected: str | os.PathLike[str], points: Sequence[Position] = ()
    ) -> None:
        """Replay ``archive`` into a fresh store and check its answers against ``expected``."""
        with self.replay(archive) as store:
            self.check(store, expected, points)


@pytest.fixture
def ctrledger_golden_log(
    request: pytest.FixtureRequest, tmp_path: Path, ctrledger_clock: DeterministicClock
) -> GoldenLog:
    return GoldenLog(bool(request.config.getoption(REGEN)), tmp_path, ctrledger_clock)
