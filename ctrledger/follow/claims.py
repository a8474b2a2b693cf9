"""Containers a proxied call is changing right now (shared by the proxy and its follower)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Claims"]


class Claims:
    """Containers a proxied call is changing right now: the follower waits for them, so a change
    made through the proxy is recorded by the proxy (with the caller's name), not first by the
    follower (as ``containerd``)."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], int] = {}
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, ns: str, cid: str) -> Iterator[None]:
        self.take(ns, cid)
        try:
            yield
        finally:
            self.release(ns, cid)

    def take(self, ns: str, cid: str) -> None:
        """Claim the container until ``release`` (which may come from another thread)."""
        key = (ns, cid)
        with self._cond:
            self._held[key] = self._held.get(key, 0) + 1

    def release(self, ns: str, cid: str) -> None:
        key = (ns, cid)
        with self._cond:
            left = self._held[key] - 1
            if left:
                self._held[key] = left
            else:
                del self._held[key]
                self._cond.notify_all()

    def wait(self, ns: str, cid: str, timeout: float = 30.0) -> None:
        with self._cond:
            self._cond.wait_for(lambda: (ns, cid) not in self._held, timeout=timeout)
