"""A real containerd in a temporary directory (see ../shared/reference/containerd-live.md).

``Containerd(dir).start()`` writes a config that keeps root, state, sockets and plugins
under ``dir`` (the CRI plugin disabled), starts ``/usr/bin/containerd`` and waits for its
socket; ``stop()`` ends it by its PID (SIGTERM, then SIGKILL). ``ctr(...)`` runs the real
``ctr`` against it. ``rootfs(dir)`` lays out a busybox-static root filesystem, so tasks run
offline with ``ctr run --rootfs`` and no image.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import ctrledger

__all__ = ["BUSYBOX", "CONTAINERD", "CTR", "Containerd", "missing", "rootfs"]

CONTAINERD = "/usr/bin/containerd"
CTR = shutil.which("ctr") or "/usr/bin/ctr"
BUSYBOX = shutil.which("busybox") or "/bin/busybox"

_CONFIG = """version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = "{d}/debug.sock"
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "{d}/opt"
"""


def missing() -> str | None:
    """Why a live containerd cannot run here, or None."""
    for tool in (CONTAINERD, CTR, shutil.which("runc") or "/usr/sbin/runc", BUSYBOX):
        if not os.access(tool, os.X_OK):
            return f"{tool} is not installed (Debian: containerd, busybox-static)"
    if os.geteuid() != 0:
        return "a real containerd needs root"
    return None


def rootfs(path: Path) -> Path:
    """A minimal root filesystem: busybox-static and its applets, /dev/shm, /proc, /tmp."""
    bin_dir = path / "bin"
    if (bin_dir / "busybox").exists():
        return path
    bin_dir.mkdir(parents=True)
    shutil.copy2(BUSYBOX, bin_dir / "busybox")
    for applet in ("sh", "true", "false", "sleep", "dd", "head", "cat", "echo", "kill", "ls"):
        (bin_dir / applet).symlink_to("busybox")
    for d in ("proc", "dev", "sys", "tmp", "dev/shm", "etc"):
        (path / d).mkdir(parents=True, exist_ok=True)
    return path


class Containerd:
    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.socket = str(self.dir / "containerd.sock")
        self.config = self.dir / "config.toml"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> Containerd:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(_CONFIG.format(d=self.dir))
        log = (self.dir / "containerd.log").open("ab")
        self.proc = subprocess.Popen([CONTAINERD, "--config", str(self.config)], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"containerd exited with {self.proc.returncode}; see {self.dir}/containerd.log")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.socket)
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"containerd did not listen on {self.socket} within {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def ctr(self, *args: str, namespace: str = "default", check: bool = True, address: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([CTR, "-a", address or self.socket, "-n", namespace, *args], capture_output=True,
                              text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done


def wait_until(check: Callable[[], object], timeout: float = 10.0, what: str = "the ledger to catch up") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except ctrledger.NotFound:  # the follower has not recorded the container yet
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
