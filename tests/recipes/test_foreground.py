r"""recipes/common/foreground.sh: a recipe's commands stop with it. A ``kill PID`` of run.sh ended the shell
alone and its ``flowaccent`` went on, orphaned (bash runs a trap only after the foreground command ends)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..faults.test_interruptions import alive, running_a_pipe, sigint_default, slow_data_dir

FOREGROUND = Path(__file__).parents[2] / "recipes" / "common" / "foreground.sh"
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")


def start(tmp_path: Path, how: str = "", **popen) -> tuple[subprocess.Popen, int]:
    r"""A recipe-like script that sources foreground.sh and runs a slow ``flowaccent fbank`` (after ``how``, a
    prefix such as ``foreground_in DIR``), then ``echo after``; returns it once the fbank runs its first wav.scp
    pipe, with the fbank's pid."""
    data = slow_data_dir(tmp_path)
    script = tmp_path / "run.sh"
    bin_dir = Path(sys.executable).parent  # the flowaccent of this Python
    script.write_text(f"set -euo pipefail\nexport PATH={bin_dir}:$PATH\n. {FOREGROUND}\n"
                      f"{how} flowaccent fbank {data} --quiet\necho after\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    shell = subprocess.Popen(["bash", str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, preexec_fn=sigint_default, **popen)
    deadline = time.time() + 60
    command: list[int] = []
    while time.time() < deadline:
        command = running_a_pipe(shell.pid)  # the fbank, once it reads audio
        if command:
            break
        assert shell.poll() is None, shell.communicate()
        time.sleep(0.05)
    assert command, "fbank never started"
    return shell, command[0]


@pytest.mark.parametrize("how", ["", "foreground_in /"], ids=["flowaccent", "foreground_in"])
def test_kill_of_the_recipe_stops_its_command(tmp_path, how):
    r"""Also a command run in another folder (``foreground_in``): the wsj_l2 recipe's fbank ran in a subshell,
    ``(cd DIR && flowaccent fbank ...)``, which drops the trap, and went on to its end after ``kill``."""
    shell, command = start(tmp_path, how)
    shell.terminate()  # SIGTERM to the shell alone, as `kill PID` sends it
    out, err = shell.communicate(timeout=60)
    assert not alive(command), "the command went on after its recipe was killed"
    assert "flowaccent fbank: terminated" in err and "after" not in out, (out, err)
    assert err.endswith(f"{tmp_path / 'run.sh'}: stopped by SIGTERM; run it again with the same options to go on (the "
                        "finished stages are skipped)\n"), err  # the command's hint is of the recipe's folder
    assert shell.returncode == -signal.SIGTERM, err


def test_ctrl_c_lets_the_command_clean_up_then_stops_the_recipe(tmp_path):
    shell, command = start(tmp_path, start_new_session=True)
    os.killpg(shell.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole foreground group, once
    out, err = shell.communicate(timeout=60)
    assert not alive(command)
    assert "flowaccent fbank: interrupted" in err and "after" not in out, (out, err)
    assert err.endswith("stopped by SIGINT; run it again with the same options to go on (the finished stages are "
                        "skipped)\n"), err
    assert shell.returncode == -signal.SIGINT, err
