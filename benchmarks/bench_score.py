r"""Scoring memory and speed: peak RSS at two corpus sizes, and end-to-end vs model-only frames/s.

Writes two synthetic corpora of 40-d features (``--frames`` and ``--scale`` x that many frames)
with a tiny trained-by-construction model, runs ``flowaccent score`` on each in a fresh
process, and reports each run's peak RSS (``ru_maxrss`` of the child) and frames/s, next to the
model-only inference rate measured in the same run. At ``--frames`` each repeat also runs the
command with the other ``--prefetch`` setting (features made ahead in a background thread, 2, where
the default makes them in the scoring loop, 0, as on a CPU; and the reverse on a GPU), interleaved.

Scoring and the model-only rate run where ``flowaccent score`` runs by default (CUDA when present).
From the two sizes it also gives the seconds that do not grow with the corpus (start-up: imports,
CUDA's initialisation, loading the model) and the rate of the rest (the extra frames over the extra
seconds), against model-only: on a GPU the start-up alone outweighs the model's work at 1M frames.

``--batch-frames N`` scores (and times the model alone) at ``N`` frames per forward instead of
``score.batch_frames``' default (8000, sized for a CPU's heap; on a GPU the forward was bound by
launching kernels at that size).

``--other-tree DIR`` also runs the command of another checkout (``DIR`` holds its ``flowaccent/``) at
both sizes, interleaved, with its own split into fixed seconds and rate.

``--processes N`` (N > 1) also runs the command at ``--frames`` under ``torchrun --nproc_per_node N`` (each
process scores a share of the set; torchrun's one thread per process, where the one process uses every core),
interleaved, and gives its speed against the one process's.

Usage: python benchmarks/bench_score.py [--frames 1000000] [--scale 4] [--repeats 3] [--large-repeats 3]
                                        [--batch-frames N]
                                        [--other-tree DIR] [--processes N] [--json PATH]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_common import at_least, count, stop_on_term  # noqa: E402
from bench_model import in_turn, other_tree, sync

from flowaccent.data.atomic import atomic_write_json
from flowaccent.data.prefetch import GPU_DEPTH, resolve_depth
from flowaccent.runtime import resolve_device
from flowaccent.score.config import ScoreConfig

#: The utterances' lengths: 500 frames -+ 60% (200 to 800), as a corpus's differ.
SPREAD = 0.6


def write_corpus(path: Path, frames: int, utt_frames: int = 500, dim: int = 40, spread: float = 0.0) -> Path:
    r"""A data dir of about ``frames`` frames of ``dim``-d noise in utterances of ``utt_frames`` frames, or, with
    ``spread``, of lengths drawn uniformly within ``utt_frames`` times ``1 -+ spread`` (real corpora's utterances
    differ in length, so scoring's batches, cut at their boundaries, do too: with every utterance of 500 frames
    each batch had 8000, and a score's memory growing with the number of batch sizes went unmeasured)."""
    from flowaccent.data import ArkWriter, write_spk2utt, write_table

    path.mkdir(parents=True)
    rng = np.random.default_rng(0)
    low, high = round(utt_frames * (1 - spread)), round(utt_frames * (1 + spread))
    utt2spk, utt2num_frames, total, i = {}, {}, 0, 0
    with ArkWriter(path / "feats.ark") as writer:
        while total + (utt_frames if not spread else 1) <= frames:
            length = min(int(rng.integers(low, high + 1)), frames - total) if spread else utt_frames
            spk = f"spk{i % 50:03d}"
            utt = f"{spk}-{i:07d}"
            writer.write(utt, rng.standard_normal((length, dim)).astype(np.float32))
            utt2spk[utt], utt2num_frames[utt] = spk, length
            total, i = total + length, i + 1
        lines = writer.scp_lines
    write_table(path / "feats.scp", dict(line.rstrip("\n").split(" ", 1) for line in lines))
    write_table(path / "utt2spk", utt2spk)
    write_spk2utt(path / "spk2utt", utt2spk)
    write_table(path / "utt2num_frames", utt2num_frames)
    return path


def write_model(exp: Path, blocks: int, hidden: int) -> None:
    from flowaccent.features import FeaturePipeline, FeaturePipelineConfig
    from flowaccent.flows.config import ModelConfig
    from flowaccent.model import FlowModel
    from flowaccent.prior_config import PriorConfig
    from flowaccent.train.checkpoint import Progress, save_checkpoint
    from flowaccent.train.config import ExperimentConfig

    features, architecture = FeaturePipelineConfig(cmvn="none", deltas=2, standardize=False), ModelConfig(
        num_blocks=blocks, hidden=hidden)
    model = FlowModel(FeaturePipeline(features, 40), architecture, PriorConfig(cond_dim=120), ("native", "zh"))
    model.initialize(torch.randn(4096, 120), torch.arange(4096) % 2)
    save_checkpoint(exp / "final.pt", model, None, Progress(), {})
    config = ExperimentConfig(features=features, model=architecture, prior=PriorConfig(cond_dim=120))
    (exp / "config.yaml").write_text(config.to_yaml())  # an experiment as train leaves one: report needs it


def model_only_rate(exp: Path, batch: int | None = None, steps: int = 3, device: str = "cpu") -> float:
    r"""Inference frames/s of the model alone at the scorer's batch (default ``ScoreConfig().batch_frames``),
    frames already on ``device``."""
    from flowaccent.flows.packed import packed_inference
    from flowaccent.score.config import ScoreConfig
    from flowaccent.train.checkpoint import load_model

    batch = batch or ScoreConfig().batch_frames
    model = load_model(exp / "final.pt").to(device)
    x = torch.randn(batch, model.dim, device=device)
    with torch.no_grad(), packed_inference(model):  # as the scorer runs it
        model(x)
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            model(x)
        sync(device)
    return batch * steps / (time.perf_counter() - start)


#: Runs a command and prints its peak RSS. Linux keeps a process's ru_maxrss across exec, so a
#: command forked straight from this (large) benchmark process would report this process's RSS;
#: forked from this small wrapper it reports its own.
MAXRSS_WRAPPER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss, file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def peak_rss_run(command: list[str], tree: str | None = None) -> tuple[float, float]:
    r"""``(seconds, peak RSS in MiB)`` of ``command`` in a fresh process through :data:`MAXRSS_WRAPPER` (its start
    is in the seconds), from the checkout ``tree`` (None: this one); its failure ends the benchmark."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MAXRSS_WRAPPER, *command], capture_output=True, text=True,
                          **other_tree(tree))
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])}... failed with status {done.returncode}: {done.stderr[-2000:]}")
    return seconds, int(done.stderr.strip().splitlines()[-1]) / 1024


def score_argv(exp: Path, data: Path, out: Path, device: str, *options: str) -> list[str]:
    r"""The arguments of ``flowaccent`` that score ``data`` with ``exp``'s model into ``out``, quietly."""
    return ["score", "--exp", str(exp), "--out", str(out), str(data), "--quiet", "--device", device, *options]


def run_score(exp: Path, data: Path, out: Path, device: str = "cpu", *options: str, tree: str | None = None
              ) -> tuple[float, float]:
    r"""Runs ``flowaccent score`` (with ``options``; from the checkout ``tree``, default this one) in a child;
    returns (seconds, peak RSS in MiB of that child)."""
    return peak_rss_run([sys.executable, "-m", "flowaccent", *score_argv(exp, data, out, device, *options)], tree)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=count, default=1_000_000)
    parser.add_argument("--scale", type=at_least(2), default=4, help="the large corpus is this many times --frames "
                        "(2 or more: the start-up is found from the two sizes' difference)")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--repeats", type=count, default=3, help="runs at --frames")
    parser.add_argument("--large-repeats", type=count, default=3,
                        help="runs at --scale x --frames (median; one run before 2026-12-01, whose 4M-frame RSS "
                        "once came out 11%% above the median of three runs after it)")
    parser.add_argument("--batch-frames", type=int, default=ScoreConfig().batch_frames,
                        help="frames per forward of the command (--batch-frames) and of the model-only rate")
    parser.add_argument("--other-tree", help="also time the command of another checkout (a folder holding its "
                        "flowaccent/), at both sizes, interleaved (the order rotating: an even --repeats "
                        "and --large-repeats weigh each order alike)")
    parser.add_argument("--processes", type=int, default=1, help="also score --frames under torchrun with this many "
                        "processes (> 1), interleaved")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    batch = ["--batch-frames", str(args.batch_frames)]
    from flowaccent.allocator import tune_allocator

    tune_allocator()  # the model-only rate in this process, as the `flowaccent` command runs
    device = resolve_device("auto", "score").type  # where `flowaccent score` (device auto) runs
    root = Path(tempfile.mkdtemp(prefix="bench_score_"))
    try:
        write_model(root / "exp", args.blocks, args.hidden)
        small, large = args.frames, args.frames * args.scale
        data = write_corpus(root / "data_small", small, spread=SPREAD)
        runs, other, alone, tree_small, shared = [], [], [], [], []
        default = resolve_depth(ScoreConfig().prefetch, torch.device(device))
        depth = 0 if default else GPU_DEPTH  # the other setting
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                  str(args.processes), "-m", "flowaccent"]
        for i in range(args.repeats):  # interleaved with the model-only rate, each repeat in another order
            small_runs = [
                lambda i=i: runs.append(run_score(root / "exp", data, root / f"scores_small_{i}", device, *batch)),
                lambda i=i: other.append(run_score(root / "exp", data, root / f"scores_other_{i}", device, *batch,
                                                   "--prefetch", str(depth))[0]),
                lambda: alone.append(model_only_rate(root / "exp", args.batch_frames, device=device)),
            ]
            if args.other_tree:
                small_runs.append(lambda i=i: tree_small.append(run_score(
                    root / "exp", data, root / f"scores_tree_{i}", device, *batch, tree=args.other_tree)))
            if args.processes > 1:
                small_runs.append(lambda i=i: shared.append(peak_rss_run(
                    [*launch, *score_argv(root / "exp", data, root / f"scores_shared_{i}", device, *batch)])[0]))
            for run in in_turn(small_runs, i):
                run()
        shutil.rmtree(data)
        data = write_corpus(root / "data_large", large, spread=SPREAD)
        large_runs, tree_large_runs = [], []

        def score_large(out: Path, tree: str | None = None) -> tuple[float, float]:
            result = run_score(root / "exp", data, out, device, *batch, tree=tree)
            shutil.rmtree(out)  # 4M frames' scores: ~80 MB a run
            return result

        for i in range(args.large_repeats):
            large_runs_now = [lambda i=i: large_runs.append(score_large(root / f"scores_large_{i}")),
                              lambda: alone.append(model_only_rate(root / "exp", args.batch_frames, device=device))]
            if args.other_tree:
                large_runs_now.append(lambda i=i: tree_large_runs.append(
                    score_large(root / f"scores_tree_large_{i}", args.other_tree)))
            for run in in_turn(large_runs_now, i):
                run()
        large_seconds = statistics.median(r[0] for r in large_runs)
        large_rss = statistics.median(r[1] for r in large_runs)
        tree_large = statistics.median(r[0] for r in tree_large_runs) if args.other_tree else None
    finally:
        shutil.rmtree(root)
    infer = statistics.median(alone)
    small_seconds = statistics.median(r[0] for r in runs)
    small_rss = statistics.median(r[1] for r in runs)
    result = {
        "frames": small, "seconds": small_seconds, "fps": small / small_seconds, "model_only_fps": infer,
        "ratio": small / small_seconds / infer, "rss_mib": small_rss,
        "large_frames": large, "large_seconds": large_seconds, "large_fps": large / large_seconds,
        "large_ratio": large / large_seconds / infer, "large_rss_mib": large_rss, "rss_ratio": large_rss / small_rss,
        "large_rss_runs": [r[1] for r in large_runs],
        "repeats": args.repeats, "large_repeats": args.large_repeats, "device": device,
        "batch_frames": args.batch_frames, "blocks": args.blocks, "hidden": args.hidden,
        "prefetch": default, "other_prefetch": depth, "other_seconds": statistics.median(other),
        "other_ratio": small / statistics.median(other) / infer,
        "other_speedup": small_seconds / statistics.median(other),
    }
    # Start-up (imports, CUDA, loading the model) does not grow with the corpus: the two sizes
    # separate it from the rate of the scoring loop itself.
    result.update(split_fixed(small, small_seconds, large, large_seconds, infer))
    if shared:
        result["processes"] = {"processes": args.processes, "seconds": statistics.median(shared),
                               "speedup": small_seconds / statistics.median(shared)}
    if args.other_tree:
        tree_seconds = statistics.median(r[0] for r in tree_small)
        tree_rss = [statistics.median(r[1] for r in runs) for runs in (tree_small, tree_large_runs)]
        result["other_tree"] = {"tree": args.other_tree, "seconds": tree_seconds, "large_seconds": tree_large,
                                "rss_mib": tree_rss[0], "large_rss_mib": tree_rss[1],
                                "rss_ratio": tree_rss[1] / tree_rss[0],
                                "speedup": tree_seconds / small_seconds, "large_speedup": tree_large / large_seconds,
                                **split_fixed(small, tree_seconds, large, tree_large, infer)}
    print(f"scoring on {device}, {args.blocks} blocks x hidden {args.hidden}, D=120 (40-d + deltas), "
          f"{args.batch_frames} frames per forward; "
          f"median of {args.repeats} at {small} frames, of {args.large_repeats} at {large}")
    print(f"{'frames':>10} {'seconds':>8} {'frames/s':>9} {'vs model-only':>14} {'peak RSS MiB':>13}")
    for frames, seconds, rss in ((small, small_seconds, small_rss), (large, large_seconds, large_rss)):
        fps = frames / seconds
        print(f"{frames:>10} {seconds:>8.1f} {fps:>9.0f} {fps / infer:>14.3f} {rss:>13.0f}")
    print(f"model-only inference: {infer:.0f} frames/s; RSS ratio {result['rss_ratio']:.3f}")
    print(f"from the two sizes: {result['fixed_seconds']:.1f} s that do not grow with the corpus, then "
          f"{result['marginal_fps']:.0f} frames/s, ratio {result['marginal_ratio']:.3f} to model-only")
    print(f"--prefetch {depth} (default here: {default}) at {small} frames: {result['other_seconds']:.1f} s, "
          f"ratio {result['other_ratio']:.3f}, {result['other_speedup']:.3f}x the default's speed")
    if shared:
        s = result["processes"]
        print(f"torchrun, {args.processes} processes, at {small} frames: {s['seconds']:.1f} s, {s['speedup']:.3f}x "
              "the one process's speed")
    if args.other_tree:
        t = result["other_tree"]
        print(f"{args.other_tree}: {t['seconds']:.1f} s at {small} frames, {t['large_seconds']:.1f} s at {large}: this "
              f"checkout {t['speedup']:.3f}x / {t['large_speedup']:.3f}x its speed; from its two sizes "
              f"{t['fixed_seconds']:.1f} s fixed, then {t['marginal_fps']:.0f} frames/s "
              f"(ratio {t['marginal_ratio']:.3f}); its peak RSS {t['rss_mib']:.0f} / {t['large_rss_mib']:.0f} MiB, "
              f"ratio {t['rss_ratio']:.3f}")
    if args.json:
        atomic_write_json(args.json, result)
    return result


def split_fixed(small: int, small_seconds: float, large: int, large_seconds: float, infer: float) -> dict:
    r"""The seconds of a run that do not grow with the corpus, and the frames/s of the rest (and its ratio to
    model-only ``infer``), from runs at two sizes."""
    extra = large_seconds - small_seconds  # > 0 unless tiny sizes drown in noise (--quick)
    marginal = (large - small) / extra if extra > 0 else float("nan")
    return {"marginal_fps": marginal, "marginal_ratio": marginal / infer,
            "fixed_seconds": small_seconds - small / marginal}


if __name__ == "__main__":
    stop_on_term()
    main()
