"""The container record and its value objects: the whole contract in one place.

=================  ==========================  ========  ==========================================
field              type                        required  mutable through ``Store.update``
=================  ==========================  ========  ==========================================
``id``             str                         yes       never (it selects the container)
``labels``         dict[str, str]              no        ``labels``, ``labels.<key>``
``image``          str                         no        ``image``
``runtime``        Runtime(name, options)      yes       never (a full replace must repeat the name)
``spec``           Payload                     yes       ``spec``
``snapshotter``    str                         no        never (a full replace must repeat it)
``snapshot_key``   str                         no        ``snapshotkey`` (needs a snapshotter)
``extensions``     dict[str, Payload]          no        ``extensions``, ``extensions.<key>``
``sandbox``        str                         no        never (kept on a full replace)
``created_at``     datetime (UTC)              server    never
``updated_at``     datetime (UTC)              server    moved by every successful update
``version``        int                         server    the container's stream version
``status``         Status                      server    only through the status lifecycle
                                                         (``started``, ``exited``, ``paused``,
                                                         ``resumed``, ``update_resources``)
=================  ==========================  ========  ==========================================

Labels with an empty value are never stored. Timestamps and a status sent by a client are ignored.

``Status`` is the run-time side that containerd's CRI keeps beside the metadata
(``pkg/cri/store/container``): pid, times, exit code, reason, message, resources, and a
``state`` derived from them exactly as CRI's ``Status.State()`` derives it
(:func:`derive_state`). ``Resources`` is CRI's ``LinuxContainerResources``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from ..errors import InvalidArgument

__all__ = [
    "Audit",
    "Container",
    "Payload",
    "RESOURCE_FIELDS",
    "Resources",
    "Runtime",
    "STATES",
    "Status",
    "derive_state",
]

#: CRI's ``ContainerState`` names, without the ``CONTAINER_`` prefix.
STATES: Final = ("CREATED", "RUNNING", "EXITED", "UNKNOWN")

_INT64: Final = (-(1 << 63), (1 << 63) - 1)
_UINT64: Final = (0, (1 << 64) - 1)


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _check_int(owner: str, name: str, value: object, lo: int, hi: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"{owner}.{name} must be an integer, not {type(value).__name__}: invalid argument")
    if not lo <= value <= hi:
        raise InvalidArgument(f"{owner}.{name} {value} is out of range [{lo}, {hi}]: invalid argument")


@dataclass(frozen=True)
class Payload:
    """An opaque typed value, as protobuf's ``Any``: a type URL and bytes."""

    type_url: str = ""
    value: bytes = b""

    @classmethod
    def trusted(cls, type_url: str, value: bytes) -> Payload:
        """A Payload from values already checked (the store's own reads): no validation."""
        obj = object.__new__(cls)
        object.__setattr__(obj, "__dict__", {"type_url": type_url, "value": value})
        return obj

    def __post_init__(self) -> None:
        if not isinstance(self.type_url, str):
            raise TypeError(f"Payload.type_url must be str, not {type(self.type_url).__name__}")
        if not isinstance(self.value, (bytes, bytearray, memoryview)):
            raise TypeError(f"Payload.value must be bytes, not {type(self.value).__name__}")
        if not isinstance(self.value, bytes):
            object.__setattr__(self, "value", bytes(self.value))


@dataclass(frozen=True)
class Runtime:
    """The runtime that runs the container: a name and optional options."""

    name: str = ""
    options: Payload | None = None


