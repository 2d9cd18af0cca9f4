r"""Kaldi ``apply-cmvn``: cepstral mean and variance normalisation (numpy or torch)."""

from __future__ import annotations

import numpy as np
import torch

from flowaccent.errors import FeatureError
from flowaccent.features._array import Array, as_tensor, like_input
from flowaccent.features.cmvn_stats import VAR_FLOOR, cmvn_transform, compute_cmvn_stats

__all__ = ["VAR_FLOOR", "apply_cmvn", "cmvn_transform", "compute_cmvn_stats"]


@like_input
def apply_cmvn(x: Array, stats: np.ndarray, norm_vars: bool = False) -> Array:
    r"""Normalises ``x`` with CMVN ``stats`` like Kaldi's ``apply-cmvn [--norm-vars]``.

    Arguments:
        x: features ``(..., T, D)``, numpy or torch (differentiable in ``x``).
        stats: ``(2, D + 1)`` from :func:`compute_cmvn_stats` (summed over a speaker).
        norm_vars: also scale to unit variance.

    Returns:
        ``(..., T, D)``, ``offset + x * scale`` (see :func:`cmvn_transform`).
    """
    t = as_tensor(x, min_frames=0)
    shape = np.shape(stats)
    if len(shape) == 2 and shape[0] == 2 and shape[1] != t.shape[-1] + 1:  # before the count's check: said of (2, D)
        lacking = " (without the frame count, their last column?)" if shape[1] == t.shape[-1] else ""
        raise FeatureError(f"apply_cmvn: stats of shape {tuple(shape)} are for dim {shape[1] - 1}{lacking}, features "
                           f"have dim {t.shape[-1]}: stats are (2, D+1)")
    offset, scale = cmvn_transform(stats, norm_vars)
    # Kaldi keeps offset and scale as BaseFloat (float32) and applies them per element.
    offset_t = torch.as_tensor(offset, dtype=t.dtype, device=t.device)
    scale_t = torch.as_tensor(scale, dtype=t.dtype, device=t.device)
    return offset_t + t * scale_t
