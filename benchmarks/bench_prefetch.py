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

Usage: python benchmarks/bench_prefetch.py [--frames 600000] [--step-ms 17] [--mode sleep launch]
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


def epoch_ms_per_step(stream, depth: int, step) -> tuple[float, float]:
    r"""(ms per step, seconds waited for batches) over one epoch with batches made ``depth`` ahead."""
    start, steps = time.perf_counter(), 0
    with prefetch(stream.epoch(0), depth) as batches:
        for _ in batches:
            step()
            steps += 1
        waited = batches.wait_seconds
    return 1e3 * (time.perf_counter() - start) / steps, waited


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=600_000)
    parser.add_argument("--step-ms", type=float, default=17.0)
    parser.add_argument("--mode", nargs="+", choices=["sleep", "launch"], default=["sleep", "launch"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench_prefetch_"))
    rows = []
    try:
        with trainer_stream(write_corpus(root / "data", args.frames), bench_config(10000)) as stream:
            depths = (0, GPU_DEPTH, stream.burst + GPU_DEPTH)
            for mode in args.mode:
                step = stand_in(mode, args.step_ms / 1e3)
                loading, per_step, waited = [], {d: [] for d in depths}, {d: [] for d in depths}
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    batches = sum(1 for _ in stream.epoch(0))
                    loading.append(1e3 * (time.perf_counter() - start) / batches)
                    for depth in depths:
                        ms, wait = epoch_ms_per_step(stream, depth, step)
                        per_step[depth].append(ms)
                        waited[depth].append(wait)
                rows.append({"mode": mode, "step_ms": args.step_ms, "batches": batches,
                             "loading_ms": statistics.median(loading), "burst": stream.burst,
                             **{f"depth{d}_ms": statistics.median(per_step[d]) for d in depths},
                             **{f"depth{d}_waited_s": statistics.median(waited[d]) for d in depths}})
    finally:
        shutil.rmtree(root)
    print(f"one epoch of {args.frames} frames, batch 10000, D=120, {rows[0]['batches']} batches; "
          f"a step of {args.step_ms:g} ms; median of {args.repeats}")
    print(f"{'mode':>7} {'loading ms':>11} " + " ".join(f"{f'depth {d} ms':>12} {'waited s':>9}" for d in depths))
    for r in rows:
        print(f"{r['mode']:>7} {r['loading_ms']:>11.1f} "
              + " ".join(f"{r[f'depth{d}_ms']:>12.1f} {r[f'depth{d}_waited_s']:>9.2f}" for d in depths))
    if args.json:
        atomic_write_json(args.json, rows)
    return rows


if __name__ == "__main__":
    main()
