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

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from flowaccent.blurmask.config import MODES, Mode
from flowaccent.errors import ConfigError, FeatureError


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
    return _mass(m, (torch.ceil(m.detach()) - 1).clamp_min(0))


def _mass(m: Tensor, n: Tensor) -> Tensor:
    r""":func:`kernel_mass` of widths ``m >= 1`` given their ``n = ceil(m) - 1``."""
    return (2 * n + 1) * m - n * (n + 1)


#: How far the gradient's sums may exceed the kernel's mass (an incoming gradient of up to this size) before the
#: widths' bound (:func:`num_taps`): at the bound itself a gradient of 3 overflowed.
HEADROOM = 1024.0


def num_taps(m: Tensor, num_bins: int, mode: str = "renorm") -> int:
    r"""Taps each side that carry weight, ``ceil(max m) - 1``, at most ``num_bins - 1``. A :class:`ConfigError` for a
    width not finite, or one whose kernel's mass, times :data:`HEADROOM` for the gradient's sums, overflows ``m``'s
    floating-point type: for ``drop`` and ``fold`` the whole mass ``S(m)``, about ``2 m^2`` (they gave NaN), for
    ``renorm`` the part on the ``K`` bins, at most ``K m`` and ``S(m)`` (its output was all 0)."""
    if m.numel() == 0:
        return 0
    top = float(m.detach().max())
    if not math.isfinite(top):
        raise ConfigError(f"blur: the widths must be finite, got max {top}")
    if m.is_floating_point():
        most = torch.finfo(m.dtype).max / HEADROOM
        whole = math.sqrt(most / 2) - 1
        largest, mass = (max(most / num_bins, whole), "K m") if mode == "renorm" else (whole, "about 2 m^2")
        if top > largest:
            dtype = str(m.dtype).removeprefix("torch.")
            raise ConfigError(f"blur: the widths must be at most {largest:.3g} in {dtype} for '{mode}' over {num_bins} "
                              f"bins (the kernel's mass, {mass}, would overflow), got max {top:.3g}")
    return int(min(max(math.ceil(top) - 1, 0), num_bins - 1))


def _outside_mass(m: Tensor, n: Tensor) -> tuple[Tensor, Tensor]:
    r"""The kernel's mass that falls outside the bins, and its slope in ``m``.

    Bin ``p`` of ``K`` loses the offsets ``a >= j`` on each side, ``j = p + 1`` on the left and
    ``K - p`` on the right: ``sum_{a=j..n} (m - a) = c (m - (n + j) / 2)`` with ``c = max(n - j + 1, 0)``
    taps, which is also the slope in ``m``.

    Arguments:
        m: widths ``(..., K)``, ``>= 1``.
        n: ``ceil(m) - 1``, the taps each side that carry weight, ``(..., K)``.

    Returns:
        ``(outside, slope)``, both ``(..., K)``; zero away from the edges.
    """
    num_bins = m.shape[-1]
    edge = min(int(n.max()) if n.numel() else 0, num_bins)  # columns that can lose mass, each side
    outside = torch.zeros_like(m)
    slope = torch.zeros_like(m)
    j = torch.arange(1, edge + 1, dtype=m.dtype, device=m.device)  # j of the left edge's columns 0 .. edge-1
    for cols, j_cols in ((slice(0, edge), j), (slice(num_bins - edge, num_bins), j.flip(0))):
        m_cols, n_cols = m[..., cols], n[..., cols]
        c = (n_cols - j_cols + 1).clamp_min_(0)
        outside[..., cols] += c * (m_cols - (n_cols + j_cols) / 2)
        slope[..., cols] += c
    return outside, slope


