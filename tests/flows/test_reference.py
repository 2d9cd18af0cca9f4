r"""The nflows-based flow equals a plain-PyTorch RealNVP written here, with copied weights."""

from __future__ import annotations

import torch

from flowaccent.features import FeaturePipeline, FeaturePipelineConfig
from flowaccent.flows.realnvp import ModelConfig, masks
from flowaccent.model import FlowModel
from flowaccent.prior import PriorConfig


def reference_forward(model: FlowModel, x: torch.Tensor):
    r"""RealNVP by hand: standardise, per block an affine coupling and an ActNorm; DNF log p."""
    config = model.model_config
    pipe = model.pipeline
    h = (x - pipe.mean) / pipe.std
    log_det = torch.full((len(x),), -torch.log(pipe.std).sum().item(), dtype=x.dtype)
    layers = list(model.transform._transforms)
    for block, mask in enumerate(masks(config, x.shape[1])):
        coupling, actnorm = layers[2 * block], layers[2 * block + 1]
        linears = [m for m in coupling.transform_net.net if isinstance(m, torch.nn.Linear)]
        a = h[:, mask == 0]
        for lin in linears[:-1]:
            a = torch.relu(a @ lin.weight.T + lin.bias)
        params = a @ linears[-1].weight.T + linears[-1].bias
        n = int(mask.sum())
        shift, raw = params[:, :n], params[:, n:]
        s = config.scale_clamp * torch.tanh(raw / config.scale_clamp)
        h = h.clone()
        h[:, mask == 1] = h[:, mask == 1] * torch.exp(s) + shift
        log_det = log_det + s.sum(1)
        h = h * torch.exp(actnorm.log_scale) + actnorm.shift
        log_det = log_det + actnorm.log_scale.sum()
    k = model.prior_config.cond_dim
    c, r = h[:, :k], h[:, k:]
    log_2pi = torch.log(torch.tensor(2 * torch.pi, dtype=x.dtype))
    log_pc = -0.5 * (((c[:, None] - model.prior.means) ** 2).sum(-1) + k * log_2pi)
    log_pr = -0.5 * ((r**2).sum(-1) + r.shape[1] * log_2pi)
    log_p = torch.logsumexp(log_pc + log_pr[:, None], 1) - torch.log(torch.tensor(float(len(model.class_names))))
    return h, log_p, log_det


def test_same_z_log_p_log_det():
    torch.manual_seed(0)
    dim = 10
    pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="none", deltas=0, standardize=True), dim)
    pipeline.fit([(torch.randn(300, dim) * 2 - 1, None)])
    model = FlowModel(
        pipeline, ModelConfig(num_blocks=4, hidden=32, norm="actnorm"), PriorConfig(cond_dim=6), ("a", "b")
    ).double()
    x = torch.randn(50, dim, dtype=torch.float64) * 2 - 1
    model.initialize(x, torch.arange(50) % 2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.eval()
    out = model(x)
    z, log_p, log_det = reference_forward(model, x)
    torch.testing.assert_close(out.z, z)
    torch.testing.assert_close(out.log_p, log_p)
    torch.testing.assert_close(out.log_det, log_det)
