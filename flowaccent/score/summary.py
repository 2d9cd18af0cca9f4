r"""``summary.json``: per-set means, Gaussianity of latents, detection AUCs and rating correlations.

Built from the files scoring wrote (``utt_scores.tsv``, ``latents.npy``; the regressions from
``utt_latent_means.npy``), so every number in it can be recomputed from them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from flowaccent.score.metrics import (
    auc_interval,
    correlations,
    detection_auc,
    moments,
    pearson_interval,
    pearson_interval_over_groups,
    unit_gaussian_log_p,
)
from flowaccent.score.tables import read_tsv

#: Utterance scores compared across sets, when present: higher = more native-like.
UTT_SCORES = ("log_ll", "llr", "gmm_log_ll")


def set_summary(set_dir: Path, dim: int, cond_dim: int, table: dict[str, Any] | None = None) -> dict[str, Any]:
    r"""Frame-weighted means of ``set_dir/utt_scores.tsv`` (``table``: as :func:`read_tsv` read it, when it has)
    and moments of ``latents.npy``."""
    table = read_tsv(set_dir / "utt_scores.tsv") if table is None else table
    frames = table["num_frames"]
    total = frames.sum()
    out: dict[str, Any] = {"num_utts": len(frames), "num_frames": int(total)}
    for key in ("log_ll", "log_p", "log_det", "nll"):
        out[key] = float((table[key] * frames).sum() / total)
    out["log_ll_per_dim"] = out["log_ll"] / dim
    out["log_p_reference"] = unit_gaussian_log_p(dim)
    latents = np.load(set_dir / "latents.npy")
    out["num_latents"] = len(latents)  # the frames the moments are over (a sample of at most max_latents)
    out.update(moments(latents))
    if 0 < cond_dim < dim:
        c, r = moments(latents[:, :cond_dim]), moments(latents[:, cond_dim:])
        out.update({"skew_c": c["skew"], "kurtosis_c": c["kurtosis"], "skew_r": r["skew"], "kurtosis_r": r["kurtosis"]})
    return out


def set_accent(accents: dict[str, str]) -> str | None:
    r"""The accent of most of a set's utterances (its ``utt2accent`` values; ties: the first in sorted order),
    or None without a ``utt2accent``."""
    counts = Counter(accents.values())
    return min(counts, key=lambda a: (-counts[a], a)) if counts else None


def utterance_scores(table: dict[str, Any]) -> dict[str, np.ndarray]:
    r"""The per-utterance scores present in a table (``log_ll``, ``llr``, ...)."""
    return {k: np.asarray(table[k]) for k in UTT_SCORES if k in table}


def detection(
    reference: dict[str, np.ndarray], other: dict[str, np.ndarray], reference_speakers=None, other_speakers=None
) -> dict[str, Any]:
    r"""AUC of separating ``other`` from ``reference`` by each utterance score (``auc`` is by ``log_ll``), and each
    one's 95% confidence interval ``[low, high]`` (``ci95``, :func:`~flowaccent.score.metrics.auc_interval`: over
    the utterances' speakers where ``reference_speakers`` and ``other_speakers`` give them, else DeLong's)."""
    by_score = {k: detection_auc(reference[k], other[k]) for k in reference if k in other}
    ci95 = {k: auc_interval(reference[k], other[k], reference_speakers, other_speakers) for k in by_score}
    return {"score": "log_ll", "auc": by_score.get("log_ll"), "by_score": by_score, "ci95": ci95}


def rating(scores: dict[str, np.ndarray], ratings: np.ndarray, speakers=None) -> dict[str, Any]:
    r"""Pearson/Spearman of each utterance score with ``utt2score`` ratings, and Pearson's 95% interval
    (``pearson_ci95``): by a bootstrap of the utterances' ``speakers`` where given
    (:func:`~flowaccent.score.metrics.pearson_interval_over_groups`), else Fisher's
    (:func:`~flowaccent.score.metrics.pearson_interval`)."""
    out = {k: correlations(v, ratings) for k, v in scores.items()}
    for k, c in out.items():
        c["pearson_ci95"] = (pearson_interval_over_groups(scores[k], ratings, speakers) if speakers is not None
                             and not np.isnan(c["pearson"]) else pearson_interval(c["pearson"], c["n"]))
    return out
