r"""A training step's products on oneDNN, one kind at a time, against the packed forward products' rate.

``bench_model.py``'s "oneDNN train products alone" column times the three products of every conditioner
layer together (forward ``x W^T``, input gradient ``g W``, weight gradient ``g^T x``) as
:mod:`flowaccent.flows.onednn_train` calls them. This splits that column by kind, to show which of them
keeps it under the packed rate. Over every layer of the 10 x 512 flow's conditioners (``bench_model.ARCH``),
at each batch, interleaved and median of ``--repeats``, in GFLOP/s of the architecture's FLOPs:
  packed        the forward products with prepacked weights, no bias or activation: the ceiling (as
                ``bench_model.py``'s oneDNN column)
  forward       the training forward's products: weights as they are (reordered by oneDNN on every call),
                bias and ReLU fused (none after the last layer)
  input_grad    ``g W``: the weight passed transposed, as the backward passes it
  weight_grad   ``g^T x`` as :func:`~flowaccent.flows.onednn_train.weight_grad` makes it: the narrower operand's
                transposed copy (:func:`~flowaccent.flows.onednn_train.transposed`), then the product
  wgrad_product the same product with that copy made beforehand (the product alone)
and the copies alone in milliseconds per step (every layer of every block), with each kind's share of the
three kinds' time.

Usage: python benchmarks/bench_products.py [--dims 120 440] [--batches 2048 10000] [--repeats 3] [--steps 3]
                                           [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from bench_common import stop_on_term  # noqa: E402
from bench_model import ARCH, add_table_args, layer_shapes, seconds

from flowaccent.allocator import tune_allocator
from flowaccent.data.atomic import atomic_write_json
from flowaccent.flows.onednn_train import product, transposed, weight_grad
from flowaccent.flows.packed import PACK_BATCH

KINDS = ("packed", "forward", "input_grad", "weight_grad", "wgrad_product")


def operands(dim: int, batch: int) -> list[dict]:
    r"""Per conditioner layer: random ``x (B, in)``, ``g (B, out)``, ``W (out, in)``, ``b (out,)``, the packed
    ``W``, whether a ReLU follows, and the weight gradient's two operands with the narrower one's transposed
    copy made (as :func:`~flowaccent.flows.onednn_train.weight_grad` chooses it)."""
    shapes = layer_shapes(ARCH, dim)
    layers = []
    for i, (a, b) in enumerate(shapes):
        x, g, w = torch.randn(batch, a), torch.randn(batch, b), torch.randn(b, a)
        copied, other = (x, g) if x.shape[1] < g.shape[1] else (g, x)
        layers.append({
            "x": x, "g": g, "w": w, "b": torch.randn(b), "relu": i < len(shapes) - 1,
            "packed": torch.ops.mkldnn._reorder_linear_weight(w, PACK_BATCH),
            "copied": copied, "copy": transposed(copied), "other_t": other.t(),
        })
    return layers


def one(kind: str, layer: dict) -> None:
    x, g, w = layer["x"], layer["g"], layer["w"]
    if kind == "packed":
        torch.ops.mkldnn._linear_pointwise(x, layer["packed"], None, "none", [], "")
    elif kind == "forward":
        product(x, w, layer["b"], "relu" if layer["relu"] else "none")
    elif kind == "input_grad":
        product(g, w.t())
    elif kind == "weight_grad":
        weight_grad(g, x)
    elif kind == "wgrad_product":
        product(layer["copy"], layer["other_t"])
    elif kind == "copy":
        transposed(layer["copied"])
    else:
        raise ValueError(kind)


def time_kind(kind: str, layers: list[dict], steps: int) -> float:
    r"""Seconds per step of ``kind`` over every layer of every block."""

    def step():
        for _ in range(ARCH.num_blocks):
            for layer in layers:
                one(kind, layer)

    return seconds(step, steps, "cpu") / steps


def run(dims, batches, repeats: int = 3, steps: int = 3) -> list[dict]:
    rows = []
    for dim in dims:
        for batch in batches:
            layers = operands(dim, batch)
            flops = 2 * batch * sum(a * b for a, b in layer_shapes(ARCH, dim)) * ARCH.num_blocks
            times: dict[str, list[float]] = {k: [] for k in (*KINDS, "copy")}
            for _ in range(repeats):  # interleaved, so machine noise hits all alike
                for kind in times:
                    times[kind].append(time_kind(kind, layers, steps))
            s = {k: statistics.median(v) for k, v in times.items()}
            three = s["forward"] + s["input_grad"] + s["weight_grad"]
            row = {"dim": dim, "batch": batch, **{f"{k}_gflops": flops / s[k] / 1e9 for k in KINDS}}
            row.update({f"{k}_share_packed": s["packed"] / s[k] for k in KINDS[1:]})
            row.update({f"{k}_share_of_products": s[k] / three for k in ("forward", "input_grad", "weight_grad")})
            row.update({"copy_ms": 1e3 * s["copy"], "copy_share_of_products": s["copy"] / three,
                        "products_share_packed": 3 * s["packed"] / three})
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_table_args(parser, repeats=3)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    if not torch.backends.mkldnn.is_available():
        raise SystemExit("torch is built without oneDNN: nothing to time")
    tune_allocator()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; 10 x 512, median of {args.repeats}; "
          "GFLOP/s (share of the packed rate)")
    rows = run(args.dims, args.batches, args.repeats, args.steps)
    print(f"{'D':>4} {'batch':>6} {'packed':>8} {'forward':>15} {'input grad':>15} {'weight grad':>15} "
          f"{'wgrad product':>15} {'copies ms':>10} {'all three':>10}")
    for r in rows:
        cells = " ".join(f"{r[f'{k}_gflops']:>7.1f} ({100 * r[f'{k}_share_packed']:>4.1f}%)" for k in KINDS[1:])
        print(f"{r['dim']:>4} {r['batch']:>6} {r['packed_gflops']:>8.1f} {cells} {r['copy_ms']:>10.1f} "
              f"{100 * r['products_share_packed']:>9.1f}%")
    if args.json:
        atomic_write_json(args.json, rows)
    return rows


if __name__ == "__main__":
    stop_on_term()
    main()
