r"""The nflows-based flow equals a plain-PyTorch RealNVP written here, with copied weights."""

from __future__ import annotations

import pytest
import torch
from nflows.transforms.normalization import ActNorm
from nflows.transforms.permutations import Permutation

from flowaccent.features import FeaturePipeline, FeaturePipelineConfig
from flowaccent.flows.coupling import SoftClampAffineCoupling
from flowaccent.flows.realnvp import ModelConfig, masks
from flowaccent.model import FlowModel
from flowaccent.prior import PriorConfig


def reference_forward(model: FlowModel, x: torch.Tensor):
    r"""RealNVP by hand: standardise; per layer permute, affine-couple or ActNorm; DNF log p.

    Also returns, per coupling, the original features it transformed.
    """
    config = model.model_config
    pipe = model.pipeline
    h = (x - pipe.mean) / pipe.std
    log_det = torch.full((len(x),), -torch.log(pipe.std).sum().item(), dtype=x.dtype)
    held = torch.arange(x.shape[1])  # the original feature at each position
    transformed = []
    for layer in model.transform._transforms:
        if isinstance(layer, Permutation):
            h, held = h[:, layer._permutation], held[layer._permutation]
        elif isinstance(layer, SoftClampAffineCoupling):
            ident, trans = layer.identity_features, layer.transform_features
            linears = [m for m in layer.transform_net.net if isinstance(m, torch.nn.Linear)]
            a = h[:, ident]
            for lin in linears[:-1]:
                a = torch.relu(a @ lin.weight.T + lin.bias)
            params = a @ linears[-1].weight.T + linears[-1].bias
            shift, raw = params[:, : len(trans)], params[:, len(trans) :]
            s = config.scale_clamp * torch.tanh(raw / config.scale_clamp)
            h = h.clone()
            h[:, trans] = h[:, trans] * torch.exp(s) + shift
            log_det = log_det + s.sum(1)
            transformed.append(set(held[trans].tolist()))
        elif isinstance(layer, ActNorm):
            h = h * torch.exp(layer.log_scale) + layer.shift
            log_det = log_det + layer.log_scale.sum()
        else:
            raise AssertionError(f"unexpected layer {layer}")
    assert torch.equal(held, torch.arange(x.shape[1]))  # z comes out in the original order
    k = model.prior_config.cond_dim
    c, r = h[:, :k], h[:, k:]
    log_2pi = torch.log(torch.tensor(2 * torch.pi, dtype=x.dtype))
    log_pc = -0.5 * (((c[:, None] - model.prior.means) ** 2).sum(-1) + k * log_2pi)
    log_pr = -0.5 * ((r**2).sum(-1) + r.shape[1] * log_2pi)
    log_p = torch.logsumexp(log_pc + log_pr[:, None], 1) - torch.log(torch.tensor(float(len(model.class_names))))
    return h, log_p, log_det, transformed


@pytest.mark.parametrize("mask,dim", [("alternating", 10), ("alternating", 9), ("random", 10)])
def test_same_z_log_p_log_det(mask, dim):
    torch.manual_seed(0)
    pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="none", deltas=0, standardize=True), dim)
    pipeline.fit([(torch.randn(300, dim) * 2 - 1, None)])
    config = ModelConfig(num_blocks=4, hidden=32, norm="actnorm", mask=mask)
    model = FlowModel(pipeline, config, PriorConfig(cond_dim=6), ("a", "b")).double()
    x = torch.randn(50, dim, dtype=torch.float64) * 2 - 1
    model.initialize(x, torch.arange(50) % 2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.eval()
    out = model(x)
    z, log_p, log_det, transformed = reference_forward(model, x)
    torch.testing.assert_close(out.z, z)
    torch.testing.assert_close(out.log_p, log_p)
    torch.testing.assert_close(out.log_det, log_det)
    assert transformed == [set(torch.nonzero(m).flatten().tolist()) for m in masks(config, dim)]
    if mask == "alternating":
        assert transformed[0] == set(range(1, dim, 2)) and transformed[1] == set(range(0, dim, 2))
