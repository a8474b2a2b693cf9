"""Tamper evidence: every event hashed and chained where its order is decided (the append).

For the event at log position ``p`` (``stream``, ``version``, ``topic``, ``state`` as stored):

* ``leaf_p  = SHA-256(0x00 || msgpack([stream, version, topic, state]))``
* ``chain_p = SHA-256(chain_{p-1} || p as 8 bytes big-endian || leaf_p)``, ``chain_0`` = 32 zero bytes
* the leaves form an RFC 6962 Merkle tree (``merkle.py``), whose complete subtrees are
  stored as they complete, so roots and proofs cost O(log n).

Tables (in the log's own file, written in the append transaction):
``event_hashes(position, leaf, chain)``, ``merkle_nodes(level, idx, hash)``,
``ledger_meta(key, value)`` (the log's random ``log_id``) and ``integrity_upgrades``
(when a log written without hashes was hashed in place).

What is guaranteed: changing, deleting, inserting or reordering any event, or moving it
to another stream, is detected by ``verify`` from the database alone, unless the
attacker also rewrites the hashes; then it is detected against any checkpoint taken
before the edit (the root no longer matches), and localised to the range of events the
first differing subtree covers. Not guaranteed: an attacker who can rewrite the log, its
hashes *and every checkpoint you kept* cannot be detected; keep checkpoints elsewhere
(print, sign, commit them).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ..errors import FailedPrecondition
from .merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    node_hash,
    subtree_hash,
    verify_consistency,
    verify_inclusion,
)
from .transcoder import pack_plain

__all__ = [
    "Checkpoint",
    "ConsistencyProof",
    "InclusionProof",
    "Problem",
    "VerifyReport",
    "event_leaf",
    "verify_rows",
]

ZERO = bytes(32)

LOG_SCHEMA_VERSION = 1
"""Version of the log's own tables (events, hashes), kept as ``ledger_meta.log_schema``."""

# Table names and the log's position column are formatted in per backend (see ``Sql``).
CREATE_STATEMENTS = [
    "CREATE TABLE IF NOT EXISTS {event_hashes} (position {position_key}, seq BIGINT NOT NULL, "
    "leaf {blob} NOT NULL, chain {blob} NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {merkle_nodes} (level INTEGER NOT NULL, idx BIGINT NOT NULL, hash {blob} NOT NULL, "
    "PRIMARY KEY (level, idx)){clustered}",
    "CREATE TABLE IF NOT EXISTS {ledger_meta} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "INSERT INTO {ledger_meta}(key, value) VALUES ('log_id', {random_id}) ON CONFLICT (key) DO NOTHING",
    "INSERT INTO {ledger_meta}(key, value) VALUES ('log_schema', '" + str(LOG_SCHEMA_VERSION) + "') "
    "ON CONFLICT (key) DO NOTHING",
    "CREATE TABLE IF NOT EXISTS {integrity_upgrades} (upgraded_at TEXT NOT NULL, "
    "first_position BIGINT NOT NULL, last_position BIGINT NOT NULL, note TEXT NOT NULL)",
]


_SQLITE_NAMES = {
    "event_hashes": "event_hashes", "merkle_nodes": "merkle_nodes", "ledger_meta": "ledger_meta",
    "integrity_upgrades": "integrity_upgrades", "stored_events": "stored_events", "pos": "rowid",
    "requests": "ctrledger_requests",
    "blob": "BLOB", "clustered": " WITHOUT ROWID", "random_id": "lower(hex(randomblob(16)))",
    "position_key": "INTEGER PRIMARY KEY",
}


class Dialect:
    """How one backend spells this module's SQL: placeholders and table names (texts cached)."""

    def __init__(self, placeholder: str = "?", names: dict[str, str] | None = None) -> None:
        self.placeholder = placeholder
        self.names = {**_SQLITE_NAMES, **(names or {})}
        self._texts: dict[str, str] = {}

    def text(self, statement: str) -> str:
        found = self._texts.get(statement)
        if found is None:
            found = self._texts[statement] = statement.format(**self.names).replace("?", self.placeholder)
        return found


