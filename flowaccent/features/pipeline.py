r"""The feature pipeline saved with every model: CMVN, deltas or splicing, standardisation."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from flowaccent.errors import ConfigError, FeatureError
from flowaccent.features._array import as_tensor
from flowaccent.features.cmvn import VAR_FLOOR, apply_cmvn
from flowaccent.features.config import FeaturePipelineConfig
from flowaccent.features.deltas import add_deltas
from flowaccent.features.splice import splice_frames
from flowaccent.transfer import TrueFlags

#: A standard deviation below which a dimension counts as constant: it is centred but not scaled (a spread of 1, as
#: sklearn's StandardScaler takes a spread of 0). Scaled by 1 / 1e-5 (the floor it was), a constant dim became the
#: flow's undoing: what the couplings' shifts later put into it was magnified 1e5 times, by ActNorm again, and a run on
#: 40-d features of 5 constant dims ended at a valid NLL of 7.1e13 nats/frame (129.7 without them).
STD_FLOOR = 1e-5


def spread_or_one(std: torch.Tensor) -> torch.Tensor:
    r"""``std`` with each entry below :data:`STD_FLOOR` (a constant dimension) as 1."""
    return torch.where(std < STD_FLOOR, torch.ones_like(std), std)


class FeaturePipeline(TrueFlags, nn.Module):
    r"""Stored features ``(..., T, D)`` -> model input ``(..., T, D_out)``; differentiable.

    Order: apply-cmvn, add-deltas, splice-feats, global standardisation. With
    ``cmvn=none, deltas=0, splice=0, standardize=False`` it is the identity.

    Arguments:
        config: what to apply.
        input_dim: dimension ``D`` of the stored features (40 for 40-bin fbank).

    Example:
        >>> p = FeaturePipeline(FeaturePipelineConfig(cmvn="utt", standardize=False), 40)
        >>> p(torch.randn(7, 40)).shape
        torch.Size([7, 120])
    """

    def __init__(self, config: FeaturePipelineConfig, input_dim: int):
        super().__init__()
        FeaturePipelineConfig.expect(config, "FeaturePipeline")  # a dict: 'dict' object has no attribute 'output_dim'
        if isinstance(input_dim, bool) or not isinstance(input_dim, (int, np.integer)) or input_dim <= 0:
            raise ConfigError(f"features: input_dim must be a positive integer, got {input_dim!r}")
        input_dim = int(input_dim)
        self.config = config
        self.input_dim = input_dim
        self.output_dim = config.output_dim(input_dim)
        self.register_buffer("mean", torch.zeros(self.output_dim, dtype=torch.float64))
        self.register_buffer("std", torch.ones(self.output_dim, dtype=torch.float64))
        self.register_buffer("fitted", torch.tensor(False))

    def forward(self, x: torch.Tensor | np.ndarray, cmvn_stats: np.ndarray | None = None) -> torch.Tensor:
        r"""Applies the pipeline.

        Arguments:
            x: stored features ``(..., T, D)``.
            cmvn_stats: the speaker's ``(2, D + 1)`` stats; required when ``cmvn=spk``.

        Returns:
            ``(..., T, D_out)`` in the dtype of ``x``.
        """
        return self.standardize(self.unstandardized(x, cmvn_stats))

    def is_fitted(self) -> bool:
        r"""``fitted``, read from the device until it is True, then remembered (on a GPU, reading it drains
        the queue: :class:`flowaccent.transfer.TrueFlags`)."""
        return self.flag("fitted")

    def standardize(self, y: torch.Tensor) -> torch.Tensor:
        r"""The global standardisation alone: ``(..., D_out) -> (..., D_out)`` (identity when off)."""
        if not self.config.standardize:
            return y
        if not torch.compiler.is_compiling() and not self.is_fitted():  # compiled: checked before (runtime.compiled)
            raise FeatureError("feature pipeline: standardize is on but was never fitted")
        return (y - self.mean.to(y.dtype)) / self.std.to(y.dtype)

    def unstandardize(self, y: torch.Tensor) -> torch.Tensor:
        r"""Inverse of :meth:`standardize`."""
        if not self.config.standardize:
            return y
        return y * self.std.to(y.dtype) + self.mean.to(y.dtype)

    def unstandardized(self, x: torch.Tensor | np.ndarray, cmvn_stats: np.ndarray | None = None) -> torch.Tensor:
        r"""CMVN, deltas and splicing of ``x`` ``(..., T, D)`` (a tensor, or a numpy array made one), without
        standardisation."""
        x = as_tensor(x, min_frames=0)
        if x.shape[-1] != self.input_dim:
            raise FeatureError(f"features have dim {x.shape[-1]}, the feature pipeline expects {self.input_dim}")
        cfg = self.config
        if cfg.cmvn == "spk":
            if cmvn_stats is None:
                raise FeatureError("feature pipeline: cmvn=spk needs the speaker's cmvn stats")
            x = apply_cmvn(x, cmvn_stats, cfg.norm_vars)
        elif cfg.cmvn == "utt":
            x = _utterance_cmvn(x, cfg.norm_vars)
        if cfg.deltas:
            x = add_deltas(x, cfg.deltas, 2)
        if cfg.splice:
            x = splice_frames(x, cfg.splice, cfg.splice)
        return x

    def log_abs_det(self) -> torch.Tensor:
        r"""``log|det|`` of the standardisation per frame: ``-sum(log std)`` (0 when off)."""
        if not self.config.standardize:
            return torch.zeros((), dtype=torch.float64)
        return -torch.log(self.std).sum()

    @torch.no_grad()
    def fit(self, batches: Iterable[tuple[torch.Tensor, np.ndarray | None]]) -> None:
        r"""Fits the global mean and std over ``(x (T, D), cmvn_stats)`` pairs (one pass, float64)."""
        total = torch.zeros(self.output_dim, dtype=torch.float64)
        total_sq = torch.zeros(self.output_dim, dtype=torch.float64)
        count = 0
        for item in batches:
            if not isinstance(item, (tuple, list)) or len(item) != 2:  # bare frames: 'too many values to unpack'
                raise FeatureError(f"feature pipeline: fit takes (x (T, D), cmvn_stats) pairs (stats None without "
                                   f"speaker CMVN), got a {type(item).__name__}")
            x, stats = item
            y = self.unstandardized(torch.as_tensor(x), stats).reshape(-1, self.output_dim)
            y = y.to(torch.float64)
            total += y.sum(0)
            total_sq += (y * y).sum(0)
            count += y.shape[0]
        if count < 2:
            raise FeatureError(f"feature pipeline: cannot fit standardisation on {count} frames")
        mean = total / count
        var = (total_sq / count - mean * mean).clamp_min(0)
        self.mean.copy_(mean)
        self.std.copy_(spread_or_one(var.sqrt()))
        self.fitted.fill_(True)

    def to_state(self) -> dict[str, Any]:
        r"""Everything needed to rebuild this pipeline exactly (plain types and tensors)."""
        return {
            "config": self.config.to_dict(),
            "input_dim": self.input_dim,
            "buffers": {k: v.clone() for k, v in self.state_dict().items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FeaturePipeline:
        r"""Inverse of :meth:`to_state`."""
        if not isinstance(state, dict) or not {"config", "input_dim", "buffers"} <= set(state):
            keys = ", ".join(map(str, state)) if isinstance(state, dict) else type(state).__name__
            raise ConfigError(f"not a feature pipeline's state (FeaturePipeline.to_state: config, input_dim, buffers; "
                              f"got {keys})")
        config = FeaturePipelineConfig.from_dict(state["config"], "feature pipeline")
        pipeline = cls(config, int(state["input_dim"]))
        pipeline.load_state_dict(state["buffers"])
        return pipeline

    def save(self, path: str | Path) -> None:
        r"""Writes :meth:`to_state` to ``path`` atomically."""
        from flowaccent.data.atomic import atomic_path

        with atomic_path(path) as tmp:
            torch.save(self.to_state(), tmp)

    @classmethod
    def load(cls, path: str | Path) -> FeaturePipeline:
        r"""Reads a pipeline written by :meth:`save`, or the pipeline of a model's checkpoint (``final.pt``: it
        said 'unknown key(s) features, model, prior, train'); a :class:`ConfigError` naming ``path`` where it
        is neither (or missing: torch's own FileNotFoundError)."""
        from flowaccent.train.checkpoint import load_checkpoint  # (it imports this module)

        state = load_checkpoint(path)
        model = state.get("model", state)
        try:
            return cls.from_state(model["pipeline"] if isinstance(model, dict) and "pipeline" in model else state)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None


def _utterance_cmvn(x: torch.Tensor, norm_vars: bool) -> torch.Tensor:
    r"""apply-cmvn with the utterance's own stats, differentiable through the stats too."""
    if x.shape[-2] < 1:
        raise FeatureError("feature pipeline: utterance CMVN of an empty utterance")
    mean = x.mean(dim=-2, keepdim=True)
    if not norm_vars:
        return x - mean
    var = ((x * x).mean(dim=-2, keepdim=True) - mean * mean).clamp_min(VAR_FLOOR)
    return (x - mean) * var.rsqrt()
