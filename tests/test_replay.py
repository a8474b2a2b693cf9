"""Replay: export/import round trips, corrupt archives, resumable import and rebuild, digests,
verification, replay to a point, and the upcast of an event written before its class changed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import ctrledger
from ctrledger import Container, FailedPrecondition, InvalidArgument, NotFound, Payload, Position
from ctrledger.domain.container import Created
from ctrledger.replay import (
    ArchiveError,
    ArchiveReader,
    digest,
    export,
    import_,
    pending_rebuild,
    rebuild,
    replay_to,
    verify_archive,
    verify_projections,
)
from ctrledger.replay.archive import PREFIX_SIZE
from ctrledger.replay.progress import TerminalProgress
from ctrledger.replay.rebuild import scratch_path

from .conftest import StepClock, make

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
NAMESPACES = ("ns0", "ns1", "ns2")


@contextmanager
def deterministic_store(path: Path, **options: Any) -> Iterator[ctrledger.Store]:
    with ctrledger.open(path, clock=StepClock(), actor="tester", **options) as store:
        yield store


def busy_history(store: ctrledger.Store, n: int = 12) -> None:
    """Creates across three namespaces, then an update of every kind, a delete and a re-create."""
    op = iter(range(10_000))

    def cid() -> str:
        return f"op-{next(op)}"

    for i in range(n):
        store.create(make(f"c{i}", labels={"i": str(i), "even": str(i % 2 == 0)}, snapshotter="overlayfs"),
                     namespace=NAMESPACES[i % 3], correlation_id=cid())
    store.update(Container(id="c3", labels={"x": "1"}, extensions={"e": Payload("t", b"v")}), "labels.x",
                 "extensions", namespace="ns0", correlation_id=cid())
    store.update(Container(id="c0", image="img:2", snapshot_key="k0", spec=Payload("t2", b"{}")), "image",
                 "snapshotkey", "spec", namespace="ns0", correlation_id=cid(), reason="upgrade")
    store.delete("c4", namespace="ns1", correlation_id=cid(), actor="alice")
    store.create(make("c4", image="again"), namespace="ns1", correlation_id=cid())
    store.update(Container(id="c5", labels={}), "labels.i", namespace="ns2", correlation_id=cid())
    store.update(Container(id="c6"), "labels.none", namespace="ns0", correlation_id=cid())  # Touched


def rows(path: Path, table: str = "stored_events") -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT rowid, * FROM {table} ORDER BY rowid").fetchall()


def answers(store: ctrledger.Store, **kw: Any) -> dict[str, list[Any]]:
    return {ns: [(c.id, c.version, dict(c.labels), c.image, c.spec, c.updated_at)
                 for c in store.list(namespace=ns, **kw)] for ns in NAMESPACES}


@pytest.fixture
def source(tmp_path: Path) -> Iterator[ctrledger.Store]:
    with deterministic_store(tmp_path / "source.db") as store:
        busy_history(store)
        yield store


@pytest.fixture
def archive(source: ctrledger.Store, tmp_path: Path) -> Path:
    path = tmp_path / "log.ctrlarchive"
    export(source, path, chunk_events=5)
    return path


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[ctrledger.Store]:
    with deterministic_store(tmp_path / "empty.db") as store:
        yield store


# -- export / import ----------------------------------------------------------------------------


def test_round_trip_gives_the_same_log_the_same_digest_and_the_same_answers(
    source: ctrledger.Store, archive: Path, empty: ctrledger.Store
) -> None:
    summary = import_(archive, into=empty)
    assert (summary.events, summary.first, summary.last, summary.positions_preserved) == (
        source.position, 1, source.position, True)
    assert rows(Path(empty.path)) == rows(Path(source.path))  # every stored field, at the same positions
    assert digest(empty) == digest(source)
    assert answers(empty) == answers(source)
    assert answers(empty, as_of=Position(9)) == answers(source, as_of=Position(9))
    assert [h.kind for h in empty.history("c4", namespace="ns1")] == ["Created", "Deleted", "Created"]
    assert ctrledger.verify(empty).ok  # hashed and chained as the source was
    assert rows(Path(empty.path), "event_hashes") == rows(Path(source.path), "event_hashes")


def test_export_is_deterministic_and_so_is_replaying_it(source: ctrledger.Store, archive: Path,
                                                       tmp_path: Path) -> None:
    again = tmp_path / "again.ctrlarchive"
    export(source, again, chunk_events=5)
    assert again.read_bytes() == archive.read_bytes()
    digests = set()
    for name in ("one.db", "two.db"):
        with ctrledger.open(tmp_path / name) as store:
            import_(archive, into=store)
            digests.add(digest(store))
    assert digests == {digest(source)}


def test_the_archive_carries_every_stored_field_unchanged(source: ctrledger.Store, archive: Path) -> None:
    info = verify_archive(archive)
    assert info.header["columns"] == ["position", "originator_id", "originator_version", "topic", "state"]
    assert info.header["complete"] and info.header["range"] == {"after": 0, "through": source.position}
    assert info.events == source.position and info.chunks == -(-source.position // 5)
    with ArchiveReader(archive) as reader:
        archived = [row for chunk in reader.chunks() for row in chunk.rows]
    assert archived == [tuple(r) for r in rows(Path(source.path))]


def test_an_incremental_export_continues_the_log(source: ctrledger.Store, empty: ctrledger.Store,
                                                 tmp_path: Path) -> None:
    export(source, tmp_path / "a", until=Position(10))
    export(source, tmp_path / "b", since=Position(10))
    with pytest.raises(FailedPrecondition, match="empty: import the log up to position 10 first"):
        import_(tmp_path / "b", into=empty)
    assert import_(tmp_path / "a", into=empty).last == 10
    assert import_(tmp_path / "b", into=empty).first == 11
    assert digest(empty) == digest(source)
    assert ctrledger.verify(empty).ok


def test_an_archive_of_one_namespace_is_appended_with_new_positions(source: ctrledger.Store,
                                                                    empty: ctrledger.Store,
                                                                    tmp_path: Path) -> None:
    empty.create(make("local"), namespace="mine")
    summary = export(source, tmp_path / "ns1", namespaces=["ns1"])
    assert not summary.complete
    imported = import_(tmp_path / "ns1", into=empty)
    assert (imported.first, imported.positions_preserved) == (2, False)
    assert answers(empty)["ns1"] == answers(source)["ns1"]
    assert answers(empty)["ns0"] == [] and empty.get("local", namespace="mine")
    assert ctrledger.verify(empty).ok


def test_a_time_bound_selects_events_by_their_timestamp(source: ctrledger.Store, empty: ctrledger.Store,
                                                        tmp_path: Path) -> None:
    cut = next(h.recorded_at for h in source.history("c0", namespace="ns0") if h.version == 2)
    export(source, tmp_path / "t", until=cut - timedelta(microseconds=1))
    import_(tmp_path / "t", into=empty)
    assert answers(empty) == answers(source, as_of=cut - timedelta(microseconds=1))


@pytest.mark.parametrize(
    ("since", "until", "match"),
    [
        pytest.param(Position(5), Position(99), "not within the log", id="beyond-head"),
        pytest.param(Position(9), Position(3), "export since position 9 is after until position 3", id="reversed"),
        pytest.param(ctrledger.Version(1), None, "not a Version", id="version"),
        pytest.param("yesterday", None, "not an ISO-8601 time", id="bad-time"),
    ],
)
def test_export_refuses_bad_bounds(source: ctrledger.Store, tmp_path: Path, since: Any, until: Any,
                                   match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        export(source, tmp_path / "x", since=since, until=until)
    assert not list(tmp_path.glob("x*"))


def test_a_complete_archive_must_continue_the_store_log(archive: Path, empty: ctrledger.Store) -> None:
    empty.create(make("other"))
    before = digest(empty)
    with pytest.raises(FailedPrecondition, match="log ends at position 1: positions do not continue"):
        import_(archive, into=empty)
    assert digest(empty) == before and empty.position == 1


def test_an_archive_of_another_log_is_refused_by_its_hash_chain(source: ctrledger.Store, tmp_path: Path) -> None:
    export(source, tmp_path / "tail", since=Position(1))
    with deterministic_store(tmp_path / "other.db") as other:
        other.create(make("zzz"), namespace="elsewhere")
        with pytest.raises(FailedPrecondition, match="continues a different log"):
            import_(tmp_path / "tail", into=other)
        assert other.position == 1


def test_stream_collisions_are_refused(source: ctrledger.Store, empty: ctrledger.Store, tmp_path: Path) -> None:
    empty.create(make("c3"), namespace="ns0")
    before = rows(Path(empty.path))
    export(source, tmp_path / "ns0", namespaces=["ns0"])
    with pytest.raises(FailedPrecondition, match=r"'ns0/c3' version 1 .* collides with the store's stream"):
        import_(tmp_path / "ns0", into=empty)
    assert rows(Path(empty.path)) == before


def test_importing_twice_imports_once(archive: Path, empty: ctrledger.Store) -> None:
    first = import_(archive, into=empty)
    again = import_(archive, into=empty)
    assert again.already_imported and again.events == 0
    assert empty.position == first.events


def test_an_interrupted_import_resumes_after_the_last_whole_chunk(
    source: ctrledger.Store, archive: Path, empty: ctrledger.Store
) -> None:
    def crash(done: int, total: int) -> None:
        if done >= 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_(archive, into=empty, progress=crash, txn_events=1)
    # Two whole chunks of five are in the log. Into an empty store the read models are built in bulk
    # once the events are in, so they are still empty; a store opened on the file catches them up.
    assert empty.position == 0
    with ctrledger.open(empty.path) as again:
        assert again.position == 10
        assert answers(again) == answers(source, as_of=Position(10))
    resumed = import_(archive, into=empty)
    assert (resumed.resumed, resumed.first, resumed.events) == (True, 11, source.position - 10)
    assert digest(empty) == digest(source)


def test_an_archive_changed_after_its_check_is_refused_at_the_changed_chunk(
    empty: ctrledger.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The append reuses the leaf hashes the archive's check computed: a chunk that is not the one
    # checked must not get them (its content would be stored under the checked chunk's hashes). Here
    # the file is replaced, between the check and the append, by a forgery with the same header (so
    # the same archive id) whose chunk #1 differs and is framed consistently.
    from ctrledger.replay import exchange
    from ctrledger.replay.archive import ArchiveWriter

    archive = tmp_path / "log.ctrlarchive"
    with deterministic_store(tmp_path / "source.db") as source:
        busy_history(source)
        export(source, archive, chunk_events=5)
        want = digest(source)
    good = archive.read_bytes()
    forged = tmp_path / "forged.ctrlarchive"
    with ArchiveReader(archive) as reader, open(forged, "wb") as out:
        writer = ArchiveWriter(out, reader.header)
        for chunk in reader.chunks():
            rows = [list(r) for r in chunk.rows]
            if chunk.seq == 1:
                rows[0][4] = rows[1][4]
            writer.write_chunk(rows, chunk.chain)
        assert reader.trailer is not None
        writer.finish(reader.trailer["chain"], reader.trailer.get("root"))
    assert writer.archive_id == reader.archive_id

    def swapped(path: Path) -> ArchiveReader:  # the append's reader opens the forgery
        Path(path).write_bytes(forged.read_bytes())
        return ArchiveReader(path)

    monkeypatch.setattr(exchange, "ArchiveReader", swapped)
    with pytest.raises(FailedPrecondition, match=r"changed while it was imported: chunk #1 "):
        import_(archive, into=empty, txn_events=1)
    monkeypatch.undo()
    with ctrledger.open(empty.path) as again:
        assert again.position == 5 and ctrledger.verify(again).ok  # chunk #0 only, hashed as checked
    archive.write_bytes(good)
    assert import_(archive, into=empty).resumed
    assert digest(empty) == want


# -- corrupt and truncated archives ---------------------------------------------------------------


def _chunk_offsets(path: Path) -> list[int]:
    return list(verify_archive(path).chunk_offsets)


def flip(offset: int) -> Callable[[bytearray, list[int]], int]:
    def edit(data: bytearray, chunks: list[int]) -> int:
        at = chunks[2] + offset
        data[at] ^= 0x10
        return chunks[2]
    return edit


def truncate_inside_chunk(data: bytearray, chunks: list[int]) -> int:
    del data[chunks[2] + PREFIX_SIZE + 7:]
    return chunks[2]


def truncate_at_chunk(data: bytearray, chunks: list[int]) -> int:
    del data[chunks[2]:]
    return chunks[2]


def trailing_garbage(data: bytearray, chunks: list[int]) -> int:
    size = len(data)
    data.extend(b"\x00garbage")
    return size


def header_flip(data: bytearray, chunks: list[int]) -> int:
    data[40] ^= 0x01
    return 19


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(flip(PREFIX_SIZE + 30), "checksum mismatch in chunk #2", id="bit-flip-in-a-chunk"),
        pytest.param(flip(12), "checksum mismatch in chunk #2", id="bit-flip-in-a-checksum"),
        pytest.param(flip(43), "truncated: the frame declares", id="bit-flip-in-a-length"),
        pytest.param(flip(3), "corrupt: no valid frame starts here", id="bit-flip-in-a-frame-tag"),
        pytest.param(truncate_inside_chunk, "truncated: the frame declares", id="truncated-inside-a-chunk"),
        pytest.param(truncate_at_chunk, "without its trailer", id="truncated-between-chunks"),
        pytest.param(trailing_garbage, "unexpected data after the trailer", id="trailing-garbage"),
        pytest.param(header_flip, "checksum mismatch in the header", id="bit-flip-in-the-header"),
    ],
)
def test_a_corrupt_archive_is_refused_naming_the_byte_offset_and_nothing_is_imported(
    archive: Path, empty: ctrledger.Store, tmp_path: Path,
    edit: Callable[[bytearray, list[int]], int], message: str,
) -> None:
    data = bytearray(archive.read_bytes())
    offset = edit(data, _chunk_offsets(archive))
    bad = tmp_path / "bad.ctrlarchive"
    bad.write_bytes(bytes(data))
    nothing = digest(empty)
    with pytest.raises(ArchiveError, match=message) as caught:
        import_(bad, into=empty)
    assert caught.value.offset == offset and f"(at byte {offset})" in str(caught.value)
    assert isinstance(caught.value, InvalidArgument)
    assert empty.position == 0 and rows(Path(empty.path)) == [] and digest(empty) == nothing


def test_not_an_archive(tmp_path: Path, empty: ctrledger.Store) -> None:
    (tmp_path / "x").write_bytes(b"SQLite format 3\x00")
    with pytest.raises(ArchiveError, match=r"not a ctrledger archive .*\(at byte 0\)"):
        import_(tmp_path / "x", into=empty)


def test_without_the_full_check_the_bad_chunk_and_nothing_after_it_is_imported(
    source: ctrledger.Store, archive: Path, empty: ctrledger.Store, tmp_path: Path
) -> None:
    good = archive.read_bytes()
    data = bytearray(good)
    chunks = _chunk_offsets(archive)
    data[chunks[2] + PREFIX_SIZE + 30] ^= 0x10
    damaged = tmp_path / "damaged.ctrlarchive"
    damaged.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=f"chunk #2 .*at byte {chunks[2]}"):
        import_(damaged, into=empty, verify=False, txn_events=1)
    assert empty.position == 10  # chunks #0 and #1, whole; nothing of #2
    assert answers(empty) == answers(source, as_of=Position(10))
    damaged.write_bytes(good)  # the archive is repaired (copied again): the import continues
    assert import_(damaged, into=empty).resumed
    assert digest(empty) == digest(source)


# -- digest and verification ---------------------------------------------------------------------


def test_the_same_log_gives_the_same_digest_and_history_off_a_different_one(
    source: ctrledger.Store, archive: Path, tmp_path: Path
) -> None:
    with ctrledger.open(tmp_path / "plain.db", history=False) as plain:
        import_(archive, into=plain)
        assert digest(plain) != digest(source)  # fewer read models
        assert verify_projections(plain).ok
    d = digest(source)
    assert len(d) == 64 and d == digest(source)


HAND_EDITS = [
    pytest.param("UPDATE containers SET image='evil' WHERE id='c1'", "containers", id="containers"),
    pytest.param("DELETE FROM label_spans WHERE id='c2' AND key='i' AND to_pos IS NULL", "label_spans",
                 id="live-label"),
    pytest.param("DELETE FROM namespaces WHERE name='ns2'", "namespaces", id="namespaces"),
    pytest.param("UPDATE versions SET to_pos=NULL WHERE id='c4' AND version=1", "versions", id="versions"),
    pytest.param("UPDATE label_spans SET value='9' WHERE id='c1' AND key='i'", "label_spans", id="label_spans"),
    pytest.param("UPDATE audit SET actor='mallory' WHERE position=3", "audit", id="audit"),
    pytest.param("UPDATE containers SET labels=x'80' WHERE id='c1'", "containers", id="blob-bytes"),
    pytest.param("UPDATE audit SET reason=NULL WHERE position=3", "audit", id="empty-string-to-null"),
]


@pytest.mark.parametrize(("sql", "table"), HAND_EDITS)
def test_a_hand_edited_read_model_changes_the_digest_and_verify_names_the_table(
    source: ctrledger.Store, sql: str, table: str
) -> None:
    clean = digest(source)
    assert verify_projections(source).ok
    with sqlite3.connect(source.path) as conn:
        conn.execute(sql)
    assert digest(source) != clean
    result = verify_projections(source)
    assert not result.ok and result.differences == (table,) and result.rebuilt == clean
    assert "DRIFT" in str(result)


# -- rebuild --------------------------------------------------------------------------------------


def tamper(store: ctrledger.Store) -> None:
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE containers SET image='tampered' WHERE id='c1'")


def test_rebuild_swaps_a_fresh_model_in_and_readers_see_the_old_one_until_then(source: ctrledger.Store) -> None:
    clean = digest(source)
    tamper(source)
    seen: list[str] = []

    def look(done: int, total: int) -> None:  # another connection, during the build
        with sqlite3.connect(source.path) as conn:
            seen.append(conn.execute("SELECT image FROM containers WHERE id='c1'").fetchone()[0])

    assert rebuild(source, progress=look, batch=4) == source.position
    assert seen and set(seen) == {"tampered"}
    assert source.get("c1", namespace="ns1").image == "docker.io/library/nginx:1.27"
    assert digest(source) == clean
    assert not scratch_path(source).exists()


def test_an_interrupted_rebuild_leaves_the_old_model_in_use_and_starts_over(source: ctrledger.Store) -> None:
    clean = digest(source)
    tamper(source)
    tampered = digest(source)
    calls: list[int] = []

    def interrupt(done: int, total: int) -> None:  # a failure midway (a Ctrl-C instead cleans up)
        calls.append(done)
        if done >= total // 2:
            raise MemoryError

    with pytest.raises(MemoryError):
        rebuild(source, progress=interrupt, batch=4)
    assert digest(source) == tampered  # nothing half-built in use
    assert pending_rebuild(source) == calls[-1]
    resumed: list[int] = []
    assert rebuild(source, progress=lambda d, t: resumed.append(d), batch=4) == source.position
    assert resumed[0] == 4  # a bulk build keeps its state in memory: the next one starts over
    assert digest(source) == clean and pending_rebuild(source) is None


KILLED_REBUILD = """
import sys, time
import ctrledger
from ctrledger.replay import rebuild
def progress(done, total):
    print(done, total, flush=True)
    time.sleep(0.05)
