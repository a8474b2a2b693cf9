"""Replaying the log: rebuild, digest and verification, export/import, replay to a point.

===========================================  ==============================================
function                                     what it does
===========================================  ==============================================
``rebuild(store, progress=None) -> int``     rebuild every read model into fresh tables,
                                             check, swap in atomically; resumable
``digest(store) -> str``                     canonical SHA-256 of the read models
``verify_projections(store) -> VerifyResult``  rebuild into a scratch file, compare digests
``export(store, path, since, until,          write the log (or part) to a portable archive
namespaces) -> ExportSummary``
``import_(path, into=store) -> ImportSummary``  load an archive; constant memory, resumable,
                                             exactly once, refuses corrupt archives
``replay_to(store, path, as_of=...) -> Path``  a new SQLite file: the store as of a point
===========================================  ==============================================

Errors: ``ArchiveError`` (an ``InvalidArgument`` carrying the byte ``offset``) for an
archive that is corrupt, truncated or of an unknown format; ``FailedPrecondition`` when
a store cannot take an archive (positions or streams do not continue);
``InvalidArgument`` for bad bounds; ``AlreadyExists`` when ``replay_to``'s file exists.
"""

from .archive import ArchiveError, ArchiveReader, verify_archive
from .digest import VerifyResult, digest, verify_projections
from .exchange import ExportSummary, ImportSummary, export, import_
from .pointintime import replay_to
from .progress import TerminalProgress, terminal_progress
from .rebuild import Replayable, pending_rebuild, rebuild

__all__ = [
    "ArchiveError",
    "ArchiveReader",
    "ExportSummary",
    "ImportSummary",
    "Replayable",
    "TerminalProgress",
    "VerifyResult",
    "digest",
    "export",
    "import_",
    "pending_rebuild",
    "rebuild",
    "replay_to",
    "terminal_progress",
    "verify_archive",
    "verify_projections",
]
