r"""Scoring memory and speed: peak RSS at two corpus sizes, and end-to-end vs model-only frames/s.

Writes two synthetic corpora of 40-d features (``--frames`` and ``--scale`` x that many frames)
with a tiny trained-by-construction model, runs ``flowaccent score`` on each in a fresh
process, and reports each run's peak RSS (``ru_maxrss`` of the child) and frames/s, next to the
model-only inference rate measured in the same run.

Usage: python benchmarks/bench_score.py [--frames 1000000] [--scale 4] [--hidden 512] [--blocks 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def write_corpus(path: Path, frames: int, utt_frames: int = 500, dim: int = 40) -> Path:
    from flowaccent.data import ArkWriter, write_spk2utt, write_table

    path.mkdir(parents=True)
    rng = np.random.default_rng(0)
    utt2spk, lines = {}, []
    with ArkWriter(path / "feats.ark") as writer:
        for i in range(frames // utt_frames):
            spk = f"spk{i % 50:03d}"
            utt = f"{spk}-{i:07d}"
            writer.write(utt, rng.standard_normal((utt_frames, dim)).astype(np.float32))
            utt2spk[utt] = spk
        lines = writer.scp_lines
    write_table(path / "feats.scp", dict(line.rstrip("\n").split(" ", 1) for line in lines))
    write_table(path / "utt2spk", utt2spk)
    write_spk2utt(path / "spk2utt", utt2spk)
    write_table(path / "utt2num_frames", {u: utt_frames for u in utt2spk})
    return path


def write_model(exp: Path, blocks: int, hidden: int) -> None:
    from flowaccent.features import FeaturePipeline, FeaturePipelineConfig
    from flowaccent.flows.realnvp import ModelConfig
    from flowaccent.model import FlowModel
    from flowaccent.prior import PriorConfig
    from flowaccent.train.checkpoint import Progress, save_checkpoint

    pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="none", deltas=2, standardize=False), 40)
    model = FlowModel(pipeline, ModelConfig(num_blocks=blocks, hidden=hidden), PriorConfig(cond_dim=120),
                      ("native", "zh"))
    model.initialize(torch.randn(4096, 120), torch.arange(4096) % 2)
    save_checkpoint(exp / "final.pt", model, None, Progress(), {})


def model_only_rate(exp: Path, batch: int = 20000, steps: int = 3) -> float:
    from flowaccent.train.checkpoint import load_model

    model = load_model(exp / "final.pt")
    x = torch.randn(batch, model.dim)
    with torch.no_grad():
        model(x)
        start = time.perf_counter()
        for _ in range(steps):
            model(x)
    return batch * steps / (time.perf_counter() - start)


def run_score(exp: Path, data: Path, out: Path) -> tuple[float, float]:
    r"""Runs ``flowaccent score`` in a child; returns (seconds, peak RSS in MiB of that child)."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # a fresh child whose ru_maxrss is its own
        os.execvp(sys.executable, [sys.executable, "-m", "flowaccent", "score", "--exp", str(exp), "--out", str(out),
                                   str(data), "--quiet"])
    _, status, usage = os.wait4(pid, 0)
    if status != 0:
        raise SystemExit(f"flowaccent score failed with status {status}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--blocks", type=int, default=10)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_score_"))
    try:
        write_model(root / "exp", args.blocks, args.hidden)
        rows = []
        for frames in (args.frames, args.frames * args.scale):
            data = write_corpus(root / f"data_{frames}", frames)
            seconds, rss = run_score(root / "exp", data, root / f"scores_{frames}")
            rows.append((frames, seconds, rss))
            shutil.rmtree(data)
        infer = model_only_rate(root / "exp")
        print(f"scoring, {args.blocks} blocks x hidden {args.hidden}, D=120 (40-d + deltas)")
        print(f"{'frames':>10} {'seconds':>8} {'frames/s':>9} {'vs model-only':>14} {'peak RSS MiB':>13}")
        for frames, seconds, rss in rows:
            fps = frames / seconds
            print(f"{frames:>10} {seconds:>8.1f} {fps:>9.0f} {fps / infer:>14.3f} {rss:>13.0f}")
        print(f"model-only inference: {infer:.0f} frames/s; RSS ratio {rows[1][2] / rows[0][2]:.3f}")
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
