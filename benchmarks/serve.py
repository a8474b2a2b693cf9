#!/usr/bin/env python
"""``ctrledger serve`` against a real containerd, driven by the same Python gRPC client, in one run.

Usage::

    python benchmarks/serve.py [--quick] [--n N] [--json FILE]

Starts containerd 1.6 (Debian's ``containerd``; a temp-dir config, CRI disabled, as in the
project's reference notes) and ``ctrledger serve`` (the real command, default durability), then
drives both through containerd's Containers and Events services with one client code path,
namespace ``bench``, on N containers (20,000; 2,000 with ``--quick``), each with 5 labels
(``k0`` has 100 values, so ``labels.k0==v42`` selects 1%) and a 2048-byte spec. Phases
alternate between the two servers in chunks, so drift on a noisy machine hits both alike:

* create, 1 client (N/2) and 8 threads (N/2); update of one label, 1 client and 8 threads;
* Get of random IDs (mean latency); unary List of everything and ListStream. containerd's
  send limit is 16 MiB by default (its unary List of 20,000 such containers, ~46 MB, fails
  with RESOURCE_EXHAUSTED), so it runs with ``max_send_message_size`` raised to 1 GiB, like
  ctrledger's; the client's receive limit is raised to 1 GiB;
* ``labels.k0==v42`` (1%) and ``id==<one>``: median of 30 calls, in bursts of 10 back-to-back
  calls per server (as Get is timed), each burst after one untimed call. A lone call after
  the others' turns costs more on every server, ctrledger's about 1.5 ms more (its threads
  wake up: gRPC's, the executor's, the unix front's);
* event delivery: a subscriber on each server; the time from an Update's acknowledgement to
  the arrival of its ``/containers/update`` envelope, p50/p99.

Targets (issue 13): create and update ≥ 3× containerd with 1 client, ≥ 2× with 8 threads;
1% filter and ``id==`` ≥ 100× faster; Get and List-all at least as fast; events p99 ≤ 10 ms.

Two more columns, in the same interleaved chunks, say where a ratio is limited:

* **store alone**: the same calls on a ``ctrledger.Store`` in this process (its own file, the
  same default durability; requests translated by ``container_from_wire``, answers left as
  records): what ``ctrledger serve`` could reach if the wire cost nothing;
* **wire floor**: ``python benchmarks/serve.py --floor SOCKET --n N``, a process serving the same
  Python gRPC server (grpcio, the same options and thread pool) behind the same unix-socket
  front that reads peer credentials (``ctrledger.server.identity.UnixFront``), answering every
  call with fixed bytes of the same sizes (a benchmark record; N, N/100 or 1 of them for List,
  N messages for ListStream), with no store: what the wire costs with a store that costs
  nothing.

Each of the two is shown as its ratio to containerd (higher is better for ctrledger), a ceiling
for the ctrledger ratio in that row. One more column, **floor, no front**: the same floor process
called on its gRPC server's private socket, past the unix front: the floor's column minus this
one is what the front (accept, peer credentials, the relay) costs.

``--compare DIR``: also serve from the code in DIR (a checkout of another commit, e.g.
``git archive main | tar -x -C DIR``): its ``ctrledger serve`` and its wire floor join the same
interleaved chunks, as two more columns (``base``, ``base floor``): an A/B of two versions of the
server in one run, each with its ratio to the same containerd.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import queue
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ctrledger  # noqa: E402
from ctrledger.server.translate import container_from_wire  # noqa: E402
from ctrledger.wire import decode_event  # noqa: E402
from ctrledger.wire.containerd.events import container_pb2 as evpb  # noqa: E402
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2 as cpb  # noqa: E402
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2_grpc as cgrpc  # noqa: E402
from ctrledger.wire.containerd.services.events.v1 import events_pb2 as epb  # noqa: E402
from ctrledger.wire.containerd.services.events.v1 import events_pb2_grpc as egrpc  # noqa: E402

NS = (("containerd-namespace", "bench"),)
SPEC_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
CHUNK = 250

CONFIG = """version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{d}/containerd.sock"
  max_send_message_size = 1073741824
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = "{d}/debug.sock"
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "{d}/opt"
"""


def wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{path} did not appear (exit {proc.poll()})")
        time.sleep(0.05)


class Target:
    def __init__(self, name: str, address: str) -> None:
        self.name = name
        self.channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 1 << 30)])
        self.stub: Any = cgrpc.ContainersStub(self.channel)  # type: ignore[no-untyped-call]
        self.events = egrpc.EventsStub(self.channel)  # type: ignore[no-untyped-call]


class _Listed:
    def __init__(self, containers: list[Any]) -> None:
        self.containers = containers


class DirectStub:
    """The Containers calls the benchmark makes, on a ``ctrledger.Store`` in this process: the
    requests translated as the server does, the answers left as the store's records."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def Create(self, request: cpb.CreateContainerRequest, metadata: Any = None) -> Any:  # noqa: N802
        return self.store.create(container_from_wire(request.container), namespace="bench", actor="bench")

    def Update(self, request: cpb.UpdateContainerRequest, metadata: Any = None) -> Any:  # noqa: N802
        return self.store.update(container_from_wire(request.container), *request.update_mask.paths,
                                 namespace="bench", actor="bench")

    def Get(self, request: cpb.GetContainerRequest, metadata: Any = None) -> Any:  # noqa: N802
        return self.store.get(request.id, namespace="bench")

    def List(self, request: cpb.ListContainersRequest, metadata: Any = None) -> _Listed:  # noqa: N802
        return _Listed(self.store.list(*request.filters, namespace="bench"))

    def ListStream(self, request: cpb.ListContainersRequest, metadata: Any = None) -> Any:  # noqa: N802
        return self.store.scan(*request.filters, namespace="bench")


