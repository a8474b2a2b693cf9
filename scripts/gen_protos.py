"""Generate the Python stubs of ctrledger/wire from its .proto files.

    pip install -e '.[test]'          # brings the pinned grpcio-tools
    python scripts/gen_protos.py      # rewrites ctrledger/wire/**/*_pb2.py, *_pb2_grpc.py, *.pyi
    python scripts/gen_protos.py --check   # exit 1 if the committed stubs differ (CI)

The stubs are committed, so a plain ``pip install`` needs neither grpcio-tools nor apt. The
generated code checks its protobuf runtime at import (``ValidateProtobufRuntimeVersion``) and
grpcio's (``GRPC_GENERATED_VERSION``): pyproject.toml pins grpcio and protobuf to ranges that
satisfy what this grpcio-tools writes; regenerate when you move grpcio-tools.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WIRE = ROOT / "ctrledger" / "wire"


def protos() -> list[Path]:
    return sorted(WIRE.rglob("*.proto"))


def generate(out: Path) -> None:
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    files = [str(p.relative_to(ROOT)) for p in protos()]
    args = ["protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={out}", f"--pyi_out={out}",
            f"--grpc_python_out={out}", *files]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for proto in protos():
        if "\nservice " not in proto.read_text():  # messages only: no stub module
            (out / proto.relative_to(ROOT)).with_name(proto.stem + "_pb2_grpc.py").unlink()


def generated(base: Path) -> list[Path]:
    return sorted(p.relative_to(base) for p in base.rglob("*") if p.name.endswith(("_pb2.py", "_pb2_grpc.py",
                                                                                      "_pb2.pyi")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generate(out)
        made = generated(out)
        if args.check:
            have = generated(ROOT)
            have = [p for p in have if p.parts[:2] == ("ctrledger", "wire")]
            differ = sorted(set(made) ^ set(have)) + [
                p for p in made if p in have and not filecmp.cmp(out / p, ROOT / p, shallow=False)]
            for p in differ:
                print(f"stale: {p}", file=sys.stderr)
            return 1 if differ else 0
        for p in generated(ROOT):
            if p.parts[:2] == ("ctrledger", "wire"):
                (ROOT / p).unlink()
        for p in made:
            (ROOT / p).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out / p, ROOT / p)
        for d in {(ROOT / p).parent for p in made}:
            while d != WIRE.parent:
                (d / "__init__.py").touch()
                d = d.parent
        print(f"generated {len(made)} files from {len(protos())} .proto files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
