r"""Is the accent signal of the demo corpus real? A diagonal GMM trained on native frames answers.

A GMM with diagonal covariances is fitted to the log mel filterbanks of
``train_native``; every test utterance is scored by its mean frame
log-likelihood. If the transfer rules make speech measurably non-native,
held-out native utterances score higher than ``test_zh`` and ``test_ja``
(utterance-level AUC above 0.5) and, among accented utterances, a stronger
accent (lower ``utt2score``) goes with a lower likelihood: the Spearman
correlation of ``utt2score`` with the mean frame NLL (the lab's "LogLL") is
negative.

Run on a corpus made by ``flowaccent synth``::

    python -m flowaccent.synth.check OUT_DIR
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from flowaccent.data.audio import read_wav
from flowaccent.data.datadir import load_data_dir
from flowaccent.errors import FlowAccentError
from flowaccent.features.fbank import compute_fbank

#: The test sets scored, native first.
TEST_SETS = ("test_native", "test_zh", "test_ja")


@dataclasses.dataclass(frozen=True)
class AccentSignal:
    r"""The measured accent signal.

    Attributes:
        mean_loglik: per test set, the mean over utterances of the mean frame log-likelihood (nats).
        auc: per accent (``"zh"``, ``"ja"``), the AUC of native vs accented utterances
            with the log-likelihood as the score of "native".
        spearman_score_nll: Spearman correlation of ``utt2score`` with the mean frame
            NLL over the accented test utterances (negative when the signal is real).
        paired_win_rate: per accent, the fraction of accented utterances whose native
            twin (same voice, same sentence: ``zh-m07-0003`` and ``native-m07-0003``)
            has the higher log-likelihood.
        num_utts: utterances scored per test set.
        num_train_frames: frames the GMM was fitted on.
    """

    mean_loglik: dict[str, float]
    auc: dict[str, float]
    spearman_score_nll: float
    paired_win_rate: dict[str, float]
    num_utts: dict[str, int]
    num_train_frames: int

    def summary(self) -> str:
        r"""A few lines for a terminal or a log."""
        lines = [f"GMM fitted on {self.num_train_frames} train_native frames"]
        for name, value in self.mean_loglik.items():
            lines.append(f"  {name}: {self.num_utts[name]} utts, mean frame log-lik {value:.3f}")
        lines += [f"  AUC native vs {accent}: {v:.3f}" for accent, v in self.auc.items()]
        lines += [f"  paired win rate native vs {a}: {v:.3f}" for a, v in self.paired_win_rate.items()]
        lines.append(f"  Spearman(utt2score, NLL) over accented utts: {self.spearman_score_nll:.3f}")
        return "\n".join(lines)


def utterance_features(data_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    r"""40-d log mel filterbanks ``(T, 40)`` of every utterance, and ``utt2score``."""
    data = load_data_dir(data_dir, require=("wav.scp", "utt2score"))
    wavs = data.table("wav.scp")
    feats = {}
    for utt in data.utts:
        samples, rate = read_wav(wavs[utt], f"{data_dir}/wav.scp: utterance '{utt}'")
        feats[utt] = compute_fbank(samples, rate)
    scores = {utt: float(v) for utt, v in data.table("utt2score").items()}
    return feats, scores


def accent_signal(
    corpus_dir: str | Path, num_components: int = 32, max_train_frames: int = 200_000, seed: int = 0
) -> AccentSignal:
    r"""Fits a diagonal GMM on ``train_native`` frames and scores the test sets.

    Arguments:
        corpus_dir: a corpus made by :func:`flowaccent.synth.make_corpus`.
        num_components: Gaussians in the mixture.
        max_train_frames: frames drawn at random from ``train_native`` for the fit.
        seed: random state of the frame draw and of the GMM.

    Returns:
        an :class:`AccentSignal`.
    """
    try:
        from scipy.stats import spearmanr
        from sklearn.metrics import roc_auc_score
        from sklearn.mixture import GaussianMixture
    except ImportError:
        raise FlowAccentError("the accent check needs scikit-learn: pip install 'flowaccent[test]'") from None
    corpus = Path(corpus_dir)
    train, _ = utterance_features(corpus / "train_native")
    frames = np.concatenate(list(train.values()))
    rng = np.random.default_rng(seed)
    if len(frames) > max_train_frames:
        frames = frames[rng.choice(len(frames), max_train_frames, replace=False)]
    gmm = GaussianMixture(num_components, covariance_type="diag", max_iter=200, random_state=seed)
    try:
        gmm.fit(frames)
    except ValueError as error:  # scikit-learn's traceback: 'some components have ill-defined empirical covariance'
        why = ("; a corpus made with --noise-std 0 has constant silent frames, which no GMM fits"
               if "ill-defined empirical covariance" in str(error) else "")
        raise FlowAccentError(f"{corpus}: the check's GMM cannot be fitted on its train_native features "
                              f"({error}){why}") from None

    by_utt: dict[str, dict[str, float]] = {}
    loglik: dict[str, np.ndarray] = {}
    scores: dict[str, np.ndarray] = {}
    for name in TEST_SETS:
        feats, utt2score = utterance_features(corpus / name)
        by_utt[name] = {utt: float(gmm.score_samples(f).mean()) for utt, f in feats.items()}
        loglik[name] = np.array(list(by_utt[name].values()))
        scores[name] = np.array([utt2score[utt] for utt in feats])
    auc, wins = {}, {}
    native = {utt.split("-", 1)[1]: v for utt, v in by_utt["test_native"].items()}
    for name in TEST_SETS[1:]:
        accent = name.removeprefix("test_")
        labels = np.r_[np.ones(len(loglik["test_native"])), np.zeros(len(loglik[name]))]
        auc[accent] = float(roc_auc_score(labels, np.r_[loglik["test_native"], loglik[name]]))
        pairs = [(native[u.split("-", 1)[1]], v) for u, v in by_utt[name].items() if u.split("-", 1)[1] in native]
        wins[accent] = float(np.mean([a > b for a, b in pairs])) if pairs else float("nan")
    accented_scores = np.concatenate([scores[name] for name in TEST_SETS[1:]])
    accented_nll = -np.concatenate([loglik[name] for name in TEST_SETS[1:]])
    rho = float(spearmanr(accented_scores, accented_nll).statistic)
    return AccentSignal(
        mean_loglik={name: float(v.mean()) for name, v in loglik.items()},
        auc=auc,
        spearman_score_nll=rho,
        paired_win_rate=wins,
        num_utts={name: len(v) for name, v in loglik.items()},
        num_train_frames=len(frames),
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m flowaccent.synth.check CORPUS_DIR")
    try:
        print(accent_signal(sys.argv[1]).summary())
    except FlowAccentError as error:
        sys.exit(f"check: error: {error}")
