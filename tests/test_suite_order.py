r"""The suite's own scheduling (tests/conftest.py): the longest files run first, and the list names real files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import LONGEST_FIRST

HERE = Path(__file__).parent


def test_the_longest_files_exist():
    r"""A renamed or removed file would silently drop out of the order (and back to its place in the run)."""
    assert [name for name in LONGEST_FIRST if not (HERE / name).is_file()] == []
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)


def test_collection_puts_them_first():
    listed = HERE / LONGEST_FIRST[-1]
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          __file__, str(listed)], cwd=HERE.parent, capture_output=True, text=True, check=True).stdout
    files = list(dict.fromkeys(line.split("::")[0] for line in out.splitlines() if "::" in line))
    assert files == [f"tests/{LONGEST_FIRST[-1]}", "tests/test_suite_order.py"], out
