"""Export the log to a portable archive, and import an archive into a store.

``export(store, path, since=None, until=None, namespaces=None)`` streams the stored
events of one consistent snapshot of the log, as stored (never decoded unless a time
bound asks for their timestamps), into an archive (``archive.py``); the archive is
written beside ``path`` and renamed into place when complete.

``import_(path, into=store)`` checks the whole archive first (nothing is imported
from a corrupt or truncated one, nor from one holding an event this ctrledger cannot
decode), then appends it chunk by chunk: each chunk is one ``BEGIN IMMEDIATE``
transaction that inserts the events, hashes and chains them, and records the progress
in ``ctrledger_imports``; a crash leaves whole chunks only, and running the import again
continues after the last one. The append hashes with the leaves the check computed
(``_Leaves``: kept in a temporary file, each chunk's tied to its checksum, so a chunk that
is not the one checked is refused instead). The read models are fed in each chunk's
transaction, except when they are empty (a new store): then they are built once, in bulk,
after the last chunk (``rebuild``), which is several times faster than applying the events
one by one.

Positions:

* a *complete* archive (no namespace or time filter) covers the log positions
  ``(after, through]`` and must continue the store's log: the store's head must be
  ``after`` (an empty store takes an archive from position 0), and the tamper-evidence
  chain at ``after`` must agree. Positions are then reproduced exactly.
* a *filtered* archive is appended after the store's head (positions are renumbered);
  each stream in it must continue the store's stream exactly (no collision, no gap).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any

from eventsourcing.persistence import Mapper

from ..domain.history import Position, Version, parse_point
from ..domain.validation import validate_namespace
from ..errors import FailedPrecondition, InvalidArgument
from ..persistence.log import decode_event, known_topic
from ..persistence.sqlite import write_transaction
from ..projections.bulk import bulk_capable
from ..projections.current import tracked_position
from ..projections.runner import View
from .archive import ArchiveReader, ArchiveWriter, Chunk
from .log import append_stored, chain_at, check_streams, log_head, log_id, root_at
from .rebuild import Progress, Replayable, Source, read_only, rebuild, require_embedded_log, source_of, synced

__all__ = ["ExportSummary", "ImportSummary", "export", "import_"]

CHUNK_EVENTS = 1000
CHUNK_BYTES = 8 * 1024 * 1024
TXN_EVENTS = 10_000  # an import commits whole chunks, about this many events per transaction

PROGRESS_TABLE = (
    "CREATE TABLE IF NOT EXISTS ctrledger_imports ("
    "archive_id TEXT PRIMARY KEY, path TEXT NOT NULL, chunks INTEGER NOT NULL, events INTEGER NOT NULL, "
    "source_last INTEGER, head INTEGER NOT NULL, finished INTEGER NOT NULL DEFAULT 0)"
)


@dataclass(frozen=True)
class ExportSummary:
    """What ``export`` wrote."""

    path: str
    archive_id: str
    events: int
    chunks: int
    bytes: int
    first: int | None
    last: int | None
    complete: bool
    seconds: float


@dataclass(frozen=True)
class ImportSummary:
    """What ``import_`` did: ``events``/``chunks`` imported by this call, the store's positions they took."""

    archive_id: str
    events: int
    chunks: int
    first: int | None
    last: int | None
    positions_preserved: bool
    resumed: bool
    already_imported: bool
    seconds: float


def _package_version() -> str:
    try:
        return version("ctrledger")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _bound(value: object, name: str) -> int | datetime | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = Position(value)
    point = parse_point(value, name)
    if isinstance(point, Version):
        raise InvalidArgument(f"export {name} takes a time or a Position, not a Version: invalid argument")
    return point.number if isinstance(point, Position) else point


def _json_bound(value: int | datetime | None) -> Any:
    return value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value


