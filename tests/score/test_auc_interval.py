r"""DeLong's variance of the AUC and its 95% interval: against the definition (every pair of utterances), and the
interval's coverage on draws of known AUC."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flowaccent.score.metrics import auc_interval, auc_variance, detection_auc


def _by_pairs(reference: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    r"""DeLong et al. (1988) as written: psi over every pair, its row and column means, their sample variances."""
    psi = (reference[:, None] > other[None, :]) + 0.5 * (reference[:, None] == other[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return psi.mean(), v10.var(ddof=1) / len(reference) + v01.var(ddof=1) / len(other)


@pytest.mark.parametrize("n1, n0, ties", [(2, 2, False), (7, 3, False), (40, 55, False), (30, 20, True), (9, 9, True)])
def test_equals_the_pairwise_definition(n1, n0, ties):
    rng = np.random.default_rng(n1 * 100 + n0)
    reference, other = rng.normal(0.5, 1, n1), rng.normal(0, 1, n0)
    if ties:  # scores on a coarse grid: many ties within and across the sets
        reference, other = np.round(reference * 2) / 2, np.round(other * 2) / 2
    auc, variance = auc_variance(reference, other)
    want_auc, want_variance = _by_pairs(reference, other)
    assert auc == pytest.approx(want_auc, abs=1e-12) and auc == pytest.approx(detection_auc(reference, other))
    assert variance == pytest.approx(want_variance, rel=1e-10, abs=1e-15)
    low, high = auc_interval(reference, other)
    half = 1.959963984540054 * math.sqrt(want_variance)
    assert low == pytest.approx(max(0.0, want_auc - half)) and high == pytest.approx(min(1.0, want_auc + half))


def test_covers_the_true_auc_about_95_percent_of_the_time():
    r"""Two normals a shift d apart: the true AUC is Phi(d / sqrt(2)). 1000 draws of 40 and 60 utterances."""
    rng = np.random.default_rng(0)
    shift, draws = 0.8, 1000
    true = 0.5 * (1 + math.erf(shift / 2))  # Phi(d / sqrt 2) = (1 + erf(d / 2)) / 2
    covered = 0
    for _ in range(draws):
        low, high = auc_interval(rng.normal(shift, 1, 40), rng.normal(0, 1, 60))
        covered += low <= true <= high
    # binomial sd ~0.007; the normal interval runs a little under 95% at these sizes (0.939, 0.945, 0.925 with seeds
    # 0, 1, 2), as reported for DeLong's; a wrong variance (population instead of sample, or one side's left out)
    # moves it well outside
    assert 0.91 <= covered / draws <= 0.97, covered


def test_too_few_utterances_and_total_separation():
    assert all(math.isnan(v) for v in auc_interval(np.array([1.0]), np.array([0.0, 2.0])))
    assert all(math.isnan(v) for v in auc_interval(np.array([]), np.array([0.0, 2.0])))
    assert auc_variance(np.array([1.0]), np.array([0.0, 2.0]))[0] == 0.5
    assert auc_interval(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == [1.0, 1.0]  # every pair one way: no spread
    low, high = auc_interval(np.array([0.9, 1.0, 1.1, 5.0]), np.array([1.05, 0.0, -1.0, 0.95]))
    assert 0.0 <= low < high <= 1.0
