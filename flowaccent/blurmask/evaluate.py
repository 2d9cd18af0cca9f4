r"""Evaluating a mask by removing cells: deletion curves, their AUCs, the relevance gain, the lab's table.

Cells are removed in one of three orders: ``low`` (lowest ``m`` first: the most important
cells first), ``high`` (highest ``m`` first: the least important first) or ``random``. A removed
cell is replaced by a baseline:

- ``floor``: a log floor, the minimum of the utterance's stored features (``floor: data``) or
  kaldi-native-fbank's energy floor ``log(FLT_EPSILON) = -15.94`` (``floor: kaldi``);
- ``mean``: the utterance's mean of that frequency bin over its frames;
- ``blur``: maximal blur, the mask's own perturbation: the removed cells get the width
  ``m_max``, the kept ones keep their learned width (the state the fit found invariant; 1,
  no blur, for a noise mask), and the spectrum is blurred. The learned widths hold jointly:
  a valley cell may be blurred widely because its neighbours' blur refills it, so giving
  the kept cells width 1 would test something the fit never saw.

The change of the output is ``sqrt(||target(x') - target(x)||^2 / (N var))``, the RMS change
in units of the output's standard deviation (the square root of the fit's invariance term).
A deletion curve is that change for 0 to 100% of the cells removed. Divided by the largest
change measured on the utterance (any order, any fraction), the curves lie in ``[0, 1]`` and
their AUCs are comparable across utterances (a flow's output need not change monotonically: a
partly occluded spectrum can be further from the data than a fully occluded one). A good mask
has a high AUC for ``low`` and a low one for ``high``; the symmetric relevance gain (Bluecher et
al., "Decoupling pixel flipping and occlusion strategy for consistent XAI benchmarks", TMLR
2024) is ``SRG = AUC(low) - AUC(high)``, in ``[-1, 1]``, positive when the mask ranks the cells
the right way round.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from flowaccent.blurmask.blur import Mode, triangular_blur
from flowaccent.blurmask.config import BASELINES, LAB_FRACTIONS, DeletionConfig
from flowaccent.blurmask.fit import Target, invariance_error, output_scale
from flowaccent.errors import ConfigError, FeatureError

#: kaldi-native-fbank's (and Kaldi's) energy floor: ``log(FLT_EPSILON)``.
KALDI_LOG_FLOOR = math.log(1.19209290e-07)
ORDERS = ("low", "high", "random")


def removal_order(m: Tensor, order: str, seed: int = 0) -> Tensor:
    r"""Flat cell indices ``(T * K,)`` in the order they are removed; ties are broken at random."""
    if order not in ORDERS:
        raise ConfigError(f"remove: unknown order '{order}' (use {', '.join(ORDERS)})")
    flat = torch.as_tensor(m).detach().flatten()
    perm = torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(seed))
    if order == "random":
        return perm
    keys = flat[perm] if order == "low" else -flat[perm]
    return perm[torch.argsort(keys, stable=True)]


def removal_mask(m: Tensor, fraction: float, order: str, seed: int = 0) -> Tensor:
    r"""Boolean ``(T, K)``: the ``round(fraction * T * K)`` cells removed first in ``order``."""
    if not 0 <= fraction <= 1:
        raise ConfigError(f"remove: fraction must be in [0, 1], got {fraction}")
    m = torch.as_tensor(m)
    count = round(fraction * m.numel())
    mask = torch.zeros(m.numel(), dtype=torch.bool)
    mask[removal_order(m, order, seed)[:count]] = True
    return mask.reshape(m.shape)


def fill_values(x: Tensor, baseline: str, floor: str = "data") -> Tensor | None:
    r"""The values removed cells of ``x`` ``(T, K)`` take, ``(T, K)``; None for ``blur`` (it moves
    energy instead, see :func:`apply_removal`)."""
    if baseline == "floor":
        value = float(x.min()) if floor == "data" else KALDI_LOG_FLOOR
        return torch.full_like(x, value)
    if baseline == "mean":
        return x.mean(dim=0, keepdim=True).expand_as(x)
    if baseline == "blur":
        return None
    raise ConfigError(f"remove: unknown baseline '{baseline}' (use {', '.join(BASELINES)})")


def apply_removal(
    x: Tensor,
    mask: Tensor,
    baseline: str,
    fill: Tensor | None = None,
    widths: Tensor | None = None,
    max_blur: float = 10.0,
    mode: Mode = "renorm",
) -> Tensor:
    r"""``x`` ``(T, K)`` with the cells of the boolean ``mask`` ``(T, K)`` removed.

    ``floor`` and ``mean`` replace them by ``fill`` (:func:`fill_values`); ``blur`` spreads their
    energy with the width ``max_blur`` while the kept cells are blurred with ``widths`` ``(T, K)``
    (None: width 1, left in place).
    """
    if baseline == "blur":
        kept = torch.ones_like(x) if widths is None else widths.to(x.dtype)
        return triangular_blur(x, torch.where(mask, torch.full_like(x, max_blur), kept), mode)
    if fill is None:
        raise ConfigError(f"remove: the {baseline} baseline needs fill values")
    return torch.where(mask, fill, x)


def kept_widths(m: Tensor, widths: Tensor | float | None) -> Tensor:
    r"""The ``blur`` baseline's widths of the kept cells ``(T, K)``: ``m`` itself where ``widths`` is None (a
    blur mask's learned widths), a number for every cell (1: none, for a noise mask), or ``widths`` as given."""
    if widths is None:
        return m
    if isinstance(widths, (int, float)):
        return torch.full(m.shape, float(widths))
    return torch.as_tensor(widths)


