r"""The triangular blur straight from its definition: a ``(K, K)`` weight matrix per frame, ``O(T K K)``.

The reference that :mod:`flowaccent.blurmask.blur` (``O(T K W)``, shifted adds) is tested and
benchmarked against (``benchmarks/bench_blur.py``); too slow and too large for real use at
``K = 257``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from flowaccent.blurmask.blur import Mode, kernel_mass


def dense_blur_energy(energy: Tensor, m: Tensor, mode: Mode = "renorm") -> Tensor:
    r""":func:`~flowaccent.blurmask.blur.blur_energy` with explicit weights ``relu(m_p - |i - p|)``.

    Arguments:
        energy: linear energies ``(..., T, K)``.
        m: widths ``(..., T, K)``.
        mode: ``drop``, ``fold`` or ``renorm``.

    Returns:
        ``(..., T, K)``; builds a ``(..., T, K, K)`` tensor.
    """
    num_bins = energy.shape[-1]
    m = m.clamp_min(1.0)
    p = torch.arange(num_bins, dtype=energy.dtype, device=energy.device)
    offsets = p[None, :] - p[:, None]  # [p, i] = i - p
    weights = torch.relu(m[..., :, None] - offsets.abs())  # (..., T, p, i)
    everywhere = kernel_mass(m)  # (..., T, p): the kernel's mass over all integers
    inside = weights.sum(-1)
    norm = inside if mode == "renorm" else everywhere
    out = torch.einsum("...p,...pi->...i", energy / norm, weights)
    if mode == "fold":
        out = out + energy * (everywhere - inside) / everywhere
    return out


def dense_triangular_blur(spec: Tensor, m: Tensor, mode: Mode = "renorm") -> Tensor:
    r""":func:`~flowaccent.blurmask.blur.triangular_blur` on :func:`dense_blur_energy`: ``(..., T, K)``."""
    top = spec.detach().amax(dim=-1, keepdim=True)
    blurred = dense_blur_energy(torch.exp(spec - top), m, mode)
    return torch.log(blurred.clamp_min(torch.finfo(blurred.dtype).tiny)) + top
