r"""Ratings from averaged latents: an SVR fitted on a rated set, cross-validated or applied to another."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from flowaccent.score.metrics import correlations, pearson_interval, pearson_interval_over_groups


@contextlib.contextmanager
def _global_numpy_state_kept() -> Iterator[None]:
    r"""libsvm's seed is drawn from numpy's global generator (scikit-learn's SVR takes no ``random_state``): every
    fit moved a notebook's ``np.random`` stream. Its state is put back; the fits did not depend on it (the same
    correlations after another global seed: tested)."""
    state = np.random.get_state()
    try:
        yield
    finally:
        np.random.set_state(state)


def _svr():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    return make_pipeline(StandardScaler(), SVR(C=1.0, epsilon=0.1))


def cross_validated(
    features: np.ndarray, ratings: np.ndarray, groups: Sequence[str] | None = None, folds: int = 5, seed: int = 0,
    interval: bool = True,
) -> dict[str, float]:
    r"""Correlation of ``folds``-fold cross-validated SVR predictions from utterance mean latents
    ``(N, D)`` with the ratings ``(N,)``. With ``groups`` (each utterance's speaker, ``N``) the folds split the
    speakers, so no speaker is in both a fold and the utterances that predict it (its latent signature would
    predict its rating); fewer than ``folds`` speakers: one fold each. One utterance per speaker gives the folds
    of utterances themselves. With ``interval``, the Pearson r's 95% interval too (:func:`_with_interval`)."""
    from sklearn.model_selection import cross_val_predict

    split = _speaker_folds(groups if groups is not None else range(len(ratings)), folds, seed)
    if len(split) < 2 or np.ptp(ratings) == 0:
        return _undefined(len(ratings))
    with _global_numpy_state_kept():
        predicted = cross_val_predict(_svr(), features, ratings, cv=split)
    return _with_interval(predicted, ratings, groups) if interval else correlations(predicted, ratings)


def _with_interval(predicted: np.ndarray, ratings: np.ndarray, groups: Sequence[str] | None) -> dict[str, float]:
    r"""The correlations of the predictions with the ratings and ``pearson_ci95``, the Pearson r's 95% interval:
    with ``groups``, by a bootstrap of them (:func:`~flowaccent.score.metrics.pearson_interval_over_groups`), else
    Fisher's, as ``rating``'s in ``summary.json``. The predictions held fixed: an interval of how well these
    predictions track the ratings over other speakers, not of how the fits would vary."""
    out: dict = correlations(predicted, ratings)
    if np.isnan(out["pearson"]):
        out["pearson_ci95"] = [float("nan")] * 2
    elif groups is not None:
        out["pearson_ci95"] = pearson_interval_over_groups(predicted, ratings, groups)
    else:
        out["pearson_ci95"] = pearson_interval(out["pearson"], out["n"])
    return out


def _speaker_folds(groups: Iterable, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    r"""``(train, test)`` utterance indices of shuffled K folds over the groups (in order of first appearance)."""
    from sklearn.model_selection import KFold

    blocks = _blocks(groups)
    folds = min(folds, len(blocks))
    if folds < 2:
        return []
    split = []
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(blocks))):
        split.append(tuple(np.sort(np.concatenate([blocks[i] for i in part])) for part in (train, test)))
    return split


def _blocks(groups: Iterable) -> list[np.ndarray]:
    r"""Each group's utterance indices, the groups in order of first appearance."""
    blocks: dict = {}
    for i, g in enumerate(groups):
        blocks.setdefault(g, []).append(i)
    return [np.array(b, dtype=np.int64) for b in blocks.values()]


def shuffled(
    features: np.ndarray,
    ratings: np.ndarray,
    groups: Sequence[str] | None = None,
    permutations: int = 20,
    folds: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    r""":func:`cross_validated` with the ratings shuffled, the mean over ``permutations``: what its correlation
    comes out as at this set's size with no relation between latents and ratings. Not 0: each held-out fold is
    predicted near the mean of the other folds' ratings, which moves against the fold's own, so on pure noise
    (120-d) the mean Pearson r was -0.97 at 5 utterances, -0.39 at 20, -0.19 at 50 (ad hoc, 100 draws each).
    ``svr_cv`` means something only well above this. With ``groups`` the ratings are shuffled by speaker
    (:func:`_speaker_shuffle`), as the folds split them: shuffled by utterance, 10 speakers of 5 utterances
    gave a chance level of -0.22 where the folds of speakers came out at -0.67 on noise."""
    rng = np.random.default_rng(seed)
    order = groups if groups is not None else range(len(ratings))
    runs = [cross_validated(features, _speaker_shuffle(ratings, order, rng), groups, folds, seed, interval=False)
            for _ in range(permutations)]
    mean = {k: [r[k] for r in runs if not np.isnan(r[k])] for k in ("pearson", "spearman")}
    return {**{k: float(np.mean(v)) if v else float("nan") for k, v in mean.items()},
            "n": len(ratings), "permutations": permutations}


def _speaker_shuffle(ratings: np.ndarray, groups: Iterable, rng: np.random.Generator) -> np.ndarray:
    r"""``ratings`` with the speakers shuffled: each speaker's utterances take another's ratings, in order and
    repeated cyclically where that speaker has fewer. One utterance per speaker: ``rng.permutation(ratings)``."""
    members = _blocks(groups)
    out = np.empty_like(ratings)
    for target, source in zip(members, [members[p] for p in rng.permutation(len(members))]):
        out[target] = ratings[np.resize(source, len(target))]
    return out


def transfer(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
    test_groups: Sequence[str] | None = None,
) -> dict[str, float]:
    r"""Correlation with ``test_y`` of an SVR fitted on one rated set and applied to another, and its interval
    (:func:`_with_interval`, over ``test_groups``: the speakers of the set it is applied to)."""
    if len(train_y) < 3 or np.ptp(train_y) == 0:
        return _undefined(len(test_y))
    with _global_numpy_state_kept():
        predicted = _svr().fit(train_x, train_y).predict(test_x)
    return _with_interval(predicted, test_y, test_groups)


def _undefined(n: int) -> dict[str, float]:
    r"""No correlation (too few utterances or ratings without spread), for ``n`` utterances."""
    return {"pearson": float("nan"), "spearman": float("nan"), "n": n, "pearson_ci95": [float("nan")] * 2}
