r"""RealNVP: alternating (or randomly permuted) affine couplings with normalisation between."""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from nflows.transforms.base import CompositeTransform

from flowaccent.config import Config
from flowaccent.errors import ConfigError
from flowaccent.flows.coupling import ACTIVATIONS, Conditioner, SoftClampAffineCoupling
from flowaccent.flows.norm import make_norm


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
        if self.num_blocks < 1 or self.hidden < 1 or self.num_layers < 1:
            raise ConfigError(
                f"model: num_blocks, hidden and num_layers must be >= 1, got "
                f"{self.num_blocks}, {self.hidden}, {self.num_layers}"
            )
        if self.scale_clamp <= 0 or self.context_dim < 0:
            raise ConfigError("model: scale_clamp must be > 0 and context_dim >= 0")
        assert self.activation in ACTIVATIONS


def masks(config: ModelConfig, dim: int) -> list[torch.Tensor]:
    r"""One ``(dim,)`` 0/1 mask per block (1 = transformed)."""
    if config.mask == "alternating":
        even = torch.arange(dim) % 2
        return [even if b % 2 == 0 else 1 - even for b in range(config.num_blocks)]
    generator = torch.Generator().manual_seed(config.mask_seed)
    out = []
    for _ in range(config.num_blocks):
        mask = torch.zeros(dim, dtype=torch.long)
        mask[torch.randperm(dim, generator=generator)[: dim // 2]] = 1
        out.append(mask)
    return out


def build_realnvp(config: ModelConfig, dim: int) -> CompositeTransform:
    r"""The flow ``x (B, dim) -> z (B, dim)`` as an nflows ``CompositeTransform``."""
    if dim < 2:
        raise ConfigError(f"model: a coupling flow needs at least 2 input dims, got {dim}")

    def conditioner(d_in: int, d_out: int) -> Conditioner:
        return Conditioner(d_in, d_out, config.hidden, config.num_layers, config.activation, config.context_dim)

    layers = []
    for mask in masks(config, dim):
        layers.append(SoftClampAffineCoupling(mask, conditioner, config.scale_clamp))
        norm = make_norm(config.norm, dim)
        if norm is not None:
            layers.append(norm)
    return CompositeTransform(layers)


def flops_per_frame(config: ModelConfig, dim: int) -> int:
    r"""Multiply-adds x 2 of one forward pass through the conditioners (the matmul work)."""
    d_in = dim // 2 + config.context_dim
    d_out = 2 * (dim - dim // 2)
    widths = [d_in] + [config.hidden] * config.num_layers + [d_out]
    per_block = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    return 2 * per_block * config.num_blocks
