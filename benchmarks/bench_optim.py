r"""The optimizer step alone: torch's default Adam (for-loop on CPU), foreach and fused (the trainer's).

On the 10 x 512 flow's parameters (``bench_model.build``) with gradients from one real training
step; each implementation's ``step()`` is timed ``--steps`` times, interleaved, median of
``--repeats``, and its share of one whole training step (forward + backward + fused Adam) at the
given batch is printed. The process's allocator is set up as the ``flowaccent`` command sets it.

Usage: python benchmarks/bench_optim.py [--dims 120 440] [--batch 2048] [--steps 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from bench_common import count, stop_on_term  # noqa: E402
from bench_model import ARCH, build, seconds, time_train

from flowaccent.allocator import tune_allocator
from flowaccent.data.atomic import atomic_write_json

IMPLEMENTATIONS = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def run(dims: list[int], batch: int = 2048, steps: int = 10, repeats: int = 3) -> list[dict]:
    rows = []
    for dim in dims:
        model = build(dim, ARCH, cond_dim=dim)
        x, y = torch.randn(batch, dim), torch.arange(batch) % 2
        model.train()
        model(x, y).nll.mean().backward()  # real gradients, kept for every step below
        optimizers = {k: torch.optim.Adam(model.parameters(), lr=1e-9, **kw) for k, kw in IMPLEMENTATIONS.items()}
        times: dict[str, list[float]] = {k: [] for k in optimizers}
        train_step = []
        for _ in range(repeats):
            for name, optimizer in optimizers.items():
                times[name].append(seconds(optimizer.step, steps, "cpu") / steps)
            train_step.append(batch / time_train(model, batch, 2))
        step_s = statistics.median(train_step)
        ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
        rows.append({
            "dim": dim, "batch": batch, "train_step_ms": 1e3 * step_s,
            **{f"{k}_ms": v for k, v in ms.items()},
            "fused_speedup": ms["default"] / ms["fused"],
            "default_share_of_step": ms["default"] / (1e3 * step_s - ms["fused"] + ms["default"]),
            "fused_share_of_step": ms["fused"] / (1e3 * step_s),
        })
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=count, nargs="+", default=[120, 440])
    parser.add_argument("--batch", type=count, default=2048)
    parser.add_argument("--steps", type=count, default=10)
    parser.add_argument("--repeats", type=count, default=3)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    tune_allocator()
    rows = run(args.dims, args.batch, args.steps, args.repeats)
    print(f"Adam step alone, 10 x 512 flow, median of {args.repeats}; share of a training step at batch {args.batch}")
    print(f"{'D':>4} {'default ms':>11} {'foreach ms':>11} {'fused ms':>9} {'speedup':>8} "
          f"{'default %':>10} {'fused %':>8}")
    for r in rows:
        print(f"{r['dim']:>4} {r['default_ms']:>11.2f} {r['foreach_ms']:>11.2f} {r['fused_ms']:>9.2f} "
              f"{r['fused_speedup']:>7.2f}x {100 * r['default_share_of_step']:>9.1f}% "
              f"{100 * r['fused_share_of_step']:>7.1f}%")
    if args.json:
        atomic_write_json(args.json, rows)
    return rows


if __name__ == "__main__":
    stop_on_term()
    main()
