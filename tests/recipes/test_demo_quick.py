r"""recipes/demo/run.sh --quick true through every stage (what CI runs), then a rerun that skips them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

RECIPE = Path(__file__).parents[2] / "recipes" / "demo" / "run.sh"


def test_quick_demo_runs_every_stage(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = ["bash", str(RECIPE), "--quick", "true", "--exp", str(tmp_path / "exp")]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    for stage in range(6):
        assert f"Stage {stage}:" in result.stderr
        assert (tmp_path / "exp" / ".done" / f"stage{stage}").exists()
    for model in ("dnf", "nf"):
        summary = json.loads((tmp_path / "exp" / model / "scores" / "summary.json").read_text())
        assert set(summary["sets"]) == {"dev_native", "test_native", "test_zh", "test_ja"}
        assert summary["reference"] == "test_native"
        assert {"log_ll", "gmm_log_ll"} <= set(summary["detection"]["test_ja"]["by_score"])
        assert (tmp_path / "exp" / model / "report.html").exists()
    blurmask = tmp_path / "exp" / "dnf" / "blurmask"
    summary = json.loads((blurmask / "summary.json").read_text())
    assert {k: v["num_utts"] for k, v in summary["sets"].items()} == {"test_native": 4, "test_zh": 4}
    assert set(summary["all"]["baselines"]) == {"floor", "mean", "blur"}
    assert len(list(blurmask.glob("test_*/figures/*.png"))) == 8 and (blurmask / "deletion_curves.png").exists()
    results = (tmp_path / "exp" / "RESULTS.md").read_text()
    assert "| test_ja |" in results and "GMM LogLL" in results
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "Stage 0:" not in again.stderr
