r"""The Python API's misuse (numpy for torch, a string for a list, a wrong shape or class) is one of the toolkit's
own errors saying what to give, not a traceback from inside nflows or torch, nor a quietly wrong model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowaccent.blurmask.blur import triangular_blur
from flowaccent.errors import ConfigError, FeatureError
from flowaccent.features import FeaturePipeline, FeaturePipelineConfig
from flowaccent.flows.realnvp import ModelConfig
from flowaccent.model import FlowModel
from flowaccent.prior import PriorConfig

PIPE = FeaturePipeline(FeaturePipelineConfig(cmvn="utt", standardize=False), 40)
SMALL = ModelConfig(num_blocks=2, hidden=8)


def model(context_dim: int = 0, classes=("native", "zh")) -> FlowModel:
    torch.manual_seed(0)
    return FlowModel(PIPE, SMALL.replace(context_dim=context_dim), PriorConfig(cond_dim=4), classes)


X = torch.randn(6, 120)
CASES = {
    # was nflows' AttributeError 'numpy.ndarray' object has no attribute 'new_zeros'
    "inverse of numpy": (lambda: model().inverse(np.zeros((3, 120))), FeatureError,
                         r"expected a tensor of latents \(B, 120\), got ndarray \(torch.from_numpy\)$"),
    "inverse of another width": (lambda: model().inverse(torch.zeros(3, 7)), FeatureError,
                                 r"expected latents \(B, 120\), got \(3, 7\)"),
    "initialize of numpy": (lambda: model().initialize(np.zeros((3, 120))), FeatureError, "got ndarray"),
    # was accepted: the frames of class 5 were left out of the class means
    "initialize with no class": (lambda: model().initialize(X, torch.tensor([0, 0, 0, 1, 1, 5])), FeatureError,
                                 r"label 5 is no class \(0..1: native, zh\)"),
    "initialize with float labels": (lambda: model().initialize(X, torch.zeros(6)), FeatureError,
                                     "labels are integer class indices"),
    "sample of -1": (lambda: model().sample(-1), FeatureError, "sample takes a number of frames >= 0, got -1"),
    # was a 6-class model, one per letter
    "class names as a string": (lambda: model(classes="native"), ConfigError,
                                r"class_names is a tuple of names \(\('native',\) for one class\), got 'native'"),
    # was torch's 'Class values must be smaller than num_classes'; the wider one ran with an unused column
    "context narrower than the classes": (lambda: model(context_dim=1)(X, 1), FeatureError,
                                          r"model.context_dim 1 is not the number of classes \(2\)"),
    "context wider than the classes": (lambda: model(context_dim=3)(X, 1), FeatureError,
                                       r"model.context_dim 3 is not the number of classes \(2\)"),
    "a context of another width": (lambda: model(context_dim=3)(X, context=torch.zeros(6, 2)), FeatureError,
                                   r"context is a tensor \(6, 3\) \(model.context_dim 3\), got \(6, 2\)"),
    "a context for a flow without": (lambda: model()(X, context=torch.zeros(6, 2)), FeatureError,
                                     r"built without context \(model.context_dim 0\), given a context"),
    "a model from a path": (lambda: FlowModel.from_checkpoint("exp/final.pt"), ConfigError,
                            r"takes a checkpoint's dict, got str \(a file: flowaccent.train.checkpoint.load_model"),
    # was 'too many values to unpack'
    "fit on bare frames": (lambda: PIPE.fit([np.zeros((5, 40)), np.zeros((5, 40))]), FeatureError,
                           r"fit takes \(x \(T, D\), cmvn_stats\) pairs"),
    "a pipeline of a dict": (lambda: FeaturePipeline({"cmvn": "utt"}, 40), ConfigError,
                             r"config is a FeaturePipelineConfig \(FeaturePipelineConfig.from_dict\(d\) for a dict\)"),
    "a pipeline of a text width": (lambda: FeaturePipeline(FeaturePipelineConfig(), "40"), ConfigError,
                                   "input_dim must be a positive integer, got '40'"),
    # was AttributeError 'numpy.ndarray' object has no attribute 'detach'; a broadcast error in torch's words
    "blur of numpy": (lambda: triangular_blur(np.zeros((3, 4)), np.zeros((3, 4))), FeatureError,
                      r"the spectrogram is a torch tensor \(torch.as_tensor\(array\)\), got ndarray"),
    "blur widths of another shape": (lambda: triangular_blur(torch.zeros(3, 4), torch.ones(3, 5)), FeatureError,
                                     r"m \(3, 5\) does not broadcast to the spectrogram \(3, 4\)"),
    # said only 'expected frames (B, 120), got (6, 40)'
    "the stored features to the flow": (lambda: model()(torch.zeros(6, 40)), FeatureError,
                                        r"features of dim 40 are as stored, before the pipeline's deltas and splicing: "
                                        "score_utterance takes those"),
    # said 'got torch.int64' of a numpy array
    "deltas of numpy integers": (lambda: _add_deltas()(np.ones((5, 4), np.int64)), FeatureError,
                                 "expected floating-point features, got numpy int64"),
    # were cast by the first product, without a word
    "integer frames": (lambda: model()(torch.ones(6, 120, dtype=torch.long)), FeatureError,
                       "expected floating-point frames, got torch.int64"),
    # was AttributeError 'dict' object has no attribute 'seed'
    "a corpus of a dict": (lambda: _make_corpus()("/nonexistent/demo", {"num_sentences": 10}), ConfigError,
                           r"make_corpus: config is a SynthConfig \(SynthConfig.from_dict\(d\) for a dict\), got dict"),
    # was drawn as pairs of consecutive frames under the labels z[0], z[1]
    "first two dims of 1-d latents": (lambda: _first_dims()({"a": np.zeros((50, 1))}, "/nonexistent/fd"), ValueError,
                                      r"latents \(N, D\) with D >= 2, got \(50, 1\) for 'a'"),
    # was numpy's 'operands could not be broadcast together', naming neither set nor score
    "ratings of another length": (lambda: _rating_scatter()({"log_ll": {"zh": np.zeros(30)}}, {"zh": np.zeros(20)},
                                                            "/nonexistent/rs"), ValueError,
                                  "set 'zh': 30 log_ll scores for 20 ratings"),
    # was taken: a negative cutoff scaled every frame's gradient by a negative ratio (an ascent)
    "a negative gradient filter": (lambda: model()(X, 0, filter_threshold=-1.0), ValueError,
                                   r"threshold is a multiple of the median gradient RMS > 0, got -1.0"),
    # was AttributeError 'int' object has no attribute 'detach'
    "a blur-mask target of no tensor": (lambda: _fit_blur_mask()(lambda v: 3, torch.zeros(4, 40)), FeatureError,
                                        r"blur mask: the target returned int; it must return a float tensor"),
    # were 'max() arg is an empty sequence', KeyError 'zh', and numpy's boolean index error
    "histograms of no set": (lambda: _plots().histograms({}, "/nonexistent/h", "LogLL", "t"), ValueError,
                             r"histograms: no set to draw \(values is empty\)"),
    "histograms without a set's weights": (
        lambda: _plots().histograms({"native": np.zeros(3), "zh": np.zeros(2)}, "/nonexistent/h", "LogLL", "t",
                                    weights={"native": np.ones(3)}), ValueError,
        r"histograms: no weights for set 'zh' \(given for: 'native'\)"),
    "histogram weights of another length": (
        lambda: _plots().histograms({"zh": np.zeros(2)}, "/nonexistent/h", "LogLL", "t", weights={"zh": np.ones(3)}),
        ValueError, r"set 'zh': 3 weights for 2 values"),
    # was KeyError 'native': the reference's speakers are needed too
    "roc speakers of the others only": (
        lambda: _plots().roc_curves(np.zeros(3), {"zh": np.ones(2)}, "/nonexistent/r", "LogLL", "native",
                                    speakers={"zh": ["a", "b"]}), ValueError,
        r"roc_curves: no speakers for set 'native' \(given for: 'zh'\)"),
}


def _fit_blur_mask():
    from flowaccent.blurmask import fit_blur_mask

    return fit_blur_mask


def _plots():
    from flowaccent import plots

    return plots


def _add_deltas():
    from flowaccent.features import add_deltas

    return add_deltas


def _rating_scatter():
    from flowaccent.plots import rating_scatter

    return rating_scatter


def _make_corpus():
    from flowaccent.synth import make_corpus

    return make_corpus


def _first_dims():
    from flowaccent.plots import latents_first_dims

    return latents_first_dims


@pytest.mark.parametrize("case", CASES)
def test_misuse_is_the_toolkits_own_error(case):
    call, error, message = CASES[case]
    with pytest.raises(error, match=message):
        call()


def test_what_is_right_still_runs():
    m = model()
    m.initialize(X, torch.tensor([0, 0, 0, 1, 1, 1]))
    assert m.inverse(torch.zeros(3, 120)).shape == (3, 120) and m.sample(0).shape == (0, 120)
    assert model(context_dim=2)(X, 1).log_ll.shape == (6,)
    assert model(context_dim=3)(X, context=torch.zeros(6, 3)).log_ll.shape == (6,)  # a context of one's own
    assert FeaturePipeline(FeaturePipelineConfig(), np.int64(40)).input_dim == 40
    assert triangular_blur(torch.zeros(3, 4), torch.ones(4)).shape == (3, 4)  # widths broadcast over frames


def test_a_tsne_is_drawn_at_a_base_given_as_text(tmp_path):
    r"""Every figure took its base as a string but the t-SNE, which failed on it after its fit: 'str' object has no
    attribute 'parent'."""
    rng = np.random.default_rng(0)
    png = _plots().latents_tsne({"a": rng.normal(size=(20, 3)), "b": rng.normal(size=(20, 3))}, str(tmp_path / "t"))
    assert png == tmp_path / "t.png" and (tmp_path / "t.npz").is_file()


def test_a_pipeline_loads_from_its_file_or_a_models_checkpoint(tmp_path):
    r"""``FeaturePipeline.load`` of a missing file was torch's FileNotFoundError; of a model's ``final.pt``
    'unknown key(s) features, model, prior, train'."""
    m = model()
    m.pipeline.save(tmp_path / "pipeline.pt")
    assert FeaturePipeline.load(tmp_path / "pipeline.pt").output_dim == 120
    torch.save({"model": m.to_checkpoint(), "config": {"features": {}}}, tmp_path / "final.pt")
    assert torch.equal(FeaturePipeline.load(tmp_path / "final.pt").mean, m.pipeline.mean)
    with pytest.raises(ConfigError, match=f"{tmp_path / 'none.pt'}: no such checkpoint"):
        FeaturePipeline.load(tmp_path / "none.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match=r"other.pt: not a feature pipeline's state .*got weights"):
        FeaturePipeline.load(tmp_path / "other.pt")


def test_score_dir_takes_paths(tmp_path):
    r"""``score_dir(model, "corpus/test_zh", ...)`` was 'str' object has no attribute 'utts'; a string out_dir
    'has no attribute mkdir'."""
    from flowaccent.score.scorer import ScoreConfig, score_dir

    from ..train.conftest import write_gaussian_dir

    data = write_gaussian_dir(tmp_path / "set", np.zeros(40), np.eye(40), 2, 30, seed=0)
    scores = score_dir(model(), str(data), "set", str(tmp_path / "out"), ScoreConfig(device="cpu"), quiet=True)
    assert (tmp_path / "out" / "utt_scores.tsv").is_file() and len(scores.utts) == 2
    with pytest.raises(ConfigError, match="model is a FlowModel"):
        score_dir("exp/final.pt", str(data), "set", tmp_path / "out2")
