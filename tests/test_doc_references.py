r"""What the docs point to exists: their relative links and the headings their ``#anchors`` name, the tests they
cite as showing a behaviour (``test_x.py::test_y``, then ``::test_z`` of the same file), the repository
paths they name in backticks
(``benchmarks/bench_score.py``) and the Python names (``flowaccent.score.metrics.moments``). A renamed file
or function otherwise leaves the docs pointing at nothing, and no other test reads them."""

from __future__ import annotations

import functools
import importlib
import re
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO_ROOT as ROOT

DOCS = sorted([*ROOT.glob("*.md"), *ROOT.glob("docs/*.md"), *ROOT.glob("recipes/*/*.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# a path as a whole backticked span; not a pattern, nor what a run writes (exp/, benchmarks/results/latest.*); the
# results a page cites must be committed (benchmarks/results/ is ignored: they are added with -f), or said lost:
LOST = {"benchmarks/results/amd-zen4-b0c2d38/", "benchmarks/results/datadir-2026-12-05/",
        "benchmarks/results/datadir-2026-12-05/tsv.json"}  # not committed, gone with their sessions' machines
PATH = re.compile(r"`((?:flowaccent|benchmarks|recipes|tests|docs)/[A-Za-z0-9_./-]+)`")
NAME = re.compile(r"`(flowaccent(?:\.[A-Za-z_]\w*)+)")


def doc_id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def resolves(dotted: str) -> bool:
    r"""Whether ``dotted`` is a module, or an attribute path from the longest importable module in it."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attribute in parts[i:]:
                obj = getattr(obj, attribute)
        except AttributeError:
            return False
        return True
    return False


def test_the_docs_are_found():
    assert {"README.md", "docs/training.md", "docs/performance.md", "recipes/demo/RESULTS.md"} <= set(
        map(doc_id, DOCS))


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_relative_links_lead_to_files(doc):
    targets = [t for t in LINK.findall(doc.read_text()) if not t.startswith(("http://", "https://", "mailto:", "#"))]
    assert [t for t in targets if not (doc.parent / t.split("#")[0]).exists()] == []


def anchors(markdown: str) -> set[str]:
    r"""The ``#anchors`` GitHub gives ``markdown``'s headings: lower case, punctuation but ``-`` and ``_`` dropped,
    spaces as ``-``, a repeated one numbered ``-1``, ``-2``, ...; not the ``#`` lines of fenced code."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"#{1,6}\s+(.*?)[\s#]*$", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
            found.add(f"{slug}-{counts[slug]}" if counts.get(slug) else slug)
            counts[slug] = counts.get(slug, 0) + 1
    return found


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_anchors_lead_to_headings(doc):
    broken = []
    for target in LINK.findall(doc.read_text()):
        path, hash_, anchor = target.partition("#")
        if hash_ and not path.startswith(("http://", "https://")) and (path.endswith(".md") or not path):
            markdown = (doc.parent / path).read_text() if path else doc.read_text()
            broken += [target] if anchor not in anchors(markdown) else []
    assert broken == []


#: A cited test: ``test_x.py`` or ``tests/.../test_x.py``, then ``::name`` (or a ``::name`` alone, of the file cited
#: last on the line: ``tests/a/test_b.py::test_c``, ``::test_d``).
CITED = re.compile(r"`((?:tests/(?:[\w.-]+/)*)?test_\w+\.py)?((?:::\w+)*)")


def cited_tests(markdown: str) -> list[tuple[str, str]]:
    r"""``(file, test name)`` of each test ``markdown`` cites; the file as cited (a bare name where it was)."""
    cited = []
    for line in markdown.splitlines():
        current = ""
        for path, names in CITED.findall(line):
            current = path or current
            cited += [(current, name) for name in names.split("::")[1:]]
    return cited


@functools.cache
def _test_file(cited: str) -> Path | None:
    found = [ROOT / cited] if "/" in cited else list((ROOT / "tests").rglob(cited))
    return found[0] if len(found) == 1 and found[0].is_file() else None


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_cited_tests_exist(doc):
    missing = []
    for cited, name in cited_tests(doc.read_text()):
        path = _test_file(cited) if cited else None
        if path is None or not re.search(rf"^\s*def {name}\(|^class {name}\b", path.read_text(), re.M):
            missing.append(f"{cited}::{name}")
    assert missing == []


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_named_repository_paths_exist(doc):
    paths = [p.rstrip(".") for p in PATH.findall(doc.read_text())]
    named = [p for p in paths if "/exp/" not in p and not p.startswith("benchmarks/results/latest.") and p not in LOST]
    assert [p for p in named if not (ROOT / p).exists()] == []
    results = tracked_results()  # git-ignored: there in the author's checkout, not in a clone, unless committed
    if results is not None:
        assert [p for p in named if p.startswith("benchmarks/results/") and not any(
            f == p or f.startswith(p.rstrip("/") + "/") for f in results)] == []


@functools.cache
def tracked_results() -> frozenset[str] | None:
    r"""The files under ``benchmarks/results/`` git tracks; None outside a git checkout (or without git)."""
    try:
        listed = subprocess.run(["git", "ls-files", "benchmarks/results"], cwd=ROOT, capture_output=True, text=True,
                                timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return frozenset(listed.stdout.splitlines()) if listed.returncode == 0 else None


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_named_python_objects_exist(doc):
    assert [n for n in sorted(set(NAME.findall(doc.read_text()))) if not resolves(n)] == []


def test_the_checks_can_fail():
    assert not resolves("flowaccent.score.metrics.no_such_function")
    assert not resolves("flowaccent.no_such_module")
    assert resolves("flowaccent.score.metrics.moments") and resolves("flowaccent.features")
    assert PATH.findall("see `benchmarks/bench_nothing.py` and `flowaccent/{a,b}/config.py`") == [
        "benchmarks/bench_nothing.py"]
    assert cited_tests("`tests/a/test_b.py::test_c`, `::test_d`; `test_e.py::test_f::g` `::test_h[x]` and `::t`") == [
        ("tests/a/test_b.py", "test_c"), ("tests/a/test_b.py", "test_d"), ("test_e.py", "test_f"), ("test_e.py", "g"),
        ("test_e.py", "test_h"), ("test_e.py", "t")]
    assert len(cited_tests(ROOT.joinpath("docs/reliability.md").read_text())) > 100
    markdown = "# GPU (goal 7): one H200\n## `score` -- end to end\n```\n# not a heading\n```\n## `score` -- end to end"
    assert anchors(markdown) == {"gpu-goal-7-one-h200", "score----end-to-end", "score----end-to-end-1"}
