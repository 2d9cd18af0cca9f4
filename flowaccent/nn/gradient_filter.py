r"""Median-relative per-batch-element gradient filter (after icefall's ``scaling.py``).

Forward is the identity. Backward computes, for each batch element ``b``, the RMS
``n_b`` of its gradient, the cutoff ``c = median_b(n_b) * threshold``, and scales
that element's gradient by ``1 / r_b`` with ``r_b = (c + n_b) / (c + eps)``; the
gradients of the parameters passed along are scaled by ``1 / mean_b(r_b)``. A few
outlier frames with huge gradients are thus damped without clipping the batch.
"""

from __future__ import annotations

import numbers

import torch
from torch import Tensor, nn

EPS = 1.0e-20


class _GradientFilterFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, batch_dim: int, threshold: float, *params: Tensor) -> tuple[Tensor, ...]:
        ctx.batch_dim = batch_dim % x.dim()
        ctx.threshold = threshold
        return (x.view_as(x), *(p.view_as(p) for p in params))

    @staticmethod
    def backward(ctx, x_grad: Tensor, *param_grads: Tensor):
        dims = [d for d in range(x_grad.dim()) if d != ctx.batch_dim]
        norm = (x_grad**2).mean(dim=dims, keepdim=True).sqrt() if dims else x_grad.abs()
        cutoff = norm.median() * ctx.threshold
        ratio = (cutoff + norm) / (cutoff + EPS)
        x_grad = x_grad / (ratio + EPS)
        param_scale = 1.0 / (ratio.mean() + EPS)
        return (x_grad, None, None, *(g * param_scale for g in param_grads))


def gradient_filter(x: Tensor, *params: Tensor, batch_dim: int = 0, threshold: float = 10.0) -> tuple[Tensor, ...]:
    r"""Identity on ``x`` ``(B, ...)`` and ``params``; filters their gradients (see module doc).

    Returns:
        ``(x, *params)``, to be used in place of the inputs.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not threshold > 0:  # -1 was taken
        raise ValueError(f"gradient_filter: threshold is a multiple of the median gradient RMS > 0, got {threshold!r}")
    if not (x.requires_grad or any(p.requires_grad for p in params)):
        return (x, *params)
    return _GradientFilterFunction.apply(x, batch_dim, threshold, *params)


class GradientFilter(nn.Module):
    r"""Module form of :func:`gradient_filter`.

    Arguments:
        batch_dim: the dimension of the batch elements (frames, utterances).
        threshold: cutoff in multiples of the median gradient RMS.

    Example:
        >>> f = GradientFilter(batch_dim=0, threshold=10.0)
        >>> x, w = f(torch.randn(8, 3, requires_grad=True), torch.ones(3, requires_grad=True))
    """

    def __init__(self, batch_dim: int = 0, threshold: float = 10.0):
        super().__init__()
        self.batch_dim = batch_dim
        self.threshold = threshold

    def forward(self, x: Tensor, *params: Tensor) -> tuple[Tensor, ...]:
        return gradient_filter(x, *params, batch_dim=self.batch_dim, threshold=self.threshold)
