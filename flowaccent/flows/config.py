r"""The RealNVP's settings, without torch: a command's ``--help`` and its option checks do not import it."""

from __future__ import annotations

import dataclasses
from typing import Literal

from flowaccent.config import Config
from flowaccent.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ModelConfig(Config):
    r"""The RealNVP architecture.

    Attributes:
        num_blocks: coupling blocks (the lab: 10).
        hidden: width of each conditioner layer (the lab: 512, or 256 unconditional).
        num_layers: hidden layers per conditioner MLP.
        activation: ``relu``, ``gelu``, ``tanh``, ``elu`` or ``silu``.
        mask: ``alternating`` (even/odd features swap each block) or ``random``
            (a fixed random half per block, from ``mask_seed``).
        norm: ``actnorm`` (scores independent of the batch), ``batchnorm`` (the lab's;
            running statistics used in eval mode) or ``none``, between blocks.
        scale_clamp: ``c`` of the soft-clamped log-scale ``c * tanh(u / c)``.
        context_dim: width of a context vector fed to every conditioner (0: none).
        mask_seed: seed of the random masks.
    """

    num_blocks: int = 10
    hidden: int = 512
    num_layers: int = 2
    activation: Literal["relu", "gelu", "tanh", "elu", "silu"] = "relu"
    mask: Literal["alternating", "random"] = "alternating"
    norm: Literal["actnorm", "batchnorm", "none"] = "actnorm"
    scale_clamp: float = 2.0
    context_dim: int = 0
    mask_seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        ranges = (("num_blocks", 1, False), ("hidden", 1, False), ("num_layers", 1, False), ("scale_clamp", 0, True),
                  ("context_dim", 0, False))
        self.check_ranges("model", ranges)
        if not 0 <= self.mask_seed < 2**63:  # torch's Generator.manual_seed: 'Overflow when unpacking long long'
            raise ConfigError(f"model: mask_seed must be in [0, 2**63), got {self.mask_seed}")
