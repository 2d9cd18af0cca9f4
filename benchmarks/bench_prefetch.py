r"""The training stream's prefetching against a stand-in for a GPU step: how much loading it hides.

On a GPU the trainer's main thread does not wait for the model's arithmetic: it spends a step
launching kernels (on one H200 ~17 ms per step at batch 10000, docs/performance.md), and the
loader thread (``train.prefetch``) has the rest of the CPU. This benchmark needs no GPU: the
model's step is replaced by ``--step-ms`` of either

  sleep   the CPU and Python's lock left free (a thread waiting for the GPU), or
  launch  short native calls in a loop, Python's lock dropped around each (a thread launching kernels),

and one epoch of the trainer's real stream (``FrameStream``: reading the ark, deltas, the
shuffling buffer, batch 10000 of 120-d frames) is consumed one batch per step, with the batches
made inline (0), ahead in a queue of ``GPU_DEPTH`` (2, the auto setting before) and of
``burst + GPU_DEPTH`` (the auto setting now: a whole filling of the shuffling buffer fits).
Printed: ms per step (the step alone takes ``--step-ms``; loading alone the "loading" column),
and the seconds the steps waited for batches. Median of ``--repeats``, interleaved.

Then ``--epochs`` epochs in a row, the queue ``burst + GPU_DEPTH`` deep, made in one of two ways:
a fresh queue for each epoch (``per epoch``, as the trainer did before), whose thread starts on an
epoch's first filling only when the epoch's first step asks for it, or one queue over all the
epochs (``across``, ``FrameStream.epochs``, as the trainer does now), whose thread goes on into the
next epoch while the last steps of this one run; ``--between-ms`` of sleep after each epoch stands
in for the validation and the checkpoints (0 by default: what is hidden then is only what the last
steps of an epoch hide). Inline beside them.

Usage: python benchmarks/bench_prefetch.py [--frames 600000] [--batch 10000] [--step-ms 17]
                                           [--mode sleep launch] [--epochs 3] [--between-ms 0]
                                           [--repeats 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from bench_common import count, stop_on_term  # noqa: E402
from bench_score import write_corpus  # noqa: E402
from bench_train import bench_config, trainer_stream  # noqa: E402

from flowaccent.data.atomic import atomic_write_json  # noqa: E402
from flowaccent.data.prefetch import GPU_DEPTH, prefetch  # noqa: E402


def stand_in(mode: str, seconds: float):
    r"""A step of ``seconds`` that leaves the CPU free (``sleep``) or launches like a GPU step (``launch``)."""
    a, b, out = torch.ones(4), torch.ones(4), torch.empty(4)

    def launch() -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            torch.add(a, b, out=out)  # the binding drops Python's lock around the native call

    return (lambda: time.sleep(seconds)) if mode == "sleep" else launch


def epochs_ms_per_step(stream, epochs: int, depth: int, across: bool, step, between: float) -> tuple[float, float]:
    r"""(ms per step, seconds waited for batches) over ``epochs`` epochs, batches made ``depth`` ahead
    in one queue ``across`` the epochs or a fresh queue per epoch, ``between`` seconds after each."""
    start, steps, waited = time.perf_counter(), 0, 0.0
    if across:
        plan = [(e, stream.num_frames(e)) for e in range(epochs)]  # more steps than batches: all of them
        with prefetch(stream.epochs(plan), depth) as batches:
            for batch in batches:
                if batch is None:
                    time.sleep(between)
                    continue
                step()
                steps += 1
            waited = batches.wait_seconds
    else:
        for e in range(epochs):
            with prefetch(stream.epoch(e), depth) as batches:
                for _ in batches:
                    step()
                    steps += 1
                waited += batches.wait_seconds
            time.sleep(between)
    return 1e3 * (time.perf_counter() - start) / steps, waited


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=count, default=600_000)
    parser.add_argument("--batch", type=count, default=10000)
    parser.add_argument("--step-ms", type=float, default=17.0)
    parser.add_argument("--mode", nargs="+", choices=["sleep", "launch"], default=["sleep", "launch"])
    parser.add_argument("--epochs", type=count, default=3)
    parser.add_argument("--between-ms", type=float, default=0.0)
    parser.add_argument("--repeats", type=count, default=3)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench_prefetch_"))
    rows = []
    try:
        with trainer_stream(write_corpus(root / "data", args.frames), bench_config(args.batch)) as stream:
            depths = (0, GPU_DEPTH, stream.burst + GPU_DEPTH)
            for mode in args.mode:
                step = stand_in(mode, args.step_ms / 1e3)
                ways = {"inline": (0, False), "per_epoch": (depths[-1], False), "across": (depths[-1], True)}
                loading, per_step, waited = [], {d: [] for d in depths}, {d: [] for d in depths}
                epochs_ms, epochs_waited = {w: [] for w in ways}, {w: [] for w in ways}
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    batches = sum(1 for _ in stream.epoch(0))
                    loading.append(1e3 * (time.perf_counter() - start) / batches)
                    for depth in depths:
                        ms, wait = epochs_ms_per_step(stream, 1, depth, False, step, 0.0)
                        per_step[depth].append(ms)
                        waited[depth].append(wait)
                    for way, (depth, across) in ways.items():
                        ms, wait = epochs_ms_per_step(stream, args.epochs, depth, across, step, args.between_ms / 1e3)
                        epochs_ms[way].append(ms)
                        epochs_waited[way].append(wait)
                rows.append({"mode": mode, "step_ms": args.step_ms, "batch": args.batch, "batches": batches,
                             "loading_ms": statistics.median(loading), "burst": stream.burst,
                             **{f"depth{d}_ms": statistics.median(per_step[d]) for d in depths},
                             **{f"depth{d}_waited_s": statistics.median(waited[d]) for d in depths},
                             "epochs": args.epochs, "between_ms": args.between_ms,
                             **{f"{w}_ms": statistics.median(epochs_ms[w]) for w in ways},
                             **{f"{w}_waited_s": statistics.median(epochs_waited[w]) for w in ways}})
    finally:
        shutil.rmtree(root)
    print(f"one epoch of {args.frames} frames, batch {args.batch}, D=120, {rows[0]['batches']} batches; "
          f"a step of {args.step_ms:g} ms; median of {args.repeats}")
    print(f"{'mode':>7} {'loading ms':>11} " + " ".join(f"{f'depth {d} ms':>12} {'waited s':>9}" for d in depths))
    for r in rows:
        print(f"{r['mode']:>7} {r['loading_ms']:>11.1f} "
              + " ".join(f"{r[f'depth{d}_ms']:>12.1f} {r[f'depth{d}_waited_s']:>9.2f}" for d in depths))
    print(f"{args.epochs} epochs in a row, {args.between_ms:g} ms after each; the queue {depths[-1]} deep, "
          "a fresh one per epoch or one across the epochs")
    print(f"{'mode':>7} " + " ".join(f"{f'{w} ms':>14} {'waited s':>9}" for w in ways))
    for r in rows:
        print(f"{r['mode']:>7} " + " ".join(f"{r[f'{w}_ms']:>14.1f} {r[f'{w}_waited_s']:>9.2f}" for w in ways))
    if args.json:
        atomic_write_json(args.json, rows)
    return rows


if __name__ == "__main__":
    stop_on_term()
    main()
