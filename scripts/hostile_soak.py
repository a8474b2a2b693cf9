"""A hostile soak of the auditing proxy and the follower against a live containerd (not part of the
suite: a tool to look for races; see the closing note of 2026-12-02).

usage: python scripts/hostile_soak.py SECONDS [inproc|after|cdrestart|faults]

Eight threads over three fresh namespaces drive ``ctr`` through the proxy and directly (runs with
and without ``--rm``, exec, pause/resume, kill, rm, labels from both sides, OOMs), with faults in
the ``cdrestart`` and ``faults`` modes; afterwards it checks that the ledger equals containerd and
that every history is plausible, and prints what it found.
"""
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import grpc  # noqa: E402

import ctrledger  # noqa: E402
from ctrledger.follow import Proxy  # noqa: E402
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2 as cpb  # noqa: E402
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2_grpc as cg  # noqa: E402
from ctrledger.wire.containerd.services.tasks.v1 import tasks_pb2 as tpb  # noqa: E402
from ctrledger.wire.containerd.services.tasks.v1 import tasks_pb2_grpc as tg  # noqa: E402
from tests.live_containerd import Containerd, rootfs  # noqa: E402

SECS = float(sys.argv[1])
MODE = sys.argv[2] if len(sys.argv) > 2 else "inproc"
TAG = os.urandom(3).hex()
NSS = [f"h{i}-{TAG}" for i in (1, 2, 3)]
work = Path(tempfile.mkdtemp(prefix="hsoak"))
cd = Containerd(work / "cd").start()
rf = rootfs(work / "rootfs")
db = work / "l.db"
psock = f"{work}/p.sock"
lock = threading.Lock()
counts: collections.Counter[str] = collections.Counter()
problems: list[object] = []
expected_exit: dict[tuple[str, str, int], int] = {}  # (ns, cid, run#) -> exit code
refused: list[tuple[str, str, int]] = []  # (ns, cid, history length before) of refused rms
stop_at = time.monotonic() + SECS
fault_window = threading.Event()  # set while a fault is being injected
serve_log: list[tuple[bool, float, str]] = []



def rounds(seed: int) -> Iterator[tuple[random.Random, int, str]]:
    """A worker's rounds until the soak ends: its random source, the round's number, a namespace."""
    r = random.Random(seed)
    i = 0
    while time.monotonic() < stop_at:
        i += 1
        yield r, i, r.choice(NSS)

def ctr(addr: str, ns: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["ctr", "-a", addr, "-n", ns, *args], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, -999, "", "timeout")


def side(r: random.Random) -> str:
    return psock if r.random() < 0.6 else cd.socket


SCRIPT = "trap 'exit 7' TERM; while true; do sleep 0.2; done"


