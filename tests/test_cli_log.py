"""The commands on the log as a whole: checkpoint, verify, prove (tamper evidence), and migrate.

The harness is ``tests/test_cli.py``'s: a fresh SQLite file, the n-th command of a test runs at
2026-11-21T03:00:00Z plus n seconds. ``seed`` writes three events (positions 1-3). Tampering is
done on a copy of the database, as an attacker with write access to the file would: with
``sqlite3``, beside the store.

Exit statuses: 0 when a check holds; 1 with one ``Error: …`` line on stderr when it does not
(what was found is still printed on stdout), and for a file that does not hold a checkpoint, a
proof or a key; 2 for usage errors (a file that does not exist among them).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import ctrledger
from ctrledger.persistence import integrity
from ctrledger.projections.schema import SCHEMA_VERSION

from .test_cli import Cli, clock_harness, failed, ok, usage_error

EMPTY_ROOT = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # SHA-256 of nothing
PROBLEMS = "POSITION  KIND             DETAIL"
FAILED_LOG = "the log failed verification"
BAD_SIGNATURE = "the checkpoint's signature is not valid for the public key"
ED25519 = "checkpoints are signed with Ed25519 keys (openssl genpkey -algorithm ed25519)"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    yield clock_harness(tmp_path, monkeypatch)


def seed(cli: Cli) -> None:
    """Three events: web-1, web-2 and db-1 created (positions 1-3, at t1-t3)."""
    for name in ("web-1", "web-2", "db-1"):
        ok(cli("create", name, "--image", "nginx:1", "-q"))


def save(result: Result, name: str) -> Path:
    """The stdout of a successful command, saved as ``name`` (``ctrledger … > name``)."""
    path = Path(name)
    path.write_text(ok(result))
    return path


def copy(cli: Cli, name: str) -> sqlite3.Connection:
    """A copy of the store's database, open for tampering (commit it, then close it)."""
    src = sqlite3.connect(cli.db)
    dst = sqlite3.connect(name)
    src.backup(dst)
    src.close()
    return dst


def tamper(cli: Cli, name: str, *statements: str) -> str:
    conn = copy(cli, name)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()
    return name


def rewrite(cli: Cli, name: str, statement: str) -> str:
    """A copy with ``statement`` applied and every hash recomputed: verify alone cannot tell."""
    conn = copy(cli, name)
    conn.execute(statement)
    conn.execute("DELETE FROM event_hashes")
    conn.execute("DELETE FROM merkle_nodes")
    integrity.hash_missing(integrity.Sql(conn.cursor()))
    conn.commit()
    conn.close()
    return name


def check_failed(result: Result, stdout: str, message: str = FAILED_LOG) -> None:
    """A check that did not hold: what it found on stdout, one Error line on stderr, exit 1."""
    assert result.exit_code == 1, result.output
    assert result.stdout == stdout
    assert result.stderr == f"Error: {message}\n"


def write_key(path: str, key: Any) -> str:
    Path(path).write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return path


def write_public_key(path: str, key: Any) -> str:
    Path(path).write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ))
    return path


@pytest.fixture
def signing_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def state(cli: Cli) -> tuple[Any, ...]:
    with ctrledger.open(cli.db) as store:
        return store.list(), [a.to_dict() for a in store.audit()], store.position


# -- checkpoint --------------------------------------------------------------------------


def test_checkpoint_prints_the_librarys_checkpoint_as_json(cli: Cli) -> None:
    seed(cli)
    out = ok(cli("checkpoint"))  # the 4th command: at t4
    with ctrledger.open(cli.db, clock=lambda: cli.clock.now) as store:
        expected = store.checkpoint().to_dict()
    assert out == json.dumps(expected, indent=2) + "\n"
    form = json.loads(out)
    assert list(form) == [
        "log_id", "size", "position", "root", "chain", "frontier", "created_at", "key_id", "signature",
    ]
    assert (form["size"], form["position"], form["created_at"]) == (3, 3, "2026-11-21T03:00:04Z")
    assert (form["key_id"], form["signature"]) == ("", "")
    assert len(form["frontier"]) == 2  # 3 events: complete subtrees of 2 and 1


