r"""Learning a blur mask: per cell, the widest blur that leaves a model's output unchanged.

For a raw log filterbank ``x`` ``(T, K)`` and a differentiable ``target``, the widths ``m``
``(T, K)`` minimise

    ``||target(blur(x, m)) - target(x)||^2 / (N var) - lam * mean(log m)``

(``lam_on: invariance`` puts ``lam`` on the first term instead), where ``N`` is the number of
output elements and ``var`` the variance of ``target(x)`` over them, so the first term is the
fraction of the output's variance the blur changes. ``m = m_min + (m_max - m_min) sigmoid(theta)``
keeps ``m`` bounded and smooth in ``theta``; gradients are autograd's, through the blur's
boundary handling included. Cells that can be blurred widely (large ``m``) matter little.

The noise variant (Guan et al., "Towards a deep and unified understanding of deep neural models
in NLP", ICML 2019) perturbs ``x + eps * sigma``, ``eps ~ N(0, 1)`` drawn afresh every step, and
learns ``sigma`` in place of ``m`` (same loss with ``log sigma``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from flowaccent.blurmask.blur import triangular_blur
from flowaccent.blurmask.config import BlurMaskConfig
from flowaccent.errors import FeatureError
from flowaccent.nn import gradient_filter
from flowaccent.prior import draw_device

#: A differentiable function of a raw ``(T, K)`` log filterbank.
Target = Callable[[Tensor], Tensor]
#: ``progress(step, steps)``, called by :func:`fit_blur_mask` after each step.
StepProgress = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True)
class BlurMaskResult:
    r"""A fitted mask.

    Attributes:
        m: the learned widths ``(T, K)`` (noise variant: the noise scales ``sigma``); large
            means the cell matters little.
        loss: the loss at every step ``(steps,)``.
        invariance: the invariance term (fraction of the output's variance changed) at every step.
        invariance_error: the invariance term of the final mask (noise variant: mean of 8 draws).
        mean_log_m: ``mean(log m)`` of the final mask.
        config: what fitted it.
    """

    m: Tensor
    loss: np.ndarray
    invariance: np.ndarray
    invariance_error: float
    mean_log_m: float
    config: BlurMaskConfig


def output_scale(reference: Tensor) -> Tensor:
    r"""``var`` of the loss: the variance of ``target(x)`` over its elements (its square for a
    single number), floored at ``1e-12``."""
    reference = reference.detach()
    scale = reference.var(unbiased=False) if reference.numel() > 1 else reference.square().sum()
    return scale.clamp_min(1e-12)


def invariance_error(target: Target, perturbed: Tensor, reference: Tensor, scale: Tensor) -> Tensor:
    r"""``||target(perturbed) - reference||^2 / (N var)``: the fraction of the output's variance changed."""
    out = target(perturbed)
    if out.shape != reference.shape:
        raise FeatureError(f"blur mask: target output changed shape {tuple(reference.shape)} -> {tuple(out.shape)}")
    return (out - reference).square().mean() / scale


def perturb(x: Tensor, m: Tensor, config: BlurMaskConfig, generator: torch.Generator | None = None) -> Tensor:
    r"""``blur(x, m)`` (``blur``) or ``x + eps * m`` with fresh ``eps ~ N(0, 1)`` (``noise``): ``(T, K)``."""
    if config.variant == "blur":
        return triangular_blur(x, m, config.mode)
    eps = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=draw_device(generator)).to(x.device)
    return x + eps * m


def _roughness(log_m: Tensor) -> Tensor:
    r"""Mean squared difference of ``log m`` ``(T, K)`` between neighbouring frames plus bins."""
    total = log_m.new_zeros(())
    for dim in (0, 1):
        if log_m.shape[dim] > 1:
            total = total + torch.diff(log_m, dim=dim).square().mean()
    return total


