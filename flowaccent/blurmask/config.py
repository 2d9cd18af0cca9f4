r"""The blurmask command's settings, without torch: its ``--help`` and its option checks do not import it.

:class:`BlurMaskConfig` is how a mask is fitted (flowaccent.blurmask.fit), :class:`DeletionConfig` how deletion
curves are measured (flowaccent.blurmask.evaluate), :class:`RunConfig` which utterances, for which output
(flowaccent.blurmask.run)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Literal

import numpy as np

from flowaccent.config import Config
from flowaccent.errors import ConfigError

#: What the blur does with the energy that falls outside the frequency bins (flowaccent.blurmask.blur).
Mode = Literal["drop", "fold", "renorm"]
MODES: tuple[str, ...] = typing.get_args(Mode)
#: What removed cells become (flowaccent.blurmask.evaluate.remove).
BASELINES = ("floor", "mean", "blur")
#: The removal fractions of the lab's table.
LAB_FRACTIONS = (0.5, 0.8)

#: The finest deletion step (:class:`DeletionConfig` ``step``): 1001 points.
MIN_STEP = 0.001


#: The widest blur allowed, in bins (:class:`BlurMaskConfig` ``m_max``).
M_MAX_LIMIT = 1000.0

#: The largest noise scale allowed, in log-energy units (:class:`BlurMaskConfig` ``sigma_max``): a log filterbank
#: spans some tens; at 1e12 the flow's output overflowed and the masks were NaN, with exit 0.
SIGMA_MAX_LIMIT = 1000.0


@dataclasses.dataclass(frozen=True)
class BlurMaskConfig(Config):
    r"""How a blur (or noise) mask is fitted.

    Attributes:
        variant: ``blur`` (learn widths ``m``) or ``noise`` (learn noise scales ``sigma``).
        mode: the blur's boundary handling: ``drop``, ``fold`` or ``renorm``.
        lam: weight of the term named by ``lam_on``.
        lam_on: ``entropy`` (``inv - lam mean log m``) or ``invariance`` (``lam inv - mean log m``).
        steps: optimisation steps (at least 1).
        lr: learning rate on the logits ``theta``.
        optimizer: ``adam`` or ``sgd``.
        m_min: smallest width (1 = no blur).
        m_max: largest width, in bins.
        sigma_min: smallest noise scale (noise variant), in log-energy units.
        sigma_max: largest noise scale (noise variant).
        init_fraction: where ``m`` (or ``sigma``) starts, as a fraction of ``[min, max]``.
        smooth: weight of a smoothness penalty, the mean squared difference of ``log m``
            between neighbouring frames and bins.
        gradient_filter: pass the gradient reaching ``m`` through a
            :class:`~flowaccent.nn.GradientFilter` over frames (outlier frames damped).
        gradient_filter_threshold: its cutoff in multiples of the median gradient RMS.
        seed: seeds the noise of the noise variant.
    """

    variant: Literal["blur", "noise"] = "blur"
    mode: Mode = "renorm"
    lam: float = 1.0
    lam_on: Literal["entropy", "invariance"] = "entropy"
    steps: int = 300
    lr: float = 0.1
    optimizer: Literal["adam", "sgd"] = "adam"
    m_min: float = 1.0
    m_max: float = 10.0
    sigma_min: float = 0.01
    sigma_max: float = 3.0
    init_fraction: float = 0.05
    smooth: float = 0.0
    gradient_filter: bool = False
    gradient_filter_threshold: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        # finite first: nan and inf passed every comparison below (--sigma-max inf fitted NaN masks with exit 0)
        self.check_ranges("blur mask", (("steps", 1, False), ("lr", 0, True), ("lam", 0, False), ("smooth", 0, False),
                                        ("m_min", 1, False), ("m_max", 1, True), ("sigma_min", 0, True),
                                        ("sigma_max", 0, True), ("init_fraction", 0, True),
                                        ("gradient_filter_threshold", 0, True)))
        self.check_seed("blur mask")  # 1e20: 'Overflow when unpacking long long' from torch's generator
        problems = [
            (not 1 <= self.m_min < self.m_max, f"need 1 <= m_min < m_max, got {self.m_min}, {self.m_max}"),
            # wider than any spectrum's bins; past it the float32 blur's edge normalisation lost precision (1e-4 at
            # 1e5 bins) and at 1e20 gave NaN, said as an utterance's fault
            (self.m_max > M_MAX_LIMIT, f"m_max must be <= {M_MAX_LIMIT:g} bins (a width past the spectrum's bins "
             f"blurs across all of them), got {self.m_max:g}"),
            (not 0 < self.sigma_min < self.sigma_max, f"need 0 < sigma_min < sigma_max, got {self.sigma_min}, "
             f"{self.sigma_max}"),
            (self.sigma_max > SIGMA_MAX_LIMIT, f"sigma_max must be <= {SIGMA_MAX_LIMIT:g} (log-energy units: a noise "
             f"far wider than a log filterbank's range), got {self.sigma_max:g}"),
            (not 0 < self.init_fraction < 1, f"init_fraction must be in (0, 1), got {self.init_fraction}"),
        ]
        for bad, message in problems:
            if bad:
                raise ConfigError(f"blur mask: {message}")

    @property
    def bounds(self) -> tuple[float, float]:
        r"""``(min, max)`` of the learned quantity: ``m`` for ``blur``, ``sigma`` for ``noise``."""
        return (self.m_min, self.m_max) if self.variant == "blur" else (self.sigma_min, self.sigma_max)


@dataclasses.dataclass(frozen=True)
class DeletionConfig(Config):
    r"""How deletion curves are measured.

    Attributes:
        baselines: what removed cells become, any of ``floor``, ``mean``, ``blur``.
        floor: the ``floor`` baseline: ``data`` (the utterance's minimum) or ``kaldi`` (-15.94).
        step: the fraction removed grows from 0 to 1 in this step (0.05: 21 points; at least
            0.001); 0.5 and 0.8 (the lab's table) are always measured.
        random_seeds: random orders averaged for the ``random`` curve.
    """

    baselines: tuple[str, ...] = BASELINES
    floor: Literal["data", "kaldi"] = "data"
    step: float = 0.05
    random_seeds: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown or not self.baselines:
            raise ConfigError(f"deletion: baselines must be among {', '.join(BASELINES)}, got {self.baselines}")
        steps = 1 / self.step if self.step > 0 else 0
        if not (0 < self.step <= 1 and abs(steps - round(steps)) < 1e-9):
            raise ConfigError(f"deletion: step must divide 1, got {self.step}")
        if self.step < MIN_STEP:  # 1e-12: numpy's 7.28 TiB traceback for its grid, each point a scoring of every utt
            raise ConfigError(f"deletion: step must be >= {MIN_STEP:g} ({round(1 / MIN_STEP) + 1} points, each a "
                              f"scoring of every utterance per order and baseline), got {self.step:g}")
        if self.random_seeds < 1:
            raise ConfigError(f"deletion: random_seeds must be >= 1, got {self.random_seeds}")

    @property
    def fractions(self) -> np.ndarray:
        r"""The removal fractions ``0, step, ..., 1``, and the lab's 0.5 and 0.8 whatever the step."""
        grid = np.round(np.linspace(0.0, 1.0, round(1 / self.step) + 1), 12)  # 0.15, not 0.15000000000000002
        missing = [f for f in LAB_FRACTIONS if not np.isclose(grid, f).any()]
        return np.sort(np.concatenate([grid, missing]))


@dataclasses.dataclass(frozen=True)
class RunConfig(Config):
    r"""What is explained, and on how many utterances.

    Attributes:
        target: ``log_ll`` (per-frame log-likelihood), ``z`` (the latents) or ``posterior``
            (the DNF class log posterior).
        target_class: the class of ``posterior`` (empty: every class).
        utts: utterances per data dir, spread evenly over it (not with utt_list).
        utt_list: a file of utterance ids, one per line (its first field; Kaldi's utt lists): exactly those
            utterances, each from the data dir that holds it, instead of ``utts`` per dir ('': none).
    """

    target: Literal["log_ll", "z", "posterior"] = "log_ll"
    target_class: str = ""
    utts: int = 4
    utt_list: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.utts < 1:
            raise ConfigError(f"blurmask: utts must be >= 1, got {self.utts}")
        if self.target_class and self.target != "posterior":
            raise ConfigError(f"blurmask: target_class is for --target posterior, not {self.target}")
