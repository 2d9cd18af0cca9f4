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


def test_an_earlier_run_is_kept_a_failed_section_is_said_and_the_tables_can_be_written_again(tmp_path, monkeypatch):
    r"""``--only`` into a folder of an earlier run replaced its every section; a section's error lost the tables
    of those before it (no latest.md); latest.md lagged latest.json after a stop. Now: the earlier run's files
    renamed, the others' tables kept and the failure listed, exit status 1, and ``--tables`` rebuilds the .md."""
    import pytest

    sys.path.insert(0, str(RUNNER.parent))
    import run_all

    blur = [{"bins": 40, "frames": 20, "mode": "renorm", "m_max": 10.0, "triangular_blur_ms": 1.0, "dense_ms": 3.0,
             "speedup": 3.0, "max_rel_diff_float64": 1e-16, "max_rel_diff_float32": 1e-7, "equal": True}]

    def section(name, repeats, quick):
        if name == "optim":
            raise RuntimeError("out of memory")
        return blur

    monkeypatch.setattr(run_all, "run_section", section)
    monkeypatch.setattr(run_all, "describe_machine", lambda: "a test machine")
    run_all.main(["--only", "blur", "--out", str(tmp_path)])
    first = (tmp_path / "latest.json").read_text()
    with pytest.raises(SystemExit, match="1 section\\(s\\) failed: optim"):
        run_all.main(["--only", "optim", "blur", "--out", str(tmp_path)])
    earlier = sorted(tmp_path.glob("run-*"))
    assert [p.suffix for p in earlier] == [".json", ".md"] and earlier[0].read_text() == first
    results = json.loads((tmp_path / "latest.json").read_text())
    assert results["failed"] == {"optim": "RuntimeError: out of memory"} and results["blur"] == blur
    table = (tmp_path / "latest.md").read_text()
    assert "### Blur-mask kernel" in table and "| 3.0x | 1.0e-16 | 1.0e-07 | yes |" in table
    assert "### Failed sections\n\n- optim: RuntimeError: out of memory" in table
    (tmp_path / "latest.md").unlink()
    run_all.main(["--tables", str(tmp_path / "latest.json")])
    assert (tmp_path / "latest.md").read_text() == table


def test_bad_benchmark_options_are_refused_before_any_work():
    r"""``--repeats 0`` failed after the run ('no median for empty data'); ``bench_blur --bins 1`` reported its
    rounding as a difference of 3.0; ``bench_score --scale 1`` divided by zero at its end; ``bench_train`` of one
    logged window had no steady rate."""
    for script, args, said in [("bench_blur.py", ["--repeats", "0"], "--repeats: must be at least 1, got 0"),
                               ("bench_blur.py", ["--bins", "1"], "--bins: must be at least 2, got 1"),
                               ("bench_blur.py", ["--m-max", "0.5"], "--m-max: must be at least 1 (bins), got 0.5"),
                               ("bench_score.py", ["--scale", "1"], "--scale: must be at least 2, got 1"),
                               ("bench_train.py", ["--frames", "5000", "--batch", "1000"], "is 5 step(s)"),
                               ("run_all.py", ["--repeats", "x"], "expected a whole number, got 'x'")]:
        done = subprocess.run([sys.executable, str(RUNNER.parent / script), *args], capture_output=True, text=True)
        assert done.returncode == 2 and said in done.stderr, (script, done.stderr)
