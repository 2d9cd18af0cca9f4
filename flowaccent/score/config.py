r"""How corpora are scored (flowaccent.score.scorer), without torch: ``score --help`` and its option checks do
not import it."""

from __future__ import annotations

import dataclasses
from typing import Literal

from flowaccent.config import Config
from flowaccent.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ScoreConfig(Config):
    r"""How corpora are scored.

    Attributes:
        batch_frames: frames per forward pass. 8000 keeps a ``(8000, hidden)`` float32 activation
            under 32 MiB for hidden <= 1024, so it is served from the heap that the ``flowaccent``
            command keeps (flowaccent.allocator) instead of fresh pages: scoring 300k frames took
            1.21-1.23x as long with 20000 (docs/performance.md). An utterance of twice this or more goes
            through the flow in parts of it.
        max_latents: size of the random sample of latents kept per set (``latents.npy``).
        regression_max_utts: at most this many rated utterances of a set (a seeded random sample; 0: all) go
            into ``summary.json``'s SVR regressions: their 21 cross-validations (the fit and 20 shuffles) take time
            in about the square of the utterances (one took 6.9 s at 6000 on the 2-core machine, 1.7 s at 3000;
            a set of 50k ran over 10 minutes without an end).
        native_class: the class whose likelihood ratio ``llr`` is reported (default: ``native``
            if the model has it, else its first class).
        seed: seeds the latent sample (and the regressions' sample).
        device: ``auto`` (cuda when present), ``cpu`` or ``cuda``: where the flow runs (features
            are read and computed on the CPU; each batch is copied over).
        precision: ``fp32``, ``tf32`` (CUDA) or ``bf16`` (the conditioners' matmuls in bfloat16),
            see flowaccent.runtime; speed and NLL effect in docs/performance.md.
        prefetch: batches read and featurised ahead in a background thread while the model
            scores (flowaccent.data.prefetch); 0: in the scoring loop; -1 (auto): 2 on a GPU, 0 on
            a CPU, where the thread made scoring 1.1-1.2x slower (docs/performance.md).
    """

    batch_frames: int = 8000
    max_latents: int = 20000
    regression_max_utts: int = 5000
    native_class: str = ""
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "tf32", "bf16"] = "fp32"
    prefetch: int = -1

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_seed("score")
        if self.prefetch < -1:
            raise ConfigError(f"score: prefetch must be >= 0, or -1 for auto, got {self.prefetch}")
        for name in ("batch_frames", "max_latents"):  # no latents: nothing for the report's projections
            if getattr(self, name) < 1:
                raise ConfigError(f"score: {name} must be >= 1, got {getattr(self, name)}")
        if self.regression_max_utts < 0:  # the command line names each option (cli._options.config_from_args)
            raise ConfigError(f"score: regression_max_utts must be >= 0 (0: all), got {self.regression_max_utts}")