def export(
    source: Source,
    path: str | os.PathLike[str],
    since: object = None,
    until: object = None,
    namespaces: Sequence[str] | None = None,
    *,
    chunk_events: int = CHUNK_EVENTS,
    progress: Progress | None = None,
) -> ExportSummary:
    """Write the log (or part of it) to a portable archive at ``path``; see the module docstring.

    ``since``/``until``: a ``Position`` (or int) or a time (aware datetime or ISO-8601
    string); events after ``since`` and up to ``until`` (inclusive). ``namespaces``:
    only the events of these namespaces.
    """
    started = time.perf_counter()
    store = source_of(source)
    lo, hi = _bound(since, "since"), _bound(until, "until")
    if (isinstance(lo, int) and isinstance(hi, int) and lo > hi) or (
        isinstance(lo, datetime) and isinstance(hi, datetime) and lo > hi
    ):
        shown = [f"position {v}" if isinstance(v, int) else v.isoformat().replace("+00:00", "Z") for v in (lo, hi)]
        raise InvalidArgument(f"export since {shown[0]} is after until {shown[1]}: invalid argument")
    if isinstance(namespaces, str):
        raise InvalidArgument("namespaces must be a list of names, not a string: invalid argument")
    if namespaces is not None and not isinstance(namespaces, list | tuple | set | frozenset):
        raise InvalidArgument(f"namespaces must be a list of names, not {type(namespaces).__name__}: "
                              "invalid argument")
    names = None if namespaces is None else sorted({validate_namespace(n) for n in namespaces})
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    if not target.parent.is_dir():
        raise InvalidArgument(f"cannot write {target}: the directory {target.parent} does not exist: invalid argument")
    if target.is_dir():
        raise InvalidArgument(f"cannot write {target}: it is a directory: invalid argument")
    synced(store)
    conn = read_only(store.path)
    try:
        conn.execute("BEGIN")  # one snapshot for the count, the rows and the hashes
        head = log_head(conn)
        after = lo if isinstance(lo, int) else 0
        through = hi if isinstance(hi, int) else head
        if not 0 <= after <= through <= head:
            raise InvalidArgument(
                f"export range after position {after} through {through} is not within the log (head {head}): "
                "invalid argument"
            )
        t_since = lo if isinstance(lo, datetime) else None
        t_until = hi if isinstance(hi, datetime) else None
        timed = t_since is not None or t_until is not None
        complete = names is None and not timed
        where = "rowid > ? AND rowid <= ?"
        params: list[Any] = [after, through]
        if names is not None:
            where += f" AND substr(originator_id, 1, instr(originator_id, '/') - 1) IN ({', '.join('?' * len(names))})"
            params += names
        count = None if timed else int(conn.execute(
            f"SELECT COUNT(*) FROM stored_events WHERE {where}", params).fetchone()[0])
        header = {
            "created_by": f"ctrledger {_package_version()}",
            "source": {"path": os.path.abspath(store.path), "log_id": log_id(conn), "head": head},
            "range": {"after": after, "through": through},
            "filters": {"since": _json_bound(lo), "until": _json_bound(hi), "namespaces": names},
            "complete": complete,
            "anchor": {"position": after, "chain": chain_at(conn, after) if complete else None},
            "events": count,
        }
        cursor = conn.execute(
            f"SELECT rowid, originator_id, originator_version, topic, state FROM stored_events WHERE {where} "
            "ORDER BY rowid", params)
        try:
            out = open(partial, "wb")  # noqa: SIM115 - closed by the with below
        except OSError as e:
            raise InvalidArgument(f"cannot write {target}: {e.strerror}: invalid argument") from None
        with out:
            writer = ArchiveWriter(out, header)
            rows: list[tuple[Any, ...]] = []
            size = 0

            def flush() -> None:
                nonlocal size
                if rows:
                    writer.write_chunk(rows, chain_at(conn, int(rows[-1][0])) if complete else None)
                    rows.clear()
                    size = 0
                    if progress is not None:
                        progress(writer.events, count or 0)

            while batch := cursor.fetchmany(chunk_events):
                for row in batch:
                    if timed and not _in_time(store, row, t_since, t_until):
                        continue
                    rows.append(row)
                    size += len(row[4])
                    if len(rows) >= chunk_events or size >= CHUNK_BYTES:
                        flush()
            flush()
            last_chain = chain_at(conn, writer.last) if complete and writer.last is not None else None
            from_start = complete and after == 0 and writer.last is not None
            writer.finish(last_chain, root_at(conn, writer.last) if from_start and writer.last else None)
            out.flush()
            os.fsync(out.fileno())
        conn.execute("COMMIT")
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        conn.close()
    return ExportSummary(
        str(target), writer.archive_id, writer.events, writer.chunks, writer.bytes, writer.first, writer.last,
        complete, time.perf_counter() - started,
    )


def _in_time(store: Replayable, row: Sequence[Any], since: datetime | None, until: datetime | None) -> bool:
    event: Any = decode_event(store.mapper, row[0], row[1], row[2], row[3], row[4])
    ts: datetime = event.timestamp
    return (since is None or ts > since) and (until is None or ts <= until)


