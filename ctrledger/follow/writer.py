"""The follower's writes in a process of their own (``Follower(..., writer=WriterProcess(db))``).

A follower spends most of its time in Python: reading containerd's events and answers
(grpcio), judging them, and writing them (the store's write path). In one process these share
one GIL, and every handoff between them (the event stream, the prefetching reads, the group
commit) waits behind the others: in a burst, events were read from containerd's stream tens of
milliseconds after containerd sent them. With the writes in a second process the follower's
own process only reads and judges, and a commit's Python runs beside it (docs/benchmarks.md).

The writer process opens the same embedded store and makes the store's write calls it is sent
(``observe_many``, ``observe`` and the status calls), one at a time, in order; each call
returns once committed, its answer or its ``StoreError`` raised in the caller. Requests and
answers are pickled over the process's stdin and stdout. The follower's own store reads what
the writer commits (the same SQLite file).

The process dies with the follower: it asks the kernel for SIGKILL when its parent ends
(``PR_SET_PDEATHSIG``), so a follower killed mid-burst leaves no writer committing an old
batch beside its successor; a transaction it had begun rolls back, as in one process. It
ignores SIGINT and SIGTERM, which a terminal's Ctrl-C or a service manager sends the whole
process group: the follower stops on them, and commits its last events through it first.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import subprocess
import sys
import threading
from typing import IO, Any

import ctrledger

__all__ = ["WRITES", "WriterGone", "WriterProcess"]

# The store calls a follower writes with (everything else it reads, from its own store).
WRITES = frozenset({"observe_many", "observe", "started", "exited", "paused", "resumed"})

_PR_SET_PDEATHSIG = 1
# The directory the follower's ctrledger package is in: first on the writer's path unless it is
# on it already (an installed package), so that the writer imports the same one. The stopping
# signals are ignored before anything else (see main()).
_HOME = os.path.dirname(os.path.dirname(os.path.abspath(ctrledger.__file__)))
_MAIN = ("import signal, sys\n"
         "signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
         "if {home!r} not in sys.path: sys.path.insert(0, {home!r})\n"
         "from ctrledger.follow.writer import main; main()")


class WriterGone(ctrledger.Unavailable):
    """The writer process ended during the call (killed, or out of memory): the call may or may
    not have committed."""


class WriterProcess:
    """The store at ``target`` (an embedded SQLite file), written from a process of its own.

    ``open_kwargs`` go to ``ctrledger.open`` in that process (with ``mode="w"``: the follower's
    store has created the file). The process starts on first use, or with ``start()``, and
    ends with ``close()``. A write the process died in (killed, or out of memory) raises
    ``WriterGone`` (an ``Unavailable``): whether it was committed is for the caller to find out
    (the follower writes an observed batch again, as the same command: its ``request_id``).
    A process found dead between writes is replaced. Calls are
    serialised: one write at a time, from any thread. The process is bound to the thread that
    started it (the kernel's parent-death signal follows the thread): it ends when that thread
    does, and the next call starts another. It ignores SIGINT and SIGTERM, which a terminal's
    Ctrl-C or a service manager sends the whole group: the follower, stopping, still commits
    what it has read through it, then ends it.
    """

    def __init__(self, target: str, **open_kwargs: Any) -> None:
        self.target = str(target)
        self.open_kwargs = open_kwargs
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<ctrledger.follow.WriterProcess {self.target!r}>"

    @property
    def pid(self) -> int | None:
        """The writer process's pid (None when none runs)."""
        return None if self._proc is None or self._proc.poll() is not None else self._proc.pid

    def start(self) -> None:
        """Start the process if none runs, and return once it has opened the store
        (``Unavailable`` if it cannot)."""
        with self._lock:
            self._start()

    def _start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self._stop()
        request = pickle.dumps((self.target, self.open_kwargs, os.getpid()))
        # No preexec_fn (not safe beside grpcio's threads): the child ignores the stopping signals
        # before anything else, and asks for its parent-death signal itself. The follower's own
        # ctrledger, wherever it was started: not the working directory's (``-P``: ``-c`` would
        # put it first on the path), but the one this process imported.
        self._proc = subprocess.Popen(
            [sys.executable, "-P", "-c", _MAIN.format(home=_HOME)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        self._send(request)
        try:
            self._answer()  # opened
        except ctrledger.StoreError:
            self._stop()
            raise

    def close(self) -> None:
        """End the process (after the write in progress, if any)."""
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()  # its read of the next request ends: it closes the store and exits
            except OSError:
                pass
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Make the store call ``name`` (one of ``WRITES``) in the writer process; its answer,
        or its ``StoreError`` raised here."""
        if name not in WRITES:
            raise ValueError(f"not a write the writer process makes: {name}")
        with self._lock:
            self._start()
            self._send(pickle.dumps((name, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL))
            return self._answer()

    def _send(self, data: bytes) -> None:
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        try:
            proc.stdin.write(len(data).to_bytes(8, "little") + data)
            proc.stdin.flush()
        except OSError as e:
            self._stop()
            raise WriterGone(f"the follower's writer process ended: {e}") from None

    def _answer(self) -> Any:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        try:
            kind, value = _read(proc.stdout)
        except (EOFError, OSError, pickle.UnpicklingError) as e:
            try:
                code: int | None = proc.wait(1)  # its stdout is closed: it is ending, if not gone
            except subprocess.TimeoutExpired:
                code = None
            self._stop()
            raise WriterGone(f"the follower's writer process ended ({_ended(code, e)})") from None
        if kind == "error":
            raise value
        return value

    def __getattr__(self, name: str) -> Any:
        """``writer.observe_many(...)`` and the other ``WRITES``, as the store's own methods."""
        if name in WRITES:
            return lambda *args, **kwargs: self.call(name, *args, **kwargs)
        raise AttributeError(name)


def _read(stream: IO[bytes]) -> Any:
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError("no answer")
    size = int.from_bytes(head, "little")
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("a cut answer")
    return pickle.loads(data)


def _ended(code: int | None, e: BaseException) -> str:
    if code is None:
        return str(e) or type(e).__name__
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"


def _die_with(parent: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the end of stdin still ends the process
        pass
    if os.getppid() != parent:  # the parent died before the request above took effect
        os._exit(1)


def _reply(out: IO[bytes], kind: str, value: Any) -> None:
    try:
        data = pickle.dumps((kind, value), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:  # noqa: BLE001 - an answer that cannot travel: say what it was
        data = pickle.dumps(("error", ctrledger.Unavailable(f"the writer's answer could not be sent: {e}")))
    out.write(len(data).to_bytes(8, "little") + data)
    out.flush()


def main() -> None:
    """The writer process: open the store, then make each call read from stdin, in order."""
    # The follower decides when its writer ends (the end of stdin, or its death): a Ctrl-C in a
    # terminal (SIGINT to the foreground process group) or a service manager's SIGTERM to every
    # process of the service reaches this process too, and the follower, stopping on it,
    # still has its last events to commit here. (``_MAIN`` ignores both before its imports.)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but answers on the answers' stream
    try:
        target, open_kwargs, parent = _read(inp)
    except EOFError:  # the follower died before it asked: nothing to do, nobody to tell
        sys.exit(1)
    _die_with(parent)
    try:
        store = ctrledger.open(target, mode="w", **open_kwargs)
    except ctrledger.StoreError as e:
        _reply(out, "error", e)
        return
    _reply(out, "ok", None)
    with store:
        while True:
            try:
                name, args, kwargs = _read(inp)
            except EOFError:
                return
            if name not in WRITES:
                _reply(out, "error", ctrledger.InvalidArgument(f"not a write: {name}"))
                continue
            try:
                result = getattr(store, name)(*args, **kwargs)
            except ctrledger.StoreError as e:
                _reply(out, "error", e)
            except Exception as e:  # noqa: BLE001 - only StoreErrors leave the store's API: as in one process
                _reply(out, "error", ctrledger.Unavailable(f"writer: unexpected {type(e).__name__}: {e}"))
            else:
                _reply(out, "ok", result)
