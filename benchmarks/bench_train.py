r"""End-to-end ``flowaccent train`` frames/s against model-only training at the same batch.

Writes a Kaldi corpus of ``--frames`` frames (40-d, 500-frame utterances), trains one epoch of
a 10 x 512 flow on it (deltas: D=120, batch 10000, no validation split) with the real command in
a child process, and measures in the same run the model-only training rate of that architecture.
Two end-to-end rates are printed: the steady state logged by the trainer (``frames_per_s`` in
``log/train.jsonl``, first window dropped) and the whole command's wall clock (start-up, the
standardisation pass and checkpoints included).

Usage: python benchmarks/bench_train.py [--frames 1000000] [--batch 10000] [--repeats 3] [--json PATH]
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

from flowaccent.data.atomic import atomic_write_json
from flowaccent.runtime import resolve_device


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    from flowaccent.allocator import tune_allocator
    from flowaccent.features import FeaturePipelineConfig
    from flowaccent.flows.realnvp import ModelConfig
    from flowaccent.prior import PriorConfig
    from flowaccent.train.config import ExperimentConfig, TrainConfig

    tune_allocator()  # the model-only rate in this process, as the `flowaccent` command runs
    device = resolve_device("auto", "train").type  # where `flowaccent train` (device auto) runs
    model = ModelConfig(num_blocks=10, hidden=512, num_layers=2)
    config = ExperimentConfig(
        features=FeaturePipelineConfig(cmvn="none", deltas=2, standardize=True),
        model=model,
        prior=PriorConfig(cond_dim=0),
        train=TrainConfig(batch_size=args.batch, epochs=1, valid_fraction=0.0, checkpoint_every_steps=0,
                          log_every_steps=10, warmup_steps=10, buffer_frames=200_000),
    )
    root = Path(tempfile.mkdtemp(prefix="bench_train_"))
    steady, wall, alone = [], [], []
    try:
        data = write_corpus(root / "data", args.frames)
        (root / "conf.yaml").write_text(config.to_yaml())
        for i in range(args.repeats):  # interleaved with the model-only rate
            exp = root / f"exp{i}"
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "flowaccent", "train", "--config", str(root / "conf.yaml"),
                            "--exp", str(exp), str(data), "--quiet"], check=True)
            wall.append(args.frames / (time.perf_counter() - start))
            logged = [json.loads(line) for line in (exp / "log" / "train.jsonl").read_text().splitlines()]
            steady.append(statistics.median([r["frames_per_s"] for r in logged if r.get("event") == "train"][1:]))
            alone.append(time_train(build(120, model, 0, device), args.batch, 3))
    finally:
        shutil.rmtree(root)
    result = {"frames": args.frames, "batch": args.batch, "repeats": args.repeats,
              "model_only_fps": statistics.median(alone), "steady_fps": statistics.median(steady),
              "wall_fps": statistics.median(wall)}
    result["steady_ratio"] = result["steady_fps"] / result["model_only_fps"]
    result["wall_ratio"] = result["wall_fps"] / result["model_only_fps"]
    print(f"train, 10 blocks x hidden 512, D=120, batch {args.batch}, {args.frames} frames, one epoch, "
          f"median of {args.repeats}")
    print(f"model-only training:            {result['model_only_fps']:9.0f} frames/s")
    print(f"flowaccent train, steady state: {result['steady_fps']:9.0f} frames/s  ratio {result['steady_ratio']:.3f}")
    print(f"flowaccent train, wall clock:   {result['wall_fps']:9.0f} frames/s  ratio {result['wall_ratio']:.3f}")
    if args.json:
        atomic_write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
