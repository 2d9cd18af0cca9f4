r"""flowaccent: normalizing-flow accent analysis on Kaldi features.

The command line (``flowaccent --help``; docs/cli.md) is a thin layer over these modules, each usable from Python
(a notebook's strings or paths alike):

- :func:`flowaccent.train.checkpoint.load_model`: a trained model, a :class:`~flowaccent.model.FlowModel`; its
  ``score_utterance(feats, cmvn_stats)`` runs one utterance's stored ``(T, 40)`` features through the whole
  pipeline (CMVN, deltas or splicing, flow, prior): per-frame ``log_ll``, ``log_p``, ``log_det`` and latents
  (docs/scoring.md, "One utterance from Python").
- :mod:`flowaccent.data`: Kaldi data dirs and tables (``load_data_dir``, ``iter_ark``, ``ScpReader``,
  ``ArkWriter``, ``read_table``); :func:`flowaccent.data.stream.iter_utterances`: a data dir's utterances with
  their features and CMVN statistics.
- :mod:`flowaccent.features`: Kaldi's fbank (``compute_fbank``), CMVN, deltas and splicing.
- :mod:`flowaccent.score.metrics`: detection AUCs and their intervals, correlations, ``moments`` (skew and
  kurtosis); :func:`flowaccent.score.tables.read_tsv` reads the tables ``flowaccent score`` writes.
- :mod:`flowaccent.plots`: each figure of a report, drawn from arrays; :mod:`flowaccent.report`:
  ``write_report``, ``make_figures``, ``load_summary`` of a scores folder.
- :mod:`flowaccent.blurmask`: ``make_target`` and ``fit_blur_mask`` (docs/blurmask.md).
- :mod:`flowaccent.synth`: the demo's synthetic accented-English corpus (docs/demo-corpus.md).
"""

from flowaccent.errors import FlowAccentError

__version__ = "0.1.0"
__all__ = ["FlowAccentError", "__version__"]
