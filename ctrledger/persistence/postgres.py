"""The PostgreSQL event log: one log shared by many ctrledger nodes.

``LedgerPostgresFactory`` is eventsourcing's ``PostgresFactory`` whose application
recorder, ``LedgerPostgresRecorder``, hashes and chains every event inside the append
transaction (the events table is locked EXCLUSIVE there, so the order is decided and
the chain is computed in the same place, as in SQLite). Its integrity tables live in
the same schema as the events.

An append is one round trip: ``BEGIN; SET LOCAL lock_timeout; SELECT ctrledger_append(…);
COMMIT`` sent as one pipeline. The function (APPEND_EVENTS_FUNCTION) takes the lock, notifies,
inserts, extends the chain and records the request id, so the lock is held for the server's
own work and the commit's WAL flush, never for a round trip to the client. A log created by
an older ctrledger and opened without creating (mode ``'w'``) may lack the function: the
recorder then appends as before (eventsourcing's insert, then the hashing call).

Notification ids (log positions) come from a ``bigserial``: a failed insert consumes
one, so positions may have gaps. Nothing here assumes they do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError, PersistenceError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore, PostgresFactory
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow
from psycopg.sql import SQL
from psycopg.types.numeric import Int8

from ..errors import FailedPrecondition
from . import integrity, requests
from .targets import default_readmodel_path, parse_url

__all__ = [
    "LedgerPostgresFactory",
    "LedgerPostgresRecorder",
    "create_schema",
    "default_readmodel_path",
    "log_state",
    "parse_url",
    "verify_postgres",
]



EVENTS_TABLE = "ctrledger_events"  # eventsourcing names it after the (pinned) application name


def dialect_for(schema: str, events_table: str = EVENTS_TABLE) -> integrity.Dialect:
    """How the integrity SQL is spelled in one PostgreSQL schema."""
    q = f'"{schema}".'
    return integrity.Dialect(
        "%s",
        names={
            "event_hashes": q + "event_hashes", "merkle_nodes": q + "merkle_nodes", "ledger_meta": q + "ledger_meta",
            "integrity_upgrades": q + "integrity_upgrades", "requests": q + "ctrledger_requests",
            "stored_events": q + f'"{events_table}"',
            "pos": "notification_id", "blob": "bytea", "clustered": "", "random_id": "md5(random()::text)",
            "position_key": "BIGINT PRIMARY KEY",
        },
    )


# The append step of integrity.py (chain and Merkle tree), as a PL/pgSQL function, so that
# hashing costs no round trip inside the transaction that holds the events table's lock.
# The leaves are computed by the client (integrity.event_leaf); ``verify`` recomputes
# everything in Python, so the two implementations are held together by every test that
# verifies a PostgreSQL log.
APPEND_FUNCTION = """
CREATE OR REPLACE FUNCTION "{s}".ctrledger_append_hashes(positions bigint[], leaves bytea[])
RETURNS void LANGUAGE plpgsql AS $body$
DECLARE
    v_seq bigint; v_prev bytea; v_last bigint; v_missing bigint; v_idx bigint; v_lvl int; v_hash bytea; v_left bytea;
BEGIN
    SELECT seq, chain, position INTO v_seq, v_prev, v_last
        FROM "{s}".event_hashes ORDER BY position DESC LIMIT 1;
    IF NOT FOUND THEN
        v_seq := 0; v_prev := decode(repeat('00', 32), 'hex'); v_last := 0;
    END IF;
    IF positions[1] <= v_last THEN
        RAISE EXCEPTION USING ERRCODE = 'CL002', MESSAGE = positions[1]::text || ' ' || v_last::text;
    END IF;
    SELECT MIN(notification_id) INTO v_missing FROM "{s}"."{events}"
        WHERE notification_id > v_last AND notification_id < positions[1];
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'CL001', MESSAGE = v_missing::text || ' ' || v_last::text;
    END IF;
    FOR i IN 1 .. array_length(positions, 1) LOOP
        v_seq := v_seq + 1;
        v_prev := sha256(v_prev || int8send(positions[i]) || leaves[i]);
        INSERT INTO "{s}".event_hashes(position, seq, leaf, chain) VALUES (positions[i], v_seq, leaves[i], v_prev);
        v_idx := v_seq - 1; v_lvl := 0; v_hash := leaves[i];
        INSERT INTO "{s}".merkle_nodes(level, idx, hash) VALUES (0, v_idx, v_hash);
        WHILE v_idx % 2 = 1 LOOP
            SELECT hash INTO v_left FROM "{s}".merkle_nodes WHERE level = v_lvl AND idx = v_idx - 1;
            v_hash := sha256('\\x01'::bytea || v_left || v_hash);
            v_lvl := v_lvl + 1; v_idx := v_idx / 2;
            INSERT INTO "{s}".merkle_nodes(level, idx, hash) VALUES (v_lvl, v_idx, v_hash);
        END LOOP;
    END LOOP;
