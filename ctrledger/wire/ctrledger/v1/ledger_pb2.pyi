import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2 as _containers_pb2
from ctrledger.wire.containerd.services.events.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Point(_message.Message):
    __slots__ = ("time", "version", "position")
    TIME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    version: int
    position: int
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ..., position: _Optional[int] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("id", "as_of")
    ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    id: str
    as_of: Point
    def __init__(self, id: _Optional[str] = ..., as_of: _Optional[_Union[Point, _Mapping]] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("container", "version")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    container: _containers_pb2.Container
    version: int
    def __init__(self, container: _Optional[_Union[_containers_pb2.Container, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("filters", "as_of")
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    filters: _containers.RepeatedScalarFieldContainer[str]
    as_of: Point
    def __init__(self, filters: _Optional[_Iterable[str]] = ..., as_of: _Optional[_Union[Point, _Mapping]] = ...) -> None: ...

class ListMessage(_message.Message):
    __slots__ = ("container", "version")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    container: _containers_pb2.Container
    version: int
    def __init__(self, container: _Optional[_Union[_containers_pb2.Container, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class FieldChange(_message.Message):
    __slots__ = ("field", "old_present", "old_json", "new_present", "new_json")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    OLD_PRESENT_FIELD_NUMBER: _ClassVar[int]
    OLD_JSON_FIELD_NUMBER: _ClassVar[int]
    NEW_PRESENT_FIELD_NUMBER: _ClassVar[int]
    NEW_JSON_FIELD_NUMBER: _ClassVar[int]
    field: str
    old_present: bool
    old_json: str
    new_present: bool
    new_json: str
    def __init__(self, field: _Optional[str] = ..., old_present: _Optional[bool] = ..., old_json: _Optional[str] = ..., new_present: _Optional[bool] = ..., new_json: _Optional[str] = ...) -> None: ...

class HistoryRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class HistoryEntry(_message.Message):
    __slots__ = ("namespace", "id", "version", "incarnation", "position", "kind", "recorded_at", "actor", "reason", "correlation_id", "fieldpaths", "client", "changes")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    FIELDPATHS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    id: str
    version: int
    incarnation: int
    position: int
    kind: str
    recorded_at: _timestamp_pb2.Timestamp
    actor: str
    reason: str
    correlation_id: str
    fieldpaths: _containers.RepeatedScalarFieldContainer[str]
    client: str
    changes: _containers.RepeatedCompositeFieldContainer[FieldChange]
    def __init__(self, namespace: _Optional[str] = ..., id: _Optional[str] = ..., version: _Optional[int] = ..., incarnation: _Optional[int] = ..., position: _Optional[int] = ..., kind: _Optional[str] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., correlation_id: _Optional[str] = ..., fieldpaths: _Optional[_Iterable[str]] = ..., client: _Optional[str] = ..., changes: _Optional[_Iterable[_Union[FieldChange, _Mapping]]] = ...) -> None: ...

class DiffRequest(_message.Message):
    __slots__ = ("id", "since", "until")
    ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    id: str
    since: Point
    until: Point
    def __init__(self, id: _Optional[str] = ..., since: _Optional[_Union[Point, _Mapping]] = ..., until: _Optional[_Union[Point, _Mapping]] = ...) -> None: ...

class DiffResponse(_message.Message):
    __slots__ = ("namespace", "id", "status", "before", "after", "changes")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    id: str
    status: str
    before: _containers_pb2.Container
    after: _containers_pb2.Container
    changes: _containers.RepeatedCompositeFieldContainer[FieldChange]
    def __init__(self, namespace: _Optional[str] = ..., id: _Optional[str] = ..., status: _Optional[str] = ..., before: _Optional[_Union[_containers_pb2.Container, _Mapping]] = ..., after: _Optional[_Union[_containers_pb2.Container, _Mapping]] = ..., changes: _Optional[_Iterable[_Union[FieldChange, _Mapping]]] = ...) -> None: ...

class ChangesRequest(_message.Message):
    __slots__ = ("since", "until", "filters")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    since: Point
    until: Point
    filters: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, since: _Optional[_Union[Point, _Mapping]] = ..., until: _Optional[_Union[Point, _Mapping]] = ..., filters: _Optional[_Iterable[str]] = ...) -> None: ...

class Change(_message.Message):
    __slots__ = ("namespace", "id", "status", "before", "after", "changes")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    id: str
    status: str
    before: _containers_pb2.Container
    after: _containers_pb2.Container
    changes: _containers.RepeatedCompositeFieldContainer[FieldChange]
    def __init__(self, namespace: _Optional[str] = ..., id: _Optional[str] = ..., status: _Optional[str] = ..., before: _Optional[_Union[_containers_pb2.Container, _Mapping]] = ..., after: _Optional[_Union[_containers_pb2.Container, _Mapping]] = ..., changes: _Optional[_Iterable[_Union[FieldChange, _Mapping]]] = ...) -> None: ...

class AuditRequest(_message.Message):
    __slots__ = ("actors", "since", "until", "kinds", "namespace", "id", "correlation_id", "client", "reason")
    ACTORS_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    actors: _containers.RepeatedScalarFieldContainer[str]
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    kinds: _containers.RepeatedScalarFieldContainer[str]
    namespace: str
    id: str
    correlation_id: str
    client: str
    reason: str
    def __init__(self, actors: _Optional[_Iterable[str]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kinds: _Optional[_Iterable[str]] = ..., namespace: _Optional[str] = ..., id: _Optional[str] = ..., correlation_id: _Optional[str] = ..., client: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class AuditRecord(_message.Message):
    __slots__ = ("position", "recorded_at", "namespace", "id", "version", "kind", "actor", "reason", "correlation_id", "fieldpaths", "client")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    FIELDPATHS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    position: int
    recorded_at: _timestamp_pb2.Timestamp
    namespace: str
    id: str
    version: int
    kind: str
    actor: str
    reason: str
    correlation_id: str
    fieldpaths: _containers.RepeatedScalarFieldContainer[str]
    client: str
    def __init__(self, position: _Optional[int] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., namespace: _Optional[str] = ..., id: _Optional[str] = ..., version: _Optional[int] = ..., kind: _Optional[str] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., correlation_id: _Optional[str] = ..., fieldpaths: _Optional[_Iterable[str]] = ..., client: _Optional[str] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("after", "filters")
    AFTER_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    after: int
    filters: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, after: _Optional[int] = ..., filters: _Optional[_Iterable[str]] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("position", "envelope", "kind", "actor", "client", "reason", "correlation_id")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    position: int
    envelope: _events_pb2.Envelope
    kind: str
    actor: str
    client: str
    reason: str
    correlation_id: str
    def __init__(self, position: _Optional[int] = ..., envelope: _Optional[_Union[_events_pb2.Envelope, _Mapping]] = ..., kind: _Optional[str] = ..., actor: _Optional[str] = ..., client: _Optional[str] = ..., reason: _Optional[str] = ..., correlation_id: _Optional[str] = ...) -> None: ...

class CheckpointRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("log_id", "size", "position", "root", "chain", "frontier", "created_at", "key_id", "signature")
    LOG_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    FRONTIER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    log_id: str
    size: int
    position: int
    root: str
    chain: str
    frontier: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    key_id: str
    signature: str
    def __init__(self, log_id: _Optional[str] = ..., size: _Optional[int] = ..., position: _Optional[int] = ..., root: _Optional[str] = ..., chain: _Optional[str] = ..., frontier: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., key_id: _Optional[str] = ..., signature: _Optional[str] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("checkpoint",)
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    checkpoint: Checkpoint
    def __init__(self, checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ...) -> None: ...

class Problem(_message.Message):
    __slots__ = ("position", "kind", "detail")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    position: int
    kind: str
    detail: str
    def __init__(self, position: _Optional[int] = ..., kind: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("ok", "first", "last", "root", "problems")
    OK_FIELD_NUMBER: _ClassVar[int]
    FIRST_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    first: int
    last: int
    root: str
    problems: _containers.RepeatedCompositeFieldContainer[Problem]
    def __init__(self, ok: _Optional[bool] = ..., first: _Optional[int] = ..., last: _Optional[int] = ..., root: _Optional[str] = ..., problems: _Optional[_Iterable[_Union[Problem, _Mapping]]] = ...) -> None: ...

class ProveRequest(_message.Message):
    __slots__ = ("position", "checkpoint")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    position: int
    checkpoint: Checkpoint
    def __init__(self, position: _Optional[int] = ..., checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ...) -> None: ...

class InclusionProof(_message.Message):
    __slots__ = ("position", "index", "size", "leaf", "path", "root")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    LEAF_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    position: int
    index: int
    size: int
    leaf: str
    path: _containers.RepeatedScalarFieldContainer[str]
    root: str
    def __init__(self, position: _Optional[int] = ..., index: _Optional[int] = ..., size: _Optional[int] = ..., leaf: _Optional[str] = ..., path: _Optional[_Iterable[str]] = ..., root: _Optional[str] = ...) -> None: ...
