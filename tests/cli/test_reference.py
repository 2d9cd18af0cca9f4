r"""docs/cli.md is the current ``--help`` of every command."""

from __future__ import annotations

from pathlib import Path

from flowaccent.cli.reference import cli_reference


def test_cli_reference_is_current():
    current = cli_reference().replace("optional arguments:", "options:")  # Python 3.10 wording
    written = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()
    assert current == written, "run: python -m flowaccent.cli.reference > docs/cli.md"


def test_aliases_read_alike_on_every_python():
    r"""Python 3.13's argparse writes an option's aliases with their value once (``--a, --b X``), earlier ones
    after each (``--a X, --b X``): docs/cli.md, written on 3.11, failed this file's other test on 3.13."""
    import argparse

    from flowaccent.cli.reference import _one_format

    parser = argparse.ArgumentParser(prog="p")
    parser.add_argument("--frame-length-ms", "--frame-length", type=float, metavar="FLOAT")
    parser.add_argument("--quiet", "-q", action="store_true")
    own = argparse.HelpFormatter._format_action_invocation
    with _one_format():
        text = parser.format_help()
    assert "--frame-length-ms FLOAT, --frame-length FLOAT" in text and "--quiet, -q" in text
    assert argparse.HelpFormatter._format_action_invocation is own  # argparse's own again after it


def test_resumes_help_names_every_field_resume_lets_change():
    r"""``train --resume``'s help listed the fields by hand and left out train.precision, which may change."""
    import re

    from flowaccent.train.config import RESUMABLE

    text = " ".join(cli_reference().split())
    said = re.search(r"--resume continue from .*? only (.*?) may change", text).group(1)
    assert sorted(re.split(r", | and ", said)) == sorted(name.removeprefix("train.") if name != "train.epochs" else name
                                                         for name in RESUMABLE)
