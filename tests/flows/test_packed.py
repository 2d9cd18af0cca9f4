r"""The oneDNN conditioner path (flows.packed): the module's values, its cache, when it is used."""

from __future__ import annotations

import copy
import gc

import pytest
import torch

from flowaccent.flows import packed
from flowaccent.flows.packed import onednn_usable, packed_inference, packed_mlp

from .conftest import conditioner

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")


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
    with torch.no_grad(), packed_inference(net):
        net.forward_packed(x)
        first = packed._derived[net.net][1]
        net.forward_packed(x)
        assert packed._derived[net.net][1] is first  # nothing changed: not repacked
        net.forward_packed(x, tail_scale=(4, 0.5))
        assert packed._derived[net.net][1] is not first  # another fold is another packing
        net.net[0].weight.mul_(-1)  # in place: same storage, new version
        torch.testing.assert_close(net.forward_packed(x), net(x), rtol=1e-5, atol=1e-5)
        other = conditioner()
        other.net[2].bias.add_(1.0)
        net.load_state_dict(other.state_dict())
        torch.testing.assert_close(net.forward_packed(x), other(x), rtol=1e-5, atol=1e-5)


def test_only_inside_the_block_and_dropped_after_it():
    gc.collect()
    before = len(packed._derived)
    net = conditioner()
    x = torch.randn(4, 5)
    assert not onednn_usable(net.net, x)
    with torch.no_grad(), packed_inference(net):
        assert onednn_usable(net.net, x)
        assert not onednn_usable(net.net, x.double())
        net.forward_packed(x)
        assert len(packed._derived) == before + len(list(net.modules()))
        clone = copy.deepcopy(net)  # the packed (opaque) tensors live outside the module
        assert set(clone.state_dict()) == set(net.state_dict())
        with packed_inference(net):  # nested: the outer block keeps its packing
            pass
        assert packed._derived[net.net] is not None
    assert len(packed._derived) == before  # dropped on leaving the block


def test_opt_out(monkeypatch):
    net = conditioner()
    monkeypatch.setenv("FLOWACCENT_ONEDNN", "0")
    with packed_inference(net):
        assert not onednn_usable(net.net, torch.randn(3, 5))


def test_a_fused_optimiser_step_is_seen_outside_the_block():
    r"""Fused Adam updates parameters without bumping their version counters, so packed weights
    must not outlive the block: no-grad forwards between training steps use the current weights."""
    from flowaccent.features import FeaturePipeline, FeaturePipelineConfig
    from flowaccent.flows.realnvp import ModelConfig
    from flowaccent.model import FlowModel
    from flowaccent.prior import PriorConfig
    from flowaccent.train.optimizer import make_optimizer

    torch.manual_seed(0)
    pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="none", deltas=0, standardize=False), 6)
    model = FlowModel(pipeline, ModelConfig(num_blocks=2, hidden=16), PriorConfig(), ("native",))
    x = torch.randn(64, 6)
    model.initialize(x)
    optimizer = make_optimizer(model.parameters(), lr=0.05)
    for _ in range(3):
        with torch.no_grad(), packed_inference(model):
            model(x)
        loss = model(x).nll.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        want = model(x).log_ll.detach()
        with torch.no_grad():
            torch.testing.assert_close(model(x).log_ll, want, rtol=1e-5, atol=1e-4)
        with torch.no_grad(), packed_inference(model):
            torch.testing.assert_close(model(x).log_ll, want, rtol=1e-5, atol=1e-4)


def test_packed_mlp_on_a_plain_sequential():
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    x = torch.randn(11, 4)
    with torch.no_grad():
        torch.testing.assert_close(packed_mlp(net, "relu", x), net(x), rtol=1e-5, atol=1e-5)
