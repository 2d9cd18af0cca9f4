r"""Model-only training and inference throughput of the flow, as a share of the machine's matmul rate.

Measured side by side in one run, median of ``--repeats``:
  matmul    torch.mm on exactly the conditioner layer shapes at the same batch (the ceiling)
  train     forward + backward + Adam step of FlowModel (10 blocks, hidden 512), frames/s
  infer     eval-mode forward without gradients, frames/s
FLOPs are counted from the architecture (2 x multiply-adds of the conditioner matmuls; a
training step costs 3x the forward: the forward, and the input and weight gradients).

Usage: python benchmarks/bench_model.py [--dims 120 440] [--batches 2048 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from flowaccent.features import FeaturePipeline, FeaturePipelineConfig
from flowaccent.flows.realnvp import ModelConfig, flops_per_frame
from flowaccent.model import FlowModel
from flowaccent.prior import PriorConfig


def build(dim: int, config: ModelConfig, cond_dim: int) -> FlowModel:
    pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="none", deltas=0, standardize=False), dim)
    model = FlowModel(pipeline, config, PriorConfig(cond_dim=cond_dim), ("native", "zh"))
    x = torch.randn(4096, dim)
    model.initialize(x, torch.arange(4096) % 2)
    with torch.no_grad():  # leave the zero-initialised identity so the timing is of real work
        for p in model.transform.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model


def layer_shapes(config: ModelConfig, dim: int) -> list[tuple[int, int]]:
    widths = [dim // 2 + config.context_dim] + [config.hidden] * config.num_layers + [2 * (dim - dim // 2)]
    return list(zip(widths[:-1], widths[1:]))


def time_matmul(config: ModelConfig, dim: int, batch: int, reps: int) -> float:
    r"""GFLOP/s of torch.mm over one forward's worth of conditioner layers."""
    shapes = layer_shapes(config, dim)
    inputs = [torch.randn(batch, a) for a, _ in shapes]
    weights = [torch.randn(a, b) for a, b in shapes]
    flops = 2 * batch * sum(a * b for a, b in shapes) * config.num_blocks
    for x, w in zip(inputs, weights):
        torch.mm(x, w)
    start = time.perf_counter()
    for _ in range(reps):
        for _ in range(config.num_blocks):
            for x, w in zip(inputs, weights):
                torch.mm(x, w)
    return flops * reps / (time.perf_counter() - start) / 1e9


def time_train(model: FlowModel, batch: int, steps: int) -> float:
    x = torch.randn(batch, model.dim)
    y = torch.arange(batch) % 2
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
    model.train()

    def step():
        loss = model(x, y).nll.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


@torch.no_grad()
def time_infer(model: FlowModel, batch: int, steps: int) -> float:
    x = torch.randn(batch, model.dim)
    model.eval()
    model(x)
    start = time.perf_counter()
    for _ in range(steps):
        model(x)
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[120, 440])
    parser.add_argument("--batches", type=int, nargs="+", default=[10000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    config = ModelConfig(num_blocks=10, hidden=512, num_layers=2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; 10 blocks x hidden 512, "
          f"median of {args.repeats}")
    print(f"{'D':>4} {'batch':>6} {'matmul GF/s':>12} {'train fr/s':>11} {'train %':>8} "
          f"{'infer fr/s':>11} {'infer %':>8}")
    for dim in args.dims:
        model = build(dim, config, cond_dim=dim)
        fwd = flops_per_frame(config, dim)
        for batch in args.batches:
            mm, tr, inf = [], [], []
            for _ in range(args.repeats):  # interleaved, so machine noise hits all alike
                mm.append(time_matmul(config, dim, batch, args.steps))
                tr.append(time_train(model, batch, args.steps))
                inf.append(time_infer(model, batch, args.steps))
            rate, train_fps, infer_fps = (statistics.median(v) for v in (mm, tr, inf))
            train_share = 3 * fwd * train_fps / 1e9 / rate
            infer_share = fwd * infer_fps / 1e9 / rate
            print(f"{dim:>4} {batch:>6} {rate:>12.1f} {train_fps:>11.0f} {100 * train_share:>7.1f}% "
                  f"{infer_fps:>11.0f} {100 * infer_share:>7.1f}%")


if __name__ == "__main__":
    main()
