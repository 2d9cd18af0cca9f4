r"""The Python examples of the docs (the ```python blocks of docs/*.md) run as written, on the tiny experiment
in place of the demo's ``exp/dnf`` and ``data/test_zh`` (and 3 fitting steps in place of 300)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).parents[2] / "docs"
BLOCKS = [(path.name, block) for path in sorted(DOCS.glob("*.md"))
          for block in re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)]


def test_the_examples_are_found():
    assert {name for name, _ in BLOCKS} >= {"blurmask.md", "scoring.md"}


@pytest.mark.parametrize("name, block", BLOCKS, ids=[name for name, _ in BLOCKS])
def test_example_runs(name, block, flow_exp):
    _, exp, _, zh = flow_exp
    for path in ("exp/dnf/final.pt", "data/test_zh"):
        assert path in block, f"{name}: the example no longer reads {path}: update this test's substitutions"
    code = block.replace("exp/dnf/final.pt", str(exp / "final.pt")).replace("data/test_zh", str(zh))
    code = code.replace("steps=300", "steps=3")
    namespace: dict = {}
    exec(compile(code, f"{name} example", "exec"), namespace)
    assert "model" in namespace and "utt" in namespace
