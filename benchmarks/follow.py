#!/usr/bin/env python
"""Benchmark ``ctrledger follow`` and the auditing proxy against a real containerd, in one run.

Usage::

    python benchmarks/follow.py [--quick] [--burst N] [--sync N] [--runs N] [--json FILE]
                                [--parts burst,sync,proxy] [--baseline SRC] [--rounds N]

Starts a containerd in a temporary directory (CRI disabled; tests/live_containerd.py) and:

* **burst**: a follower follows namespace ``burst`` while a client makes N creates (5 labels,
  2 KB spec), N label updates and N deletes (3N events; N=2,000 by default) through
  containerd's gRPC API as fast as 4 threads go. A reader (a process of its own) polls the
  ledger's audit table every millisecond and notes when each event becomes readable; the lag
  is that time minus containerd's envelope timestamp (which the follower records as the
  event's time). A plain subscriber, in a process of its own, notes when each event reaches
  it: containerd's own delivery lag under the same load, the baseline; each event's lag at
  the follower less its lag at the plain subscriber (``over_plain``) is what the follower
  adds, without containerd's own delays, which a loaded machine adds to both. Checks that
  every change was recorded (N Created, N LabelsChanged, N Deleted, nothing else).
  ``--baseline SRC --rounds R``: R bursts with this tree's follower and R with the follower
  of the source tree SRC (a checkout of another commit, e.g. ``git archive main | tar -x -C
  SRC``), alternated and the order swapped each round, each in a namespace of its own: an
  A/B on one machine at one time.
* **sync**: N existing containers (20,000 by default) in namespace ``sync``; the time for a
  fresh ledger's initial sync (``Follower.reconcile``, writing through a ``WriterProcess`` as
  ``ctrledger follow`` does).
* **proxy**: two proxies (each ``ctrledger serve --upstream`` in its own process, as deployed;
  ``--proxy-in-process`` runs them in this one), one per record mode
  (``before-answer``, the default, and ``after-answer``), each with a store of its own, and
  containerd directly: Containers/Get on one container, and ``ctr run --rm --rootfs DIR job
  /bin/true`` (40 runs each), the three interleaved call by call and run by run, the order
  rotated each round so that the machine's drifting load weighs on all three alike.

The burst also reports the follower's CPU time per event (its process's user + system time,
start-up included) and the audit reasons recorded (``seen in its event only`` counts the
changes whose container was gone before the follower could read it).

Targets (issue 14): every change recorded, lag p99 ≤ 50 ms; sync of 20,000 ≤ 20 s; the proxy
adds ≤ 1 ms (p50) to Containers/Get and ≤ 20% (median) to ``ctr run --rm``.
``--quick``: N=600 burst, 2,000 sync, 10 runs (smaller than the targets' sizes: say so).
The report gives the load average (1, 5, 15 min) before and after each part: on a shared
machine the figures follow it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ctrledger  # noqa: E402
from ctrledger.follow import Follower, Proxy, WriterProcess  # noqa: E402
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2 as cpb  # noqa: E402
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2_grpc as cgrpc  # noqa: E402
from tests.live_containerd import Containerd, missing, rootfs  # noqa: E402

SPEC_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def container(i: int, prefix: str) -> cpb.Container:
    c = cpb.Container(id=f"{prefix}{i}", labels={f"k{j}": f"v{i % 100}-{j}" for j in range(5)},
                      runtime=cpb.Container.Runtime(name="io.containerd.runc.v2"))
    c.spec.type_url = SPEC_URL
    c.spec.value = json.dumps({"ociVersion": "1.0.2", "pad": os.urandom(1000).hex()}).encode()[:2048]
    return c


def ns_md(ns: str) -> tuple[tuple[str, str], ...]:
    return (("containerd-namespace", ns),)


def burst(cd: Containerd, work: Path, n: int, src: Path | None = None, ns: str = "burst") -> dict[str, object]:
    """``src``: run the follower from this source tree (a checkout of another commit) instead
    of this one's: the A/B comparison of ``--baseline``."""
    db = work / f"{ns}.db"
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    # The follower in a process of its own, as it runs in production (and not sharing a GIL
    # with this client's threads).
    follower = subprocess.Popen([sys.executable, "-m", "ctrledger", "follow", "--address", cd.socket,
                                 "--db", str(db), "--namespace", ns], stderr=subprocess.PIPE,
                                text=True, env=env, cwd=str(src or ROOT))
    assert follower.stderr is not None
    line = follower.stderr.readline()
    assert "ctrledger follow:" in line, line
    log_lines: list[str] = []
    threading.Thread(target=lambda: log_lines.extend(follower.stderr), daemon=True).start()  # type: ignore[arg-type]
    # The reader in a process of its own too: in this one it would wait for the GIL behind the
    # client's threads and see the changes late.
    reader = subprocess.Popen([sys.executable, __file__, "--poll", str(db), str(work / "seen.json")],
                              stdout=subprocess.PIPE, text=True)
    assert reader.stdout is not None and reader.stdout.readline().strip() == "polling"
    # The baseline: a plain subscriber (its own process too) notes when each event reaches it.
    plain = subprocess.Popen([sys.executable, __file__, "--subscribe", cd.socket, ns, str(work / "plain.json")],
                             stdout=subprocess.PIPE, text=True)
    assert plain.stdout is not None and plain.stdout.readline().strip() == "subscribed"
    channel = grpc.insecure_channel(f"unix://{cd.socket}")
    stub = cgrpc.ContainersStub(channel)  # type: ignore[no-untyped-call]
    md = ns_md(ns)

    def one(i: int) -> None:
        stub.Create(cpb.CreateContainerRequest(container=container(i, "b")), metadata=md)
        stub.Update(cpb.UpdateContainerRequest(container=cpb.Container(id=f"b{i}", labels={"k0": "changed"}),
                                               update_mask={"paths": ["labels.k0"]}), metadata=md)
        stub.Delete(cpb.DeleteContainerRequest(id=f"b{i}"), metadata=md)

    t0 = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(n)))
    sent = time.monotonic() - t0
    deadline = time.monotonic() + 120
    progress = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)

    def counts_now() -> tuple[int, int]:
        row = progress.execute("SELECT count(*), sum(kind = 'Deleted') FROM audit").fetchone()
        return int(row[0]), int(row[1] or 0)

    while counts_now()[0] < 3 * n and time.monotonic() < deadline:
        before = counts_now()[0]
        time.sleep(2.0)
        total, deleted = counts_now()
        if total == before and deleted == n:
            break  # every container's last event is in: what is missing was folded into another
    progress.close()
    caught_up = time.monotonic() - t0
    for helper in (reader, plain):
        helper.terminate()
        helper.wait(30)
    plain_at = {int(at): lag for at, lag in json.loads((work / "plain.json").read_text())}
    delivered = list(plain_at.values())
    polled = json.loads((work / "seen.json").read_text())
    seen = {int(p): t for p, (t, _, _) in polled.items()}
    recorded = {int(p): (at, kind) for p, (_, at, kind) in polled.items()}
    follower.terminate()
    _, status, usage = os.wait4(follower.pid, 0)  # its CPU time: what the load does not change
    follower.returncode = os.waitstatus_to_exitcode(status)
    follower_cpu = usage.ru_utime + usage.ru_stime
    channel.close()
    # An update made before the follower could read the new container is folded into its Created
    # record (containerd's create event carries no labels): check that is all that is missing.
    folded = unexplained = 0
    odd: list[str] = []
    reasons: dict[str, int] = {}
    with ctrledger.open(db) as store:
        for entry in store.audit(namespace=ns):
            reasons[entry.reason] = reasons.get(entry.reason, 0) + 1
        for i in range(n):
            entries = list(store.history(f"b{i}", namespace=ns))
            kinds = [e.kind for e in entries]
            if kinds == ["Created", "Deleted"] and any(c.field == "labels.k0" and c.new == "changed"
                                                       for c in entries[0].changes):
                folded += 1
            elif kinds != ["Created", "LabelsChanged", "Deleted"]:
                unexplained += 1
                odd.append(f"b{i}: {kinds} {[e.reason for e in entries]}")
    lags = [(seen[p] - at / 1e6) * 1000 for p, (at, _) in recorded.items()]
    # The same event's lag at the follower less its lag at the plain subscriber: what the
    # follower adds, without containerd's own delays (a loaded machine delays both).
    over_plain = [(seen[p] - at / 1e6) * 1000 - plain_at[at] for p, (at, _) in recorded.items() if at in plain_at]
    counts: dict[str, int] = {}
    for _, kind in recorded.values():
        counts[kind] = counts.get(kind, 0) + 1
    complete = counts.get("Created") == n and counts.get("Deleted") == n and unexplained == 0 and (
        counts.get("LabelsChanged", 0) + folded == n) and len(counts) == 3
    return {"follower_src": str(src or ROOT), "load_average": os.getloadavg(), "events": 3 * n,
            "recorded": counts, "follower_log_tail": log_lines[-3:], "complete": complete,
            "updates_folded_into_created": folded, "unexplained": unexplained, "odd": odd[:5],
            "reasons": reasons, "follower_cpu_s": round(follower_cpu, 2),
            "follower_cpu_ms_per_event": round(follower_cpu / (3 * n) * 1000, 3),
            "follower_user_sys_s": [round(usage.ru_utime, 2), round(usage.ru_stime, 2)],
            "lag_ms_by_decile": [round(pct([lags[j] for j in range(len(lags)) if j * 10 // len(lags) == d], 99), 1)
                                 for d in range(10)],
            "sent_s": round(sent, 2),
            "caught_up_s": round(caught_up, 2), "events_per_s_sent": round(3 * n / sent),
            "plain_subscriber": {"events": len(delivered), "lag_ms_p50": round(pct(delivered, 50), 2),
                                 "lag_ms_p99": round(pct(delivered, 99), 2), "lag_ms_max": round(max(delivered), 2)},
            "lag_ms_p99_by_kind": {kind: round(pct([(seen[p] - at / 1e6) * 1000 for p, (at, k) in recorded.items()
                                                    if k == kind], 99), 1) for kind in sorted(counts)},
            "lag_ms_p50": round(pct(lags, 50), 2), "lag_ms_p99": round(pct(lags, 99), 2),
            "lag_ms_max": round(max(lags), 2),
            "paired_with_plain": len(over_plain), "over_plain_ms_p50": round(pct(over_plain, 50), 2),
            "over_plain_ms_p99": round(pct(over_plain, 99), 2),
            "target_ok": complete and pct(lags, 99) <= 50}


def bursts(cd: Containerd, work: Path, n: int, rounds: int, baseline: str | None) -> object:
    """One burst (``rounds`` 1, no baseline), or ``rounds`` of them, alternating this tree's
    follower with the baseline's (the order swapped each round), each burst in a namespace of its
    own; then the p99 of each run and their medians side by side."""
    if rounds == 1 and baseline is None:
        return burst(cd, work, n)
    trees: list[tuple[str, Path | None]] = [("this", None)]
    if baseline is not None:
        trees.append(("baseline", Path(baseline).resolve()))
    runs: dict[str, list[dict[str, object]]] = {name: [] for name, _ in trees}
    for r in range(rounds):
        for name, src in (trees if r % 2 == 0 else trees[::-1]):
            runs[name].append(burst(cd, work, n, src, ns=f"burst-{name}-{r}"))
    out: dict[str, object] = {}
    for name, results in runs.items():
        p99 = [float(str(x["lag_ms_p99"])) for x in results]
        out[name] = {"lag_ms_p99_runs": p99, "lag_ms_p99_median": statistics.median(p99),
                     "lag_ms_p50_runs": [x["lag_ms_p50"] for x in results],
                     "plain_p99_runs": [x["plain_subscriber"]["lag_ms_p99"] for x in results],  # type: ignore[index]
                     "over_plain_p99_runs": [x["over_plain_ms_p99"] for x in results],
                     "over_plain_p50_runs": [x["over_plain_ms_p50"] for x in results],
                     "cpu_ms_per_event_runs": [x["follower_cpu_ms_per_event"] for x in results],
                     "complete_runs": [x["complete"] for x in results],
                     "load_average_runs": [x["load_average"] for x in results], "runs": results}
    return out


def sync(cd: Containerd, work: Path, n: int) -> dict[str, object]:
    ns = "sync"
    channel = grpc.insecure_channel(f"unix://{cd.socket}")
    stub = cgrpc.ContainersStub(channel)  # type: ignore[no-untyped-call]
    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: stub.Create(cpb.CreateContainerRequest(container=container(i, "s")),
                                            metadata=ns_md(ns)), range(n)))
    made = time.monotonic() - t0
    channel.close()
    store = ctrledger.open(work / "sync.db")
    # its writes from a process of their own, as `ctrledger follow` makes them
    follower = Follower(store, cd.socket, namespaces=[ns], writer=WriterProcess(store.path, client="follow"))
    follower.writer.start()  # type: ignore[union-attr]  # started before the clock, as the command's is
    t0, cpu0 = time.monotonic(), time.process_time()
    written = follower.reconcile("observed at sync")
    took, cpu = time.monotonic() - t0, time.process_time() - cpu0
    t0 = time.monotonic()
    again = follower.reconcile()
    second = time.monotonic() - t0
    follower.close()
    count = len(store.list(namespace=ns))
    store.close()
    return {"containers": n, "create_in_containerd_s": round(made, 1), "sync_s": round(took, 2),
            "sync_cpu_s": round(cpu, 2),  # this process's CPU time (every thread; not the writer's)
            "events_written": written, "in_ledger": count, "second_reconcile_s": round(second, 2),
            "second_reconcile_writes": again, "target_ok": took * 20_000 / n <= 20 and count == n and again == 0,
            "per_container_ms": round(took / n * 1000, 3)}


class _ServedProxy:
    """``ctrledger serve --upstream`` in a process of its own, as it is deployed (an in-process
    proxy would share the benchmark's interpreter and its GIL)."""

    def __init__(self, cd: Containerd, work: Path, mode: str) -> None:
        self.db, self.path = work / f"proxy-{mode}.db", str(work / f"proxy-{mode}.sock")
        self._log = open(work / f"proxy-{mode}.log", "w")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "ctrledger", "serve", "--db", str(self.db), "--address", f"unix://{self.path}",
             "--upstream", cd.socket, "--no-follow", "--record", mode], stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.path):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"ctrledger serve --upstream did not start: see {self._log.name}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM: calls in flight finish and what containerd answered is recorded, then it exits."""
        self._process.terminate()
        self._process.wait(60)
        self._log.close()


