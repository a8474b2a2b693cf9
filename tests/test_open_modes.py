"""``ctrledger.open(target, mode=...)``: reading a store never creates or changes a file.

``mode`` is ``dbm.open``'s flag: ``"c"`` (default) creates a missing store, ``"w"`` opens an
existing one, ``"r"`` opens an existing one read-only. What a test here proves: the bytes of
every file the store reads are unchanged (SHA-256), no file or directory appears where a store
was missing, and, on a tmpfs remounted read-only (root only: otherwise ``missing_component``),
that a store nobody can write is still read and verified.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import ctrledger
from ctrledger import FailedPrecondition, InvalidArgument, NotFound

from .conftest import make, missing_component, postgres_schema, postgres_url


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files(where: Path) -> set[str]:
    """Every file under ``where`` but SQLite's sidecars (a reader may create ``-wal``/``-shm``)."""
    return {str(p.relative_to(where)) for p in where.rglob("*") if not p.name.endswith(("-wal", "-shm"))}


def seeded(path: Path) -> Path:
    with ctrledger.open(path) as store:
        store.create(make("web-1", labels={"env": "prod"}))
        store.update(make("web-1", labels={"env": "dev"}), "labels")
    return path


@pytest.mark.parametrize("mode", ["r", "w"])
def test_a_missing_store_is_not_found_and_nothing_is_created(tmp_path: Path, mode: str) -> None:
    target = tmp_path / "nonexistent" / "dir" / "x.db"
    with pytest.raises(NotFound, match="no store at '.*/nonexistent/dir/x.db'"):
        ctrledger.open(target, mode=mode)
    assert list(tmp_path.iterdir()) == []


def test_mode_c_still_creates(tmp_path: Path) -> None:
    with ctrledger.open(tmp_path / "new" / "x.db") as store:
        assert store.list() == []
    assert (tmp_path / "new" / "x.db").is_file()


@pytest.mark.parametrize("mode", ["r", "w"])
@pytest.mark.parametrize("kind", ["unrelated-sqlite", "not-a-database", "empty-file"])
def test_a_file_that_is_not_a_store_is_refused_untouched(tmp_path: Path, mode: str, kind: str) -> None:
    path = tmp_path / "other.db"
    if kind == "unrelated-sqlite":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE notes(text)")
        conn.execute("INSERT INTO notes VALUES ('mine')")
        conn.commit()
        conn.close()
    elif kind == "not-a-database":
        path.write_bytes(b"not a database " * 100)
    else:
        path.write_bytes(b"")
    before = digest(path)
    with pytest.raises(FailedPrecondition, match="'.*other.db' is not a ctrledger store"):
        ctrledger.open(path, mode=mode)
    assert digest(path) == before
    assert files(tmp_path) == {"other.db"}


def test_verify_refuses_a_file_that_is_not_a_store_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes(text)")
    conn.commit()
    conn.close()
    before = digest(path)
    report = ctrledger.verify(path)
    assert not report.ok
    assert "not a ctrledger store (no table stored_events, ctrledger_meta)" in str(report)
    assert digest(path) == before


def test_read_only_reads_everything_and_changes_nothing(tmp_path: Path) -> None:
    path = seeded(tmp_path / "ledger.db")
    before = digest(path)
    with ctrledger.open(path, mode="r") as store:
        assert [c.labels for c in store.list()] == [{"env": "dev"}]
        assert store.get("web-1", as_of=ctrledger.Version(1)).labels == {"env": "prod"}
        assert [e.kind for e in store.history("web-1")] == ["Created", "LabelsChanged"]
        assert len(list(store.audit())) == 2
        checkpoint = store.checkpoint()
        assert store.prove(1, checkpoint=checkpoint).verify(checkpoint)
        assert ctrledger.verify(store, checkpoint).ok
        assert len(store.digest()) == 64
        assert store.verify_projections().ok
        store.export(tmp_path / "out.ctrlarchive")
    assert digest(path) == before


@pytest.mark.parametrize("write", ["create", "update", "delete", "rebuild"])
def test_read_only_refuses_writes(tmp_path: Path, write: str) -> None:
    path = seeded(tmp_path / "ledger.db")
    before = digest(path)
    with ctrledger.open(path, mode="r") as store:
        with pytest.raises(FailedPrecondition, match="open read-only"):
            if write == "create":
                store.create(make("web-2"))
            elif write == "update":
                store.update(make("web-1", image="x"), "image")
            elif write == "delete":
                store.delete("web-1")
            else:
                store.rebuild()
    assert digest(path) == before


