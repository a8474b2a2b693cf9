"""What the follower and the proxy read from containerd, as the store's records and times."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2

from ctrledger import Container
from ctrledger.server.translate import container_from_wire, time_from_wire
from ctrledger.wire.containerd.services.containers.v1 import containers_pb2 as cpb

__all__ = ["observed_container", "observed_time"]


def observed_time(ts: timestamp_pb2.Timestamp) -> datetime | None:
    """A containerd timestamp as an aware UTC datetime (microseconds); None when unset (zero or
    Go's zero time, ``0001-01-01``, which containerd sends for "not yet")."""
    if ts.seconds <= 0 and ts.nanos == 0:
        return None
    return time_from_wire(ts)


def observed_container(c: cpb.Container) -> Container:
    """A container as containerd holds it, with its ``created_at`` (the store uses it to tell a
    container replaced while nobody watched from the one it knows)."""
    return container_from_wire(c, observed_time(c.created_at))