def test_checkpoint_json_and_nl(cli: Cli) -> None:
    seed(cli)
    pretty = json.loads(ok(cli("checkpoint", "--json")))
    line = ok(cli("checkpoint", "--nl"))
    assert line.count("\n") == 1
    assert json.loads(line) == pretty | {"created_at": "2026-11-21T03:00:05Z"}


def test_checkpoint_of_an_empty_store(cli: Cli) -> None:
    cli.new_store()
    form = json.loads(ok(cli("checkpoint")))
    assert (form["size"], form["position"], form["root"], form["frontier"]) == (0, 0, EMPTY_ROOT, [])


def test_checkpoint_changes_nothing(cli: Cli) -> None:
    seed(cli)
    before = state(cli)
    ok(cli("checkpoint"))
    assert state(cli) == before


def test_checkpoint_signed(cli: Cli, signing_key: ed25519.Ed25519PrivateKey) -> None:
    seed(cli)
    cp_file = save(cli("checkpoint", "--sign-key", write_key("key.pem", signing_key)), "cp.json")
    cp = ctrledger.Checkpoint.from_dict(json.loads(cp_file.read_text()))
    public = signing_key.public_key()
    assert cp.key_id == public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    assert cp.verify_signature(public)
    assert not cp.verify_signature(ed25519.Ed25519PrivateKey.generate().public_key())


def _bad_private_keys() -> list[Any]:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    encrypted = ed_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )
    public = ed_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw = ed_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return [
        pytest.param(b"not a key\n", f"key.pem is not a PEM private key; {ED25519}", id="text"),
        pytest.param(raw, f"key.pem is not a PEM private key; {ED25519}", id="raw-bytes"),
        pytest.param(public, f"key.pem is not a PEM private key; {ED25519}", id="public-key"),
        pytest.param(
            ec_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            f"key.pem is not an Ed25519 private key; {ED25519}",
            id="ec-key",
        ),
        pytest.param(encrypted, "key.pem: the private key is encrypted; give an unencrypted one", id="encrypted"),
    ]


@pytest.mark.parametrize(("content", "message"), _bad_private_keys())
def test_checkpoint_bad_sign_key(cli: Cli, content: bytes, message: str) -> None:
    seed(cli)
    Path("key.pem").write_bytes(content)
    failed(cli("checkpoint", "--sign-key", "key.pem"), message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--sign-key", "nope.pem"], "Invalid value for '--sign-key': 'nope.pem': No such file",
                     id="missing-key-file"),
        pytest.param(["--json", "--nl"], "Give only one of --json, --nl.", id="two-formats"),
        pytest.param(["--table"], "No such option", id="no-table"),
        pytest.param(["-n", "default"], "No such option", id="store-wide"),
        pytest.param(["extra"], "Got unexpected extra argument (extra)", id="argument"),
    ],
)
def test_checkpoint_usage_errors(cli: Cli, args: list[str], message: str) -> None:
    usage_error(cli("checkpoint", *args), message)


# -- verify ------------------------------------------------------------------------------


def test_verify_an_intact_log(cli: Cli) -> None:
    seed(cli)
    assert ok(cli("verify")) == "OK: positions 1-3 verified\n"
    seeds = {"target": str(cli.db), "client": "cli", "actor": None, "mode": "c"}
    assert cli.opens == [seeds] * 3  # seed's; verify opens none


def test_verify_an_empty_log(cli: Cli) -> None:
    ok(cli("migrate"))
    assert ok(cli("verify")) == "OK: an empty log verified\n"


