"""Serving the web view: waitress, a pure-Python WSGI server, on one address until interrupted."""

from __future__ import annotations

import ipaddress
from typing import Any

from flask import Flask
from waitress import wasyncore
from waitress.server import create_server

__all__ = ["LOOPBACK_NAMES", "make_server", "stop", "trusted_hosts"]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def trusted_hosts(host: str) -> list[str] | None:
    """The ``Host`` headers to accept when bound to ``host``: the loopback names for a loopback
    address (so that a web page elsewhere cannot reach the view through DNS rebinding), any
    when bound elsewhere (``--host`` was given on purpose)."""
    return [*LOOPBACK_NAMES, host] if _loopback(host) else None


def make_server(app: Flask, host: str, port: int, *, threads: int = 4) -> Any:
    """A waitress server of ``app`` bound to ``host:port`` (port 0: any free port), not yet running.

    ``.run()`` serves until interrupted, ``.close()`` stops; ``.effective_port`` is the port bound.
    """
    app.config["TRUSTED_HOSTS"] = trusted_hosts(host)
    return create_server(app, host=host, port=port, threads=threads, ident="ctrledger-ui")


def stop(server: Any) -> None:
    """Stop a server that ``.run()`` serves in another thread: its workers, its listening socket and
    the connections a browser keeps open, so that ``run`` returns at once."""
    server.task_dispatcher.shutdown()
    wasyncore.close_all(getattr(server, "_map", None) or getattr(server, "map", None))
