r"""Statistics of scores and latents: AUC and its confidence interval, correlations, skew and kurtosis."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def detection_auc(reference: np.ndarray, other: np.ndarray) -> float:
    r"""AUC of telling ``reference`` utterances from ``other`` ones by score (reference = positive).

    ``P(score_ref > score_other)`` with ties counting half: 0.5 is no separation, 1.0 means every
    reference utterance scores higher (e.g. native speech more likely than accented speech). The
    Mann-Whitney form on average ranks, equal to ``sklearn.metrics.roc_auc_score`` (tested), without
    importing scikit-learn. NaN where either set is empty or holds a NaN score (it was ranked above every other); a
    ``ValueError`` for scores that are not one per utterance (2-D: an AUC of 2.0 came out).
    """
    reference, other = _one_per_utterance(reference, other)
    if len(reference) == 0 or len(other) == 0 or np.isnan(reference).any() or np.isnan(other).any():
        return math.nan
    ranks = average_ranks(np.r_[reference, other])[: len(reference)]
    n1, n0 = len(reference), len(other)
    return float((ranks.sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _one_per_utterance(*scores) -> list[np.ndarray]:
    r"""Each of ``scores`` as a float array ``(n,)``; a ``ValueError`` for one of other dimensions."""
    arrays = [np.asarray(s, float) for s in scores]
    if any(a.ndim != 1 for a in arrays):
        raise ValueError(f"expected one score per utterance (n,), got shapes {', '.join(str(a.shape) for a in arrays)}")
    return arrays


#: The two-sided normal quantile of a 95% interval.
Z95 = 1.959963984540054


def auc_variance(
    reference: np.ndarray, other: np.ndarray, reference_groups=None, other_groups=None
) -> tuple[float, float]:
    r""":func:`detection_auc` of ``reference`` ``(n1,)`` against ``other`` ``(n0,)`` and an estimate of its variance.

    Without groups, DeLong's (DeLong, DeLong & Clarke-Pearson 1988): ``var(V10) / n1 + var(V01) / n0`` with
    ``V10_i`` the share of ``other`` below reference utterance ``i`` and ``V01_j`` the share of ``reference`` above
    other utterance ``j`` (ties half), each from average ranks (Sun & Xu 2014), O(n log n); NaN for fewer than 2
    utterances on a side. With ``reference_groups`` ``(n1,)`` and ``other_groups`` ``(n0,)`` (each utterance's
    speaker), the components are summed per group, a group of either set or both (:func:`_clustered_variance`):
    utterances of one voice are not independent draws. Both NaN where :func:`detection_auc` is."""
    reference, other = _one_per_utterance(reference, other)
    n1, n0 = len(reference), len(other)
    if n1 == 0 or n0 == 0 or np.isnan(reference).any() or np.isnan(other).any():
        return math.nan, math.nan
    v10, v01 = _placements(reference, other)
    auc = float(v10.mean())
    if reference_groups is not None:
        return auc, _clustered_variance(v10, v01, auc, reference_groups, other_groups)
    if n1 < 2 or n0 < 2:
        return auc, math.nan
    return auc, float(v10.var(ddof=1) / n1 + v01.var(ddof=1) / n0)


def _clustered_variance(v10: np.ndarray, v01: np.ndarray, centre: float, reference_groups, other_groups) -> float:
    r"""Obuchowski's variance of an AUC (or of a difference of two, ``v10``/``v01`` the components' differences)
    over clusters (Obuchowski 1997, Biometrics 53: 567-578): with ``a_k`` the sum of cluster ``k``'s ``V10`` less
    its reference utterances times ``centre``, ``b_k`` likewise of ``V01``, and ``K`` clusters,
    ``K / (K - 1) * (sum a^2 / n1^2 + sum b^2 / n0^2 + 2 sum a b / (n1 n0))``. NaN where either set has fewer than 2
    clusters: its spread between speakers is not there to estimate (a set of one speaker had an interval as narrow
    as if the speaker were the whole population)."""
    n1, n0 = len(v10), len(v01)
    if len(reference_groups) != n1 or len(other_groups) != n0:
        raise ValueError("a group for each utterance of each set")
    if min(len(set(map(str, reference_groups))), len(set(map(str, other_groups)))) < 2:
        return math.nan
    _, index = np.unique(np.r_[np.asarray(reference_groups, str), np.asarray(other_groups, str)], return_inverse=True)
    index = index.reshape(-1)
    clusters = int(index.max()) + 1
    if clusters < 2:
        return math.nan
    ref_index, other_index = index[:n1], index[n1:]
    a = np.bincount(ref_index, v10, clusters) - np.bincount(ref_index, minlength=clusters) * centre
    b = np.bincount(other_index, v01, clusters) - np.bincount(other_index, minlength=clusters) * centre
    return float(clusters / (clusters - 1) * (a @ a / n1**2 + b @ b / n0**2 + 2 * (a @ b) / (n1 * n0)))


def _placements(reference: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""DeLong's structural components from ranks: ``V10`` ``(n1,)``, the share of ``other`` below each reference
    utterance, and ``V01`` ``(n0,)``, the share of ``reference`` above each other utterance (ties half)."""
    n1, n0 = len(reference), len(other)
    combined = average_ranks(np.r_[reference, other])
    return (combined[:n1] - average_ranks(reference)) / n0, 1.0 - (combined[n1:] - average_ranks(other)) / n1