def test_verify_against_a_checkpoint(cli: Cli) -> None:
    seed(cli)
    save(cli("checkpoint"), "cp.json")
    assert ok(cli("verify", "--checkpoint", "cp.json")) == (
        "OK: positions 1-3 verified, consistent with the checkpoint at 3\n"
    )
    ok(cli("create", "web-3", "-q"))
    ok(cli("rm", "web-1"))
    assert ok(cli("verify", "--checkpoint", "cp.json")) == (
        "OK: positions 1-5 verified, consistent with the checkpoint at 3\n"
    )


def test_verify_reads_the_checkpoint_from_stdin(cli: Cli) -> None:
    seed(cli)
    cp = ok(cli("checkpoint"))
    result = cli("verify", "--checkpoint", "-", input=cp)
    assert ok(result) == "OK: positions 1-3 verified, consistent with the checkpoint at 3\n"


def test_verify_json_and_nl_are_the_librarys_report(cli: Cli) -> None:
    seed(cli)
    cp_file = save(cli("checkpoint"), "cp.json")
    cp = ctrledger.Checkpoint.from_dict(json.loads(cp_file.read_text()))
    expected = ctrledger.verify(cli.db, cp).to_dict()
    out = ok(cli("verify", "--checkpoint", "cp.json", "--json"))
    assert out == json.dumps(expected, indent=2) + "\n"
    assert list(json.loads(out)) == ["ok", "first", "last", "root", "checkpoint_size", "read_models_ok", "problems"]
    assert ok(cli("verify", "--checkpoint", "cp.json", "--nl")) == json.dumps(expected) + "\n"


def test_verify_finds_a_changed_event(cli: Cli) -> None:
    seed(cli)
    tampered = tamper(cli, "tampered.db", "UPDATE stored_events SET topic='x' WHERE rowid=2")
    detail = "its stream, version, topic or state differ from what was recorded (now 'default/web-2' v1 x)"
    check_failed(cli("verify", "--db", tampered), (
        f"FAILED at position 2: content changed: {detail}\n"
        f"{PROBLEMS}\n"
        f"2         content changed  {detail}\n"
    ))
    assert ok(cli("verify")) == "OK: positions 1-3 verified\n"  # the original is intact


def test_verify_json_of_a_tampered_log(cli: Cli) -> None:
    seed(cli)
    tampered = tamper(cli, "tampered.db", "UPDATE stored_events SET topic='x' WHERE rowid=2")
    for flag in ("--json", "--nl"):
        result = cli("verify", "--db", tampered, flag)
        assert (result.exit_code, result.stderr) == (1, f"Error: {FAILED_LOG}\n")
        report = json.loads(result.stdout)
        assert report["ok"] is False
        assert [(p["position"], p["kind"]) for p in report["problems"]] == [(2, "content changed")]


def test_verify_lists_every_problem(cli: Cli) -> None:
    seed(cli)
    tampered = tamper(
        cli, "tampered.db",
        "UPDATE stored_events SET topic='x' WHERE rowid=1",
        "UPDATE stored_events SET originator_version=9 WHERE rowid=3",
    )
    result = cli("verify", "--db", tampered)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("FAILED at position 1: content changed: ")
    assert lines[0].endswith(" (and 1 more)")
    assert lines[1] == PROBLEMS
    assert [line.split()[0] for line in lines[2:]] == ["1", "3"]


def test_a_checkpoint_catches_what_the_log_alone_cannot(cli: Cli) -> None:
    """Events deleted with their hashes, or changed with every hash recomputed, verify alone;
    the checkpoint taken before says what happened."""
    seed(cli)
    save(cli("checkpoint"), "cp.json")
    truncated = tamper(
        cli, "truncated.db", "DELETE FROM stored_events WHERE rowid=3", "DELETE FROM event_hashes WHERE position=3"
    )
    assert ok(cli("verify", "--db", truncated)) == "OK: positions 1-2 verified\n"
    detail = "the checkpoint covers 3 events (to position 3); the log now has 2, ending at position 2"
    check_failed(cli("verify", "--db", truncated, "--checkpoint", "cp.json"), (
        f"FAILED at position 3: truncated: {detail}\n"
        f"POSITION  KIND       DETAIL\n"
        f"3         truncated  {detail}\n"
    ))
    rewritten = rewrite(cli, "rewritten.db", "UPDATE stored_events SET topic='x' WHERE rowid=2")
    assert ok(cli("verify", "--db", rewritten)) == "OK: positions 1-3 verified\n"
    result = cli("verify", "--db", rewritten, "--checkpoint", "cp.json")
    assert result.exit_code == 1
    assert result.stdout.startswith(
        "FAILED at position 1: history rewritten: events 1-2 no longer hash to what the checkpoint recorded"
    )


