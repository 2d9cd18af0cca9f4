r"""Inference in a fresh process with glibc's default allocator against flowaccent's tuning.

A process that only scores (as ``flowaccent score`` does) allocates and frees ``(batch, 512)``
activations every step; with glibc's defaults their pages go back to the kernel and are faulted
in again on the next step. Each repeat starts two child processes, ``FLOWACCENT_MALLOC=system``
and ``tuned`` (alternating which goes first), that build a 10 x 512 flow (D=120) and time
eval-mode inference only; their minor page faults per step are counted. Median of ``--repeats``.
(In a process that trains first, glibc's adaptive mmap threshold has often risen past the
activation size by the time it scores, so the default allocator may fault less there.)

Usage: python benchmarks/bench_malloc.py [--dim 120] [--batch 10000] [--repeats 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench_common import count, stop_on_term  # noqa: E402

from flowaccent.data.atomic import atomic_write_json

sys.path.insert(0, str(Path(__file__).parent))


def child(dim: int, batch: int, steps: int) -> None:
    from flowaccent.allocator import tune_allocator

    tune_allocator()  # a no-op under FLOWACCENT_MALLOC=system
    from bench_model import ARCH, build, time_infer

    fps, faults = time_infer(build(dim, ARCH, cond_dim=dim), batch, steps)
    print(json.dumps({"fps": fps, "faults_per_step": faults}))


def run(dim: int = 120, batch: int = 10000, repeats: int = 3, steps: int = 5) -> list[dict]:
    runs: dict[str, list[dict]] = {"system": [], "tuned": []}
    for i in range(repeats):
        for malloc in ("system", "tuned") if i % 2 == 0 else ("tuned", "system"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", "--dim", str(dim), "--batch", str(batch), "--steps", str(steps)],
                env={**os.environ, "FLOWACCENT_MALLOC": malloc}, capture_output=True, text=True, check=True,
            )
            runs[malloc].append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = statistics.median(r["fps"] for r in runs["system"])
    return [{"malloc": m, "dim": dim, "batch": batch, "repeats": repeats,
             "infer_fps": statistics.median(r["fps"] for r in rs),
             "vs_system": statistics.median(r["fps"] for r in rs) / base,
             "faults_per_step": statistics.median(r["faults_per_step"] for r in rs)} for m, rs in runs.items()]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=120)
    parser.add_argument("--batch", type=count, default=10000)
    parser.add_argument("--repeats", type=count, default=3)
    parser.add_argument("--steps", type=count, default=5)
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.dim, args.batch, args.steps)
        return []
    rows = run(args.dim, args.batch, args.repeats, args.steps)
    print(f"inference only, fresh processes, 10 x 512, D={args.dim}, batch {args.batch}, median of {args.repeats}")
    print(f"{'allocator':>9} {'infer fr/s':>11} {'vs system':>10} {'faults/step':>12}")
    for r in rows:
        print(f"{r['malloc']:>9} {r['infer_fps']:>11.0f} {r['vs_system']:>9.3f}x {r['faults_per_step']:>12.0f}")
    if args.json:
        atomic_write_json(args.json, rows)
    return rows


if __name__ == "__main__":
    stop_on_term()
    main()
