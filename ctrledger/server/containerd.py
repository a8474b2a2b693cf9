"""containerd's services over the store: Containers, Namespaces, and the few calls ``ctr`` makes
around them (Tasks/Get, Snapshots/Remove, Leases, Version), plus Events.

Each handler reads the namespace from the ``containerd-namespace`` metadata (the first value;
missing or empty is passed on as such, so the store answers FAILED_PRECONDITION with
containerd's message), translates the request, calls the store once, and translates back.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf import empty_pb2

import ctrledger
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2 as cpb
from ctrledger.wire.containerd.services.events.v1 import events_pb2 as epb
from ctrledger.wire.containerd.services.leases.v1 import leases_pb2 as lepb
from ctrledger.wire.containerd.services.namespaces.v1 import namespace_pb2 as npb
from ctrledger.wire.containerd.services.snapshots.v1 import snapshots_pb2 as spb
from ctrledger.wire.containerd.services.tasks.v1 import tasks_pb2 as tpb
from ctrledger.wire.containerd.services.version.v1 import version_pb2 as vpb

from .events import EventHub
from .identity import UnixFront, caller_of
from .status import WireError
from .translate import EncodedRecords, container_from_wire

__all__ = ["FROM_POSITION", "ContainerdServices", "namespace_of"]

NAMESPACE = "containerd-namespace"
FROM_POSITION = "ctrledger-from-position"
VERSION = "1.6.20+ctrledger"
# ListStream takes this many records from the scan and encodes them before sending them: the
# server hands each message to gRPC and waits for it (thread hand-offs), after which building
# the next record costs more than in a loop (docs/benchmarks.md: 32 against 20 µs a message).
STREAM_PAGE = 200


# containerd takes events from its shims; ctrledger runs none, and every envelope its Events
# service sends comes from the log (with a position to resume from, and a recorded writer).
# One relayed from a client could not be told apart from those, nor resumed, nor audited.
_NOT_PUBLISHED = ("Events/{method} is not served: ctrledger's events are its log's, each recorded with its "
                  "position and writer, and a client's envelope could be neither recorded as a change nor told "
                  "apart from one (record a live containerd's events with ctrledger follow): unimplemented")
# Namespaces are not records of the ledger: one exists from its first container and stays listed.
_NO_NAMESPACE_RECORDS = ("{what}: ctrledger keeps no namespace records or labels (a namespace exists from its "
                         "first container and stays listed): unimplemented")


def namespace_of(context: grpc.ServicerContext) -> str | None:
    """The call's namespace header: its first value (containerd's rule), None when missing."""
    for key, value in context.invocation_metadata() or ():
        if key == NAMESPACE:
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return None


def _from_position(context: grpc.ServicerContext) -> int | None:
    for key, value in context.invocation_metadata() or ():
        if key == FROM_POSITION:
            text = value if isinstance(value, str) else value.decode("utf-8", "replace")
            if not text.isdigit():
                raise WireError(grpc.StatusCode.INVALID_ARGUMENT,
                                f"metadata {FROM_POSITION} must be a log position (a non-negative integer), "
                                f"not {text!r}: invalid argument")
            return int(text)
    return None


def _name_field(name: str) -> Callable[[tuple[str, ...]], str | None]:
    """A namespace's filterable fields: ``name`` only (namespace labels are not kept)."""
    return lambda path: name if path[:1] == ("name",) else None