def test_verify_a_checkpoint_of_another_log(cli: Cli, tmp_path: Path) -> None:
    seed(cli)
    ok(cli("create", "x", "-q", "--db", "other.db"))
    save(cli("checkpoint", "--db", "other.db"), "other.json")
    result = cli("verify", "--checkpoint", "other.json")
    assert result.exit_code == 1
    assert result.stdout.startswith("FAILED at position 0: wrong log: the checkpoint is of log ")
    assert result.stderr == f"Error: {FAILED_LOG}\n"


def test_verify_never_creates_or_opens_the_store(cli: Cli, tmp_path: Path) -> None:
    check_failed(cli("verify", "--db", "new.db"), (
        "FAILED at position 0: unreadable: no such file: new.db\n"
        "POSITION  KIND        DETAIL\n0         unreadable  no such file: new.db\n"
    ))
    assert not (tmp_path / "new.db").exists()
    assert cli.opens == []


def test_verify_a_file_that_is_not_a_database(cli: Cli) -> None:
    Path("notes.txt").write_text("not a database " * 100)
    result = cli("verify", "--db", "notes.txt")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        "FAILED at position 0: unreadable: notes.txt: not a ctrledger store (file is not a database)"
    )


def test_verify_changes_nothing(cli: Cli) -> None:
    seed(cli)
    before = state(cli)
    mtime = cli.db.stat().st_mtime_ns
    ok(cli("verify"))
    assert state(cli) == before
    assert cli.db.stat().st_mtime_ns == mtime


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("", "cp.json is not a checkpoint: not JSON (Expecting value: line 1 column 1 (char 0))",
                     id="empty"),
        pytest.param("{nope", "cp.json is not a checkpoint: not JSON (Expecting property name enclosed in double "
                     "quotes: line 1 column 2 (char 1))", id="not-json"),
        pytest.param("[1, 2]", "cp.json is not a checkpoint: not a JSON object", id="a-list"),
        pytest.param('{"log_id": "x"}', "cp.json is not a checkpoint: it has no 'size'", id="missing-fields"),
        pytest.param(
            '{"log_id": "x", "size": "many", "position": 1, "root": "", "chain": "", "frontier": [], '
            '"created_at": "2026-11-21T03:00:00Z"}',
            "cp.json is not a checkpoint: its size must be a non-negative integer, not 'many'",
            id="bad-size",
        ),
        pytest.param(
            '{"log_id": "x", "size": 1, "position": 1, "root": "' + "ab" * 32 + '", "chain": "' + "cd" * 32
            + '", "frontier": ["' + "ab" * 32 + '"], "created_at": "yesterday"}',
            "cp.json is not a checkpoint: Invalid isoformat string: 'yesterday'",
            id="bad-time",
        ),
        pytest.param(
            '{"log_id": "x", "size": -1, "position": 1, "root": "", "chain": "", "frontier": [], '
            '"created_at": "2026-11-21T03:00:00Z"}',
            "cp.json is not a checkpoint: its size must be a non-negative integer, not -1",
            id="negative-size",
        ),
        pytest.param(
            '{"log_id": "x", "size": 3, "position": 3, "root": "' + "ab" * 32 + '", "chain": "' + "cd" * 32
            + '", "frontier": ["' + "ab" * 32 + '"], "created_at": "2026-11-21T03:00:00Z"}',
            "cp.json is not a checkpoint: its size 3, position 3 and frontier of 1 do not fit together",
            id="frontier-does-not-fit",
        ),
    ],
)
def test_verify_bad_checkpoint_files(cli: Cli, content: str, message: str) -> None:
    seed(cli)
    Path("cp.json").write_text(content)
    failed(cli("verify", "--checkpoint", "cp.json"), message)


