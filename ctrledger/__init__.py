"""ctrledger: an event-sourced, containerd-compatible metadata store for containers.

The public API is what ``__all__`` lists; everything else is private and may change.
"""

from .domain.history import AuditRecord, Change, Diff, FieldChange, HistoryEntry, Position, Version
from .domain.model import Container, Payload, Runtime
from .errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    StoreError,
    Unavailable,
)
from .store import Store, open

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "AuditRecord",
    "Change",
    "Conflict",
    "Container",
    "Diff",
    "FieldChange",
    "HistoryEntry",
    "Position",
    "Version",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "Payload",
    "Runtime",
    "Store",
    "StoreError",
    "Unavailable",
    "open",
]
