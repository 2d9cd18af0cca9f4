r"""The accent signal of the demo corpus is real: a diagonal GMM on native frames tells it apart.

Runs :func:`flowaccent.synth.check.accent_signal` (the script of
``docs/demo-corpus.md``) on a small corpus: held-out native utterances must get
a higher mean frame log-likelihood than ``test_zh`` and ``test_ja``, and among
accented utterances a lower ``utt2score`` must go with a higher NLL.
"""

from __future__ import annotations

import pytest

from flowaccent.synth.plan import SynthConfig

SMALL = SynthConfig(num_sentences=150, seed=0, test_fraction=0.4, train_zh_fraction=0.1, dev_fraction=0.05)


def test_gmm_on_native_frames_separates_accents(tmp_path):
    pytest.importorskip("espeakng_loader")
    pytest.importorskip("sklearn")
    from flowaccent.synth.check import accent_signal
    from flowaccent.synth.corpus import make_corpus

    corpus = make_corpus(tmp_path / "corpus", SMALL, nj=2, quiet=True).out_dir
    signal = accent_signal(corpus, num_components=16)
    print("\n" + signal.summary())  # shown with pytest -s: the AUCs of the issue

    assert signal.num_utts == {"test_native": 60, "test_zh": 60, "test_ja": 60}
    assert signal.mean_loglik["test_native"] > signal.mean_loglik["test_zh"]
    assert signal.mean_loglik["test_native"] > signal.mean_loglik["test_ja"]
    assert signal.auc["zh"] > 0.5 and signal.auc["ja"] > 0.5
    assert signal.spearman_score_nll < 0
    assert signal.paired_win_rate["zh"] > 0.6 and signal.paired_win_rate["ja"] > 0.8


def test_a_corpus_without_noise_is_one_line_not_sklearns_traceback(tmp_path, monkeypatch):
    r"""``--noise-std 0``: constant silent frames, and scikit-learn's ValueError ('ill-defined empirical
    covariance', raised by scikit-learn 1.9 on such a corpus, not by 1.3) came out of ``python -m
    flowaccent.synth.check`` as a traceback. Its error is raised here whatever the version; another ValueError is
    named without the noise's hint."""
    pytest.importorskip("espeakng_loader")
    pytest.importorskip("sklearn")
    from sklearn.mixture import GaussianMixture

    from flowaccent.errors import FlowAccentError
    from flowaccent.synth.check import accent_signal
    from flowaccent.synth.corpus import make_corpus

    config = SynthConfig(num_sentences=10, seed=1, noise_std=0.0, train_speakers=2, dev_speakers=2, test_speakers=2)
    corpus = make_corpus(tmp_path / "c", config, quiet=True).out_dir
    for said, hint in (("Fitting the mixture model failed because some components have ill-defined empirical "
                        "covariance", "; a corpus made with --noise-std 0 has constant silent frames, which no GMM "
                        "fits"),
                       ("Expected n_samples >= n_components", "")):
        def failing(self, frames, said=said):
            raise ValueError(said)

        monkeypatch.setattr(GaussianMixture, "fit", failing)
        with pytest.raises(FlowAccentError) as error:
            accent_signal(corpus, num_components=16)
        assert str(error.value) == (f"{corpus}: the check's GMM cannot be fitted on its train_native features "
                                    f"({said}){hint}")