def test_verify_a_signed_checkpoint(cli: Cli, signing_key: ed25519.Ed25519PrivateKey) -> None:
    seed(cli)
    save(cli("checkpoint", "--sign-key", write_key("key.pem", signing_key)), "cp.json")
    write_public_key("key.pub.pem", signing_key)
    assert ok(cli("verify", "--checkpoint", "cp.json", "--public-key", "key.pub.pem")) == (
        "OK: positions 1-3 verified, consistent with the checkpoint at 3\n"
        "OK: the checkpoint is signed by the key in key.pub.pem\n"
    )
    form = json.loads(ok(cli("verify", "--checkpoint", "cp.json", "--public-key", "key.pub.pem", "--json")))
    assert (form["ok"], form["signature_valid"]) == (True, True)
    assert "signature_valid" not in json.loads(ok(cli("verify", "--checkpoint", "cp.json", "--json")))


def test_verify_a_bad_signature(cli: Cli, signing_key: ed25519.Ed25519PrivateKey) -> None:
    seed(cli)
    save(cli("checkpoint", "--sign-key", write_key("key.pem", signing_key)), "signed.json")
    save(cli("checkpoint"), "unsigned.json")
    write_public_key("other.pub.pem", ed25519.Ed25519PrivateKey.generate())
    write_public_key("key.pub.pem", signing_key)
    ok_line = "OK: positions 1-3 verified, consistent with the checkpoint at 3\n"
    check_failed(
        cli("verify", "--checkpoint", "signed.json", "--public-key", "other.pub.pem"),
        ok_line + "FAILED: the checkpoint is not signed by the key in other.pub.pem\n", BAD_SIGNATURE,
    )
    check_failed(
        cli("verify", "--checkpoint", "unsigned.json", "--public-key", "key.pub.pem"),
        ok_line + "FAILED: the checkpoint is not signed by the key in key.pub.pem\n", BAD_SIGNATURE,
    )
    edited = json.loads(Path("signed.json").read_text()) | {"created_at": "2026-01-01T00:00:00Z"}
    Path("edited.json").write_text(json.dumps(edited))
    check_failed(
        cli("verify", "--checkpoint", "edited.json", "--public-key", "key.pub.pem"),
        ok_line + "FAILED: the checkpoint is not signed by the key in key.pub.pem\n", BAD_SIGNATURE,
    )
    result = cli("verify", "--checkpoint", "unsigned.json", "--public-key", "key.pub.pem", "--json")
    assert result.exit_code == 1
    assert (json.loads(result.stdout)["ok"], json.loads(result.stdout)["signature_valid"]) == (True, False)