def detached(t: int) -> None:
    for r, i, ns in rounds(t):
        cid = f"d{t}-{i % 6}"  # names reused: new incarnations
        res = ctr(side(r), ns, "run", "-d", "--rootfs", str(rf), cid, "/bin/sh", "-c", SCRIPT)
        if res.returncode != 0 and "already exists" in res.stderr:
            counts["name taken"] += 1  # an exited one left: remove it now (a new incarnation next)
            ctr(side(r), ns, "tasks", "rm", cid)
            ctr(side(r), ns, "containers", "rm", cid)
            continue
        if res.returncode != 0:
            if not fault_window.is_set():
                with lock:
                    problems.append(("run -d", ns, cid, res.stderr[-200:]))
            ctr(cd.socket, ns, "tasks", "kill", "-s", "SIGKILL", cid)
            time.sleep(0.3)
            ctr(cd.socket, ns, "tasks", "rm", "-f", cid)
            ctr(cd.socket, ns, "containers", "rm", cid)
            continue
        counts["run -d"] += 1
        time.sleep(0.3)  # the trap is set
        for _ in range(r.randint(0, 3)):
            op = r.choice(["exec", "pause", "label", "rm-refused"])
            if op == "exec":
                ctr(side(r), ns, "tasks", "exec", "--exec-id", f"e{i}", cid, "/bin/true")
                counts["exec"] += 1
            elif op == "pause":
                ctr(side(r), ns, "tasks", "pause", cid)
                time.sleep(r.random() * 0.2)
                ctr(side(r), ns, "tasks", "resume", cid)
                counts["pause"] += 1
            elif op == "label":
                ctr(side(r), ns, "containers", "label", cid, f"x={i}")
            else:
                time.sleep(0.5)
                with ctrledger.open(str(db)) as s:
                    try:
                        before = len(list(s.history(cid, namespace=ns)))
                    except ctrledger.NotFound:
                        before = -1
                    res = ctr(side(r), ns, "containers", "rm", cid)
                    if res.returncode == 0:
                        problems.append(("rm of running accepted", ns, cid))
                    else:
                        counts["rm refused"] += 1
                        time.sleep(0.3)
                        hist = [(e.kind, e.actor[:10]) for e in s.history(cid, namespace=ns)] if before >= 0 else []
                        if "Deleted" in [k for k, _ in hist[before:]] and not fault_window.is_set():
                            problems.append(("refused rm recorded a Deleted", ns, cid, before, hist))
        sig = r.choice(["SIGTERM", "SIGKILL"])
        ctr(side(r), ns, "tasks", "kill", "-s", sig, cid)
        counts[sig] += 1
        w = ctr(cd.socket, ns, "tasks", "ls")
        time.sleep(0.4)
        ctr(side(r), ns, "tasks", "rm", cid)
        if r.random() < 0.8:
            ctr(side(r), ns, "containers", "rm", cid)
        else:
            counts["left exited"] += 1
        del w


def runs(t: int) -> None:
    for r, i, ns in rounds(100 + t):
        code = i % 4
        res = ctr(side(r), ns, "run", "--rm", "--rootfs", str(rf), f"r{t}-{i}", "/bin/sh", "-c", f"exit {code}")
        counts["run --rm"] += 1
        if res.returncode != code and not fault_window.is_set():
            with lock:
                problems.append(("run --rm", ns, t, i, res.returncode, res.stderr[-200:]))


def labels(t: int) -> None:
    for r, i, ns in rounds(200 + t):
        cid = f"shared-{i % 5}"  # the same names from several threads and both sides
        ctr(side(r), ns, "containers", "create", "--rootfs", str(rf), cid, "/bin/true")
        ctr(side(r), ns, "containers", "label", cid, f"t{t}={i}", f"common={t}-{i}")
        if r.random() < 0.2:
            ctr(side(r), ns, "containers", "rm", cid)
        counts["label"] += 1


def oom() -> None:
    i = 0
    while time.monotonic() < stop_at:
        i += 1
        cid = f"oom-{i}"
        ctr(side(random.Random(i)), NSS[0], "run", "--memory-limit", "16777216", "--rootfs", str(rf), cid,
            "/bin/sh", "-c", "dd if=/dev/zero of=/dev/shm/fill bs=1M count=64")
        counts["oom"] += 1
        time.sleep(2)


def containerd_state(ns: str) -> tuple[dict, dict]:
    md = (("containerd-namespace", ns),)
    with grpc.insecure_channel(f"unix://{cd.socket}") as ch:
        listed = cg.ContainersStub(ch).List(cpb.ListContainersRequest(), metadata=md).containers
        cs = {c.id: dict(c.labels) for c in listed}
        tasks = tg.TasksStub(ch).List(tpb.ListTasksRequest(), metadata=md).tasks
        ts = {t.id: (t.status, t.pid, t.exit_status) for t in tasks}
    return cs, ts


