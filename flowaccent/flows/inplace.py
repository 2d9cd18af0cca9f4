r"""The flow's forward pass without autograd, on one buffer updated in place (scoring's fast path).

With gradients, every coupling allocates its output and joins the halves with a ``cat``, and
ActNorm allocates ``scale * x + shift``: about a dozen passes over ``(B, D)`` tensors per block
that the matmuls do not need. Without gradients nothing has to be kept, so each coupling
rewrites only its transformed half of the buffer (``x_t <- x_t * exp(s) + t``; its conditioner
reads the other half, which it does not touch) and ActNorm scales the buffer in place. Inside
:func:`flowaccent.flows.packed.packed_inference` (scoring) the conditioners run on oneDNN with
prepacked weights, and the flows :mod:`flowaccent.flows.folded` folds (alternating masks with ActNorm)
run on two contiguous halves with every ActNorm folded into the couplings' weights instead. Layers
without an in-place form (permutations, BatchNorm) run as usual. Same values as
``transform(x, context)`` (tested), and the caller's ``x`` is never modified.
"""

from __future__ import annotations

import torch
from nflows.transforms.base import CompositeTransform
from nflows.transforms.normalization import ActNorm
from torch import Tensor

from flowaccent.flows.coupling import SoftClampAffineCoupling
from flowaccent.flows.folded import forward_folded
from flowaccent.flows.norm import is_initialized


@torch.no_grad()
def forward_in_place(transform: CompositeTransform, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
    r"""``transform(x, context)`` without autograd: ``x (B, D) -> (z (B, D), log_det (B,))``."""
    folded = forward_folded(transform, x, context)
    if folded is not None:
        return folded
    log_det = x.new_zeros(x.shape[0])
    owned = False  # whether x is a buffer of ours (never the caller's tensor)
    for layer in transform._transforms:
        if isinstance(layer, SoftClampAffineCoupling) and layer.layout is not None:
            x = x if owned else x.clone()
            log_det += layer.forward_in_place(x, context)
        elif isinstance(layer, ActNorm) and is_initialized(layer):
            x = x if owned else x.clone()
            torch.addcmul(layer.shift, x, layer.log_scale.exp(), out=x)  # x * scale + shift, one pass
            log_det += layer.log_scale.sum()
        else:
            x, layer_log_det = layer(x, context)
            log_det += layer_log_det
        owned = True
    return x, log_det