def test_verify_a_bad_log_and_a_bad_signature(cli: Cli, signing_key: ed25519.Ed25519PrivateKey) -> None:
    seed(cli)
    save(cli("checkpoint"), "unsigned.json")
    write_public_key("key.pub.pem", signing_key)
    tampered = tamper(cli, "tampered.db", "UPDATE stored_events SET topic='x' WHERE rowid=2")
    result = cli("verify", "--db", tampered, "--checkpoint", "unsigned.json", "--public-key", "key.pub.pem")
    assert result.exit_code == 1
    assert result.stdout.startswith("FAILED at position 2: content changed: ")
    assert result.stdout.endswith("FAILED: the checkpoint is not signed by the key in key.pub.pem\n")
    assert result.stderr == f"Error: {FAILED_LOG} and {BAD_SIGNATURE}\n"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda: b"junk", "key.pub.pem is not a PEM public key (openssl pkey -in KEY -pubout makes one)",
                     id="junk"),
        pytest.param(
            lambda: ed25519.Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
            "key.pub.pem is not a PEM public key (openssl pkey -in KEY -pubout makes one)",
            id="a-private-key",
        ),
        pytest.param(
            lambda: ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
            f"key.pub.pem is not an Ed25519 public key; {ED25519}",
            id="ec-key",
        ),
    ],
)
def test_verify_bad_public_key_files(cli: Cli, make: Any, message: str) -> None:
    seed(cli)
    save(cli("checkpoint"), "cp.json")
    Path("key.pub.pem").write_bytes(make())
    failed(cli("verify", "--checkpoint", "cp.json", "--public-key", "key.pub.pem"), message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--checkpoint", "nope.json"], "Invalid value for '--checkpoint': 'nope.json': No such file",
                     id="missing-checkpoint"),
        pytest.param(["--public-key", "cp.json"], "--public-key needs --checkpoint", id="key-without-checkpoint"),
        pytest.param(["--checkpoint", "cp.json", "--public-key", "nope.pem"],
                     "Invalid value for '--public-key': 'nope.pem': No such file", id="missing-key"),
        pytest.param(["--json", "--nl"], "Give only one of --json, --nl.", id="two-formats"),
        pytest.param(["-q"], "No such option", id="no-quiet"),
        pytest.param(["-n", "x"], "No such option", id="store-wide"),
    ],
)
def test_verify_usage_errors(cli: Cli, args: list[str], message: str) -> None:
    seed(cli)
    save(cli("checkpoint"), "cp.json")
    usage_error(cli("verify", *args), message)


# -- prove -------------------------------------------------------------------------------


def test_prove_prints_the_librarys_proof(cli: Cli) -> None:
    seed(cli)
    out = ok(cli("prove", "2"))
    with ctrledger.open(cli.db) as store:
        expected = store.prove(2).to_dict()
    assert out == json.dumps(expected, indent=2) + "\n"
    form = json.loads(out)
    assert list(form) == ["position", "index", "size", "leaf", "path", "root"]
    assert (form["position"], form["index"], form["size"]) == (2, 1, 3)
    assert ok(cli("prove", "2", "--nl")) == json.dumps(expected) + "\n"


def test_prove_as_of_a_checkpoint_then_check_it(cli: Cli) -> None:
    seed(cli)
    cp = json.loads(save(cli("checkpoint"), "cp.json").read_text())
    ok(cli("create", "web-3", "-q"))
    proof = json.loads(save(cli("prove", "2", "--checkpoint", "cp.json"), "proof.json").read_text())
    assert (proof["size"], proof["root"]) == (3, cp["root"])
    assert ok(cli("prove", "--check", "proof.json", "--checkpoint", "cp.json")) == (
        "OK: event 2 of the 3 in the checkpoint has the proof's leaf (the proof says it was recorded at position 2)\n"
    )


def test_prove_check_works_without_the_database(cli: Cli, tmp_path: Path) -> None:
    seed(cli)
    save(cli("checkpoint"), "cp.json")
    save(cli("prove", "3"), "proof.json")
    opened = len(cli.opens)
    cli.db.unlink()
    result = cli("prove", "--check", "proof.json", "--checkpoint", "cp.json", "--db", "gone/nowhere.db")
    assert ok(result) == (
        "OK: event 3 of the 3 in the checkpoint has the proof's leaf (the proof says it was recorded at position 3)\n"
    )
    assert len(cli.opens) == opened
    assert not (tmp_path / "gone").exists()