def check(store: ctrledger.Store, tag: str) -> None:
    for ns in NSS:
        real, tasks = containerd_state(ns)
        mine = {c.id: c for c in store.list(namespace=ns)}
        ml = {k: dict(c.labels) for k, c in mine.items()}
        if ml != real:
            problems.append((tag, "containers/labels differ", ns,
                             {k: (ml.get(k), real.get(k)) for k in set(ml) | set(real) if ml.get(k) != real.get(k)}))
        for cid, (st, pid, code) in tasks.items():
            c = mine.get(cid)
            if c is None:
                continue
            s = c.status
            if st in (2, 4, 5):  # RUNNING, PAUSED, PAUSING
                ok = s.state == "RUNNING" and s.pid == pid and s.paused == (st != 2)
            elif st == 3:
                ok = s.state == "EXITED" and s.exit_code == code
            else:
                ok = True
            if not ok:
                problems.append((tag, "status differs", ns, cid, (st, pid, code), s.to_dict()))
        for cid, c in mine.items():
            if cid not in tasks and c.status.state == "RUNNING":
                problems.append((tag, "RUNNING without a task", ns, cid, c.status.to_dict()))
        # histories
        for e_id in {e.id for e in store.audit(namespace=ns)}:
            try:
                hist = list(store.history(e_id, namespace=ns))
            except ctrledger.NotFound:
                continue
            alive = False
            running = False
            paused = False
            for e in hist:
                k = e.kind
                if k == "Created":
                    if alive:
                        problems.append((tag, "Created while alive", ns, e_id, [h.kind for h in hist]))
                    alive, running, paused = True, False, False
                elif k == "Deleted":
                    if not alive:
                        problems.append((tag, "Deleted while not alive", ns, e_id, [h.kind for h in hist]))
                    alive = False
                elif not alive:
                    problems.append((tag, f"{k} after Deleted", ns, e_id, [(h.kind, h.actor[:10]) for h in hist]))
                elif k == "Started":
                    if running:
                        problems.append((tag, "Started twice", ns, e_id, [(h.kind, h.actor[:10]) for h in hist]))
                    running = True
                elif k == "Exited":
                    if not running:
                        problems.append((tag, "Exited without Started", ns, e_id,
                                         [(h.kind, h.actor[:10]) for h in hist]))
                    running = False
                    paused = False
                    if e_id.startswith("r"):
                        want = int(e_id.split("-")[1]) % 4
                        got = [c.new for c in e.changes if c.field == "status.exit_code"]
                        if got and str(got[0]) != str(want) and not (want == 0 and not got):
                            problems.append((tag, "exit code", ns, e_id, got, want))
                    if e_id.startswith("d"):
                        got = [c.new for c in e.changes if c.field == "status.exit_code"]
                        if got and str(got[0]) not in ("7", "137"):
                            problems.append((tag, "exit code d", ns, e_id, got))
                    if e_id.startswith("oom"):
                        got = {c.field: c.new for c in e.changes}
                        counts[f"oom exit {got.get('status.exit_code')} {got.get('status.reason')}"] += 1
                elif k == "Paused":
                    if paused or not running:
                        problems.append((tag, "Paused bad", ns, e_id, [h.kind for h in hist]))
                    paused = True
                elif k == "Resumed":
                    if not paused:
                        problems.append((tag, "Resumed bad", ns, e_id, [h.kind for h in hist]))
                    paused = False
    v = subprocess.run([sys.executable, "-m", "ctrledger", "verify", "--db", str(db)], capture_output=True, text=True)
    if v.returncode != 0:
        problems.append((tag, "verify failed", v.stdout[-300:], v.stderr[-300:]))


def workers() -> list[threading.Thread]:
    ts = [threading.Thread(target=detached, args=(t,)) for t in range(3)]
    ts += [threading.Thread(target=runs, args=(t,)) for t in range(2)]
    ts += [threading.Thread(target=labels, args=(t,)) for t in range(2)]
    ts += [threading.Thread(target=oom)]
    for t in ts:
        t.start()
    return ts


