"""A live containerd in the ledger: :class:`Follower` (passive: its events and lists) and
:class:`Proxy` (active: an auditing gRPC proxy in front of its socket). Both record through
the store's public API (``Store.observe`` and the status calls)."""

from __future__ import annotations

from .claims import Claims
from .follower import AFTER_GAP, AT_SYNC, NEW_NAMESPACE, Follower, Stats, connect
from .proxy import Proxy
from .writer import WriterProcess

__all__ = ["AFTER_GAP", "AT_SYNC", "NEW_NAMESPACE", "Claims", "Follower", "Proxy", "Stats", "WriterProcess", "connect"]
