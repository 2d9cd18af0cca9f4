r"""Statistics of scores and latents: AUC, correlations, skew and kurtosis."""

from __future__ import annotations

import math

import numpy as np


def detection_auc(reference: np.ndarray, other: np.ndarray) -> float:
    r"""AUC of telling ``reference`` utterances from ``other`` ones by score (reference = positive).

    ``P(score_ref > score_other)`` with ties counting half: 0.5 is no separation, 1.0 means every
    reference utterance scores higher (e.g. native speech more likely than accented speech). The
    Mann-Whitney form on average ranks, equal to ``sklearn.metrics.roc_auc_score`` (tested), without
    importing scikit-learn.
    """
    reference, other = np.asarray(reference, float), np.asarray(other, float)
    if len(reference) == 0 or len(other) == 0:
        return math.nan
    ranks = average_ranks(np.r_[reference, other])[: len(reference)]
    n1, n0 = len(reference), len(other)
    return float((ranks.sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def average_ranks(values: np.ndarray) -> np.ndarray:
    r"""1-based ranks of ``values`` ``(N,)``, ties given their average rank (``scipy.stats.rankdata``)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2)[inverse.reshape(-1)]


def correlations(scores: np.ndarray, ratings: np.ndarray) -> dict[str, float]:
    r"""Pearson and Spearman correlation of utterance ``scores`` with ``ratings`` (NaN if undefined).

    Spearman's is Pearson's of the average ranks, as ``scipy.stats.spearmanr`` (tested), computed
    here: importing ``scipy.stats`` took 0.6-1 s of every scoring run with rated sets.
    """
    scores, ratings = np.asarray(scores, float), np.asarray(ratings, float)
    if len(scores) < 3 or np.ptp(scores) == 0 or np.ptp(ratings) == 0:
        return {"pearson": math.nan, "spearman": math.nan, "n": len(scores)}
    return {
        "pearson": _pearson(scores, ratings),
        "spearman": _pearson(average_ranks(scores), average_ranks(ratings)),
        "n": len(scores),
    }


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    return float(np.clip((x * y).sum() / math.sqrt((x * x).sum() * (y * y).sum()), -1.0, 1.0))


def moments(latents: np.ndarray) -> dict[str, float]:
    r"""Skew and excess (Fisher) kurtosis over all values of ``latents`` ``(N, D)``.

    The population forms (as ``scipy.stats.skew`` and ``kurtosis`` with their defaults):
    ``m3 / m2^1.5`` and ``m4 / m2^2 - 3`` with ``m_k`` the ``k``-th central moment, in float64;
    NaN for fewer than 3 values or no spread. Written out rather than taken from ``scipy.stats``,
    whose import alone took 1.5 s of every ``flowaccent score`` run.
    """
    values = np.asarray(latents, np.float64).ravel()
    if values.size < 3:
        return {"skew": math.nan, "kurtosis": math.nan}
    centred = values - values.mean()
    squared = centred * centred
    m2 = squared.mean()
    if m2 <= (np.finfo(np.float64).eps * max(abs(values.mean()), 1.0)) ** 2:
        return {"skew": math.nan, "kurtosis": math.nan}
    skew = (squared * centred).mean() / m2**1.5
    return {"skew": float(skew), "kurtosis": float((squared * squared).mean() / m2**2 - 3)}


def unit_gaussian_log_p(dim: int) -> float:
    r"""Mean ``log N(z; 0, I)`` of a unit-Gaussian ``z``: ``-0.5 * D * (1 + ln 2 pi)`` = ``-1.4189 D``."""
    return -0.5 * dim * (1.0 + math.log(2 * math.pi))