@dataclass(frozen=True)
class Resources:
    """CRI's ``LinuxContainerResources``: what ``UpdateContainerResources`` sets.

    Zero (``0``, ``""``, empty) means "not set", as in CRI. Integers are int64 (the
    kernel's ``oom_score_adj`` range is -1000..1000); ``hugepage_limits`` is a sequence of
    ``(page_size, limit)`` pairs (``"2MB"``, a uint64 byte count); ``unified`` holds cgroup v2
    ``key: value`` settings, as a read-only mapping (a record's resources never change under
    it: the records that share them stay as they were). Bad values are ``InvalidArgument``.
    """

    cpu_period: int = 0
    cpu_quota: int = 0
    cpu_shares: int = 0
    memory_limit_in_bytes: int = 0
    oom_score_adj: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    hugepage_limits: tuple[tuple[str, int], ...] = ()
    unified: Mapping[str, str] = field(default_factory=dict)
    memory_swap_limit_in_bytes: int = 0

    def __post_init__(self) -> None:
        for name in ("cpu_period", "cpu_quota", "cpu_shares", "memory_limit_in_bytes",
                     "memory_swap_limit_in_bytes"):
            _check_int("Resources", name, getattr(self, name), *_INT64)
        _check_int("Resources", "oom_score_adj", self.oom_score_adj, -1000, 1000)
        for name in ("cpuset_cpus", "cpuset_mems"):
            if not isinstance(getattr(self, name), str):
                raise InvalidArgument(
                    f"Resources.{name} must be a string, not {type(getattr(self, name)).__name__}: invalid argument"
                )
        pairs = []
        if isinstance(self.hugepage_limits, (str, bytes)) or not isinstance(self.hugepage_limits, (list, tuple)):
            raise InvalidArgument("Resources.hugepage_limits must be a sequence of (page_size, limit) pairs: "
                                  "invalid argument")
        for item in self.hugepage_limits:
            if not isinstance(item, (list, tuple)) or len(item) != 2 or not isinstance(item[0], str) \
                    or not item[0]:
                raise InvalidArgument(
                    f"Resources.hugepage_limits: {item!r} is not a (page_size, limit) pair: invalid argument"
                )
            _check_int("Resources", f"hugepage_limits[{item[0]!r}]", item[1], *_UINT64)
            pairs.append((item[0], item[1]))
        object.__setattr__(self, "hugepage_limits", tuple(pairs))
        if not isinstance(self.unified, Mapping):
            raise InvalidArgument(
                f"Resources.unified must be a mapping, not {type(self.unified).__name__}: invalid argument"
            )
        for key, value in self.unified.items():
            if not isinstance(key, str) or not key or not isinstance(value, str):
                raise InvalidArgument(
                    f"Resources.unified: {key!r}: {value!r} is not a non-empty string key with a string value: "
                    "invalid argument"
                )
        object.__setattr__(self, "unified", MappingProxyType(dict(self.unified)))

    __hash__ = None  # type: ignore[assignment]  # holds a mapping: not hashable

    # Immutable all through: a copy is the same object, and a pickle rebuilds it from its values.
    def __copy__(self) -> Resources:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Resources:
        return self

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Resources, tuple(dict(v) if isinstance(v, Mapping) else v
                                 for v in (getattr(self, name) for name in RESOURCE_FIELDS)))

    def to_dict(self) -> dict[str, Any]:
        """This record as JSON types only."""
        return {
            name: ([list(p) for p in self.hugepage_limits] if name == "hugepage_limits" else
                   dict(self.unified) if name == "unified" else getattr(self, name))
            for name in RESOURCE_FIELDS
        }


RESOURCE_FIELDS: Final = tuple(Resources.__dataclass_fields__)
NO_RESOURCES: Final = Resources()  # immutable: every status without resources shares it


def derive_state(
    created_at: datetime | None, started_at: datetime | None, finished_at: datetime | None,
    unknown: bool = False,
) -> str:
    """CRI's ``Status.State()``, exactly: unknown -> UNKNOWN; else finished -> EXITED; else
    started -> RUNNING; else created -> CREATED; else UNKNOWN.

    ctrledger never records CRI's in-memory ``Unknown`` flag, so ``unknown`` is only ever
    passed by a caller that has its own reason.
    """
    if unknown:
        return "UNKNOWN"
    if finished_at is not None:
        return "EXITED"
    if started_at is not None:
        return "RUNNING"
    if created_at is not None:
        return "CREATED"
    return "UNKNOWN"


@dataclass(frozen=True)
class Status:
    """A container's run-time status, as CRI's container store keeps it.

    ``state`` is derived (:func:`derive_state`), never given. ``pid`` is 0 when no process
    runs; ``exit_code``, ``reason`` and ``message`` describe the last exit while ``EXITED``
    (a start clears them: a new run). ``paused`` is set while a running container is
    paused (its state stays ``RUNNING``, as in CRI). ``runs`` counts the starts of this
    incarnation of the name.
    """

    state: str = field(init=False)
    pid: int = 0
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    paused: bool = False
    resources: Resources = field(default_factory=lambda: NO_RESOURCES)
    runs: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", derive_state(self.created_at, self.started_at, self.finished_at))

    __hash__ = None  # type: ignore[assignment]  # holds Resources: not hashable

    def to_dict(self) -> dict[str, Any]:
        """This record as JSON types only (times as ISO-8601 UTC with a ``Z``)."""
        return {
            "state": self.state, "pid": self.pid, "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at),
            "exit_code": self.exit_code, "reason": self.reason, "message": self.message,
            "paused": self.paused, "resources": self.resources.to_dict(), "runs": self.runs,
        }


