"""ctrledger: an event-sourced, containerd-compatible metadata store for containers.

The public API is what ``__all__`` lists; everything else is private and may change.
"""

from typing import TYPE_CHECKING, Any

from .errors import (
    AlreadyExists,
    Conflict,
    DataLoss,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    StoreError,
    Unavailable,
)

if TYPE_CHECKING:
    from .domain.filters import filter_matcher
    from .domain.history import AuditRecord, Change, Diff, FieldChange, HistoryEntry, LogEvent, Position, Version
    from .domain.model import Container, Payload, Resources, Runtime, Status
    from .persistence.integrity import Checkpoint, ConsistencyProof, InclusionProof, Problem, VerifyReport
    from .replay import ArchiveError, ExportSummary, ImportSummary, VerifyResult
    from .store import Store, import_, migrate, open, verify

# Imported on first use (PEP 562), so that ``import ctrledger`` (and ``ctrledger --version``)
# does not pay for the store, its storage libraries and replay until something needs them.
_LAZY = {
    **dict.fromkeys(("AuditRecord", "Change", "Diff", "FieldChange", "HistoryEntry", "LogEvent", "Position",
                     "Version"), "domain.history"),
    "filter_matcher": "domain.filters",
    **dict.fromkeys(("Container", "Payload", "Resources", "Runtime", "Status"), "domain.model"),
    **dict.fromkeys(("Checkpoint", "ConsistencyProof", "InclusionProof", "Problem", "VerifyReport"),
                    "persistence.integrity"),
    **dict.fromkeys(("ArchiveError", "ExportSummary", "ImportSummary", "VerifyResult"), "replay"),
    **dict.fromkeys(("Store", "import_", "migrate", "open", "verify"), "store"),
}
_SUBMODULES = ("cli", "domain", "errors", "persistence", "projections", "replay", "store")


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "ArchiveError",
    "AuditRecord",
    "Change",
    "Checkpoint",
    "Conflict",
    "ConsistencyProof",
    "Container",
    "DataLoss",
    "Diff",
    "ExportSummary",
    "FailedPrecondition",
    "FieldChange",
    "HistoryEntry",
    "ImportSummary",
    "InclusionProof",
    "InvalidArgument",
    "LogEvent",
    "NotFound",
    "Payload",
    "Position",
    "Problem",
    "Resources",
    "Runtime",
    "Status",
    "Store",
    "StoreError",
    "Unavailable",
    "VerifyReport",
    "VerifyResult",
    "Version",
    "filter_matcher",
    "import_",
    "migrate",
    "open",
    "verify",
]
