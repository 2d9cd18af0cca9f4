r"""The GMM baseline: scored in torch as scikit-learn scores it, and its fit kept beside the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowaccent.score import baseline
from flowaccent.score.baseline import DiagonalGmm, cached_fit, fit_gmm

pytest.importorskip("sklearn")


def _frames(n: int = 600, dim: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(-2, 0.5, (n // 2, dim)), rng.normal(1, 2.0, (n - n // 2, dim))])


def test_log_density_is_sklearns_score_samples():
    from sklearn.mixture import GaussianMixture

    frames = _frames()
    gmm = GaussianMixture(4, random_state=0, **baseline.FIT_OPTIONS).fit(frames)
    x = _frames(50, seed=1) * 3  # far from the means too: the log-sum-exp has to hold
    ours = DiagonalGmm.from_sklearn(gmm).log_density(torch.from_numpy(x))
    assert ours.dtype == torch.float64 and ours.shape == (50,)
    np.testing.assert_allclose(ours.numpy(), gmm.score_samples(x), rtol=1e-12, atol=1e-9)
    # float32 frames (the pipeline's) are scored in float64
    np.testing.assert_allclose(DiagonalGmm.from_sklearn(gmm).log_density(torch.from_numpy(x).float()).numpy(),
                               gmm.score_samples(x.astype(np.float32).astype(np.float64)), rtol=1e-12, atol=1e-9)


def test_log_density_closed_form_one_component():
    mean, var = torch.tensor([[0.5, -1.0]], dtype=torch.float64), torch.tensor([[2.0, 0.25]], dtype=torch.float64)
    gmm = DiagonalGmm(torch.ones(1, dtype=torch.float64), mean, var)
    x = torch.tensor([[0.0, 0.0], [1.0, -2.0]], dtype=torch.float64)
    expected = torch.distributions.Normal(mean[0], var[0].sqrt()).log_prob(x).sum(1)
    torch.testing.assert_close(gmm.log_density(x), expected, rtol=1e-12, atol=1e-12)


def test_fit_stopped_before_converging_says_so_in_a_line_of_its_own(monkeypatch, capsys, recwarn):
    monkeypatch.setitem(baseline.FIT_OPTIONS, "max_iter", 1)
    fit_gmm(_frames(), 4, 0)
    assert not [w for w in recwarn if "converge" in str(w.message)]  # sklearn's ConvergenceWarning: not shown
    assert capsys.readouterr().err == ("score: note: the GMM baseline's EM stopped at its limit of 1 iteration "
                                       "before its tolerance (0.001 nats per frame) was met; its scores are those of "
                                       "that fit\n")
    monkeypatch.undo()
    fit_gmm(_frames(), 2, 0)  # converged: nothing said
    assert capsys.readouterr().err == ""


def _same(a: DiagonalGmm, b: DiagonalGmm) -> bool:
    return all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("weights", "means", "variances"))


def test_cached_fit_reuses_the_fit_of_the_same_frames_only(tmp_path, monkeypatch):
    path = tmp_path / "gmm.npz"
    frames = _frames()
    first, loaded = cached_fit(path, frames, 3, seed=0)
    assert not loaded and path.exists() and _same(first, fit_gmm(frames, 3, 0))
    fits = []
    monkeypatch.setattr(baseline, "fit_gmm", lambda *a: fits.append(a) or fit_gmm(*a))
    again, loaded = cached_fit(path, frames, 3, seed=0)
    assert loaded and not fits and _same(again, first)
    other = frames.copy()
    other[0, 0] += 1e-9  # other frames, another setting: fitted again
    for args in ((other, 3, 0), (frames, 4, 0), (frames, 3, 1)):
        assert not cached_fit(path, *args)[1]
    assert len(fits) == 3


def test_a_fit_is_said_before_it_starts_and_kept_with_what_its_frames_came_from(tmp_path, capsys):
    r"""The first fit of a large corpus took minutes before any bar, without a word."""
    path = tmp_path / "gmm.npz"
    frames = _frames()
    cached_fit(path, frames, 3, seed=0, sources="abc", quiet=False)
    assert capsys.readouterr().err == (f"score: fitting the GMM baseline (3 components) on {len(frames):,} frames of "
                                       f"the model's training data; kept in {path} for later runs\n")
    found = baseline.kept_for_sources(path, "abc")
    assert found is not None and found[1] == len(frames) and baseline.kept_for_sources(path, "abd") is None
    assert cached_fit(path, frames, 3, seed=0, sources="abd", quiet=False)[1]  # the same frames: loaded, not said
    assert capsys.readouterr().err == "" and baseline.kept_for_sources(path, "abd") is not None


def test_cached_fit_survives_a_damaged_or_unwritable_file(tmp_path):
    path = tmp_path / "gmm.npz"
    path.write_bytes(b"not a zip file")
    gmm, loaded = cached_fit(path, _frames(), 2, seed=0)
    assert not loaded and cached_fit(path, _frames(), 2, seed=0)[1]  # replaced by a good one
    blocked = tmp_path / "a file"
    blocked.write_text("")  # a path under a file can be neither read nor written (as root too)
    again, loaded = cached_fit(blocked / "gmm.npz", _frames(), 2, seed=0)
    assert not loaded and _same(again, gmm)


def test_a_kept_fit_that_is_not_a_gmm_is_fitted_again(tmp_path):
    r"""A kept fit with NaN weights (or a negative variance, or weights not summing to 1) under a good key was
    loaded: every GMM LogLL NaN, the summary's null, exit 0. It is fitted again, and refused where it cannot be."""
    from flowaccent.errors import ConfigError

    path = tmp_path / "gmm.npz"
    frames = _frames()
    good, _ = cached_fit(path, frames, 3, seed=0, sources="abc")
    with np.load(path) as saved:
        arrays = dict(saved)
    for field, value in (("weights", np.nan), ("variances", -1.0), ("weights", 0.5), ("means", np.inf)):
        damaged = {**arrays, field: np.full_like(arrays[field], value)}
        np.savez(path, **damaged)
        assert baseline.kept_for_sources(path, "abc") is None, field
        with pytest.raises(ConfigError, match=r"gmm.npz: not a readable GMM fit \(damaged\?\); remove it to fit"):
            baseline.load_kept_gmm(path)
        again, loaded = cached_fit(path, frames, 3, seed=0, sources="abc")
        assert not loaded and _same(again, good) and baseline.kept_for_sources(path, "abc") is not None


