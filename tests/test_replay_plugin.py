"""The pytest plugin, used as a project test would use it: given/when/then, golden logs, determinism."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import ctrledger
from ctrledger import AlreadyExists, Container, InvalidArgument, NotFound, Position
from ctrledger.domain.container import LabelsChanged
from ctrledger.replay import digest
from ctrledger.testing import GoldenLog, Scenario, created

from .conftest import make

pytest_plugins = ["ctrledger.testing", "pytester"]

GOLDEN = Path(__file__).resolve().parent / "golden"


# -- given / when / then --------------------------------------------------------------------------


def test_relabelling_emits_one_labels_changed(ctrledger_scenario: Scenario) -> None:
    (ctrledger_scenario
        .given(created(make("web", labels={"tier": "front", "old": "x"})))
        .when(lambda s: s.update(Container(id="web", labels={"tier": "back"}), "labels"))
        .then_events(lambda e: isinstance(e, LabelsChanged) and dict(e.set) == {"tier": "back"}
                     and e.removed == ("old",))
        .then(lambda s: s.get("web").labels == {"tier": "back"} or pytest.fail("labels not applied")))


def test_an_update_of_several_fields_emits_one_event_per_field(ctrledger_scenario: Scenario) -> None:
    (ctrledger_scenario
        .given(lambda s: s.create(make("db", snapshotter="overlayfs")))
        .when(lambda s: s.update(Container(id="db", image="postgres:17", snapshot_key="k", labels={"a": "1"}),
                                 "image", "snapshotkey", "labels.a"))
        .then_events("LabelsChanged", "ImageChanged", "SnapshotKeyChanged"))


def test_a_delete_then_a_create_is_a_new_incarnation(ctrledger_scenario: Scenario) -> None:
    (ctrledger_scenario
        .given(created(make("job")), lambda s: s.delete("job"))
        .when(lambda s: s.create(make("job", image="again")))
        .then_events(lambda e: type(e).__name__ == "Created" and e.incarnation == 2 and e.originator_version == 3))


@pytest.mark.parametrize(
    ("given", "command", "error", "match"),
    [
        pytest.param([created(make("web"))], lambda s: s.create(make("web")), AlreadyExists, "already exists",
                     id="create-twice"),
        pytest.param([], lambda s: s.delete("ghost"), NotFound, "not found", id="delete-unknown"),
        pytest.param([created(make("web"))], lambda s: s.update(Container(id="web"), "id"), InvalidArgument,
                     'cannot update "id" field', id="immutable-field"),
    ],
)
def test_refused_commands_raise_and_emit_nothing(
    ctrledger_scenario: Scenario, given: list[Any], command: Any, error: type[Exception], match: str
) -> None:
    ctrledger_scenario.given(*given).when(command).then_raises(error, match=match)


def test_given_an_archive(ctrledger_scenario: Scenario) -> None:
    (ctrledger_scenario
        .given(GOLDEN / "replay-busy.ctrlarchive")
        .when(lambda s: s.delete("c4", namespace="ns1"))
        .then_events("Deleted")
        .then(lambda s: [c.id for c in s.list(namespace="ns1")] == ["c1", "c10", "c7"] or pytest.fail()))


def test_then_events_reports_what_was_emitted(ctrledger_scenario: Scenario) -> None:
    ctrledger_scenario.given(created(make("web"))).when(lambda s: s.delete("web"))
    with pytest.raises(AssertionError, match=r"expected 2 event\(s\), got \['Deleted'\]"):
        ctrledger_scenario.then_events("Deleted", "Deleted")
    with pytest.raises(AssertionError, match="expected NotFound, but the command succeeded"):
        ctrledger_scenario.then_raises(NotFound)


def test_then_fails_when_its_check_returns_false(ctrledger_scenario: Scenario) -> None:
    ctrledger_scenario.given(created(make("web"))).when(lambda s: s.delete("web"))
    ctrledger_scenario.then(lambda s: s.list() == [])  # true: passes
    ctrledger_scenario.then(lambda s: None)  # made its own assertions
    with pytest.raises(AssertionError, match=r"returned False"):
        ctrledger_scenario.then(lambda s: len(s.list()) == 1)
    with pytest.raises(AssertionError, match=r"returned \[\]"):
        ctrledger_scenario.then(lambda s: s.list())


def test_the_kit_is_opt_in(pytester: pytest.Pytester) -> None:
    body = """
        def test_uses_the_kit(ctrledger_store):
            assert ctrledger_store.list() == []
    """
    pytester.makepyfile(test_kit=body)
    without = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    without.assert_outcomes(errors=1)
    assert "fixture 'ctrledger_store' not found" in without.stdout.str()
    pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "ctrledger.testing").assert_outcomes(passed=1)


# -- determinism ----------------------------------------------------------------------------------


def test_the_ledger_writes_the_same_bytes_every_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_twice="""
        import sqlite3, pytest
        from ctrledger import Container, Payload, Runtime

        pytest_plugins = ["ctrledger.testing"]
        DUMPS = []

        @pytest.mark.parametrize("run", [1, 2])
        def test_run(ctrledger_store, run):
            record = Container(id="web", runtime=Runtime("runc"), spec=Payload("t", b"{}"), labels={"a": "1"})
            ctrledger_store.create(record)
            ctrledger_store.update(Container(id="web", labels={"a": "2"}), "labels.a")
            ctrledger_store.delete("web")
            DUMPS.append(sqlite3.connect(ctrledger_store.path).execute(
                "SELECT rowid, * FROM stored_events ORDER BY rowid").fetchall())
            if run == 2:
                assert DUMPS[0] == DUMPS[1]
                assert b"00000000-0000-4000-8000-000000000001" in DUMPS[0][0][4]
    """)
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


# -- golden logs ----------------------------------------------------------------------------------


def test_the_busy_golden_log_answers_as_recorded(ctrledger_golden_log: GoldenLog) -> None:
    ctrledger_golden_log.replay_and_check(GOLDEN / "replay-busy.ctrlarchive", GOLDEN / "replay-busy.expected.json",
                                points=[Position(6), Position(15)])


def test_golden_replays_are_identical(ctrledger_golden_log: GoldenLog) -> None:
    with ctrledger_golden_log.replay(GOLDEN / "replay-busy.ctrlarchive") as one:
        first = digest(one)
        path = one.path
    Path(path).unlink()
    for suffix in ("-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)
    with ctrledger_golden_log.replay(GOLDEN / "replay-busy.ctrlarchive") as two:
        assert digest(two) == first


def test_the_regen_flag_rewrites_expectations(pytester: pytest.Pytester) -> None:
    archive = pytester.path / "log.ctrlarchive"
    archive.write_bytes((GOLDEN / "replay-busy.ctrlarchive").read_bytes())
    # The option is registered at start-up: the kit is enabled in the root conftest.py (or with -p).
    pytester.makeconftest('pytest_plugins = ["ctrledger.testing"]')
    pytester.makepyfile(test_golden="""
        def test_golden(ctrledger_golden_log):
            ctrledger_golden_log.replay_and_check("log.ctrlarchive", "expected.json")
    """)
    missing = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    missing.assert_outcomes(failed=1)
    assert "run pytest --ctrledger-regen to record it" in missing.stdout.str()
    pytester.runpytest_inprocess("-p", "no:cacheprovider", "--ctrledger-regen").assert_outcomes(passed=1)
    expected = pytester.path / "expected.json"
    recorded = json.loads(expected.read_text())
    assert recorded["log_events"] == 21 and [c["id"] for c in recorded["list"]["ns1"]] == ["c1", "c10", "c4", "c7"]
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    expected.write_text(expected.read_text().replace('"c4"', '"c44"', 1))
    changed = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    changed.assert_outcomes(failed=1)
    assert "answers differ from" in changed.stdout.str()


def test_a_drifted_read_model_fails_the_golden_check(ctrledger_golden_log: GoldenLog) -> None:
    with ctrledger_golden_log.replay(GOLDEN / "replay-busy.ctrlarchive") as store:
        with sqlite3.connect(store.path) as conn:
            # The spec's bytes, which reads take from their column (the rest is in the packed record).
            conn.execute("UPDATE containers SET spec_value=x'00' WHERE id='c1'")
        with pytest.raises(AssertionError, match="answers differ"):
            ctrledger_golden_log.check(store, GOLDEN / "replay-busy.expected.json", points=[Position(6), Position(15)])


def test_the_store_fixture_is_a_real_store(ctrledger_store: ctrledger.Store) -> None:
    assert isinstance(ctrledger_store, ctrledger.Store)
    ctrledger_store.create(make("x"))
    assert ctrledger_store.get("x").created_at.isoformat() == "2026-01-01T00:00:01+00:00"
