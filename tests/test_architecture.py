"""The dependency rule: imports go one way only, and the domain stays pure.

    errors <- domain <- persistence <- projections <- replay <- store <- api <- server <- follow <- (ui <- cli, testing)
                                                                            (server: public API and wire only;
                                                                             follow: public API, wire and server)
    wire: a leaf (containerd's and ctrledger's generated protobuf types), imports nothing of ctrledger

A module may import from its own layer and the layers to its left, never to its
right. The domain may use only the standard library, eventsourcing's domain
helpers and RE2 (for containerd's regex dialect): no msgpack, no sqlite, no click.

The log (``persistence``) is the only home of eventsourcing's storage internals and
the only writer of the event tables; the ``Store`` facade has no backend of its own.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ctrledger"
LAYERS = ["errors", "domain", "persistence", "projections", "replay", "store", "api", "wire", "server", "follow",
          "ui", "cli", "testing"]
# cli and testing both sit on the public API; neither imports the other. The web view (ui) sits below the
# cli, which starts it; the testing kit has no use for it, and it none for the kit.
SIBLINGS = {"cli", "testing"}
UNRELATED = {("testing", "ui"), ("ui", "testing")}
DOMAIN_THIRD_PARTY = {"eventsourcing.domain", "eventsourcing.utils", "re2"}


def layer_of(module: str) -> str | None:
    if module.endswith(".__main__"):
        return "cli"  # python -m ctrledger: the command line
    parts = module.removesuffix(".__init__").split(".")
    if parts[0] != "ctrledger":
        return None
    if len(parts) == 1:
        return "api"  # the package's __init__: the public API, above the store
    return parts[1]


def imports(path: Path) -> list[str]:
    module = "ctrledger." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    module = module.removesuffix(".__init__")
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                found.append(".".join([*base, node.module] if node.module else base))
            else:
                found.append(node.module or "")
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_left_only(path: Path) -> None:
    own = layer_of("ctrledger." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
    assert own in LAYERS, f"{path}: not in a known layer; change the picture on purpose"
    for name in imports(path):
        target = layer_of(name)
        if target is None or target == own:
            continue
        assert target in LAYERS, f"{path} imports {name}: unknown layer"
        assert not (own in SIBLINGS and target in SIBLINGS), f"{path} ({own}) imports {name} ({target})"
        assert (own, target) not in UNRELATED, f"{path} ({own}) imports {name} ({target})"
        assert LAYERS.index(target) <= LAYERS.index(own), f"{path} ({own}) imports {name} ({target})"


@pytest.mark.parametrize(
    "path", sorted((PACKAGE / "domain").rglob("*.py")), ids=lambda p: p.name
)
def test_domain_imports_nothing_below_it(path: Path) -> None:
    for name in imports(path):
        top = name.split(".")[0]
        if top == "ctrledger":
            assert layer_of(name) in ("errors", "domain"), f"{path.name} imports {name}"
        elif top in sys.stdlib_module_names or top == "__future__":
            continue
        else:
            assert name in DOMAIN_THIRD_PARTY, f"{path.name} imports {name}"


def test_errors_imports_nothing_from_the_package() -> None:
    assert not [n for n in imports(PACKAGE / "errors.py") if n.startswith("ctrledger")]


# eventsourcing's private storage API: only the log's adapters may touch it.
PRIVATE_STORAGE_API = ["_insert_events", "_fetch_ids_after_insert_events", "_create_connection", "_sqlite_conn",
                       ".datastore", ".recorder", "SQLiteConnectionPool"]
EVENT_TABLE_WRITES = ["INSERT INTO stored_events", "UPDATE stored_events", "DELETE FROM stored_events"]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_log_knows_eventsourcing_storage_internals(path: Path) -> None:
    if path.relative_to(PACKAGE).parts[0] == "persistence":
        return
    text = path.read_text()
    for name in PRIVATE_STORAGE_API + EVENT_TABLE_WRITES:
        assert name not in text, f"{path.relative_to(PACKAGE)} uses {name!r}: that belongs to ctrledger/persistence/"


def test_the_store_has_no_backend_branches() -> None:
    tree = ast.parse((PACKAGE / "store.py").read_text())
    store = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Store")
    source = ast.get_source_segment((PACKAGE / "store.py").read_text(), store) or ""
    for word in ("url", "postgres", "Postgres", "SQLiteLog", "sqlite3.connect", "isinstance(self._log"):
        assert word not in source, f"Store mentions {word!r}: the log decides, the facade delegates"


WIRE_MODULES = sorted((PACKAGE / "wire").rglob("*.py"))
SERVER_MODULES = sorted((PACKAGE / "server").rglob("*.py"))


@pytest.mark.parametrize("path", WIRE_MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_wire_is_a_leaf(path: Path) -> None:
    for name in imports(path):
        if name.startswith("ctrledger"):
            assert name.startswith("ctrledger.wire"), f"{path} imports {name}"


@pytest.mark.parametrize("path", SERVER_MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_server_uses_the_public_api_and_the_wire_only(path: Path) -> None:
    for name in imports(path):
        if name.startswith("ctrledger") and name != "ctrledger":
            assert name.startswith(("ctrledger.wire", "ctrledger.server")), f"{path} imports {name}"


FOLLOW_MODULES = sorted((PACKAGE / "follow").rglob("*.py"))


@pytest.mark.parametrize("path", FOLLOW_MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_follow_uses_the_public_api_the_wire_and_the_server_only(path: Path) -> None:
    for name in imports(path):
        if name.startswith("ctrledger") and name != "ctrledger":
            assert name.startswith(("ctrledger.wire", "ctrledger.server", "ctrledger.follow")), f"{path} imports {name}"


def test_only_the_cli_and_follow_import_the_server() -> None:
    for path in MODULES:
        if layer_of("ctrledger." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)) in (
                "cli", "server", "follow"):
            continue
        assert not [n for n in imports(path) if n.startswith("ctrledger.server")], path
