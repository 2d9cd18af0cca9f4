r"""The warnings a blur-mask run gives of an utterance: shorter than the model's context, curves undefined, a
fit that did not do what a mask is for."""

from __future__ import annotations

from flowaccent.blurmask.config import BlurMaskConfig
from flowaccent.blurmask.utterance import UttResult
from flowaccent.model import FlowModel


def short_warning(model: FlowModel, name: str, utt: str, num_frames: int) -> list[str]:
    r"""A warning when an utterance is shorter than the model's context (deltas and splicing, both
    sides, and the frame itself): every frame's features then hold copies of the edge frames."""
    context = model.pipeline.config.context
    if num_frames >= context:
        return []
    return [f"blurmask: warning: set {name}: utterance '{utt}' has {num_frames} frame(s), fewer than the model's "
            f"context of {context} (deltas and splicing): every frame's features hold copies of its edge frames"]


def undefined_warnings(result: UttResult) -> list[str]:
    r"""A warning per baseline whose removals never changed the utterance's output (its curves are undefined)."""
    return [
        f"blurmask: warning: set {result.set_name}: utterance '{result.utt}' ({result.num_frames} frame(s)): no "
        f"removal with the {b} baseline changed the output; its curves, AUCs and SRG are undefined and left out "
        "of the summary's means"
        for b, c in result.curves.items()
        if not c.defined
    ]


#: An invariance error above this (the final mask changes this share of the output's variance or more) is named.
POOR_FIT = 0.5
#: A mask whose widths span less than this share of ``[min, max]`` is named: it tells no cell from another.
FLAT = 0.01


def fit_warnings(result: UttResult, fit: BlurMaskConfig) -> list[str]:
    r"""Warnings where an utterance's fit did not do what a mask is for: its final mask changes the output by
    :data:`POOR_FIT` of its variance or more, or nearly every cell sits at the largest width (an output that hardly
    depends on the input, or a largest width that blurs everything). Both ran without a word (an invariance error
    of 1.45 with ``--m-max 1000``), or its widths hardly differ from cell to cell (``--optimizer sgd`` at Adam's
    ``--lr``: every width stayed within 0.06 of where it started, and the run reported curves of that mask)."""
    where = f"blurmask: warning: set {result.set_name}: utterance '{result.utt}'"
    symbol, top = ("m", fit.m_max) if fit.variant == "blur" else ("sigma", fit.sigma_max)
    bottom = fit.bounds[0]
    out = []
    if result.m_spread < FLAT * (top - bottom):
        sgd = (" (--optimizer sgd takes a far larger --lr than Adam's: each cell's gradient is about 1 / (frames x "
               "bins))" if fit.optimizer == "sgd" else "")
        out.append(f"{where}: its {symbol} spans only {result.m_spread:.3g} of [{bottom:g}, {top:g}]: the mask tells "
                   f"no cell from another, so its curves rank cells by chance; try more --steps or a larger --lr{sgd}")
    poor = result.invariance_error >= POOR_FIT
    if poor:  # lam weighs the widths' term (entropy) or the invariance's
        lam = "a smaller --lam" if fit.lam_on == "entropy" else "a larger --lam"
        out.append(f"{where}: its mask changes {result.invariance_error:.0%} of the output's variance (invariance "
                   f"error): it does not keep the output as a mask should; try more --steps, {lam} (--lam-on "
                   f"{fit.lam_on}) or a smaller --{symbol}-max")
    if result.mean_m >= 0.95 * top:  # with a poor fit the output does depend on the input: the weighting's doing
        why = ("though that changes the output (above): the widths' term outweighs keeping the output" if poor else
               "the output hardly depends on the input here, or the largest width blurs everything")
        out.append(f"{where}: mean {symbol} {result.mean_m:.4g}, nearly every cell at --{symbol}-max {top:g}: {why}")
    return out