def test_read_only_refuses_read_models_behind_the_log(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with ctrledger.open(path, history=False) as store:  # leaves the history views behind
        store.create(make("web-1"))
    before = digest(path)
    with pytest.raises(FailedPrecondition, match="behind its log .* open it for writing once"):
        ctrledger.open(path, mode="r")
    assert digest(path) == before
    ctrledger.open(path, mode="w").close()  # catches up
    with ctrledger.open(path, mode="r") as store:
        assert [e.kind for e in store.history("web-1")] == ["Created"]


def test_a_bad_mode_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="mode must be one of 'r', 'w', 'c', not 'rw'"):
        ctrledger.open(tmp_path / "x.db", mode="rw")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_database_url_is_invalid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CTRLEDGER_DATABASE_URL", "")
    with pytest.raises(InvalidArgument, match="CTRLEDGER_DATABASE_URL is set but empty"):
        ctrledger.open()
    with pytest.raises(InvalidArgument, match="target is empty"):
        ctrledger.open("")
    assert list(tmp_path.iterdir()) == []


# -- a store nobody can write: a tmpfs remounted read-only ---------------------------------


@pytest.fixture
def readonly_mount(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "mnt"
    where.mkdir()
    if os.geteuid() != 0:
        missing_component("mounting a read-only tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(where)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        missing_component(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def remount_read_only(where: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)


def test_a_store_on_a_read_only_mount_is_read_and_verified(tmp_path: Path, readonly_mount: Path) -> None:
    path = seeded(readonly_mount / "ledger.db")
    remount_read_only(readonly_mount)
    with pytest.raises(OSError):
        (readonly_mount / "probe").write_text("x")  # really read-only, even for root
    with ctrledger.open(path, mode="r") as store:
        assert [c.id for c in store.list()] == ["web-1"]
        assert [e.kind for e in store.history("web-1")] == ["Created", "LabelsChanged"]
        checkpoint = store.checkpoint()
        assert ctrledger.verify(store, checkpoint).ok
        with pytest.raises(FailedPrecondition):
            store.delete("web-1")
    assert ctrledger.verify(path).ok
    assert files(readonly_mount) == {"ledger.db"}


# -- PostgreSQL: a missing schema or log -----------------------------------------------------


def test_postgres_read_only_open_of_a_missing_log_is_not_found(tmp_path: Path) -> None:
    with postgres_schema() as schema:
        url = postgres_url(schema, tmp_path / "node.db")
        with pytest.raises(NotFound, match=f"no ctrledger log in schema '{schema}'"):
            ctrledger.open(url, mode="r")
        with ctrledger.open(url) as store:
            store.create(make("web-1"))
        with ctrledger.open(url, mode="r", follow=False) as store:
            assert [c.id for c in store.list()] == ["web-1"]
            with pytest.raises(FailedPrecondition):
                store.create(make("web-2"))


def test_postgres_missing_schema_is_named_and_migrate_creates_it(tmp_path: Path) -> None:
    import psycopg

    with postgres_schema() as schema:
        missing = schema + "_new"
        url = postgres_url(missing, tmp_path / "node.db")
        try:
            for mode in ("r", "w", "c"):
                with pytest.raises(NotFound, match=f"schema '{missing}' does not exist .*migrate creates it"):
                    ctrledger.open(url, mode=mode)
            assert ctrledger.migrate(url)["log_schema"] >= 1
            with ctrledger.open(url, mode="r", follow=False) as store:
                assert store.list() == []
        finally:
            with psycopg.connect(url.split("?")[0], autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{missing}" CASCADE')


# -- start-up: a command imports only what it needs (timed in benchmarks/startup.py) ---------

IMPORTS = """
import sys
from ctrledger.cli import main
try:
    main(sys.argv[1:], prog_name="ctrledger")
except SystemExit:
    pass
print(" ".join(sorted(sys.modules)))
"""


def loaded(*args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", IMPORTS, *args], capture_output=True, text=True, check=True)
    return set(done.stdout.split("\n")[-2].split())


def test_version_imports_neither_the_store_nor_its_libraries() -> None:
    modules = loaded("--version")
    heavy = {"ctrledger.store", "ctrledger.domain", "eventsourcing", "psycopg", "cryptography", "sqlite_utils",
             "msgpack", "importlib.metadata", "ctrledger.cli.containers"}
    assert modules.isdisjoint(heavy), modules & heavy


def test_ls_of_a_sqlite_store_imports_no_postgresql_crypto_replay_or_schema_tools(tmp_path: Path) -> None:
    path = seeded(tmp_path / "ledger.db")
    modules = loaded("ls", "--db", str(path))
    assert "ctrledger.store" in modules
    heavy = {"psycopg", "psycopg_pool", "eventsourcing.postgres", "cryptography", "sqlite_utils",
             "ctrledger.replay", "ctrledger.persistence.postgres", "ctrledger.cli.log", "ctrledger.cli.replay"}
    assert modules.isdisjoint(heavy), modules & heavy
