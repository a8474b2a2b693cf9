"""Containers a proxied call is changing right now (shared by the proxy and its follower)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Set
from contextlib import contextmanager

__all__ = ["Claims"]


class Claims:
    """Containers a proxied call is changing right now: the follower waits for them, so a change
    made through the proxy is recorded by the proxy (with the caller's name), not first by the
    follower (as ``containerd``).

    And the other way round, containers the follower is committing observations of
    (``writing``): a proxied call on one of them waits until that commit is done, so the
    follower's check that nothing newer was recorded since it observed and its write are not
    split by the proxy's record (the follower writes in batches, a little after it observed).
    """

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], int] = {}
        self._writing: set[tuple[str, str]] = set()
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, ns: str, cid: str) -> Iterator[None]:
        self.take(ns, cid)
        try:
            yield
        finally:
            self.release(ns, cid)

    def take(self, ns: str, cid: str, timeout: float = 30.0) -> None:
        """Claim the container until ``release`` (which may come from another thread), once the
        follower is not committing it."""
        key = (ns, cid)
        with self._cond:
            self._cond.wait_for(lambda: key not in self._writing, timeout=timeout)
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

    @contextmanager
    def writing(self, keys: Set[tuple[str, str]], timeout: float = 30.0) -> Iterator[None]:
        """For the follower's commit of ``keys`` ((namespace, id) pairs): once no proxied call
        holds any of them, proxied calls on them wait until the block is done."""
        with self._cond:
            self._cond.wait_for(lambda: self._held.keys().isdisjoint(keys), timeout=timeout)
            self._writing |= keys
        try:
            yield
        finally:
            with self._cond:
                self._writing -= keys
                self._cond.notify_all()
