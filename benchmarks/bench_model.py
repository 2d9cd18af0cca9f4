r"""Model-only training and inference throughput of the flow, as a share of the machine's matmul rate.

Measured side by side in one run, median of ``--repeats`` (interleaved, so machine noise hits all alike):
  matmul    torch.mm on exactly the conditioner layer shapes at the same batch (the ceiling)
  oneDNN    the same products on oneDNN with prepacked weights, the kernel CPU inference runs
            (flowaccent.flows.packed); inference is also given as a share of this rate
  train     forward + backward + Adam step (the trainer's fused Adam) of FlowModel (10 blocks, hidden 512), frames/s
  nflows    the same step through nflows' layers (FLOWACCENT_HALVES=0), without flowaccent's fused
            coupling + ActNorm nodes (flowaccent.flows.halves): ``train`` is given as a speedup over it
  MKL       the same step with the conditioners' products on MKL (FLOWACCENT_ONEDNN_TRAIN=0), as torch's own
            modules run them: ``train`` is given as a speedup over it (1x where the default is MKL anyway, i.e.
            on CPUs other than AMD's; flowaccent.flows.onednn_train) and as a share of the oneDNN rate too
  compiled  the same step with the forward through torch.compile, as ``train.compile`` runs it
            (flowaccent.runtime.compiled; compiled in the first repeat's warm-up call, not timed);
            ``--compile-mode reduce-overhead`` replays the compiled forward and backward as CUDA graphs
  infer     eval-mode forward without gradients, frames/s
  unfolded  the same forward with FLOWACCENT_FOLD=0 (flowaccent.flows.folded off: one buffer updated in place,
            each ActNorm a pass over it): ``infer`` is given as a speedup over it
  train mm  the matmuls of a training step alone (forward, input and weight gradients in autograd's
            layouts): what the training share could reach if everything else took no time
  train dnn the same products as flowaccent.flows.onednn_train calls them on oneDNN (weights as they are,
            the weight gradient's transposed operand copied first), as a share of the oneDNN rate: what
            the training share of that rate could reach on the oneDNN path (compiled: also of that rate)
FLOPs are counted from the architecture (2 x multiply-adds of the conditioner matmuls; a
training step costs the forward, the weight gradients and the input gradients but the first layer's,
whose input is the data: 3x the forward less that product, flowaccent.flows.realnvp.train_flops_per_frame).
The process's allocator is set up as the ``flowaccent`` command sets it (flowaccent.allocator;
``FLOWACCENT_MALLOC=system`` for glibc's defaults); minor page faults per inference step are printed.

On a GPU (``--device cuda``; the runner picks it when one is present) every rate is timed with
``torch.cuda.synchronize``; ``--precision tf32`` allows TF32 matmuls, ``bf16`` runs the model
as the commands run it (flowaccent.runtime: the conditioners under bf16 autocast; the
matmul ceiling is then timed in bf16 too); with either, the fp32 step and inference are timed in the same
repeats (``*_vs_fp32``: the medians of the per-repeat ratios).

Usage: python benchmarks/bench_model.py [--dims 120 440] [--batches 2048 10000] [--repeats 3]
                                        [--device cpu|cuda] [--precision fp32|tf32|bf16] [--no-compile]
                                        [--compile-mode default|reduce-overhead|max-autotune-no-cudagraphs]
                                        [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from unittest import mock

import torch
from bench_common import count, stop_on_term  # noqa: E402

from flowaccent.allocator import tune_allocator
from flowaccent.data.atomic import atomic_write_json
from flowaccent.features import FeaturePipeline, FeaturePipelineConfig
from flowaccent.flows import onednn_train
from flowaccent.flows.config import ModelConfig
from flowaccent.flows.packed import PACK_BATCH, packed_inference
from flowaccent.flows.realnvp import flops_per_frame, train_flops_per_frame
from flowaccent.model import FlowModel
from flowaccent.prior_config import PriorConfig
from flowaccent.runtime import compiled, compute_precision, tf32_matmuls
from flowaccent.train.optimizer import make_optimizer

ARCH = ModelConfig(num_blocks=10, hidden=512, num_layers=2)


def in_turn(items, repeat: int) -> list:
    r"""``items`` (a sequence) in the order of repeat number ``repeat``: rotated by one place each repeat, so that no
    variant always runs first. With a fixed order, the second of two `flowaccent train` commands in each repeat ran
    1-2% faster whichever checkout it was (benchmarks/results/intel-refactors-2026-12-05/): a bias of the order,
    not of the code, in a comparison of two checkouts."""
    items = list(items)
    k = repeat % len(items) if items else 0
    return items[k:] + items[:k]


def other_tree(tree: str | None) -> dict:
    r"""``subprocess.run`` arguments that run ``python -m flowaccent`` from the checkout at ``tree`` (a folder
    holding another version's ``flowaccent/``, e.g. ``git archive``'s), to time two versions side by side in
    one run; none for None (this checkout)."""
    if tree is None:
        return {}
    tree = os.path.abspath(tree)
    if not os.path.isdir(os.path.join(tree, "flowaccent")):
        raise SystemExit(f"{tree}: no flowaccent/ package in it")
    return {"cwd": tree, "env": {**os.environ, "PYTHONPATH": os.pathsep.join([tree, os.environ.get("PYTHONPATH", "")])}}


def add_table_args(parser: argparse.ArgumentParser, repeats: int) -> None:
    r"""A model-table benchmark's options: ``--dims``, ``--batches``, ``--repeats``, ``--steps``."""
    parser.add_argument("--dims", type=count, nargs="+", default=[120, 440])
    parser.add_argument("--batches", type=count, nargs="+", default=[2048, 10000])
    parser.add_argument("--repeats", type=count, default=repeats)
    parser.add_argument("--steps", type=count, default=3)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def seconds(step, reps: int, device: str) -> float:
    r"""Wall seconds of ``reps`` calls of ``step`` after one warm-up call (device synchronised)."""
    step()
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        step()
    sync(device)
    return time.perf_counter() - start


