r"""Scoring's forward on a CPU: two contiguous halves, every ActNorm folded into the couplings' packed weights.

:func:`flowaccent.flows.inplace.forward_in_place` updates one ``(B, D)`` buffer in place: each coupling's
conditioner reads its identity half as a strided column view (oneDNN copies it first), its tail writes
the other half through a strided view, and each ActNorm is one more pass over the whole buffer. For the
flows :func:`flowaccent.flows.halves.halves_plan` fits (alternating masks, ActNorm after every coupling),
inside :func:`flowaccent.flows.packed.packed_inference`, in float32 on oneDNN, this keeps the two halves as
contiguous tensors from the first permutation to the last, and folds every ActNorm into the packed
weights of the couplings around it, so that no pass over memory is left for it:

- ActNorm ``j`` on the half coupling ``j`` transforms (scale ``a``, shift ``b``):
  ``a (x e + t) + b = x (a e) + (a t + b)``: ``a t + b`` comes out of the conditioner's last layer (its
  shift rows scaled by ``a``, ``b`` added to their bias) and ``a e = exp2(s log2 e + log2 a)``, in the
  pass that scales ``s`` by ``log2 e`` anyway;
- on the other half, which coupling ``j + 1`` transforms, it is applied ahead of time, by coupling
  ``j - 1`` when it writes that half (the same fold, on top of its own ActNorm), and undone in coupling
  ``j``'s first layer, whose conditioner reads that half: ``W ((v - b) / a) = (W / a) v - W (b / a)``.
  Coupling 0's identity half is scaled once, as the first permutation gathers it;
- the log-det of every ActNorm, ``sum(log a)`` per frame, is one constant.

The couplings' tails are those of ``forward_in_place`` (:func:`~flowaccent.flows.coupling.affine_tail_`).
The folded weights are packed once per block and reused while the weights stay the same
(:func:`flowaccent.flows.packed.block_cached`). Same values as ``forward_in_place`` to float32 rounding
(tested); ``FLOWACCENT_FOLD=0`` turns it off.
"""

from __future__ import annotations

import dataclasses
import os

import torch
from nflows.transforms.base import CompositeTransform
from torch import Tensor, nn

from flowaccent.flows.coupling import Conditioner, SoftClampAffineCoupling, affine_tail_
from flowaccent.flows.halves import halves_plan
from flowaccent.flows.norm import is_initialized
from flowaccent.flows.packed import block_cached, float32_cpu, onednn_enabled, pack, run_packed, weights_key


@dataclasses.dataclass(frozen=True)
class _Coupling:
    r"""One coupling with its ActNorms folded in.

    Attributes:
        identity: which half (0: the left ``split`` columns, 1: the rest) its conditioner reads.
        coupling: the coupling (its conditioner's context and activation, its clamp, its output's split).
        layers: the conditioner's packed ``(weight, bias)`` per layer, folded.
        log2_gain: ``(k,)``, ``log2`` of the ActNorm scales folded into ``exp(s)``.
    """

    identity: int
    coupling: SoftClampAffineCoupling
    layers: list[tuple[Tensor, Tensor]]
    log2_gain: Tensor