def remove(
    x: Tensor,
    m: Tensor,
    fraction: float,
    order: str,
    baseline: str = "floor",
    *,
    seed: int = 0,
    floor: str = "data",
    widths: Tensor | float | None = None,
    max_blur: float = 10.0,
    mode: Mode = "renorm",
) -> Tensor:
    r"""``x`` ``(T, K)`` with a ``fraction`` of its cells removed.

    Arguments:
        x: the raw log filterbank ``(T, K)``.
        m: the mask ``(T, K)`` (widths or noise scales: large = unimportant).
        fraction: share of the cells removed, 0 to 1.
        order: ``low`` (most important first), ``high`` (least important first) or ``random``.
        baseline: ``floor``, ``mean`` or ``blur`` (see the module doc).
        seed: breaks ties (and draws the ``random`` order).
        floor: the ``floor`` baseline's level, ``data`` or ``kaldi``.
        widths, max_blur, mode: the ``blur`` baseline: the kept cells' widths (None: ``m`` itself, a blur
            mask's learned widths; pass ``1.0`` for a noise mask), the removed cells' width (the fit's ``m_max``),
            the boundary mode.

    Returns:
        ``(T, K)``.
    """
    x, m = torch.as_tensor(x), torch.as_tensor(m)
    mask = removal_mask(m, fraction, order, seed)
    fill = fill_values(x, baseline, floor)
    return apply_removal(x, mask, baseline, fill, kept_widths(m, widths), max_blur, mode)


def _auc(fractions: np.ndarray, values: np.ndarray) -> float:
    return float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(fractions)))


@dataclasses.dataclass(frozen=True)
class DeletionCurves:
    r"""Deletion curves of one utterance and one baseline.

    Attributes:
        baseline: what removed cells became.
        fractions: ``(F,)`` from 0 to 1.
        change: per order, the output's RMS change in output standard deviations ``(F,)``
            (``random``: the mean over seeds).
        random_std: the standard deviation of the random curves over seeds ``(F,)``.
    """

    baseline: str
    fractions: np.ndarray
    change: dict[str, np.ndarray]
    random_std: np.ndarray

    @property
    def largest(self) -> float:
        r"""The largest change measured, over every order and fraction."""
        return float(max(v.max() for v in self.change.values()))

    @property
    def defined(self) -> bool:
        r"""Whether removing cells changed the output at all; when not (the ``mean`` baseline of a
        one-frame utterance, an output that does not depend on the input), the normalised curves,
        AUCs and SRG are undefined (NaN)."""
        return self.largest > 1e-12

    def normalised(self, order: str) -> np.ndarray:
        r"""``change / largest``: in ``[0, 1]`` (NaN when nothing changes the output)."""
        return self.change[order] / self.largest if self.defined else np.full_like(self.change[order], np.nan)

    @property
    def auc(self) -> dict[str, float]:
        r"""The area under each normalised curve."""
        return {order: _auc(self.fractions, self.normalised(order)) for order in ORDERS}

    @property
    def srg(self) -> float:
        r"""Symmetric relevance gain ``AUC(low) - AUC(high)``: > 0 when the mask is right way round."""
        auc = self.auc
        return auc["low"] - auc["high"]

    def at(self, fraction: float, order: str) -> float:
        r"""The raw change with ``fraction`` of the cells removed in ``order``."""
        index = int(np.argmin(np.abs(self.fractions - fraction)))
        if abs(self.fractions[index] - fraction) > 1e-9:
            raise ConfigError(f"deletion: {fraction} is not one of the measured fractions")
        return float(self.change[order][index])


