r"""Model-only speed of this checkout against another one, in fresh processes side by side.

Some changes cannot be switched off inside one process to be timed against themselves: a compiled
step's graph, for one, is compiled once per process for every model of the class (torch.compile
shares its code among instances), so two versions of the backward cannot both be compiled there.
This runs each version in its own child process instead, alternating (this checkout first in even
repeats, the other first in odd ones), and reports the median of the per-repeat ratios this / other.

Each child builds the 10 x 512 flow of ``bench_model`` (same seed, so the same weights in both; ``--norm
batchnorm`` or ``none`` for the flow without ActNorm, as the wsj_l2 recipe's lab settings train), and
times one of (``--what``):
  train     forward + backward + the trainer's fused Adam, eager (frames/s)
  compiled  the same with the forward through ``torch.compile`` as ``train.compile`` runs it (compiled
            in a warm-up call, not timed)
  infer     eval-mode forward without gradients, as ``flowaccent score`` runs it
each the median of ``--inner`` timings of ``--steps`` steps.

The other checkout is a folder holding its ``flowaccent/`` (e.g. ``git archive REV | tar -x -C DIR``);
``bench_model.py``'s helpers come from this checkout, so the two must share their names.

Usage: python benchmarks/bench_ab.py --other-tree DIR [--what train compiled infer] [--dims 120 440]
                                     [--batches 2048 10000] [--norm actnorm] [--repeats 3] [--steps 3] [--inner 3]
                                     [--json PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
from pathlib import Path

from bench_common import stop_on_term  # noqa: E402
from bench_model import add_table_args, other_tree

WHAT = ("train", "compiled", "infer")
NORMS = ("actnorm", "batchnorm", "none")


def child(what: str, dim: int, batch: int, steps: int, inner: int, norm: str = "actnorm") -> float:
    r"""Frames/s of ``what`` (median of ``inner`` timings), in this process: the child's side."""
    import torch
    from bench_model import ARCH, build, time_infer, time_train

    from flowaccent.allocator import tune_allocator
    from flowaccent.runtime import compiled

    tune_allocator()
    torch.manual_seed(0)
    model = build(dim, dataclasses.replace(ARCH, norm=norm), cond_dim=dim)
    if what == "infer":
        return statistics.median(time_infer(model, batch, steps)[0] for _ in range(inner))
    forward = compiled(model, torch.device("cpu"), "bench") if what == "compiled" else None
    time_train(model, batch, 1, forward=forward)  # compiles, for the compiled step
    return statistics.median(time_train(model, batch, steps, forward=forward) for _ in range(inner))


def run_child(tree: str | None, what: str, dim: int, batch: int, steps: int, inner: int, norm: str) -> float:
    r"""Frames/s of ``what`` in a fresh process of the checkout ``tree`` (None: this one)."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", what, "--dims", str(dim), "--batches",
            str(batch), "--steps", str(steps), "--inner", str(inner), "--norm", norm]
    done = subprocess.run(argv, capture_output=True, text=True, **other_tree(tree))
    if done.returncode != 0:
        raise SystemExit(f"the child for {tree or 'this checkout'} failed ({done.returncode}):\n{done.stderr}")
    return float(done.stdout.strip().splitlines()[-1])


def run(
    tree: str, whats, dims, batches, repeats: int = 3, steps: int = 3, inner: int = 3, norm: str = "actnorm"
) -> list[dict]:
    rows = []
    for what in whats:
        for dim in dims:
            for batch in batches:
                here, other = [], []
                for r in range(repeats):
                    order = [(None, here), (tree, other)]
                    for side, times in order if r % 2 == 0 else order[::-1]:
                        times.append(run_child(side, what, dim, batch, steps, inner, norm))
                rows.append({"what": what, "dim": dim, "batch": batch, "norm": norm, "fps": statistics.median(here),
                             "other_fps": statistics.median(other), "here": here, "other": other,
                             "ratio": statistics.median(a / b for a, b in zip(here, other))})
                row = rows[-1]
                print(f"{what:>8} {dim:>4} {batch:>6} {row['fps']:>11.0f} {row['other_fps']:>11.0f} "
                      f"{row['ratio']:>7.3f}x  (per repeat: {', '.join(f'{a / b:.3f}' for a, b in zip(here, other))})",
                      flush=True)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--other-tree", help="the other checkout: a folder holding its flowaccent/")
    parser.add_argument("--what", nargs="+", choices=WHAT, default=list(WHAT))
    add_table_args(parser, repeats=3)
    parser.add_argument("--inner", type=int, default=3)
    parser.add_argument("--norm", choices=NORMS, default="actnorm", help="the flow's norm between blocks")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--child", choices=WHAT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(child(args.child, args.dims[0], args.batches[0], args.steps, args.inner, args.norm))
        return []
    if not args.other_tree:
        parser.error("--other-tree is required")
    other_tree(args.other_tree)  # a clear error now for a folder without flowaccent/
    print(f"this checkout / {args.other_tree}, fresh processes alternating, median of {args.repeats} repeats "
          f"(each child: median of {args.inner} x {args.steps} steps); norm {args.norm}")
    print(f"{'what':>8} {'D':>4} {'batch':>6} {'here fr/s':>11} {'other fr/s':>11} {'ratio':>8}")
    rows = run(args.other_tree, args.what, args.dims, args.batches, args.repeats, args.steps, args.inner, args.norm)
    if args.json:
        from flowaccent.data.atomic import atomic_write_json

        atomic_write_json(args.json, rows)
    return rows


if __name__ == "__main__":
    stop_on_term()
    main()
