r"""DeLong's variance of the AUC, its 95% interval and the paired test of two AUCs: against the definition (every
pair of utterances), and their coverage and error rates on draws of known AUC. Fisher's interval of a Pearson r."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flowaccent.score.metrics import (
    auc_interval,
    auc_variance,
    detection_auc,
    paired_auc_difference,
    pearson_interval,
    pearson_interval_over_groups,
)


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
    # a NaN score was ranked above every other (0.917 here): not defined; -inf ranks lowest, as a log-likelihood
    nan = np.array([1.0, 2.0, np.nan])
    assert math.isnan(detection_auc(nan, np.array([0.0, 1.0]))) and math.isnan(detection_auc(np.r_[0.0], nan))
    assert all(math.isnan(v) for v in auc_variance(nan, np.array([0.0, 1.0])))
    assert detection_auc(np.array([1.0, 2.0, -np.inf]), np.array([0.0, 1.0])) == pytest.approx(7 / 12)


def _paired_by_pairs(ra, oa, rb, ob) -> tuple[float, float]:
    r"""DeLong et al.'s paired test as written: the 2x2 covariance matrices of the structural components."""
    comps = []
    for r, o in ((ra, oa), (rb, ob)):
        psi = (r[:, None] > o[None, :]) + 0.5 * (r[:, None] == o[None, :])
        comps.append((psi.mean(axis=1), psi.mean(axis=0)))
    s10 = np.cov(np.stack([comps[0][0], comps[1][0]]))
    s01 = np.cov(np.stack([comps[0][1], comps[1][1]]))
    s = s10 / len(ra) + s01 / len(oa)
    diff = comps[0][0].mean() - comps[1][0].mean()
    variance = s[0, 0] + s[1, 1] - 2 * s[0, 1]
    if variance <= 1e-15:  # the two rank the sets alike
        return diff, 1.0
    return diff, math.erfc(abs(diff / math.sqrt(variance)) / math.sqrt(2))


@pytest.mark.parametrize("n1, n0, ties", [(3, 4, False), (40, 25, False), (30, 30, True)])
def test_the_paired_test_equals_the_pairwise_definition(n1, n0, ties):
    rng = np.random.default_rng(n1 + n0)
    truth_r, truth_o = rng.normal(0.7, 1, n1), rng.normal(0, 1, n0)
    ra, oa = truth_r + rng.normal(0, 0.5, n1), truth_o + rng.normal(0, 0.5, n0)  # two scores of one utterance
    rb, ob = truth_r + rng.normal(0, 1.0, n1), truth_o + rng.normal(0, 1.0, n0)  # correlated, b noisier
    if ties:
        ra, oa, rb, ob = (np.round(v) for v in (ra, oa, rb, ob))
    diff, p = paired_auc_difference(ra, oa, rb, ob)
    want_diff, want_p = _paired_by_pairs(ra, oa, rb, ob)
    assert diff == pytest.approx(want_diff, abs=1e-12) and p == pytest.approx(want_p, rel=1e-9)
    assert diff == pytest.approx(detection_auc(ra, oa) - detection_auc(rb, ob))
    assert paired_auc_difference(rb, ob, ra, oa) == pytest.approx((-diff, p))  # the other way round


def test_the_paired_test_rejects_about_5_percent_under_the_null_and_sees_a_real_difference():
    r"""Two scores of the same utterances, equally noisy (equal AUCs): p < 0.05 in 62 of 1000 draws of 40 and 60
    utterances (the normal test runs a little liberal on small sets). The noise-free score against one with noise of
    sd 2 (AUCs 0.71 and 0.60): 479 of 1000."""
    rng = np.random.default_rng(0)
    rejected, detected = 0, 0
    for _ in range(1000):
        truth_r, truth_o = rng.normal(0.8, 1, 40), rng.normal(0, 1, 60)
        noise = [(rng.normal(0, 1, 40), rng.normal(0, 1, 60)) for _ in range(2)]
        a, b = [(truth_r + nr, truth_o + no) for nr, no in noise]
        rejected += paired_auc_difference(*a, *b)[1] < 0.05
        noisier = truth_r + 2 * noise[0][0], truth_o + 2 * noise[0][1]
        detected += paired_auc_difference(truth_r, truth_o, *noisier)[1] < 0.05
    assert 0.03 <= rejected / 1000 <= 0.075, rejected
    assert detected / 1000 > 0.4, detected


def test_the_paired_test_of_a_score_with_itself_and_of_too_few():
    r, o = np.array([0.3, 1.2, 2.0]), np.array([0.1, 0.5, 1.0, -1.0])
    assert paired_auc_difference(r, o, r, o) == (0.0, 1.0)
    diff, p = paired_auc_difference(r[:1], o, r[:1] + 0.01, o)
    assert math.isnan(p) and diff == 0.0
    with pytest.raises(ValueError, match="same utterances"):
        paired_auc_difference(r, o, r[:2], o)


