r"""Conditioner MLPs with gradients on oneDNN: the training step's products where MKL is slow.

PyTorch multiplies float32 matrices on a CPU with MKL, which on AMD CPUs runs a generic path
(``MKL_VERBOSE`` names no instruction set), while oneDNN (the library behind
:mod:`flowaccent.flows.packed`) uses AVX-512. On the AMD EPYC (Zen 5) of the run of 2026-12-01,
``torch.mm`` on the conditioner layers' shapes ran at 215-230 GFLOP/s and oneDNN's inner product
at 510-537, and a training step with its products on oneDNN ran 1.78-1.83x as fast as with MKL's
(``benchmarks/bench_model.py``: its matmul, oneDNN and "vs MKL" columns; ``docs/performance.md``).
On the Intel Xeons of the earlier runs oneDNN's products, even with weights packed once, ran at
the ``torch.mm`` rate, not above it (the same columns), and the forward alone on oneDNN in
training gained nothing measurable: ``auto`` leaves the products to MKL on every CPU but AMD's.

Each ``Linear`` (with the ``ReLU`` after it, if any) is one autograd node: forward, oneDNN's
inner product with bias and ReLU fused; backward, ReLU's mask (``threshold_backward``), the input
gradient ``g W`` and the weight gradient ``g^T x`` as oneDNN products (the second copies ``g^T``,
or ``x^T`` where the layer's input is the narrower, first: oneDNN wants the reduced dimension
contiguous; :func:`transposed`), the bias gradient a sum.
The weights are passed as they are (oneDNN reorders a 512 x 512 weight in ~0.4 ms per call; they
change every step, so packing them once as inference does is not possible). Same values as the
modules to float32 rounding (tested: outputs and gradients).

Used for float32 CPU tensors with gradients on, outside autocast (bf16), with oneDNN available.
``FLOWACCENT_ONEDNN_TRAIN``: ``auto`` (default: AMD CPUs), ``1`` (always), ``0`` (never);
``FLOWACCENT_ONEDNN=0`` turns it off too. Under ``torch.compile`` (``train.compile``) too: the
products are then the custom operator :func:`onednn_product`, which Inductor calls as it is
(its own lowering of oneDNN's inner product takes frozen weights only) while it fuses the
element-wise work around them; on the AMD EPYC the compiled step on MKL's products ran at
0.57-0.59x the eager one on oneDNN's, with them at 1.05-1.08x (the weight gradient's transposed
copies left to Inductor too; ``docs/performance.md``).
"""

from __future__ import annotations

import functools
import os

import torch
from torch import Tensor, nn

from flowaccent.flows.packed import float32_cpu, onednn_enabled


def onednn_training(x: Tensor) -> bool:
    r"""Whether :func:`onednn_mlp` runs a conditioner on ``x`` (see the module's docstring)."""
    return torch.is_grad_enabled() and x.shape[0] > 0 and float32_cpu(x) and wanted()


def wanted() -> bool:
    r"""``FLOWACCENT_ONEDNN_TRAIN``: ``1``, or ``auto`` (the default) on an AMD CPU; and oneDNN enabled."""
    choice = os.environ.get("FLOWACCENT_ONEDNN_TRAIN", "auto")
    return (choice == "1" or (choice == "auto" and cpu_vendor() == "AuthenticAMD")) and onednn_enabled()


def prepare_compile() -> None:
    r"""Marks :func:`wanted` for Dynamo as a constant (``torch.compiler.assume_constant_result``): a compiled
    graph takes its value at tracing, without its file and environment reads, which would split the graph.
    Called by :func:`flowaccent.runtime.compiled` before compiling, not as a decorator: that imports
    ``torch._dynamo``, ~1 s of every command's start-up (docs/performance.md)."""
    torch.compiler.assume_constant_result(wanted)


