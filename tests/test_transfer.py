r"""flowaccent.transfer on a CPU (a GPU's non-blocking copies are measured in benchmarks/, not tested here)."""

from __future__ import annotations

import pytest
import torch

from flowaccent.transfer import HostCopy, pinned, to_device


def batches(closed: list):
    try:
        yield torch.ones(3), torch.arange(3)
        yield None
        yield ["utt"], torch.zeros(2)
    finally:
        closed.append(True)


def test_pinned_leaves_items_alone_on_a_cpu_and_closes_them():
    closed = []
    items = list(pinned(batches(closed), torch.device("cpu")))
    assert items[1] is None and items[2][0] == ["utt"] and torch.equal(items[0][0], torch.ones(3))
    assert closed == [True]
    closed = []
    it = pinned(batches(closed), torch.device("cpu"))
    next(it)
    it.close()  # as the prefetch thread closes what it runs
    assert closed == [True]


def test_pinned_pins_each_tensor_for_a_gpu(monkeypatch):
    pins = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda t: pins.append(t) or t.clone())
    closed = []
    it = pinned(batches(closed), torch.device("cuda"))
    x, y = next(it)
    assert len(pins) == 2 and torch.equal(x, torch.ones(3)) and torch.equal(y, torch.arange(3))
    assert next(it) is None
    names, z = next(it)
    assert names == ["utt"] and len(pins) == 3  # only the tensors
    it.close()
    assert closed == [True]


def test_host_copy_and_to_device_on_a_cpu():
    t = torch.randn(4)
    assert HostCopy({"t": t}).get()["t"] is t
    assert to_device(t, torch.device("cpu")) is t


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_round_trip_through_a_gpu():
    x = next(pinned(iter([(torch.randn(1000, 8),)]), torch.device("cuda")))[0]
    assert x.is_pinned()
    y = to_device(x, torch.device("cuda")) * 2
    assert torch.equal(HostCopy({"y": y}).get()["y"], x * 2)
