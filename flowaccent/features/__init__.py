r"""Kaldi-exact feature front-end: fbank, CMVN, deltas, splicing and the saved pipeline.

Names are imported lazily so that commands which need no torch start fast.
"""

from flowaccent.lazy import lazy_names

_NAMES = {
    "FbankConfig": "fbank",
    "compute_fbank": "fbank",
    "apply_cmvn": "cmvn",
    "compute_cmvn_stats": "cmvn",
    "add_deltas": "deltas",
    "splice_frames": "splice",
    "FeaturePipeline": "pipeline",
    "FeaturePipelineConfig": "config",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_names(__name__, _NAMES)
