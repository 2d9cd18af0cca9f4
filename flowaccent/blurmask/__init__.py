r"""Blur masks: per time-frequency cell, how widely its energy can be spread along frequency
before a model's output changes (the lab's experiment, with autograd gradients), and their
evaluation by deletion curves. See ``docs/blurmask.md``."""

from flowaccent.blurmask.blur import MODES, blur_energy, kernel_mass, triangular_blur
from flowaccent.blurmask.evaluate import (
    BASELINES,
    KALDI_LOG_FLOOR,
    ORDERS,
    DeletionConfig,
    DeletionCurves,
    deletion_curves,
    removal_mask,
    remove,
    summarise,
)
from flowaccent.blurmask.fit import BlurMaskConfig, BlurMaskResult, fit_blur_mask, fit_noise_mask
from flowaccent.blurmask.targets import TARGETS, latent_target, log_ll_target, make_target, posterior_target

__all__ = [
    "BASELINES",
    "KALDI_LOG_FLOOR",
    "MODES",
    "ORDERS",
    "TARGETS",
    "BlurMaskConfig",
    "BlurMaskResult",
    "DeletionConfig",
    "DeletionCurves",
    "blur_energy",
    "deletion_curves",
    "fit_blur_mask",
    "fit_noise_mask",
    "kernel_mass",
    "latent_target",
    "log_ll_target",
    "make_target",
    "posterior_target",
    "removal_mask",
    "remove",
    "summarise",
    "triangular_blur",
]
