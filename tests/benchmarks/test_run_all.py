r"""benchmarks/run_all.py --quick: every benchmark runs end to end at tiny sizes and fills its table.

The numbers of a quick run mean nothing; this keeps the scripts behind docs/performance.md working.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RUNNER = Path(__file__).resolve().parents[2] / "benchmarks" / "run_all.py"


def test_quick_run_fills_every_section(tmp_path):
    subprocess.run([sys.executable, str(RUNNER), "--quick", "--out", str(tmp_path)], check=True,
                   capture_output=True, text=True)
    results = json.loads((tmp_path / "latest.json").read_text())
    table = (tmp_path / "latest.md").read_text()
    for section, heading in [("model", "Model only"), ("optim", "Adam step alone"),
                             ("malloc", "Allocator"), ("train", "`flowaccent train`"),
                             ("score", "`flowaccent score`"), ("quality", "Time to quality"),
                             ("precision", "Precision options"),
                             ("blur", "Blur-mask kernel"), ("peers", "Peers")]:
        assert results[section], section
        assert f"### {heading}" in table, heading
    assert [r["malloc"] for r in results["malloc"]] == ["system", "tuned"]
    assert {r["implementation"] for r in results["peers"]} >= {"flowaccent", "plain"}
    assert results["score"]["rss_mib"] > 0 and results["train"]["model_only_fps"] > 0
    assert results["score"]["other_seconds"] > 0 and results["train"]["loading_s"] > 0
    assert results["train"]["data_wait_s"] >= 0 and "Data loading: one epoch" in table
    assert results["train"]["compiled"]["steady_fps"] > 0 and results["model"][0]["train_compiled_fps"] > 0
    assert results["blur"][0]["max_rel_diff_float64"] < 1e-10
    assert results["optim"][0]["fused_ms"] > 0
    assert results["quality"]["reference_curve"] and results["quality"]["flowaccent_curve"]
    assert [r["precision"] for r in results["precision"]][:1] == ["fp32"] and "bf16" in table
