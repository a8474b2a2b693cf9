"""ctrledger/wire's .proto files against containerd's own (Debian's golang-github-containerd-containerd-dev).

Both sets are compiled with grpc_tools.protoc into descriptor sets (data, not loaded into the
process's descriptor pool), then every message, enum and service of ours is compared with
containerd's: field names, numbers, types, labels (repeated, map) and type names; enum values;
method names, request and response types and streaming. Ours may be a subset (fewer methods in
Tasks, Snapshots, Leases), never different.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import missing_component

ROOT = Path(__file__).resolve().parent.parent
WIRE = ROOT / "ctrledger" / "wire"
GOCODE = Path("/usr/share/gocode/src")
API = GOCODE / "github.com/containerd/containerd/api"
GOGO = GOCODE / "github.com/gogo/protobuf"

# our file (under ctrledger/wire/containerd) -> containerd's (under api/)
FILES = {
    "containerd/services/containers/v1/containers.proto": "services/containers/v1/containers.proto",
    "containerd/services/events/v1/events.proto": "services/events/v1/events.proto",
    "containerd/services/namespaces/v1/namespace.proto": "services/namespaces/v1/namespace.proto",
    "containerd/services/tasks/v1/tasks.proto": "services/tasks/v1/tasks.proto",
    "containerd/services/snapshots/v1/snapshots.proto": "services/snapshots/v1/snapshots.proto",
    "containerd/services/leases/v1/leases.proto": "services/leases/v1/leases.proto",
    "containerd/services/version/v1/version.proto": "services/version/v1/version.proto",
    "containerd/events/container.proto": "events/container.proto",
    "containerd/events/task.proto": "events/task.proto",
    "containerd/events/namespace.proto": "events/namespace.proto",
    "containerd/types/mount.proto": "types/mount.proto",
    "containerd/types/task/task.proto": "types/task/task.proto",
}


def _compile(includes: list[Path], files: list[str], out: Path) -> Any:
    import grpc_tools
    from google.protobuf import descriptor_pb2
    from grpc_tools import protoc

    wkt = Path(grpc_tools.__file__).parent / "_proto"
    args = ["protoc", *(f"-I{i}" for i in includes), f"-I{wkt}", f"--descriptor_set_out={out}",
            "--include_imports", *files]
    assert protoc.main(args) == 0, f"protoc failed on {files}"
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(out.read_bytes())
    return fds


def _index(fds: Any) -> dict[str, Any]:
    """Every message, enum and service by full name."""
    out: dict[str, Any] = {}

    def messages(prefix: str, msgs: Any) -> None:
        for m in msgs:
            name = f"{prefix}.{m.name}"
            out[name] = ("message", m)
            messages(name, m.nested_type)
            for e in m.enum_type:
                out[f"{name}.{e.name}"] = ("enum", e)

    for f in fds.file:
        if f.package.startswith("google.protobuf") or f.package == "gogoproto":
            continue
        messages(f.package, f.message_type)
        for e in f.enum_type:
            out[f"{f.package}.{e.name}"] = ("enum", e)
        for s in f.service:
            out[f"{f.package}.{s.name}"] = ("service", s)
    return out


@pytest.fixture(scope="module")
def descriptors(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    pytest.importorskip("grpc_tools", reason="grpcio-tools is in the test extra")
    missing = [p for p in (API / theirs for theirs in FILES.values()) if not p.is_file()]
    if missing or not (GOGO / "gogoproto" / "gogo.proto").is_file():
        missing_component(
            "containerd's .proto files (apt-get install golang-github-containerd-containerd-dev "
            f"golang-github-gogo-protobuf-dev): missing {missing[:1] or 'gogoproto/gogo.proto'}"
        )
    tmp = tmp_path_factory.mktemp("drift")
    ours = _compile([ROOT], [f"ctrledger/wire/{p}" for p in FILES], tmp / "ours.pb")
    theirs = _compile([GOCODE, GOGO], [f"github.com/containerd/containerd/api/{p}" for p in FILES.values()],
                      tmp / "theirs.pb")
    return _index(ours), _index(theirs)


def _field_shape(f: Any) -> tuple[Any, ...]:
    return (f.name, f.number, f.type, f.label, f.type_name, f.HasField("oneof_index"))


def _containerd_names(ours: dict[str, Any]) -> list[str]:
    return sorted(n for n in ours if n.startswith("containerd."))


def test_every_type_of_ours_exists_in_containerd(descriptors: tuple[dict[str, Any], dict[str, Any]]) -> None:
    ours, theirs = descriptors
    names = _containerd_names(ours)
    assert len(names) > 50  # the subset: services, messages, map entries, enums
    assert [n for n in names if n not in theirs] == []


def test_messages_match_field_by_field(descriptors: tuple[dict[str, Any], dict[str, Any]]) -> None:
    ours, theirs = descriptors
    drift = []
    for name in _containerd_names(ours):
        kind, mine = ours[name]
        if kind != "message":
            continue
        _, other = theirs[name]
        mine_fields = sorted(_field_shape(f) for f in mine.field)
        their_fields = sorted(_field_shape(f) for f in other.field)
        if mine_fields != their_fields:
            drift.append((name, mine_fields, their_fields))
        if mine.options.map_entry != other.options.map_entry:
            drift.append((name, "map_entry", mine.options.map_entry))
    assert drift == []


def test_enums_match(descriptors: tuple[dict[str, Any], dict[str, Any]]) -> None:
    ours, theirs = descriptors
    enums = [n for n in _containerd_names(ours) if ours[n][0] == "enum"]
    assert enums == ["containerd.v1.types.Status"]
    for name in enums:
        assert [(v.name, v.number) for v in ours[name][1].value] == [
            (v.name, v.number) for v in theirs[name][1].value]


def test_services_are_a_subset_with_identical_methods(
    descriptors: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    ours, theirs = descriptors
    services = [n for n in _containerd_names(ours) if ours[n][0] == "service"]
    assert len(services) == 7
    for name in services:
        their_methods = {m.name: m for m in theirs[name][1].method}
        for m in ours[name][1].method:
            t = their_methods[m.name]
            assert (m.input_type, m.output_type, m.client_streaming, m.server_streaming) == (
                t.input_type, t.output_type, t.client_streaming, t.server_streaming), f"{name}/{m.name}"


@pytest.mark.parametrize("service", ["Containers", "Events", "Namespaces", "Version"])
def test_whole_services_are_complete(service: str, descriptors: tuple[dict[str, Any], dict[str, Any]]) -> None:
    ours, theirs = descriptors
    name = next(n for n in theirs if n.endswith(f".{service}") and theirs[n][0] == "service")
    assert sorted(m.name for m in ours[name][1].method) == sorted(m.name for m in theirs[name][1].method)


def test_committed_stubs_are_fresh() -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools is in the test extra")
    import subprocess
    import sys

    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
