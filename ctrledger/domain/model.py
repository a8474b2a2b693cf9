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
=================  ==========================  ========  ==========================================

Labels with an empty value are never stored. Timestamps sent by a client are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Audit", "Container", "Payload", "Runtime"]


@dataclass(frozen=True)
class Payload:
    """An opaque typed value, as protobuf's ``Any``: a type URL and bytes."""

    type_url: str = ""
    value: bytes = b""

    @classmethod
    def trusted(cls, type_url: str, value: bytes) -> Payload:
        """A Payload from values already checked (the store's own reads): no validation."""
        obj = object.__new__(cls)
        obj.__dict__.update(type_url=type_url, value=value)
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

    @classmethod
    def trusted(cls, **fields: Any) -> Container:
        """A record from fields the store owns and has checked (its own reads): every field
        given, dicts not shared with anyone. Skips ``__init__``; the read path builds many."""
        obj = object.__new__(cls)
        obj.__dict__.update(fields)
        return obj

    def __post_init__(self) -> None:
        # Own copies, so a caller's later mutation of its dict cannot reach a record.
        object.__setattr__(self, "labels", dict(self.labels or {}))
        object.__setattr__(self, "extensions", dict(self.extensions or {}))
        if self.runtime is None:
            object.__setattr__(self, "runtime", Runtime())

    __hash__ = None  # type: ignore[assignment]  # holds dicts: not hashable


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
