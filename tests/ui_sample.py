"""A small, deterministic ledger for the web view's tests and screenshots."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import ctrledger
from ctrledger import Container, Payload

from .conftest import StepClock, make


def spec(env: str) -> Payload:
    return Payload(
        "types.containerd.io/opencontainers/runtime-spec/1/Spec",
        b'{"ociVersion":"1.0.2","process":{"args":["nginx","-g","daemon off;"],"env":["MODE=' + env.encode() + b'"]}}',
    )


@dataclass
class Sample:
    path: Path
    head: int  # the log position after building
    before_edge: int  # the position before web-1 moved to the edge tier
    correlation_id: str  # of carol's upgrade (image and spec in one update)


def build(path: Path, *, containers: int = 12) -> Sample:
    """``containers`` web-N containers; web-1 relabelled, upgraded, deleted and created again."""
    with ctrledger.open(path, clock=StepClock()) as store:
        for i in range(containers):
            store.create(
                make(f"web-{i}", spec=spec("a"), labels={"env": "prod" if i % 2 else "dev", "tier": "web"}),
                actor="alice", reason="deploy 42",
            )
        before_edge = store.position
        store.update(Container(id="web-1", labels={"tier": "edge"}), "labels.tier", actor="bob", reason="move to edge")
        store.update(
            Container(id="web-1", image="docker.io/library/nginx:1.28", spec=spec("b")), "image", "spec",
            actor="carol", reason="upgrade to 1.28",
        )
        store.delete("web-1", actor="bob", reason="incident 7")
        store.create(
            make("web-1", image="docker.io/library/nginx:1.28", spec=spec("c"), labels={"env": "prod"}),
            actor="alice", reason="restore after incident 7",
        )
        upgrade = next(a for a in store.audit(actor="carol"))
        return Sample(path, store.position, before_edge, upgrade.correlation_id)


def digest(path: Path) -> str:
    """The SHA-256 of the file's bytes (and of its WAL, if there is one)."""
    h = hashlib.sha256(path.read_bytes())
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        h.update(wal.read_bytes())
    return h.hexdigest()
