r"""``torchrun --nproc_per_node 2`` on CPU (gloo): both ranks end with the same model."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from .conftest import small_config


def test_two_ranks_agree(gaussian_dir, tmp_path):
    path, _ = gaussian_dir
    config = small_config(epochs=2, batch_size=1000)
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
    digests = dict(re.findall(r"rank (\d)/2: parameter digest (\w+)", result.stderr))
    assert set(digests) == {"0", "1"}, result.stderr[-3000:]
    assert digests["0"] == digests["1"]
    assert (tmp_path / "exp" / "final.pt").exists()
    assert "Traceback" not in result.stderr