def proxy(cd: Containerd, work: Path, gets: int, runs: int, in_process: bool = False) -> dict[str, object]:
    """Both record modes in one run: a proxy of each (own store, own socket; each its own
    ``ctrledger serve --upstream`` process unless ``in_process``) and containerd directly,
    interleaved call by call (Get) and run by run (``ctr run --rm``), the order rotated each
    round, so drifting load weighs on the three alike."""
    ns = "proxy"
    root = rootfs(work / "rootfs")
    modes = ("before-answer", "after-answer")
    stores: dict[str, ctrledger.Store] = {}
    proxies: dict[str, Proxy] = {}
    served: dict[str, _ServedProxy] = {}
    if in_process:
        stores = {m: ctrledger.open(work / f"proxy-{m}.db") for m in modes}
        proxies = {m: Proxy(stores[m], cd.socket, address=f"unix://{work}/proxy-{m}.sock", follow=False,
                            record=m).start() for m in modes}
        paths = {m: proxies[m].path for m in modes}
    else:
        served = {m: _ServedProxy(cd, work, m) for m in modes}
        paths = {m: served[m].path for m in modes}
    targets = {"direct": cd.socket, **paths}
    try:
        channels = {k: grpc.insecure_channel(f"unix://{a}") for k, a in targets.items()}
        stubs = {k: cgrpc.ContainersStub(ch) for k, ch in channels.items()}  # type: ignore[no-untyped-call]
        stubs["direct"].Create(cpb.CreateContainerRequest(container=container(0, "g")), metadata=ns_md(ns))
        request = cpb.GetContainerRequest(id="g0")
        get_ms: dict[str, list[float]] = {k: [] for k in targets}
        for i in range(gets + 50):
            for k in list(targets)[i % 3:] + list(targets)[:i % 3]:
                t = time.perf_counter()
                stubs[k].Get(request, metadata=ns_md(ns))
                if i >= 50:  # warm-up
                    get_ms[k].append((time.perf_counter() - t) * 1000)
        for ch in channels.values():
            ch.close()
        run_ms: dict[str, list[float]] = {k: [] for k in targets}
        for i in range(runs):
            for k in list(targets)[i % 3:] + list(targets)[:i % 3]:
                t = time.perf_counter()
                done = subprocess.run(["ctr", "-a", targets[k], "-n", ns, "run", "--rm", "--rootfs", str(root),
                                       f"job{i}-{k}", "/bin/true"], capture_output=True, text=True)
                assert done.returncode == 0, done.stderr
                run_ms[k].append((time.perf_counter() - t) * 1000)
        for p in proxies.values():
            p.flush()
        for sp in served.values():
            sp.stop()
        recorded = {}
        for m in modes:
            if m in stores:
                recorded[m] = sum(1 for _ in stores[m].audit(namespace=ns))
            else:
                with ctrledger.open(served[m].db) as st:
                    recorded[m] = sum(1 for _ in st.audit(namespace=ns))
        d50, dm = statistics.median(get_ms["direct"]), statistics.median(run_ms["direct"])
        out: dict[str, object] = {}
        for m in modes:
            p50, pm = statistics.median(get_ms[m]), statistics.median(run_ms[m])
            out[m] = {"record": m,
                      "get": {"direct_ms_p50": round(d50, 3), "proxy_ms_p50": round(p50, 3),
                              "added_ms_p50": round(p50 - d50, 3), "target_ok": p50 - d50 <= 1.0},
                      "ctr_run": {"direct_ms_median": round(dm, 1), "proxy_ms_median": round(pm, 1),
                                  "added_pct": round((pm / dm - 1) * 100, 1), "target_ok": pm <= 1.2 * dm,
                                  "runs": runs},
                      "recorded_by_proxy": recorded[m],
                      "proxy": "in this process" if in_process else "its own process (ctrledger serve --upstream)"}
        return out
    finally:
        for p in proxies.values():
            p.stop(grace=1.0)
        for sp in served.values():
            if sp._process.poll() is None:
                sp.stop()
        for st in stores.values():
            st.close()


