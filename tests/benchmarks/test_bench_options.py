r"""The benchmark options the GPU runs use (benchmarks/run_all.py --quick covers the defaults): training
end to end without the compiled variant, the precision section keeping its rows when cut short,
the GPU table of run_all, and the A/Bs not in run_all (bench_tanh's coupling tanh, bench_ab's checkouts)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_ab  # noqa: E402
import bench_datadir  # noqa: E402
import bench_precision  # noqa: E402
import bench_tanh  # noqa: E402
import bench_train  # noqa: E402
import run_all  # noqa: E402


def other_checkout(tmp_path: Path) -> Path:
    r"""A copy of this checkout's package whose import leaves a mark, as ``--other-tree`` takes it."""
    import shutil

    tree = tmp_path / "tree"
    shutil.copytree(Path(__file__).resolve().parents[2] / "flowaccent", tree / "flowaccent",
                    ignore=shutil.ignore_patterns("__pycache__"))
    with open(tree / "flowaccent" / "__init__.py", "a") as f:
        f.write("\nimport pathlib\npathlib.Path(__file__).with_name('imported_here').touch()\n")
    return tree


def test_each_repeat_runs_the_variants_in_another_order():
    r"""With a fixed order, the second of two `flowaccent train` commands in each repeat ran 1-2% faster, whichever
    checkout it was: the order's bias, taken for the code's."""
    from bench_model import in_turn

    assert [in_turn("abc", r) for r in range(4)] == [list("abc"), list("bca"), list("cab"), list("abc")]
    assert in_turn({"here": 1, "other": 2}, 1) == ["other", "here"] and in_turn([], 3) == []


def test_train_without_the_compiled_variant(tmp_path, monkeypatch):
    import subprocess

    tree = other_checkout(tmp_path)
    run, commands = subprocess.run, []

    def recorded(argv, *args, **kwargs):
        commands.append(Path(argv[argv.index("--exp") + 1]).name)
        return run(argv, *args, **kwargs)

    monkeypatch.setattr(bench_train.subprocess, "run", recorded)
    result = bench_train.main(["--frames", "20000", "--batch", "1000", "--blocks", "2", "--hidden", "64",
                               "--repeats", "2", "--steps", "1",
                               "--epochs", "2", "--no-compile", "--other-prefetch", "4", "--other-tree", str(tree),
                               "--json", str(tmp_path / "train.json")])
    assert commands == ["exp0_eager", "exp0_prefetch4", "exp0_tree", "exp1_prefetch4", "exp1_tree", "exp1_eager"]
    assert (tree / "flowaccent" / "imported_here").exists()  # the other checkout's command ran
    assert result["other_tree"]["steady_fps"] > 0 and result["other_tree"]["vs_default_steady"] > 0
    assert result["compiled"] is None and "compiled_speedup_steady" not in result
    assert result["steady_fps"] > 0 and result["model_only_fps"] > 0 and result["device"] == "cpu"
    assert result["epochs"] == 2 and 0 <= result["data_wait_first_epoch_s"] <= result["data_wait_s"]
    assert [len(run) for run in result["epoch_seconds"]] == [2, 2] and result["epoch_seconds"][0][1]["save_s"] > 0
    other = result["other_prefetch"]  # the command once more with a loader thread 4 batches ahead
    assert other["prefetch"] == 4 and other["model_only_fps"] == result["model_only_fps"]
    assert other["steady_fps"] > 0 and other["vs_default_wall"] > 0 and len(other["epoch_seconds"]) == 2
    assert json.loads((tmp_path / "train.json").read_text())["steady_ratio"] == result["steady_ratio"]


def test_datadir_times_both_checkouts(tmp_path):
    tree = other_checkout(tmp_path)
    result = bench_datadir.main(["--utts", "300", "--speaker-utts", "100", "--repeats", "1", "--other-tree", str(tree),
                                 "--json", str(tmp_path / "d.json")])
    assert (tree / "flowaccent" / "imported_here").exists()  # the other checkout's commands ran
    assert [r["command"] for r in result["commands"]] == ["validate", "train check", "score", "spk table"]
    assert all(r["seconds"] > 0 and r["other_seconds"] > 0 and r["speedup"] > 0 for r in result["commands"])
    assert all(10 < r["rss_mib"] < 4096 and 10 < r["other_rss_mib"] < 4096 for r in result["commands"])
    assert set(result["parts"]) == {"read_table utt2spk", "read_scp feats.scp", "load_data_dir", "fingerprint_text"}
    assert json.loads((tmp_path / "d.json").read_text()) == result


