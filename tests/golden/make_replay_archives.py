"""How the replay golden archives were made (run from the repository root to remake them).

    python -m tests.golden.make_replay_archives

* ``replay-busy.ctrlarchive``: the busy history of ``tests/test_replay.py`` (three
  namespaces, updates of every kind, a delete and a re-create), in chunks of 10 events.
  ``replay-busy.expected.json`` holds the answers it must give (``pytest --ctrledger-regen``).
* ``replay-v1-created.ctrlarchive``: a log as a ctrledger whose ``Created`` event had no
  ``sandbox`` field (class version 1) wrote it: the same kind of history with ``sandbox``
  removed from every stored ``Created`` state, hashed and chained over those bytes. It is
  frozen: a later ctrledger must still load it (the upcast ``Created.upcast_v1_v2``).
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from tempfile import TemporaryDirectory

import ctrledger
from ctrledger.persistence.transcoder import packb, unpackb
from ctrledger.replay import export
from ctrledger.replay.log import append_stored, create_hash_tables

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from ctrledger.replay.log import BareLog  # noqa: E402
from tests.test_replay import busy_history, deterministic_store  # noqa: E402


def main() -> None:
    with TemporaryDirectory() as tmp:
        busy = Path(tmp) / "busy.db"
        with deterministic_store(busy) as store:
            busy_history(store)
            export(store, HERE / "replay-busy.ctrlarchive", chunk_events=10)
            mapper = store.mapper
            rows = sqlite3.connect(busy).execute(
                "SELECT originator_id, originator_version, topic, state FROM stored_events ORDER BY rowid"
            ).fetchall()
        old = Path(tmp) / "v1.db"
        with sqlite3.connect(old, isolation_level=None) as conn:
            conn.execute("CREATE TABLE stored_events (originator_id TEXT, originator_version INTEGER, topic TEXT, "
                         "state BLOB, PRIMARY KEY (originator_id, originator_version))")
            create_hash_tables(conn)
            v1 = []
            for oid, version, topic, state in rows:
                if topic == "ctrledger.container.Created":
                    fields = unpackb(state)
                    del fields["sandbox"]
                    fields.pop("class_version", None)
                    state = packb(fields)
                v1.append((oid, version, topic, state))
            conn.execute("BEGIN")
            append_stored(conn.cursor(), v1, 0, [], mapper)
            conn.execute("COMMIT")
        export(BareLog(old, mapper), HERE / "replay-v1-created.ctrlarchive", chunk_events=5)
    print("written:", *sorted(p.name for p in HERE.glob("replay-*.ctrlarchive")))


if __name__ == "__main__":
    _ = ctrledger
    main()
