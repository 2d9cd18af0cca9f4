r"""The training forward on halves (flows.halves) against nflows' layers: values and gradients."""

from __future__ import annotations

import pytest
import torch

from flowaccent.flows.coupling import _SoftClampExp, exp_, tanh_
from flowaccent.flows.halves import CouplingActNorm, forward_training, halves_plan
from flowaccent.flows.realnvp import ModelConfig, build_realnvp


def make_flow(dim: int, context: int = 0, **config) -> torch.nn.Module:
    torch.manual_seed(0)
    flow = build_realnvp(ModelConfig(num_blocks=4, hidden=16, context_dim=context, **config), dim).double()
    flow(torch.randn(50, dim, dtype=torch.float64), torch.randn(50, context, dtype=torch.float64) if context else None)
    with torch.no_grad():  # ActNorm initialised above; now make every coupling and norm non-trivial
        for p in flow.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return flow


def nodes(t: torch.Tensor) -> set[str]:
    r"""Names of the autograd nodes ``t`` depends on."""
    seen, stack = {}, [t.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is not None and id(fn) not in seen:
            seen[id(fn)] = type(fn).__name__
            stack += [f for f, _ in fn.next_functions]
    return set(seen.values())


@pytest.mark.parametrize("dim", [2, 5, 6, 7, 40])
@pytest.mark.parametrize("context", [0, 3])
def test_same_values_and_gradients_as_nflows(dim, context):
    flow = make_flow(dim, context)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(17, dim, generator=gen, dtype=torch.float64, requires_grad=True)
    ctx = torch.randn(17, context, generator=gen, dtype=torch.float64, requires_grad=True) if context else None
    w, v = torch.randn(17, dim, generator=gen, dtype=torch.float64), torch.randn(17, generator=gen, dtype=torch.float64)
    inputs = [x, *([ctx] if context else []), *flow.parameters()]

    z, log_det = forward_training(flow, x, ctx)
    assert "CouplingActNormBackward" in nodes(log_det)
    z_ref, log_det_ref = flow(x, ctx)
    torch.testing.assert_close(z, z_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(log_det, log_det_ref, rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad((z * w).sum() + (log_det * v).sum(), inputs)
    grads_ref = torch.autograd.grad((z_ref * w).sum() + (log_det_ref * v).sum(), inputs)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)


def test_gradcheck_of_the_fused_node():
    gen = torch.Generator().manual_seed(2)

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64, requires_grad=True)

    args = (rand(6, 3), rand(6, 4), rand(6, 8), rand(3), rand(3), rand(4), rand(4))
    assert torch.autograd.gradcheck(lambda *a: CouplingActNorm.apply(*a, 1.5), args)


@pytest.mark.parametrize(
    "config", [{"mask": "random"}, {"norm": "batchnorm"}, {"norm": "none"}], ids=["random-mask", "batchnorm", "no-norm"]
)
def test_other_flows_run_through_nflows(config):
    flow = make_flow(6, **config)
    assert halves_plan(flow) is None
    x = torch.randn(9, 6, dtype=torch.float64, requires_grad=True)
    z, log_det = forward_training(flow, x)
    assert "CouplingActNormBackward" not in nodes(log_det)
    torch.testing.assert_close(z, flow(x)[0])


def test_the_environment_switch_turns_it_off(monkeypatch):
    flow = make_flow(6)
    x = torch.randn(9, 6, dtype=torch.float64, requires_grad=True)
    monkeypatch.setenv("FLOWACCENT_HALVES", "0")
    assert "CouplingActNormBackward" not in nodes(forward_training(flow, x)[1])
    monkeypatch.setenv("FLOWACCENT_HALVES", "1")
    assert "CouplingActNormBackward" in nodes(forward_training(flow, x)[1])


def test_the_first_batch_initialises_actnorm_through_nflows():
    flow = build_realnvp(ModelConfig(num_blocks=2, hidden=8), 6).double()
    x = torch.randn(30, 6, dtype=torch.float64) * 3 + 1
    z, log_det = forward_training(flow, x)  # nflows' ActNorm initialises itself from this batch
    assert "CouplingActNormBackward" not in nodes(log_det)
    torch.testing.assert_close(z.mean(0), torch.zeros(6, dtype=torch.float64), atol=1e-10, rtol=0)
    z2, log_det2 = forward_training(flow, x)  # initialised now: the fused path, the same values
    assert "CouplingActNormBackward" in nodes(log_det2)
    torch.testing.assert_close(z2, z)


def test_the_couplings_cpu_tanh_is_tanh_to_float32_ulps():
    r"""``coupling.tanh_`` (``2 sigmoid(2x) - 1`` on a CPU, in place): within 2.5e-7 of float64 tanh
    everywhere, exactly +-1 far out, odd, and NaN stays NaN."""
    x = torch.cat([torch.linspace(-30, 30, 200001), torch.tensor([-1e30, 1e30, 0.0, 1e-30, -1e-30])])
    got = tanh_(x.clone())
    assert (got.double() - torch.tanh(x.double())).abs().max().item() < 2.5e-7
    assert got[-5].item() == -1.0 and got[-4].item() == 1.0 and abs(got[-3].item()) < 1e-7
    torch.testing.assert_close(tanh_(-x.clone()), -got, rtol=0, atol=2.5e-7)
    y = torch.tensor([float("nan"), 1.0])
    assert tanh_(y) is y and torch.isnan(y[0])


def test_the_couplings_cpu_exp_is_exp_to_float32_ulps():
    r"""``coupling.exp_`` (``exp2(x log2 e)`` on a CPU, in place) in float32: within 2e-7 relative of float64
    ``exp`` over the default soft clamp's range ``|x| <= 2``, 6e-7 up to ``|x| = 10`` (the rounding of
    ``x log2 e`` grows with ``|x|``)."""
    for bound, tolerance in ((2.0, 2e-7), (10.0, 6e-7)):
        x = torch.linspace(-bound, bound, 200001)
        got = exp_(x.clone())
        assert ((got.double() - x.double().exp()) / x.double().exp()).abs().max().item() < tolerance
    y = torch.tensor([float("nan"), float("-inf"), 0.0])
    assert exp_(y) is y and torch.isnan(y[0]) and y[1].item() == 0.0 and y[2].item() == 1.0


def test_the_soft_clamp_node_is_its_formula_and_passes_gradcheck():
    r"""``coupling._SoftClampExp`` (the couplings outside the halves path on a CPU): ``(c tanh(u / c), exp(that))``
    and its hand-written backward against autograd's (float64)."""
    torch.manual_seed(0)
    raw = (3 * torch.randn(7, 10, dtype=torch.float64)).requires_grad_()
    log_scale, scale = _SoftClampExp.apply(raw, 2.0)
    want = 2.0 * torch.tanh(raw / 2.0)
    torch.testing.assert_close(log_scale, want)
    torch.testing.assert_close(scale, want.exp())
    assert torch.autograd.gradcheck(lambda r: _SoftClampExp.apply(r, 2.0), (raw,))
    assert torch.autograd.gradcheck(lambda r: _SoftClampExp.apply(r, 0.5)[1].sum(), (raw,))
    (g,) = torch.autograd.grad(_SoftClampExp.apply(raw, 2.0)[1].sum(), raw, create_graph=True)
    assert not g.requires_grad  # once differentiable: no silently wrong second order
