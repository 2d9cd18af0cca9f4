r"""Every shipped config loads strictly and builds a model of the stated size."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowaccent.features import FeaturePipeline
from flowaccent.flows.realnvp import flops_per_frame
from flowaccent.model import FlowModel
from flowaccent.train.config import ExperimentConfig

CONFIGS = sorted(Path(__file__).parents[2].glob("recipes/*/conf/*.yaml"))
LAB = {
    "dnf_120.yaml": (120, 120),
    "dnf_440_c400.yaml": (440, 400),
    "dnf_440_c440.yaml": (440, 440),
    "nf_120.yaml": (120, 0),
}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_loads_and_builds(path):
    config = ExperimentConfig.from_yaml(path)
    pipeline = FeaturePipeline(config.features, 40)
    model = FlowModel(pipeline, config.model, config.prior, ("native", "zh"))
    if path.name in LAB:
        dim, cond_dim = LAB[path.name]
        assert (model.dim, config.prior.cond_dim) == (dim, cond_dim)
        assert config.model.num_blocks == 10 and config.train.batch_size == 10000 and config.train.lr == 1e-4
        assert flops_per_frame(config.model, dim) > 0


def test_lab_configs_are_shipped():
    assert set(LAB) <= {p.name for p in CONFIGS}
