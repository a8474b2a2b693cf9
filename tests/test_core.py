"""The core's parts, assembled by hand: a Store is a facade over any log and the read model over it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

import ctrledger
from ctrledger.persistence.log import SQLiteLog, StreamTaken
from ctrledger.projections.readmodel import ReadModel

from .conftest import make


def test_a_store_is_assembled_from_a_log_and_a_read_model(tmp_path: Path) -> None:
    at = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    log = SQLiteLog(str(tmp_path / "ledger.db"))
    read_model = ReadModel(log, history=True)
    read_model.open()
    with ctrledger.Store(log, read_model, clock=lambda: at, actor="assembler") as store:
        created = store.create(make("web"))
        assert created.created_at == at and store.get("web").version == 1
        assert next(iter(store.audit())).actor == "assembler"
        assert store.position == log.head() == 1
    with pytest.raises(ctrledger.Unavailable, match="closed"):
        read_model.position()


def test_the_log_reports_a_lost_race_as_stream_taken(tmp_path: Path) -> None:
    with ctrledger.open(tmp_path / "ledger.db") as store:
        store.create(make("web"))
        replayed = store.log.events_of("default/web")
        with pytest.raises(StreamTaken):
            store.log.append(replayed)  # version 1 of the stream is taken
        assert store.log.head() == 1
