r"""Shared helpers of the flow tests."""

from __future__ import annotations

import torch

from flowaccent.flows.coupling import Conditioner


def conditioner(activation: str = "relu", context_dim: int = 0, num_layers: int = 2) -> Conditioner:
    r"""A small conditioner (5 inputs, 8 outputs, hidden 32) with every weight moved off its initial value."""
    torch.manual_seed(0)
    net = Conditioner(5, 8, hidden=32, num_layers=num_layers, activation=activation, context_dim=context_dim)
    with torch.no_grad():  # the last layer starts at zero
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return net