# -- import -----------------------------------------------------------------------------


def import_(
    path: str | os.PathLike[str],
    into: Source,
    *,
    verify: bool = True,
    progress: Progress | None = None,
    txn_events: int = TXN_EVENTS,
) -> ImportSummary:
    """Load the archive at ``path`` into the store ``into``; see the module docstring.

    ``verify`` (default): check every frame of the archive before importing anything.
    Without it, chunks are still checked one by one and a bad chunk is never imported,
    but the good chunks before it are. Importing an archive that was already imported
    does nothing (``already_imported``); an interrupted import continues (``resumed``).
    Raises ``ArchiveError`` (an ``InvalidArgument`` naming the byte offset) for a bad
    archive and ``FailedPrecondition`` when the store cannot take it.
    """
    started = time.perf_counter()
    rm = source_of(into)
    require_embedded_log(rm, "import")
    streams = _StreamCheck()
    with _Leaves(os.path.dirname(os.path.abspath(rm.path))) as leaves:
        if verify:
            # In one pass, before anything is committed: every frame (an ArchiveError names its byte
            # offset), what 'ctrledger verify --archive' checks (the events against their chain, counts,
            # the Merkle root), and that each stream continues and each topic is known (``_StreamCheck``).
            # The leaf hashes it computes are kept for the append (``_Leaves``).
            from .audit import verify_archive_log

            def visit(chunk: Chunk, hashed: list[bytes]) -> None:
                streams(chunk)
                leaves.add(chunk, hashed)

            report = verify_archive_log(path, visit=visit, unreadable=False)
            if not report.ok:
                raise InvalidArgument(
                    f"archive {os.fspath(path)} fails verification: {report.first_problem}; nothing was imported: "
                    "invalid argument"
                )
        return _import(path, rm, streams, leaves if verify else None, verify, progress, txn_events, started)


def _import(
    path: str | os.PathLike[str], rm: Replayable, streams: _StreamCheck, leaves: _Leaves | None, verify: bool,
    progress: Progress | None, txn_events: int, started: float,
) -> ImportSummary:
    """The import after the archive's check (``import_``): the chunks appended, then the read models."""
    with ArchiveReader(path) as reader:
        header = reader.header
        complete = bool(header.get("complete"))
        total = header.get("events")
        with rm.synced() as conn:
            conn.execute(PROGRESS_TABLE)
            _check_columns(conn, reader.extra_columns)
            head = log_head(conn)
            found = conn.execute(
                "SELECT chunks, events, head, finished FROM ctrledger_imports WHERE archive_id=?",
                (reader.archive_id,),
            ).fetchone()
            if found is not None and found[3]:
                return ImportSummary(reader.archive_id, 0, 0, None, None, complete, False, True,
                                     time.perf_counter() - started)
            if found is not None:
                skip, done, expected = int(found[0]), int(found[1]), int(found[2])
                if head != expected:
                    raise FailedPrecondition(
                        f"the import of {reader.path} stopped with the log at position {expected}, but the log is "
                        f"now at {head}: it changed since; failed precondition"
                    )
            else:
                skip, done = 0, 0
                _check_start(conn, header, head, reader.path)
                if verify:  # with the full check: refuse a collision anywhere in it before any write
                    streams.against(conn)
            # Checked whole against the store's streams just now, and the log cannot move during the
            # import (each group checks the head): the chunks need no check of their own against it.
            checked = verify and found is None
            # An empty read model (a new store) is built once from the whole log after the events are
            # in (``rebuild``, in bulk), instead of event by event in each chunk's transaction. Without
            # the full check, each good chunk is imported with its read models, for use before a bad one.
            views = list(rm.views)
            bulk = verify and bulk_capable(views) and all(tracked_position(conn, v.name) == 0 for v in views)
        preserved = complete
        first: int | None = None
        chunks = events = 0
        with closing(_writer(rm.path)) as conn:
            if bulk:  # only appends: the events, their hashes and Merkle nodes, each in key order
                conn.execute("PRAGMA cache_size=-8192")
            group: list[Chunk] = []

            def flush() -> None:
                nonlocal head, preserved, done, first, chunks, events
                size = sum(len(c.rows) for c in group)
                head, preserved, done = _import_group(conn, [] if bulk else views, rm.mapper, reader, group, head,
                                                      preserved, done, leaves, checked)
                first = head - size + 1 if first is None else first
                chunks += len(group)
                events += size
                group.clear()
                if progress is not None:
                    progress(done, total or 0)

            for chunk in reader.chunks(skip=skip):
                group.append(chunk)
                if sum(len(c.rows) for c in group) >= txn_events:
                    flush()
            if group:
                flush()
            if bulk:
                conn.execute("PRAGMA shrink_memory")  # its page cache is not needed while the views are built
                rebuild(rm)
            conn.execute(
                "INSERT INTO ctrledger_imports(archive_id, path, chunks, events, source_last, head, finished) "
                "VALUES (?,?,0,0,NULL,?,1) ON CONFLICT(archive_id) DO UPDATE SET finished=1",
                (reader.archive_id, os.path.abspath(reader.path), head),
            )
    return ImportSummary(reader.archive_id, events, chunks, first, None if first is None else head, preserved,
                         skip > 0, False, time.perf_counter() - started)


