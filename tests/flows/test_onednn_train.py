r"""The oneDNN conditioner path with gradients (flows.onednn_train): values and gradients, when it is used."""

from __future__ import annotations

import pytest
import torch

from flowaccent.flows import onednn_train
from flowaccent.flows.coupling import Conditioner
from flowaccent.flows.onednn_train import onednn_mlp, onednn_training

from .conftest import conditioner

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")


def values_and_gradients(net: Conditioner, monkeypatch, choice: str, context_dim: int = 0) -> list[torch.Tensor]:
    r"""The conditioner's output and the gradients of a fixed loss through it (input, context, parameters)
    with ``FLOWACCENT_ONEDNN_TRAIN=choice``; the input a column view, as the coupling passes its identity half."""
    monkeypatch.setenv("FLOWACCENT_ONEDNN_TRAIN", choice)
    torch.manual_seed(1)
    frames = torch.randn(300, 9, requires_grad=True)
    context = torch.randn(300, context_dim, requires_grad=True) if context_dim else None
    net.zero_grad(set_to_none=True)
    out = net(frames[:, 2:7], context)
    (out * torch.randn_like(out)).sum().backward()
    grads = [frames.grad] + ([context.grad] if context_dim else []) + [p.grad for p in net.parameters()]
    return [out.detach()] + grads


@pytest.mark.parametrize("activation", ["relu", "gelu", "elu"])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("context_dim", [0, 3])
def test_same_values_and_gradients_as_the_modules(activation, num_layers, context_dim, monkeypatch):
    net = conditioner(activation, context_dim, num_layers)
    want = values_and_gradients(net, monkeypatch, "0", context_dim)
    got = values_and_gradients(net, monkeypatch, "1", context_dim)
    assert len(got) == len(want) == 2 + bool(context_dim) + 2 * (num_layers + 1)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)



@pytest.mark.parametrize("shape", [(0, 7), (1, 7), (10, 3), (23, 8), (25, 8)])
def test_transposed_in_blocks_is_the_transpose(shape, monkeypatch):
    monkeypatch.setattr(onednn_train, "TRANSPOSE_BLOCK", 5)
    monkeypatch.setattr(onednn_train, "TRANSPOSE_MIN_WIDTH", 4)
    x = torch.randn(*shape)
    for compiled in (False, True):
        got = onednn_train.transposed(x, compiled)
        assert got.is_contiguous() and got.shape == shape[::-1]
        torch.testing.assert_close(got, x.t(), rtol=0, atol=0)


def test_same_gradients_with_the_transposes_in_blocks(monkeypatch):
    r"""Every weight gradient's transposed operand copied in blocks (of 64 of the 300 frames)."""
    monkeypatch.setattr(onednn_train, "TRANSPOSE_BLOCK", 64)
    monkeypatch.setattr(onednn_train, "TRANSPOSE_MIN_WIDTH", 1)
    calls = []
    blocked = onednn_train.transposed
    monkeypatch.setattr(onednn_train, "transposed", lambda x, compiled=False: calls.append(x.shape) or blocked(x))
    net = conditioner()
    want = values_and_gradients(net, monkeypatch, "0")
    got = values_and_gradients(net, monkeypatch, "1")
    assert len(calls) == 3  # one per layer
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)

def test_used_by_the_conditioner_and_only_where_asked(monkeypatch):
    net = conditioner()
    calls = []
    real = onednn_train._OneDnnLinear.apply
    monkeypatch.setattr(onednn_train._OneDnnLinear, "apply", lambda *a: calls.append(1) or real(*a))
    x = torch.randn(10, 5)
    values_and_gradients(net, monkeypatch, "1")
    assert len(calls) == 3  # two Linear + ReLU nodes and the last Linear
    values_and_gradients(net, monkeypatch, "0")
    assert len(calls) == 3
    monkeypatch.setenv("FLOWACCENT_ONEDNN_TRAIN", "1")
    assert onednn_training(x)
    with torch.no_grad():
        assert not onednn_training(x)  # inference: flows.packed's path
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not onednn_training(x)  # bf16: autocast's kernels
    assert not onednn_training(x.double())
    assert not onednn_training(x[:0])
    monkeypatch.setenv("FLOWACCENT_ONEDNN", "0")
    assert not onednn_training(x)


@pytest.mark.parametrize(("vendor", "used"), [("AuthenticAMD", True), ("GenuineIntel", False), ("", False)])
def test_auto_means_amd_cpus(vendor, used, monkeypatch):
    monkeypatch.delenv("FLOWACCENT_ONEDNN_TRAIN", raising=False)
    monkeypatch.setattr(onednn_train, "cpu_vendor", lambda: vendor)
    assert onednn_training(torch.randn(4, 5)) is used


def test_cpu_vendor_reads_proc_cpuinfo():
    vendor = onednn_train.cpu_vendor()
    assert isinstance(vendor, str)
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        assert vendor == ""
    else:
        assert (f": {vendor}\n" in text) if "vendor_id" in text else vendor == ""


def test_frozen_weights_give_only_the_input_gradient(monkeypatch):
    monkeypatch.setenv("FLOWACCENT_ONEDNN_TRAIN", "1")
    net = conditioner()
    net.requires_grad_(False)
    x = torch.randn(20, 5, requires_grad=True)
    onednn_mlp(net.net, x).sum().backward()
    monkeypatch.setenv("FLOWACCENT_ONEDNN_TRAIN", "0")
    y = x.detach().requires_grad_()
    net(y).sum().backward()
    torch.testing.assert_close(x.grad, y.grad, rtol=1e-5, atol=1e-5)
    assert all(p.grad is None for p in net.parameters())
