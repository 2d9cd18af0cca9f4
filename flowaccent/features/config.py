r"""What the feature pipeline (flowaccent.features.pipeline) applies, without torch: a command's ``--help`` and
its option checks do not import it."""

from __future__ import annotations

import dataclasses
from typing import Literal

from flowaccent.config import Config


@dataclasses.dataclass(frozen=True)
class FeaturePipelineConfig(Config):
    r"""What happens to stored features before the flow sees them.

    Attributes:
        cmvn: ``none``, ``utt`` (stats of the utterance itself) or ``spk``
            (the speaker's stats from ``cmvn.scp``), as Kaldi's apply-cmvn.
        norm_vars: also normalise variance (apply-cmvn ``--norm-vars``).
        deltas: delta order (add-deltas ``--delta-order``, window 2); 0 = none.
        splice: frames of context each side (splice-feats); 0 = none.
        standardize: global mean/std fitted on the training data.

    The defaults give the lab's 120-d input from 40-d fbank (speaker CMVN,
    deltas and delta-deltas, standardised); ``deltas=0, splice=5`` gives 440-d.
    """

    cmvn: Literal["none", "utt", "spk"] = "spk"
    norm_vars: bool = False
    deltas: int = 2
    splice: int = 0
    standardize: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_ranges("features", (("deltas", 0, False), ("splice", 0, False)))

    def output_dim(self, input_dim: int) -> int:
        r"""Dimension after deltas and splicing of ``input_dim``-d features."""
        return input_dim * (self.deltas + 1) * (2 * self.splice + 1)

    @property
    def context(self) -> int:
        r"""Frames an output frame depends on: itself and, each side, 2 per delta order (window 2) and the
        splice. An utterance shorter than this has no frame without copies of its edge frames."""
        return 2 * (2 * self.deltas + self.splice) + 1
