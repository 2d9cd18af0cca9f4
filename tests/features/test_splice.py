r"""splice_frames against Kaldi's splice-feats (SpliceFrames), written out as loops."""

from __future__ import annotations

import kaldi_native_fbank as knf
import numpy as np
import pytest
import torch

from flowaccent.errors import FeatureError
from flowaccent.features import splice_frames


def kaldi_splice(x: np.ndarray, left: int, right: int) -> np.ndarray:
    num_frames, dim = x.shape
    out = np.zeros((num_frames, dim * (left + right + 1)))
    for t in range(num_frames):
        for j in range(-left, right + 1):
            frame = min(max(t + j, 0), num_frames - 1)
            out[t, (j + left) * dim : (j + left + 1) * dim] = x[frame]
    return out


@pytest.mark.parametrize("num_frames", [1, 2, 3, 6, 13])
@pytest.mark.parametrize("left,right", [(0, 0), (5, 5), (4, 4), (2, 0), (0, 3), (1, 7)])
def test_matches_kaldi_formula(num_frames, left, right, rng):
    x = rng.standard_normal((num_frames, 3))
    got = splice_frames(x, left, right)
    assert got.shape == (num_frames, 3 * (left + right + 1))
    np.testing.assert_array_equal(got, kaldi_splice(x, left, right))


def test_lab_input_is_440_dims(rng):
    assert splice_frames(rng.standard_normal((20, 40)).astype(np.float32)).shape == (20, 440)


def test_a_read_only_array_as_kaldiio_reads_one(rng, recwarn):
    r"""torch warned that kaldiio's arrays are not writable; the array is left as it was."""
    x = rng.standard_normal((6, 4)).astype(np.float32)
    x.flags.writeable = False
    np.testing.assert_array_equal(splice_frames(x, 1, 1), kaldi_splice(x, 1, 1))
    assert not [w for w in recwarn if "not writable" in str(w.message)]


def test_agrees_with_kaldi_native_fbank(rng):
    x = rng.standard_normal((30, 8)).astype(np.float32)
    ref = knf.splice_frames(x, knf.SpliceOptions(left_context=5, right_context=5))
    np.testing.assert_array_equal(splice_frames(x, 5, 5), ref)


def test_gradient_is_exact():
    x = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: splice_frames(v, 2, 3), (x,))


def test_bad_contexts():
    with pytest.raises(FeatureError):
        splice_frames(np.zeros((3, 2)), -1, 1)
