"""``ctrledger serve``: containerd's gRPC APIs, and ctrledger's own, over a store.

A shell over the public API (``import ctrledger``) and the wire types (``ctrledger.wire``):
it translates requests, calls the store once, translates the answer; it holds no rule of its
own. Modules: ``status`` (errors to gRPC codes, in one place), ``translate`` (wire types ↔
records), ``identity`` (peer credentials and the headers a client adds), ``containerd``
(Containers, Namespaces, Events and the calls ``ctr`` makes around them), ``events`` (the log
as containerd's events), ``ledger`` (``ctrledger.v1.Ledger``), ``app`` (the server).

How to use it: docs/howto/serve-containerd-clients.md; the ctrledger.v1 contract:
docs/reference/grpc.md and ``ctrledger/wire/ctrledger/v1/ledger.proto``.
"""

from __future__ import annotations

from .app import MAX_RECEIVE, MAX_SEND, Server, serve, unix_path
from .containerd import FROM_POSITION
from .identity import CORRELATION_ID, ON_BEHALF_OF, REASON

__all__ = ["CORRELATION_ID", "FROM_POSITION", "MAX_RECEIVE", "MAX_SEND", "ON_BEHALF_OF", "REASON", "Server",
           "serve", "unix_path"]