SQLITE = Dialect()


class Sql:
    """Runs this module's SQL on one backend's cursor.

    Statements are written once, with ``?`` placeholders and ``{table}`` names; SQLite
    uses them as they are, PostgreSQL gets ``%s`` and schema-qualified names.
    """

    def __init__(self, cursor: Any, dialect: Dialect = SQLITE) -> None:
        self.cursor = cursor
        self.text = dialect.text

    def run(self, statement: str, params: Sequence[Any] = ()) -> None:
        self.cursor.execute(self.text(statement), params)

    def one(self, statement: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self.cursor.execute(self.text(statement), params)
        row = self.cursor.fetchone()
        return None if row is None else _plain(row)

    def all(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.cursor.execute(self.text(statement), params)
        return [_plain(r) for r in self.cursor.fetchall()]

    def many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.cursor.executemany(self.text(statement), rows)


def _plain(row: Any) -> tuple[Any, ...]:
    return tuple(row.values()) if isinstance(row, dict) else tuple(row)


def event_leaf(stream: str, version: int, topic: str, state: bytes) -> bytes:
    """The leaf hash of one stored event (what an auditor recomputes from an event copy).

    ``leaf_hash(msgpack([stream, version, topic, state]))``, computed without copying the state.
    """
    h = hashlib.sha256(b"\x00")
    h.update(pack_plain([stream, version, topic, state]))
    return h.digest()


def chain_hash(previous: bytes, position: int, leaf: bytes) -> bytes:
    return hashlib.sha256(previous + position.to_bytes(8, "big") + leaf).digest()


# -- writing ---------------------------------------------------------------------


def _write_hashes(db: Sql, seq: int, previous: bytes, leaves: Iterable[tuple[int, bytes]]) -> tuple[int, bytes]:
    """The chain and Merkle rows of events ``(position, leaf)`` that follow the ``seq``-th hashed
    event (chain hash ``previous``), in order, in two statements; returns the new ``(seq, chain)``.

    The nodes completed in this batch are kept on a stack (the right edge of the tree, levels
    decreasing upwards): a node's left sibling is its top when it was completed in this batch,
    else it is read from the table (once per level at most). The rows' hashes are bound as
    ``bytearray`` (a BLOB either way), which the sqlite3 module takes without an adapter lookup."""
    hashes: list[tuple[int, int, bytearray, bytearray]] = []
    nodes: list[tuple[int, int, bytearray]] = []
    stack: list[tuple[int, bytes]] = []  # (level, hash) of the subtrees completed in this batch, not yet joined
    for position, leaf in leaves:
        previous = chain_hash(previous, position, leaf)
        hashes.append((seq + 1, position, bytearray(leaf), bytearray(previous)))
        idx, level, h = seq, 0, leaf
        seq += 1
        nodes.append((0, idx, bytearray(leaf)))
        while idx & 1:
            if stack and stack[-1][0] == level:
                left = stack.pop()[1]
            else:  # completed before this batch
                found = db.one("SELECT hash FROM {merkle_nodes} WHERE level=? AND idx=?", (level, idx - 1))
                assert found is not None
                left = bytes(found[0])
            h = node_hash(left, h)
            level, idx = level + 1, idx >> 1
            nodes.append((level, idx, bytearray(h)))
        stack.append((level, h))
    db.many("INSERT INTO {event_hashes}(seq, position, leaf, chain) VALUES (?,?,?,?)", hashes)
    nodes.sort()  # each level's new nodes in key order: appended to the b-tree, not interleaved
    db.many("INSERT INTO {merkle_nodes}(level, idx, hash) VALUES (?,?,?)", nodes)
    return seq, previous


def hashed_head(db: Sql) -> tuple[int, int, bytes]:
    """(events hashed, the last hashed log position, its chain hash)."""
    row = db.one("SELECT seq, position, chain FROM {event_hashes} ORDER BY position DESC LIMIT 1")
    return (0, 0, ZERO) if row is None else (int(row[0]), int(row[1]), bytes(row[2]))


def first_unhashed(db: Sql, after: int, before: int | None = None) -> int | None:
    """The first log position after ``after`` (and before ``before``) holding an event with no hash."""
    statement = "SELECT MIN({pos}) FROM {stored_events} WHERE {pos} > ?"
    params: list[Any] = [after]
    if before is not None:
        statement += " AND {pos} < ?"
        params.append(before)
    row = db.one(statement, params)
    return None if row is None or row[0] is None else int(row[0])


def unhashed_refusal(position: int, last_hashed: int) -> FailedPrecondition:
    """The error every write gets while the log holds an event without a hash."""
    if last_hashed == 0:
        return FailedPrecondition(
            f"the log holds events without hashes from position {position} (it was written before tamper "
            f"evidence, or its hashes were removed): check it with 'ctrledger verify', then hash it once with "
            f"'ctrledger migrate' (ctrledger.migrate); writes are refused until then: failed precondition"
        )
    return FailedPrecondition(
        f"the log holds an event without a hash at position {position}, after the last hashed event at "
        f"position {last_hashed}: it was added or rewritten outside the store. 'ctrledger verify' reports it; "
        f"writes are refused until an operator restores the log or accepts the events "
        f"('ctrledger migrate --accept-unhashed', ctrledger.migrate(target, accept_unhashed=True)): "
        f"failed precondition"
    )


def append_hashes(
    db: Sql, rows: Iterable[tuple[int, str, int, str, bytes]], leaves: Sequence[bytes] | None = None
) -> None:
    """Hash and chain newly appended events (position, stream, version, topic, state), in order.

    ``leaves``: the events' leaf hashes (``event_leaf``), when the caller has computed them
    already (an import, whose check of the archive computed every leaf); else they are computed
    here.

    Runs inside the append transaction. Opening or writing never hashes an event that was
    not appended by this function: an event without a hash before the new ones (added
    outside the store, or rewritten with its hashes removed), or a new event at a position
    already hashed (the event recorded there was deleted), refuses the append with
    ``FailedPrecondition`` naming the position.
    """
    rows = list(rows)
    if not rows:
        return
    seq, last, previous = hashed_head(db)
    start = rows[0][0]
    if start <= last:
        raise FailedPrecondition(
            f"the log's event at position {start} was deleted outside the store (its hash is recorded, the "
            f"event is gone), so the next event would take its position: 'ctrledger verify' reports it; "
            f"writes are refused until an operator restores the log: failed precondition"
        )
    if start != last + 1:
        missing = first_unhashed(db, last, start)
        if missing is not None:
            raise unhashed_refusal(missing, last)
    if leaves is None:
        leaves = [event_leaf(stream, version, topic, state) for _, stream, version, topic, state in rows]
    elif len(leaves) != len(rows):
        raise ValueError(f"{len(leaves)} leaf hashes for {len(rows)} events")
    _write_hashes(db, seq, previous, zip([r[0] for r in rows], leaves, strict=True))


def hash_missing(db: Sql, before: int | None = None) -> tuple[int, int, bytes]:
    """Hash every event after the last hashed one (and before ``before``); return the new head.

    Only ``upgrade`` (an explicit migration) and tests that play an attacker call it.
    """
    seq, last, previous = hashed_head(db)
    statement = "SELECT {pos}, originator_id, originator_version, topic, state FROM {stored_events} WHERE {pos} > ?"
    params: list[Any] = [last]
    if before is not None:
        statement += " AND {pos} < ?"
        params.append(before)
    leaves = [(int(position), event_leaf(stream, version, topic, bytes(state)))
              for position, stream, version, topic, state in db.all(statement + " ORDER BY {pos}", params)]
    if leaves:
        seq, previous = _write_hashes(db, seq, previous, leaves)
        last = leaves[-1][0]
    return seq, last, previous


def upgrade(db: Sql, *, accept_unhashed: bool = False) -> tuple[int, int] | None:
    """Hash a log written without hashes, in place, once; record the upgrade. Returns its range.

    A log that is already hashed but holds events without hashes after its last hashed
    one is a finding, not an upgrade: ``FailedPrecondition`` naming the position, unless
    the operator accepts them (``accept_unhashed``), which is recorded as such.
    The caller runs it inside one write transaction (``migrate`` does).
    """
    for statement in CREATE_STATEMENTS:
        db.run(statement)
    _, last, _ = hashed_head(db)
    first = first_unhashed(db, last)
    if first is None:
        return None
    if last and not accept_unhashed:
        raise unhashed_refusal(first, last)
    head_row = db.one("SELECT COALESCE(MAX({pos}), 0) FROM {stored_events}")
    head = int(head_row[0]) if head_row else 0
    hash_missing(db)
    note = ("events written without hashes were hashed in place" if not last else
            f"an operator accepted events without hashes after position {last} and had them hashed")
    db.run(
        "INSERT INTO {integrity_upgrades}(upgraded_at, first_position, last_position, note) VALUES (?,?,?,?)",
        (datetime.now(UTC).isoformat(), first, head, note),
    )
    return first, head


# -- checkpoints and proofs ---------------------------------------------------------


def _hex(b: bytes) -> str:
    return b.hex()


def _count(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"its {name} must be a non-negative integer, not {value!r}")
    return value


def _digest(value: Any, name: str) -> str:
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"its {name} must be a SHA-256 in hex, not {value!r}")
    return value


@dataclass(frozen=True)
class Checkpoint:
    """A small record of the whole log at one size, to keep elsewhere (print it, sign it, commit it).

    ``frontier`` holds the roots of the complete subtrees that make up the tree (largest
    first); with it ``verify`` can say which range of events a rewrite touched.
    """

    log_id: str
    size: int  # events covered
    position: int  # the last log position covered
    root: str
    chain: str
    frontier: tuple[str, ...]
    created_at: datetime
    key_id: str = ""
    signature: str = ""

    def payload(self) -> bytes:
        """The canonical bytes a signature covers (everything but the signature)."""
        body = self.to_dict()
        body.pop("signature")
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def sign(self, private_key: Any) -> Checkpoint:
        """This checkpoint signed with an Ed25519 private key (``cryptography``)."""
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        key_id = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
        unsigned = replace(self, key_id=key_id, signature="")
        return replace(unsigned, signature=private_key.sign(unsigned.payload()).hex())

    def verify_signature(self, public_key: Any) -> bool:
        """Whether the signature is valid for ``public_key`` (an Ed25519 public key)."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        if not self.signature:
            return False
        if public_key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex() != self.key_id:
            return False
        try:
            public_key.verify(bytes.fromhex(self.signature), self.payload())
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "log_id": self.log_id, "size": self.size, "position": self.position, "root": self.root,
            "chain": self.chain,
            "frontier": list(self.frontier), "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "key_id": self.key_id, "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, d: Any) -> Checkpoint:
        """A checkpoint read back from ``to_dict()`` (e.g. from a JSON file); ValueError if it is not one."""
        try:
            cp = cls(
                log_id=str(d["log_id"]), size=_count(d["size"], "size"), position=_count(d["position"], "position"),
                root=_digest(d["root"], "root"), chain=_digest(d["chain"], "chain"),
                frontier=tuple(_digest(f, "frontier") for f in d["frontier"]),
                created_at=datetime.fromisoformat(str(d["created_at"]).replace("Z", "+00:00")),
                key_id=str(d.get("key_id", "")), signature=str(d.get("signature", "")),
            )
        except KeyError as e:
            raise ValueError(f"it has no {e}") from None
        except (TypeError, ValueError, AttributeError) as e:
            raise ValueError(str(e)) from None
        if len(cp.frontier) != cp.size.bit_count() or cp.position < cp.size:
            raise ValueError(f"its size {cp.size}, position {cp.position} and frontier of {len(cp.frontier)} "
                             f"do not fit together")
        if _fold([bytes.fromhex(f) for f in cp.frontier]).hex() != cp.root:
            raise ValueError("its frontier does not hash to its root")
        return cp


@dataclass(frozen=True)
class InclusionProof:
    """The path that ties one event's leaf to a tree root: checkable with hashes alone.

    ``index`` is the event's leaf number (0-based, in log order); ``size`` the tree's leaves.
    The proof covers the leaf and its index; ``position`` is where the log recorded that
    leaf, for the reader, and is not covered (on SQLite it is ``index + 1``). To tie a proof
    to an event's content, pass ``event=`` to ``verify``.
    """

    position: int
    index: int
    size: int
    leaf: str
    path: tuple[str, ...]
    root: str

    def verify(self, checkpoint: Checkpoint | None = None, *, event: tuple[str, int, str, bytes] | None = None) -> bool:
        """True if the path leads from the leaf to the root (and the root is the checkpoint's,
        and the leaf is ``event``'s ``(stream, version, topic, state)``, when given)."""
        if checkpoint is not None and (checkpoint.root != self.root or checkpoint.size != self.size):
            return False
        if event is not None and event_leaf(*event).hex() != self.leaf:
            return False
        return verify_inclusion(
            bytes.fromhex(self.leaf), self.index, self.size, [bytes.fromhex(p) for p in self.path],
            bytes.fromhex(self.root),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"position": self.position, "index": self.index, "size": self.size, "leaf": self.leaf,
                "path": list(self.path), "root": self.root}

    @classmethod
    def from_dict(cls, d: Any) -> InclusionProof:
        """A proof read back from ``to_dict()``; ValueError if it is not one."""
        try:
            proof = cls(_count(d["position"], "position"), _count(d["index"], "index"), _count(d["size"], "size"),
                        _digest(d["leaf"], "leaf"), tuple(_digest(p, "path") for p in d["path"]),
                        _digest(d["root"], "root"))
        except KeyError as e:
            raise ValueError(f"it has no {e}") from None
        except (TypeError, ValueError) as e:
            raise ValueError(str(e)) from None
        if proof.position < proof.index + 1:
            raise ValueError(f"position {proof.position} cannot hold leaf {proof.index}: positions count from 1 "
                             f"and never fall behind the leaves")
        return proof


@dataclass(frozen=True)
class ConsistencyProof:
    """Proof that the log at ``old_size`` is a prefix of the log at ``new_size``."""

    old_size: int
    new_size: int
    old_root: str
    new_root: str
    path: tuple[str, ...]

    def verify(self, old: Checkpoint | None = None, new: Checkpoint | None = None) -> bool:
        if old is not None and (old.root, old.size) != (self.old_root, self.old_size):
            return False
        if new is not None and (new.root, new.size) != (self.new_root, self.new_size):
            return False
        return verify_consistency(
            self.old_size, self.new_size, bytes.fromhex(self.old_root), bytes.fromhex(self.new_root),
            [bytes.fromhex(p) for p in self.path],
        )


def _node_reader(db: Sql) -> Callable[[int, int], bytes]:
    def node(level: int, idx: int) -> bytes:
        row = db.one("SELECT hash FROM {merkle_nodes} WHERE level=? AND idx=?", (level, idx))
        if row is None:
            raise LookupError(f"Merkle node ({level}, {idx}) is missing")
        return bytes(row[0])

    return node


def _frontier_ranges(size: int) -> list[tuple[int, int]]:
    """The complete aligned subtrees that make up a tree of ``size`` leaves, largest first."""
    out, start = [], 0
    for bit in range(size.bit_length() - 1, -1, -1):
        if size >> bit & 1:
            out.append((start, start + (1 << bit)))
            start += 1 << bit
    return out


def _fold(frontier: list[bytes]) -> bytes:
    if not frontier:
        return EMPTY_ROOT
    h = frontier[-1]
    for left in reversed(frontier[:-1]):
        h = node_hash(left, h)
    return h


def make_checkpoint(db: Sql, now: datetime) -> Checkpoint:
    """A checkpoint of everything hashed so far (run it inside one read transaction)."""
    size, position, chain = hashed_head(db)
    node = _node_reader(db)
    frontier = [subtree_hash(node, a, b) for a, b in _frontier_ranges(size)]
    row = db.one("SELECT value FROM {ledger_meta} WHERE key='log_id'")
    return Checkpoint(
        log_id=row[0] if row else "", size=size, position=position, root=_fold(frontier).hex(),
        chain=chain.hex(), frontier=tuple(f.hex() for f in frontier), created_at=now,
    )


def root_of(db: Sql, size: int) -> str:
    """The hex Merkle root of the first ``size`` recorded leaves (LookupError if a node is missing)."""
    return subtree_hash(_node_reader(db), 0, size).hex()


def leaf_number(db: Sql, position: int) -> int | None:
    """The 0-based leaf index of the event at ``position``, if it was hashed."""
    row = db.one("SELECT seq FROM {event_hashes} WHERE position=?", (position,))
    return None if row is None else int(row[0]) - 1


def prove_inclusion(db: Sql, position: int, size: int) -> InclusionProof:
    index = leaf_number(db, position)
    if index is None or index >= size:
        raise LookupError(f"position {position} is not in a log of {size} events")
    node = _node_reader(db)
    path = inclusion_proof(node, index, size)
    return InclusionProof(position, index, size, node(0, index).hex(), tuple(p.hex() for p in path),
                          subtree_hash(node, 0, size).hex())


def prove_consistency(db: Sql, old_size: int, new_size: int) -> ConsistencyProof:
    node = _node_reader(db)
    path = consistency_proof(node, old_size, new_size)
    return ConsistencyProof(old_size, new_size, subtree_hash(node, 0, old_size).hex(),
                            subtree_hash(node, 0, new_size).hex(), tuple(p.hex() for p in path))


# -- verification ---------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the log, at a position."""

    position: int
    kind: str  # content changed | event missing | event inserted | order changed | chain broken | tree broken
    #            | truncated | history rewritten | wrong log | read models differ
    detail: str

    def __str__(self) -> str:
        return f"position {self.position}: {self.kind}: {self.detail}"


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify`` found: OK with the range covered, or the problems, first one first."""

    ok: bool
    first: int
    last: int
    root: str
    problems: tuple[Problem, ...] = field(default=())
    checkpoint_size: int | None = None
    read_models_ok: bool | None = None
    """Whether the read models equal a rebuild from the log: True or False when they were
    checked (``verify`` of a ``Store``), None when only the log was (a file or an archive)."""

    @property
    def first_problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def __str__(self) -> str:
        if self.ok:
            covered = f"positions {self.first}-{self.last}" if self.last else "an empty log"
            extra = f", consistent with the checkpoint at {self.checkpoint_size}" if self.checkpoint_size else ""
            models = "; the read models match the log" if self.read_models_ok else ""
            return f"OK: {covered} verified{extra}{models}"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        return f"FAILED at {self.problems[0]}{more}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "first": self.first, "last": self.last, "root": self.root,
            "checkpoint_size": self.checkpoint_size, "read_models_ok": self.read_models_ok,
            "problems": [{"position": p.position, "kind": p.kind, "detail": p.detail} for p in self.problems],
        }


Row = tuple[int, str, int, str, bytes]  # position, stream, version, topic, state
HashRow = tuple[int, int, bytes, bytes]  # seq, position, leaf, chain
MAX_PROBLEMS = 100


def _push(frontier: list[tuple[int, bytes]], leaf: bytes) -> list[tuple[int, bytes]]:
    """Add a leaf to a right-edge frontier; return the nodes it completed (level, hash)."""
    level, h, completed = 0, leaf, []
    while frontier and frontier[-1][0] == level:
        h = node_hash(frontier.pop()[1], h)
        level += 1
        completed.append((level, h))
    frontier.append((level, h))
    return completed


def _merge(events: Iterator[Row], hashes: Iterator[HashRow]) -> Iterator[tuple[int, Row | None, HashRow | None]]:
    """Events and hash rows side by side, by log position."""
    e, h = next(events, None), next(hashes, None)
    while e is not None or h is not None:
        if h is None or (e is not None and e[0] < h[1]):
            assert e is not None
            yield e[0], e, None
            e = next(events, None)
        elif e is None or h[1] < e[0]:
            yield h[1], None, h
            h = next(hashes, None)
        else:
            yield e[0], e, h
            e, h = next(events, None), next(hashes, None)


def verify_rows(
    events: Iterable[Row],
    hashes: Iterable[HashRow],
    *,
    checkpoint: Checkpoint | None = None,
    log_id: str | None = None,
    stored_nodes: Callable[[int, int], bytes | None] | None = None,
    where_is_leaf: Callable[[bytes], int | None] | None = None,
) -> VerifyReport:
    """Walk a log (events and their recorded hashes, both by position) and check it.

    Recomputes every leaf, checks each recorded chain link and Merkle node, and rebuilds
    the tree from the events as they are now to compare with the checkpoint. Never
    raises for a bad log: the report says what is wrong, first problem first.
    """
    problems: list[Problem] = []

    def problem(position: int, kind: str, detail: str) -> None:
        if len(problems) < MAX_PROBLEMS:
            problems.append(Problem(position, kind, detail))

    if checkpoint is not None and log_id is not None and checkpoint.log_id != log_id:
        problem(0, "wrong log", f"the checkpoint is of log {checkpoint.log_id}, this is log {log_id}")
    chain, expected_seq = ZERO, 1
    frontier: list[tuple[int, bytes]] = []  # the tree of the events as they are now
    recorded_frontier: list[tuple[int, bytes]] = []  # the tree of the recorded leaves
    checkpoint_frontier: list[bytes] | None = [] if checkpoint is not None and checkpoint.size == 0 else None
    first = last = leaves = 0
    for position, row, stored in _merge(iter(events), iter(hashes)):
        gap = False
        if stored is not None:
            seq = stored[0]
            if seq > expected_seq:
                gap = True
                problem(last + 1, "event missing",
                        f"{seq - expected_seq} recorded event(s) after position {last} are gone, hashes and all")
            elif seq < expected_seq:
                gap = True
                problem(position, "chain broken", "the recorded hashes are out of order")
            expected_seq = seq + 1
        if row is None:
            problem(position, "event missing", "the event's hash is recorded but the event is gone")
            assert stored is not None
            leaf = stored[2]
        else:
            _, stream, version, topic, state = row
            leaf = event_leaf(stream, version, topic, state)
            if stored is None:
                problem(position, "event inserted", "an event with no recorded hash (added outside the store)")
                first = first or position
                last = position
                continue  # not part of the recorded log: it joins no chain and no tree
            if stored[2] != leaf:
                elsewhere = where_is_leaf(leaf) if where_is_leaf is not None and len(problems) < 10 else None
                if elsewhere is not None and elsewhere != position:
                    problem(position, "order changed", f"this event was recorded at position {elsewhere}")
                else:
                    problem(position, "content changed",
                            f"its stream, version, topic or state differ from what was recorded "
                            f"(now {stream!r} v{version} {topic})")
        # Each recorded link must follow from the recorded link before it; checking links
        # one by one names the broken one instead of every position after it.
        if not gap and stored[3] != chain_hash(chain, position, stored[2]):
            problem(position, "chain broken", "the recorded chain hash does not follow from the one before it")
        chain = stored[3]
        _push(frontier, leaf)
        leaves += 1
        if stored_nodes is not None:
            for level, node in _push(recorded_frontier, stored[2]):
                # the node completed here covers the 2**level leaves ending at this one
                recorded = stored_nodes(level, (stored[0] >> level) - 1)
                if recorded is not None and recorded != node:
                    problem(position, "tree broken", f"the stored Merkle node at level {level} does not match")
        if checkpoint is not None and leaves == checkpoint.size:
            checkpoint_frontier = [f for _, f in frontier]
        first = first or position
        last = position
    root = _fold([f for _, f in frontier])
    size_checked = None
    if checkpoint is not None:
        size_checked = checkpoint.size
        if leaves < checkpoint.size:
            problem(last + 1, "truncated",
                    f"the checkpoint covers {checkpoint.size} events (to position {checkpoint.position}); "
                    f"the log now has {leaves}, ending at position {last}")
        elif (
            checkpoint_frontier is not None
            and _fold(checkpoint_frontier).hex() != checkpoint.root
            and not any(p.position <= checkpoint.position for p in problems)  # already named precisely
        ):
            for (a, b), mine, theirs in zip(
                _frontier_ranges(checkpoint.size), checkpoint_frontier, checkpoint.frontier, strict=False
            ):
                if mine.hex() != theirs:
                    problem(a + 1, "history rewritten",
                            f"events {a + 1}-{b} no longer hash to what the checkpoint recorded "
                            f"(changed and re-hashed at or after event {a + 1}, at or before event {b})")
                    break
            else:
                problem(1, "history rewritten", "the log no longer hashes to the checkpoint's root")
    problems.sort(key=lambda p: p.position)
    return VerifyReport(not problems, first, last, root.hex(), tuple(problems), size_checked)


def verify_database(conn: sqlite3.Connection, checkpoint: Checkpoint | None = None) -> VerifyReport:
    """Verify the log in an SQLite file (``conn``: a connection of its own)."""
    # Tampered text must not stop the walk: undecodable bytes are kept, and then differ.
    conn.text_factory = lambda raw: raw.decode("utf-8", "surrogateescape")
    try:
        log_id_row = conn.execute("SELECT value FROM ledger_meta WHERE key='log_id'").fetchone()
    except sqlite3.Error:
        log_id_row = None
    events = conn.cursor().execute(
        "SELECT rowid, originator_id, originator_version, topic, state FROM stored_events ORDER BY rowid")
    hashes = conn.cursor().execute("SELECT seq, position, leaf, chain FROM event_hashes ORDER BY position")
    node_cur = conn.cursor()

    def stored_node(level: int, idx: int) -> bytes | None:
        if idx < 0:
            return None
        row = node_cur.execute("SELECT hash FROM merkle_nodes WHERE level=? AND idx=?", (level, idx)).fetchone()
        return None if row is None else bytes(row[0])

    leaf_cur = conn.cursor()

    def where_is_leaf(leaf: bytes) -> int | None:
        row = leaf_cur.execute("SELECT position FROM event_hashes WHERE leaf=? LIMIT 1", (leaf,)).fetchone()
        return None if row is None else int(row[0])

    def as_bytes(value: Any) -> bytes:
        return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value or b"")

    return verify_rows(
        ((int(r[0]), r[1], int(r[2]), r[3], as_bytes(r[4])) for r in events),
        ((int(r[0]), int(r[1]), bytes(r[2]), bytes(r[3])) for r in hashes),
        checkpoint=checkpoint,
        log_id=None if log_id_row is None else log_id_row[0],
        stored_nodes=stored_node,
        where_is_leaf=where_is_leaf,
    )


# -- for verifiers of other sources (an exported archive) -------------------------------

push_leaf = _push
fold_frontier = _fold
frontier_ranges = _frontier_ranges


def compare_with_checkpoint(
    checkpoint: Checkpoint, frontier_at_size: list[bytes] | None, leaves: int, last: int, first_gap: int | None = None,
) -> Problem | None:
    """The problem, if any, between a log's tree and a checkpoint of it (see ``verify_rows``).

    ``first_gap``: the first position missing between two present ones, if any.
    """
    if leaves < checkpoint.size and last >= checkpoint.position:
        return Problem(first_gap or 1, "event missing",
                       f"{checkpoint.size - leaves} of the {checkpoint.size} events the checkpoint covers are gone"
                       + (f" (the first gap is at position {first_gap})" if first_gap else ""))
    if leaves < checkpoint.size or frontier_at_size is None:
        return Problem(last + 1, "truncated",
                       f"the checkpoint covers {checkpoint.size} events (to position {checkpoint.position}); "
                       f"there are {leaves}, ending at position {last}")
    if _fold(frontier_at_size).hex() == checkpoint.root:
        return None
    for (a, b), mine, theirs in zip(_frontier_ranges(checkpoint.size), frontier_at_size, checkpoint.frontier,
                                    strict=False):
        if mine.hex() != theirs:
            return Problem(a + 1, "history rewritten",
                           f"events {a + 1}-{b} no longer hash to what the checkpoint recorded "
                           f"(changed and re-hashed at or after event {a + 1}, at or before event {b})")
    return Problem(1, "history rewritten", "the log no longer hashes to the checkpoint's root")