def _inside_mass(m: Tensor, n: Tensor) -> tuple[Tensor, Tensor]:
    r"""The kernel's mass on the bins inside, and its slope in ``m``: with ``L = min(n, p)`` taps inside to the
    left of bin ``p`` of ``K`` and ``R = min(n, K - 1 - p)`` to the right, ``(1 + L + R) m - L (L + 1) / 2 -
    R (R + 1) / 2``, slope ``1 + L + R``. Equal to ``S(m)`` less :func:`_outside_mass`, but without that
    difference: for a width far past the bins both are near ``m^2`` and float32 lost the mass inside (``renorm``
    no longer kept the total at ``m = 1e6``, and gave inf at ``1e8``).

    Arguments:
        m: widths ``(..., K)``, ``>= 1``.
        n: ``ceil(m) - 1``, ``(..., K)``.

    Returns:
        ``(inside, slope)``, both ``(..., K)``.
    """
    p = torch.arange(m.shape[-1], dtype=m.dtype, device=m.device)
    left, right = torch.minimum(n, p), torch.minimum(n, p.flip(0))
    slope = 1 + left + right
    return slope * m - (left * (left + 1) + right * (right + 1)) / 2, slope


def _spread(source: Tensor, m: Tensor, taps: int) -> Tensor:
    r"""``out[i] = sum_p source[p] relu(m_p - |i - p|)`` over the bins inside, ``(..., K)``.

    Per offset one subtract, one clamp, one multiply and two shifted adds, all in place.
    """
    out = source * m
    weight, sent = m.clone(), torch.empty_like(out)
    for a in range(1, taps + 1):
        torch.mul(source, weight.sub_(1).clamp_min_(0), out=sent)  # source * relu(m - a)
        out[..., a:] += sent[..., :-a]
        out[..., :-a] += sent[..., a:]
    return out


def _gather(grad: Tensor, m: Tensor, taps: int) -> tuple[Tensor, Tensor]:
    r"""The adjoints of :func:`_spread`, both ``(..., K)``.

    Returns:
        ``by_source[p] = sum_i grad[i] relu(m_p - |i - p|)`` (the gradient in ``source``) and
        ``by_width[p] = sum_i grad[i] [m_p > |i - p|]`` (times ``source``, the gradient in ``m``).
    """
    by_source = grad * m
    by_width = grad.clone()
    weight = m.clone()
    for a in range(1, taps + 1):
        weight.sub_(1).clamp_min_(0)  # relu(m - a), exactly
        inside = weight.sign()  # [m > a]
        for to, source in ((slice(None, -a), slice(a, None)), (slice(a, None), slice(None, -a))):
            by_source[..., to].addcmul_(grad[..., source], weight[..., to])
            by_width[..., to].addcmul_(grad[..., source], inside[..., to])
    return by_source, by_width


class _BlurEnergy(torch.autograd.Function):
    r""":func:`blur_energy` on widths already ``>= 1``, with its gradient written out.

    Autograd would record ``O(W)`` intermediates of ``(..., T, K)`` and replay ``O(W)`` small
    kernels for each; written out, the forward and the backward are one loop of ``W`` each.
    """

    @staticmethod
    def forward(ctx, energy: Tensor, m: Tensor, mode: str, taps: int) -> Tensor:  # type: ignore[override]
        n = (torch.ceil(m) - 1).clamp_min_(0)
        if mode == "renorm":
            norm, norm_slope = _inside_mass(m, n)
        else:
            norm, norm_slope = _mass(m, n), 2 * n + 1  # the kernel's whole mass
        source = energy / norm
        out = _spread(source, m, taps)
        outside = outside_slope = None
        if mode == "fold":
            outside, outside_slope = _outside_mass(m, n)
            out += energy * outside / norm
        ctx.mode, ctx.taps = mode, taps
        ctx.save_for_backward(energy, m, outside, outside_slope, norm, norm_slope, source)
        return out

    @staticmethod
    @once_differentiable  # written out by hand, first order only: a clear error for a gradient of the gradient
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        energy, m, outside, outside_slope, norm, norm_slope, source = ctx.saved_tensors
        by_source, by_width = _gather(grad.contiguous(), m, ctx.taps)
        grad_energy = by_source / norm
        grad_m = by_width * source - grad_energy * source * norm_slope
        if ctx.mode == "fold":  # norm: the whole mass S(m), slope 2n + 1; over norm twice, not norm^2 (m^4)
            grad_energy += grad * outside / norm
            grad_m += grad * energy * (outside_slope - outside / norm * norm_slope) / norm
        return grad_energy, grad_m, None, None


