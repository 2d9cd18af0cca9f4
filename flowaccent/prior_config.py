r"""The DNF prior's settings (flowaccent.prior), without torch: a command's ``--help`` and its option checks do
not import it."""

from __future__ import annotations

import dataclasses

from flowaccent.config import Config


@dataclasses.dataclass(frozen=True)
class PriorConfig(Config):
    r"""The DNF prior.

    Attributes:
        cond_dim: class-conditional latent dims (0 .. input dim; the lab: 120 of 120,
            400 or 440 of 440).
        class_var: variance of ``c`` around its class mean.
        residual_var: variance of ``r``.
        learn_means: train the class means (else they stay at their initialisation).
    """

    cond_dim: int = 0
    class_var: float = 1.0
    residual_var: float = 1.0
    learn_means: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_ranges("prior", (("cond_dim", 0, False), ("class_var", 0, True), ("residual_var", 0, True)))
