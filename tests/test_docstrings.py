r"""The examples in the package's docstrings (``>>>``) run and print what they say."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import flowaccent

ROOT = Path(flowaccent.__file__).parent
MODULES = sorted(
    "flowaccent." + ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for path in ROOT.rglob("*.py")
    if ">>>" in path.read_text(encoding="utf-8")
)


def test_the_examples_are_found():
    assert len(MODULES) >= 15 and "flowaccent.config" in MODULES and "flowaccent.lazy" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    module = importlib.import_module(name)
    tests = [t for t in doctest.DocTestFinder().find(module) if t.examples]
    assert tests, f"{name} has '>>>' but no example doctest finds"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} example(s) of {name} failed (their output is above)"
