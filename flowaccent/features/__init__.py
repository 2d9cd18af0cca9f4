r"""Kaldi-exact feature front-end: fbank, CMVN, deltas, splicing and the saved pipeline.

Names are imported lazily so that commands which need no torch start fast.
"""

import importlib

_NAMES = {
    "FbankConfig": "fbank",
    "compute_fbank": "fbank",
    "apply_cmvn": "cmvn",
    "compute_cmvn_stats": "cmvn",
    "add_deltas": "deltas",
    "splice_frames": "splice",
    "FeaturePipeline": "pipeline",
    "FeaturePipelineConfig": "pipeline",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name not in _NAMES:
        raise AttributeError(f"module 'flowaccent.features' has no attribute {name!r}")
    return getattr(importlib.import_module(f"flowaccent.features.{_NAMES[name]}"), name)


def __dir__() -> list[str]:
    return __all__