@dataclasses.dataclass(frozen=True)
class FoldedFlow:
    r"""A flow as :func:`fold` folds it: ``run(x (B, D), context) -> (z (B, D), log_det (B,))``.

    Attributes:
        gather: per half, its columns of ``x`` (the first permutation), as :func:`columns` gives them.
        restore: per half, where its columns go in ``z`` (the last permutation's inverse), the same way.
        first_scale, first_shift: coupling 0's ActNorm on its identity half, applied at the gather.
        couplings: the couplings in order.
        log_det: every ActNorm's ``sum(log a)``.
    """

    gather: tuple[slice | Tensor, slice | Tensor]
    restore: tuple[slice | Tensor, slice | Tensor]
    first_scale: Tensor
    first_shift: Tensor
    couplings: tuple[_Coupling, ...]
    log_det: float

    def run(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        halves = [take(x, cols) for cols in self.gather]
        first = halves[self.couplings[0].identity]
        torch.addcmul(self.first_shift, first, self.first_scale, out=first)
        log_det = x.new_full((x.shape[0],), self.log_det)
        for c in self.couplings:
            net = c.coupling.transform_net
            params = run_packed(c.layers, net.net, net.activation, net.with_context(halves[c.identity], context))
            shift, raw = c.coupling._shift_and_raw(params)  # the last layer's scale rows come out as u / c
            log_det += affine_tail_(shift, raw, halves[1 - c.identity], c.coupling.clamp, c.log2_gain)
        z = torch.empty_like(x, memory_format=torch.contiguous_format)
        for cols, half in zip(self.restore, halves):
            put(z, cols, half)
        return z, log_det


def columns(index: Tensor) -> slice | Tensor:
    r"""Columns ``index`` ``(n,)`` as a slice where they are evenly spaced (the alternating masks' evens and odds:
    a strided copy, twice as fast as ``index_select``/``index_copy_`` on the AMD EPYC), else as they are."""
    n = index.numel()
    step = int(index[1] - index[0]) if n > 1 else 1
    start = int(index[0])
    if step > 0 and torch.equal(index, torch.arange(start, start + step * n, step)):
        return slice(start, start + step * (n - 1) + 1, step)
    return index


def take(x: Tensor, cols: slice | Tensor) -> Tensor:
    r"""A contiguous copy of ``x[:, cols]`` ``(B, n)`` for :func:`columns`'s ``cols`` (never a view of ``x``)."""
    if isinstance(cols, slice):
        return x[:, cols].clone(memory_format=torch.contiguous_format)
    return x.index_select(1, cols)


def put(z: Tensor, cols: slice | Tensor, half: Tensor) -> None:
    r"""``z[:, cols] = half`` in place for :func:`columns`'s ``cols``: the inverse of :func:`take`."""
    if isinstance(cols, slice):
        z[:, cols] = half
    else:
        z.index_copy_(1, cols, half)


def forward_folded(
    transform: CompositeTransform, x: Tensor, context: Tensor | None = None
) -> tuple[Tensor, Tensor] | None:
    r"""``transform(x, context)`` as ``(z, log_det)`` through its :class:`FoldedFlow`, or None where that
    does not apply (outside :func:`~flowaccent.flows.packed.packed_inference`, not float32 on a CPU with
    oneDNN, a flow :func:`fold` does not fold, or ``FLOWACCENT_FOLD=0``)."""
    if not (float32_cpu(x) and onednn_enabled()) or os.environ.get("FLOWACCENT_FOLD", "1") == "0":
        return None
    folded = block_cached(transform, weights_key(transform.parameters()), lambda: fold(transform))
    return None if folded is None else folded.run(x, context)


@torch.no_grad()
def fold(transform: CompositeTransform) -> FoldedFlow | None:
    r"""The :class:`FoldedFlow` of ``transform`` (its weights as they are now), or None when it has another
    shape: not one :func:`~flowaccent.flows.halves.halves_plan` fits, an ActNorm not yet initialised, a
    conditioner other than :class:`~flowaccent.flows.coupling.Conditioner`, or couplings whose identity
    halves do not alternate."""
    plan = halves_plan(transform)
    if plan is None:
        return None
    first, pairs, last, split = plan
    sides = [0 if coupling.layout == "first" else 1 for coupling, _ in pairs]
    if not all(is_initialized(norm) and type(c.transform_net) is Conditioner for c, norm in pairs) or any(
        a == b for a, b in zip(sides, sides[1:])
    ):
        return None
    dim = pairs[0][0].num_identity_features + pairs[0][0].num_transform_features
    halves = (slice(0, split), slice(split, dim))
    scales = [norm.log_scale.detach().exp() for _, norm in pairs] + [torch.ones(dim)]  # none after the last
    shifts = [norm.shift.detach() for _, norm in pairs] + [torch.zeros(dim)]
    couplings = []
    for j, ((coupling, _), ident) in enumerate(zip(pairs, sides)):
        cols_i, cols_t = halves[ident], halves[1 - ident]
        a_i, b_i = scales[j][cols_i], shifts[j][cols_i]  # applied ahead to the half this coupling reads
        gain = scales[j + 1][cols_t] * scales[j][cols_t]  # this ActNorm, then the next one ahead
        offset = scales[j + 1][cols_t] * shifts[j][cols_t] + shifts[j + 1][cols_t]
        layers = [(m.weight.detach().clone(), m.bias.detach().clone()) for m in coupling.transform_net.net
                  if isinstance(m, nn.Linear)]
        weight, bias = layers[0]
        d = a_i.numel()  # the first layer's columns for the half it reads (then the context's)
        bias -= weight[:, :d] @ (b_i / a_i)
        weight[:, :d] /= a_i
        weight, bias = layers[-1]
        k = coupling.num_transform_features
        weight[:k] *= gain[:, None]
        bias[:k] = bias[:k] * gain + offset
        weight[k:] /= coupling.clamp
        bias[k:] /= coupling.clamp
        couplings.append(_Coupling(ident, coupling, pack(layers), torch.log2(gain)))
    identity = torch.arange(dim)
    gather = identity if first is None else first._permutation
    restore = identity if last is None else torch.argsort(last._permutation)
    return FoldedFlow(
        gather=(columns(gather[:split]), columns(gather[split:])),
        restore=(columns(restore[:split]), columns(restore[split:])),
        first_scale=scales[0][halves[sides[0]]],
        first_shift=shifts[0][halves[sides[0]]],
        couplings=tuple(couplings),
        log_det=float(sum(norm.log_scale.detach().sum() for _, norm in pairs)),
    )
