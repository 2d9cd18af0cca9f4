r"""The benchmarks' FLOP counts (``flops_per_frame``, ``train_flops_per_frame``) against PyTorch's own count of
the products the model runs: a forward, and the backward of a training step."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from flowaccent.features import FeaturePipeline, FeaturePipelineConfig
from flowaccent.flows.realnvp import ModelConfig, flops_per_frame, train_flops_per_frame
from flowaccent.model import FlowModel
from flowaccent.prior import PriorConfig


@pytest.mark.parametrize(
    ("dim", "layers", "context", "cond_dim", "mask"),
    [(12, 2, 0, 0, "alternating"), (13, 1, 0, 0, "alternating"), (12, 2, 2, 0, "alternating"),
     (12, 3, 0, 12, "alternating"), (11, 2, 0, 0, "random")],
    ids=["even", "odd", "context", "prior", "random"],
)
def test_counts_equal_the_products_torch_runs(monkeypatch, dim, layers, context, cond_dim, mask):
    monkeypatch.setenv("FLOWACCENT_ONEDNN_TRAIN", "0")  # aten's products, which the counter sees
    config = ModelConfig(num_blocks=3, hidden=16, num_layers=layers, context_dim=context, mask=mask)
    pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="none", deltas=0, standardize=False), dim)
    model = FlowModel(pipeline, config, PriorConfig(cond_dim=cond_dim), ("native", "zh"))
    batch = 64
    x, y = torch.randn(batch, dim), torch.arange(batch) % 2
    model.initialize(x, y)
    model.train()
    with FlopCounterMode(display=False) as forward:
        loss = model(x, y).nll.mean()
    with FlopCounterMode(display=False) as backward:
        loss.backward()
    prior = 2 * cond_dim * 2  # per frame: the prior's product of c (cond_dim) with the 2 class means, left out
    assert forward.get_total_flops() == (flops_per_frame(config, dim) + prior) * batch
    assert forward.get_total_flops() + backward.get_total_flops() == (train_flops_per_frame(config, dim)
                                                                       + 3 * prior) * batch


def test_first_layer_input_gradient_is_the_only_product_left_out():
    config = ModelConfig(num_blocks=10, hidden=512)
    assert 3 * flops_per_frame(config, 120) - train_flops_per_frame(config, 120) == 2 * 60 * 512
    assert flops_per_frame(config, 440) == 2 * 10 * (220 * 512 + 512 * 512 + 512 * 440)
