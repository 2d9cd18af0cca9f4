r"""What the commands import before their work: seconds every call pays (benchmarks/bench_startup.py).

Each check runs in a fresh interpreter, since this one has imported everything already."""

from __future__ import annotations

import subprocess
import sys


def fresh(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_nothing_imports_dynamo_until_a_model_is_compiled():
    r"""``torch._dynamo`` takes ~1 s to import; scoring and the model's eager training step never need it
    (a decorator of flows.onednn_train once imported it for all; torch's optimizer step imports it itself)."""
    code = """
import os, sys
os.environ["FLOWACCENT_ONEDNN_TRAIN"] = "1"  # the oneDNN training path, as on AMD CPUs
import torch
import flowaccent.blurmask.run, flowaccent.cli.main, flowaccent.score.run, flowaccent.train.trainer
from flowaccent.flows.realnvp import ModelConfig, build_realnvp
flow = build_realnvp(ModelConfig(num_blocks=2, hidden=16), 6)
z, log_det = flow(torch.randn(32, 6))
(z.square().sum() - log_det.sum()).backward()  # an eager training step's forward and backward
from flowaccent.flows.inplace import forward_in_place
from flowaccent.flows.packed import packed_inference
with packed_inference(flow):
    forward_in_place(flow, torch.randn(32, 6))  # scoring's forward
print("torch._dynamo" in sys.modules)
from flowaccent.runtime import compiled
compiled(flow, torch.device("cpu"), "test")
print("torch._dynamo" in sys.modules)
"""
    assert fresh(code).split() == ["False", "True"]


def test_report_and_summary_do_not_import_torch():
    r"""``flowaccent report`` only reads scores: without torch's import it starts ~1 s sooner. With ``--blurmask``
    it reads a blur-mask run's summary as well (its tables and names were kept beside the code that fits masks,
    which loaded torch for them). ``flowaccent compare`` reads the sets' stamps (their name: score.resume, which
    imported torch for the scorer's tables: 2.8 s against 0.3 s for the demo's two models)."""
    code = """
import sys
import flowaccent.cli.report, flowaccent.report, flowaccent.score.summary, flowaccent.blurmask.report
import flowaccent.cli.compare, flowaccent.report.compare
print("torch" in sys.modules)
"""
    assert fresh(code) == "False"


def test_the_command_list_imports_no_torch():
    r"""``flowaccent --help`` (or no command, or a misspelt one) lists the commands from their summaries: it
    built every command's options first, and train's and score's import torch (2.1 s against 0.06 s)."""
    code = """
import contextlib, io, sys
from flowaccent.cli.main import main
for argv in (["--help"], [], ["trian"]):
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            main(argv)
        except SystemExit:
            pass
    print(int("train a (DNF-conditioned) RealNVP" in out.getvalue() or "COMMAND" in err.getvalue()))
print("torch" in sys.modules)
"""
    assert fresh(code).split() == ["1", "1", "1", "False"]


def test_no_command_imports_torch_to_parse_its_options():
    r"""Every command's ``--help`` (and its option checks) needs only its configs, kept in torch-free modules
    (flowaccent/*/config.py, flowaccent/prior_config.py): train's, score's and blurmask's ``--help`` took ~2 s, the
    import of torch (0.1-0.2 s now, benchmarks/bench_startup.py). The configs are still importable from where
    they were defined before (flowaccent.flows.realnvp.ModelConfig, ...)."""
    code = """
import contextlib, io, sys
from flowaccent.cli.main import COMMANDS, main
for command in COMMANDS:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            main([command, "--help"])
        except SystemExit as done:
            assert done.code == 0, (command, done.code)
    assert "--" in out.getvalue(), command
print(sorted(COMMANDS))
print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "nflows", "matplotlib", "sklearn", "scipy")))
"""
    commands, heavy = fresh(code).splitlines()
    assert "'train'" in commands and "'blurmask'" in commands
    assert heavy == "[]"


def test_configs_are_the_same_classes_where_they_were_defined_before():
    r"""Code that imported a config from its old module (``from flowaccent.flows.realnvp import ModelConfig``)
    gets the same class."""
    from flowaccent import prior, prior_config
    from flowaccent.blurmask import config as blurmask_config
    from flowaccent.blurmask import evaluate, fit, run
    from flowaccent.features import config as features_config
    from flowaccent.features import pipeline
    from flowaccent.flows import config as flows_config
    from flowaccent.flows import realnvp
    from flowaccent.score import config as score_config
    from flowaccent.score import scorer

    assert realnvp.ModelConfig is flows_config.ModelConfig
    assert prior.PriorConfig is prior_config.PriorConfig
    assert pipeline.FeaturePipelineConfig is features_config.FeaturePipelineConfig
    assert scorer.ScoreConfig is score_config.ScoreConfig
    assert fit.BlurMaskConfig is blurmask_config.BlurMaskConfig
    assert evaluate.DeletionConfig is blurmask_config.DeletionConfig
    assert run.RunConfig is blurmask_config.RunConfig


def test_a_wrong_option_and_a_dry_check_are_told_before_torch_is_imported(tmp_path):
    r"""A typo'd value, or ``train --check`` with no data (every recipe checks its runs first), needs only the
    configs: told ~1.5 s sooner than after ``import torch`` (train, score and blurmask imported their work first)."""
    exp, data = tmp_path / "exp", tmp_path / "data"
    code = f"""
import contextlib, io, sys
from flowaccent.cli.main import main
for argv in (["train", "--exp", "{exp}", "--model.hidden", "-3"], ["train", "--exp", "{exp}", "--check"],
             ["score", "--exp", "{exp}", "--out", "{tmp_path}/s", "{data}", "--batch-frames", "0"],
             ["blurmask", "--exp", "{exp}", "--data", "{data}", "--out", "{tmp_path}/b", "--steps", "0"]):
    with contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            code = main(argv)
        except SystemExit as done:
            code = done.code
    print(argv[0], code, err.getvalue().strip().splitlines()[-1])
print("torch" in sys.modules)
"""
    lines = fresh(code).splitlines()
    assert lines[0].startswith("train 1 ") and "model: hidden must be >= 1, got -3" in lines[0], lines[0]
    assert lines[1].startswith("train 0 ") and "are valid (no DATA_DIR given" in lines[1], lines[1]
    assert lines[2].startswith("score 1 ") and "batch_frames (--batch-frames) must be >= 1, got 0" in lines[2], lines[2]
    assert lines[3].startswith("blurmask 1 ") and "steps (--steps) must be >= 1, got 0" in lines[3], lines[3]
    assert lines[4] == "False"
    assert not exp.exists()