END
$body$
"""


# One append, whole, on the server: lock, notify, insert, hash, record the request id. Called
# between BEGIN and COMMIT in one pipeline (LedgerPostgresRecorder.insert_events), so the
# events table's lock is held for no round trip. The statements and their order are those of
# eventsourcing's append (LOCK TABLE ... IN EXCLUSIVE MODE, NOTIFY, INSERT ... RETURNING)
# followed by this module's (ctrledger_append_hashes, the requests row): the same errors
# (unique violations, CL001/CL002) in the same cases.
APPEND_EVENTS_FUNCTION = """
CREATE OR REPLACE FUNCTION "{s}".ctrledger_append(
    streams text[], versions bigint[], topics text[], states bytea[], leaves bytea[],
    request_id text, request_stream text, request_version bigint)
RETURNS bigint[] LANGUAGE plpgsql AS $body$
DECLARE
    ids bigint[];
BEGIN
    LOCK TABLE "{s}"."{events}" IN EXCLUSIVE MODE;
    NOTIFY "{channel}";
    WITH inserted AS (
        INSERT INTO "{s}"."{events}" (originator_id, originator_version, topic, state)
        SELECT * FROM unnest(streams, versions, topics, states)
        RETURNING notification_id
    ) SELECT array_agg(notification_id) INTO ids FROM inserted;
    PERFORM "{s}".ctrledger_append_hashes(ids, leaves);
    IF request_id IS NOT NULL THEN
        INSERT INTO "{s}".ctrledger_requests(request_id, stream, version, position)
            VALUES (request_id, request_stream, request_version, ids[array_length(ids, 1)]);
    END IF;
    RETURN ids;