def build(dim: int, config: ModelConfig, cond_dim: int, device: str = "cpu") -> FlowModel:
    pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="none", deltas=0, standardize=False), dim)
    model = FlowModel(pipeline, config, PriorConfig(cond_dim=cond_dim), ("native", "zh"))
    x = torch.randn(4096, dim)
    model.initialize(x, torch.arange(4096) % 2)
    perturb(model)
    return model.to(device)


def perturb(model: FlowModel) -> None:
    r"""Moves the flow's weights off their zero-initialised identity, so a timing is of real work."""
    with torch.no_grad():
        for p in model.transform.parameters():
            p.add_(0.01 * torch.randn_like(p))


def layer_shapes(config: ModelConfig, dim: int) -> list[tuple[int, int]]:
    r"""One block's conditioner products ``(in, out)``: every block's, for an even ``dim`` (an odd one alternates
    two kinds of block, which the matmul ceiling does not time: refused)."""
    if dim % 2:
        raise SystemExit(f"D={dim}: the benchmarks' matmul rate is of one block's products, and an odd D alternates "
                         "two kinds of block; give an even D (120, 440)")
    widths = [dim // 2 + config.context_dim] + [config.hidden] * config.num_layers + [2 * (dim - dim // 2)]
    return list(zip(widths[:-1], widths[1:]))


def matmul_dtype(precision: str) -> torch.dtype:
    r"""What the ceiling's products multiply in: bfloat16 for ``bf16`` (the conditioners' matmuls), else float32."""
    return torch.bfloat16 if precision == "bf16" else torch.float32


def time_matmul(config: ModelConfig, dim: int, batch: int, reps: int, device: str = "cpu", precision: str = "fp32"):
    r"""GFLOP/s of torch.mm over one forward's worth of conditioner layers."""
    shapes = layer_shapes(config, dim)
    dtype = matmul_dtype(precision)
    inputs = [torch.randn(batch, a, device=device, dtype=dtype) for a, _ in shapes]
    weights = [torch.randn(a, b, device=device, dtype=dtype) for a, b in shapes]
    flops = 2 * batch * sum(a * b for a, b in shapes) * config.num_blocks

    def step():
        for _ in range(config.num_blocks):
            for x, w in zip(inputs, weights):
                torch.mm(x, w)

    return flops * reps / seconds(step, reps, device) / 1e9


def time_packed_matmul(config: ModelConfig, dim: int, batch: int, reps: int) -> float:
    r"""GFLOP/s of oneDNN's inner product with prepacked weights (the kernel CPU inference uses,
    flowaccent.flows.packed) over the same layers, bias and activation left out: a second ceiling."""
    shapes = layer_shapes(config, dim)
    inputs = [torch.randn(batch, a) for a, _ in shapes]
    weights = [torch.ops.mkldnn._reorder_linear_weight(torch.randn(b, a), PACK_BATCH) for a, b in shapes]
    flops = 2 * batch * sum(a * b for a, b in shapes) * config.num_blocks

    def step():
        for _ in range(config.num_blocks):
            for x, w in zip(inputs, weights):
                torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")

    return flops * reps / seconds(step, reps, "cpu") / 1e9


def time_train_products(
    config: ModelConfig, dim: int, batch: int, reps: int, products, device: str = "cpu", dtype=torch.float32
) -> float:
    r"""GFLOP/s of a training step's products alone: ``products(x, g, w)`` runs one layer's three (forward
    ``x W^T``, input gradient ``g W``, weight gradient ``g^T x``) on random ``x (B, in)``, ``g (B, out)``,
    ``W (out, in)``, for every layer of every block."""
    shapes = layer_shapes(config, dim)
    xs = [torch.randn(batch, a, device=device, dtype=dtype) for a, _ in shapes]
    gs = [torch.randn(batch, b, device=device, dtype=dtype) for _, b in shapes]
    ws = [torch.randn(b, a, device=device, dtype=dtype) for a, b in shapes]

    def step():
        for _ in range(config.num_blocks):
            for x, g, w in zip(xs, gs, ws):
                products(x, g, w)

    flops = 3 * 2 * batch * sum(a * b for a, b in shapes) * config.num_blocks
    return flops * reps / seconds(step, reps, device) / 1e9


def time_train_matmuls(
    config: ModelConfig, dim: int, batch: int, reps: int, device: str = "cpu", precision: str = "fp32"
) -> float:
    r"""GFLOP/s of the matmuls of a training step alone, in the layouts autograd uses: per layer
    ``x W^T`` (forward), ``g W`` (input gradient) and ``g^T x`` (weight gradient); bfloat16 for ``bf16``."""

    def products(x, g, w):
        torch.mm(x, w.t())
        torch.mm(g, w)
        torch.mm(g.t(), x)

    return time_train_products(config, dim, batch, reps, products, device, matmul_dtype(precision))


def time_train_onednn_products(config: ModelConfig, dim: int, batch: int, reps: int) -> float:
    r"""GFLOP/s of a training step's products as :mod:`flowaccent.flows.onednn_train` calls them on oneDNN: per
    layer ``x W^T`` and ``g W`` (weights as they are), and ``g^T x`` with its transposed operand's copy
    (:func:`~flowaccent.flows.onednn_train.weight_grad`); no bias or activation. The oneDNN training path's own
    ceiling, beside the packed forward products' rate that the training share is also given against."""

    def products(x, g, w):
        onednn_train.product(x, w)
        onednn_train.product(g, w.t())
        onednn_train.weight_grad(g, x)

    return time_train_products(config, dim, batch, reps, products)


def nflows_layers():
    r"""The training forward through nflows' layers (flowaccent.flows.halves off) inside the block."""
    return mock.patch.dict(os.environ, {"FLOWACCENT_HALVES": "0"})


def mkl_products():
    r"""The conditioners' training products on MKL (flowaccent.flows.onednn_train off) inside the block."""
    return mock.patch.dict(os.environ, {"FLOWACCENT_ONEDNN_TRAIN": "0"})


def fp32_matmuls():
    r"""CUDA matmuls in full fp32 (no TF32) inside the block, for the fp32 side of a tf32 table."""
    return tf32_matmuls(False)


def unfolded():
    r"""Inference without ActNorm folded into the couplings (flowaccent.flows.folded off) inside the block."""
    return mock.patch.dict(os.environ, {"FLOWACCENT_FOLD": "0"})


def time_train(model: FlowModel, batch: int, steps: int, precision: str = "fp32", forward=None) -> float:
    r"""Training frames/s; ``forward`` (default ``model``) runs the model, e.g. compiled."""
    forward = model if forward is None else forward
    device = str(next(model.parameters()).device)
    x = torch.randn(batch, model.dim, device=device)
    y = torch.arange(batch, device=device) % 2
    optimizer = make_optimizer(model.parameters(), lr=1e-5)  # the trainer's
    model.train()

    def step():
        with compute_precision(torch.device(device), precision):  # as `flowaccent train` runs it
            loss = forward(x, y).nll.float().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return batch * steps / seconds(step, steps, device)


@torch.no_grad()
def time_infer(model: FlowModel, batch: int, steps: int, precision: str = "fp32") -> tuple[float, float]:
    r"""Inference frames/s and minor page faults per step."""
    device = str(next(model.parameters()).device)
    x = torch.randn(batch, model.dim, device=device)
    model.eval()
    with compute_precision(torch.device(device), precision), packed_inference(model):  # as `flowaccent score`
        model(x)
        sync(device)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        for _ in range(steps):
            model(x)
        sync(device)
    seconds = time.perf_counter() - start
    return batch * steps / seconds, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps


def run(
    dims, batches, repeats: int = 3, steps: int = 3, device: str = "cpu", precision: str = "fp32",
    compile_: bool = True, compile_mode: str = "default",
) -> list[dict]:
    r"""One row per (D, batch): the matmul rate, train (eager and compiled) and inference frames/s and
    their shares of it."""
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    rows = []
    for dim in dims:
        model = build(dim, ARCH, cond_dim=dim, device=device)
        if compile_:  # each model compiled afresh: dynamo counts recompiles of FlowModel.forward over every
            torch._dynamo.reset()  # model of the process and, past its limit (8), runs the rest eagerly
        forward = compiled(model, torch.device(device), "bench", compile_mode) if compile_ else None
        fwd, step_flops = flops_per_frame(ARCH, dim), train_flops_per_frame(ARCH, dim)
        for batch in batches:
            mm, packed, train_mm, train_dnn, tr, trn, trm, trc, inf, infu, faults = ([] for _ in range(11))
            fp32 = {"train_fps": [], "train_compiled_fps": [], "infer_fps": []}  # beside tf32/bf16
            use_packed = device == "cpu" and precision == "fp32" and torch.backends.mkldnn.is_available()
            for _ in range(repeats):  # interleaved, so machine noise hits all alike
                mm.append(time_matmul(ARCH, dim, batch, steps, device, precision))
                packed.append(time_packed_matmul(ARCH, dim, batch, steps) if use_packed else float("nan"))
                train_dnn.append(time_train_onednn_products(ARCH, dim, batch, steps) if use_packed else float("nan"))
                train_mm.append(time_train_matmuls(ARCH, dim, batch, steps, device, precision))
                tr.append(time_train(model, batch, steps, precision))
                with nflows_layers():
                    trn.append(time_train(model, batch, steps, precision))
                with mkl_products():  # the products' library matters on a CPU only
                    trm.append(time_train(model, batch, steps, precision) if device == "cpu" else float("nan"))
                trc.append(time_train(model, batch, steps, precision, forward) if compile_ else float("nan"))
                fps, flt = time_infer(model, batch, steps, precision)
                inf.append(fps)
                faults.append(flt)
                with unfolded():  # folding is for the CPU's oneDNN path only
                    infu.append(time_infer(model, batch, steps, precision)[0] if device == "cpu" else float("nan"))
                if precision != "fp32":  # the fp32 step in the same repeats: "vs fp32" is side by side
                    with fp32_matmuls():
                        fp32["train_fps"].append(time_train(model, batch, steps))
                        fp32["train_compiled_fps"].append(
                            time_train(model, batch, steps, "fp32", forward) if compile_ else float("nan"))
                        fp32["infer_fps"].append(time_infer(model, batch, steps)[0])
            rate, train_fps, infer_fps = (statistics.median(v) for v in (mm, tr, inf))
            train_mm_rate = statistics.median(train_mm)
            rows.append({
                "device": device, "precision": precision, "compile_mode": compile_mode,
                "dim": dim, "batch": batch, "matmul_gflops": rate,
                "train_fps": train_fps, "train_share": step_flops * train_fps / 1e9 / rate,
                "train_matmuls_share": train_mm_rate / rate,
                "train_nflows_fps": statistics.median(trn),
                "fused_speedup": statistics.median(a / b for a, b in zip(tr, trn)),
                "train_mkl_fps": statistics.median(trm),
                "onednn_train_speedup": statistics.median(a / b for a, b in zip(tr, trm)),
                "train_share_packed": step_flops * train_fps / 1e9 / statistics.median(packed),
                "train_onednn_products_share_packed": statistics.median(train_dnn) / statistics.median(packed),
                "train_compiled_share_packed": step_flops * statistics.median(trc) / 1e9 / statistics.median(packed),
                "train_compiled_fps": statistics.median(trc),
                "train_compiled_share": step_flops * statistics.median(trc) / 1e9 / rate,
                "infer_fps": infer_fps, "infer_share": fwd * infer_fps / 1e9 / rate,
                "infer_unfolded_fps": statistics.median(infu),
                "fold_speedup": statistics.median(a / b for a, b in zip(inf, infu)),
                "packed_gflops": statistics.median(packed),
                "infer_share_packed": fwd * infer_fps / 1e9 / statistics.median(packed),
                "infer_faults_per_step": statistics.median(faults),
                **{f"{key}_vs_fp32": statistics.median(a / b for a, b in zip(mine, fp32[key]))
                   for key, mine in (("train_fps", tr), ("train_compiled_fps", trc), ("infer_fps", inf))
                   if fp32[key]},
            })
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_table_args(parser, repeats=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32")
    parser.add_argument("--no-compile", action="store_true", help="leave out the compiled training column")
    parser.add_argument("--compile-mode", default="default",
                        choices=["default", "reduce-overhead", "max-autotune-no-cudagraphs"],
                        help="torch.compile's mode for the compiled column")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    tuned = tune_allocator()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.device} {args.precision}, "
          f"allocator {'tuned' if tuned else 'system'}; 10 blocks x hidden 512, median of {args.repeats}; "
          f"compile mode {args.compile_mode}")
    rows = run(args.dims, args.batches, args.repeats, args.steps, args.device, args.precision, not args.no_compile,
               args.compile_mode)
    print(f"{'D':>4} {'batch':>6} {'matmul GF/s':>12} {'train mm %':>11} {'train fr/s':>11} {'train %':>8} "
          f"{'vs nflows':>10} {'vs MKL':>7} {'of oneDNN':>10} {'dnn mm %':>9} {'compiled fr/s':>14} {'compiled %':>11} "
          f"{'of oneDNN':>10} "
          f"{'infer fr/s':>11} {'infer %':>8} {'vs unfolded':>12} {'oneDNN GF/s':>12} {'of oneDNN':>10} "
          f"{'faults/step':>12}")
    for r in rows:
        print(f"{r['dim']:>4} {r['batch']:>6} {r['matmul_gflops']:>12.1f} {100 * r['train_matmuls_share']:>10.1f}% "
              f"{r['train_fps']:>11.0f} "
              f"{100 * r['train_share']:>7.1f}% {r['fused_speedup']:>9.2f}x {r['onednn_train_speedup']:>6.2f}x "
              f"{100 * r['train_share_packed']:>9.1f}% {100 * r['train_onednn_products_share_packed']:>8.1f}% "
              f"{r['train_compiled_fps']:>14.0f} {100 * r['train_compiled_share']:>10.1f}% "
              f"{100 * r['train_compiled_share_packed']:>9.1f}% {r['infer_fps']:>11.0f} "
              f"{100 * r['infer_share']:>7.1f}% {r['fold_speedup']:>11.2f}x "
              f"{r['packed_gflops']:>12.1f} {100 * r['infer_share_packed']:>9.1f}% "
              f"{r['infer_faults_per_step']:>12.0f}")
    if args.json:
        atomic_write_json(args.json, rows)
    return rows


if __name__ == "__main__":
    stop_on_term()
    main()
