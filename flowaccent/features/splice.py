r"""Kaldi ``splice-feats``: stack context frames, edge frames repeated."""

from __future__ import annotations

from flowaccent.errors import FeatureError
from flowaccent.features._array import Array, as_tensor, clamped_window, like_input


@like_input
def splice_frames(x: Array, left: int = 5, right: int = 5) -> Array:
    r"""Splices frames like Kaldi's ``splice-feats --left-context --right-context``.

    Output frame ``t`` is ``[x[clamp(t - left)], ..., x[t], ..., x[clamp(t + right)]]``
    with indices clamped to ``0..T-1``. Note Kaldi's defaults are 4/4; ours are
    5/5 (11 frames: 40-d fbank becomes 440-d, the lab's setting).

    Arguments:
        x: features ``(..., T, D)``, numpy or torch (differentiable).
        left: frames of left context.
        right: frames of right context.

    Returns:
        ``(..., T, D * (left + right + 1))``.
    """
    if left < 0 or right < 0:
        raise FeatureError(f"splice_frames: contexts must be >= 0, got {left}, {right}")
    t = as_tensor(x)
    idx = clamped_window(t.shape[-2], left, right, t.device)  # (T, K)
    out = t[..., idx, :]  # (..., T, K, D)
    return out.reshape(*out.shape[:-2], -1)
