"""``ctrledger ui``: a local, read-only web view of a store, a shell over the public API.

Modules: ``timeline`` (one container's history as an SVG, shared with ``ctrledger timeline
--svg``; standard library only), ``app`` (the Flask application: pages, routes, the
translation of store errors into 4xx pages), ``serve`` (serving the application with
waitress). Only ``timeline`` may be imported without the ``ui`` extra installed; ``app`` and
``serve`` import Flask and waitress, which the command line loads only when ``ctrledger ui``
runs.

The view reads through ``ctrledger.Store``'s query methods (``list``/``scan``, ``get``,
``history``, ``diff``, ``audit``, ``position``, ``checkpoint``) and ``ctrledger.verify``;
it has no route that writes and runs no SQL of its own.
"""

from __future__ import annotations

__all__: list[str] = []
