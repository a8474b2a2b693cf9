"""The Python in the docs runs, and the docs hang together.

* Every ```python block of ``README.md`` and of ``docs/**/*.md`` (except ``docs/cli.md``, whose
  ```console blocks ``tests/test_docs.py`` runs) is executed: each file's blocks in order, in one
  namespace, in an empty temporary directory. Any exception fails the test, so a snippet's
  ``assert`` lines check what the page claims. Blocks fenced with another language (```text,
  ```console, ```bash) are not run.
* A block that defines pytest tests (``def test_…``) is also run by pytest, alone, as the
  file it shows (it loads the test kit itself, ``pytest_plugins``; run from the repository's
  root so its relative paths resolve): every test it defines must pass.
* Every page under ``docs/`` is reachable from ``docs/index.md`` by relative links, and every
  relative link of the docs and the README points at a file that exists.
* The references name what they document: every public name, every event topic, every error code.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ctrledger
from ctrledger.domain.container import EVENT_CLASSES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NOT_RUN_HERE = {DOCS / "cli.md"}  # its ```console blocks run in tests/test_docs.py

PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
CODE = re.compile(r"^```.*?^```[ \t]*$|`[^`\n]*`", re.M | re.S)  # fenced blocks and code spans
LINK = re.compile(r"\]\(([^)\s]+)\)")
# Pages that other work writes, linked before they exist: a missing one is an expected failure.
PENDING = {DOCS / "benchmarks.md": "docs/benchmarks.md is written with the benchmarks"}


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def snippet_files() -> list[Path]:
    return [ROOT / "README.md", *(p for p in pages() if p not in NOT_RUN_HERE)]


def python_blocks(path: Path) -> Iterator[tuple[int, str]]:
    """``(first line number, source)`` of every ```python block of ``path``."""
    text = path.read_text()
    for block in PYTHON_BLOCK.finditer(text):
        yield text.count("\n", 0, block.start(1)) + 1, block.group(1)


def name(path: Path) -> str:
    return str(path.relative_to(ROOT))


# -- snippets -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", snippet_files(), ids=name)
def test_python_snippets_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": f"doc:{name(path)}"}
    try:
        for line, source in python_blocks(path):
            # Pad with blank lines so a traceback names the line of the Markdown file.
            code = compile("\n" * (line - 1) + source, str(path), "exec")
            exec(code, namespace)  # running the docs is the point
    finally:
        for value in namespace.values():
            if isinstance(value, ctrledger.Store):
                value.close()


TEST_FUNCTION = re.compile(r"^def (test_\w+)\(", re.M)


def blocks_with_tests() -> list[tuple[Path, int, str]]:
    return [(path, line, source) for path in snippet_files() for line, source in python_blocks(path)
            if TEST_FUNCTION.search(source)]


def _block_id(value: object) -> str:
    return name(value) if isinstance(value, Path) else str(value) if isinstance(value, int) else ""


@pytest.mark.parametrize(("path", "line", "source"), blocks_with_tests(), ids=_block_id)
def test_snippet_tests_pass_under_pytest(path: Path, line: int, source: str, tmp_path: Path) -> None:
    tests = TEST_FUNCTION.findall(source)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not the repository's settings or conftest
    module = tmp_path / f"test_doc_{path.stem.replace('-', '_')}_{line}.py"
    module.write_text(source)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(tmp_path / "pytest.ini"),
         "--rootdir", str(tmp_path), str(module)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(tests)} passed" in done.stdout, done.stdout


def test_the_tutorial_and_guides_have_snippets() -> None:
    for path in [DOCS / "tutorial.md", *sorted((DOCS / "howto").glob("*.md"))]:
        assert list(python_blocks(path)), f"{name(path)} has no ```python block"


# -- links --------------------------------------------------------------------------------


def relative_links(path: Path) -> list[Path]:
    """The files that ``path`` links to with relative links (anchors and URLs left out)."""
    out = []
    for target in LINK.findall(CODE.sub("", path.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        out.append((path.parent / target.split("#", 1)[0]).resolve())
    return out


@pytest.mark.parametrize("path", [ROOT / "README.md", *pages()], ids=name)
def test_relative_links_resolve(path: Path) -> None:
    missing = [t for t in relative_links(path) if not t.exists()]
    assert not [t for t in missing if t not in PENDING], f"{name(path)} links to missing files: {missing}"
    if missing:
        pytest.xfail("; ".join(sorted({PENDING[t] for t in missing})))


def test_every_page_is_reachable_from_the_index() -> None:
    seen: set[Path] = set()
    todo = [(DOCS / "index.md").resolve()]
    while todo:
        page = todo.pop()
        if page in seen or page.suffix != ".md" or not page.exists():
            continue
        seen.add(page)
        todo += relative_links(page)
    unreachable = [name(p) for p in pages() if p.resolve() not in seen]
    assert not unreachable, f"not reachable from docs/index.md: {unreachable}"


# -- the references name what they document -----------------------------------------------


@pytest.mark.parametrize("public", sorted(ctrledger.__all__))
def test_api_reference_documents_every_public_name(public: str) -> None:
    assert f"`{public}" in (DOCS / "reference" / "api.md").read_text()


@pytest.mark.parametrize("event", EVENT_CLASSES, ids=lambda cls: cls.__name__)
def test_event_reference_lists_every_event_and_topic(event: type[Any]) -> None:
    text = (DOCS / "reference" / "events.md").read_text()
    assert f"`{event.__name__}`" in text and f"`{event.TOPIC}`" in text


@pytest.mark.parametrize("error", ctrledger.StoreError.__subclasses__(), ids=lambda cls: cls.__name__)
def test_error_reference_lists_every_category_and_code(error: type[ctrledger.StoreError]) -> None:
    text = (DOCS / "reference" / "errors.md").read_text()
    assert f"`{error.__name__}`" in text and f"`{error.code}`" in text