def cleanup_tasks() -> None:
    for ns in NSS:
        _, tasks = containerd_state(ns)
        for cid in tasks:
            ctr(cd.socket, ns, "tasks", "kill", "-s", "SIGKILL", cid)
        time.sleep(1)
        for cid in tasks:
            ctr(cd.socket, ns, "tasks", "rm", "-f", cid)


try:
    if MODE in ("inproc", "after", "cdrestart"):
        store = ctrledger.open(str(db))
        record = "after-answer" if MODE == "after" else "before-answer"
        with Proxy(store, cd.socket, address=f"unix://{psock}", record=record) as proxy:
            ts = workers()
            if MODE == "cdrestart":
                while time.monotonic() < stop_at - 10:
                    time.sleep(random.uniform(5, 9))
                    fault_window.set()
                    print(time.strftime("%H:%M:%S"), "fault: restart containerd", flush=True)
                    e0 = proxy.errors
                    cd.stop()
                    time.sleep(0.5)
                    cd.start()
                    time.sleep(3)
                    fault_window.clear()
                    print("  proxy errors across it", proxy.errors - e0, proxy.follower.stats.errors, flush=True)
                fault_errors = (proxy.errors, proxy.follower.stats.errors)
            for t in ts:
                t.join()
            proxy.flush()
            time.sleep(3)
            check(store, "end")
            print("proxy.errors", proxy.errors, "follower", proxy.follower.stats)
            if MODE == "cdrestart":
                if (proxy.errors, proxy.follower.stats.errors) != fault_errors:
                    problems.append(("errors after the last fault", fault_errors, proxy.errors, proxy.follower.stats))
            elif proxy.errors or proxy.follower.stats.errors:
                problems.append(("errors", proxy.errors, proxy.follower.stats))
    else:
        def serve() -> subprocess.Popen[str]:
            p = subprocess.Popen([sys.executable, "-m", "ctrledger", "serve", "--upstream", cd.socket,
                                  "--address", f"unix://{psock}", "--db", str(db)], stderr=subprocess.PIPE,
                                 text=True, start_new_session=True)
            assert p.stderr is not None
            line = p.stderr.readline()
            assert "proxying" in line, line
            def read(err=p.stderr) -> None:
                for ln in err:
                    serve_log.append((fault_window.is_set(), time.monotonic(), ln.rstrip()))
            threading.Thread(target=read, daemon=True).start()
            return p
        server = serve()
        ts = workers()
        n = 0
        while time.monotonic() < stop_at - 5:
            time.sleep(random.uniform(4, 8))
            n += 1
            fault_window.set()
            if n % 2:
                print(time.strftime("%H:%M:%S"), "fault: SIGKILL proxy", flush=True)
                server.send_signal(signal.SIGKILL)
                server.wait()
                time.sleep(0.5)
                try:
                    os.unlink(psock)
                except FileNotFoundError:
                    pass
                server = serve()
            else:
                print(time.strftime("%H:%M:%S"), "fault: restart containerd", flush=True)
                cd.stop()
                time.sleep(0.5)
                cd.start()
            time.sleep(3)
            fault_window.clear()
        for t in ts:
            t.join()
        time.sleep(5)
        with ctrledger.open(str(db)) as store:
            check(store, "end")
        server.send_signal(signal.SIGTERM)
        print("serve rc", server.wait(20))
        for in_fault, _, ln in serve_log:
            if "could not record" in ln or "cannot record" in ln or "Traceback" in ln or "ERROR" in ln:
                print("SERVE", "(fault)" if in_fault else "(NO FAULT)", ln[:300])
                if not in_fault:
                    problems.append(("serve logged outside a fault", ln[:300]))
    print("counts", dict(counts))
    print("PROBLEMS", len(problems))
    for p in problems[:40]:
        print(" ", p)
finally:
    try:
        cleanup_tasks()
    except Exception:
        pass
    cd.stop()
    print("work", work)