def test_a_piped_feats_scp_gives_no_key_of_its_sources(tmp_path):
    r"""A pipe's output is seen by no fingerprint (taken as written): with the files behind it rewritten, the stale
    fit was loaded by the sources' key. Such data is drawn each time (and a fit of the same frames still loaded)."""
    from flowaccent.data.datadir import UNUSED_BY_MODELS, load_data_dir
    from flowaccent.features import FeaturePipeline, FeaturePipelineConfig

    for name, text in (("utt2spk", "u1 s1\nu2 s1\n"), ("spk2utt", "s1 u1 u2\n"),
                       ("feats.scp", f"u1 {tmp_path}/a.ark:17\nu2 tail -c +17 {tmp_path}/b.ark |\n")):
        (tmp_path / name).write_text(text)
    pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="utt"), 40)
    data = load_data_dir(tmp_path, unused=UNUSED_BY_MODELS)
    assert baseline._sources_key([data], pipeline, 0.1, "utterance") == ""
    (tmp_path / "feats.scp").write_text(f"u1 {tmp_path}/a.ark:17\nu2 {tmp_path}/b.ark:17\n")
    data = load_data_dir(tmp_path, unused=UNUSED_BY_MODELS)
    assert len(baseline._sources_key([data], pipeline, 0.1, "utterance")) == 64
