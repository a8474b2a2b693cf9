"""The public API is a decision: this list changes only on purpose."""

from __future__ import annotations

import ctrledger


def test_exports_are_pinned() -> None:
    assert sorted(ctrledger.__all__) == [
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
    for name in ctrledger.__all__:
        assert getattr(ctrledger, name) is not None


def test_error_codes_are_grpc_code_names() -> None:
    assert {cls.__name__: cls.code for cls in ctrledger.StoreError.__subclasses__()} == {
        "NotFound": "NOT_FOUND",
        "AlreadyExists": "ALREADY_EXISTS",
        "InvalidArgument": "INVALID_ARGUMENT",
        "FailedPrecondition": "FAILED_PRECONDITION",
        "Conflict": "ABORTED",
        "Unavailable": "UNAVAILABLE",
        "DataLoss": "DATA_LOSS",
    }