def test_precision_keeps_the_rows_of_an_interrupted_run(tmp_path, monkeypatch):
    calls, scored = [], []

    def train_row(root, train, test, precision, seed, extra):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the run's time ran out during the third training
        calls.append((precision, seed))
        return {"precision": precision, "seed": seed, "train_seconds": 1.0}

    monkeypatch.setattr(bench_precision, "prepare_corpus", lambda root, n: root / "corpus" / "train_native")
    monkeypatch.setattr(bench_precision.subprocess, "run", lambda *a, **k: None)  # fbank of test_native
    monkeypatch.setattr(bench_precision, "train_row", train_row)
    monkeypatch.setattr(bench_precision, "precisions", lambda: ["fp32", "bf16"])

    def score(exp, data, out, precision):
        scored.append((exp.name, precision, len(calls)))
        return 2.0, np.array([1.0, 3.0]) + (precision == "bf16"), np.array([10, 30])

    monkeypatch.setattr(bench_precision, "score", score)
    with pytest.raises(KeyboardInterrupt):
        bench_precision.main(["--json", str(tmp_path / "p.json")])
    kept = json.loads((tmp_path / "p.json").read_text())
    assert kept["partial"] and [(r["precision"], r["seed"]) for r in kept["train"]] == [("fp32", 0), ("bf16", 0)]
    # the scoring table right after the first training (fp32, seed 0), with that model: a run cut short keeps it
    assert scored == [("exp_fp32_s0", "fp32", 1), ("exp_fp32_s0", "bf16", 1)]
    assert [(r["precision"], r["scored_nll"], r["scored_max_utt_diff"]) for r in kept["score"]] == [
        ("fp32", 2.5, 0.0), ("bf16", 3.5, 1.0)]


def test_gpu_table_names_the_compile_mode():
    row = {"precision": "bf16", "compile_mode": "reduce-overhead", "dim": 440, "batch": 2048, "matmul_gflops": 4.0e4,
           "train_fps": 1.0e5, "train_share": 0.1, "fused_speedup": 1.1, "train_compiled_fps": 5.0e5,
           "train_compiled_share": 0.5, "infer_fps": 5.0e5, "infer_share": 0.15}
    table = run_all.markdown({"date": "d", "machine": "m", "gpu": [row]})
    assert "| bf16 | 440 | 2048 | 40000.0 | 100000 | 10.0% | 1.10x | 500000 | 50.0% | 500000 | 15.0% |" in table
    assert "mode `reduce-overhead` (CUDA graphs)" in table


def test_prefetch_bench_times_every_depth(tmp_path):
    import bench_prefetch

    rows = bench_prefetch.main(["--frames", "30000", "--step-ms", "1", "--repeats", "1", "--epochs", "2",
                                "--json", str(tmp_path / "p.json")])
    assert [r["mode"] for r in rows] == ["sleep", "launch"]
    depths = (0, 2, rows[0]["burst"] + 2)
    assert all(r[f"depth{d}_ms"] > 0 and r[f"depth{d}_waited_s"] >= 0 for r in rows for d in depths)
    ways = ("inline", "per_epoch", "across")
    assert all(r["epochs"] == 2 and r[f"{w}_ms"] > 0 and r[f"{w}_waited_s"] >= 0 for r in rows for w in ways)
    assert json.loads((tmp_path / "p.json").read_text()) == rows


def test_validation_bench_times_both_ways_and_they_agree(tmp_path):
    import bench_validation

    rows = bench_validation.main(["--utts", "6", "--utt-frames", "50", "--batch", "100", "--repeats", "1",
                                  "--json", str(tmp_path / "v.json")])
    assert [r["hidden"] for r in rows] == [512, 16]
    assert all(r["per_utterance_ms"] > 0 and r["joined_ms"] > 0 and r["nll_difference"] < 1e-4 for r in rows)
    assert json.loads((tmp_path / "v.json").read_text()) == rows


def test_checkpoint_bench_times_both_ways(tmp_path):
    import bench_checkpoint

    result = bench_checkpoint.main(["--repeats", "1", "--dir", str(tmp_path), "--json", str(tmp_path / "c.json")])
    assert result["two_files_ms"] > 0 and result["linked_ms"] > 0 and result["file_mb"] > 10
    assert json.loads((tmp_path / "c.json").read_text()) == result
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]  # its temporary folder removed


def test_score_bench_times_another_checkout(tmp_path):
    import bench_score

    tree = other_checkout(tmp_path)
    result = bench_score.main(["--frames", "6000", "--scale", "2", "--hidden", "16", "--blocks", "2", "--repeats", "1",
                               "--large-repeats", "2", "--other-tree", str(tree), "--processes", "2"])
    assert result["processes"]["processes"] == 2 and result["processes"]["seconds"] > 0
    assert (tree / "flowaccent" / "imported_here").exists()
    other = result["other_tree"]
    assert other["seconds"] > 0 and other["large_seconds"] > 0 and other["speedup"] > 0
    runs = result["large_rss_runs"]  # the large corpus scored twice; its RSS their median
    assert len(runs) == 2 and result["large_rss_mib"] == sum(runs) / 2 and result["large_repeats"] == 2
    with pytest.raises(SystemExit, match="no flowaccent/ package"):
        bench_score.main(["--frames", "6000", "--repeats", "1", "--other-tree", str(tmp_path)])