def poll(db: str, out: str) -> int:
    """``--poll DB OUT``: note when each audit row becomes readable (every millisecond) until
    SIGTERM, then write ``{position: [seen, recorded_at, kind]}`` to OUT."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
    found: dict[int, tuple[float, int, str]] = {}
    last = 0
    print("polling", flush=True)
    while not stop.is_set():
        rows = conn.execute("SELECT position, recorded_at, kind FROM audit WHERE position > ? ORDER BY position",
                            (last,)).fetchall()
        now = time.time()
        for pos, at, kind in rows:
            found[pos] = (now, at, kind)
            last = pos
        time.sleep(0.001)
    conn.close()
    Path(out).write_text(json.dumps(found))
    return 0


def subscribe(socket_path: str, ns: str, out: str) -> int:
    """``--subscribe SOCKET NS OUT``: a plain subscriber to NS's container events; until
    SIGTERM, note each one's lag (arrival minus containerd's envelope timestamp, in ms), then
    write the list of ``[timestamp in µs, lag]`` to OUT. What containerd's delivery costs under the same load."""
    from ctrledger.wire.containerd.services.events.v1 import events_pb2 as epb
    from ctrledger.wire.containerd.services.events.v1 import events_pb2_grpc as egrpc

    channel = grpc.insecure_channel(f"unix://{socket_path}")
    call = egrpc.EventsStub(channel).Subscribe(  # type: ignore[no-untyped-call]
        epb.SubscribeRequest(filters=[f'namespace=={ns},topic~="^/containers/"']))
    lags: list[list[float]] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: call.cancel())
    time.sleep(0.05)  # let the subscription reach containerd
    print("subscribed", flush=True)
    try:
        for env in call:
            now = time.time()
            lags.append([env.timestamp.seconds * 1_000_000 + env.timestamp.nanos // 1000,
                         (now - env.timestamp.seconds - env.timestamp.nanos / 1e9) * 1000])
    except grpc.RpcError:
        pass  # cancelled: done
    Path(out).write_text(json.dumps(lags))
    return 0


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--poll":
        return poll(sys.argv[2], sys.argv[3])
    if len(sys.argv) == 5 and sys.argv[1] == "--subscribe":
        return subscribe(sys.argv[2], sys.argv[3], sys.argv[4])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--burst", type=int, default=None)
    parser.add_argument("--sync", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--parts", default="burst,sync,proxy",
                        help="comma-separated parts to run (burst, sync, proxy)")
    parser.add_argument("--baseline", default=None, metavar="SRC",
                        help="also run the burst with the follower from the source tree SRC (another commit's "
                             "checkout), alternating with this tree's --rounds times: an A/B in one run")
    parser.add_argument("--rounds", type=int, default=1, help="bursts (or A/B pairs) to run")
    parser.add_argument("--proxy-in-process", action="store_true",
                        help="run the proxies in this process (default: each its own ctrledger serve --upstream)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    why = missing()
    if why is not None:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    n_burst = args.burst or (600 if args.quick else 2000)
    n_sync = args.sync or (2000 if args.quick else 20_000)
    runs = args.runs or (10 if args.quick else 40)
    with tempfile.TemporaryDirectory(prefix="ctrledger-bench-follow-") as tmp:
        work = Path(tmp)
        cd = Containerd(work / "containerd").start()
        try:
            report: dict[str, object] = {"load_average_at_start": os.getloadavg()}
            gets = 500 if args.quick else 2000
            phases: tuple[tuple[str, Callable[[], object]], ...] = (
                ("burst", lambda: bursts(cd, work, n_burst, args.rounds, args.baseline)),
                ("sync", lambda: sync(cd, work, n_sync)),
                ("proxy", lambda: proxy(cd, work, gets, runs, args.proxy_in_process)))
            for name, run in phases:
                if name not in parts:
                    continue
                report[name] = run()
                report[f"load_average_after_{name}"] = os.getloadavg()
        finally:
            cd.stop()
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
