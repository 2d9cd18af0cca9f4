r"""End-to-end ``flowaccent train`` frames/s against model-only training at the same batch.

Writes a Kaldi corpus of ``--frames`` frames (40-d, 500-frame utterances), trains one epoch of
a 10 x 512 flow on it (deltas: D=120, batch 10000, no validation split) with the real command in
a child process, and measures in the same run the model-only training rate of that architecture.
Two end-to-end rates are printed: the steady state logged by the trainer (``frames_per_s`` in
``log/train.jsonl``, first window dropped) and the whole command's wall clock (start-up, the
standardisation pass and checkpoints included).

Usage: python benchmarks/bench_train.py [--frames 1000000] [--batch 10000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_model import build, time_train  # noqa: E402
from bench_score import write_corpus  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10000)
    args = parser.parse_args()
    from flowaccent.features import FeaturePipelineConfig
    from flowaccent.flows.realnvp import ModelConfig
    from flowaccent.prior import PriorConfig
    from flowaccent.train.config import ExperimentConfig, TrainConfig

    model = ModelConfig(num_blocks=10, hidden=512, num_layers=2)
    config = ExperimentConfig(
        features=FeaturePipelineConfig(cmvn="none", deltas=2, standardize=True),
        model=model,
        prior=PriorConfig(cond_dim=0),
        train=TrainConfig(batch_size=args.batch, epochs=1, valid_fraction=0.0, checkpoint_every_steps=0,
                          log_every_steps=10, warmup_steps=10, buffer_frames=200_000),
    )
    root = Path(tempfile.mkdtemp(prefix="bench_train_"))
    try:
        data = write_corpus(root / "data", args.frames)
        (root / "conf.yaml").write_text(config.to_yaml())
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "flowaccent", "train", "--config", str(root / "conf.yaml"), "--exp",
                        str(root / "exp"), str(data), "--quiet"], check=True)
        wall = args.frames / (time.perf_counter() - start)
        logged = [json.loads(line) for line in (root / "exp" / "log" / "train.jsonl").read_text().splitlines()]
        rates = [r["frames_per_s"] for r in logged if r.get("event") == "train"][1:]
        steady = statistics.median(rates)
        alone = statistics.median(time_train(build(120, model, 0), args.batch, 3) for _ in range(3))
        print(f"train, 10 blocks x hidden 512, D=120, batch {args.batch}, {args.frames} frames, one epoch")
        print(f"model-only training:            {alone:9.0f} frames/s")
        print(f"flowaccent train, steady state: {steady:9.0f} frames/s  ratio {steady / alone:.3f}")
        print(f"flowaccent train, wall clock:   {wall:9.0f} frames/s  ratio {wall / alone:.3f}")
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