END
$body$
"""


class LedgerPostgresRecorder(PostgresApplicationRecorder):
    """Application recorder that hashes and chains events in the append transaction."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.dialect = dialect_for(self.datastore.schema, events_table_name)
        statements: list[Any] = [SQL(self.dialect.text(s))
                                 for s in (*integrity.CREATE_STATEMENTS, requests.CREATE_STATEMENT)]
        statements.append(SQL(APPEND_FUNCTION.replace("{s}", self.datastore.schema).replace(
            "{events}", events_table_name)))
        schema = self.datastore.schema
        statements.append(SQL(APPEND_EVENTS_FUNCTION.replace("{s}", schema).replace("{events}", events_table_name)
                              .replace("{channel}", self.channel_name)))
        self.sql_create_statements.extend(statements)
        self._append_call = SQL(f'SELECT "{schema}".ctrledger_append_hashes(%s, %s)')
        # Columns as plain arrays, bound in binary: no composite literal to build and parse, no
        # hex text for the events' bytes.
        self._append_events_call = SQL(
            f'SELECT "{schema}".ctrledger_append(%b::text[], %b::bigint[], %b::text[], %b::bytea[], %b::bytea[], '
            "%s::text, %s::text, %s::bigint) AS ids")
        self._one_trip = True  # False once the log is found without ctrledger_append (an older log)

    def create_table(self) -> None:
        # Nodes starting together would race on CREATE TYPE / CREATE FUNCTION ("tuple
        # concurrently updated"): one node at a time creates or upgrades the schema.
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"ctrledger-schema-{self.datastore.schema}",))
            conn.commit()
            try:
                super().create_table()
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"ctrledger-schema-{self.datastore.schema}",))
                conn.commit()

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        assert ids is not None
        # One statement, no result to wait for: the chain and tree are extended server-side
        # (APPEND_FUNCTION), inside the transaction that holds the events table's lock.
        leaves = [integrity.event_leaf(str(s.originator_id), s.originator_version, s.topic, s.state)
                  for s in stored_events]
        curs.execute(self._append_call, (list(ids), leaves))
        request_id = kwargs.get("request_id")
        if request_id is not None:
            last = stored_events[-1]
            requests.record(integrity.Sql(curs, self.dialect), request_id, str(last.originator_id),
                            last.originator_version, ids[-1])
        return ids

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)  # as eventsourcing's insert_events
    def _insert_in_one_trip(self, stored_events: Sequence[StoredEvent], request_id: str | None) -> Sequence[int] | None:
        """BEGIN, SET LOCAL lock_timeout, ctrledger_append, COMMIT: one pipeline, one round trip.

        ``None`` when the log has no ``ctrledger_append`` (nothing was written): the caller
        appends the older way."""
        leaves = [integrity.event_leaf(str(s.originator_id), s.originator_version, s.topic, s.state)
                  for s in stored_events]
        last = stored_events[-1]
        params = ([str(s.originator_id) for s in stored_events], [Int8(s.originator_version) for s in stored_events],
                  [s.topic for s in stored_events], [s.state for s in stored_events], leaves,
                  request_id, str(last.originator_id), Int8(last.originator_version))
        with self.datastore.get_connection() as conn:
            assert conn.autocommit
            call = conn.cursor()
            try:
                with conn.pipeline(), conn.cursor() as control:
                    control.execute("BEGIN")
                    control.execute(self.lock_table_statements[0], prepare=True)  # SET LOCAL lock_timeout
                    call.execute(self._append_events_call, params, prepare=True)
                    control.execute("COMMIT")
            except psycopg.errors.UndefinedFunction:
                self._rollback(conn)
                return None
            except BaseException:
                self._rollback(conn)
                raise
            row = call.fetchone()
            assert row is not None
            ids: list[int] = row["ids"]
            return ids

    @staticmethod
    def _rollback(conn: Any) -> None:
        # An error inside the pipeline leaves the explicit transaction aborted (the server skips
        # the COMMIT): end it before the connection goes back to the pool.
        if conn.pgconn.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            try:
                conn.execute("ROLLBACK")
            except psycopg.Error:
                pass  # the connection is gone: the server rolls back by itself

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        try:
            ids: Sequence[int] | None = None
            if self._one_trip and stored_events:  # nothing to append: eventsourcing's path, as before
                ids = self._insert_in_one_trip(stored_events, kwargs.get("request_id"))
                if ids is None:
                    self._one_trip = False
            if ids is None:
                ids = super().insert_events(stored_events, **kwargs)
            return ids
        except PersistenceError as e:
            # APPEND_FUNCTION refuses an append after an event without a hash (CL001) or onto a
            # position already hashed (CL002): the log was tampered with, not a driver fault.
            refusal = _tamper_refusal(e.__cause__)
            if refusal is not None:
                raise refusal from None
            raise


def _tamper_refusal(cause: BaseException | None) -> FailedPrecondition | None:
    code = getattr(cause, "sqlstate", None)
    if code not in ("CL001", "CL002"):
        return None
    diag = getattr(cause, "diag", None)
    position, last = (int(x) for x in str(getattr(diag, "message_primary", "") or "0 0").split())
    if code == "CL001":
        return integrity.unhashed_refusal(position, last)
    return FailedPrecondition(
        f"the log's event at position {position} was deleted outside the store (its hash is recorded, the event "
        f"is gone): 'ctrledger verify' reports it; writes are refused until an operator restores the log: "
        f"failed precondition"
    )


