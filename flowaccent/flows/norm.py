r"""Normalisation layers between coupling blocks: ActNorm, BatchNorm (nflows), or none."""

from __future__ import annotations

import torch
from nflows.transforms.normalization import ActNorm, BatchNorm
from torch import nn


class FrozenStatsBatchNorm(BatchNorm):
    r"""nflows BatchNorm whose running variance starts at 1 (nflows: 0, which makes an untrained
    model's eval-mode scores infinite). In eval mode it uses the running statistics, so
    scores do not depend on the batch; call ``model.eval()`` before scoring.
    """

    def __init__(self, features: int, momentum: float = 0.1):
        super().__init__(features, momentum=momentum)
        with torch.no_grad():
            self.running_var.fill_(1.0)


def make_norm(kind: str, features: int) -> nn.Module | None:
    r"""``actnorm`` (data-initialised on the first training batch), ``batchnorm`` or ``none``."""
    if kind == "actnorm":
        return ActNorm(features)
    if kind == "batchnorm":
        return FrozenStatsBatchNorm(features)
    if kind == "none":
        return None
    raise ValueError(f"unknown norm {kind!r}")