def paired_auc_difference(
    reference_a: np.ndarray, other_a: np.ndarray, reference_b: np.ndarray, other_b: np.ndarray,
    reference_groups=None, other_groups=None,
) -> tuple[float, float]:
    r"""``AUC_a - AUC_b`` of two scores of the same utterances (``reference_a[i]`` and ``reference_b[i]`` one
    utterance's, ``other_a[j]`` and ``other_b[j]`` likewise) and the two-sided p-value of DeLong's test that the two
    AUCs are equal: ``z = diff / sqrt(var_a + var_b - 2 cov)``, the variances and covariance from the structural
    components' sample covariances (DeLong, DeLong & Clarke-Pearson 1988), or with each utterance's group (speaker)
    given, over groups (:func:`_clustered_variance` of the components' differences). p is NaN for fewer than 2
    utterances on a side (or groups), 1 where the difference and its variance are both 0 (the two scores rank the
    sets alike), NaN where only the variance is."""
    ra, oa, rb, ob = (np.asarray(v, float) for v in (reference_a, other_a, reference_b, other_b))
    if len(ra) != len(rb) or len(oa) != len(ob):
        raise ValueError("the two scores must be of the same utterances, in the same order")
    n1, n0 = len(ra), len(oa)
    if n1 < 2 or n0 < 2:
        return (math.nan if n1 == 0 or n0 == 0 else detection_auc(ra, oa) - detection_auc(rb, ob)), math.nan
    v10a, v01a = _placements(ra, oa)
    v10b, v01b = _placements(rb, ob)
    diff = float(v10a.mean() - v10b.mean())
    if reference_groups is not None:
        variance = _clustered_variance(v10a - v10b, v01a - v01b, diff, reference_groups, other_groups)
    else:
        variance = float(np.var(v10a - v10b, ddof=1) / n1 + np.var(v01a - v01b, ddof=1) / n0)  # var_a + var_b - 2 cov
    if math.isnan(variance) or variance < 0:
        return diff, math.nan
    if variance == 0:
        return diff, 1.0 if abs(diff) < 1e-12 else math.nan
    return diff, math.erfc(abs(diff) / math.sqrt(2 * variance))


def auc_interval(
    reference: np.ndarray, other: np.ndarray, reference_groups=None, other_groups=None, z: float = Z95
) -> list[float]:
    r"""The AUC's confidence interval ``[low, high]``: ``AUC -/+ z * sqrt(variance)`` (:func:`auc_variance`:
    DeLong's, as R's pROC ``ci.auc`` gives it, or with the utterances' groups Obuchowski's over them; ``z`` 1.96 for
    95%), clipped to [0, 1]; NaNs where the variance is not defined (or, over groups that hold utterances of both
    sets, comes out negative). Where every utterance of one set scores above
    every one of the other (AUC 0 or 1) the variance is 0 and so is the interval's width: with few utterances that
    says little."""
    auc, variance = auc_variance(reference, other, reference_groups, other_groups)
    if math.isnan(variance) or variance < 0:  # over groups of both sets' utterances the estimate can come out < 0
        return [math.nan, math.nan]
    half = z * math.sqrt(variance)
    return [max(0.0, auc - half), min(1.0, auc + half)]


def pearson_interval(r: float, n: int, z: float = Z95) -> list[float]:
    r"""The 95% confidence interval ``[low, high]`` of a Pearson correlation ``r`` of ``n`` pairs by Fisher's
    transform: ``tanh(atanh(r) -/+ z / sqrt(n - 3))``; NaNs for ``n`` <= 3 or an ``r`` that is NaN, ``[r, r]``
    for ``|r| = 1``. It assumes pairs drawn independently from a bivariate normal: for utterances of a few
    speakers, whose ratings and scores share each speaker's voice, it is narrower than the truth."""
    if n <= 3 or math.isnan(r):
        return [math.nan, math.nan]
    if abs(r) >= 1.0:
        return [float(r), float(r)]
    centre, half = math.atanh(r), z / math.sqrt(n - 3)
    return [math.tanh(centre - half), math.tanh(centre + half)]


