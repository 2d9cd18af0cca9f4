r"""A recipe's path.sh: which flowaccent the recipe runs (an active virtual environment's, where it has one, else
the repository's .venv)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import REPO_ROOT

RECIPES = REPO_ROOT / "recipes"
REPO_VENV_BIN = (REPO_ROOT / ".venv" / "bin").resolve()


def path_after_sourcing(recipe: str, virtual_env: Path) -> list[str]:
    env = {**os.environ, "VIRTUAL_ENV": str(virtual_env), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(["bash", "-c", '. ./path.sh && echo "$PATH"'], cwd=RECIPES / recipe, env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip().split(":")


def fake_venv(root: Path, with_flowaccent: bool, with_python: bool = True) -> Path:
    r"""A folder of ``bin/flowaccent`` (doing nothing) and ``bin/python3`` (the Python of the tests, which imports
    flowaccent)."""
    (root / "bin").mkdir(parents=True)
    if with_flowaccent:
        (root / "bin" / "flowaccent").write_text("#!/bin/sh\n")
        (root / "bin" / "flowaccent").chmod(0o755)
        if with_python:
            (root / "bin" / "python3").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
            (root / "bin" / "python3").chmod(0o755)
    return root


def recipes_without_venv(tmp_path: Path, recipe: str) -> Path:
    r"""A copy of ``recipe`` and ``common``, where no repository .venv is beside them."""
    import shutil

    copy = tmp_path / "recipes"
    for name in (recipe, "common"):
        shutil.copytree(RECIPES / name, copy / name, ignore=shutil.ignore_patterns("exp", "data"))
    return copy / recipe


@pytest.mark.parametrize("recipe", ["demo", "wsj_l2"])
def test_flowaccent_by_a_link_brings_its_own_python(tmp_path, recipe):
    r"""flowaccent on PATH by a link (pipx), the first python3 another: the demo ran every stage, then its
    make_results.py failed on 'No module named flowaccent'. The Python beside flowaccent now goes first, and where
    there is none that imports flowaccent, that is said before any stage."""
    venv = fake_venv(tmp_path / "venv", with_flowaccent=True)
    links = tmp_path / "links"
    links.mkdir()
    (links / "flowaccent").symlink_to(venv / "bin" / "flowaccent")
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    env["PATH"] = f"{links}:/usr/bin:/bin"
    folder = recipes_without_venv(tmp_path, recipe)
    done = subprocess.run(["bash", "-c", '. ./path.sh && echo "$PATH"'], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.split(":")[0] == str(venv / "bin"), done.stderr
    (venv / "bin" / "python3").unlink()
    done = subprocess.run(["bash", "run.sh"], cwd=folder, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.startswith(f"run.sh: /usr/bin/python3 cannot import flowaccent, "
                                                           f"which the recipe's local/*.py scripts need, and no "
                                                           f"python3 beside {links / 'flowaccent'} can"), done.stderr
    assert not (folder / "exp").exists()


@pytest.mark.parametrize("recipe", ["demo", "wsj_l2"])
def test_an_active_venv_with_flowaccent_comes_first(tmp_path, recipe):
    venv = fake_venv(tmp_path / "venv", with_flowaccent=True)
    assert path_after_sourcing(recipe, venv)[0] == str(venv / "bin")


@pytest.mark.parametrize("recipe", ["demo", "wsj_l2"])
def test_an_active_venv_without_flowaccent_is_passed_over(tmp_path, recipe):
    venv = fake_venv(tmp_path / "venv", with_flowaccent=False)
    if (REPO_VENV_BIN / "flowaccent").exists():  # make's .venv: there in CI and after `make install`
        first = path_after_sourcing(recipe, venv)[0]
        assert first != str(venv / "bin") and Path(first).resolve() == REPO_VENV_BIN
    else:  # `make test-lower` in a fresh clone: no .venv to fall back on (it said first == /usr/bin; path.sh stops)
        done = subprocess.run(["bash", "-c", ". ./path.sh"], cwd=RECIPES / recipe, capture_output=True, text=True,
                              env={**os.environ, "VIRTUAL_ENV": str(venv), "PATH": "/usr/bin:/bin"}, timeout=60)
        assert done.returncode == 1 and f"the active virtual environment ({venv}) has no bin/flowaccent" in done.stderr


@pytest.mark.parametrize("recipe", ["demo", "wsj_l2"])
def test_no_flowaccent_to_run_is_said_before_any_stage(tmp_path, recipe):
    r"""Before ``make install`` (no .venv) and with no virtual environment active, the demo made exp/quick/, said
    'Stage 0: ...', and stopped on 'exec: flowaccent: not found' (status 127)."""
    folder = recipes_without_venv(tmp_path, recipe)
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    done = subprocess.run(["bash", "run.sh"], cwd=folder, env={**env, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr == (
        "run.sh: flowaccent not found: run 'make install' in the repository root (the recipes use its .venv), or "
        "activate a virtual environment that has flowaccent\n"), done.stderr
    assert not (folder / "exp").exists()
    empty = fake_venv(tmp_path / "empty", with_flowaccent=False)  # active, but without flowaccent: named
    done = subprocess.run(["bash", "run.sh"], cwd=folder, env={**env, "PATH": "/usr/bin:/bin", "VIRTUAL_ENV":
                                                              str(empty)}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.startswith(f"run.sh: flowaccent not found: the active virtual "
                                                           f"environment ({empty}) has no bin/flowaccent"), done.stderr
