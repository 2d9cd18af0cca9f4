r"""``.ci/lower-bounds.txt`` (what ``make test-lower`` installs) pins each dependency of pyproject.toml at that
dependency's floor, so the floors the package declares are the versions the suite was run against."""

from __future__ import annotations

import re

from .conftest import REPO_ROOT as ROOT

NOT_PINNED = {"torch"}  # test-lower keeps torch 2.13.0 (.ci/lower-bounds.txt says why)


def floors() -> dict[str, str]:
    r"""``name -> X`` of each ``"name>=X"`` in pyproject.toml's ``dependencies``."""
    block = re.search(r"^dependencies = \[\n(.*?)^\]", (ROOT / "pyproject.toml").read_text(), re.S | re.M)
    specs = re.findall(r'^\s*"([^"]+)"', block.group(1), re.M)
    parsed = [re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", spec) for spec in specs]
    assert all(parsed), specs  # every dependency has a floor and nothing else
    return {m.group(1).lower(): m.group(2) for m in parsed}


def pins() -> dict[str, str]:
    lines = [line for line in (ROOT / ".ci" / "lower-bounds.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    return dict(line.strip().lower().split("==") for line in lines)


def release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def at_floor(pin: str, floor: str) -> bool:
    r"""``pin`` is ``floor``'s own release, at or above it: 1.24.4 for >=1.24, not 1.25.0 (nor 1.23.5)."""
    return release(pin) >= release(floor) and release(pin)[: len(release(floor))] == release(floor)


def test_each_dependency_is_pinned_at_its_floor():
    declared, pinned = floors(), pins()
    assert set(declared) - NOT_PINNED == set(pinned)
    assert {name: (pinned[name], floor) for name, floor in declared.items()
            if name in pinned and not at_floor(pinned[name], floor)} == {}


def test_at_floor():
    assert at_floor("1.24.4", "1.24") and at_floor("2.18.1", "2.18.1") and at_floor("6.0.1", "6")
    assert not at_floor("1.25.0", "1.24") and not at_floor("1.23.5", "1.24") and not at_floor("2.18.0", "2.18.1")
