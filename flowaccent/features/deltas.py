r"""Kaldi ``add-deltas``: regression deltas with edge frames repeated."""

from __future__ import annotations

import functools

import numpy as np
import torch

from flowaccent.errors import FeatureError
from flowaccent.features._array import Array, as_tensor, clamped_window, like_input


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
    blocks = [t]
    for w in scales[1:]:
        half = (len(w) - 1) // 2
        idx = clamped_window(t.shape[-2], half, half, t.device)  # (T, K)
        frames = t[..., idx, :]  # (..., T, K, D)
        weights = torch.as_tensor(w, dtype=t.dtype, device=t.device)
        blocks.append(torch.einsum("...tkd,k->...td", frames, weights))
    return torch.cat(blocks, dim=-1)
