"""The commands on the log as a whole: checkpoint, verify and prove (tamper evidence), and migrate.

Each makes one library call and prints what it returns: ``Store.checkpoint``,
``ctrledger.verify`` (of a store, or of an archive with ``verify --archive``),
``Store.prove`` or ``InclusionProof.verify``, ``ctrledger.migrate``.
The files they read are parsed here (a checkpoint or a proof as the JSON of its ``to_dict()``,
a key as PEM): a file that is missing is a usage error (exit 2), one that does not hold what
it should is ``Error: …`` (exit 1).

What a check found is printed on stdout whether it passed or not; the exit status says which:
0 when it holds, 1 when it does not, with one ``Error: …`` line on stderr saying what failed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

import ctrledger
import ctrledger.replay

from .options import database_options, log_options, open_store, output_options
from .output import Format, echo_json, render_rows

__all__ = [
    "COMMANDS",
    "checkpoint",
    "load_checkpoint",
    "load_proof",
    "load_private_key",
    "load_public_key",
    "migrate",
    "prove",
    "verify",
]

PROBLEM_COLUMNS = ("POSITION", "KIND", "DETAIL")
T = TypeVar("T")

_ED25519 = "checkpoints are signed with Ed25519 keys (openssl genpkey -algorithm ed25519)"


# -- reading files ---------------------------------------------------------------------


def _json_object(file: IO[str], what: str) -> dict[str, Any]:
    try:
        value = json.load(file)
    except ValueError as e:  # JSONDecodeError, or text that is not UTF-8
        raise click.ClickException(f"{file.name} is not {what}: not JSON ({e})") from None
    if not isinstance(value, dict):
        raise click.ClickException(f"{file.name} is not {what}: not a JSON object")
    return value


def _from_dict(file: IO[str], what: str, build: Callable[[dict[str, Any]], T]) -> T:
    d = _json_object(file, what)
    try:
        return build(d)
    except KeyError as e:
        raise click.ClickException(f"{file.name} is not {what}: it has no {e.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise click.ClickException(f"{file.name} is not {what}: {e}") from None


def load_checkpoint(file: IO[str]) -> ctrledger.Checkpoint:
    """The checkpoint saved in ``file`` (``ctrledger checkpoint > FILE``); ``Error: …`` if it is not one."""
    return _from_dict(file, "a checkpoint", ctrledger.Checkpoint.from_dict)


def _proof_from_dict(d: dict[str, Any]) -> ctrledger.InclusionProof:
    path = d["path"]
    if not isinstance(path, list):
        raise TypeError("its path is not a list")
    proof = ctrledger.InclusionProof(
        position=int(d["position"]), index=int(d["index"]), size=int(d["size"]), leaf=str(d["leaf"]),
        path=tuple(str(p) for p in path), root=str(d["root"]),
    )
    for digest in (proof.leaf, proof.root, *proof.path):
        bytes.fromhex(digest)  # ValueError: not a hash
    return proof


def load_proof(file: IO[str]) -> ctrledger.InclusionProof:
    """The inclusion proof saved in ``file`` (``ctrledger prove N > FILE``); ``Error: …`` if it is not one."""
    return _from_dict(file, "an inclusion proof", _proof_from_dict)


def load_private_key(file: IO[bytes]) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM ``file``; ``Error: …`` for anything else."""
    from cryptography.exceptions import UnsupportedAlgorithm  # only when a key is given: it is slow to import
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(file.read(), password=None)
    except TypeError:  # the only TypeError without a password: the key is encrypted
        raise click.ClickException(f"{file.name}: the private key is encrypted; give an unencrypted one") from None
    except (ValueError, UnsupportedAlgorithm):
        raise click.ClickException(f"{file.name} is not a PEM private key; {_ED25519}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise click.ClickException(f"{file.name} is not an Ed25519 private key; {_ED25519}")
    return key


def load_public_key(file: IO[bytes]) -> Ed25519PublicKey:
    """The Ed25519 public key in the PEM ``file``; ``Error: …`` for anything else."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(file.read())
    except (ValueError, UnsupportedAlgorithm):
        raise click.ClickException(
            f"{file.name} is not a PEM public key (openssl pkey -in KEY -pubout makes one)"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise click.ClickException(f"{file.name} is not an Ed25519 public key; {_ED25519}")
    return key


def _fail(message: str) -> None:
    """End a check that did not hold: ``Error: message`` on stderr, exit status 1."""
    raise click.ClickException(message)


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE


# -- commands ------------------------------------------------------------------------------


@click.command()
@click.option(
    "--sign-key", type=click.File("rb"), metavar="FILE",
    help="Sign the checkpoint with the Ed25519 private key in this PEM file.",
)
@output_options("json", noun="checkpoint", formats=("json", "nl"))
@database_options
def checkpoint(sign_key: IO[bytes] | None, fmt: Format, db: str) -> None:
    """Print a checkpoint of the log: its size, root hash and chain hash, now.

    Keep it somewhere the store cannot reach (a file elsewhere, a commit, a
    printout): 'verify --checkpoint' then detects any rewrite of the events it
    covers, even one that recomputed every hash in the database.

    \b
        ctrledger checkpoint > cp.json
        ctrledger checkpoint --nl >> checkpoints.jsonl

    With --sign-key, the checkpoint carries an Ed25519 signature and the key's
    ID; 'verify --public-key' checks it. Make a key with

    \b
        openssl genpkey -algorithm ed25519 -out key.pem
        openssl pkey -in key.pem -pubout -out key.pub.pem
    """
    key = load_private_key(sign_key) if sign_key is not None else None
    store = open_store(db)
    echo_json(store.checkpoint(sign_with=key).to_dict(), fmt)


@click.command()
@click.option(
    "--checkpoint", "checkpoint_file", type=click.File("r"), metavar="FILE",
    help="Also check that the log still holds exactly the events of this checkpoint.",
)
@click.option(
    "--public-key", type=click.File("rb"), metavar="FILE",
    help="Also check the checkpoint's signature with the Ed25519 public key in this PEM file.",
)
@click.option(
    "--archive", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="FILE",
    help="Check this archive (from 'export') instead of the database.",
)
@output_options("text", noun="report", formats=("json", "nl"))
@log_options
def verify(
    checkpoint_file: IO[str] | None, public_key: IO[bytes] | None, archive: Path | None, fmt: Format, db: str
) -> None:
    """Check every hash of the log; exit 0 if it is intact, 1 if not.

    Recomputes each event's hash, the chain that links them and the Merkle tree
    over them, and prints one line: 'OK: positions 1-20 verified', or 'FAILED at
    position 7: content changed: ...' and a table of every problem found, by
    POSITION. Without a checkpoint this catches any edit made outside the store
    that did not also recompute the hashes; with --checkpoint, any change to the
    events the checkpoint covers, and their removal.

    The database is only read, never created or changed. On failure, stderr
    has one 'Error: ...' line too; --json prints the report as JSON (with
    'signature_valid' when --public-key is given), the exit status the same.

    With --archive FILE, it checks an archive instead, without any database:
    every frame's checksum (a damaged one is named with its byte offset), the
    events' hashes against the chain recorded with each chunk of a complete
    export, and, with --checkpoint, the events against the checkpoint.
    """
    if public_key is not None and checkpoint_file is None:
        raise click.UsageError("--public-key needs --checkpoint: it checks the checkpoint's signature.")
    target: str | Path = db
    if archive is not None:
        if _given(click.get_current_context(), "db"):
            raise click.UsageError("Give --db or --archive, not both: --archive checks a file without the database.")
        with ctrledger.replay.ArchiveReader(archive):
            pass  # Error: ... (at byte N) if the file is not an archive at all
        target = archive
    cp = load_checkpoint(checkpoint_file) if checkpoint_file is not None else None
    key = load_public_key(public_key) if public_key is not None else None
    report = ctrledger.verify(target, cp)
    signed = None if key is None or cp is None else cp.verify_signature(key)
    if fmt == "text":
        click.echo(str(report))
        if report.problems:
            click.echo(render_rows(PROBLEM_COLUMNS, ([str(p.position), p.kind, p.detail] for p in report.problems)))
        if signed is not None and public_key is not None:
            verdict = "OK: the checkpoint is signed" if signed else "FAILED: the checkpoint is not signed"
            click.echo(f"{verdict} by the key in {public_key.name}")
    else:
        form = report.to_dict()
        if signed is not None:
            form["signature_valid"] = signed
        echo_json(form, fmt)
    failures = [
        *([] if report.ok else ["the log failed verification"]),
        *([] if signed is not False else ["the checkpoint's signature is not valid for the public key"]),
    ]
    if failures:
        _fail(" and ".join(failures))


@click.command()
@click.argument("position", type=int, required=False)
@click.option(
    "--checkpoint", "checkpoint_file", type=click.File("r"), metavar="FILE",
    help="Prove it in the log as this checkpoint saw it (its size).  [default: the log now]",
)
@click.option(
    "--check", "proof_file", type=click.File("r"), metavar="FILE",
    help="Instead, check the proof saved in FILE against --checkpoint, without the database.",
)
@output_options("json", noun="proof", formats=("json", "nl"))
@database_options
def prove(
    position: int | None, checkpoint_file: IO[str] | None, proof_file: IO[str] | None, fmt: Format, db: str
) -> None:
    """Print a proof that the event at log POSITION is in the log.

    The proof is the event's hash and the few hashes that tie it to the root of
    the log's Merkle tree: anyone holding a checkpoint with that root can check
    it, offline, without the database.

    \b
        ctrledger prove 7 --checkpoint cp.json > proof.json
        ctrledger prove --check proof.json --checkpoint cp.json

    With --check, it prints 'OK: ...' and exits 0 if the proof leads to the
    checkpoint's root, or 'FAILED: ...' and exits 1 if it does not.
    """
    ctx = click.get_current_context()
    if proof_file is None:
        if position is None:
            raise click.UsageError("Give a POSITION, or --check FILE to check a saved proof.")
        cp = load_checkpoint(checkpoint_file) if checkpoint_file is not None else None
        store = open_store(db)
        echo_json(store.prove(position, checkpoint=cp).to_dict(), fmt)
        return
    if position is not None:
        raise click.UsageError("Give a POSITION or --check, not both: a saved proof names its position.")
    if checkpoint_file is None:
        raise click.UsageError("--check needs --checkpoint: a proof holds only against a checkpoint.")
    if _given(ctx, "_format_json") or _given(ctx, "_format_nl"):
        raise click.UsageError("--check prints one line: --json and --nl do not apply.")
    proof = load_proof(proof_file)
    cp = load_checkpoint(checkpoint_file)
    if proof.verify(cp):
        click.echo(f"OK: event {proof.index + 1} of the {cp.size} in the checkpoint has the proof's leaf "
                   f"(the proof says it was recorded at position {proof.position})")
    else:
        sizes = "" if proof.size == cp.size else (
            f" (the proof is of a log of {proof.size} events, the checkpoint of {cp.size})"
        )
        click.echo(f"FAILED: the proof does not tie position {proof.position} to the checkpoint's root{sizes}")
        _fail("the proof failed verification")


@click.command()
@click.option("--accept-unhashed", is_flag=True,
              help="Hash events without a hash found after the last hashed one (a finding of verify), "
                   "having looked at them; recorded in the log as accepted by an operator.")
@output_options("text", noun="report", formats=("json", "nl"))
@database_options
def migrate(accept_unhashed: bool, fmt: Format, db: str) -> None:
    """Create or upgrade the store's schemas; print their versions.

    The log's tables and the local read models each carry a schema version.
    Opening a store upgrades them on demand; migrate does it explicitly, e.g.
    before starting the nodes of a shared log. A schema newer than this
    ctrledger is an error.

    A log written before tamper evidence is hashed here, once, and the upgrade
    recorded. In a hashed log, events without a hash are a finding that stops
    writes; migrate refuses them unless --accept-unhashed says an operator has
    looked at them.
    """
    versions = ctrledger.migrate(db, accept_unhashed=accept_unhashed)
    if fmt == "text":
        hashed = f"; hashed {versions['hashed']} events" if versions["hashed"] else ""
        click.echo(f"log schema {versions['log_schema']}, read-model schema {versions['read_model_schema']}{hashed}")
    else:
        echo_json(versions, fmt)


COMMANDS: tuple[click.Command, ...] = (checkpoint, verify, prove, migrate)
