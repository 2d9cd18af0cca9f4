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
    r"""``flowaccent report`` only reads scores: without torch's import it starts ~1 s sooner."""
    code = """
import sys
import flowaccent.cli.report, flowaccent.report, flowaccent.score.summary
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
