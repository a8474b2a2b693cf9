"""eventsourcing's own recorder contract, run against ctrledger's recorders (SQLite and PostgreSQL).

ctrledger's log subclasses eventsourcing's recorders and uses some of their private API
(``ctrledger/persistence/``). eventsourcing's abstract ``ApplicationRecorderTestCase`` is the
contract those internals must keep; running it here, on every supported eventsourcing release
(pyproject's range), is what makes the range honest.

The contract's ``test_performance`` and ``test_concurrent_throughput`` only print timings (no
assertion); they are left out. Performance is measured in ``benchmarks/``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.tests.persistence import ApplicationRecorderTestCase
from eventsourcing.utils import Environment

from ctrledger.persistence.application import postgres_env, sqlite_env
from ctrledger.persistence.postgres import LedgerPostgresFactory, LedgerPostgresRecorder, parse_url
from ctrledger.persistence.sqlite import LedgerSQLiteFactory, LedgerSQLiteRecorder

from .conftest import POSTGRES_URL, postgres_schema


class _Contract(ApplicationRecorderTestCase[Any]):
    factory: Any = None

    # ctrledger's stream ids are text ("<namespace>/<id>"), not UUIDs.
    def new_originator_id(self) -> str:
        return f"ns/{uuid.uuid4()}"

    test_performance = None  # type: ignore[assignment]  # timing printout, no assertion
    test_concurrent_throughput = None  # type: ignore[assignment]  # timing printout, no assertion

    def setUp(self) -> None:
        super().setUp()
        self._threads = set(threading.enumerate())

    def tearDown(self) -> None:
        # The concurrent contract test sets its readers' stop flag but does not join them: a
        # reader still inside a select must finish before the connections are closed.
        for thread in set(threading.enumerate()) - self._threads:
            if thread.daemon:  # pool workers: they end when the factory closes
                continue
            thread.join(timeout=10)
        if self.factory is not None:
            self.factory.close()
            self.factory = None
        super().tearDown()


class TestSQLiteRecorder(_Contract):
    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path: Path) -> None:
        self.path = tmp_path / "events.db"

    def create_recorder(self) -> LedgerSQLiteRecorder:
        if self.factory is not None:
            self.factory.close()
        self.path.unlink(missing_ok=True)
        self.factory = LedgerSQLiteFactory({**sqlite_env(str(self.path)), "SQLITE_LOCK_TIMEOUT": "30"})
        recorder = self.factory.application_recorder()
        assert isinstance(recorder, LedgerSQLiteRecorder)
        recorder.create_table()
        return recorder


class TestPostgresRecorder(_Contract):
    # bigserial positions: a failed insert consumes one, so ids may have gaps.
    EXPECT_CONTIGUOUS_NOTIFICATION_IDS = False

    @pytest.fixture(autouse=True)
    def _schema(self) -> Iterator[None]:
        with postgres_schema() as schema:
            self.schema = schema
            yield

    def create_recorder(self) -> LedgerPostgresRecorder:
        if self.factory is not None:
            self.factory.close()
        settings, _ = parse_url(f"{POSTGRES_URL.split('?')[0]}?schema={self.schema}")
        self.factory = LedgerPostgresFactory(Environment("ctrledger", postgres_env(settings)))  # as the store names it
        recorder = self.factory.application_recorder()
        assert isinstance(recorder, LedgerPostgresRecorder)
        recorder.create_table()
        with self.factory.datastore.transaction(commit=True) as curs:  # a recorder starts empty
            curs.execute(f'TRUNCATE "{self.schema}".ctrledger_events, "{self.schema}".event_hashes, '
                         f'"{self.schema}".merkle_nodes RESTART IDENTITY')
        return recorder
