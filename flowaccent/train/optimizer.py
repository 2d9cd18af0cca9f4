r"""The training optimizer: Adam, fused into one kernel per parameter where torch has it.

PyTorch's default Adam on CPU loops over the parameters with about ten small kernels each; the
fused one makes one pass per parameter (same update rule; ``benchmarks/bench_model.py`` times the
training step with it). ``FLOWACCENT_FUSED_ADAM=0`` selects the default implementation.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch


def make_optimizer(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    r"""Adam over the trainable ``params``, fused when every parameter is on a device that supports it.

    Arguments:
        params: parameters; those without ``requires_grad`` are left out.
        lr: learning rate (the trainer overwrites it each step with its schedule).
        weight_decay: L2 penalty, as in :class:`torch.optim.Adam`.
    """
    params = [p for p in params if p.requires_grad]
    fused = os.environ.get("FLOWACCENT_FUSED_ADAM", "1") != "0" and all(
        p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64) for p in params
    )
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused or None)