def test_pearsons_interval_by_fishers_transform():
    low, high = pearson_interval(0.5, 28)  # atanh(0.5) = 0.5493, -/+ 1.96 / 5
    assert (low, high) == pytest.approx((math.tanh(0.549306 - 0.391993), math.tanh(0.549306 + 0.391993)), abs=1e-6)
    assert (round(low, 3), round(high, 3)) == (0.156, 0.736)
    assert pearson_interval(-0.5, 28) == pytest.approx([-high, -low])
    assert all(math.isnan(v) for v in pearson_interval(0.9, 3) + pearson_interval(math.nan, 50))
    assert pearson_interval(1.0, 10) == [1.0, 1.0]
    rng = np.random.default_rng(0)
    rho, n, covered = 0.5, 30, 0
    for _ in range(1000):
        x = rng.normal(size=n)
        y = rho * x + math.sqrt(1 - rho**2) * rng.normal(size=n)
        low, high = pearson_interval(float(np.corrcoef(x, y)[0, 1]), n)
        covered += low <= rho <= high
    assert 0.93 <= covered / 1000 <= 0.97, covered


def _obuchowski(ref, oth, ref_groups, oth_groups):
    r"""Obuchowski (1997) as written: per cluster, sums of the pairwise components, and its three S terms."""
    psi = (ref[:, None] > oth[None, :]) + 0.5 * (ref[:, None] == oth[None, :])
    v10, v01, auc = psi.mean(axis=1), psi.mean(axis=0), psi.mean()
    clusters = sorted(set(ref_groups) | set(oth_groups))
    k, m, n = len(clusters), len(ref), len(oth)
    s10 = s01 = s11 = 0.0
    for c in clusters:
        a = sum(v for v, g in zip(v10, ref_groups) if g == c) - list(ref_groups).count(c) * auc
        b = sum(v for v, g in zip(v01, oth_groups) if g == c) - list(oth_groups).count(c) * auc
        s10, s01, s11 = s10 + a * a, s01 + b * b, s11 + a * b
    s10, s01, s11 = k / ((k - 1) * m) * s10, k / ((k - 1) * n) * s01, k / (k - 1) * s11
    return auc, s10 / m + s01 / n + 2 * s11 / (m * n)


@pytest.mark.parametrize("shared", [False, True])
def test_the_variance_over_speakers_equals_obuchowskis(shared):
    r"""Speakers of one set only, and speakers who read both sets (as the demo's test sets are read)."""
    rng = np.random.default_rng(int(shared))
    ref_groups = [f"s{i % 5}" for i in range(23)]
    oth_groups = [f"s{i % 5}" if shared else f"t{i % 4}" for i in range(17)]
    ref, oth = np.round(rng.normal(0.5, 1, 23), 1), np.round(rng.normal(0, 1, 17), 1)  # ties too
    auc, variance = auc_variance(ref, oth, ref_groups, oth_groups)
    want_auc, want_variance = _obuchowski(ref, oth, ref_groups, oth_groups)
    assert auc == pytest.approx(want_auc) and variance == pytest.approx(want_variance, rel=1e-10)
    assert math.isnan(auc_variance(ref, oth, ["a"] * 23, ["a"] * 17)[1])  # one speaker: no spread between speakers
    # one speaker in one set alone (a walkthrough's set of one voice, or of one utterance: [0.68, 0.92], [0.00, 0.58])
    assert math.isnan(auc_variance(ref, oth, ref_groups, ["t"] * 17)[1])
    assert math.isnan(auc_variance(ref, oth, ["s"] * 23, oth_groups)[1])
    assert all(math.isnan(v) for v in auc_interval(ref, oth[:1], ref_groups, oth_groups[:1]))
    with pytest.raises(ValueError, match="a group for each utterance"):
        auc_variance(ref, oth, ref_groups[:3], oth_groups)


def test_over_speakers_the_interval_covers_where_delongs_over_utterances_does_not():
    r"""8 speakers of 20 utterances a set, each speaker's scores shifted alike (sd 0.7 against the utterances' 1):
    the population AUC is Phi(0.8 / sqrt(2 (1 + 0.49))). Over 1000 draws DeLong's interval, which takes the 160
    utterances for independent, covered it 537 times, the one over speakers 916 (Obuchowski's runs a little
    under 95% with 16 clusters)."""
    rng = np.random.default_rng(0)
    sd, shift, speakers, each = 0.7, 0.8, 8, 20
    true = 0.5 * (1 + math.erf(shift / math.sqrt(2 * (1 + sd * sd)) / math.sqrt(2)))
    groups_r, groups_o = np.repeat(np.arange(speakers), each), np.repeat(np.arange(speakers, 2 * speakers), each)
    by_utterance = by_speaker = 0
    for _ in range(1000):
        ref = (rng.normal(0, sd, speakers)[:, None] + rng.normal(0, 1, (speakers, each)) + shift).ravel()
        oth = (rng.normal(0, sd, speakers)[:, None] + rng.normal(0, 1, (speakers, each))).ravel()
        low, high = auc_interval(ref, oth)
        by_utterance += low <= true <= high
        low, high = auc_interval(ref, oth, groups_r, groups_o)
        by_speaker += low <= true <= high
    assert by_utterance < 700 and 880 <= by_speaker <= 970, (by_utterance, by_speaker)