@torch.no_grad()
def deletion_curves(
    target: Target,
    x: Tensor,
    m: Tensor,
    baseline: str = "floor",
    config: DeletionConfig = DeletionConfig(),
    *,
    widths: Tensor | float | None = None,
    max_blur: float = 10.0,
    mode: Mode = "renorm",
) -> DeletionCurves:
    r"""The output's RMS change as 0 to 100% of the cells of ``x`` ``(T, K)`` are removed, per order.

    Arguments:
        target: the function the mask was fitted for.
        x: the raw log filterbank ``(T, K)``.
        m: the mask ``(T, K)``.
        baseline: ``floor``, ``mean`` or ``blur``.
        config: fractions, floor and random seeds.
        widths, max_blur, mode: the ``blur`` baseline (see :func:`remove`).
    """
    x, m = torch.as_tensor(x).detach(), torch.as_tensor(m).detach()
    widths = kept_widths(m, widths)
    reference = target(x)
    scale = output_scale(reference)
    fill = fill_values(x, baseline, config.floor)
    fractions = config.fractions

    def curve(order: str, seed: int) -> np.ndarray:
        ranked = removal_order(m, order, seed)
        out = []
        for fraction in fractions:
            mask = torch.zeros(x.numel(), dtype=torch.bool)
            mask[ranked[: round(fraction * x.numel())]] = True
            removed = apply_removal(x, mask.reshape(x.shape), baseline, fill, widths, max_blur, mode)
            error = float(invariance_error(target, removed, reference, scale))
            if not math.isfinite(error):  # its curves went on: NaN AUCs and SRG, 'inf' in the tables, exit 0
                which = {"low": "lowest m first", "high": "highest m first"}.get(order, f"at random, seed {seed}")
                raise FeatureError(f"deletion curves: the target's output changed by {error} with {fraction:.0%} of "
                                   f"the cells removed ({which}, baseline {baseline}): it overflowed; features far "
                                   "outside those the model was trained on?")
            out.append(math.sqrt(error))
        return np.asarray(out)

    randoms = np.stack([curve("random", seed) for seed in range(config.random_seeds)])
    change = {"low": curve("low", 0), "high": curve("high", 0), "random": randoms.mean(0)}
    return DeletionCurves(baseline, fractions, change, randoms.std(0))


def summarise(curves: Sequence[DeletionCurves]) -> dict:
    r"""Means over utterances of one baseline's curves: normalised curves, AUCs, SRG, the lab's table.

    Returns:
        ``{"num_utts", "num_defined", "fractions", "curves": {order: {"mean", "std"}}, "auc": {order:
        {"mean", "std"}}, "srg": {"mean", "std", "positive"}, "table": {"50": {order: median change,
        "low_above_high"}, "80": ...}}``: the lab's table holds the median over all utterances of the raw
        change (output standard deviations) and the number of utterances where removing the lowest-m
        cells changes more than removing the highest-m cells; curves, AUCs and SRG are normalised and
        taken over the ``num_defined`` utterances whose output changed at all (:attr:`DeletionCurves.defined`),
        and are absent when there is none.
    """
    if not curves:
        return {"num_utts": 0, "num_defined": 0}
    table = {}
    for fraction in LAB_FRACTIONS:
        raw = {o: np.array([c.at(fraction, o) for c in curves]) for o in ORDERS}
        row = {o: float(np.median(v)) for o, v in raw.items()}
        row["low_above_high"] = int((raw["low"] > raw["high"]).sum())
        table[f"{round(fraction * 100)}"] = row
    defined = [c for c in curves if c.defined]
    summary = {"num_utts": len(curves), "num_defined": len(defined), "fractions": curves[0].fractions.tolist()}
    if defined:
        norm = {o: np.stack([c.normalised(o) for c in defined]) for o in ORDERS}
        aucs = {o: np.array([c.auc[o] for c in defined]) for o in ORDERS}
        srg = np.array([c.srg for c in defined])
        summary["curves"] = {o: {"mean": v.mean(0).tolist(), "std": v.std(0).tolist()} for o, v in norm.items()}
        summary["auc"] = {o: {"mean": float(v.mean()), "std": float(v.std())} for o, v in aucs.items()}
        summary["srg"] = {"mean": float(srg.mean()), "std": float(srg.std()), "positive": int((srg > 0).sum())}
    return summary | {"table": table}