NO_STATUS: Final = Status()  # a record's status before anything is known (immutable: shared)


def created_status(created_at: datetime) -> Status:
    """``Status(created_at=created_at)``: created, never started. Built from a template of its
    fields, not through the frozen dataclass's ``__init__`` (a setattr per field and the state
    derived): every create makes one."""
    obj = object.__new__(Status)
    fields = dict(_CREATED_FIELDS)
    fields["created_at"] = created_at
    object.__setattr__(obj, "__dict__", fields)
    return obj


_CREATED = Status(created_at=datetime(2000, 1, 1, tzinfo=UTC))
_CREATED_FIELDS: Final = {f.name: getattr(_CREATED, f.name) for f in fields(Status)}  # in field order


@dataclass(frozen=True)
class Container:
    """A container's metadata record, as containerd's ``containers.Container``.

    Build one to send to ``create`` or ``update``; the store returns new ones
    with the server-set fields (timestamps, ``version``) filled in.
    """

    id: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    image: str = ""
    runtime: Runtime = field(default_factory=Runtime)
    spec: Payload | None = None
    snapshotter: str = ""
    snapshot_key: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    extensions: Mapping[str, Payload] = field(default_factory=dict)
    sandbox: str = ""
    version: int = 0
    status: Status = field(default_factory=lambda: NO_STATUS)  # immutable: shared

    @classmethod
    def trusted(cls, **fields: Any) -> Container:
        """A record from fields the store owns and has checked (its own reads): every field
        given, dicts not shared with anyone. Skips ``__init__``; the read path builds many."""
        obj = object.__new__(cls)
        object.__setattr__(obj, "__dict__", fields)  # the call's own keyword dict: no copy
        return obj

    def __post_init__(self) -> None:
        # Own copies, so a caller's later mutation of its dict cannot reach a record.
        object.__setattr__(self, "labels", dict(self.labels or {}))
        object.__setattr__(self, "extensions", dict(self.extensions or {}))
        if self.runtime is None:
            object.__setattr__(self, "runtime", Runtime())
        elif isinstance(self.runtime, str):  # the meaning is obvious: a runtime named so
            object.__setattr__(self, "runtime", Runtime(self.runtime))

    __hash__ = None  # type: ignore[assignment]  # holds dicts: not hashable

    def to_dict(self) -> dict[str, Any]:
        """This record as JSON types only: bytes as base64, times as ISO-8601 UTC with a ``Z``."""
        return {
            "id": self.id,
            "labels": dict(self.labels),
            "image": self.image,
            "runtime": {"name": self.runtime.name, "options": _payload(self.runtime.options)},
            "spec": _payload(self.spec),
            "snapshotter": self.snapshotter,
            "snapshot_key": self.snapshot_key,
            "extensions": {k: _payload(v) for k, v in self.extensions.items()},
            "sandbox": self.sandbox,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "version": self.version,
            "status": self.status.to_dict(),
        }


def _payload(p: Payload | None) -> dict[str, Any] | None:
    return None if p is None else {"type_url": p.type_url, "value": base64.b64encode(p.value).decode("ascii")}


@dataclass(frozen=True)
class Audit:
    """Who made a change, why, and as part of which operation.

    Every event of one operation carries the same ``Audit``.
    """

    actor: str
    reason: str = ""
    correlation_id: str = ""
    fieldpaths: tuple[str, ...] = ()
    client: str = "library"

    @classmethod
    def trusted(cls, actor: str, reason: str, correlation_id: str, fieldpaths: tuple[str, ...], client: str) -> Audit:
        """An Audit from values already checked (the store's writes): no ``__init__``, whose five
        frozen-field assignments cost every write thousands of instructions."""
        obj = object.__new__(cls)
        object.__setattr__(obj, "__dict__", {"actor": actor, "reason": reason, "correlation_id": correlation_id,
                                             "fieldpaths": fieldpaths, "client": client})
        return obj