def test_prove_check_fails_against_another_checkpoint(cli: Cli) -> None:
    seed(cli)
    save(cli("prove", "2"), "proof.json")
    ok(cli("create", "web-3", "-q"))
    save(cli("checkpoint"), "later.json")
    check_failed(
        cli("prove", "--check", "proof.json", "--checkpoint", "later.json"),
        "FAILED: the proof does not tie position 2 to the checkpoint's root "
        "(the proof is of a log of 3 events, the checkpoint of 4)\n",
        "the proof failed verification",
    )


def test_prove_check_fails_for_an_edited_proof(cli: Cli) -> None:
    seed(cli)
    save(cli("checkpoint"), "cp.json")
    proof = json.loads(ok(cli("prove", "2")))
    proof["leaf"] = "00" * 32
    Path("proof.json").write_text(json.dumps(proof))
    check_failed(
        cli("prove", "--check", "proof.json", "--checkpoint", "cp.json"),
        "FAILED: the proof does not tie position 2 to the checkpoint's root\n",
        "the proof failed verification",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["0"], "position 0 is not in a log of 3 events: invalid argument", id="zero"),
        pytest.param(["4"], "position 4 is not in a log of 3 events: invalid argument", id="past-the-end"),
        pytest.param(["3", "--checkpoint", "cp2.json"], "position 3 is not in a log of 2 events: invalid argument",
                     id="past-the-checkpoint"),
    ],
)
def test_prove_failures(cli: Cli, args: list[str], message: str) -> None:
    ok(cli("create", "a", "-q"))
    ok(cli("create", "b", "-q"))
    save(cli("checkpoint"), "cp2.json")
    ok(cli("create", "c", "-q"))
    failed(cli("prove", *args), message)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("nope", "proof.json is not an inclusion proof: not JSON (Expecting value: line 1 column 1 "
                     "(char 0))", id="not-json"),
        pytest.param('"a string"', "proof.json is not an inclusion proof: not a JSON object", id="a-string"),
        pytest.param('{"position": 2}', "proof.json is not an inclusion proof: it has no 'path'", id="no-path"),
        pytest.param(
            '{"position": 2, "index": 1, "size": 3, "leaf": "zz", "path": [], "root": "00"}',
            "proof.json is not an inclusion proof: non-hexadecimal number found in fromhex() arg at position 0",
            id="not-hex",
        ),
        pytest.param(
            '{"position": 2, "index": 1, "size": 3, "leaf": "00", "path": "00", "root": "00"}',
            "proof.json is not an inclusion proof: its path is not a list",
            id="path-not-a-list",
        ),
    ],
)
def test_prove_check_bad_proof_files(cli: Cli, content: str, message: str) -> None:
    seed(cli)
    save(cli("checkpoint"), "cp.json")
    Path("proof.json").write_text(content)
    failed(cli("prove", "--check", "proof.json", "--checkpoint", "cp.json"), message)


def test_prove_check_bad_checkpoint_file(cli: Cli) -> None:
    seed(cli)
    save(cli("prove", "1"), "proof.json")
    Path("cp.json").write_text("[]")
    failed(cli("prove", "--check", "proof.json", "--checkpoint", "cp.json"), "cp.json is not a checkpoint: "
           "not a JSON object")
    failed(cli("prove", "1", "--checkpoint", "cp.json"), "cp.json is not a checkpoint: not a JSON object")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param([], "Give a POSITION, or --check FILE to check a saved proof.", id="nothing"),
        pytest.param(["two"], "Invalid value for '[POSITION]': 'two' is not a valid integer.", id="not-a-number"),
        pytest.param(["--check", "proof.json"], "--check needs --checkpoint", id="check-without-checkpoint"),
        pytest.param(["1", "--check", "proof.json", "--checkpoint", "cp.json"], "Give a POSITION or --check, not "
                     "both", id="position-and-check"),
        pytest.param(["--check", "proof.json", "--checkpoint", "cp.json", "--json"], "--check prints one line: "
                     "--json and --nl do not apply.", id="check-json"),
        pytest.param(["--check", "proof.json", "--checkpoint", "cp.json", "--nl"], "--check prints one line",
                     id="check-nl"),
        pytest.param(["--check", "nope.json", "--checkpoint", "cp.json"], "Invalid value for '--check': "
                     "'nope.json': No such file", id="missing-proof"),
        pytest.param(["1", "--checkpoint", "nope.json"], "Invalid value for '--checkpoint': 'nope.json': No such "
                     "file", id="missing-checkpoint"),
        pytest.param(["1", "2"], "Got unexpected extra argument (2)", id="two-positions"),
    ],
)
def test_prove_usage_errors(cli: Cli, args: list[str], message: str) -> None:
    seed(cli)
    save(cli("checkpoint"), "cp.json")
    save(cli("prove", "1"), "proof.json")
    usage_error(cli("prove", *args), message)


