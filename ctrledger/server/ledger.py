"""``ctrledger.v1.Ledger``: the store's history, time travel and tamper evidence on the wire.

See ``ctrledger/wire/ctrledger/v1/ledger.proto`` for the contract; each method is one store
call, translated.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import grpc

import ctrledger
from ctrledger.wire.ctrledger.v1 import ledger_pb2 as lpb

from .containerd import ContainerdServices, namespace_of
from .status import WireError
from .translate import container_to_wire, field_change_to_wire, point_from_wire, time_from_wire, timestamp

__all__ = ["LedgerService"]


def _point(msg: Any, name: str) -> Any:
    return point_from_wire(getattr(msg, name)) if msg.HasField(name) else None


def _checkpoint_to_wire(cp: ctrledger.Checkpoint) -> lpb.Checkpoint:
    return lpb.Checkpoint(log_id=cp.log_id, size=cp.size, position=cp.position, root=cp.root, chain=cp.chain,
                          frontier=list(cp.frontier), created_at=timestamp(cp.created_at), key_id=cp.key_id,
                          signature=cp.signature)


def _checkpoint_from_wire(cp: lpb.Checkpoint) -> ctrledger.Checkpoint:
    d = {"log_id": cp.log_id, "size": cp.size, "position": cp.position, "root": cp.root, "chain": cp.chain,
         "frontier": list(cp.frontier), "created_at": time_from_wire(cp.created_at).isoformat(),
         "key_id": cp.key_id, "signature": cp.signature}
    try:
        return ctrledger.Checkpoint.from_dict(d)
    except ValueError as e:
        raise WireError(grpc.StatusCode.INVALID_ARGUMENT, f"checkpoint: {e}: invalid argument") from None


class LedgerService:
    """The handlers of ``ctrledger.v1.Ledger``."""

    def __init__(self, containerd: ContainerdServices) -> None:
        self.containerd = containerd
        self.store = containerd.store

    def get(self, request: lpb.GetRequest, context: grpc.ServicerContext) -> lpb.GetResponse:
        found = self.store.get(request.id, namespace=namespace_of(context), as_of=_point(request, "as_of"))
        return lpb.GetResponse(container=container_to_wire(found), version=found.version)

    def list(self, request: lpb.ListRequest, context: grpc.ServicerContext) -> Iterator[lpb.ListMessage]:
        rows = self.store.scan(*request.filters, namespace=namespace_of(context), as_of=_point(request, "as_of"))
        for c in rows:
            if not context.is_active():
                return
            yield lpb.ListMessage(container=container_to_wire(c), version=c.version)

    def history(self, request: lpb.HistoryRequest, context: grpc.ServicerContext) -> Iterator[lpb.HistoryEntry]:
        for h in self.store.history(request.id, namespace=namespace_of(context)):
            yield lpb.HistoryEntry(
                namespace=h.namespace, id=h.id, version=h.version, incarnation=h.incarnation, position=h.position,
                kind=h.kind, recorded_at=timestamp(h.recorded_at), actor=h.actor, reason=h.reason,
                correlation_id=h.correlation_id, fieldpaths=list(h.fieldpaths), client=h.client,
                changes=[field_change_to_wire(c) for c in h.changes],
            )

    def diff(self, request: lpb.DiffRequest, context: grpc.ServicerContext) -> lpb.DiffResponse:
        since = _point(request, "since")
        if since is None:
            raise WireError(grpc.StatusCode.INVALID_ARGUMENT, "diff needs since: invalid argument")
        d = self.store.diff(request.id, namespace=namespace_of(context), since=since, until=_point(request, "until"))
        out = lpb.DiffResponse(namespace=d.namespace, id=d.id, status=d.status,
                               changes=[field_change_to_wire(c) for c in d.changes])
        if d.before is not None:
            out.before.CopyFrom(container_to_wire(d.before))
        if d.after is not None:
            out.after.CopyFrom(container_to_wire(d.after))
        return out

    def changes(self, request: lpb.ChangesRequest, context: grpc.ServicerContext) -> Iterator[lpb.Change]:
        since = _point(request, "since")
        if since is None:
            raise WireError(grpc.StatusCode.INVALID_ARGUMENT, "changes needs since: invalid argument")
        for ch in self.store.changes(namespace=namespace_of(context), since=since, until=_point(request, "until"),
                                     filters=list(request.filters)):
            out = lpb.Change(namespace=ch.namespace, id=ch.id, status=ch.status,
                             changes=[field_change_to_wire(c) for c in ch.changes])
            if ch.before is not None:
                out.before.CopyFrom(container_to_wire(ch.before))
            if ch.after is not None:
                out.after.CopyFrom(container_to_wire(ch.after))
            yield out

    def audit(self, request: lpb.AuditRequest, context: grpc.ServicerContext) -> Iterator[lpb.AuditRecord]:
        def when(name: str) -> datetime | None:
            return time_from_wire(getattr(request, name)) if request.HasField(name) else None

        rows = self.store.audit(
            actor=list(request.actors) or None, since=when("since"), until=when("until"),
            kinds=list(request.kinds) or None, namespace=request.namespace or None, id=request.id or None,
            correlation_id=request.correlation_id or None, client=request.client or None,
            reason=request.reason or None,
        )
        for a in rows:
            if not context.is_active():
                return
            yield lpb.AuditRecord(
                position=a.position, recorded_at=timestamp(a.recorded_at), namespace=a.namespace, id=a.id,
                version=a.version, kind=a.kind, actor=a.actor, reason=a.reason, correlation_id=a.correlation_id,
                fieldpaths=list(a.fieldpaths), client=a.client,
            )

    def watch(self, request: lpb.WatchRequest, context: grpc.ServicerContext) -> Iterator[lpb.WatchEvent]:
        after = request.after if request.HasField("after") else None
        for item in self.containerd.hub.subscribe(list(request.filters), after, context.is_active,
                                                 context.cancel):
            yield lpb.WatchEvent(position=item.position, envelope=item.envelope, kind=",".join(item.kinds),
                                 actor=item.actor, client=item.client, reason=item.reason,
                                 correlation_id=item.correlation_id)

    def checkpoint(self, request: lpb.CheckpointRequest, context: grpc.ServicerContext) -> lpb.Checkpoint:
        return _checkpoint_to_wire(self.store.checkpoint())

    def verify(self, request: lpb.VerifyRequest, context: grpc.ServicerContext) -> lpb.VerifyResponse:
        cp = _checkpoint_from_wire(request.checkpoint) if request.HasField("checkpoint") else None
        report = ctrledger.verify(self.store, cp)
        return lpb.VerifyResponse(ok=report.ok, first=report.first, last=report.last, root=report.root,
                                  problems=[lpb.Problem(position=p.position, kind=p.kind, detail=p.detail)
                                            for p in report.problems])

    def prove(self, request: lpb.ProveRequest, context: grpc.ServicerContext) -> lpb.InclusionProof:
        cp = _checkpoint_from_wire(request.checkpoint) if request.HasField("checkpoint") else None
        proof = self.store.prove(request.position, checkpoint=cp)
        return lpb.InclusionProof(position=proof.position, index=proof.index, size=proof.size, leaf=proof.leaf,
                                  path=list(proof.path), root=proof.root)

    def handlers(self) -> dict[str, dict[str, Any]]:
        return {"ctrledger.v1.Ledger": {
            "Get": self.get, "List": self.list, "History": self.history, "Diff": self.diff,
            "Changes": self.changes, "Audit": self.audit, "Watch": self.watch, "Checkpoint": self.checkpoint,
            "Verify": self.verify, "Prove": self.prove,
        }}
