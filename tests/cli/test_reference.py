r"""docs/cli.md is the current ``--help`` of every command."""

from __future__ import annotations

from pathlib import Path

from flowaccent.cli.reference import cli_reference


def test_cli_reference_is_current():
    current = cli_reference().replace("optional arguments:", "options:")  # Python 3.10 wording
    written = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()
    assert current == written, "run: python -m flowaccent.cli.reference > docs/cli.md"
