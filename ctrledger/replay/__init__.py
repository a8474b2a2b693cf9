"""Replaying the log: rebuilding read models (more in later issues)."""

from .rebuild import rebuild

__all__ = ["rebuild"]