def test_fbank_bench_times_another_checkout(tmp_path, capsys):
    import bench_fbank

    tree = other_checkout(tmp_path)
    rates = bench_fbank.main(["--utts", "6", "--seconds", "0.5", "--repeats", "1", "--other-tree", str(tree),
                              "--left-out", "2"])
    assert list(rates) == ["knf", "compute", "fbank-1", "fbank-2", "fbank-2 here", "fbank-2 other", "resume left out s",
                           "scratch s"]
    assert all(r > 0 for r in rates.values())
    assert (tree / "flowaccent" / "imported_here").exists()
    out, err = capsys.readouterr()
    assert "this checkout / " in out and "--resume after 2 failed utterance(s) left out: " in out
    assert "took over 4 utterance(s) of 4 recording(s)" in err and "computing the other 0 recording(s)" in err


def test_startup_bench_times_each_step_in_fresh_processes(tmp_path, capsys):
    import bench_startup

    tree = other_checkout(tmp_path)
    result = bench_startup.main(["--frames", "500", "--repeats", "1", "--blocks", "2", "--hidden", "16", "--profile",
                                 "--blurmask", "--other-tree", str(tree), "--json", str(tmp_path / "s.json")])
    rows = result["rows"]
    assert list(rows) == ["python", "import torch", "+ device", "+ model", "score", "report", "report --blurmask",
                          "help", "train --help", "score (other)", "report (other)", "report --blurmask (other)",
                          "help (other)", "train --help (other)"]  # no GPU here
    assert all(r["seconds"] > 0 and len(r["all"]) == 1 for r in rows.values())
    assert rows["score"]["seconds"] > rows["python"]["seconds"]  # it imports torch; the bare interpreter does not
    assert abs(rows["+ model"]["adds"] - (rows["+ model"]["seconds"] - rows["+ device"]["seconds"])) < 1e-9
    assert abs(rows["report"]["adds"] - (rows["report"]["seconds"] - rows["python"]["seconds"])) < 1e-9
    masked = rows["report --blurmask"]
    assert abs(masked["adds"] - (masked["seconds"] - rows["python"]["seconds"])) < 1e-9
    assert abs(rows["help"]["adds"] - (rows["help"]["seconds"] - rows["python"]["seconds"])) < 1e-9
    assert abs(rows["train --help"]["adds"] - (rows["train --help"]["seconds"] - rows["python"]["seconds"])) < 1e-9
    assert abs(rows["score (other)"]["adds"] - (rows["score (other)"]["seconds"] - rows["score"]["seconds"])) < 1e-9
    assert (tree / "flowaccent" / "imported_here").exists()  # the other checkout's commands ran
    assert "cumulative" in capsys.readouterr().out  # the profile's table
    assert json.loads((tmp_path / "s.json").read_text()) == result


def test_tanh_ab_runs_both_and_puts_the_coupling_tanh_back(tmp_path):
    from flowaccent.flows import coupling

    mine = coupling.tanh_
    rows = bench_tanh.main(["--dims", "8", "--batches", "64", "--repeats", "1", "--steps", "1",
                            "--json", str(tmp_path / "tanh.json")])
    assert coupling.tanh_ is mine  # the patch ends with its block (flows.halves calls it through flows.coupling)
    (row,) = rows
    assert row["error_torch"] < 1e-7 and row["error_coupling"] < 2.5e-7
    assert row["infer_speedup"] > 0 and row["train_speedup"] > 0 and {"op_torch", "op_coupling"} <= row.keys()
    assert json.loads((tmp_path / "tanh.json").read_text())["rows"][0]["dim"] == 8


def test_ab_times_both_checkouts_in_fresh_processes(tmp_path):
    tree = other_checkout(tmp_path)
    rows = bench_ab.main(["--other-tree", str(tree), "--what", "train", "--dims", "8", "--batches", "64",
                          "--repeats", "2", "--steps", "1", "--inner", "1", "--norm", "batchnorm",
                          "--json", str(tmp_path / "ab.json")])
    assert (tree / "flowaccent" / "imported_here").exists()  # the other checkout's children ran
    (r,) = rows
    assert (r["what"], r["dim"], r["batch"], r["norm"]) == ("train", 8, 64, "batchnorm")
    assert len(r["here"]) == len(r["other"]) == 2 and min(r["here"] + r["other"]) > 0
    assert r["ratio"] == pytest.approx(sum(a / b for a, b in zip(r["here"], r["other"])) / 2)
    assert json.loads((tmp_path / "ab.json").read_text()) == rows
    assert bench_ab.child("infer", 8, 64, steps=1, inner=1) > 0  # a child's inference, in this process
    with pytest.raises(SystemExit):
        bench_ab.main(["--what", "train"])  # no other checkout
