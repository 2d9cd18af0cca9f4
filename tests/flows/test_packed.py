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


def test_padded_rows_make_a_multiple_of_copies_of_the_last_row(monkeypatch):
    x, y = torch.randn(300, 5), torch.arange(300)
    px, py = packed.padded_rows(x, y)
    assert len(px) == len(py) == 512 and packed.ROW_MULTIPLE == 256
    assert torch.equal(px[:300], x) and torch.equal(px[300:], x[-1:].expand(212, 5)) and (py[300:] == 299).all()
    for same in (torch.randn(512, 5), torch.randn(0, 5), torch.randn(300, 5, dtype=torch.float64)):
        assert packed.padded_rows(same)[0] is same  # a multiple, nothing, or not for oneDNN
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16's products are oneDNN's too, a kernel per shape
        assert len(packed.padded_rows(x)[0]) == 512
    monkeypatch.setenv("FLOWACCENT_ONEDNN", "0")
    assert packed.padded_rows(x)[0] is x


def test_scoring_and_validation_give_onednn_few_batch_shapes_and_the_same_values(monkeypatch):
    r"""Batches cut at utterance boundaries came in every size, and oneDNN kept a kernel for each: a score's RSS
    grew with the corpus (36 MB every 200k frames of varied utterances). Each is padded to a multiple of 256 rows,
    the padding's results dropped."""
    from flowaccent.features import FeaturePipelineConfig
    from flowaccent.flows.realnvp import ModelConfig
    from flowaccent.model import build_model
    from flowaccent.prior import PriorConfig
    from flowaccent.score.scorer import _scored_part

    torch.manual_seed(0)
    features = FeaturePipelineConfig(cmvn="none", deltas=0, standardize=False)
    model = build_model(features, 6, ModelConfig(num_blocks=2, hidden=8), PriorConfig(cond_dim=3), ("a", "b")).eval()
    rows, forward = [], type(model).forward
    monkeypatch.setattr(type(model), "forward", lambda self, x, *a, **k: rows.append(len(x)) or forward(self, x, *a,
                                                                                                         **k))
    x = torch.randn(700, 6)
    with torch.no_grad():
        plain = model(x)
        with packed_inference(model):
            got = _scored_part(model, x, 0, torch.device("cpu"), "fp32")
    assert rows == [700, 768]
    for name in ("z", "log_p", "log_det"):
        torch.testing.assert_close(got[name], getattr(plain, name), rtol=1e-5, atol=1e-5)
    assert got["llr"].shape == (700,)
    from flowaccent.train.validation import held_out_nll

    class Stream:  # a validation stream of one batch of 700 frames
        refs = [None]

        def joined(self, batch_frames, share):
            return [(x, torch.arange(700) % 2)]

    rows.clear()
    held = held_out_nll(model, Stream(), 8000, torch.device("cpu"), "fp32")
    assert rows == [768] and held["frames"] == 700
    with torch.no_grad():
        want = model(x, torch.arange(700) % 2)
    assert held["nll"] == pytest.approx(float(want.nll.double().mean()), rel=1e-6)
    assert held["log_det"] == pytest.approx(float(want.log_det.double().mean()), rel=1e-6)
