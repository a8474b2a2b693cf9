"""The core's parts, assembled by hand: a Store is a facade over any log and the read model over it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

import ctrledger
import ctrledger.domain.container
import ctrledger.domain.model
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


@pytest.mark.parametrize("lost_first", [True, False], ids=["lost-first", "lost-after-a-good-one"])
def test_a_group_commit_rolls_back_only_the_operation_that_lost(tmp_path: Path, lost_first: bool) -> None:
    """A group runs in one go; when one of its operations fails, it runs again with a savepoint
    each: the failing one is left out, every other one is applied once."""
    from ctrledger.persistence.log import _Append

    with ctrledger.open(tmp_path / "ledger.db") as store:
        store.create(make("web"))
        log = store.log
        assert isinstance(log, SQLiteLog)
        taken = log.events_of("default/web")  # version 1 again: loses
        fresh = ctrledger.domain.container.ContainerAggregate.create(
            "default", make("db"), ctrledger.domain.model.Audit("t"), datetime(2030, 1, 1, tzinfo=UTC)
        ).collect_events()
        lost, good = (_Append(taken, [log.mapper.to_stored_event(e) for e in taken]),
                      _Append(fresh, [log.mapper.to_stored_event(e) for e in fresh]))
        jobs = [lost, good] if lost_first else [good, lost]
        log._commit(jobs)  # one transaction, one fsync, for both
        assert isinstance(lost.error, StreamTaken) and good.error is None
        assert all(job.done for job in jobs)
        assert [c.id for c in store.list()] == ["db", "web"] and log.head() == 2
        assert ctrledger.verify(store).ok


def test_concurrent_writers_are_all_acknowledged_once(tmp_path: Path) -> None:
    import threading

    with ctrledger.open(tmp_path / "ledger.db") as store:
        def work(t: int) -> None:
            for i in range(10):
                store.create(make(f"c{t}-{i}"))
                store.update(ctrledger.Container(id=f"c{t}-{i}", labels={"n": str(i)}), "labels.n")

        threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert len(store.list()) == 60 and store.log.head() == 120 == store.position
        assert ctrledger.verify(store).ok and store.verify_projections().ok