# -- migrate -----------------------------------------------------------------------------


def test_migrate_creates_the_schemas_and_prints_their_versions(cli: Cli, tmp_path: Path) -> None:
    versions = ctrledger.migrate(tmp_path / "reference.db")
    assert ok(cli("migrate")) == (
        f"log schema {versions['log_schema']}, read-model schema {versions['read_model_schema']}\n"
    )
    assert versions == {"log_schema": 1, "read_model_schema": SCHEMA_VERSION, "hashed": 0}
    assert cli.db.exists()
    assert ok(cli("verify")) == "OK: an empty log verified\n"


def test_migrate_json_and_nl(cli: Cli) -> None:
    seed(cli)
    before = state(cli)
    out = ok(cli("migrate", "--json"))
    versions = {"log_schema": 1, "read_model_schema": SCHEMA_VERSION, "hashed": 0}
    assert out == json.dumps(versions, indent=2) + "\n"
    assert ok(cli("migrate", "--nl")) == json.dumps(versions) + "\n"
    assert state(cli) == before  # an up-to-date store is left as it is


def test_migrate_accept_unhashed_is_the_operators_word_and_is_recorded(cli: Cli) -> None:
    seed(cli)
    conn = sqlite3.connect(cli.db)  # an event appended with plain SQL, after the hashed ones
    topic, state = conn.execute("SELECT topic, state FROM stored_events ORDER BY rowid LIMIT 1").fetchone()
    conn.execute("INSERT INTO stored_events(originator_id, originator_version, topic, state) VALUES (?,?,?,?)",
                 ("default/forged", 1, topic, state))
    position = conn.execute("SELECT MAX(rowid) FROM stored_events").fetchone()[0]
    conn.commit()
    conn.close()
    refused = cli("migrate")
    assert refused.exit_code == 1 and refused.stdout == ""
    assert f"without a hash at position {position}" in refused.stderr
    assert "'ctrledger migrate --accept-unhashed'" in refused.stderr  # the refusal names the way out
    assert cli("verify").exit_code == 1  # still a finding
    out = ok(cli("migrate", "--accept-unhashed"))
    assert out.endswith("; hashed 1 events\n"), out
    assert ok(cli("verify")).startswith("OK")
    conn = sqlite3.connect(cli.db)
    notes = [row[0] for row in conn.execute("SELECT note FROM integrity_upgrades")]
    conn.close()
    assert any("accepted" in note for note in notes), notes
    assert json.loads(ok(cli("migrate", "--accept-unhashed", "--json")))["hashed"] == 0  # nothing left to accept


def test_migrate_failures(cli: Cli) -> None:
    Path("notes.txt").write_text("not a database " * 100)
    failed(cli("migrate", "--db", "notes.txt"), "cannot open 'notes.txt': file is not a database")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--json", "--nl"], "Give only one of --json, --nl.", id="two-formats"),
        pytest.param(["-n", "x"], "No such option", id="store-wide"),
        pytest.param(["now"], "Got unexpected extra argument (now)", id="argument"),
    ],
)
def test_migrate_usage_errors(cli: Cli, args: list[str], message: str) -> None:
    usage_error(cli("migrate", *args), message)
    assert not cli.db.exists()

