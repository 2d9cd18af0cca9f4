r"""The flow's forward pass for training: the features kept as two column halves, and each
coupling fused with the ActNorm after it into one autograd node.

With the alternating masks the flow permutes the features once into (evens, odds), and from then on
every coupling splits at the same column: one block transforms the right half given the left,
the next the left given the right. nflows' layers join the halves with a ``cat`` after every
coupling, ActNorm then rescales the whole ``(B, D)`` tensor, and autograd keeps a node (and a
saved tensor) for each ``tanh``, ``exp``, multiply and add and splits every gradient again. Here
the halves stay separate tensors from the first coupling to the last, and :class:`CouplingActNorm`
computes ``coupling`` then ``ActNorm`` with a hand-written backward:

    s = c tanh(u / c),  y_t = (x_t exp(s) + t) a_t + b_t,  y_i = x_i a_i + b_i,
    log_det = sum(s) + sum(log a)

where ``(t, u)`` come from the conditioner of ``x_i`` and ``a = exp(ActNorm.log_scale)``,
``b = ActNorm.shift`` split at the same column. About half the passes over memory of the
element-wise work (``benchmarks/bench_model.py`` measures the training step; docs/performance.md).
The conditioner MLPs are unchanged (autograd).

Same values and gradients as the nflows layers to rounding (tested in float64). Used for the
flows it fits: alternating masks (layout ``first``/``last``), ActNorm after every coupling and
already initialised; anything else (random masks, BatchNorm or no norm, the first training batch
that initialises ActNorm, ``torch.compile``, which fuses the element-wise work itself) runs
through the nflows layers, as does everything with ``FLOWACCENT_HALVES=0`` in the environment.
"""

from __future__ import annotations

import os

import torch
from nflows.transforms.base import CompositeTransform
from nflows.transforms.normalization import ActNorm
from nflows.transforms.permutations import Permutation
from torch import Tensor

from flowaccent.flows.coupling import SoftClampAffineCoupling, soft_clamp, soft_clamp_grad_
from flowaccent.flows.norm import is_initialized


class CouplingActNorm(torch.autograd.Function):
    r"""One soft-clamped affine coupling followed by ActNorm, on halves.

    Arguments (forward):
        ident: ``(B, d)`` the coupling's identity half.
        trans: ``(B, k)`` its transformed half.
        params: ``(B, 2k)`` the conditioner's output (shift ``t``, then scale logits ``u``).
        log_a_i, b_i: ``(d,)`` ActNorm's log-scale and shift on the identity half's columns.
        log_a_t, b_t: ``(k,)`` the same on the transformed half's columns.
        clamp: ``c``.

    Returns ``(y_i (B, d), y_t (B, k), log_det (B,))``.
    """

    @staticmethod
    def forward(ctx, ident, trans, params, log_a_i, b_i, log_a_t, b_t, clamp: float):
        k = trans.shape[1]
        shift, raw = params.split([k, k], 1)
        u, e = soft_clamp(raw, clamp)  # s / c, exp(s)
        a_i, a_t = log_a_i.exp(), log_a_t.exp()
        e.mul_(a_t)  # exp(s) a_t: dy_t / dx_t
        y_t = torch.addcmul(b_t, shift, a_t).addcmul_(trans, e)
        y_i = torch.addcmul(b_i, ident, a_i)
        log_det = u.sum(1).mul_(clamp).add_(log_a_i.sum() + log_a_t.sum())
        ctx.save_for_backward(ident, trans, u, e, a_i, a_t, b_t, y_t)
        return y_i, y_t, log_det

    @staticmethod
    def backward(ctx, g_i, g_t, g_ld):
        ident, trans, u, e, a_i, a_t, b_t, y_t = ctx.saved_tensors
        k = trans.shape[1]
        g_ld_total = g_ld.sum()
        g_b_i, g_b_t = g_i.sum(0), g_t.sum(0)
        # d/dlog_a of (x a + b) is (y - b), summed over the batch; log_det adds sum(log a) per frame
        g_log_a_i = torch.linalg.vecdot(g_i, ident, dim=0).mul_(a_i).add_(g_ld_total)
        g_log_a_t = torch.linalg.vecdot(g_t, y_t, dim=0).sub_(b_t * g_b_t).add_(g_ld_total)
        g_ident = g_i * a_i
        g_params = trans.new_empty(trans.shape[0], 2 * k)  # written in place: no cat of the two halves
        g_shift, g_raw = g_params.split([k, k], 1)
        torch.mul(g_t, a_t, out=g_shift)
        g_trans = g_t * e
        soft_clamp_grad_(torch.addcmul(g_ld.unsqueeze(1), g_trans, trans, out=g_raw), u)  # dL/ds, then dL/du
        return g_ident, g_trans, g_params, g_log_a_i, g_b_i, g_log_a_t, g_b_t, None


def halves_plan(transform: CompositeTransform) -> tuple[Permutation | None, list, Permutation | None, int] | None:
    r"""``(first permutation, [(coupling, actnorm), ...], last permutation, split column)`` when
    ``transform`` has the shape this path handles, else None."""
    layers = list(transform._transforms)
    first = layers.pop(0) if layers and isinstance(layers[0], Permutation) else None
    last = layers.pop() if layers and isinstance(layers[-1], Permutation) else None
    if not layers or len(layers) % 2:
        return None
    pairs = list(zip(layers[0::2], layers[1::2]))
    split = None
    for coupling, norm in pairs:
        if type(coupling) is not SoftClampAffineCoupling or coupling.layout is None or not isinstance(norm, ActNorm):
            return None
        left = coupling.num_identity_features if coupling.layout == "first" else coupling.num_transform_features
        if split is not None and left != split:
            return None
        split = left
    return first, pairs, last, split


def forward_training(transform: CompositeTransform, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
    r"""``transform(x, context)`` with autograd, on halves where the flow allows it:
    ``x (B, D) -> (z (B, D), log_det (B,))``."""
    off = torch.compiler.is_compiling() or os.environ.get("FLOWACCENT_HALVES", "1") == "0"
    plan = None if off else halves_plan(transform)
    if plan is None or not all(is_initialized(norm) for _, norm in plan[1]):
        return transform(x, context)
    first, pairs, last, split = plan
    log_det = x.new_zeros(x.shape[0])
    if first is not None:
        x, log_det = first(x, context)
    sizes = [split, x.shape[1] - split]
    halves = list(x.split(sizes, 1))  # [left, right]
    for coupling, norm in pairs:
        i = 0 if coupling.layout == "first" else 1  # which half is the identity half
        log_a, b = norm.log_scale.split(sizes), norm.shift.split(sizes)
        params = coupling.transform_net(halves[i], context)
        halves[i], halves[1 - i], step = CouplingActNorm.apply(
            halves[i], halves[1 - i], params, log_a[i], b[i], log_a[1 - i], b[1 - i], coupling.clamp
        )
        log_det = log_det + step
    z = torch.cat(halves, 1)
    if last is not None:
        z, step = last(z, context)
        log_det = log_det + step
    return z, log_det
