"""Helpers for the tests of ``ctrledger serve``: an in-process server on a short unix socket,
the real ``ctr``, and a Python gRPC client of the store's shape (for the contract tables)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

import ctrledger
from ctrledger import Container
from ctrledger.domain.gostrings import go_quote
from ctrledger.domain.validation import validate_namespace
from ctrledger.server import Server
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2 as cpb
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2_grpc as cgrpc
from ctrledger.wire.ctrledger.v1 import ledger_pb2 as lpb
from ctrledger.wire.ctrledger.v1 import ledger_pb2_grpc as lgrpc

from .conftest import missing_component

CTR = "/usr/bin/ctr"
ERRORS = {
    grpc.StatusCode.NOT_FOUND: ctrledger.NotFound,
    grpc.StatusCode.ALREADY_EXISTS: ctrledger.AlreadyExists,
    grpc.StatusCode.INVALID_ARGUMENT: ctrledger.InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: ctrledger.FailedPrecondition,
    grpc.StatusCode.ABORTED: ctrledger.Conflict,
    grpc.StatusCode.UNAVAILABLE: ctrledger.Unavailable,
}


def short_dir() -> str:
    """A directory with a short path: a unix socket path must fit in 108 bytes."""
    return tempfile.mkdtemp(prefix="cls-", dir="/tmp")


@contextlib.contextmanager
def served(store: ctrledger.Store, **options: Any) -> Iterator[Server]:
    d = short_dir()
    try:
        with Server(store, address=f"unix://{d}/ctrledger.sock", **options) as server:
            yield server
    finally:
        shutil.rmtree(d, ignore_errors=True)


def ctr_binary() -> str:
    found = CTR if os.access(CTR, os.X_OK) else shutil.which("ctr")
    if not found:
        missing_component("containerd's ctr (apt-get install containerd)")
    assert found is not None
    return found


def ctr(server: Server, *args: str, namespace: str = "default", check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([ctr_binary(), "-a", str(server.path), "-n", namespace, *args],
                            capture_output=True, text=True, timeout=30)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def channel(server: Server) -> grpc.Channel:
    return grpc.insecure_channel(f"unix:{server.path}")


def metadata(namespace: str | None, **headers: str) -> tuple[tuple[str, str], ...]:
    md = [] if namespace is None else [("containerd-namespace", namespace)]
    md += [(k.replace("_", "-"), v) for k, v in headers.items()]
    return tuple(md)


def _to_wire(c: Container) -> cpb.Container:
    from ctrledger.server.translate import container_to_wire

    return container_to_wire(c)


class FreshNamespaces:
    """One test's own namespaces on a server that outlives the test.

    Every valid namespace the test names goes on the wire as ``<prefix><name>``, a name no
    other test uses, so each test starts with namespaces that never held anything (the store's
    NOT_FOUND wordings depend on that). Names that are not valid namespaces, or too long to
    prefix, go out unchanged (the rows that send them are about that very name). Error
    messages come back with the test's own names: ``"<prefix><name>"`` becomes ``"<name>"``.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._sent: dict[str, str] = {}

    def to_wire(self, namespace: Any) -> Any:
        if not isinstance(namespace, str):
            return namespace
        mapped = self.prefix + namespace
        try:
            validate_namespace(namespace)
            validate_namespace(mapped)
        except ctrledger.StoreError:
            return namespace
        self._sent[mapped] = namespace
        return mapped

    def back(self, text: str) -> str:
        for mapped, namespace in self._sent.items():
            text = text.replace(go_quote(mapped), go_quote(namespace))
        return text


class WireStore:
    """The store's create/get/list/update/delete, called through containerd's Containers service.

    A gRPC error comes back as the StoreError category of its code with its message, so the
    contract tables' assertions (category, code, exact text) hold for the wire unchanged.
    ``namespaces``: a test's own namespaces on a shared server (:class:`FreshNamespaces`).
    """

    def __init__(self, server: Server, namespaces: FreshNamespaces | None = None) -> None:
        self._channel = channel(server)
        self._stub = cgrpc.ContainersStub(self._channel)
        self._ledger = lgrpc.LedgerStub(self._channel)
        self._namespaces = namespaces
        self.store = server.store

    def _ns(self, namespace: Any) -> Any:
        return self._namespaces.to_wire(namespace) if self._namespaces is not None else namespace

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: str, request: Any, namespace: Any, actor: str | None = None,
              reason: str | None = None) -> Any:
        headers = {k: v for k, v in (("ctrledger_on_behalf_of", actor), ("ctrledger_reason", reason)) if v}
        try:
            return getattr(self._stub, method)(request, metadata=metadata(self._ns(namespace), **headers))
        except grpc.RpcError as e:
            cls = ERRORS.get(e.code())
            details = e.details() or ""
            if cls is None:
                raise AssertionError(f"unexpected status {e.code()}: {details}") from None
            raise cls(self._namespaces.back(details) if self._namespaces is not None else details) from None

    def _back(self, c: cpb.Container, namespace: Any) -> Container:
        """A wire record as the store's; ``version`` (not in containerd's Container) read through
        ctrledger.v1 Ledger/History: the last event recorded at the record's update time."""
        from ctrledger.server.translate import container_from_wire, time_from_wire

        got = container_from_wire(c)
        history = self._ledger.History(lpb.HistoryRequest(id=c.id), metadata=metadata(self._ns(namespace)))
        stamp = (c.updated_at.seconds, c.updated_at.nanos)
        version = max(h.version for h in history if (h.recorded_at.seconds, h.recorded_at.nanos) <= stamp)
        return Container(**{**got.__dict__, "created_at": time_from_wire(c.created_at),
                            "updated_at": time_from_wire(c.updated_at), "version": version})

    def create(self, container: Container, *, namespace: Any = "default", actor: str | None = None,
               reason: str | None = None) -> Container:
        r = self._call("Create", cpb.CreateContainerRequest(container=_to_wire(container)), namespace, actor, reason)
        return self._back(r.container, namespace)

    def get(self, id: str, *, namespace: Any = "default") -> Container:  # noqa: A002
        return self._back(self._call("Get", cpb.GetContainerRequest(id=id), namespace).container, namespace)

    def list(self, *filters: str, namespace: Any = "default") -> list[Container]:
        r = self._call("List", cpb.ListContainersRequest(filters=list(filters)), namespace)
        return [self._back(c, namespace) for c in r.containers]

    def list_versions(self, *filters: str, namespace: Any = "default") -> list[tuple[str, int]]:
        """The store's ``list_versions`` has no RPC of its own: what List answers, as (id, version)."""
        return [(c.id, c.version) for c in self.list(*filters, namespace=namespace)]

    def update(self, container: Container, *fieldpaths: str, namespace: Any = "default", actor: str | None = None,
               reason: str | None = None) -> Container:
        request = cpb.UpdateContainerRequest(container=_to_wire(container))
        if fieldpaths:
            request.update_mask.CopyFrom(field_mask_pb2.FieldMask(paths=list(fieldpaths)))
        return self._back(self._call("Update", request, namespace, actor, reason).container, namespace)

    def delete(self, id: str, *, namespace: Any = "default", actor: str | None = None,  # noqa: A002
               reason: str | None = None) -> None:
        self._call("Delete", cpb.DeleteContainerRequest(id=id), namespace, actor, reason)


def wait_for_socket(path: Path, timeout: float = 15.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear in {timeout} s")
