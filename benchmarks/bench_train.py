r"""End-to-end ``flowaccent train`` frames/s against model-only training at the same batch.

Writes a Kaldi corpus of ``--frames`` frames (40-d, 500-frame utterances), trains one epoch of
a 10 x 512 flow on it (deltas: D=120, batch 10000, no validation split) with the real command in
a child process, and measures in the same run the model-only training rate of that architecture.
Two end-to-end rates are printed: the steady state logged by the trainer (``frames_per_s`` in
``log/train.jsonl``, first window dropped) and the whole command's wall clock (start-up, the
standardisation pass and checkpoints included). Each is measured for ``--train.compile false``
(the default) and ``true`` (the whole command's clock then includes compiling), each against the
model-only rate of the same forward (eager or compiled). Data loading: the seconds one epoch
of the training stream (reading the ark, deltas, shuffling) takes alone in this process, against
the seconds the command's steps waited for batches (``data_wait_s`` in its log), as
``train.prefetch`` (default: a background thread on a GPU, none on a CPU) leaves them.
``--compile-mode reduce-overhead`` runs the compiled variant with ``--train.compile-mode`` so (CUDA
graphs on a GPU), its model-only rate likewise. ``--epochs N`` trains N epochs (the rates over all
of them); the steps' wait for data is then also given for the first epoch and for the later ones
apart (and the JSON keeps each run's per-epoch split from the log: train_s, data_wait_s, valid_s,
save_s): with a prefetching thread the later epochs' first batches are made while the epoch before
ends (one queue across the epochs), the first epoch's only once training starts.
``--other-prefetch N`` also runs the eager command with ``--train.prefetch N`` in each repeat (against
the model-only rate of the eager variant), e.g. a loader thread on a CPU, where the default has none.
``--other-tree DIR`` also runs the eager command of another checkout (``DIR`` holds its ``flowaccent/``,
e.g. ``git archive REV flowaccent | tar -x -C DIR``) in each repeat, and gives this checkout's speed
over it (median of the repeats' ratios).

Usage: python benchmarks/bench_train.py [--frames 1000000] [--batch 10000] [--epochs 1] [--repeats 3]
                                        [--steps 3] [--no-compile] [--compile-mode MODE] [--other-prefetch N]
                                        [--other-tree DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import typing
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from bench_common import count, stop_on_term  # noqa: E402
from bench_model import build, in_turn, other_tree, time_train  # noqa: E402
from bench_score import write_corpus  # noqa: E402

from flowaccent.data.atomic import atomic_write_json
from flowaccent.data.prefetch import resolve_depth
from flowaccent.runtime import compiled, resolve_device
from flowaccent.train.config import TrainConfig

#: torch.compile's modes that ``train.compile_mode`` takes
TRAIN_COMPILE_MODES = typing.get_args(typing.get_type_hints(TrainConfig)["compile_mode"])


def bench_config(batch: int, epochs: int = 1, blocks: int = 10, hidden: int = 512):
    r"""The experiment this benchmark trains: ``blocks`` x ``hidden`` (10 x 512), D=120 (40-d + deltas), ``epochs``
    epochs, no validation."""
    from flowaccent.features import FeaturePipelineConfig
    from flowaccent.flows.config import ModelConfig
    from flowaccent.prior_config import PriorConfig
    from flowaccent.train.config import ExperimentConfig, TrainConfig

    return ExperimentConfig(
        features=FeaturePipelineConfig(cmvn="none", deltas=2, standardize=True),
        model=ModelConfig(num_blocks=blocks, hidden=hidden, num_layers=2),
        prior=PriorConfig(cond_dim=0),
        train=TrainConfig(batch_size=batch, epochs=epochs, valid_fraction=0.0, checkpoint_every_steps=0,
                          log_every_steps=10, warmup_steps=10, buffer_frames=200_000),
    )


@contextlib.contextmanager
def trainer_stream(data: Path, config):
    r"""The trainer's stream of ``data`` (40-d) under ``config``, standardisation fitted, as
    ``flowaccent train`` builds it."""
    from flowaccent.data.datadir import load_data_dir
    from flowaccent.features import FeaturePipeline
    from flowaccent.train.frames import FrameSource, FrameStream, standardization_sample, utterance_refs

    data_dir = load_data_dir(data)
    source = FrameSource([data_dir], 40)
    try:
        refs = utterance_refs([data_dir], [dict.fromkeys(data_dir.utts, 0)])
        pipeline = FeaturePipeline(config.features, 40)
        pipeline.fit(source.feats(r) for r in standardization_sample(refs, config.train.standardize_max_utts))
        yield FrameStream(source, refs, pipeline, config.train.batch_size, config.train.buffer_frames, 0)
    finally:
        source.close()


def time_loading(data: Path, config) -> tuple[float, int]:
    r"""Seconds of one epoch of the trainer's stream alone (standardisation fitted first, not timed),
    and the stream's burst (what the trainer sizes its prefetching queue by)."""
    with trainer_stream(data, config) as stream:
        start = time.perf_counter()
        for _ in stream.epoch(0):
            pass
        return time.perf_counter() - start, stream.burst


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=count, default=1_000_000)
    parser.add_argument("--batch", type=count, default=10000)
    parser.add_argument("--epochs", type=count, default=1)
    parser.add_argument("--repeats", type=count, default=3)
    parser.add_argument("--steps", type=count, default=3, help="timed steps of each model-only rate")
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--no-compile", action="store_true",
                        help="leave out `--train.compile true` (compiling takes a minute or more per process on a GPU)")
    parser.add_argument("--compile-mode", default="default", choices=TRAIN_COMPILE_MODES,
                        help="train.compile_mode of the compiled variant")
    parser.add_argument("--other-prefetch", type=int, default=None,
                        help="also run the eager command with --train.prefetch N (variant 'prefetchN')")
    parser.add_argument("--other-tree", help="also run the eager command of another checkout (a folder holding "
                        "its flowaccent/), variant 'tree', interleaved (the order rotating: an even "
                        "--repeats weighs each order alike)")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    config = bench_config(args.batch, args.epochs, args.blocks, args.hidden)
    if (steps := args.frames * args.epochs // args.batch) < 2 * config.train.log_every_steps:
        # the steady rate leaves out the first window: with one, 'no median for empty data' after every run
        parser.error(f"--frames {args.frames} x --epochs {args.epochs} / --batch {args.batch} is {steps} step(s); the "
                     f"steady rate is of the trainer's logged windows ({config.train.log_every_steps} steps each) but "
                     f"the first, so give at least {2 * config.train.log_every_steps} steps")
    from flowaccent.allocator import tune_allocator

    tune_allocator()  # the model-only rate in this process, as the `flowaccent` command runs
    device = resolve_device("auto", "train").type  # where `flowaccent train` (device auto) runs
    model = config.model
    root = Path(tempfile.mkdtemp(prefix="bench_train_"))
    # `--train.compile false` / `true`, model-only rates to match
    variants = ("eager",) if args.no_compile else ("eager", "compiled")
    other = None if args.other_prefetch is None else f"prefetch{args.other_prefetch}"
    commands_only = tuple(v for v in (other, "tree" if args.other_tree else None) if v)  # the eager command's model
    variants += commands_only
    steady, wall, alone, waited, waited_first, epoch_seconds = ({v: [] for v in variants} for _ in range(6))
    loading = []
    try:
        data = write_corpus(root / "data", args.frames)
        (root / "conf.yaml").write_text(config.to_yaml())
        for i in range(args.repeats):  # interleaved with the model-only rates, each repeat in another order
            for variant in in_turn(variants, i):
                exp = root / f"exp{i}_{variant}"
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "flowaccent", "train", "--config", str(root / "conf.yaml"),
                                "--exp", str(exp), str(data), "--quiet",
                                "--train.compile", str(variant == "compiled").lower(),
                                *(["--train.compile-mode", args.compile_mode] if variant == "compiled" else []),
                                *(["--train.prefetch", str(args.other_prefetch)] if variant == other else [])],
                               check=True, **other_tree(args.other_tree if variant == "tree" else None))
                wall[variant].append(args.frames * args.epochs / (time.perf_counter() - start))
                logged = [json.loads(line) for line in (exp / "log" / "train.jsonl").read_text().splitlines()]
                rates = [r["frames_per_s"] for r in logged if r.get("event") == "train"]
                steady[variant].append(statistics.median(rates[1:]))
                waits = [(r["epoch"], r["data_wait_s"]) for r in logged if r.get("event") == "train"]
                waited[variant].append(sum(w for _, w in waits))
                waited_first[variant].append(sum(w for e, w in waits if e == 1))
                keys = ("train_s", "data_wait_s", "valid_s", "save_s")  # the trainer's split of each epoch
                epoch_seconds[variant].append([{k: r[k] for k in keys} for r in logged if r.get("event") == "epoch"])
                if variant in commands_only:
                    continue
                net = build(120, model, 0, device)
                mode = None if args.compile_mode == "default" else args.compile_mode
                forward = compiled(net, torch.device(device), "bench", mode) if variant == "compiled" else None
                alone[variant].append(time_train(net, args.batch, args.steps, forward=forward))
            seconds, burst = time_loading(data, config)
            loading.append(seconds)
    finally:
        shutil.rmtree(root)
    rows = {}
    for variant in commands_only:
        alone[variant] = alone["eager"]
    for variant in variants:
        row = {"model_only_fps": statistics.median(alone[variant]), "steady_fps": statistics.median(steady[variant]),
               "wall_fps": statistics.median(wall[variant]), "data_wait_s": statistics.median(waited[variant]),
               "data_wait_first_epoch_s": statistics.median(waited_first[variant]),
               "epoch_seconds": epoch_seconds[variant]}
        row["steady_ratio"] = row["steady_fps"] / row["model_only_fps"]
        row["wall_ratio"] = row["wall_fps"] / row["model_only_fps"]
        rows[variant] = row
    result = {"frames": args.frames, "batch": args.batch, "epochs": args.epochs, "repeats": args.repeats,
              "blocks": args.blocks, "hidden": args.hidden,
              "device": device, **rows["eager"],
              "compiled": rows.get("compiled"), "loading_s": statistics.median(loading),
              "prefetch": resolve_depth(TrainConfig().prefetch, torch.device(device), burst),
              "compile_mode": args.compile_mode}
    if "compiled" in rows:
        result["compiled_speedup_steady"] = rows["compiled"]["steady_fps"] / rows["eager"]["steady_fps"]
        result["compiled_speedup_wall"] = rows["compiled"]["wall_fps"] / rows["eager"]["wall_fps"]
    def against_eager(variant: str) -> dict:  # the median of each repeat's ratio (they ran one after the other in it)
        return {**rows[variant], "vs_default_steady": statistics.median(a / b for a, b in zip(steady[variant],
                                                                                              steady["eager"])),
                "vs_default_wall": statistics.median(a / b for a, b in zip(wall[variant], wall["eager"]))}

    if other:
        result["other_prefetch"] = {"prefetch": args.other_prefetch, **against_eager(other)}
    if args.other_tree:
        result["other_tree"] = {"tree": args.other_tree, **against_eager("tree")}
    print(f"train, {args.blocks} blocks x hidden {args.hidden}, D=120, batch {args.batch}, {args.frames} frames, "
          f"{args.epochs} epoch(s), median of {args.repeats}")
    for variant in variants:
        r = rows[variant]
        print(f"{variant}: model-only training:            {r['model_only_fps']:9.0f} frames/s")
        print(f"{variant}: flowaccent train, steady state: {r['steady_fps']:9.0f} frames/s  "
              f"ratio {r['steady_ratio']:.3f}")
        print(f"{variant}: flowaccent train, wall clock:   {r['wall_fps']:9.0f} frames/s  ratio {r['wall_ratio']:.3f}")
    waits = ", ".join(f"{rows[v]['data_wait_s']:.2f} s ({v})" for v in variants)
    print(f"data loading: one epoch of the stream alone {result['loading_s']:.2f} s; the steps waited {waits} "
          f"in all with train.prefetch resolved to {result['prefetch']}")
    if args.epochs > 1:
        print("of it in the first epoch: " + ", ".join(f"{rows[v]['data_wait_first_epoch_s']:.2f} s ({v})"
                                                       for v in variants))
    if other:
        o = result["other_prefetch"]
        print(f"--train.prefetch {args.other_prefetch} / the default: steady {o['vs_default_steady']:.3f}x, "
              f"whole command {o['vs_default_wall']:.3f}x (median of the repeats' ratios)")
    if args.other_tree:
        o = result["other_tree"]
        print(f"this checkout / {args.other_tree}: steady {1 / o['vs_default_steady']:.3f}x, "
              f"whole command {1 / o['vs_default_wall']:.3f}x (median of the repeats' ratios)")
    if "compiled" in rows:
        print(f"--train.compile true / false: steady {result['compiled_speedup_steady']:.3f}x, "
              f"whole command {result['compiled_speedup_wall']:.3f}x")
    if args.json:
        atomic_write_json(args.json, result)
    return result


if __name__ == "__main__":
    stop_on_term()
    main()
