r"""The triangular frequency blur of the blur mask, differentiable in the spectrum and the widths.

Every cell ``(t, p)`` of a spectrogram scatters its energy ``x_p`` over the frequency bins
``i`` with the weights ``relu(m_p - |i - p|) / S(m_p)``, where ``m_p`` is the cell's blur width
and ``S(m) = sum_d relu(m - |d|)`` over all integers ``d``. For an integer ``m = 3`` a value of
9 becomes ``1 2 3 2 1``; ``m <= 1`` is the identity. Three ways to treat the part that falls
outside the bins ``0 .. K-1``:

- ``drop``: it is lost (the total shrinks);
- ``fold``: it is returned to the source bin (the total is kept);
- ``renorm``: the weights are renormalised over the bins inside (the total is kept).

The cost is ``O(T * K * W)`` with ``W = ceil(max m) - 1`` taps each side: one shifted add
per offset, never a ``(K, K)`` matrix.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from flowaccent.errors import ConfigError

#: What happens to the energy that falls outside the frequency bins.
Mode = Literal["drop", "fold", "renorm"]
MODES = ("drop", "fold", "renorm")


def kernel_mass(m: Tensor) -> Tensor:
    r"""``S(m) = sum_d relu(m - |d|)`` over all integers ``d``, in closed form.

    With ``n = ceil(m) - 1`` taps each side, ``S = m + 2 sum_{d=1..n} (m - d) = (2n + 1) m - n (n + 1)``:
    continuous and piecewise linear in ``m`` (slope ``2n + 1``). ``m`` is clamped to ``>= 1``.

    Arguments:
        m: blur widths ``(...)``.

    Returns:
        ``(...)``, e.g. 9 for ``m = 3``, 1 for ``m <= 1``.
    """
    m = m.clamp_min(1.0)
    n = (torch.ceil(m.detach()) - 1).clamp_min(0)
    return (2 * n + 1) * m - n * (n + 1)


def num_taps(m: Tensor, num_bins: int) -> int:
    r"""Taps each side that carry weight, ``ceil(max m) - 1``, at most ``num_bins - 1``."""
    if m.numel() == 0:
        return 0
    top = float(m.detach().max())
    if not math.isfinite(top):
        raise ConfigError(f"blur: the widths must be finite, got max {top}")
    return int(min(max(math.ceil(top) - 1, 0), num_bins - 1))


def _shift(values: Tensor, d: int) -> Tensor:
    r"""``out[..., i] = values[..., i - d]`` along the last axis, zero where ``i - d`` is outside."""
    if d == 0:
        return values
    if d > 0:
        return F.pad(values[..., :-d], (d, 0))
    return F.pad(values[..., -d:], (0, -d))


def _inside(num_bins: int, d: int, like: Tensor) -> Tensor:
    r"""``(K,)``: 1 where the source bin ``p`` sends offset ``d`` to a bin inside ``0 .. K-1``."""
    p = torch.arange(num_bins, device=like.device)
    return ((p + d >= 0) & (p + d < num_bins)).to(like.dtype)


def blur_energy(energy: Tensor, m: Tensor, mode: Mode = "renorm") -> Tensor:
    r"""Scatters each cell's energy over neighbouring bins with a triangular kernel of width ``m``.

    Arguments:
        energy: linear-domain energies ``(..., T, K)`` (blurred along the last axis ``K``).
        m: blur widths, broadcastable to ``energy``; values below 1 act as 1 (no blur).
        mode: ``drop``, ``fold`` or ``renorm`` (see the module doc).

    Returns:
        ``(..., T, K)``; differentiable in ``energy`` and ``m`` (piecewise linear in ``m``).

    Example:
        >>> blur_energy(torch.tensor([0.0, 0, 9, 0, 0]), torch.full((5,), 3.0), "drop")
        tensor([1., 2., 3., 2., 1.])
    """
    if mode not in MODES:
        raise ConfigError(f"blur: unknown mode '{mode}' (use {', '.join(MODES)})")
    energy, m = torch.broadcast_tensors(energy, m.to(energy.dtype))
    num_bins = energy.shape[-1]
    m = m.clamp_min(1.0)
    total = kernel_mass(m)
    taps = num_taps(m, num_bins)
    inside = torch.zeros_like(m)
    sent = []
    for d in range(-taps, taps + 1):
        weight = F.relu(m - abs(d)) * _inside(num_bins, d, m)
        inside = inside + weight
        sent.append((d, weight))
    norm = inside if mode == "renorm" else total
    source = energy / norm
    out = torch.zeros_like(energy)
    for d, weight in sent:
        out = out + _shift(source * weight, d)
    if mode == "fold":
        out = out + energy * (total - inside) / total
    return out


def triangular_blur(spec: Tensor, m: Tensor, mode: Mode = "renorm") -> Tensor:
    r"""Blurs a log spectrogram along frequency in the linear energy domain.

    ``log(blur_energy(exp(spec), m, mode))``, computed with each row's maximum taken out
    first so that ``exp`` cannot overflow.

    Arguments:
        spec: log energies, e.g. a log-mel filterbank ``(..., T, K)``.
        m: blur widths ``(..., T, K)`` (broadcastable); ``m <= 1`` leaves a cell where it is.
        mode: ``drop``, ``fold`` or ``renorm``.

    Returns:
        The blurred log spectrogram ``(..., T, K)``.

    Example:
        >>> x = torch.log(torch.tensor([[9.0, 0.5, 0.5, 0.5]]))
        >>> triangular_blur(x, torch.full((1, 4), 3.0), "renorm").exp()
        tensor([[4.6875, 3.3958, 1.9792, 0.4375]])
    """
    top = spec.detach().amax(dim=-1, keepdim=True)
    blurred = blur_energy(torch.exp(spec - top), m, mode)
    return torch.log(blurred.clamp_min(torch.finfo(blurred.dtype).tiny)) + top
