r"""Kaldi ``add-deltas``: regression deltas with edge frames repeated."""

from __future__ import annotations

import functools

import numpy as np
import torch

from flowaccent.errors import FeatureError
from flowaccent.features._array import Array, as_tensor, like_input


@functools.lru_cache(maxsize=16)
def delta_scales(order: int, window: int) -> tuple[np.ndarray, ...]:
    r"""Kaldi's ``DeltaFeatures`` windows ``w^(0) .. w^(order)`` (float64).

    ``w^(0) = [1]``; ``w^(i) = w^(i-1) * [-N..N] / sum_{j=-N..N} j^2`` (convolution),
    so ``w^(i)`` has ``1 + 2 * i * N`` taps.

    Example:
        >>> delta_scales(1, 2)[1]
        array([-0.2, -0.1,  0. ,  0.1,  0.2])
    """
    if order < 0 or window < 1:
        raise FeatureError(f"add_deltas: need order >= 0 and window >= 1, got {order}, {window}")
    ramp = np.arange(-window, window + 1, dtype=np.float64)
    ramp /= np.sum(ramp**2)
    scales = [np.ones(1)]
    for _ in range(order):
        scales.append(np.convolve(scales[-1], ramp))
    return tuple(scales)


@like_input
def add_deltas(x: Array, order: int = 2, window: int = 2) -> torch.Tensor:
    r"""Appends delta features like Kaldi's ``add-deltas`` (``--delta-order``, ``--delta-window``).

    Output block ``i`` is ``sum_j w^(i)_j x[clamp(t + j)]`` with the windows of
    :func:`delta_scales` applied to the *input* frames (not deltas of deltas
    clamped again), exactly as Kaldi's ``DeltaFeatures::Process``.

    Arguments:
        x: features ``(..., T, D)``, numpy or torch (differentiable).
        order: highest delta order (0 returns ``x``).
        window: regression half-width ``N``.

    Returns:
        ``(..., T, D * (order + 1))``, blocks ``[x, delta, delta-delta, ...]``.
    """
    t = as_tensor(x)
    scales = delta_scales(order, window)
    num_frames = t.shape[-2]
    if order == 0:
        return torch.cat([t], dim=-1)
    # Edge-repeated frames once, then each window as shifted multiply-adds in Kaldi's order
    # (tap by tap, zero taps skipped): 4x faster than gathering a (T, taps, D) window tensor.
    pad = order * window
    padded = t[..., torch.arange(-pad, num_frames + pad, device=t.device).clamp_(0, num_frames - 1), :]
    blocks = [t]
    for w in scales[1:]:
        first = pad - (len(w) - 1) // 2
        out = None
        for j, weight in enumerate(w.tolist()):
            if weight != 0.0:
                term = padded[..., first + j : first + j + num_frames, :]
                out = term * weight if out is None else out.add_(term, alpha=weight)
        blocks.append(out)
    return torch.cat(blocks, dim=-1)