class ContainerdServices:
    """The handlers, by service and method name (see ``ctrledger.server.app``)."""

    def __init__(self, store: ctrledger.Store, hub: EventHub, front: UnixFront | None) -> None:
        self.store = store
        self.hub = hub
        self.front = front
        self.encoded = EncodedRecords()

    # -- containers.v1.Containers ------------------------------------------------------

    # The responses that carry records are their encoding, made once per record version
    # (EncodedRecords): GetContainerResponse, Create/UpdateContainerResponse and
    # ListContainerMessage are the record as field 1; ListContainersResponse is them joined.

    def get(self, request: cpb.GetContainerRequest, context: grpc.ServicerContext) -> bytes:
        ns = namespace_of(context)
        found = self.store.get(request.id, namespace=ns)
        assert ns is not None  # the store refused a missing namespace
        return self.encoded.field1(ns, found)

    def list(self, request: cpb.ListContainersRequest, context: grpc.ServicerContext) -> bytes:
        ns = namespace_of(context)
        # Which versions the answer holds (two columns, no records built): when every one is
        # encoded already, that is the answer; else the records are read (and encoded once).
        keys = self.store.list_versions(*request.filters, namespace=ns)
        assert ns is not None
        kept = self.encoded.kept(ns, keys)
        if kept is not None:
            return kept
        return self.encoded.many(ns, self.store.list(*request.filters, namespace=ns))

    def list_stream(self, request: cpb.ListContainersRequest, context: grpc.ServicerContext) -> Iterator[bytes]:
        ns = namespace_of(context)
        rows = self.store.scan(*request.filters, namespace=ns)
        assert ns is not None
        try:
            while page := self.encoded.each(ns, itertools.islice(rows, STREAM_PAGE)):
                if not context.is_active():
                    return  # the client went away: stop reading
                yield from page
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()

    def create(self, request: cpb.CreateContainerRequest, context: grpc.ServicerContext) -> bytes:
        who = caller_of(context, self.front)
        ns = namespace_of(context)
        made = self.store.create(
            container_from_wire(request.container), namespace=ns, actor=who.actor,
            reason=who.reason, correlation_id=who.correlation_id, client=who.client,
        )
        self.hub.notify()
        assert ns is not None
        return self.encoded.field1(ns, made)

    def update(self, request: cpb.UpdateContainerRequest, context: grpc.ServicerContext) -> bytes:
        who = caller_of(context, self.front)
        ns = namespace_of(context)
        paths = list(request.update_mask.paths) if request.HasField("update_mask") else []
        done = self.store.update(
            container_from_wire(request.container), *paths, namespace=ns, actor=who.actor,
            reason=who.reason, correlation_id=who.correlation_id, client=who.client,
        )
        self.hub.notify()
        assert ns is not None
        return self.encoded.field1(ns, done)

    def delete(self, request: cpb.DeleteContainerRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        who = caller_of(context, self.front)
        self.store.delete(request.id, namespace=namespace_of(context), actor=who.actor, reason=who.reason,
                          correlation_id=who.correlation_id, client=who.client)
        self.hub.notify()
        return empty_pb2.Empty()

    # -- namespaces.v1.Namespaces --------------------------------------------------------

    def namespaces_list(
        self, request: npb.ListNamespacesRequest, context: grpc.ServicerContext,
    ) -> npb.ListNamespacesResponse:
        names = self.store.namespaces()
        if request.filter:
            matches = ctrledger.filter_matcher(request.filter)
            names = [n for n in names if matches(_name_field(n))]
        return npb.ListNamespacesResponse(namespaces=[npb.Namespace(name=n) for n in names])

    def namespaces_create(self, request: npb.CreateNamespaceRequest, context: grpc.ServicerContext) -> Any:
        raise WireError(grpc.StatusCode.UNIMPLEMENTED, _NO_NAMESPACE_RECORDS.format(
            what=f"cannot create namespace {json.dumps(request.namespace.name)}"))

    def namespaces_update(self, request: npb.UpdateNamespaceRequest, context: grpc.ServicerContext) -> Any:
        raise WireError(grpc.StatusCode.UNIMPLEMENTED, _NO_NAMESPACE_RECORDS.format(
            what=f"cannot update namespace {json.dumps(request.namespace.name)}"))

    def namespaces_delete(self, request: npb.DeleteNamespaceRequest, context: grpc.ServicerContext) -> Any:
        raise WireError(grpc.StatusCode.UNIMPLEMENTED, _NO_NAMESPACE_RECORDS.format(
            what=f"cannot delete namespace {json.dumps(request.name)}"))

    def namespaces_get(
        self, request: npb.GetNamespaceRequest, context: grpc.ServicerContext,
    ) -> npb.GetNamespaceResponse:
        if request.name not in self.store.namespaces():
            raise WireError(grpc.StatusCode.NOT_FOUND, f"namespace {json.dumps(request.name)}: not found")
        return npb.GetNamespaceResponse(namespace=npb.Namespace(name=request.name))

    # -- what ctr calls around containers --------------------------------------------------

    def tasks_get(self, request: tpb.GetRequest, context: grpc.ServicerContext) -> tpb.GetResponse:
        raise WireError(grpc.StatusCode.NOT_FOUND,
                        f"container {request.container_id} has no task here (ctrledger keeps metadata only): "
                        "not found")

    def tasks_list(self, request: tpb.ListTasksRequest, context: grpc.ServicerContext) -> tpb.ListTasksResponse:
        return tpb.ListTasksResponse()

    def snapshots_remove(self, request: spb.RemoveSnapshotRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        raise WireError(grpc.StatusCode.NOT_FOUND,
                        f"snapshot {request.key} does not exist (ctrledger keeps no snapshots): not found")

    def leases_create(self, request: lepb.CreateRequest, context: grpc.ServicerContext) -> lepb.CreateResponse:
        lease = lepb.Lease(id=request.id)
        lease.created_at.GetCurrentTime()
        lease.labels.update(request.labels)
        return lepb.CreateResponse(lease=lease)  # no-op: ctrledger keeps no resources a lease could hold

    def leases_delete(self, request: lepb.DeleteRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        return empty_pb2.Empty()

    def version(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> vpb.VersionResponse:
        return vpb.VersionResponse(version=VERSION, revision=f"ctrledger {ctrledger.__version__}")

    # -- events.v1.Events ---------------------------------------------------------------------

    def subscribe(self, request: epb.SubscribeRequest, context: grpc.ServicerContext) -> Iterator[epb.Envelope]:
        after = _from_position(context)
        for item in self.hub.subscribe(list(request.filters), after, context.is_active, context.cancel):
            context.set_trailing_metadata(((FROM_POSITION, str(item.position)),))
            yield item.envelope

    def publish(self, request: epb.PublishRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        raise WireError(grpc.StatusCode.UNIMPLEMENTED, _NOT_PUBLISHED.format(method="Publish"))

    def forward(self, request: epb.ForwardRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        raise WireError(grpc.StatusCode.UNIMPLEMENTED, _NOT_PUBLISHED.format(method="Forward"))

    def handlers(self) -> dict[str, dict[str, Any]]:
        """Method handlers by full service name; what is not listed answers UNIMPLEMENTED."""
        return {
            "containerd.services.containers.v1.Containers": {
                "Get": self.get, "List": self.list, "ListStream": self.list_stream, "Create": self.create,
                "Update": self.update, "Delete": self.delete,
            },
            "containerd.services.namespaces.v1.Namespaces": {
                "List": self.namespaces_list, "Get": self.namespaces_get, "Create": self.namespaces_create,
                "Update": self.namespaces_update, "Delete": self.namespaces_delete,
            },
            "containerd.services.tasks.v1.Tasks": {"Get": self.tasks_get, "List": self.tasks_list},
            "containerd.services.snapshots.v1.Snapshots": {"Remove": self.snapshots_remove},
            "containerd.services.leases.v1.Leases": {"Create": self.leases_create, "Delete": self.leases_delete},
            "containerd.services.version.v1.Version": {"Version": self.version},
            "containerd.services.events.v1.Events": {
                "Subscribe": self.subscribe, "Publish": self.publish, "Forward": self.forward,
            },
        }
