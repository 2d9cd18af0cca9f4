r"""The oneDNN conditioner path (flows.packed): the module's values, its cache, when it is used."""

from __future__ import annotations

import copy
import gc

import pytest
import torch

from flowaccent.flows import packed
from flowaccent.flows.coupling import Conditioner
from flowaccent.flows.packed import onednn_usable, packed_mlp

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")


def conditioner(activation: str = "relu", context_dim: int = 0, num_layers: int = 2) -> Conditioner:
    torch.manual_seed(0)
    net = Conditioner(5, 8, hidden=32, num_layers=num_layers, activation=activation, context_dim=context_dim)
    with torch.no_grad():  # the last layer starts at zero
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return net


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh", "silu", "elu"])
@pytest.mark.parametrize("batch", [0, 1, 7, 300])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_same_values_as_the_module(activation, batch, num_layers):
    net = conditioner(activation, num_layers=num_layers)
    x = torch.randn(batch, 5)
    with torch.no_grad():
        torch.testing.assert_close(net.forward_packed(x), net(x), rtol=1e-5, atol=1e-5)


def test_context_strided_input_and_tail_scale():
    net = conditioner(context_dim=3)
    frames = torch.randn(50, 9)
    x, context = frames[:, 2:7], torch.randn(50, 3)  # a column view, as the coupling passes its identity half
    with torch.no_grad():
        want = net(x, context)
        want[:, 4:] /= 2.5
        got = net.forward_packed(x, context, tail_scale=(4, 1 / 2.5))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="needs a context"):
        net.forward_packed(x)


def test_the_cache_follows_the_weights():
    net = conditioner()
    x = torch.randn(20, 5)
    with torch.no_grad():
        net.forward_packed(x)
        first = packed._cache[net.net][1]
        net.forward_packed(x)
        assert packed._cache[net.net][1] is first  # nothing changed: not repacked
        net.forward_packed(x, tail_scale=(4, 0.5))
        assert packed._cache[net.net][1] is not first  # another fold is another packing
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    net(x).square().sum().backward()
    optimizer.step()  # in place: same storage, new version
    with torch.no_grad():
        torch.testing.assert_close(net.forward_packed(x), net(x), rtol=1e-5, atol=1e-5)
        other = conditioner()
        other.net[0].weight.mul_(-1)
        net.load_state_dict(other.state_dict())
        torch.testing.assert_close(net.forward_packed(x), other(x), rtol=1e-5, atol=1e-5)


def test_nothing_of_it_in_the_module():
    gc.collect()
    before = len(packed._cache)
    net = conditioner()
    with torch.no_grad():
        net.forward_packed(torch.randn(4, 5))
    assert len(packed._cache) == before + 1
    clone = copy.deepcopy(net)  # the packed (opaque) tensors live outside the module
    assert set(clone.state_dict()) == set(net.state_dict())
    del net
    gc.collect()
    assert len(packed._cache) == before  # dropped with its module


def test_when_it_is_used(monkeypatch):
    x = torch.randn(3, 5)
    assert onednn_usable(x)
    assert not onednn_usable(x.double())
    monkeypatch.setenv("FLOWACCENT_ONEDNN", "0")
    assert not onednn_usable(x)


def test_packed_mlp_on_a_plain_sequential():
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    x = torch.randn(11, 4)
    with torch.no_grad():
        torch.testing.assert_close(packed_mlp(net, "relu", x), net(x), rtol=1e-5, atol=1e-5)