class Direct:
    """A target that is the store itself (see the module docstring's "store alone")."""

    def __init__(self, path: Path) -> None:
        self.name = "store"
        self.store = ctrledger.open(str(path), mode="c", client="bench")
        self.stub = DirectStub(self.store)


def floor_server(path: str, n: int) -> None:
    """The "wire floor" process: ctrledger's gRPC server setup and unix front, fixed answers."""
    from concurrent import futures

    from ctrledger.server.app import MAX_RECEIVE, MAX_SEND
    from ctrledger.server.identity import UnixFront

    record = container(0, random.Random(0))
    record.created_at.FromSeconds(1_700_000_000)
    record.updated_at.FromSeconds(1_700_000_000)
    # a Get answer; also Create's and Update's, and one ListStream message
    one = bytes(cpb.GetContainerResponse(container=record).SerializeToString())
    lists = {k: one * k for k in (n, n // 100, 1)}  # repeated field 1: a ListContainersResponse of k records

    def listed(request: bytes, context: grpc.ServicerContext) -> bytes:
        filters: list[str] = list(cpb.ListContainersRequest.FromString(request).filters)
        return lists[1 if any(f.startswith("id==") for f in filters) else n // 100 if filters else n]

    handlers = {
        "Create": grpc.unary_unary_rpc_method_handler(lambda r, c: one),
        "Update": grpc.unary_unary_rpc_method_handler(lambda r, c: one),
        "Get": grpc.unary_unary_rpc_method_handler(lambda r, c: one),
        "List": grpc.unary_unary_rpc_method_handler(listed),
        "ListStream": grpc.unary_stream_rpc_method_handler(lambda r, c: (one for _ in range(n))),
    }
    private = tempfile.mkdtemp(prefix="cls-floor-")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64),
                         options=[("grpc.max_receive_message_length", MAX_RECEIVE),
                                  ("grpc.max_send_message_length", MAX_SEND), ("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("containerd.services.containers.v1.Containers", handlers)])
    server.add_insecure_port(f"unix:{private}/grpc.sock")
    server.start()
    front = UnixFront(path, f"{private}/grpc.sock")
    os.symlink(f"{private}/grpc.sock", f"{path}.direct")  # the "floor, no front" column: past the front
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    front.close()
    os.unlink(f"{path}.direct")
    server.stop(0).wait()
    shutil.rmtree(private, ignore_errors=True)


def container(i: int, rng: random.Random) -> cpb.Container:
    c = cpb.Container(id=f"c{i:06d}-{rng.getrandbits(32):08x}", image="docker.io/library/nginx:1.27")
    c.runtime.name = "io.containerd.runc.v2"
    c.spec.type_url = SPEC_URL
    c.spec.value = rng.randbytes(2048)
    c.labels.update({"k0": f"v{i % 100}", **{f"k{j}": f"value-{j}-{i}" for j in range(1, 5)}})
    return c


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def rate_1(target: Target, calls: list[Callable[[cgrpc.ContainersStub], Any]]) -> list[float]:
    return [timed(functools.partial(c, target.stub)) for c in calls]


def rate_8(target: Target, calls: list[Callable[[cgrpc.ContainersStub], Any]], pool: ThreadPoolExecutor) -> float:
    t = time.perf_counter()
    list(pool.map(lambda c: c(target.stub), calls))
    return time.perf_counter() - t


def interleave(targets: list[Target], work: dict[str, list[Any]], run: Callable[[Target, list[Any]], Any],
               ) -> dict[str, list[Any]]:
    """Run ``work[target]`` in chunks, alternating the targets (and their order every chunk)."""
    out: dict[str, list[Any]] = {t.name: [] for t in targets}
    n = len(next(iter(work.values())))
    for k, start in enumerate(range(0, n, CHUNK)):
        order = targets if k % 2 == 0 else targets[::-1]
        for t in order:
            out[t.name].append(run(t, work[t.name][start:start + CHUNK]))
    return out


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))]


def create_call(c: cpb.Container) -> Callable[[cgrpc.ContainersStub], Any]:
    return lambda stub: stub.Create(cpb.CreateContainerRequest(container=c), metadata=NS)


def update_call(cid: str, value: str) -> Callable[[cgrpc.ContainersStub], Any]:
    req = cpb.UpdateContainerRequest(container=cpb.Container(id=cid, labels={"k1": value}),
                                     update_mask=field_mask_pb2.FieldMask(paths=["labels.k1"]))
    return lambda stub: stub.Update(req, metadata=NS)


def event_lags(target: Target, ids: list[str]) -> list[float]:
    """Ack-to-arrival time of each update's envelope, for a subscriber on ``target``."""
    arrivals: queue.Queue[tuple[str, float]] = queue.Queue()
    stream = target.events.Subscribe(epb.SubscribeRequest(filters=['topic=="/containers/update"']))

    def read() -> None:
        try:
            for env in stream:
                payload = decode_event(env.event)
                if isinstance(payload, evpb.ContainerUpdate):
                    arrivals.put((payload.labels.get("k2", ""), time.perf_counter()))
        except grpc.RpcError:
            pass

    threading.Thread(target=read, daemon=True).start()
    time.sleep(0.5)
    lags = []
    for n, cid in enumerate(ids):
        tag = f"ev-{n}"
        req = cpb.UpdateContainerRequest(container=cpb.Container(id=cid, labels={"k2": tag}),
                                         update_mask=field_mask_pb2.FieldMask(paths=["labels.k2"]))
        target.stub.Update(req, metadata=NS)
        acked = time.perf_counter()
        while True:
            got, at = arrivals.get(timeout=10)
            if got == tag:
                lags.append(at - acked)
                break
        time.sleep(0.005)
    stream.cancel()
    return lags


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 containers instead of 20,000")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--compare", type=Path, default=None, metavar="DIR",
                        help="also serve from the code in DIR (another commit's tree): an A/B in one run")
    parser.add_argument("--floor", metavar="SOCKET", default=None, help=argparse.SUPPRESS)  # the wire-floor process
    args = parser.parse_args()
    n = args.n or (2000 if args.quick else 20000)
    if args.floor:
        floor_server(args.floor, n)
        return 0
    containerd = shutil.which("containerd")
    if containerd is None:
        raise SystemExit("containerd is not installed (apt-get install containerd)")
    d = Path(tempfile.mkdtemp(prefix="cls-bench-", dir="/tmp"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        (d / "config.toml").write_text(CONFIG.format(d=d))
        cd = subprocess.Popen([containerd, "--config", str(d / "config.toml")], stdout=subprocess.DEVNULL,
                              stderr=open(d / "containerd.log", "wb"))
        procs.append(cd)
        ledger = subprocess.Popen([sys.executable, "-m", "ctrledger", "serve", "--db", str(d / "ledger.db"),
                                   "--address", f"unix://{d}/ctrledger.sock"], cwd=ROOT,
                                  stderr=open(d / "ctrledger.log", "wb"))
        procs.append(ledger)
        floor = subprocess.Popen([sys.executable, __file__, "--floor", str(d / "floor.sock"), "--n", str(n)],
                                 stderr=open(d / "floor.log", "wb"))
        procs.append(floor)
        wait_for(d / "containerd.sock", cd)
        wait_for(d / "ctrledger.sock", ledger)
        wait_for(d / "floor.sock", floor)
        wait_for(d / "floor.sock.direct", floor)
        if args.compare:
            base = args.compare.resolve()
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "ctrledger", "serve", "--db", str(d / "base.db"), "--address",
                 f"unix://{d}/base.sock"], cwd=base, stderr=open(d / "base.log", "wb")))
            wait_for(d / "base.sock", procs[-1])
            procs.append(subprocess.Popen(
                [sys.executable, str(base / "benchmarks" / "serve.py"), "--floor", str(d / "base-floor.sock"),
                 "--n", str(n)], cwd=base, stderr=open(d / "base-floor.log", "wb")))
            wait_for(d / "base-floor.sock", procs[-1])
        time.sleep(0.5)
        version = subprocess.run([containerd, "--version"], capture_output=True, text=True).stdout.strip()
        direct = Direct(d / "direct.db")
        targets: list[Any] = [Target("containerd", f"unix:{d}/containerd.sock"),
                              Target("ctrledger", f"unix:{d}/ctrledger.sock"), Target("floor", f"unix:{d}/floor.sock"),
                              direct, Target("no front", f"unix:{d}/floor.sock.direct")]
        if args.compare:
            targets += [Target("base", f"unix:{d}/base.sock"), Target("base floor", f"unix:{d}/base-floor.sock")]
        try:
            results = run(targets, n)
        finally:
            direct.store.close()
        results["containerd_version"] = version
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(d, ignore_errors=True)
    results["load_average"] = list(os.getloadavg())
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def run(targets: list[Target], n: int) -> dict[str, Any]:
    rng = random.Random(42)
    half = n // 2
    specs = [container(i, rng) for i in range(n)]
    ids = [c.id for c in specs]
    res: dict[str, Any] = {"n": n}
    pool = ThreadPoolExecutor(8)
    print(f"{n} containers; create, 1 client ...", file=sys.stderr)
    lat = interleave(targets, {t.name: [create_call(c) for c in specs[:half]] for t in targets}, rate_1)
    res["create_1"] = {k: half / sum(sum(x) for x in v) for k, v in lat.items()}
    print("create, 8 threads ...", file=sys.stderr)
    wall = interleave(targets, {t.name: [create_call(c) for c in specs[half:]] for t in targets},
                      lambda t, w: rate_8(t, w, pool))
    res["create_8"] = {k: (n - half) / sum(v) for k, v in wall.items()}
    m = min(2000, n)
    picks = rng.sample(ids, m)
    print("update, 1 client and 8 threads ...", file=sys.stderr)
    lat = interleave(targets, {t.name: [update_call(i, f"u1-{j}") for j, i in enumerate(picks)] for t in targets},
                     rate_1)
    res["update_1"] = {k: m / sum(sum(x) for x in v) for k, v in lat.items()}
    wall = interleave(targets, {t.name: [update_call(i, f"u8-{j}") for j, i in enumerate(picks)] for t in targets},
                      lambda t, w: rate_8(t, w, pool))
    res["update_8"] = {k: m / sum(v) for k, v in wall.items()}
    print("get ...", file=sys.stderr)
    gets = [(lambda stub, i=i: stub.Get(cpb.GetContainerRequest(id=i), metadata=NS)) for i in rng.sample(ids, m)]
    lat = interleave(targets, {t.name: gets for t in targets}, rate_1)
    res["get_ms"] = {k: 1000 * statistics.mean(x for chunk in v for x in chunk) for k, v in lat.items()}

    def median_ms(fn: Callable[[Target], Any], reps: int, burst: int = 10) -> dict[str, float]:
        # In bursts of back-to-back calls, as Get is timed: each target's burst begins with one
        # untimed call, which pays for waking its threads after the other targets' turns (and
        # for running in the wake of containerd's full scan, 80 ms of work and its garbage).
        out: dict[str, list[float]] = {t.name: [] for t in targets}
        for r in range(max(1, reps // burst)):
            for t in targets if r % 2 == 0 else targets[::-1]:
                fn(t)
                out[t.name] += [1000 * timed(functools.partial(fn, t)) for _ in range(burst)]
        return {k: statistics.median(v) for k, v in out.items()}

    def count(t: Target, *filters: str) -> int:
        return len(t.stub.List(cpb.ListContainersRequest(filters=list(filters)), metadata=NS).containers)

    for t in targets:
        assert count(t) == n, t.name
        assert count(t, "labels.k0==v42") == n // 100, t.name
    print("list ...", file=sys.stderr)
    res["list_all_ms"] = median_ms(lambda t: count(t), 3)
    res["list_stream_ms"] = median_ms(
        lambda t: sum(1 for _ in t.stub.ListStream(cpb.ListContainersRequest(), metadata=NS)), 3)
    res["filter_1pct_ms"] = median_ms(lambda t: count(t, "labels.k0==v42"), 30)
    res["filter_id_ms"] = median_ms(lambda t: count(t, f"id=={ids[n // 3]}"), 30)
    print("events ...", file=sys.stderr)
    ev_ids = rng.sample(ids, min(300, n))
    res["event_lag_ms"] = {}
    for t in [*targets[:2], *(t for t in targets if t.name == "base")]:  # containerd and the servers
        lags = event_lags(t, ev_ids)
        res["event_lag_ms"][t.name] = {"p50": 1000 * pct(lags, 50), "p99": 1000 * pct(lags, 99), "n": len(lags)}
    return res


def report(r: dict[str, Any]) -> None:
    c, led = "containerd", "ctrledger"
    load = r.get("load_average")
    print(f"\n{r.get('containerd_version', '')}; ctrledger serve; {r['n']:,} containers, 5 labels, 2 KB spec"
          + (f"; load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}" if load else "") + "\n")
    ceilings = [k for k in ("store", "floor", "no front", "base", "base floor") if k in r["get_ms"]]
    titles = {"store": "store alone", "floor": "wire floor", "no front": "no front", "base": "base",
              "base floor": "base floor"}
    print(f"{'op':28} {'containerd':>12} {'ctrledger':>12} {'ratio':>8}  {'target':17} "
          + " ".join(f"{titles[k]:>12} {'ratio':>8}" for k in ceilings))
    rows: list[str] = []

    def faster(name: str, key: str, unit: str, target: float, higher_better: bool) -> None:
        def ratio(other: str) -> float:
            a, b = float(r[key][c]), float(r[key][other])
            return b / a if higher_better else a / b

        got = ratio(led)
        line = (f"{name:28} {r[key][c]:>10,.1f}{unit:<2} {r[key][led]:>10,.1f}{unit:<2} {got:>7.2f}x  "
                f"{f'>= {target:g}x':8} {'PASS' if got >= target else 'FAIL':8}")
        for other in ceilings:  # the ceilings (a free wire, a free store), and the base's columns
            if other in r[key]:
                line += f" {r[key][other]:>10,.2f}{unit:<2} {ratio(other):>7.2f}x"
        rows.append(line)

    faster("create, 1 client", "create_1", "/s", 3, True)
    faster("create, 8 threads", "create_8", "/s", 2, True)
    faster("update label, 1 client", "update_1", "/s", 3, True)
    faster("update label, 8 threads", "update_8", "/s", 2, True)
    faster("get (mean)", "get_ms", "ms", 1, False)
    faster("list all, unary (median)", "list_all_ms", "ms", 1, False)
    faster("list all, stream (median)", "list_stream_ms", "ms", 1, False)
    faster("labels.k0==v42, 1% (median)", "filter_1pct_ms", "ms", 100, False)
    faster("id==x (median)", "filter_id_ms", "ms", 100, False)
    print("\n".join(rows))
    ev = r["event_lag_ms"]
    ok = ev[led]["p99"] <= 10
    print(f"{'event lag p50 / p99':28} {ev[c]['p50']:>5.1f}/{ev[c]['p99']:<5.1f}ms "
          f"{ev[led]['p50']:>5.1f}/{ev[led]['p99']:<5.1f}ms {'':8}  p99<=10ms {'PASS' if ok else 'FAIL'}"
          + (f"   base {ev['base']['p50']:.1f}/{ev['base']['p99']:.1f} ms" if "base" in ev else ""))


if __name__ == "__main__":
    raise SystemExit(main())
