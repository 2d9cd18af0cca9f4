r"""make_optimizer: fused Adam where torch has it, the same updates as the default Adam."""

from __future__ import annotations

import torch

from flowaccent.train.optimizer import make_optimizer


def _run(optimizer_for, steps: int = 5) -> list[torch.Tensor]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    optimizer = optimizer_for(net.parameters())
    x = torch.randn(32, 6)
    for _ in range(steps):
        loss = net(x).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return [p.detach().clone() for p in net.parameters()]


def test_fused_on_cpu_and_the_same_updates_as_the_default_adam():
    assert make_optimizer([torch.nn.Parameter(torch.zeros(2))], 1e-3).defaults["fused"]
    fused = _run(lambda ps: make_optimizer(ps, 1e-2, weight_decay=1e-3))
    default = _run(lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=1e-3))
    start = _run(lambda ps: torch.optim.Adam(ps, lr=0.0), steps=1)
    for a, b, s in zip(fused, default, start):
        assert not torch.equal(a, s)  # it trained
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_frozen_parameters_are_left_out_and_the_opt_out(monkeypatch):
    frozen = torch.nn.Parameter(torch.zeros(2), requires_grad=False)
    trained = torch.nn.Parameter(torch.zeros(2))
    optimizer = make_optimizer([frozen, trained], 1e-3)
    assert optimizer.param_groups[0]["params"] == [trained]
    monkeypatch.setenv("FLOWACCENT_FUSED_ADAM", "0")
    assert not make_optimizer([trained], 1e-3).defaults["fused"]
