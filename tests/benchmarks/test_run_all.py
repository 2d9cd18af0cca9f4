r"""benchmarks/run_all.py --quick: every benchmark runs end to end at tiny sizes and fills its table.

The numbers of a quick run mean nothing; this keeps the scripts behind docs/performance.md working.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from flowaccent.runtime import bf16_in_hardware

RUNNER = Path(__file__).resolve().parents[2] / "benchmarks" / "run_all.py"


def test_quick_run_fills_every_section(tmp_path):
    subprocess.run([sys.executable, str(RUNNER), "--quick", "--out", str(tmp_path)], check=True,
                   capture_output=True, text=True)
    results = json.loads((tmp_path / "latest.json").read_text())
    table = (tmp_path / "latest.md").read_text()
    for section, heading in [("model", "Model only"), ("optim", "Adam step alone"),
                             ("malloc", "Allocator"), ("train", "`flowaccent train`"),
                             ("score", "`flowaccent score`"), ("baseline", "The GMM baseline"),
                             ("loading", "Data loading alone"),
                             ("quality", "Time to quality"),
                             ("precision", "Precision options"),
                             ("blur", "Blur-mask kernel"), ("peers", "Peers")]:
        assert results[section], section
        assert f"### {heading}" in table, heading
    assert [r["malloc"] for r in results["malloc"]] == ["system", "tuned"]
    assert {r["implementation"] for r in results["peers"]} >= {"flowaccent", "plain"}
    assert results["score"]["rss_mib"] > 0 and results["train"]["model_only_fps"] > 0
    assert results["train"]["hidden"] == 64 and "### `flowaccent train` end to end (D=120, 2 x 64)" in table
    assert results["score"]["hidden"] == 16 and "### `flowaccent score` end to end (D=120, 2 x 16 DNF)" in table
    assert results["score"]["other_seconds"] > 0 and results["train"]["loading_s"] > 0
    assert "marginal_fps" in results["score"] and "that do not grow with the corpus" in table
    assert results["train"]["data_wait_s"] >= 0 and "Data loading: one epoch" in table
    assert results["train"]["compiled"]["steady_fps"] > 0 and results["model"][0]["train_compiled_fps"] > 0
    assert results["model"][0]["train_mkl_fps"] > 0 and "| vs MKL products |" in table
    assert results["model"][0]["infer_unfolded_fps"] > 0 and "| vs unfolded |" in table
    assert results["blur"][0]["max_rel_diff_float64"] < 1e-10
    assert results["baseline"]["max_utt_diff"] < 1e-9 and results["baseline"]["baseline_s"]["loading"] is not None
    assert results["model"][0]["train_onednn_products_share_packed"] > 0 or not torch.backends.mkldnn.is_available()
    assert results["optim"][0]["fused_ms"] > 0
    if torch.backends.mkldnn.is_available():
        assert results["products"][0]["weight_grad_gflops"] > 0 and "### A training step's oneDNN products" in table
    assert results["loading"]["stream_seconds"] > 0 and results["loading"]["deltas_max_diff"] < 1e-5
    assert results["quality"]["reference_curve"] and results["quality"]["flowaccent_curve"]
    precision = results["precision"]
    assert [r["precision"] for r in precision["train"]][:1] == ["fp32"] and "bf16" in table
    assert precision["summary"][0]["speedup"] == 1.0 and precision["score"][0]["scored_max_utt_diff"] == 0
    if bf16_in_hardware(torch.device("cpu")):  # the CPU's bf16 model table, beside this run's fp32 one
        bf16 = results["bf16"][0]
        assert bf16["precision"] == "bf16" and "### bf16 on this CPU" in table
        assert bf16["train_fps_vs_fp32"] > 0 and bf16["infer_fps_vs_fp32"] > 0  # the fp32 side in the same repeats
        assert f"| {bf16['train_fps_vs_fp32']:.2f}x |" in table
    else:
        assert results["bf16"] is None
