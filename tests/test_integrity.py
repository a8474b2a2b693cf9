"""Tamper evidence: the tamper matrix on a real SQLite file edited with plain SQL, checkpoints,
signatures, inclusion and consistency proofs, and the in-place upgrade of an unhashed log."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

import ctrledger
from ctrledger import Checkpoint, Container
from ctrledger.persistence import integrity
from ctrledger.persistence.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    subtree_hash,
    verify_consistency,
    verify_inclusion,
)

from .conftest import StepClock, make

EVENTS = 24


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Checkpoint]:
    """A log of 24 events and a checkpoint taken of it."""
    path = Path(tmp_path_factory.mktemp("integrity")) / "ledger.db"
    with ctrledger.open(path, clock=StepClock()) as store:
        for i in range(20):
            store.create(make(f"c{i}", labels={"i": str(i)}), namespace="ns" if i % 2 else "default")
        for i in range(4):
            store.update(Container(id=f"c{2 * i}", labels={"x": str(i)}), "labels.x")
        assert store.position == EVENTS
        return path, store.checkpoint()


def edited(src: Path, dst: Path, edit: Callable[[sqlite3.Connection], None]) -> Path:
    shutil.copy(src, dst)
    conn = sqlite3.connect(dst)
    edit(conn)
    conn.commit()
    conn.close()
    return dst


def flip_byte(position: int, offset: int) -> Callable[[sqlite3.Connection], None]:
    def edit(conn: sqlite3.Connection) -> None:
        state = bytearray(conn.execute("SELECT state FROM stored_events WHERE rowid=?", (position,)).fetchone()[0])
        state[offset] ^= 0x01
        conn.execute("UPDATE stored_events SET state=? WHERE rowid=?", (bytes(state), position))

    return edit


def sql(*statements: str) -> Callable[[sqlite3.Connection], None]:
    def edit(conn: sqlite3.Connection) -> None:
        for s in statements:
            conn.execute(s)

    return edit


def rechain(edit: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    """An attacker who edits events and then recomputes every hash with our own code."""

    def both(conn: sqlite3.Connection) -> None:
        edit(conn)
        conn.execute("DELETE FROM event_hashes")
        conn.execute("DELETE FROM merkle_nodes")
        integrity.hash_missing(integrity.Sql(conn.cursor()))

    return both


SWAP = sql(
    "UPDATE stored_events SET rowid=-1 WHERE rowid=9",
    "UPDATE stored_events SET rowid=9 WHERE rowid=10",
    "UPDATE stored_events SET rowid=10 WHERE rowid=-1",
)

# (edit, the position the report must name first, the kind of problem)
MATRIX = [
    pytest.param(flip_byte(7, 20), 7, "content changed", id="one-byte-of-state"),
    pytest.param(sql("UPDATE stored_events SET topic='ctrledger.container.Deleted' WHERE rowid=12"), 12,
                 "content changed", id="topic"),
    pytest.param(sql("DELETE FROM stored_events WHERE rowid=11"), 11, "event missing", id="delete-middle-row"),
    pytest.param(sql(f"DELETE FROM stored_events WHERE rowid={EVENTS}"), EVENTS, "event missing",
                 id="delete-last-row"),
    pytest.param(sql("DELETE FROM stored_events WHERE rowid=13", "DELETE FROM event_hashes WHERE position=13"),
                 13, "event missing", id="delete-middle-row-and-its-hash"),
    pytest.param(SWAP, 9, "order changed", id="swap-two-positions"),
    pytest.param(sql("UPDATE stored_events SET originator_id='other/c3' WHERE rowid=4"), 4, "content changed",
                 id="move-to-another-stream"),
    pytest.param(sql("UPDATE stored_events SET originator_version=7 WHERE rowid=21"), 21, "content changed",
                 id="change-version"),
    pytest.param(sql("INSERT INTO stored_events SELECT originator_id, 99, topic, state FROM stored_events "
                     "WHERE rowid=2"), EVENTS + 1, "event inserted", id="insert-a-row"),
    pytest.param(sql("UPDATE event_hashes SET chain=zeroblob(32) WHERE position=15"), 15, "chain broken",
                 id="chain-hash-edited"),
    pytest.param(sql("UPDATE merkle_nodes SET hash=zeroblob(32) WHERE level=3 AND idx=1"), 16, "tree broken",
                 id="merkle-node-edited"),
    pytest.param(sql(f"DELETE FROM stored_events WHERE rowid={EVENTS}",
                     f"DELETE FROM event_hashes WHERE position={EVENTS}"), EVENTS, "truncated",
                 id="truncate-log-and-hashes"),
]


@pytest.mark.parametrize(("edit", "position", "kind"), MATRIX)
def test_every_tampering_is_detected_with_its_position(
    pristine: tuple[Path, Checkpoint], tmp_path: Path, edit: Callable[[sqlite3.Connection], None],
    position: int, kind: str,
) -> None:
    src, checkpoint = pristine
    report = ctrledger.verify(edited(src, tmp_path / "t.db", edit), checkpoint)
    assert not report.ok
    first = report.first_problem
    assert first is not None
    assert (first.position, first.kind) == (position, kind), str(report)
    assert str(report).startswith(f"FAILED at position {position}: {kind}")
    json.dumps(report.to_dict())


@pytest.mark.parametrize(("edit", "position", "kind"), [p for p in MATRIX if p.id != "truncate-log-and-hashes"])
def test_the_database_alone_detects_edits_that_leave_the_hashes(
    pristine: tuple[Path, Checkpoint], tmp_path: Path, edit: Callable[[sqlite3.Connection], None],
    position: int, kind: str,
) -> None:
    src, _ = pristine
    report = ctrledger.verify(edited(src, tmp_path / "t.db", edit))
    assert report.first_problem is not None
    assert (report.first_problem.position, report.first_problem.kind) == (position, kind)


@pytest.mark.parametrize(
    ("edit", "lo", "hi"),
    [
        pytest.param(rechain(flip_byte(5, 30)), 1, 16, id="early-event"),
        pytest.param(rechain(flip_byte(18, 30)), 17, 24, id="late-event"),
        pytest.param(rechain(sql("DELETE FROM stored_events WHERE rowid=24")), 24, 24, id="drop-last-rechained"),
    ],
)
def test_a_rewritten_and_rechained_log_is_caught_by_the_checkpoint(
    pristine: tuple[Path, Checkpoint], tmp_path: Path, edit: Callable[[sqlite3.Connection], None], lo: int, hi: int,
) -> None:
    src, checkpoint = pristine
    path = edited(src, tmp_path / "t.db", edit)
    assert ctrledger.verify(path).ok  # internally consistent: only a checkpoint can tell
    report = ctrledger.verify(path, checkpoint)
    first = report.first_problem
    assert first is not None and first.kind in ("history rewritten", "truncated")
    assert lo <= first.position <= hi


def test_the_untouched_log_verifies_clean(pristine: tuple[Path, Checkpoint]) -> None:
    src, checkpoint = pristine
    report = ctrledger.verify(src, checkpoint)
    assert report.ok and (report.first, report.last) == (1, EVENTS)
    assert report.root == checkpoint.root
    assert str(report) == f"OK: positions 1-{EVENTS} verified, consistent with the checkpoint at {EVENTS}"


def test_verify_never_raises_on_garbage(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    assert not ctrledger.verify(junk).ok
    assert ctrledger.verify(tmp_path / "missing.db").first_problem.kind == "unreadable"  # type: ignore[union-attr]


def test_a_checkpoint_of_another_log_is_refused(pristine: tuple[Path, Checkpoint], tmp_path: Path) -> None:
    src, checkpoint = pristine
    with ctrledger.open(tmp_path / "other.db") as other:
        other.create(make())
        report = ctrledger.verify(other, checkpoint)
    assert report.first_problem is not None and report.first_problem.kind == "wrong log"


def test_signed_checkpoints_verify_with_the_public_key_alone(store: ctrledger.Store) -> None:
    store.create(make())
    key = Ed25519PrivateKey.generate()
    cp = store.checkpoint(sign_with=key)
    assert cp.verify_signature(key.public_key())
    assert not cp.verify_signature(Ed25519PrivateKey.generate().public_key())
    kept = Checkpoint.from_dict(json.loads(json.dumps(cp.to_dict())))  # printed, committed, read back
    assert kept == cp and kept.verify_signature(key.public_key())
    forged = dataclasses.replace(cp, position=cp.position + 1)  # edited after signing
    assert not forged.verify_signature(key.public_key())
    with pytest.raises(ValueError, match="do not fit together"):
        Checkpoint.from_dict({**cp.to_dict(), "size": cp.size + 1})  # a size its frontier cannot have
    assert not store.checkpoint().verify_signature(key.public_key())  # unsigned


def test_inclusion_proofs_are_checkable_on_their_own(store: ctrledger.Store) -> None:
    for i in range(13):
        store.create(make(f"c{i}"))
    cp = store.checkpoint()
    for position in range(1, 14):
        proof = store.prove(position, checkpoint=cp)
        assert proof.verify(cp)
        with store.read_model.synced() as conn:
            event = conn.execute(
                "SELECT originator_id, originator_version, topic, state FROM stored_events WHERE rowid=?", (position,)
            ).fetchone()
        assert proof.verify(cp, event=(event[0], event[1], event[2], bytes(event[3])))
        assert not proof.verify(cp, event=(event[0], event[1] + 1, event[2], bytes(event[3])))
    store.create(make("later"))
    assert not store.prove(3).verify(cp)  # a proof against another size is not the checkpoint's
    with pytest.raises(ctrledger.InvalidArgument, match="position 99 is not in a log of 14 events"):
        store.prove(99)


def test_consistency_proofs_show_the_old_log_is_a_prefix(store: ctrledger.Store) -> None:
    store.create(make("a"))
    old = store.checkpoint()
    for i in range(6):
        store.create(make(f"b{i}"))
    new = store.checkpoint()
    proof = store.prove_consistency(old, new)
    assert proof.verify(old, new)
    assert not proof.verify(new, old)


def test_a_log_written_without_hashes_is_upgraded_once_by_migrate_and_recorded(db_path: Path) -> None:
    with ctrledger.open(db_path) as store:
        for i in range(5):
            store.create(make(f"c{i}"))
    conn = sqlite3.connect(db_path)
    conn.executescript("DROP TABLE event_hashes; DROP TABLE merkle_nodes; DROP TABLE integrity_upgrades;")
    conn.close()
    with ctrledger.open(db_path) as store:
        assert not ctrledger.verify(store).ok  # opening hashes nothing
    assert ctrledger.migrate(db_path)["hashed"] == 5
    with ctrledger.open(db_path) as store:
        assert ctrledger.verify(store).ok
        store.create(make("after"))
        assert ctrledger.verify(store).ok
    conn = sqlite3.connect(db_path)
    upgrades = conn.execute("SELECT first_position, last_position FROM integrity_upgrades").fetchall()
    conn.close()
    assert upgrades == [(1, 5)]
    assert ctrledger.migrate(db_path)["hashed"] == 0  # migrating again upgrades nothing more
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT COUNT(*) FROM integrity_upgrades").fetchone()[0] == 1
    conn.close()


def naive_root(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(naive_root(leaves[:k]), naive_root(leaves[k:]))


@settings(max_examples=60)
@given(st.integers(1, 300), st.data())
def test_merkle_proofs_match_rfc6962(n: int, data: st.DataObject) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    nodes: dict[tuple[int, int], bytes] = {}
    for i, leaf in enumerate(leaves):
        nodes[(0, i)] = h = leaf
        level, idx = 0, i
        while idx & 1:
            h = node_hash(nodes[(level, idx - 1)], h)
            level, idx = level + 1, idx >> 1
            nodes[(level, idx)] = h

    def get(level: int, idx: int) -> bytes:
        return nodes[(level, idx)]

    root = subtree_hash(get, 0, n)
    assert root == naive_root(leaves)
    m = data.draw(st.integers(0, n - 1))
    path = inclusion_proof(get, m, n)
    assert verify_inclusion(leaves[m], m, n, path, root)
    assert not verify_inclusion(leaf_hash(b"forged"), m, n, path, root)
    old = data.draw(st.integers(1, n))
    proof = consistency_proof(get, old, n)
    assert verify_consistency(old, n, naive_root(leaves[:old]), root, proof)
    if old < n:
        assert not verify_consistency(old, n, leaf_hash(b"forged"), root, proof)


# -- the same matrix on an exported archive: verified with no database ------------------------

ArchiveEdit = Callable[[list[list[object]]], list[list[object]]]


def rewritten(src: Path, dst: Path, edit: ArchiveEdit, *, keep_chains: bool = True) -> Path:
    """An attacker's copy of an archive: rows edited, every checksum recomputed (so the
    framing is valid), the recorded chain hashes kept (or dropped)."""
    from ctrledger.replay.archive import ArchiveReader, ArchiveWriter

    with ArchiveReader(src) as reader:
        header = {k: v for k, v in reader.header.items() if k not in ("format", "format_version", "columns")}
        chunks = [(list(map(list, c.rows)), c.chain) for c in reader.chunks()]
    rows = [row for chunk, _ in chunks for row in chunk]
    rows = edit(rows)
    header["events"] = len(rows)  # a careful attacker keeps the framing consistent
    with dst.open("wb") as out:
        writer = ArchiveWriter(out, header)
        size = len(chunks[0][0])
        for i in range(0, len(rows), size):
            chain = chunks[min(i // size, len(chunks) - 1)][1] if keep_chains else None
            writer.write_chunk(rows[i:i + size], chain)
        writer.finish()
    return dst


def at(position: int, column: int, value: object) -> ArchiveEdit:
    def edit(rows: list[list[object]]) -> list[list[object]]:
        for row in rows:
            if row[0] == position:
                row[column] = value
        return rows

    return edit


def flip(position: int, offset: int) -> ArchiveEdit:
    def edit(rows: list[list[object]]) -> list[list[object]]:
        for row in rows:
            if row[0] == position:
                state = bytearray(row[4])  # type: ignore[arg-type]
                state[offset] ^= 1
                row[4] = bytes(state)
        return rows

    return edit


def drop(position: int) -> ArchiveEdit:
    return lambda rows: [r for r in rows if r[0] != position]


def swap(p: int, q: int) -> ArchiveEdit:
    def edit(rows: list[list[object]]) -> list[list[object]]:
        i = next(i for i, r in enumerate(rows) if r[0] == p)
        j = next(i for i, r in enumerate(rows) if r[0] == q)
        rows[i][1:], rows[j][1:] = rows[j][1:], rows[i][1:]
        return rows

    return edit


@pytest.fixture(scope="module")
def archive(pristine: tuple[Path, Checkpoint], tmp_path_factory: pytest.TempPathFactory) -> Path:
    src, _ = pristine
    path = Path(tmp_path_factory.mktemp("archive")) / "log.ctrlarchive"
    with ctrledger.open(src) as store:
        store.export(path)
    return path


ARCHIVE_MATRIX = [
    pytest.param(flip(7, 20), 7, id="one-byte-of-state"),
    pytest.param(at(12, 3, "ctrledger.container.Deleted"), 12, id="topic"),
    pytest.param(drop(11), 11, id="delete-middle-event"),
    pytest.param(swap(9, 10), 9, id="swap-two-positions"),
    pytest.param(at(4, 1, "other/c3"), 4, id="move-to-another-stream"),
]


def test_the_untouched_archive_verifies_clean(archive: Path, pristine: tuple[Path, Checkpoint]) -> None:
    _, checkpoint = pristine
    report = ctrledger.verify(archive, checkpoint)
    assert report.ok, str(report)
    assert (report.first, report.last, report.root) == (1, EVENTS, checkpoint.root)


@pytest.mark.parametrize(("edit", "position"), ARCHIVE_MATRIX)
def test_an_edited_archive_is_caught_by_its_recorded_chain(
    archive: Path, pristine: tuple[Path, Checkpoint], tmp_path: Path, edit: ArchiveEdit, position: int
) -> None:
    report = ctrledger.verify(rewritten(archive, tmp_path / "t.ctrlarchive", edit))
    first = report.first_problem
    assert first is not None and first.kind == "content changed", str(report)
    # the chain is recorded per chunk: the report names the chunk holding the edit
    assert first.position <= position, str(report)
    assert f"-{position}" in first.detail or any(
        f"{a}-{b}" in first.detail for a in range(first.position, position + 1) for b in range(position, EVENTS + 1)
    )


@pytest.mark.parametrize(("edit", "position"), ARCHIVE_MATRIX)
def test_an_edited_archive_without_chains_is_caught_by_the_checkpoint(
    archive: Path, pristine: tuple[Path, Checkpoint], tmp_path: Path, edit: ArchiveEdit, position: int
) -> None:
    _, checkpoint = pristine
    path = rewritten(archive, tmp_path / "t.ctrlarchive", edit, keep_chains=False)
    assert ctrledger.verify(path).ok  # nothing recorded to compare with: only a checkpoint can tell
    first = ctrledger.verify(path, checkpoint).first_problem
    assert first is not None and first.kind in ("history rewritten", "event missing")
    assert first.position <= position


def test_a_corrupt_archive_names_the_byte_offset(archive: Path, tmp_path: Path) -> None:
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.ctrlarchive"
    bad.write_bytes(bytes(data))
    first = ctrledger.verify(bad).first_problem
    assert first is not None and first.kind == "unreadable" and "byte offset" in first.detail