class _Leaves:
    """The leaf hashes of the archive's events, as its check computed them, kept for the append.

    32 bytes an event in an unnamed temporary file beside the store (removed when closed, or when
    the process ends however it ends), so memory does not grow with the archive; in memory only
    each chunk's checksum and place. A chunk is given its leaves only if it is the chunk that was
    checked (its checksum, over its whole body, is the one recorded): an archive changed between
    the check and the append is refused, not imported unchecked.
    """

    SIZE = 32

    def __init__(self, directory: str) -> None:
        self._directory = directory
        self._file: IO[bytes] | None = None
        self._chunks: dict[int, tuple[bytes, int, int]] = {}  # seq -> (checksum, offset, events)
        self._end = 0
        self._unavailable = False  # no temporary file could be made: the append computes the leaves

    def __enter__(self) -> _Leaves:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()

    def add(self, chunk: Chunk, leaves: list[bytes]) -> None:
        if self._file is None:
            if self._unavailable:
                return
            try:
                self._file = tempfile.TemporaryFile(dir=self._directory, prefix=".ctrledger-import-")
            except OSError:
                self._unavailable = True
                return
        try:
            self._file.seek(self._end)
            self._file.write(b"".join(leaves))
        except OSError:  # a full disk, say: the append hashes the events itself
            self._file.close()
            self._file, self._unavailable = None, True
            return
        self._chunks[chunk.seq] = (chunk.checksum, self._end, len(leaves))
        self._end += self.SIZE * len(leaves)

    def of(self, chunk: Chunk, path: str) -> list[bytes] | None:
        """The leaves of ``chunk`` (None: they were not kept, compute them)."""
        if self._file is None:
            return None
        found = self._chunks.get(chunk.seq)
        if found is None or found[0] != chunk.checksum or found[2] != len(chunk.rows):
            raise FailedPrecondition(
                f"the archive {path} changed while it was imported: chunk #{chunk.seq} (at byte {chunk.offset}) "
                "is not the one checked; import it again: failed precondition"
            )
        _, offset, count = found
        try:
            self._file.seek(offset)
            data = self._file.read(self.SIZE * count)
        except OSError:
            return None
        if len(data) != self.SIZE * count:
            return None
        return [data[i : i + self.SIZE] for i in range(0, len(data), self.SIZE)]


class _StreamCheck:
    """Refuses an archive whose events would not continue their streams in this store.

    Fed every chunk in one pass over the archive (memory: one entry per stream), then
    ``against`` looks at the store once: the per-chunk check alone would notice a collision
    only after earlier chunks were written. An event of a topic this ctrledger has no class
    for is refused here too, before any write.
    """

    def __init__(self) -> None:
        self.first: dict[str, tuple[int, int]] = {}
        self.following: dict[str, int] = {}
        self.topics: set[str] = set()
        self.problem: FailedPrecondition | None = None  # the first, raised by ``against``

    def __call__(self, chunk: Chunk) -> None:
        if self.problem is None:
            try:
                self._check(chunk)
            except FailedPrecondition as e:
                self.problem = e  # reported after the archive's own checks, as a separate pass would

    def _check(self, chunk: Chunk) -> None:
        first, following, topics = self.first, self.following, self.topics
        for position, oid, stream_version, topic, *_ in chunk.rows:  # ints: the reader checked them
            if topic not in topics:
                if not known_topic(topic):
                    raise FailedPrecondition(
                        f"event {oid!r} version {stream_version} (position {position}) has the topic {topic!r}, "
                        "which this ctrledger cannot decode (written by a newer one?): nothing was imported: "
                        "failed precondition")
                topics.add(topic)
            expected = following.get(oid)
            if expected is None:
                first[oid] = (stream_version, position)
            elif stream_version != expected:
                raise FailedPrecondition(
                    f"event {oid!r} version {stream_version} (position {position}) does not follow version "
                    f"{expected - 1} of its stream: failed precondition"
                )
            following[oid] = stream_version + 1

    def against(self, conn: sqlite3.Connection) -> None:
        """Refuse the archive if a stream in it does not continue (in it, or the store's stream)."""
        if self.problem is not None:
            raise self.problem
        check_streams(conn.cursor(), [(oid, v) for oid, (v, _) in self.first.items()],
                      [p for _, p in self.first.values()])


