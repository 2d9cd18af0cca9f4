r"""numpy/torch duality: feature functions take either and return the same kind."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from flowaccent.errors import FeatureError

Array = np.ndarray | torch.Tensor


def as_tensor(x: Array, name: str = "features", min_frames: int = 1) -> torch.Tensor:
    r"""Returns ``x`` as a floating tensor of shape ``(..., T, D)`` (no copy for numpy, but for a read-only array:
    kaldiio's, which torch warned of as not writable).

    Raises :class:`FeatureError` when ``x`` is not at least 2-D, has fewer than
    ``min_frames`` frames or is not a floating type.
    """
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):  # said as torch's dtype of the numpy array
            raise FeatureError(f"{name}: expected floating-point features, got numpy {x.dtype}")
        x = np.ascontiguousarray(x)
        t = torch.from_numpy(x if x.flags.writeable else x.copy())
    else:
        t = x
    if not isinstance(t, torch.Tensor):
        raise FeatureError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}")
    if t.dim() < 2:
        raise FeatureError(f"{name}: expected shape (T, D), got {tuple(t.shape)}")
    if t.shape[-2] < min_frames:
        raise FeatureError(f"{name}: {t.shape[-2]} frames; at least {min_frames} needed")
    if not t.is_floating_point():
        raise FeatureError(f"{name}: expected floating-point features, got {t.dtype}")
    return t


def like_input(fn: Callable[..., torch.Tensor]) -> Callable[..., Array]:
    r"""Decorates ``fn(x: Tensor, ...)`` so a numpy input gives a numpy output."""

    def wrapper(x: Array, *args, **kwargs) -> Array:
        out = fn(x, *args, **kwargs)
        return out.numpy() if isinstance(x, np.ndarray) else out

    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
    wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    return wrapper


def clamped_window(num_frames: int, left: int, right: int, device: torch.device) -> torch.Tensor:
    r"""Frame indices ``clamp(t + j, 0, T - 1)`` for ``j = -left..right``: shape ``(T, left+right+1)``.

    Kaldi repeats the first and last frame at the edges (add-deltas, splice-feats).
    """
    t = torch.arange(num_frames, device=device)[:, None]
    j = torch.arange(-left, right + 1, device=device)[None, :]
    return (t + j).clamp_(0, num_frames - 1)