class LedgerPostgresFactory(PostgresFactory):
    application_recorder_class = LedgerPostgresRecorder


def _connect(settings: dict[str, str]) -> Any:
    import psycopg

    return psycopg.connect(
        host=settings["POSTGRES_HOST"], port=settings["POSTGRES_PORT"], dbname=settings["POSTGRES_DBNAME"],
        user=settings["POSTGRES_USER"], password=settings.get("POSTGRES_PASSWORD") or None,
        connect_timeout=int(settings.get("POSTGRES_CONNECT_TIMEOUT") or 5), autocommit=True,
    )


def log_state(settings: dict[str, str]) -> str:
    """``"ok"``, ``"no schema"`` (the URL's schema does not exist), ``"no log"`` (it holds no
    ctrledger log) or ``"unreachable"`` (then opening says why). Reads only."""
    import psycopg

    schema = settings.get("POSTGRES_SCHEMA") or "public"
    try:
        with _connect(settings) as conn:
            if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname=%s", (schema,)).fetchone() is None:
                return "no schema"
            found = conn.execute(
                "SELECT 1 FROM pg_tables WHERE schemaname=%s AND tablename=%s", (schema, EVENTS_TABLE)
            ).fetchone()
            return "ok" if found else "no log"
    except psycopg.Error:
        return "unreachable"


def create_schema(settings: dict[str, str]) -> None:
    """Create the URL's schema if it does not exist (``migrate``)."""
    import psycopg

    schema = settings.get("POSTGRES_SCHEMA") or "public"
    try:
        with _connect(settings) as conn:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema.replace(chr(34), chr(34) * 2)}"')
    except psycopg.Error:
        pass  # unreachable or not allowed: opening the store then says why


def verify_postgres(settings: dict[str, str], checkpoint: integrity.Checkpoint | None = None) -> integrity.VerifyReport:
    """Verify the shared log in PostgreSQL, streaming it with server-side cursors."""
    import psycopg

    dialect = dialect_for(settings.get("POSTGRES_SCHEMA") or "public")
    try:
        with psycopg.connect(
            host=settings["POSTGRES_HOST"], port=settings["POSTGRES_PORT"], dbname=settings["POSTGRES_DBNAME"],
            user=settings["POSTGRES_USER"], password=settings.get("POSTGRES_PASSWORD") or None,
            connect_timeout=int(settings.get("POSTGRES_CONNECT_TIMEOUT") or 5),
        ) as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            lookups = integrity.Sql(conn.cursor(), dialect)
            log_id = lookups.one("SELECT value FROM {ledger_meta} WHERE key='log_id'")
            events = conn.cursor(name="ctrledger_verify_events")
            events.itersize = 5000
            events.execute(dialect.text(
                "SELECT {pos}, originator_id, originator_version, topic, state FROM {stored_events} ORDER BY {pos}"
            ))
            hashes = conn.cursor(name="ctrledger_verify_hashes")
            hashes.itersize = 5000
            hashes.execute(dialect.text("SELECT seq, position, leaf, chain FROM {event_hashes} ORDER BY position"))

            def stored_node(level: int, idx: int) -> bytes | None:
                row = lookups.one("SELECT hash FROM {merkle_nodes} WHERE level=? AND idx=?", (level, idx))
                return None if row is None else bytes(row[0])

            def where_is_leaf(leaf: bytes) -> int | None:
                row = lookups.one("SELECT position FROM {event_hashes} WHERE leaf=? LIMIT 1", (leaf,))
                return None if row is None else int(row[0])

            return integrity.verify_rows(
                ((int(r[0]), str(r[1]), int(r[2]), r[3], bytes(r[4])) for r in events),
                ((int(r[0]), int(r[1]), bytes(r[2]), bytes(r[3])) for r in hashes),
                checkpoint=checkpoint,
                log_id=None if log_id is None else log_id[0],
                stored_nodes=stored_node,
                where_is_leaf=where_is_leaf,
            )
    except psycopg.Error as e:
        return integrity.VerifyReport(False, 0, 0, "", (integrity.Problem(0, "unreadable", str(e)),))
