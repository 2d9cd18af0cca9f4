r"""Property-based tests (hypothesis) of the feature functions and the ark writer/reader round trip."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from flowaccent.data import ArkWriter, ScpReader, iter_ark
from flowaccent.features import add_deltas, apply_cmvn, compute_cmvn_stats, splice_frames

PROPS = settings(max_examples=60, deadline=None)
finite = st.floats(-1e3, 1e3, allow_nan=False, width=64)


def feats(min_frames: int = 1, max_frames: int = 12, max_dim: int = 5):
    shape = st.tuples(st.integers(min_frames, max_frames), st.integers(1, max_dim))
    return shape.flatmap(lambda s: arrays(np.float64, s, elements=finite))


@PROPS
@given(x=feats(), order=st.integers(0, 3), window=st.integers(1, 3), a=finite, b=finite)
def test_deltas_are_linear_and_keep_the_statics(x, order, window, a, b):
    y = np.random.default_rng(0).standard_normal(x.shape)
    out = add_deltas(x, order, window)
    assert out.shape == (x.shape[0], x.shape[1] * (order + 1))
    np.testing.assert_array_equal(out[:, : x.shape[1]], x)
    combined = add_deltas(a * x + b * y, order, window)
    np.testing.assert_allclose(combined, a * out + b * add_deltas(y, order, window), rtol=1e-9, atol=1e-6)


@PROPS
@given(x=feats(), c=finite, window=st.integers(1, 3))
def test_deltas_of_a_constant_are_zero(x, c, window):
    const = np.full_like(x, c)
    np.testing.assert_allclose(add_deltas(const, 2, window)[:, x.shape[1] :], 0, atol=1e-9)


@PROPS
@given(x=feats(), left=st.integers(0, 6), right=st.integers(0, 6))
def test_splice_centre_is_the_frame_and_edges_repeat(x, left, right):
    out = splice_frames(x, left, right)
    d = x.shape[1]
    np.testing.assert_array_equal(out[:, left * d : (left + 1) * d], x)
    np.testing.assert_array_equal(out[0, :d], x[0])  # the first frame's left context is frame 0
    np.testing.assert_array_equal(out[-1, -d:], x[-1])


@PROPS
@given(x=feats(min_frames=2), cut=st.integers(1, 11))
def test_cmvn_stats_add_up_and_normalise(x, cut):
    cut = min(cut, len(x) - 1)
    np.testing.assert_allclose(
        compute_cmvn_stats(x[:cut]) + compute_cmvn_stats(x[cut:]), compute_cmvn_stats(x), rtol=1e-9, atol=1e-6
    )
    np.testing.assert_allclose(apply_cmvn(x, compute_cmvn_stats(x)).mean(0), 0, atol=1e-7 * (1 + np.abs(x).max()))


keys = st.text(st.characters(whitelist_categories=("L", "N"), whitelist_characters="-_."), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(
    items=st.dictionaries(keys, feats(max_frames=6), min_size=1, max_size=5),
    double=st.booleans(),
)
def test_ark_round_trip(tmp_path_factory, items, double):
    root = tmp_path_factory.mktemp("rt")
    dtype = np.float64 if double else np.float32
    with ArkWriter(root / "x.ark", root / "x.scp") as writer:
        for key, value in items.items():
            writer.write(key, value.astype(dtype))
    for key, value in ScpReader(root / "x.scp"):
        np.testing.assert_array_equal(value, items[key].astype(dtype))
    assert [k for k, _ in iter_ark(f"ark:{root / 'x.ark'}", expected_keys=list(items))] == list(items)
