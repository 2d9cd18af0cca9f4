r"""Kaldi ``compute-cmvn-stats`` and the apply-cmvn transform, in numpy (no torch import)."""

from __future__ import annotations

import numpy as np

from flowaccent.errors import FeatureError

#: Kaldi's variance floor in ``ApplyCmvn`` (transform/cmvn.cc).
VAR_FLOOR = 1.0e-20


def compute_cmvn_stats(x: np.ndarray) -> np.ndarray:
    r"""Accumulates Kaldi CMVN stats of ``x`` like ``compute-cmvn-stats``.

    Arguments:
        x: features ``(T, D)``, numpy or torch.

    Returns:
        float64 ``(2, D + 1)``: row 0 holds ``sum_t x`` and the frame count in the
        last column; row 1 holds ``sum_t x^2`` and 0. Stats of two parts add up
        to the stats of the whole.
    """
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    v = np.asarray(x, dtype=np.float64)
    if v.ndim != 2:
        raise FeatureError(f"compute_cmvn_stats: expected (T, D), got {v.shape}")
    stats = np.zeros((2, v.shape[1] + 1), dtype=np.float64)
    stats[0, :-1] = v.sum(axis=0)
    stats[1, :-1] = (v * v).sum(axis=0)
    stats[0, -1] = v.shape[0]
    return stats


def cmvn_transform(stats: np.ndarray, norm_vars: bool = False) -> tuple[np.ndarray, np.ndarray]:
    r"""Returns ``(offset, scale)``, each ``(D,)``, with which apply-cmvn maps ``x -> offset + x * scale``.

    Follows Kaldi's ``ApplyCmvn``: ``mean = s0 / n``; without variance
    normalisation ``scale = 1, offset = -mean``; with it ``var = s1 / n - mean^2``
    floored at 1e-20, ``scale = 1 / sqrt(var)``, ``offset = -mean * scale``.
    """
    stats = np.asarray(stats, dtype=np.float64)
    if stats.ndim != 2 or stats.shape[0] != 2 or stats.shape[1] < 2:
        raise FeatureError(f"apply_cmvn: stats must have shape (2, D+1), got {stats.shape}")
    count = stats[0, -1]
    if not 1.0 <= count < np.inf:  # inf: every mean 0, no CMVN at all (a LogLL of -94244 without a word)
        raise FeatureError(f"apply_cmvn: {'insufficient' if count < 1 else 'not finite:'} stats for CMVN: "
                           f"count = {count}")
    mean = stats[0, :-1] / count
    if not norm_vars:
        return -mean, np.ones_like(mean)
    var = np.maximum(stats[1, :-1] / count - mean * mean, VAR_FLOOR)
    scale = 1.0 / np.sqrt(var)
    return -mean * scale, scale
