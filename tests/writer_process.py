"""A writer process for the concurrency, crash and multi-node tests (run as a script).

    python -m tests.writer_process TARGET NAME COUNT

TARGET is an SQLite path or a PostgreSQL URL (with its own ``readmodel``). Creates
containers ``<NAME>-<i>`` and ``shared-<i % 10>`` (racing with other writers), bumps a
label on ``hot`` without an expected version and on ``hot2`` with one (a Conflict is
reported, not retried), and prints one line per acknowledged write, flushed, so the
parent knows exactly what was acknowledged before it killed us.
"""

from __future__ import annotations

import sys

import ctrledger
from ctrledger import Container, Payload, Runtime


def main() -> None:
    target, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    spec = Payload("types.containerd.io/opencontainers/runtime-spec/1/Spec", b"{}")
    with ctrledger.open(target, actor=name) as store:
        for i in range(count):
            store.create(Container(id=f"{name}-{i}", runtime=Runtime("runc"), spec=spec, labels={"i": str(i)}))
            print(f"created {name}-{i}", flush=True)
            try:
                store.create(Container(id=f"shared-{i % 10}", runtime=Runtime("runc"), spec=spec))
                print(f"created shared-{i % 10}", flush=True)
            except ctrledger.AlreadyExists:
                pass
            store.update(Container(id="hot", labels={name: str(i)}), f"labels.{name}")
            print(f"updated hot {name}={i}", flush=True)
            try:
                seen = store.get("hot2").version
                store.update(Container(id="hot2", labels={name: str(i)}), f"labels.{name}", expected_version=seen)
                print(f"updated hot2 {name}={i}", flush=True)
            except ctrledger.Conflict:
                print(f"conflict hot2 {name}={i}", flush=True)


if __name__ == "__main__":
    main()
