r"""Built-in targets: the saved pipeline and the flow, exactly as scoring sees them."""

from __future__ import annotations

import pytest
import torch

from flowaccent.blurmask.fit import fit_blur_mask
from flowaccent.blurmask.targets import make_target
from flowaccent.data import load_data_dir
from flowaccent.data.stream import iter_utterances
from flowaccent.errors import ConfigError
from flowaccent.train.checkpoint import load_model

from .conftest import tiny_model


@pytest.fixture(scope="module")
def model_and_utt(flow_exp):
    _, exp, native, _ = flow_exp
    utt = next(iter_utterances(load_data_dir(native)))
    return load_model(exp / "final.pt"), utt


def test_log_ll_and_z_are_what_scoring_computes(model_and_utt):
    model, utt = model_and_utt
    x = torch.as_tensor(utt.feats)
    scored = model.score_utterance(utt.feats, utt.cmvn_stats)
    torch.testing.assert_close(make_target(model, "log_ll", utt.cmvn_stats)(x), scored.log_ll)
    torch.testing.assert_close(make_target(model, "z", utt.cmvn_stats)(x), scored.z)


def test_posterior(model_and_utt):
    model, utt = model_and_utt
    x = torch.as_tensor(utt.feats)
    every = make_target(model, "posterior", utt.cmvn_stats)(x)
    assert every.shape == (len(x), 2)
    torch.testing.assert_close(every.exp().sum(1), torch.ones(len(x)))
    per_class = model.prior.class_log_probs(model.score_utterance(utt.feats, utt.cmvn_stats).z)  # the scored latents
    torch.testing.assert_close(every, per_class - per_class.logsumexp(1, keepdim=True))
    zh = make_target(model, "posterior", utt.cmvn_stats, "zh")(x)
    torch.testing.assert_close(zh, every[:, 1])


def test_gradients_reach_the_raw_filterbank_and_a_mask_fits(model_and_utt):
    model, utt = model_and_utt
    x = torch.as_tensor(utt.feats).clone().requires_grad_()
    target = make_target(model, "log_ll", utt.cmvn_stats)
    (grad,) = torch.autograd.grad(target(x).sum(), x)
    assert grad.abs().sum() > 0
    result = fit_blur_mask(target, torch.as_tensor(utt.feats), steps=5)
    assert result.m.shape == utt.feats.shape
    assert all(p.grad is None for p in model.parameters())  # the model is left alone


def test_errors(model_and_utt, flow_exp):
    model, utt = model_and_utt
    with pytest.raises(ConfigError, match="not one of the model's"):
        make_target(model, "posterior", utt.cmvn_stats, "ja")
    with pytest.raises(ConfigError, match="unknown target"):
        make_target(model, "logits", utt.cmvn_stats)
    _, _, native, zh = flow_exp
    plain = tiny_model(classes=("native",), cond_dim=0, data=[native])
    with pytest.raises(ConfigError, match="two or more classes"):
        make_target(plain, "posterior", utt.cmvn_stats)
    assert model.pipeline.config.cmvn == "spk"  # without the speaker's stats: said when made, not inside the fit
    with pytest.raises(ConfigError, match=r"CMVN'd by speaker \(features.cmvn spk\): give the utterance's speaker's"):
        make_target(model, "log_ll")


def test_score_utterance_takes_what_a_notebook_passes(model_and_utt):
    r"""Reversed (negative-stride) arrays, float64 frames, an int class and NaN features were torch errors or NaN
    scores; numpy into the model itself an AttributeError."""
    import numpy as np

    from flowaccent.errors import FeatureError

    model, utt = model_and_utt
    scored = model.score_utterance(utt.feats, utt.cmvn_stats)
    flipped = model.score_utterance(utt.feats[::-1], utt.cmvn_stats)  # frames reversed: a negative stride
    torch.testing.assert_close(flipped.log_ll, model.score_utterance(utt.feats[::-1].copy(), utt.cmvn_stats).log_ll)
    torch.testing.assert_close(model.score_utterance(utt.feats.astype(np.float64), utt.cmvn_stats).log_ll,
                               scored.log_ll)
    by_int = model.score_utterance(utt.feats, utt.cmvn_stats, 1)
    torch.testing.assert_close(by_int.log_p, model.score_utterance(utt.feats, utt.cmvn_stats,
                                                                   torch.ones(len(utt.feats), dtype=torch.long)).log_p)
    bad = utt.feats.copy()
    bad[3, 2] = np.nan
    with pytest.raises(FeatureError, match="not finite in frame 3"):
        model.score_utterance(bad, utt.cmvn_stats)
    with pytest.raises(FeatureError, match="score_utterance"):
        model(utt.feats)
    frames = model.pipeline.unstandardized(torch.as_tensor(utt.feats), utt.cmvn_stats)
    torch.testing.assert_close(model.pipeline(utt.feats, utt.cmvn_stats), model.pipeline(torch.as_tensor(utt.feats),
                                                                                    utt.cmvn_stats))  # numpy too
    torch.testing.assert_close(model(frames.double()).log_ll, scored.log_ll)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_score_utterance_on_a_gpu_takes_numpy(model_and_utt):
    r"""A model moved to the GPU scoring numpy features: the pipeline ran on the CPU, the standardisation's
    statistics were on the GPU (a device mismatch, found by reading the code; no GPU to run it then)."""
    model, utt = model_and_utt
    expected = model.score_utterance(utt.feats, utt.cmvn_stats).log_ll
    try:
        on_gpu = model.to("cuda").score_utterance(utt.feats, utt.cmvn_stats, 0)
    finally:
        model.to("cpu")
    assert on_gpu.log_ll.is_cuda
    torch.testing.assert_close(model.score_utterance(utt.feats, utt.cmvn_stats, 0).log_ll, on_gpu.log_ll.cpu(),
                               rtol=1e-4, atol=1e-4)
    assert expected.shape == on_gpu.log_ll.shape
