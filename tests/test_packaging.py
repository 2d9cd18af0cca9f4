r"""The package's metadata: one version (flowaccent/__init__.py's, which pyproject.toml reads) and the license's
text shipped beside its SPDX name."""

from __future__ import annotations

import hashlib
import importlib.metadata

import pytest

import flowaccent

from .conftest import REPO_ROOT as ROOT


def test_the_installed_version_is_the_packages():
    r"""A version changed in __init__.py without reinstalling leaves the old one in the install's metadata
    (``pip show``, wheels' names): ``make install`` again."""
    assert importlib.metadata.version("flowaccent") == flowaccent.__version__


def test_pyproject_reads_the_version_and_ships_the_license():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "flowaccent.__version__"}
    assert project["project"]["license"] == "Apache-2.0" and project["project"]["license-files"] == ["LICENSE"]
    # apache.org's LICENSE-2.0.txt, byte for byte (the digest two unrelated wheels' copies share)
    text = (ROOT / "LICENSE").read_bytes()
    assert hashlib.md5(text).hexdigest() == "3b83ef96387f14655fc854ddc3c6bd57"
