r"""The diagonal-GMM baseline: trained on the same features as the flow, scored the same way.

scikit-learn fits it (:func:`fit_gmm`); its parameters are kept as a :class:`DiagonalGmm`, which
scores in torch. Per utterance, the features run in torch and sklearn's ``score_samples`` in
numpy's BLAS, and interleaving the two libraries' thread pools made each wait for the other's idle
threads: ~2 s for a set of 160 demo utterances, against ~0.1 s with the scoring in torch too
(``benchmarks/bench_baseline.py``). The fit costs ~11 s per model on the demo corpus whatever the
scored sets, so :func:`cached_fit` keeps it next to the model, keyed on the frames it was fitted on.
:func:`experiment_baseline` is the fit ``flowaccent score --baseline gmm`` uses for a trained model: on its
training data, its validation utterances left out. It keeps a second key beside the frames', of what the frames are
drawn from (the training dirs' tables and archives, as ``score --resume`` tells data apart; the pipeline; the split):
where that matches, the fit is loaded without reading the training data (sampling the frames read all of it, each
run, the fit kept or not).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from flowaccent.data.atomic import atomic_path
from flowaccent.data.datadir import UNUSED_BY_MODELS, DataDir, load_data_dir
from flowaccent.data.fingerprint import dir_fingerprint
from flowaccent.data.kaldi_io import ScpEntry
from flowaccent.data.specs import parse_data_specs
from flowaccent.data.stream import iter_utterances
from flowaccent.errors import ConfigError
from flowaccent.features.pipeline import FeaturePipeline
from flowaccent.train.checkpoint import load_checkpoint
from flowaccent.train.config import ExperimentConfig
from flowaccent.train.frames import held_out, validation_key
from flowaccent.words import counted

#: sklearn's ``GaussianMixture`` settings of the baseline (besides the number of components and the seed).
FIT_OPTIONS = {"covariance_type": "diag", "max_iter": 100, "reg_covar": 1e-4}
#: The baseline ``flowaccent score --baseline gmm`` fits: its components, and the most training frames it samples.
COMPONENTS = 32
MAX_FRAMES = 100_000


@dataclasses.dataclass(frozen=True)
class DiagonalGmm:
    r"""A fitted diagonal-covariance GMM (float64).

    Attributes:
        weights: ``(K,)`` mixture weights.
        means: ``(K, D)``.
        variances: ``(K, D)``.
    """

    weights: Tensor
    means: Tensor
    variances: Tensor

    def log_density(self, x: Tensor) -> Tensor:
        r"""Per-frame log-density ``(N, D) -> (N,)`` in float64: sklearn's ``score_samples`` (the same expansion
        of the squared distance into two products)."""
        x = x.to(torch.float64)
        precisions = self.variances.reciprocal()
        constant = (
            self.weights.log()
            - 0.5 * (self.means.shape[1] * math.log(2 * math.pi) + self.variances.log().sum(1))
            - 0.5 * (self.means.square() * precisions).sum(1)
        )
        quadratic = (x * x) @ precisions.T - 2 * x @ (self.means * precisions).T  # (N, K)
        return torch.logsumexp(constant - 0.5 * quadratic, dim=1)

    @classmethod
    def from_sklearn(cls, gmm) -> DiagonalGmm:
        r"""The parameters of a fitted ``GaussianMixture(covariance_type="diag")``."""
        return cls(*(torch.from_numpy(np.asarray(a, dtype=np.float64)) for a in (gmm.weights_, gmm.means_,
                                                                                gmm.covariances_)))

    def arrays(self) -> dict[str, np.ndarray]:
        r"""``{field: array}``, as :meth:`from_arrays` takes them (what :func:`cached_fit` saves)."""
        return {f.name: getattr(self, f.name).numpy() for f in dataclasses.fields(self)}

    @classmethod
    def from_arrays(cls, arrays) -> DiagonalGmm:
        r"""The GMM of :meth:`arrays` (a mapping with at least those keys, e.g. a loaded ``.npz``)."""
        return cls(**{f.name: torch.from_numpy(arrays[f.name]) for f in dataclasses.fields(cls)})


def sample_frames(
    dirs: list[DataDir],
    pipeline: FeaturePipeline,
    max_frames: int,
    seed: int,
    valid_fraction: float = 0.0,
    valid_by: str = "utterance",
) -> np.ndarray:
    r"""Up to ``max_frames`` pipeline frames ``(N, D)``, evenly from every utterance of ``dirs`` but those a
    flow trained with ``train.valid_fraction`` = ``valid_fraction`` (and ``train.valid_by`` = ``valid_by``)
    held out for its validation."""

    def held(data: DataDir, utt: str) -> bool:
        return held_out(validation_key(utt, data.utt2spk[utt], valid_by), valid_fraction)

    total = sum(n for d in dirs for u, n in d.utt2num_frames().items() if not held(d, u))
    keep = min(1.0, max_frames / max(total, 1))
    rng = np.random.default_rng(seed)
    parts = []
    for data in dirs:
        for utt in iter_utterances(data, pipeline.input_dim, pipeline.config.cmvn == "spk"):
            if held(data, utt.utt):
                continue
            x = pipeline(torch.from_numpy(utt.feats), utt.cmvn_stats).double().numpy()
            parts.append(x[rng.random(len(x)) < keep])
    return np.concatenate(parts)


def fit_gmm(frames: np.ndarray, components: int, seed: int) -> DiagonalGmm:
    r"""A diagonal-covariance GMM fitted on ``frames`` ``(N, D)`` by ``sklearn.mixture.GaussianMixture``. A fit whose
    EM stops at ``FIT_OPTIONS["max_iter"]`` before its tolerance is met says so in a line of its own (scikit-learn's
    ConvergenceWarning, its source line and 'try different init parameters' reached the recipes' logs)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    gmm = GaussianMixture(components, random_state=seed, **FIT_OPTIONS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(frames)
    if not gmm.converged_:
        print(f"score: note: the GMM baseline's EM stopped at its limit of {counted(gmm.n_iter_, 'iteration')} "
              f"before its tolerance ({gmm.tol:g} nats per frame) was met; its scores are those of that fit",
              file=sys.stderr)
    return DiagonalGmm.from_sklearn(gmm)


def cached_fit(path: Path, frames: np.ndarray, components: int, seed: int, sources: str = "",
               quiet: bool = True) -> tuple[DiagonalGmm, bool]:
    r"""``fit_gmm(frames, components, seed)``, kept in ``path`` (``.npz``) with a key of its inputs (the frames'
    bytes, the settings, sklearn's version): a later call with the same key loads it instead of fitting
    again. Returns ``(gmm, whether it was loaded)``. A ``path`` that cannot be written (a read-only model
    folder) only costs the saving. ``sources``: the key of what the frames were drawn from, kept with it
    (:func:`kept_for_sources`); ``quiet``: no line before a fit."""
    import sklearn

    digest = hashlib.sha256(np.ascontiguousarray(frames).view(np.uint8))
    digest.update(repr((frames.shape, components, seed, sorted(FIT_OPTIONS.items()), sklearn.__version__)).encode())
    key = digest.hexdigest()
    kept = _read_kept(path)  # none yet, or not one of ours: None
    if kept is not None and kept[0] == key:
        gmm, fitted = kept[1], False
    else:
        if not quiet:  # minutes on a large corpus, before any bar
            print(f"score: fitting the GMM baseline ({components} components) on {len(frames):,} frames of the "
                  f"model's training data; kept in {path} for later runs", file=sys.stderr, flush=True)
        gmm, fitted = fit_gmm(frames, components, seed), True
    if fitted or kept[2] != sources:
        try:
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.savez(f, key=key, sources=sources, frames=len(frames), **gmm.arrays())
        except OSError:
            pass
    return gmm, not fitted


def kept_for_sources(path: Path, sources: str) -> tuple[DiagonalGmm, int] | None:
    r"""``(gmm, frames)`` of the fit kept in ``path`` whose frames were drawn from ``sources`` (the key
    :func:`cached_fit` kept with it), without drawing them; None where there is none."""
    kept = _read_kept(path)
    if kept is None or not sources or kept[2] != sources or kept[3] is None:
        return None
    return kept[1], kept[3]


def _read_kept(path: Path) -> tuple[str, DiagonalGmm, str, int | None] | None:
    r"""``(key, gmm, sources, frames)`` of the fit :func:`cached_fit` kept in ``path`` (an earlier version's: no
    sources, ``""``, nor frames, None); None where there is none it can read, or its parameters are not a GMM's
    (NaN weights under a good key were loaded, and every utterance's GMM LogLL was NaN with exit 0)."""
    try:
        with np.load(path) as saved:
            sources = str(saved["sources"]) if "sources" in saved else ""
            frames = int(saved["frames"]) if "frames" in saved else None
            kept = str(saved["key"]), DiagonalGmm.from_arrays(saved), sources, frames
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return kept if _is_gmm(kept[1]) else None


def _is_gmm(gmm: DiagonalGmm) -> bool:
    r"""Whether ``gmm``'s parameters are a diagonal GMM's: shapes ``(K,)``, ``(K, D)``, ``(K, D)``, all finite,
    weights positive and summing to 1, variances positive."""
    weights, means, variances = gmm.weights, gmm.means, gmm.variances
    shaped = weights.ndim == 1 and means.ndim == 2 and means.shape == variances.shape and len(weights) == len(means)
    return bool(shaped and len(weights) and all(torch.isfinite(a).all() for a in (weights, means, variances))
                and (weights > 0).all() and abs(float(weights.double().sum()) - 1) < 1e-6 and (variances > 0).all())


def load_kept_gmm(path: Path) -> DiagonalGmm:
    r"""The GMM :func:`cached_fit` kept in ``path``, whatever its key."""
    kept = _read_kept(path)
    if kept is None:
        raise ConfigError(f"{path}: not a readable GMM fit (damaged?); remove it to fit again")
    return kept[1]


def gmm_utterance_log_ll(gmm: DiagonalGmm, data: DataDir, pipeline: FeaturePipeline) -> dict[str, float]:
    r"""Mean per-frame GMM log-likelihood of every utterance (in the flow's standardised space
    plus the standardisation's log-determinant, so it is comparable to the flow's ``log_ll``)."""
    offset = float(pipeline.log_abs_det())
    out = {}
    for utt in iter_utterances(data, pipeline.input_dim, pipeline.config.cmvn == "spk"):
        x = pipeline(torch.from_numpy(utt.feats), utt.cmvn_stats)
        out[utt.utt] = float(gmm.log_density(x).mean()) + offset
    return out


#: The fitted baseline GMM, kept in the model's folder (:func:`cached_fit`).
GMM_FILE = "baseline_gmm.npz"


#: The GMM baseline's frame sample and fit: one fit per model, whatever the latent sample's ``--seed`` (a new one
#: fitted it again, 11 s on the demo, and moved its LogLL by 0.3 nats).
GMM_SEED = 0


def experiment_baseline(model, exp: Path, checkpoint=None, quiet: bool = True) -> tuple[DiagonalGmm, dict[str, Any]]:
    r"""The diagonal GMM fitted on the model's training data (``EXP_DIR/data.txt``), or the one fitted on it
    before (``EXP_DIR/baseline_gmm.npz``), and what the summary says of it. Where the training dirs are gone
    and a fit is kept, that fit is used unchecked, with a warning. ``quiet``: no line before a fit."""
    data_file, kept = exp / "data.txt", exp / GMM_FILE
    if not data_file.exists():
        raise ConfigError(f"{data_file}: missing; the GMM baseline needs the training data dirs")
    paths = [p for _, p in parse_data_specs(data_file.read_text().splitlines())]
    info = {"kind": "gmm", "covariance": "diag", "components": COMPONENTS, "trained_on": [str(p) for p in paths],
            "file": str(kept)}
    gone = [p for p in paths if not p.is_dir()]
    if gone:
        if not kept.is_file():
            raise ConfigError(f"score: --baseline gmm: the model's training data dir {gone[0]} (in {data_file}) is "
                              "gone and no fit of it is kept; give it back (or edit data.txt if it moved)")
        print(f"score: warning: --baseline gmm: the model's training data dir {gone[0]} is gone; using the GMM "
              f"fitted on it before ({kept}), unchecked", file=sys.stderr)
        return load_kept_gmm(kept), {**info, "frames": None, "loaded": True}
    dirs = [load_data_dir(p, unused=UNUSED_BY_MODELS) for p in paths]
    held, by = _validation_split(exp, checkpoint)  # the flow's validation utterances: the baseline leaves them out too
    split = {"valid_fraction": held} | ({"valid_by": by} if by != "utterance" else {})
    sources = _sources_key(dirs, model.pipeline, held, by)
    if (found := kept_for_sources(kept, sources)) is not None:
        return found[0], {**info, "frames": found[1], **split, "loaded": True}
    frames = sample_frames(dirs, model.pipeline, MAX_FRAMES, GMM_SEED, held, by)
    if len(frames) < COMPONENTS:  # scikit-learn's traceback: 'Expected n_samples >= n_components'
        raise ConfigError(f"score: --baseline gmm: {len(frames)} frames of the model's training data (its validation "
                          f"utterances left out) for a GMM of {COMPONENTS} components: too few; score without it")
    gmm, loaded = cached_fit(kept, frames, COMPONENTS, GMM_SEED, sources, quiet)
    return gmm, {**info, "frames": len(frames), **split, "loaded": loaded}


def _sources_key(dirs: list[DataDir], pipeline: FeaturePipeline, held: float, by: str) -> str:
    r"""The key of what :func:`sample_frames` would draw from: each dir's tables and archives, by where they are,
    their sizes and modification times (``score --resume``'s :func:`~flowaccent.data.fingerprint.dir_fingerprint`),
    the pipeline's config and statistics, the split, and the sample's and fit's settings. "" (no key: the frames are
    drawn each time) where an scp holds a pipe, whose output no fingerprint sees (a stale fit was loaded)."""
    import sklearn

    with_cmvn = pipeline.config.cmvn == "spk"
    scps = ["feats.scp"] + (["cmvn.scp"] if with_cmvn else [])
    if any(ScpEntry(key, value).is_pipe for data in dirs for name in scps for key, value in data.table(name).items()):
        return ""
    digest = hashlib.sha256()
    for data in dirs:
        parts = sorted(dir_fingerprint(data, with_cmvn, exact=True).items())
        digest.update(f"{data.path.resolve()} {parts}\n".encode())
    digest.update(repr((pipeline.config.to_dict(), pipeline.input_dim, held, by, MAX_FRAMES, GMM_SEED, COMPONENTS,
                        sorted(FIT_OPTIONS.items()), sklearn.__version__)).encode())
    for name, buffer in sorted(pipeline.state_dict().items()):
        digest.update(name.encode() + buffer.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def _validation_split(exp: Path, checkpoint=None) -> tuple[float, str]:
    r"""``train.valid_fraction`` and ``train.valid_by`` of the run in ``exp``: its ``config.yaml``, else the
    config its checkpoint records (nothing held out where neither says)."""
    conf = exp / "config.yaml"
    if conf.is_file():
        train = ExperimentConfig.from_yaml(conf, "score").train
    else:
        recorded = load_checkpoint(checkpoint or exp / "final.pt").get("config")
        if not isinstance(recorded, dict):
            return 0.0, "utterance"
        train = ExperimentConfig.from_dict(recorded).train
    return train.valid_fraction, train.valid_by
