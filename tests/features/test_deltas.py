r"""add_deltas against Kaldi's DeltaFeatures, written out here as plain loops."""

from __future__ import annotations

import kaldi_native_fbank as knf
import numpy as np
import pytest
import torch

from flowaccent.errors import FeatureError
from flowaccent.features import add_deltas


def kaldi_delta_scales(order: int, window: int) -> list[list[float]]:
    r"""Kaldi DeltaFeatures constructor (feature-functions.cc), loop for loop."""
    scales = [[1.0]]
    for i in range(1, order + 1):
        prev = scales[i - 1]
        prev_offset = (len(prev) - 1) // 2
        cur_offset = prev_offset + window
        cur = [0.0] * (2 * cur_offset + 1)
        normalizer = sum(j * j for j in range(-window, window + 1))
        for j in range(-window, window + 1):
            for k in range(-prev_offset, prev_offset + 1):
                cur[j + k + cur_offset] += j * prev[k + prev_offset]
        scales.append([c / normalizer for c in cur])
    return scales


def kaldi_add_deltas(x: np.ndarray, order: int, window: int) -> np.ndarray:
    r"""Kaldi DeltaFeatures::Process for every frame, edge frames clamped."""
    num_frames, dim = x.shape
    scales = kaldi_delta_scales(order, window)
    out = np.zeros((num_frames, dim * (order + 1)))
    for t in range(num_frames):
        for i in range(order + 1):
            max_offset = (len(scales[i]) - 1) // 2
            for j in range(-max_offset, max_offset + 1):
                frame = min(max(t + j, 0), num_frames - 1)
                out[t, i * dim : (i + 1) * dim] += scales[i][j + max_offset] * x[frame]
    return out


@pytest.mark.parametrize("num_frames", [1, 2, 3, 4, 9, 25])
@pytest.mark.parametrize("order,window", [(0, 2), (1, 2), (2, 2), (2, 1), (3, 3)])
def test_matches_kaldi_formula(num_frames, order, window, rng):
    x = rng.standard_normal((num_frames, 5))
    got = add_deltas(x, order=order, window=window)
    assert got.shape == (num_frames, 5 * (order + 1))
    np.testing.assert_allclose(got, kaldi_add_deltas(x, order, window), rtol=1e-12, atol=1e-12)


def test_worked_example_from_the_htk_book():
    # x = [1, 2, 4], order 2, window 1: deltas 0.5 1.5 1.0, delta-deltas 0.75 0.25 -0.75.
    got = add_deltas(np.array([[1.0], [2.0], [4.0]]), order=2, window=1)
    np.testing.assert_allclose(got, [[1, 0.5, 0.75], [2, 1.5, 0.25], [4, 1.0, -0.75]])


def test_second_order_window_for_n2():
    scales = kaldi_delta_scales(2, 2)
    np.testing.assert_allclose(scales[2], [0.04, 0.04, 0.01, -0.04, -0.1, -0.04, 0.01, 0.04, 0.04])


def test_agrees_with_kaldi_native_fbank(rng):
    x = rng.standard_normal((50, 40)).astype(np.float32)
    ref = knf.compute_deltas(knf.DeltaOptions(order=2, window=2), x)
    np.testing.assert_allclose(add_deltas(x), ref, rtol=1e-5, atol=1e-5)


def test_torch_in_torch_out_and_batched(rng):
    x = torch.from_numpy(rng.standard_normal((3, 7, 4)))
    out = add_deltas(x)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 7, 12)
    for b in range(3):
        np.testing.assert_allclose(out[b].numpy(), kaldi_add_deltas(x[b].numpy(), 2, 2), atol=1e-12)


def test_gradient_is_exact():
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: add_deltas(v, 2, 2), (x,))


def test_bad_input():
    with pytest.raises(FeatureError):
        add_deltas(np.zeros((0, 3)))
    with pytest.raises(FeatureError):
        add_deltas(np.zeros(5))
    with pytest.raises(FeatureError):
        add_deltas(np.zeros((4, 3)), order=-1)
