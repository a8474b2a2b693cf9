"""A Ledger/Watch client in its own process, for the slow-subscriber tests (run as a script).

    python -m tests.watcher_process SOCKET

Watches every event from now on; prints ``first`` (flushed) when the first one arrives, so
the parent knows the subscription is live (and may then SIGSTOP it: a client that never
reads). When its stream ends it prints one JSON line: the positions it received, the status
code's name and its details.
"""

from __future__ import annotations

import json
import sys

import grpc

from ctrledger.wire.ctrledger.v1 import ledger_pb2 as lpb
from ctrledger.wire.ctrledger.v1 import ledger_pb2_grpc as lgrpc


def main() -> None:
    positions: list[int] = []
    code, details = "OK", ""
    with grpc.insecure_channel(f"unix:{sys.argv[1]}") as ch:
        try:
            for event in lgrpc.LedgerStub(ch).Watch(lpb.WatchRequest()):
                positions.append(event.position)
                if len(positions) == 1:
                    print("first", flush=True)
        except grpc.RpcError as e:
            code, details = e.code().name, e.details() or ""
    print(json.dumps({"positions": positions, "code": code, "details": details}), flush=True)


if __name__ == "__main__":
    main()
