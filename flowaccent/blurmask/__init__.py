r"""Blur masks: per time-frequency cell, how widely its energy can be spread along frequency
before a model's output changes (the lab's experiment, with autograd gradients), and their
evaluation by deletion curves. See ``docs/blurmask.md``.

Names are imported lazily: ``blurmask --help`` reads only flowaccent.blurmask.config, which needs no torch.
"""

from flowaccent.lazy import lazy_names

_NAMES = {
    **dict.fromkeys(["MODES", "blur_energy", "kernel_mass", "triangular_blur"], "blur"),
    **dict.fromkeys(["BASELINES", "BlurMaskConfig", "DeletionConfig", "RunConfig"], "config"),
    **dict.fromkeys(["KALDI_LOG_FLOOR", "ORDERS", "DeletionCurves", "deletion_curves", "removal_mask", "remove",
                     "summarise"], "evaluate"),
    **dict.fromkeys(["BlurMaskResult", "fit_blur_mask", "fit_noise_mask"], "fit"),
    **dict.fromkeys(["TARGETS", "latent_target", "log_ll_target", "make_target", "posterior_target"], "targets"),
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_names(__name__, _NAMES)