def blur_energy(energy: Tensor, m: Tensor, mode: Mode = "renorm") -> Tensor:
    r"""Scatters each cell's energy over neighbouring bins with a triangular kernel of width ``m``.

    Arguments:
        energy: linear-domain energies ``(..., T, K)`` (blurred along the last axis ``K``).
        m: blur widths, broadcastable to ``energy``; values below 1 act as 1 (no blur).
        mode: ``drop``, ``fold`` or ``renorm`` (see the module doc).

    Returns:
        ``(..., T, K)``; differentiable in ``energy`` and ``m``; continuous in ``m``, with kinks at integer
        widths (between them each weight ``relu(m - |d|) / S(m)`` is a ratio of linear functions of ``m``).

    Example:
        >>> blur_energy(torch.tensor([0.0, 0, 9, 0, 0]), torch.full((5,), 3.0), "drop")
        tensor([1., 2., 3., 2., 1.])
    """
    _check(energy, m, mode)
    return _blur(energy, m, mode)


def _check(x: Tensor, m: Tensor, mode: str) -> None:
    r"""A :class:`ConfigError` for an unknown ``mode``, a :class:`FeatureError` unless ``x`` ``(..., T, K)`` and
    ``m`` are tensors, ``m`` broadcastable to ``x`` (numpy arrays failed on '.detach', a shape in torch's words)."""
    if mode not in MODES:
        raise ConfigError(f"blur: unknown mode '{mode}' (use {', '.join(MODES)})")
    for name, value in (("spectrogram", x), ("m", m)):
        if not isinstance(value, Tensor):
            raise FeatureError(f"blur: the {name} is a torch tensor (torch.as_tensor(array)), got "
                               f"{type(value).__name__}")
    try:
        fits = torch.broadcast_shapes(x.shape, m.shape) == x.shape
    except RuntimeError:
        fits = False
    if not fits or x.dim() < 1:
        raise FeatureError(f"blur: m {tuple(m.shape)} does not broadcast to the spectrogram {tuple(x.shape)} "
                           "(..., T, K)")


def _blur(energy: Tensor, m: Tensor, mode: Mode) -> Tensor:
    r""":func:`blur_energy` without the checks of its arguments; float16 and bfloat16 computed in float32 (the
    kernel's mass overflowed float16 at widths of 180), the result in their own type."""
    given = energy.dtype
    work = torch.promote_types(given, torch.float32) if energy.is_floating_point() else given
    energy, m = torch.broadcast_tensors(energy.to(work), m.to(work))
    m = m.clamp_min(1.0)
    return _BlurEnergy.apply(energy, m, mode, num_taps(m, energy.shape[-1], mode)).to(given)


def triangular_blur(spec: Tensor, m: Tensor, mode: Mode = "renorm") -> Tensor:
    r"""Blurs a log spectrogram along frequency in the linear energy domain.

    ``log(blur_energy(exp(spec), m, mode))``, computed with each row's maximum taken out
    first so that ``exp`` cannot overflow. A cell more than ``-log(tiny)`` below its row's maximum (87.3 nats in
    float32, 708 in float64) underflows: it comes out at that distance below, with no gradient, even at
    ``m <= 1`` (a log filterbank's row spans far less; pass float64 for wider ones).

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
    _check(spec, m, mode)
    top = spec.detach().amax(dim=-1, keepdim=True)
    blurred = _blur(torch.exp(spec - top), m, mode)
    return torch.log(blurred.clamp_min(torch.finfo(blurred.dtype).tiny)) + top