def _writer(path: str) -> sqlite3.Connection:
    """A connection of the import's own to the store's file, for large transactions.

    ``synchronous=NORMAL``: an import is resumable, so a power loss that takes the
    last committed transactions only makes the next run import them again.
    """
    conn = sqlite3.connect(path, isolation_level=None, timeout=60)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA cache_size=-65536")
    conn.execute("PRAGMA wal_autocheckpoint=16384")
    return conn


def _import_group(
    conn: sqlite3.Connection, views: Sequence[View], mapper: Mapper[Any], reader: ArchiveReader,
    group: Sequence[Chunk], head: int, preserved: bool, done: int, leaves: _Leaves | None = None,
    checked: bool = False,
) -> tuple[int, bool, int]:
    """Import whole chunks in one transaction (applying them to ``views``); return the new head, whether
    positions are kept, events done. ``leaves``: the leaf hashes the archive's check computed;
    ``checked``: the streams were checked against the store for the whole archive."""
    with write_transaction(conn) as cur:
        now = log_head(cur)
        if now != head:
            raise FailedPrecondition(
                f"the log moved from position {head} to {now} during the import of {reader.path}: "
                "failed precondition"
            )
        for chunk in group:
            source_positions = [int(r[0]) for r in chunk.rows]
            rows = [r[1:] for r in chunk.rows]
            if not checked:
                check_streams(cur, rows, source_positions)
            positions = append_stored(cur, rows, head, views, mapper, extra_columns=chunk.extra_columns,
                                      leaves=None if leaves is None else leaves.of(chunk, reader.path))
            if preserved and positions != source_positions:
                preserved = False  # the source log had holes: positions were renumbered
            if preserved and chunk.chain is not None:
                mine = chain_at(cur, positions[-1])
                if mine is not None and mine != chunk.chain:
                    raise FailedPrecondition(
                        f"after chunk #{chunk.seq} (at byte {chunk.offset}) the store's hash chain differs "
                        f"from the source's at position {positions[-1]}: failed precondition"
                    )
            head = positions[-1]
            done += len(rows)
        last = group[-1]
        cur.execute(
            "INSERT INTO ctrledger_imports(archive_id, path, chunks, events, source_last, head) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT(archive_id) DO UPDATE SET chunks=excluded.chunks, "
            "events=excluded.events, source_last=excluded.source_last, head=excluded.head",
            (reader.archive_id, os.path.abspath(reader.path), last.seq + 1, done, last.last, head),
        )
    return head, preserved, done


def _check_columns(conn: sqlite3.Connection, extra: Sequence[str]) -> None:
    if not extra:
        return
    have = {r[1] for r in conn.execute("PRAGMA table_info(stored_events)")}
    missing = [c for c in extra if c not in have]
    if missing:
        raise FailedPrecondition(
            f"the archive carries event column(s) {', '.join(missing)} that this store's log has no place for: "
            "failed precondition"
        )


def _check_start(conn: sqlite3.Connection, header: dict[str, Any], head: int, path: str) -> None:
    if not header.get("complete"):
        return  # filtered: appended after the head, stream by stream (checked per chunk)
    after = int(header["range"]["after"])
    if head != after:
        if head == 0:
            raise FailedPrecondition(
                f"{path} continues a log after position {after}, and this store is empty: import the log up to "
                f"position {after} first: failed precondition"
            )
        raise FailedPrecondition(
            f"{path} continues a log after position {after}, but this store's log ends at position {head}: "
            "positions do not continue: failed precondition"
        )
    anchor = header.get("anchor") or {}
    theirs = anchor.get("chain")
    if head and isinstance(theirs, bytes):
        mine = chain_at(conn, head)
        if mine is not None and mine != theirs:
            raise FailedPrecondition(
                f"{path} continues a different log: the hash chains differ at position {head}: failed precondition"
            )