with ctrledger.open(sys.argv[1]) as store:
    rebuild(store, progress=progress, batch=3)
"""


def test_a_rebuild_killed_halfway_starts_over_and_ends_with_the_same_digest(source: ctrledger.Store) -> None:
    clean = digest(source)
    tamper(source)
    tampered = digest(source)
    child = subprocess.Popen([sys.executable, "-c", KILLED_REBUILD, source.path], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        done, total = map(int, line.split())
        if done >= total // 2:
            os.kill(child.pid, signal.SIGKILL)
            break
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, child.stderr.read() if child.stderr else ""
    assert digest(source) == tampered
    assert (pending_rebuild(source) or 0) >= done
    assert rebuild(source) == source.position
    assert digest(source) == clean


def test_events_appended_during_a_rebuild_are_in_the_new_model(source: ctrledger.Store) -> None:
    def write(done: int, total: int) -> None:
        if done == 4:
            source.create(make("during"), namespace="ns0")

    rebuild(source, progress=write, batch=4)
    assert source.get("during", namespace="ns0").id == "during"
    assert verify_projections(source).ok


def test_a_scratch_file_of_another_log_is_discarded(source: ctrledger.Store, tmp_path: Path) -> None:
    clean = digest(source)
    with deterministic_store(tmp_path / "stranger.db") as stranger:
        stranger.create(make("x"))
        with pytest.raises(MemoryError):
            rebuild(stranger, progress=lambda d, t: (_ for _ in ()).throw(MemoryError()))
        os.replace(scratch_path(stranger), scratch_path(source))
    rebuild(source)
    assert digest(source) == clean


def test_the_progress_bar_shows_items_rate_and_eta() -> None:
    out = __import__("io").StringIO()
    now = iter([0.0, 2.0, 4.0])
    bar = TerminalProgress("rebuild", stream=out, clock=lambda: next(now), interval=0)
    bar(0, 1000)
    bar(400, 1000)
    assert out.getvalue().split("\r")[-1] == (
        "rebuild  [#########...............]  40%  400/1,000 events  200/s  ETA 0:03")
    bar(1000, 1000)
    bar.close()
    text = out.getvalue()
    assert text.endswith(" \n") and text.rstrip().endswith("100%  1,000/1,000 events  250/s")  # padded over


# -- replay to a point ----------------------------------------------------------------------------


def test_replay_to_every_position_answers_as_the_original_did_then(source: ctrledger.Store,
                                                                     tmp_path: Path) -> None:
    for p in range(0, source.position + 1, 2):
        path = replay_to(source, tmp_path / f"at-{p}.db", as_of=Position(p))
        with ctrledger.open(path) as then:
            assert then.position == p
            assert answers(then) == answers(source, as_of=Position(p)), p
            for ns in NAMESPACES:
                for c in source.list(namespace=ns, as_of=Position(p)):
                    assert then.get(c.id, namespace=ns) == c
            assert ctrledger.verify(then).ok


def test_replay_to_a_time(source: ctrledger.Store, tmp_path: Path) -> None:
    history = list(source.history("c4", namespace="ns1"))
    deleted_at = history[1].recorded_at
    path = replay_to(source, tmp_path / "t.db", as_of=deleted_at)
    with ctrledger.open(path) as then:
        with pytest.raises(NotFound):
            then.get("c4", namespace="ns1")
        assert answers(then) == answers(source, as_of=deleted_at)
        assert [a.actor for a in then.audit(id="c4")][-1] == "alice"


def test_replay_to_refuses_an_existing_file_and_the_future(source: ctrledger.Store, tmp_path: Path) -> None:
    (tmp_path / "exists.db").write_bytes(b"")
    with pytest.raises(ctrledger.AlreadyExists):
        replay_to(source, tmp_path / "exists.db", as_of=Position(1))
    with pytest.raises(InvalidArgument, match="in the future"):
        replay_to(source, tmp_path / "future.db", as_of=Position(source.position + 1))
    assert not (tmp_path / "future.db").exists()


# -- schema evolution: an event class that gained a field -----------------------------------------


def _upcast_created_v1_v2(state: dict[str, Any]) -> None:
    """Created v1 had no ``sandbox`` (containerd added SandboxID in 1.7): there was none then."""
    state.setdefault("sandbox", "")


@pytest.fixture
def created_v2(monkeypatch: pytest.MonkeyPatch) -> None:
    """``Created`` at class version 2 with its upcaster, as ``ctrledger.domain.container`` should declare it.

    Once the domain declares it, this fixture changes nothing and the tests run on the real class.
    """
    if getattr(Created, "class_version", 1) < 2:
        monkeypatch.setattr(Created, "class_version", 2, raising=False)
        monkeypatch.setattr(Created, "upcast_v1_v2", staticmethod(_upcast_created_v1_v2), raising=False)


V1_ARCHIVE = GOLDEN / "replay-v1-created.ctrlarchive"


def test_events_written_before_created_gained_sandbox_still_load_replay_and_answer(
    created_v2: None, empty: ctrledger.Store, tmp_path: Path
) -> None:
    with ArchiveReader(V1_ARCHIVE) as reader:
        stored = [row for chunk in reader.chunks() for row in chunk.rows]
    created = [r for r in stored if r[3] == "ctrledger.container.Created"]
    assert created and all(b"sandbox" not in r[4] for r in created)  # written before the field existed
    import_(V1_ARCHIVE, into=empty)
    assert all(c.sandbox == "" for ns in NAMESPACES for c in empty.list(namespace=ns))
    assert [h.kind for h in empty.history("c4", namespace="ns1")] == ["Created", "Deleted", "Created"]
    assert verify_projections(empty).ok  # replaying the old events gives the same model
    rebuilt = digest(empty)
    rebuild(empty)
    assert digest(empty) == rebuilt
    # the old bytes stay in the log as they were written (the upcast happens on reading)
    assert [r[1:] for r in rows(Path(empty.path))] == [r[1:] for r in stored]
    # and an archive of the upgraded store still loads, twice alike
    export(empty, tmp_path / "again")
    with ctrledger.open(tmp_path / "again.db") as again:
        import_(tmp_path / "again", into=again)
        assert digest(again) == rebuilt


def test_without_the_upcaster_the_old_created_events_cannot_be_applied(
    empty: ctrledger.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Created, "class_version", 1, raising=False)
    with pytest.raises(AttributeError, match="sandbox"):
        import_(V1_ARCHIVE, into=empty)
    assert empty.position == 0


def test_an_archive_with_an_event_this_ctrledger_cannot_decode_imports_nothing(
    tmp_path: Path, empty: ctrledger.Store
) -> None:
    from ctrledger.replay.log import BareLog, append_stored

    with deterministic_store(tmp_path / "newer.db") as newer:
        newer.create(make("x"))
        mapper = newer.mapper
    conn = sqlite3.connect(tmp_path / "newer.db", isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")  # a later event of a class this ctrledger does not have, hashed
    append_stored(conn.cursor(), [("default/x", 2, "ctrledger.future.Event", b"\x80")], 1, [], mapper)
    conn.execute("COMMIT")
    conn.close()
    export(BareLog(tmp_path / "newer.db", mapper), tmp_path / "newer.ctrlarchive")
    with pytest.raises(FailedPrecondition, match="'ctrledger.future.Event'.*nothing was imported"):
        import_(tmp_path / "newer.ctrlarchive", into=empty)
    assert rows(Path(empty.path)) == [] and empty.position == 0
