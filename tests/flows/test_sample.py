r"""Sampling and the class as context: ``FlowModel.sample``, ``inverse`` and scoring of a flow with ``context_dim``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from flowaccent.errors import ConfigError, FeatureError
from flowaccent.features import FeaturePipeline, FeaturePipelineConfig
from flowaccent.flows.realnvp import ModelConfig
from flowaccent.model import FlowModel
from flowaccent.prior import PriorConfig
from flowaccent.train.checkpoint import load_experiment_model

from .test_flow_contract import CLASSES, DIM, make_model


@pytest.mark.parametrize("context", [0, len(CLASSES)])
def test_samples_of_a_class_map_to_its_prior(context):
    r"""Frames drawn for class y, taken back through the flow with label y, have y's latent statistics: the
    conditioned dims around y's mean with ``class_var``, the rest around 0 with ``residual_var`` (5 sigma)."""
    model = make_model("actnorm", 4, context, "alternating")
    n = 4000
    for y in range(len(CLASSES)):
        labels = torch.full((n,), y)
        x = model.sample(n, labels, torch.Generator().manual_seed(y))
        z = model(x, labels).z
        mean, var = z.mean(0), z.var(0)
        expected_mean = torch.cat([model.prior.means[y].detach(), torch.zeros(DIM - 4, dtype=z.dtype)])
        expected_var = torch.tensor([0.5] * 4 + [2.0] * (DIM - 4), dtype=z.dtype)
        assert ((mean - expected_mean).abs() < 5 * (expected_var / n).sqrt()).all()
        assert ((var / expected_var - 1).abs() < 5 * math.sqrt(2 / n)).all()


def test_a_seed_draws_the_same_frames_and_the_classes_first():
    model = make_model("actnorm", 4, 0, "alternating")
    first = model.sample(50, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(first, model.sample(50, generator=torch.Generator().manual_seed(7)))
    gen = torch.Generator().manual_seed(7)  # uniform classes, then the prior's noise, from one generator
    labels = torch.randint(len(CLASSES), (50,), generator=gen)
    torch.testing.assert_close(first, model.inverse(model.prior.sample(50, labels, gen)))


@pytest.mark.parametrize("context", [0, len(CLASSES)])
def test_sampling_and_its_noise_follow_the_model_to_its_device(context):
    r"""The draws are made on the CPU and moved: a model on another device ("meta" here: any mix of devices is an
    error there, as on a GPU) samples without a device mismatch."""
    model = make_model("actnorm", 4, context, "alternating").to("meta")
    assert model.sample(5, generator=torch.Generator().manual_seed(0)).device.type == "meta"
    assert model.sample(5, torch.tensor([0, 1, 2, 0, 1])).device.type == "meta"


def test_a_class_context_flow_needs_labels_and_takes_them_as_its_context():
    model = make_model("actnorm", 4, len(CLASSES), "alternating")
    x = torch.randn(8, DIM, dtype=torch.float64)
    with pytest.raises(FeatureError, match="context_dim = 3.*differs per class: give the frames' class labels"):
        model(x)
    labels = torch.arange(8) % len(CLASSES)
    one_hot = torch.nn.functional.one_hot(labels, len(CLASSES)).to(torch.float64)
    torch.testing.assert_close(model(x, labels).log_ll, model(x, labels, one_hot).log_ll)
    scored = model.score_utterance(x.numpy(), labels=1)
    torch.testing.assert_close(scored.log_ll, model(x, torch.ones(8, dtype=torch.long)).log_ll)


def test_labels_are_one_class_index_per_frame_or_one_for_all():
    r"""A ``(1,)`` tensor of labels was broadcast (frame 0's log p stood for every frame's: 18 nats off on a demo
    utterance); a numpy or 0-d index was an AttributeError, an index of no class torch's bare IndexError."""
    model = make_model("actnorm", 4, 0, "alternating")
    x = torch.randn(8, DIM, dtype=torch.float64)
    one = model(x, torch.ones(8, dtype=torch.long)).log_ll
    for same in (1, np.int64(1), torch.tensor(1), np.ones(8, dtype=np.int32), [1] * 8):
        torch.testing.assert_close(model(x, same).log_ll, one)
        torch.testing.assert_close(model.score_utterance(x.numpy(), labels=same).log_ll, one)
    for bad, message in ((torch.tensor([1]), r"one class index per frame \(8,\) or one for all, got \(1,\)"),
                         (torch.ones(3, dtype=torch.long), r"got \(3,\)"),
                         (torch.full((8,), 0.7), "integer class indices, got torch.float32"),
                         (True, "class indices .*got bool"),
                         (3, r"label 3 is no class \(0..2: "), (-1, "label -1 is no class")):
        with pytest.raises(FeatureError, match=message):
            model(x, bad)
        with pytest.raises(FeatureError, match=message):
            model.score_utterance(x.numpy(), labels=bad)
    with pytest.raises(FeatureError, match="label 5 is no class"):
        model.sample(4, torch.tensor([0, 5, 0, 1]))
    torch.testing.assert_close(model.sample(4, 2, torch.Generator().manual_seed(0)),
                               model.sample(4, torch.full((4,), 2), torch.Generator().manual_seed(0)))


def test_a_one_class_context_flow_scores_without_labels():
    torch.manual_seed(0)
    pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="none", deltas=0, standardize=False), DIM)
    model = FlowModel(pipeline, ModelConfig(num_blocks=2, hidden=8, context_dim=1), PriorConfig(), ("native",))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(6, DIM)
    torch.testing.assert_close(model(x).log_ll, model(x, torch.zeros(6, dtype=torch.long)).log_ll)


def test_score_and_blurmask_refuse_a_flow_that_differs_per_class(tmp_path: Path):
    model = make_model("actnorm", 4, len(CLASSES), "alternating")
    torch.save(model.to_checkpoint(), tmp_path / "final.pt")
    for command in ("score", "blurmask"):
        with pytest.raises(ConfigError, match=f"^{command}: .*context_dim = 3 .*needs one flow for every frame"):
            load_experiment_model(tmp_path, None, command)
