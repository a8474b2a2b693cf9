"""The errors ctrledger raises: one root, a handful of categories.

::

    StoreError                  root of everything the store raises on purpose
    ├── NotFound                code NOT_FOUND          the container (or namespace) is not there
    ├── AlreadyExists           code ALREADY_EXISTS     create of an ID that is live
    ├── InvalidArgument         code INVALID_ARGUMENT   bad ID, labels, fields, paths or filters
    ├── FailedPrecondition      code FAILED_PRECONDITION no namespace given
    ├── Conflict                code ABORTED            ``expected_version`` is stale
    ├── Unavailable             code UNAVAILABLE        storage unreachable; nothing was written
    └── DataLoss                code DATA_LOSS          a stored event is damaged (named by its position)

Each category carries ``.code``, the gRPC status code name a containerd client
would see for it (``Conflict`` has no containerd counterpart; ``ABORTED`` is the
gRPC code for a lost read-modify-write race). The message is the whole text,
written from containerd's templates where containerd has one.

Errors are raised with their context where the problem is found and are never
translated again except at a boundary (the CLI turns them into ``Error: …``).
This module imports nothing from the rest of the package.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "Conflict",
    "DataLoss",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "StoreError",
    "Unavailable",
]


class StoreError(Exception):
    """Root of every error ctrledger raises on purpose."""

    code: str = "UNKNOWN"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class NotFound(StoreError):
    """The container, or the namespace it was looked for in, does not exist."""

    code = "NOT_FOUND"


class AlreadyExists(StoreError):
    """A create named an ID that is live in the namespace."""

    code = "ALREADY_EXISTS"


class InvalidArgument(StoreError):
    """The request itself is wrong: an ID, a label, a field path, a filter."""

    code = "INVALID_ARGUMENT"


class FailedPrecondition(StoreError):
    """The call cannot run in this state, e.g. no namespace was given."""

    code = "FAILED_PRECONDITION"


class Conflict(StoreError):
    """``expected_version`` did not match the container's current version."""

    code = "ABORTED"


class Unavailable(StoreError):
    """The storage could not be reached or kept losing races; the write did not happen."""

    code = "UNAVAILABLE"


class DataLoss(StoreError):
    """A stored event is damaged: it cannot be decoded or applied. The message names it (its
    stream, version and log position); ``ctrledger verify`` says what changed. Reads that do
    not need that event keep working."""

    code = "DATA_LOSS"
