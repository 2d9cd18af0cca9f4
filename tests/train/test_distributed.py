r"""``torchrun --nproc_per_node 2`` on CPU (gloo): both ranks end with the same model; the run records its
process count, and a resume with another count is refused within an epoch."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch

from flowaccent.errors import ConfigError
from flowaccent.train.checkpoint import Progress
from flowaccent.train.distributed import DistEnv
from flowaccent.train.trainer import _check_world

from .conftest import small_config


@pytest.mark.parametrize("norm", ["actnorm", "batchnorm"])
def test_two_ranks_agree(gaussian_dir, tmp_path, norm):
    r"""With BatchNorm the ranks' running statistics differed at the end (each updates its own after DDP hands
    out rank 0's), and so did their digests: every rank now ends with rank 0's, the ones it saved."""
    path, _ = gaussian_dir
    config = small_config(epochs=2, batch_size=1000).with_overrides({"model": {"norm": norm}})
    (tmp_path / "conf.yaml").write_text(config.to_yaml())
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "flowaccent",
        "train",
        "--config",
        str(tmp_path / "conf.yaml"),
        "--exp",
        str(tmp_path / "exp"),
        str(path),
        "--quiet",
        "--train.device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    digests = dict(re.findall(r"rank (\d)/2: parameter digest ([0-9a-f]{16})", result.stderr))  # lines may interleave
    assert set(digests) == {"0", "1"}, result.stderr[-3000:]
    assert digests["0"] == digests["1"]
    assert (tmp_path / "exp" / "final.pt").exists()
    assert "Traceback" not in result.stderr
    assert len(re.findall(r"^train: .*: 2 epochs", result.stderr, re.M)) == 1, "one summary line, from rank 0"
    if norm == "batchnorm":
        return
    assert torch.load(tmp_path / "exp" / "checkpoints" / "last.pt", weights_only=False)["progress"]["world"] == 2
    # one process goes on from the end of the 2-process run's last epoch, and says so
    resume = [sys.executable, "-m", "flowaccent", *cmd[cmd.index("train"):], "--resume", "--train.epochs", "3"]
    result = subprocess.run(resume, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train: resuming a run of 2 processes with 1 at the start of epoch 3" in result.stderr
    assert torch.load(tmp_path / "exp" / "checkpoints" / "last.pt", weights_only=False)["progress"]["world"] == 1


def test_a_resume_within_an_epoch_needs_the_same_process_count(tmp_path, capsys):
    last = tmp_path / "last.pt"
    with pytest.raises(ConfigError, match=r"trained with 2 processes, stopped within epoch 4; resume it with 2 "
                                          r"\(torchrun --nproc_per_node 2\)"):
        _check_world(Progress(epoch=3, step_in_epoch=5, world=2), DistEnv(0, 1, torch.device("cpu")), last)
    same = Progress(epoch=3, step_in_epoch=5, world=2)
    _check_world(same, DistEnv(1, 2, torch.device("cpu")), last)
    assert same.world == 2 and capsys.readouterr().err == ""
    assert Progress().world == 1  # a checkpoint from before the count was recorded: one process