def _check_input(x: Tensor) -> Tensor:
    if x.dim() != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise FeatureError(f"blur mask: expected a log filterbank (T, K), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise FeatureError("blur mask: NaN or inf in the input")
    return x.detach()


def fit_blur_mask(
    target: Target, x: Tensor, config: BlurMaskConfig | None = None, *, progress: StepProgress | None = None, **fields
) -> BlurMaskResult:
    r"""Fits the blur widths (or noise scales) of every cell of ``x``.

    Arguments:
        target: any differentiable function of a raw ``(T, K)`` log filterbank (see
            :mod:`flowaccent.blurmask.targets`); its output may have any shape.
        x: the raw log filterbank ``(T, K)``.
        config: the settings (default: :class:`BlurMaskConfig`).
        progress: called as ``progress(step, steps)`` after each step (``flowaccent blurmask`` shows it beside
            its bar: a long utterance's fit takes minutes).
        fields: overrides of ``config`` fields (``lam=0.2, steps=100, mode="fold"``).

    Returns:
        A :class:`BlurMaskResult` with ``m`` ``(T, K)``.

    Example:
        >>> band = lambda x: x[:, 3:6].exp().sum(1)
        >>> fit_blur_mask(band, torch.randn(8, 12), steps=5).m.shape
        torch.Size([8, 12])
    """
    config = config or BlurMaskConfig()
    if fields:
        config = config.replace(**fields)
    with torch.inference_mode(False), torch.enable_grad():  # a caller's no_grad: torch's error, 10 frames deep
        return _fit(target, _check_input(torch.as_tensor(x)).clone(), config, progress)


def _fit(target: Target, x: Tensor, config: BlurMaskConfig, progress: StepProgress | None = None) -> BlurMaskResult:
    generator = torch.Generator().manual_seed(config.seed)
    lo, hi = config.bounds
    with torch.no_grad():
        reference = target(x)
    if not isinstance(reference, Tensor) or not reference.is_floating_point():  # 'int' has no attribute 'detach'
        what = type(reference).__name__ if not isinstance(reference, Tensor) else f"a {reference.dtype} tensor"
        raise FeatureError(f"blur mask: the target returned {what}; it must return a float tensor, differentiable in "
                           "its input (a model's output, e.g. flowaccent.blurmask.targets)")
    scale = output_scale(reference)
    theta = torch.full_like(x, math.log(config.init_fraction / (1 - config.init_fraction)), requires_grad=True)
    optimizer = (torch.optim.Adam if config.optimizer == "adam" else torch.optim.SGD)([theta], lr=config.lr)
    losses, invariances = [], []
    for step in range(config.steps):
        m = lo + (hi - lo) * torch.sigmoid(theta)
        if config.gradient_filter:
            (m,) = gradient_filter(m, batch_dim=0, threshold=config.gradient_filter_threshold)
        inv = invariance_error(target, perturb(x, m, config, generator), reference, scale)
        log_m = torch.log(m)
        loss = inv - config.lam * log_m.mean() if config.lam_on == "entropy" else config.lam * inv - log_m.mean()
        if config.smooth:
            loss = loss + config.smooth * _roughness(log_m)
        if not torch.isfinite(loss) and torch.isfinite(inv):  # 'a smaller m_max or sigma_max' named neither of these
            raise FeatureError(f"blur mask: the fit's loss is {float(loss.detach())} at step {step + 1}, its "
                               f"invariance error {float(inv.detach()):.4g}: lam {config.lam:g} and smooth "
                               f"{config.smooth:g} weigh its terms past float32's range (a smaller lam or smooth)")
        if not torch.isfinite(loss):  # NaN widths followed, and every table's numbers with them
            raise FeatureError(f"blur mask: the fit's loss is {float(loss.detach())} at step {step + 1}: the target's "
                               "output overflowed under the perturbation (a smaller m_max or sigma_max)")
        (theta.grad,) = torch.autograd.grad(loss, [theta])
        optimizer.step()
        losses.append(float(loss.detach()))
        invariances.append(float(inv.detach()))
        if progress is not None:
            progress(step + 1, config.steps)
    with torch.no_grad():
        m = lo + (hi - lo) * torch.sigmoid(theta.detach())
        draws = 1 if config.variant == "blur" else 8
        final = sum(
            float(invariance_error(target, perturb(x, m, config, generator), reference, scale)) for _ in range(draws)
        )
    return BlurMaskResult(
        m=m,
        loss=np.asarray(losses),
        invariance=np.asarray(invariances),
        invariance_error=final / draws,
        mean_log_m=float(torch.log(m).mean()),
        config=config,
    )


def fit_noise_mask(
    target: Target, x: Tensor, config: BlurMaskConfig | None = None, *, progress: StepProgress | None = None, **fields
) -> BlurMaskResult:
    r"""The noise variant (Guan et al. 2019): :func:`fit_blur_mask` with ``variant="noise"``;
    ``result.m`` holds the noise scales ``sigma`` ``(T, K)``."""
    return fit_blur_mask(target, x, config, progress=progress, **{**fields, "variant": "noise"})
