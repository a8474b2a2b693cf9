"""Verify an exported archive on its own: an auditor checks what they were given, no database.

An archive carries the events exactly as stored, and (when it is a complete export) the
chain hash at its start and at the end of every chunk. The verifier recomputes every
leaf and the chain from the events, compares the chain at each chunk end, and rebuilds
the Merkle tree to compare with a checkpoint, if one is given. A corrupt frame (a
checksum that does not match, a truncated file) is reported with its byte offset.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..persistence import integrity
from ..persistence.integrity import Checkpoint, Problem, VerifyReport
from .archive import ArchiveError, ArchiveReader, Chunk

__all__ = ["is_archive", "verify_archive_log"]


def is_archive(path: str | os.PathLike[str]) -> bool:
    """Whether the file starts like a ctrledger archive."""
    from .archive import PREAMBLE

    try:
        with open(path, "rb") as f:
            return f.read(len(PREAMBLE)) == PREAMBLE
    except OSError:
        return False


def verify_archive_log(
    path: str | os.PathLike[str], checkpoint: Checkpoint | None = None, *,
    visit: Callable[[Chunk, list[bytes]], None] | None = None, unreadable: bool = True,
) -> VerifyReport:
    """Check an archive's events against its recorded chain hashes (and a checkpoint).

    ``visit(chunk, leaves)`` is called with each chunk and its events' leaf hashes as they are
    read (a caller's own checks in the same pass; an import keeps the leaves). A frame that
    cannot be read is a problem of the report, or with ``unreadable=False`` the ``ArchiveError``
    itself, raised.
    """
    problems: list[Problem] = []
    first = last = leaves = 0
    first_gap: int | None = None
    frontier: list[tuple[int, bytes]] = []
    at_size: list[bytes] | None = [] if checkpoint is not None and checkpoint.size == 0 else None
    try:
        with ArchiveReader(path) as reader:
            header = reader.header
            anchor = header.get("anchor") or {}
            chain = anchor.get("chain") or integrity.ZERO
            from_start = int(anchor.get("position") or 0) == 0
            source = (header.get("source") or {}).get("log_id")
            if checkpoint is not None and source is not None and checkpoint.log_id != source:
                problems.append(Problem(0, "wrong log", f"the checkpoint is of log {checkpoint.log_id}, "
                                                        f"the archive of log {source}"))
            if checkpoint is not None and not from_start:
                problems.append(Problem(0, "incomplete", "the archive does not start at the log's first event, "
                                                         "so it cannot be compared with a checkpoint"))
            event_leaf, chain_hash, push_leaf = integrity.event_leaf, integrity.chain_hash, integrity.push_leaf
            for chunk in reader.chunks():
                hashed: list[bytes] = []
                for position, stream, version, topic, state, *_ in chunk.rows:
                    leaf = event_leaf(stream, int(version), topic, bytes(state))
                    hashed.append(leaf)
                    chain = chain_hash(chain, int(position), leaf)
                    push_leaf(frontier, leaf)
                    leaves += 1
                    if last and int(position) != last + 1 and first_gap is None:
                        first_gap = last + 1  # a gap: an event removed, or (PostgreSQL) a position never used
                    first = first or int(position)
                    last = int(position)
                    if checkpoint is not None and from_start and leaves == checkpoint.size:
                        at_size = [h for _, h in frontier]
                if visit is not None:
                    visit(chunk, hashed)
                if chunk.chain is not None and chunk.chain != chain:
                    problems.append(Problem(
                        chunk.first, "content changed",
                        f"the events at positions {chunk.first}-{chunk.last} do not hash to the chain recorded "
                        f"for them (one was changed, removed, added or moved)",
                    ))
                    chain = chunk.chain  # go on from what was recorded: later chunks are judged alone
            recorded_root = (reader.trailer or {}).get("root")
            if from_start and isinstance(recorded_root, str) and leaves:
                mine = integrity.fold_frontier([h for _, h in frontier]).hex()
                if mine != recorded_root:
                    problems.append(Problem(
                        first_gap or first, "history rewritten",
                        f"the {leaves} events do not hash to the Merkle root the archive records for its head "
                        f"(position {last}): an event was changed, removed, added or moved",
                    ))
    except ArchiveError as e:
        if not unreadable:
            raise
        problems.append(Problem(0, "unreadable", f"{e} (byte offset {e.offset})"))
    if checkpoint is not None and from_start and not any(p.kind == "unreadable" for p in problems):
        found = integrity.compare_with_checkpoint(checkpoint, at_size, leaves, last, first_gap)
        if found is not None and not any(p.position <= checkpoint.position for p in problems):
            problems.append(found)
    problems.sort(key=lambda p: p.position)
    root = integrity.fold_frontier([h for _, h in frontier]).hex()
    return VerifyReport(not problems, first, last, root, tuple(problems),
                        checkpoint.size if checkpoint is not None else None)
