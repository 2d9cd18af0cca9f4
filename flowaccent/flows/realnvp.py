r"""RealNVP: alternating (or randomly permuted) affine couplings with normalisation between."""

from __future__ import annotations

import torch
from nflows.transforms.base import CompositeTransform
from nflows.transforms.permutations import Permutation

from flowaccent.errors import ConfigError
from flowaccent.flows.config import ModelConfig
from flowaccent.flows.coupling import Conditioner, SoftClampAffineCoupling
from flowaccent.flows.norm import make_norm


def masks(config: ModelConfig, dim: int) -> list[torch.Tensor]:
    r"""Which original features each block transforms: one ``(dim,)`` 0/1 mask per block (1 = transformed).

    ``alternating``: odd features in even blocks, even features in odd blocks. ``random``: a
    fixed random half (``dim - dim // 2`` features) per block, drawn from ``mask_seed``.
    """
    out = []
    for order, identity_first, d in _plan(config, dim):
        mask = torch.ones(dim, dtype=torch.long)
        mask[order[:d] if identity_first else order[dim - d :]] = 0
        out.append(mask)
    return out


def _plan(config: ModelConfig, dim: int) -> list[tuple[torch.Tensor, bool, int]]:
    r"""Per block: the feature order it sees, whether its identity half comes first, and its size."""
    if config.mask == "alternating":
        order = torch.cat([torch.arange(0, dim, 2), torch.arange(1, dim, 2)])  # evens, then odds
        evens = (dim + 1) // 2
        # even blocks keep the evens (first) and transform the odds; odd blocks transform the evens
        return [(order, True, evens) if b % 2 == 0 else (order, False, dim - evens) for b in range(config.num_blocks)]
    generator = torch.Generator().manual_seed(config.mask_seed)
    return [(torch.randperm(dim, generator=generator), True, dim // 2) for _ in range(config.num_blocks)]


def build_realnvp(config: ModelConfig, dim: int) -> CompositeTransform:
    r"""The flow ``x (B, dim) -> z (B, dim)`` as an nflows ``CompositeTransform``.

    Internally features are permuted (nflows ``Permutation``) so that every coupling splits
    contiguous halves (column views instead of gathers and scatters); a last permutation
    restores the original order, so ``z[:, i]`` corresponds to feature ``i`` and the DNF
    prior's first ``cond_dim`` dims are the same dims whatever the masks.
    """
    if dim < 2:
        raise ConfigError(f"model: a coupling flow needs at least 2 input dims, got {dim}")

    def conditioner(d_in: int, d_out: int) -> Conditioner:
        return Conditioner(d_in, d_out, config.hidden, config.num_layers, config.activation, config.context_dim)

    layers: list = []
    current = torch.arange(dim)  # the original feature held at each position
    for order, identity_first, d in _plan(config, dim):
        if not torch.equal(order, current):
            layers.append(Permutation(torch.argsort(current)[order]))
            current = order
        half = torch.zeros(dim, dtype=torch.long)  # in positions: 1 = transformed
        if identity_first:
            half[d:] = 1
        else:
            half[: dim - d] = 1
        layers.append(SoftClampAffineCoupling(half, conditioner, config.scale_clamp))
        norm = make_norm(config.norm, dim)
        if norm is not None:
            layers.append(norm)
    if not torch.equal(current, torch.arange(dim)):
        layers.append(Permutation(torch.argsort(current)))
    return CompositeTransform(layers)


def _identity_sizes(config: ModelConfig, dim: int) -> list[tuple[int, int]]:
    r"""The sizes of the blocks' identity halves, as :func:`_plan` has them, each with the number of blocks of that
    size, without the ``(dim,)`` orders or a list per block: the model-size check of a ``4e12``-d input
    (``--features.deltas 1e12``) asked torch for 1.6e14 bytes of orders, and of ``--model.num-blocks 1e12`` built
    a list of a trillion sizes (a hang)."""
    evens = (dim + 1) // 2
    if config.mask == "alternating":
        return [(evens, (config.num_blocks + 1) // 2), (dim - evens, config.num_blocks // 2)]
    return [(dim // 2, config.num_blocks)]


def _block_products(config: ModelConfig, dim: int, d: int) -> int:
    r"""Multiply-adds of one block's conditioner on one frame, its identity half ``d`` wide: identity half (and
    context) in, ``num_layers`` hidden layers (``num_layers - 1`` hidden-to-hidden products), shift and scale out.
    In closed form, as :func:`_identity_sizes`: ``--model.num-layers 1e9`` listed a billion widths (out of memory)."""
    h = config.hidden
    return (d + config.context_dim) * h + (config.num_layers - 1) * h * h + h * 2 * (dim - d)


def flops_per_frame(config: ModelConfig, dim: int) -> int:
    r"""Multiply-adds x 2 of one forward pass through the conditioners (the matmul work; the prior's
    ``cond_dim``-wide product with the class means, under 0.02% of it, is left out)."""
    return 2 * sum(blocks * _block_products(config, dim, d) for d, blocks in _identity_sizes(config, dim))


def train_flops_per_frame(config: ModelConfig, dim: int) -> int:
    r"""Multiply-adds x 2 of one training step's conditioner products: the forward, every layer's weight gradient
    and every layer's input gradient but the first block's first layer's, whose input (data, and the class
    context) needs no gradient, so autograd skips that product (tested against ``FlopCounterMode``)."""
    first = _identity_sizes(config, dim)[0][0]
    return 3 * flops_per_frame(config, dim) - 2 * (first + config.context_dim) * config.hidden
