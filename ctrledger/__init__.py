"""ctrledger: an event-sourced, containerd-compatible metadata store for containers.

The public API is what ``__all__`` lists; everything else is private and may change.
"""

from .domain.history import AuditRecord, Change, Diff, FieldChange, HistoryEntry, Position, Version
from .domain.model import Container, Payload, Resources, Runtime, Status
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
from .persistence.integrity import Checkpoint, ConsistencyProof, InclusionProof, Problem, VerifyReport
from .replay import ArchiveError, ExportSummary, ImportSummary, VerifyResult
from .store import Store, import_, migrate, open, verify

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
    "import_",
    "migrate",
    "open",
    "verify",
]