def pearson_interval_over_groups(
    scores: np.ndarray, ratings: np.ndarray, groups, resamples: int = 2000, seed: int = 0
) -> list[float]:
    r"""The 95% interval ``[low, high]`` of the Pearson r of ``scores`` and ``ratings`` ``(n,)`` by a bootstrap of
    their ``groups`` (each utterance's speaker): ``resamples`` draws of as many groups as there are, with
    replacement (seeded: the same interval every run), the r of each draw's utterances pooled, and the 2.5 and
    97.5 percentiles of those. Utterances of one voice share its scores and ratings, which Fisher's interval
    (:func:`pearson_interval`) takes for independent. Each draw is a weighted sum of the groups' sums (of 1, x, y,
    x^2, y^2, xy), O(resamples x groups). NaNs for fewer than 3 groups or 4 utterances."""
    x, y = np.asarray(scores, float), np.asarray(ratings, float)
    _, index = np.unique(np.asarray(groups, str), return_inverse=True)
    index = index.reshape(-1)
    count = int(index.max()) + 1 if len(index) else 0
    if count < 3 or len(x) < 4:
        return [math.nan, math.nan]
    x, y = x - x.mean(), y - y.mean()  # centred: the sums' differences below lose no digits
    sums = np.stack([np.bincount(index, w, count) for w in (np.ones_like(x), x, y, x * x, y * y, x * y)], axis=1)
    draws = np.random.default_rng(seed).multinomial(count, np.full(count, 1.0 / count), size=resamples)
    n, sx, sy, sxx, syy, sxy = (draws @ sums).T
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (n * sxy - sx * sy) / np.sqrt((n * sxx - sx * sx) * (n * syy - sy * sy))
    r = r[np.isfinite(r)]  # a draw of one group's utterances whose ratings do not vary: no r
    if len(r) < resamples / 2:
        return [math.nan, math.nan]
    low, high = np.clip(np.percentile(r, [2.5, 97.5]), -1.0, 1.0)  # a draw of two groups: r of +-1 +- rounding
    return [float(low), float(high)]


def mean_difference_interval_over_groups(
    sums: np.ndarray, counts: np.ndarray, reference_sums: np.ndarray, reference_counts: np.ndarray,
    resamples: int = 2000, seed: int | Sequence[int] = 0,
) -> list[float]:
    r"""The 95% interval ``[low, high]`` of ``sum(sums) / sum(counts) - sum(reference_sums) / sum(reference_counts)``
    (a difference of two pooled means, each group's values summed to ``sums`` over ``counts`` items: a speaker's
    LogLL summed over its frames of a phone) by a bootstrap of the groups, those of each side drawn with
    replacement on their own (seeded), the 2.5 and 97.5 percentiles of the draws' differences. Frames of one voice
    are not independent of each other; its groups are. NaNs for fewer than 3 groups on a side."""
    sums, counts = np.asarray(sums, float), np.asarray(counts, float)
    reference_sums, reference_counts = np.asarray(reference_sums, float), np.asarray(reference_counts, float)
    if min(len(sums), len(reference_sums)) < 3 or np.any(counts <= 0) or np.any(reference_counts <= 0):
        return [math.nan, math.nan]
    rng = np.random.default_rng(seed)
    means = []
    for s, c in ((sums, counts), (reference_sums, reference_counts)):
        draws = rng.multinomial(len(s), np.full(len(s), 1.0 / len(s)), size=resamples)
        means.append(draws @ s / (draws @ c))
    low, high = np.percentile(means[0] - means[1], [2.5, 97.5])
    return [float(low), float(high)]


def average_ranks(values: np.ndarray) -> np.ndarray:
    r"""1-based ranks of ``values`` ``(N,)``, ties given their average rank (``scipy.stats.rankdata``)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2)[inverse.reshape(-1)]


def correlations(scores: np.ndarray, ratings: np.ndarray) -> dict[str, float]:
    r"""Pearson and Spearman correlation of utterance ``scores`` with ``ratings`` (NaN if undefined; both NaN where a
    value is NaN: Spearman's ranked it above every value and gave a number where Pearson's gave NaN; an infinite
    value is ranked, as ``scipy.stats.spearmanr`` ranks it, and Pearson's is NaN).

    Spearman's is Pearson's of the average ranks, as ``scipy.stats.spearmanr`` (tested), computed
    here: importing ``scipy.stats`` took 0.6-1 s of every scoring run with rated sets.
    """
    scores, ratings = _one_per_utterance(scores, ratings)
    if len(scores) != len(ratings):
        raise ValueError(f"expected a rating per score, got {len(scores)} scores and {len(ratings)} ratings")
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # inf - inf, 1e308 - -1e308: NaN, quietly
        return _correlations(scores, ratings)


def _correlations(scores: np.ndarray, ratings: np.ndarray) -> dict[str, float]:
    if len(scores) < 3 or np.isnan(scores).any() or np.isnan(ratings).any() or np.ptp(scores) == 0 or \
            np.ptp(ratings) == 0:
        return {"pearson": math.nan, "spearman": math.nan, "n": len(scores)}
    finite = np.isfinite(scores).all() and np.isfinite(ratings).all()  # inf - inf: numpy's warnings, then NaN
    return {
        "pearson": _pearson(scores, ratings) if finite else math.nan,
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
