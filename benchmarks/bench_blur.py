r"""Blur-mask kernel: ``triangular_blur`` forward + backward against the dense ``O(T K K)`` reference.

Both run on the same log spectrogram ``(T, K)`` and widths ``m ~ U[1, m_max]`` (``m_max`` 10 bins,
the fitting default), with gradients in the spectrum and the widths, in float32; median of
``--repeats`` interleaved timings. Equality is checked on the same inputs in float64 (outputs and
both gradients; the largest difference relative to each one's largest magnitude) and in float32. The goal of
docs/performance.md: equal within :data:`TOLERANCE`; a run that is not says so and exits with status 1.
The process's allocator is set up as the ``flowaccent`` command sets it.

Usage: python benchmarks/bench_blur.py [--bins 40 257] [--frames 500] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from bench_common import at_least, count, stop_on_term  # noqa: E402

from flowaccent.allocator import tune_allocator
from flowaccent.blurmask.blur import triangular_blur
from flowaccent.blurmask.dense import dense_triangular_blur
from flowaccent.data.atomic import atomic_write_json

#: The largest relative difference from the dense blur that counts as equal (issue #8, goal 5).
TOLERANCE = 1e-5


def inputs(frames: int, bins: int, m_max: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(bins)
    spec = (3 * torch.randn(frames, bins, generator=generator, dtype=torch.float64)).to(dtype)
    m = (1 + (m_max - 1) * torch.rand(frames, bins, generator=generator, dtype=torch.float64)).to(dtype)
    return spec.requires_grad_(), m.requires_grad_()


def forward_backward(blur, spec: torch.Tensor, m: torch.Tensor, mode: str) -> tuple[torch.Tensor, ...]:
    r"""Blurred spectrum and the gradients of ``sum(out * w)`` in ``spec`` and ``m``."""
    out = blur(spec, m, mode)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    return (out.detach(), *torch.autograd.grad((out * weights).sum(), (spec, m)))


def max_difference(mode: str, frames: int, bins: int, m_max: float, dtype: torch.dtype) -> float:
    r"""Largest difference of the output and both gradients, relative to each one's largest magnitude."""
    spec, m = inputs(frames, bins, m_max, dtype)
    fast = forward_backward(triangular_blur, spec, m, mode)
    dense = forward_backward(dense_triangular_blur, spec, m, mode)
    return max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(fast, dense))


def seconds(blur, mode: str, frames: int, bins: int, m_max: float) -> float:
    spec, m = inputs(frames, bins, m_max, torch.float32)
    start = time.perf_counter()
    forward_backward(blur, spec, m, mode)
    return time.perf_counter() - start


def run(bins: list[int], frames: int = 500, m_max: float = 10.0, mode: str = "renorm", repeats: int = 5) -> list[dict]:
    rows = []
    for k in bins:
        for blur in (triangular_blur, dense_triangular_blur):  # warm-up
            seconds(blur, mode, frames, k, m_max)
        fast, dense = [], []
        for _ in range(repeats):
            fast.append(seconds(triangular_blur, mode, frames, k, m_max))
            dense.append(seconds(dense_triangular_blur, mode, frames, k, m_max))
        rows.append({
            "bins": k, "frames": frames, "mode": mode, "m_max": m_max,
            "triangular_blur_ms": 1e3 * statistics.median(fast), "dense_ms": 1e3 * statistics.median(dense),
            "speedup": statistics.median(dense) / statistics.median(fast),
            "max_rel_diff_float64": max_difference(mode, frames, k, m_max, torch.float64),
            "max_rel_diff_float32": max_difference(mode, frames, k, m_max, torch.float32),
        })
        rows[-1]["equal"] = max(rows[-1]["max_rel_diff_float64"], rows[-1]["max_rel_diff_float32"]) <= TOLERANCE
    return rows


def width(text: str) -> float:
    r"""``--m-max``: the widest blur, at least 1 bin (below, every width was clamped to 1 and the run said
    'm ~ U[1, 0.5]')."""
    value = float(text)
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (bins), got {text}")
    return value


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # --bins 1: nothing to blur with; the widths' gradient is 0 up to rounding, which read as a difference of 3.0
    parser.add_argument("--bins", type=at_least(2), nargs="+", default=[40, 257])
    parser.add_argument("--frames", type=count, default=500)
    parser.add_argument("--m-max", type=width, default=10.0)
    parser.add_argument("--mode", choices=["drop", "fold", "renorm"], default="renorm")
    parser.add_argument("--repeats", type=count, default=5)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    tune_allocator()
    rows = run(args.bins, args.frames, args.m_max, args.mode, args.repeats)
    print(f"triangular_blur vs dense O(T K K), forward + backward, T={args.frames}, m ~ U[1, {args.m_max}], "
          f"mode {args.mode}, median of {args.repeats}")
    print(f"{'K':>4} {'blur ms':>9} {'dense ms':>9} {'speedup':>8} {'diff f64':>9} {'diff f32':>9}")
    for r in rows:
        print(f"{r['bins']:>4} {r['triangular_blur_ms']:>9.2f} {r['dense_ms']:>9.2f} {r['speedup']:>7.1f}x "
              f"{r['max_rel_diff_float64']:>9.1e} {r['max_rel_diff_float32']:>9.1e}")
    if args.json:
        atomic_write_json(args.json, rows)
    if unequal := [r["bins"] for r in rows if not r["equal"]]:
        sys.exit(f"bench_blur: triangular_blur differs from the dense blur by more than {TOLERANCE:g} at K = "
                 f"{', '.join(map(str, unequal))}")
    return rows


if __name__ == "__main__":
    stop_on_term()
    main()
