r"""The diagonal-GMM baseline: trained on the same features as the flow, scored the same way."""

from __future__ import annotations

import numpy as np
import torch

from flowaccent.data.datadir import DataDir
from flowaccent.data.stream import iter_utterances
from flowaccent.features.pipeline import FeaturePipeline


def sample_frames(dirs: list[DataDir], pipeline: FeaturePipeline, max_frames: int, seed: int) -> np.ndarray:
    r"""Up to ``max_frames`` pipeline frames ``(N, D)``, evenly from every utterance of ``dirs``."""
    total = sum(sum(d.utt2num_frames().values()) for d in dirs)
    keep = min(1.0, max_frames / max(total, 1))
    rng = np.random.default_rng(seed)
    parts = []
    for data in dirs:
        for utt in iter_utterances(data, pipeline.input_dim, pipeline.config.cmvn == "spk"):
            x = pipeline(torch.from_numpy(utt.feats), utt.cmvn_stats).double().numpy()
            parts.append(x[rng.random(len(x)) < keep])
    return np.concatenate(parts)


def fit_gmm(frames: np.ndarray, components: int, seed: int):
    r"""A diagonal-covariance ``sklearn.mixture.GaussianMixture`` fitted on ``frames`` ``(N, D)``."""
    from sklearn.mixture import GaussianMixture

    gmm = GaussianMixture(components, covariance_type="diag", max_iter=100, reg_covar=1e-4, random_state=seed)
    return gmm.fit(frames)


def gmm_utterance_log_ll(gmm, data: DataDir, pipeline: FeaturePipeline) -> dict[str, float]:
    r"""Mean per-frame GMM log-likelihood of every utterance (in the flow's standardised space
    plus the standardisation's log-determinant, so it is comparable to the flow's ``log_ll``)."""
    offset = float(pipeline.log_abs_det())
    out = {}
    for utt in iter_utterances(data, pipeline.input_dim, pipeline.config.cmvn == "spk"):
        x = pipeline(torch.from_numpy(utt.feats), utt.cmvn_stats).double().numpy()
        out[utt.utt] = float(gmm.score_samples(x).mean() + offset)
    return out
