r"""FeaturePipeline: composition of the Kaldi steps, standardisation, gradients, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowaccent.errors import ConfigError, FeatureError
from flowaccent.features import (
    FeaturePipeline,
    FeaturePipelineConfig,
    add_deltas,
    apply_cmvn,
    compute_cmvn_stats,
    splice_frames,
)


def test_all_off_is_identity(rng):
    config = FeaturePipelineConfig(cmvn="none", deltas=0, splice=0, standardize=False)
    x = torch.from_numpy(rng.standard_normal((9, 40)).astype(np.float32))
    pipeline = FeaturePipeline(config, 40)
    assert pipeline.output_dim == 40
    assert torch.equal(pipeline(x), x)


def test_spk_cmvn_then_deltas_is_the_kaldi_chain(rng):
    x = rng.standard_normal((20, 40)) + 5
    stats = compute_cmvn_stats(np.concatenate([x, rng.standard_normal((7, 40))]))
    pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="spk", deltas=2, standardize=False), 40)
    got = pipeline(torch.from_numpy(x), stats)
    assert got.shape == (20, 120)
    np.testing.assert_allclose(got.numpy(), add_deltas(apply_cmvn(x, stats)), atol=1e-12)


@pytest.mark.parametrize("norm_vars", [False, True])
def test_utt_cmvn_uses_the_utterance_stats(norm_vars, rng):
    x = rng.standard_normal((15, 8)) * 2 + 3
    config = FeaturePipelineConfig(cmvn="utt", norm_vars=norm_vars, deltas=0, splice=5, standardize=False)
    got = FeaturePipeline(config, 8)(torch.from_numpy(x))
    expected = splice_frames(apply_cmvn(x, compute_cmvn_stats(x), norm_vars), 5, 5)
    assert got.shape == (15, 88)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-10)


def test_standardisation_is_fitted_and_has_a_log_det(rng):
    config = FeaturePipelineConfig(cmvn="none", deltas=1, standardize=True)
    pipeline = FeaturePipeline(config, 3)
    data = [torch.from_numpy(rng.standard_normal((50, 3)) * [1, 2, 3] + 4) for _ in range(4)]
    with pytest.raises(FeatureError, match="never fitted"):
        pipeline(data[0])
    pipeline.fit((x, None) for x in data)
    out = torch.cat([pipeline(x) for x in data])
    np.testing.assert_allclose(out.mean(0).numpy(), 0, atol=1e-10)
    np.testing.assert_allclose(out.std(0, unbiased=False).numpy(), 1, atol=1e-10)
    assert torch.isclose(pipeline.log_abs_det(), -pipeline.std.log().sum())


def test_fitted_is_remembered_on_the_host_until_a_state_is_loaded(rng):
    config = FeaturePipelineConfig(cmvn="none", deltas=0, standardize=True)
    pipeline, fresh = FeaturePipeline(config, 3), FeaturePipeline(config, 3)
    pipeline.fit([(torch.from_numpy(rng.standard_normal((30, 3))), None)])
    assert pipeline.is_fitted()
    pipeline._buffers["fitted"] = torch.tensor(False)  # not read again (on a GPU, reading it drains the queue)
    assert pipeline.is_fitted()
    pipeline.load_state_dict(fresh.state_dict())  # an unfitted state: asked again
    with pytest.raises(FeatureError, match="never fitted"):
        pipeline.standardize(torch.zeros(2, 3))


def test_gradient_flows_through_the_whole_pipeline(rng):
    config = FeaturePipelineConfig(cmvn="utt", norm_vars=True, deltas=2, splice=1, standardize=True)
    pipeline = FeaturePipeline(config, 4).double()
    pipeline.fit([(torch.from_numpy(rng.standard_normal((30, 4))), None)])
    x = torch.from_numpy(rng.standard_normal((6, 4))).requires_grad_()
    assert torch.autograd.gradcheck(pipeline, (x,))
    pipeline(x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_save_load_round_trip(tmp_path, rng):
    config = FeaturePipelineConfig(cmvn="spk", norm_vars=True, deltas=2, splice=0, standardize=True)
    pipeline = FeaturePipeline(config, 40)
    stats = compute_cmvn_stats(rng.standard_normal((100, 40)))
    pipeline.fit([(torch.from_numpy(rng.standard_normal((40, 40)).astype(np.float32)), stats)])
    pipeline.save(tmp_path / "pipeline.pt")
    loaded = FeaturePipeline.load(tmp_path / "pipeline.pt")
    assert loaded.config == config and loaded.input_dim == 40
    x = torch.from_numpy(rng.standard_normal((12, 40)).astype(np.float32))
    assert torch.equal(loaded(x, stats), pipeline(x, stats))
    assert not list(tmp_path.glob(".*tmp*"))


def test_errors(rng):
    pipeline = FeaturePipeline(FeaturePipelineConfig(standardize=False), 40)
    with pytest.raises(FeatureError, match="dim 30"):
        pipeline(torch.zeros(5, 30), compute_cmvn_stats(np.ones((3, 30))))
    with pytest.raises(FeatureError, match="cmvn stats"):
        pipeline(torch.zeros(5, 40))
    with pytest.raises(ConfigError, match="unknown key"):
        FeaturePipelineConfig.from_dict({"cmvn": "spk", "delta": 2})
    with pytest.raises(ConfigError, match="not one of"):
        FeaturePipelineConfig.from_dict({"cmvn": "global"})
    with pytest.raises(ConfigError, match="integer"):
        FeaturePipelineConfig.from_dict({"deltas": "2"})
    with pytest.raises(ConfigError):
        FeaturePipelineConfig(deltas=-1)


def test_config_round_trip():
    config = FeaturePipelineConfig(cmvn="utt", deltas=0, splice=5)
    assert FeaturePipelineConfig.from_dict(config.to_dict()) == config
    assert config.output_dim(40) == 440
    assert FeaturePipelineConfig().output_dim(40) == 120
