"""What a ``postgresql://`` target names: parsed without importing a PostgreSQL driver.

Kept apart from ``postgres.py`` so that opening an SQLite store (or ``ctrledger --version``)
never pays for importing psycopg.
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["default_readmodel_path", "is_postgres_url", "parse_url"]


def is_postgres_url(text: str) -> bool:
    """Whether ``text`` names a PostgreSQL log rather than an SQLite file."""
    return text.startswith(("postgresql://", "postgres://"))


def parse_url(url: str) -> tuple[dict[str, str], dict[str, str]]:
    """eventsourcing settings for a ``postgresql://user:password@host:port/dbname?schema=...`` URL.

    Returns (settings, options): options are the query parameters ctrledger itself reads
    (``schema``, ``readmodel``).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    dbname = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not dbname:
        raise ValueError(f"a PostgreSQL URL names a host and a database: postgresql://user@host:port/dbname, "
                         f"not {url!r}")
    settings = {
        "PERSISTENCE_MODULE": "ctrledger.persistence.postgres:LedgerPostgresFactory",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_SCHEMA": options.get("schema", "public"),
        "POSTGRES_CONNECT_TIMEOUT": options.get("connect_timeout", "5"),
        "POSTGRES_LOCK_TIMEOUT": options.get("lock_timeout", "30"),
        "POSTGRES_POOL_SIZE": options.get("pool_size", "4"),
    }
    return settings, options


def default_readmodel_path(settings: dict[str, str]) -> str:
    """Where a node keeps its read models by default: one file per log, under the user's data dir."""
    import os
    import re
    from pathlib import Path

    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "ctrledger"
    name = "_".join(
        settings[k] for k in ("POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DBNAME", "POSTGRES_SCHEMA")
    )
    return str(base / (re.sub(r"[^A-Za-z0-9._-]", "_", name) + ".db"))
