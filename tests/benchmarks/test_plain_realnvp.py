r"""benchmarks/plain_realnvp.py: log-dets against autograd Jacobians, the prior, and that it trains."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "plain_realnvp.py"
_spec = importlib.util.spec_from_file_location("plain_realnvp", _PATH)
plain_realnvp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plain_realnvp)
PlainRealNVP = plain_realnvp.PlainRealNVP


def _tiny(norm: str, seed: int = 0) -> torch.nn.Module:
    r"""dim 6, hidden 8, 3 blocks, float64; weights perturbed and norms fitted once, then eval mode."""
    torch.manual_seed(seed)
    model = PlainRealNVP(6, num_blocks=3, hidden=8, norm=norm).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))  # non-identity couplings and norm parameters
    model.train()
    model(3.0 * torch.randn(64, 6, dtype=torch.float64) + 1.0)  # ActNorm init / BatchNorm running stats
    return model.eval()


@pytest.mark.parametrize("norm", ["batchnorm", "actnorm", "none"])
def test_log_det_is_log_abs_det_of_the_jacobian(norm):
    model = _tiny(norm)
    x = torch.randn(4, 6, dtype=torch.float64)
    z, log_det = model(x)
    assert z.shape == (4, 6) and log_det.shape == (4,)
    for i in range(len(x)):
        jac = torch.autograd.functional.jacobian(lambda v: model(v[None])[0][0], x[i])
        sign, expected = torch.linalg.slogdet(jac)
        assert sign != 0
        assert log_det[i].item() == pytest.approx(expected.item(), abs=1e-9)
    assert not torch.allclose(z, x)  # the model is not the identity, so the check means something


def test_norms_are_not_identity_and_eval_is_per_frame():
    for norm in ("batchnorm", "actnorm"):
        model = _tiny(norm)
        norms = [m for m in model.layers if not isinstance(m, plain_realnvp.Coupling)]
        assert len(norms) == 3
        x = torch.randn(5, 6, dtype=torch.float64)
        assert all(n(x)[1].abs().min() > 1e-3 for n in norms)
        assert torch.allclose(model.log_prob(x)[:2], model.log_prob(x[:2]))  # eval: no batch statistics


def test_batchnorm_training_mode_normalises_the_batch():
    layer = plain_realnvp.BatchNormFlow(3).double().train()
    x = 2.0 * torch.randn(1000, 3, dtype=torch.float64) + 5.0
    y, log_det = layer(x)
    assert torch.allclose(y.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(y.var(0, unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-4)
    assert log_det[0].item() == pytest.approx(-0.5 * torch.log(x.var(0, unbiased=False) + 1e-5).sum().item())
    assert torch.allclose(layer.running_mean, 0.1 * x.mean(0))
    assert torch.allclose(layer.running_var, 0.9 + 0.1 * x.var(0))


def test_identity_at_init_gives_the_standard_normal_log_prob():
    model = PlainRealNVP(5, num_blocks=4, hidden=16, norm="none").double()
    x = torch.randn(7, 5, dtype=torch.float64)
    z, log_det = model(x)
    assert torch.equal(z, x) and torch.equal(log_det, torch.zeros(7, dtype=torch.float64))
    expected = -0.5 * (x**2).sum(1) - 2.5 * math.log(2 * math.pi)
    assert torch.allclose(model.log_prob(x), expected, atol=1e-12)
    normal = torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(1)
    assert torch.allclose(model.log_prob(x), normal, atol=1e-12)


@pytest.mark.parametrize("norm", ["batchnorm", "actnorm", "none"])
def test_adam_steps_fit_a_correlated_gaussian(norm):
    torch.manual_seed(0)
    cov = torch.tensor([[4.0, 1.8], [1.8, 1.0]])
    data = torch.distributions.MultivariateNormal(torch.tensor([1.0, -2.0]), cov)
    train, held_out = data.sample((512,)), data.sample((2000,))
    model = PlainRealNVP(2, num_blocks=4, hidden=32, norm=norm)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def nll() -> float:
        model.eval()
        with torch.no_grad():
            return -model.log_prob(held_out).mean().item()

    model.train()
    model(train)  # ActNorm data init / BatchNorm running statistics
    before = nll()
    for _ in range(60):
        model.train()
        loss = -model.log_prob(train).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = nll()
    best_diagonal = math.log(2 * math.pi * math.e) + 0.5 * math.log(4.0 * 1.0)  # independent axes: 3.53
    entropy = math.log(2 * math.pi * math.e) + 0.5 * math.log(torch.linalg.det(cov).item())  # the optimum: 2.70
    assert after < before - 0.3
    assert entropy - 0.15 < after < best_diagonal - 0.3  # it learnt the correlation, not just per-axis scales
