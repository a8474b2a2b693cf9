"""PostgreSQL: an acknowledgement lost after commit never becomes a double application or a
false failure (issue 10). Backends are terminated in a loop while a writer writes."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import ctrledger
from ctrledger import Container, StoreError, Unavailable

from .conftest import make, postgres_schema, postgres_url
from .faults import LossyProxy


@dataclass
class Figures:
    attempts: int = 0
    acknowledged: int = 0
    failed_nothing_written: int = 0
    failed_but_committed: int = 0
    unknown_then_retried: int = 0
    applied_twice: int = 0
    lost: int = 0
    escapes: list[str] = field(default_factory=list)
    kills: int = 0
    commit_cuts: int = 0


def _killer(conninfo: str, proxy: LossyProxy, stop: threading.Event, figures: Figures) -> None:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        while not stop.wait(random.uniform(0.5, 1.5)):
            # Only this test's backends: those connected from the proxy (other tests share the server).
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                "AND client_addr = '127.0.0.1' AND client_port = ANY(%s)", (sorted(proxy.server_ports),),
            ).fetchall()
            figures.kills += len(rows)


def run_connection_loss(url: str, conninfo: str, schema: str, writes: int, seconds: float) -> Figures:
    """Write through a proxy that loses replies after commits, while backends are also
    terminated, until ``writes`` writes are acknowledged, two commits lost their reply and
    three backends were terminated (or ``seconds`` pass: the figures show how far it got);
    then check every command's outcome in the log. Bounded by work done, not by time, so that
    a loaded machine (a write under these faults takes 5 ms to seconds) tests the same thing."""
    figures = Figures()
    stop = threading.Event()
    committed: set[str] = set()  # request ids the store acknowledged
    refused: set[str] = set()  # request ids reported as "nothing was written"
    parts = urlsplit(url)
    with LossyProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy, ctrledger.open(
        url.replace(f":{parts.port}/", f":{proxy.port}/"), follow=False, actor="campaign",
    ) as store:
        proxy.enabled = True  # faults from now on (opening under faults is only Unavailable)
        killer = threading.Thread(target=_killer, args=(conninfo, proxy, stop, figures), daemon=True)
        killer.start()
        deadline = time.monotonic() + seconds
        step = 0
        try:
            while time.monotonic() < deadline and (
                figures.acknowledged < writes or proxy.commit_cuts < 2 or figures.kills < 3  # the killer's, so far
            ):
                step += 1
                name = f"c{step % 7}"
                request = f"req-{step}"
                for _ in range(20):  # the caller's own retries, with the same request id
                    figures.attempts += 1
                    try:
                        if step <= 7:
                            store.create(make(name), request_id=request, correlation_id=request)
                        else:
                            store.update(Container(id=name, labels={"step": str(step)}), "labels.step",
                                         request_id=request, correlation_id=request)
                        committed.add(request)
                        figures.acknowledged += 1
                        break
                    except Unavailable as e:
                        if "outcome" in str(e) and "unknown" in str(e):
                            figures.unknown_then_retried += 1
                            continue
                        refused.add(request)
                        break
                    except StoreError as e:
                        figures.escapes.append(f"unexpected refusal: {e!r}")
                        break
                    except Exception as e:  # noqa: BLE001 - counting what must never happen
                        figures.escapes.append(repr(e))
                        break
        finally:
            stop.set()
            killer.join()
            proxy.enabled = False
        figures.kills += proxy.cuts
        figures.commit_cuts = proxy.commit_cuts
        per_request = Counter(r.correlation_id for r in store.audit())
    for request in committed:
        if per_request[request] == 0:
            figures.lost += 1
    for request in refused:
        if per_request[request] > 0:
            figures.failed_but_committed += 1
        else:
            figures.failed_nothing_written += 1
    figures.applied_twice = sum(1 for n in per_request.values() if n > 1)
    return figures


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    with postgres_schema() as schema:
        url = postgres_url(schema, tmp_path / "node.db")
        yield url, url.split("?")[0], schema


def test_terminated_backends_never_lose_double_apply_or_misreport_a_write(pg: tuple[str, str, str]) -> None:
    url, conninfo, schema = pg
    figures = run_connection_loss(url, conninfo, schema, writes=12, seconds=120)
    assert figures.kills > 5 and figures.commit_cuts >= 2, figures  # faults happened, replies were lost
    assert figures.acknowledged >= 12, figures
    assert figures.escapes == []
    assert (figures.lost, figures.applied_twice, figures.failed_but_committed) == (0, 0, 0), figures


def test_a_retry_with_the_same_request_id_returns_the_first_result(pg: tuple[str, str, str]) -> None:
    url, _, _ = pg
    with ctrledger.open(url, follow=False) as store:
        first = store.create(make("web"), request_id="r1")
        again = store.create(make("web"), request_id="r1")  # not AlreadyExists: it is the same command
        assert (again.id, again.version, again.created_at) == (first.id, first.version, first.created_at)
        up = store.update(Container(id="web", labels={"a": "1"}), "labels.a", request_id="r2")
        up2 = store.update(Container(id="web", labels={"a": "1"}), "labels.a", request_id="r2")
        assert up2.version == up.version == 2
        store.delete("web", request_id="r3")
        store.delete("web", request_id="r3")  # not NotFound
        assert [h.kind for h in store.history("web")] == ["Created", "LabelsChanged", "Deleted"]