@functools.cache
def cpu_vendor() -> str:
    r"""The CPU's vendor string (``GenuineIntel``, ``AuthenticAMD``, ...) from ``/proc/cpuinfo``; empty
    where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def onednn_mlp(net: nn.Sequential, x: Tensor) -> Tensor:
    r"""``net(x)`` with gradients for an MLP of ``Linear, act, ..., Linear``: ``(B, d_in) -> (B, d_out)``.

    A ``ReLU`` is fused into the product before it; any other activation runs as its module.
    """
    h = x
    modules = list(net)
    i = 0
    while i < len(modules):
        layer = modules[i]
        if not isinstance(layer, nn.Linear):
            h = layer(h)
            i += 1
            continue
        relu = i + 1 < len(modules) and isinstance(modules[i + 1], nn.ReLU)
        h = _OneDnnLinear.apply(h, layer.weight, layer.bias, relu)
        i += 2 if relu else 1
    return h


def product(
    a: Tensor, b_t: Tensor, bias: Tensor | None = None, post_op: str = "none", compiled: bool = False
) -> Tensor:
    r"""``a @ b_t.T (+ bias)`` (then ``post_op``) on oneDNN: ``(M, K), (N, K) -> (M, N)``. Any strides: oneDNN copies
    ``a`` to rows and reorders ``b_t`` (fast for a transposed contiguous tensor, very slow for a column view's).
    ``compiled``: through the custom operator :func:`onednn_product` (Inductor lowers oneDNN's own only for frozen
    weights); eager calls skip its dispatch (0.96x the step at batch 512 through it, ad hoc)."""
    if compiled:
        return onednn_product(a, b_t, bias, post_op)
    return torch.ops.mkldnn._linear_pointwise(a, b_t, bias, post_op, [], "")


def weight_grad(grad: Tensor, x: Tensor, compiled: bool = False) -> Tensor:
    r"""``g^T x`` on oneDNN: ``(B, O), (B, I) -> (O, I)``. oneDNN wants the first operand's rows contiguous, so
    the narrower of ``x^T`` and ``g^T`` is copied; here, not inside the product, so that ``torch.compile``
    generates the copy (ATen's transpose runs on one thread, Inductor's kernel on all of them: the compiled
    step 1.05-1.06x, ``benchmarks/bench_ab.py``)."""
    if x.shape[1] < grad.shape[1]:
        return product(transposed(x, compiled), grad.t(), compiled=compiled).t()
    return product(transposed(grad, compiled), x.t(), compiled=compiled)


#: Frames per block of :func:`transposed`'s copy, and the narrowest matrix copied in blocks.
TRANSPOSE_BLOCK, TRANSPOSE_MIN_WIDTH = 512, 100


def transposed(x: Tensor, compiled: bool = False) -> Tensor:
    r"""``x.t().contiguous()``: ``(B, W) -> (W, B)``. Eagerly, for ``W >=`` :data:`TRANSPOSE_MIN_WIDTH` and more
    than one block, copied in blocks of :data:`TRANSPOSE_BLOCK` frames: ATen copies a whole transposed matrix
    on one thread, a block's copy runs on every thread with the block's rows in cache (ad hoc, at batch 10000:
    2x as fast at widths 220 and 440, 1.2x at 512, slower at 60; at 2048 1.6-2x at 120-440, 0.9x at 512).
    Under ``torch.compile`` Inductor generates the copy."""
    if compiled or x.shape[1] < TRANSPOSE_MIN_WIDTH or x.shape[0] <= TRANSPOSE_BLOCK:
        return x.t().contiguous()
    out = x.new_empty(x.shape[1], x.shape[0])
    for start in range(0, x.shape[0], TRANSPOSE_BLOCK):
        out[:, start : start + TRANSPOSE_BLOCK].copy_(x[start : start + TRANSPOSE_BLOCK].t())
    return out


@torch.library.custom_op("flowaccent::onednn_product", mutates_args=())
def onednn_product(a: Tensor, b_t: Tensor, bias: Tensor | None, post_op: str) -> Tensor:
    r"""oneDNN's inner product as an operator ``torch.compile`` calls as it is (see :func:`product`)."""
    return torch.ops.mkldnn._linear_pointwise(a, b_t, bias, post_op, [], "")


@onednn_product.register_fake
def _(a: Tensor, b_t: Tensor, bias: Tensor | None, post_op: str) -> Tensor:
    return a.new_empty(a.shape[0], b_t.shape[0])


class _OneDnnLinear(torch.autograd.Function):
    r"""``relu?(x W^T + b)``: ``x (B, I), W (O, I), b (O,) -> (B, O)``."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, relu: bool) -> Tensor:
        x = x.contiguous()  # a column view (the identity half): oneDNN reorders its transpose very slowly
        ctx.compiled = torch.compiler.is_compiling()
        out = product(x, weight, bias, "relu" if relu else "none", ctx.compiled)
        ctx.relu = relu
        ctx.save_for_backward(x, weight, out if relu else None)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight, out = ctx.saved_tensors
        if ctx.relu:
            grad = torch.ops.aten.threshold_backward(grad, out, 0)
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        compiled = ctx.compiled
        grad_x = product(grad, weight.t(), compiled=compiled) if need_x else None  # g W
        grad_w = weight_grad(grad, x, compiled) if need_w else None
        grad_b = grad.sum(0) if need_b else None
        return grad_x, grad_w, grad_b, None