def test_the_paired_test_over_speakers_is_obuchowskis_variance_of_the_difference():
    rng = np.random.default_rng(3)
    groups = [f"s{i % 6}" for i in range(30)]
    truth_r, truth_o = rng.normal(0.7, 1, 30), rng.normal(0, 1, 30)
    ra, oa, rb, ob = truth_r + rng.normal(0, 0.5, 30), truth_o + rng.normal(0, 0.5, 30), truth_r, truth_o
    diff, p = paired_auc_difference(ra, oa, rb, ob, groups, groups)
    psis = [(r[:, None] > o[None, :]) + 0.5 * (r[:, None] == o[None, :]) for r, o in ((ra, oa), (rb, ob))]
    d10, d01 = psis[0].mean(axis=1) - psis[1].mean(axis=1), psis[0].mean(axis=0) - psis[1].mean(axis=0)
    k, total = 6, 0.0
    for c in sorted(set(groups)):
        mask = np.array(groups) == c
        a, b = d10[mask].sum() - mask.sum() * diff, d01[mask].sum() - mask.sum() * diff
        total += a * a / 900 + b * b / 900 + 2 * a * b / 900
    assert p == pytest.approx(math.erfc(abs(diff) / math.sqrt(2 * k / (k - 1) * total)), rel=1e-9)
    assert diff == pytest.approx(psis[0].mean() - psis[1].mean())


def test_the_bootstrap_of_speakers_equals_pooling_each_draws_utterances():
    rng = np.random.default_rng(5)
    groups = np.array([f"s{i % 6}" for i in range(40)])
    x, y = rng.normal(size=40), rng.normal(size=40)
    y = y + 0.5 * x
    low, high = pearson_interval_over_groups(x, y, groups, resamples=300, seed=7)
    names = np.unique(groups)
    draws = np.random.default_rng(7).multinomial(6, np.full(6, 1 / 6), size=300)
    rs = []
    for draw in draws:  # each speaker's utterances as many times as the draw took the speaker
        take = np.concatenate([np.flatnonzero(groups == name).repeat(k) for name, k in zip(names, draw)])
        rs.append(np.corrcoef(x[take], y[take])[0, 1])
    assert (low, high) == pytest.approx(tuple(np.percentile(rs, [2.5, 97.5])), rel=1e-9)
    assert all(math.isnan(v) for v in pearson_interval_over_groups(x, y, ["a", "b"] * 20))  # 2 speakers: none
    line = np.random.default_rng(0).normal(size=12)  # ratings a line of the scores: each draw's r is 1 give or take
    low, high = pearson_interval_over_groups(line, 3 * line + 0.5, [f"g{i % 4}" for i in range(12)])
    assert high == 1.0 and low == pytest.approx(1.0)  # 1.0000000000000004 before: past any r


def test_over_speakers_the_correlations_interval_covers_where_fishers_does_not():
    r"""8 speakers of 20 utterances; scores and ratings each a speaker's part (correlated 0.6 across speakers) and
    an utterance's (correlated 0.2): the population r is (0.64 * 0.6 + 0.2) / 1.64. In 300 draws Fisher's
    interval, which takes the 160 utterances for independent, covered it 211 times, the bootstrap of speakers 263
    (a percentile bootstrap of 8 clusters runs under 95%)."""
    rng = np.random.default_rng(0)
    true = (0.64 * 0.6 + 0.2) / 1.64
    fisher = by_speaker = 0
    groups = np.repeat(np.arange(8), 20)
    for _ in range(300):
        a = rng.normal(0, 1, 8)
        b = 0.6 * a + 0.8 * rng.normal(0, 1, 8)
        u = rng.normal(0, 1, (8, 20))
        v = 0.2 * u + math.sqrt(1 - 0.04) * rng.normal(0, 1, (8, 20))
        x, y = (0.8 * a[:, None] + u).ravel(), (0.8 * b[:, None] + v).ravel()
        low, high = pearson_interval(float(np.corrcoef(x, y)[0, 1]), 160)
        fisher += low <= true <= high
        low, high = pearson_interval_over_groups(x, y, groups)
        by_speaker += low <= true <= high
    assert fisher < 0.8 * 300 and by_speaker >= 0.85 * 300, (fisher, by_speaker)
