r"""CMVN stats and apply-cmvn against Kaldi's cmvn.cc formulas written out here."""

from __future__ import annotations

import kaldi_native_fbank as knf
import numpy as np
import pytest
import torch

from flowaccent.errors import FeatureError
from flowaccent.features import apply_cmvn, compute_cmvn_stats


def kaldi_stats(x: np.ndarray) -> np.ndarray:
    r"""AccCmvnStats frame by frame: row 0 sums and count, row 1 sums of squares."""
    dim = x.shape[1]
    stats = np.zeros((2, dim + 1))
    for frame in x.astype(np.float64):
        stats[0, dim] += 1.0
        for d in range(dim):
            stats[0, d] += frame[d]
            stats[1, d] += frame[d] * frame[d]
    return stats


def kaldi_apply(x: np.ndarray, stats: np.ndarray, var_norm: bool) -> np.ndarray:
    r"""ApplyCmvn: x <- offset + x * scale with Kaldi's variance floor 1e-20."""
    dim = stats.shape[1] - 1
    count = stats[0, dim]
    out = np.array(x, dtype=np.float64)
    for d in range(dim):
        mean = stats[0, d] / count
        if not var_norm:
            scale, offset = 1.0, -mean
        else:
            var = max(stats[1, d] / count - mean * mean, 1.0e-20)
            scale = 1.0 / np.sqrt(var)
            offset = -(mean * scale)
        out[:, d] = offset + out[:, d] * scale
    return out


@pytest.mark.parametrize("num_frames", [1, 2, 3, 50])
def test_stats_layout(num_frames, rng):
    x = rng.standard_normal((num_frames, 4))
    stats = compute_cmvn_stats(x)
    assert stats.shape == (2, 5) and stats.dtype == np.float64
    np.testing.assert_allclose(stats, kaldi_stats(x), rtol=1e-12)
    assert stats[0, -1] == num_frames and stats[1, -1] == 0


def test_stats_of_halves_sum_to_whole(rng):
    x = rng.standard_normal((31, 6)).astype(np.float32)
    halves = compute_cmvn_stats(x[:13]) + compute_cmvn_stats(x[13:])
    np.testing.assert_allclose(halves, compute_cmvn_stats(x), rtol=1e-12)


@pytest.mark.parametrize("norm_vars", [False, True])
@pytest.mark.parametrize("num_frames", [1, 2, 3, 40])
def test_apply_matches_kaldi_formula(norm_vars, num_frames, rng):
    x = rng.standard_normal((num_frames, 5)) * 3 + 7
    spk = np.concatenate([x, rng.standard_normal((10, 5))])  # stats of the whole speaker
    stats = compute_cmvn_stats(spk)
    np.testing.assert_allclose(apply_cmvn(x, stats, norm_vars), kaldi_apply(x, stats, norm_vars), rtol=1e-12)


def test_norm_vars_gives_zero_mean_unit_variance(rng):
    x = rng.standard_normal((200, 3)) * [1, 5, 0.1] + [10, -3, 2]
    y = apply_cmvn(x, compute_cmvn_stats(x), norm_vars=True)
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(y.std(0), 1, atol=1e-10)


def test_constant_feature_hits_kaldi_floor():
    r"""A constant column and one whose variance (2.5e-31) is below Kaldi's floor 1e-20: the floor's scale 1e10
    (a constant column alone is 0 under any floor)."""
    x = np.array([[3.0, 0.0], [3.0, 1e-15]])
    y = apply_cmvn(x, compute_cmvn_stats(x), norm_vars=True)
    np.testing.assert_allclose(y, kaldi_apply(x, compute_cmvn_stats(x), True), rtol=1e-12, atol=0)
    np.testing.assert_allclose(y, [[0.0, -5e-6], [0.0, 5e-6]], rtol=1e-6)


def test_agrees_with_kaldi_native_fbank(rng):
    x = rng.standard_normal((40, 8)).astype(np.float32)
    stats = compute_cmvn_stats(x)
    opts = knf.CmvnOptions()
    opts.norm_vars = True
    np.testing.assert_allclose(apply_cmvn(x, stats, True), knf.apply_cmvn(stats, opts, x), rtol=1e-5, atol=1e-5)


def test_gradient_flows():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    stats = compute_cmvn_stats(x.detach().numpy() + 1)
    assert torch.autograd.gradcheck(lambda v: apply_cmvn(v, stats, True), (x,))


def test_errors():
    with pytest.raises(FeatureError, match="count"):
        apply_cmvn(np.ones((2, 3)), np.zeros((2, 4)))
    stats = compute_cmvn_stats(np.ones((2, 3)))
    for count in (np.inf, np.nan):  # inf: every mean 0, no CMVN at all (a LogLL of -94244, no error)
        stats[0, -1] = count
        with pytest.raises(FeatureError, match="not finite: stats for CMVN: count = "):
            apply_cmvn(np.ones((2, 3)), stats)
    with pytest.raises(FeatureError, match="dim"):
        apply_cmvn(np.ones((2, 3)), compute_cmvn_stats(np.ones((2, 4))))
    with pytest.raises(FeatureError, match="shape"):
        apply_cmvn(np.ones((2, 3)), np.ones((1, 4)))
    # stats without their count column: said of the shape, not as 'insufficient stats: count = -3.05'
    x = np.random.default_rng(0).normal(size=(50, 40))
    with pytest.raises(FeatureError, match=r"stats of shape \(2, 40\) are for dim 39 \(without the frame count, "
                       r"their last column\?\), features have dim 40: stats are \(2, D\+1\)"):
        apply_cmvn(x, compute_cmvn_stats(x)[:, :-1])
