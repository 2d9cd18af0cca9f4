r"""recipes/demo/run.sh --quick true through every stage (what CI runs), a rerun that skips them, and one that
redoes a stage with --stage."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from ..conftest import recipe_env

RECIPE = Path(__file__).parents[2] / "recipes" / "demo" / "run.sh"


def test_quick_demo_runs_every_stage(tmp_path):
    env = recipe_env()
    # 100 t-SNE frames per set, not 500: 4 s of each of the test's 4 reports
    cmd = ["bash", str(RECIPE), "--quick", "true", "--exp", str(tmp_path / "exp"), "--report-opts", "--tsne-frames 100"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    for stage in range(6):
        assert f"Stage {stage}:" in result.stderr
        assert (tmp_path / "exp" / ".done" / f"stage{stage}").exists()
    stage3 = result.stderr.split("Stage 3:", 1)[1].split("Stage 4:", 1)[0]  # each model's block of lines named
    assert 0 < stage3.find(")   dnf\nscore: ") < stage3.find(")   nf\n")
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
    assert "## dnf: blur masks of the LogLL (4 test_native, 4 test_zh utterances" in results
    assert re.search(r"\n\| blur \| 8 \| [01]\.\d{3} \| [01]\.\d{3} \| [01]\.\d{3} \| -?[01]\.\d{3} ± ", results)
    compared = (tmp_path / "exp" / "compare.md").read_text()  # stage 5: the two flows side by side
    assert re.search(r"## AUC of llr against 'test_native' .*\n\n\| model \| dev_native \| test_zh \| test_ja \|\n"
                     r"\|---\|---\|---\|---\|\n\| dnf( \| [01]\.\d{3} \[[01]\.\d\d, [01]\.\d\d\]){3} \|\n"
                     r"\| nf \|  \|  \|  \|\n", compared)
    assert re.search(r"\n\| test_zh \| [01]\.\d{3} \[[01]\.\d\d, [01]\.\d\d\] \|", results)  # RESULTS.md: intervals too
    assert "## AUC of log_ll: each model's minus dnf's (p of DeLong's paired test" in results
    for model in ("dnf", "nf"):  # stage 5: each set's LogLL by phone of the corpus's phones.ctm
        phones = (tmp_path / "exp" / model / "phones" / "phones.md").read_text()
        assert "| test_native (reference) | 5 of 5 |" in phones and "## test_ja: phones against test_native's" in phones
        assert (tmp_path / "exp" / model / "phones" / "phones.png").exists()
        shown = (tmp_path / "exp" / model / "report.html").read_text()  # and in the report, by report --phones
        assert "<h2>Phones (phones: phones.ctm): test_zh's lowest relative LogLL minus test_native's (" in shown
    assert re.search(r"\n\| dnf \| test_zh \| \S+ -?\d+\.\d{3}", results)  # RESULTS.md: the lowest phones
    canonical = (tmp_path / "exp" / "dnf" / "phones_canonical" / "phones.md").read_text()  # by canonical.ctm too
    assert "| test_native (reference) | 5 of 5 |" in canonical and "canonical.ctm" in canonical
    assert not re.search(r"\n\| (t\[|\*|w#) \|", canonical)  # phones only an accent says: not among the native's
    assert "## Phones least like test_native's, of the native reading's phones (canonical.ctm)" in results
    shown = (tmp_path / "exp" / "dnf" / "report.html").read_text()  # both runs in the report, each named
    assert "<h2>Phones (phones_canonical: canonical.ctm): test_zh's lowest relative LogLL" in shown
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "Stage" not in again.stderr
    report = tmp_path / "exp" / "dnf" / "report.html"
    assert "<h2>Blur masks: AUCs and SRG per set and baseline</h2>" in report.read_text()  # stage 4's, in stage 5's
    assert "--tsne-frames 100" in report.read_text() and "Latents, t-SNE" in report.read_text()
    assert "Blur mask" not in (tmp_path / "exp" / "nf" / "report.html").read_text()
    # Kaldi's --stage N: stage 4 runs again though it finished (its marker removed), the others stay skipped
    report.unlink()
    redo = subprocess.run([*cmd, "--stage", "4", "--stop-stage", "4"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert redo.returncode == 0 and "Stage 4:" in redo.stderr and "Stage 3:" not in redo.stderr
    assert "Stage 5:" not in redo.stderr and not report.exists()
    # stage 5 uses what stage 4 makes: its marker went too, so a plain rerun runs it (it reported done before)
    assert all((tmp_path / "exp" / ".done" / f"stage{n}").exists() for n in range(5))
    assert not (tmp_path / "exp" / ".done" / "stage5").exists()
    rest = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert rest.returncode == 0 and "Stage 5:" in rest.stderr and "Stage 4:" not in rest.stderr and report.exists()
    for extra, message in ((["--seed", "1"], "was made with other options (seed) than these"),
                           (["stop"], "unexpected argument 'stop'"),
                           (["--report-opts", "--tsne-frames 0"], "was made with other options (report_opts)"),
                           (["--stage", "one"], "--stage takes a stage number, not 'one'")):
        refused = subprocess.run([*cmd, *extra], capture_output=True, text=True, env=env, timeout=60)
        assert refused.returncode == 1 and message in refused.stderr, (extra, refused.stderr)
    # another seed from stage 0: both models (which stage 2 resumes, and train refuses) named before the corpus went
    corpus = sorted((tmp_path / "exp" / "corpus").rglob("*"))
    refused = subprocess.run([*cmd, "--stage", "0", "--seed", "1"], capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode == 1 and "Stage" not in refused.stderr, refused.stderr
    assert "stage 2 would go on from the models in" in refused.stderr
    assert all(f"{tmp_path / 'exp' / m / 'checkpoints' / 'last.pt'}: the config differs from the run being resumed: "
               "train.seed: 0 there, 1 given" in refused.stderr for m in ("dnf", "nf")), refused.stderr
    assert sorted((tmp_path / "exp" / "corpus").rglob("*")) == corpus
    assert (tmp_path / "exp" / ".done" / "stage5").exists()
    # nf's checkpoints/ removed to save space: it was counted done, of any seed, and kept; it is held against final.pt
    shutil.rmtree(tmp_path / "exp" / "nf" / "checkpoints")
    refused = subprocess.run([*cmd, "--stage", "0", "--seed", "1"], capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode == 1 and "Stage" not in refused.stderr, refused.stderr
    assert (f"{tmp_path / 'exp' / 'nf' / 'final.pt'}: the config differs from the finished run's: train.seed: 0 there, "
            "1 given") in refused.stderr
    # new reports with other options: --stage 5 (report_opts shapes stage 5 only; the earlier stages are not redone)
    new = subprocess.run([*cmd, "--stage", "5", "--report-opts", "--tsne-frames 0"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert new.returncode == 0 and "Stage 5:" in new.stderr and "Stage 4:" not in new.stderr, new.stderr[-2000:]
    assert "t-SNE" not in report.read_text() and "Blur masks: AUCs" in report.read_text()
    wrong = subprocess.run([*cmd[:2], "--quick", "yes"], capture_output=True, text=True, env=env, timeout=60)
    assert wrong.returncode == 1 and "--quick takes true or false, not 'yes'" in wrong.stderr
    # stage 5 stopped (here by its report's options): RESULTS.md and compare.md of the earlier run do not stay to be
    # taken for its results (a stop in a report removed that report, and left them)
    failed = subprocess.run([*cmd, "--stage", "5", "--report-opts", "--tsne-frames x"], capture_output=True, text=True,
                            env=env, timeout=300)
    assert failed.returncode != 0 and "--tsne-frames" in failed.stderr, failed.stderr[-2000:]
    assert not any((tmp_path / "exp" / name).exists() for name in ("RESULTS.md", "compare.md"))
    # the corpus made again and stopped before its features: stage 2's models are not checked against features that
    # are not there yet (every rerun was refused: 'feats.scp: required but missing'); stage 1 makes them, 2 resumes
    again = subprocess.run([*cmd, "--stage", "0", "--stop-stage", "0"], capture_output=True, text=True, env=env,
                           timeout=300)
    assert again.returncode == 0 and not (tmp_path / "exp" / "corpus" / "train_native" / "feats.scp").exists()
    rest = subprocess.run([*cmd, "--stop-stage", "2"], capture_output=True, text=True, env=env, timeout=300)
    assert rest.returncode == 0 and "Stage 1:" in rest.stderr and "(resumed at step " in rest.stderr, rest.stderr
