r"""Built-in targets: functions of a raw ``(T, K)`` log filterbank through a trained flow.

Each pushes the raw features through the model's saved :class:`~flowaccent.features.FeaturePipeline`
(CMVN with the speaker's stats, deltas or splicing, standardisation) and the flow, exactly as
:meth:`~flowaccent.model.FlowModel.score_utterance` does, so a mask explains what scoring sees.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from torch import Tensor

from flowaccent.blurmask.fit import Target
from flowaccent.errors import ConfigError
from flowaccent.model import FlowModel, FlowOutput

#: The names :func:`make_target` knows.
TARGETS = ("log_ll", "z", "posterior")


def _flow(model: FlowModel, cmvn_stats: np.ndarray | None) -> Callable[[Tensor], FlowOutput]:
    def run(x: Tensor) -> FlowOutput:
        frames = model.pipeline.unstandardized(x, cmvn_stats)
        return model(frames.to(model.prior.means.dtype))

    return run


def log_ll_target(model: FlowModel, cmvn_stats: np.ndarray | None = None) -> Target:
    r"""``x`` ``(T, K)`` -> the per-frame ``log_ll`` ``(T,)`` (the marginal over the model's classes)."""
    flow = _flow(model, cmvn_stats)
    return lambda x: flow(x).log_ll


def latent_target(model: FlowModel, cmvn_stats: np.ndarray | None = None) -> Target:
    r"""``x`` ``(T, K)`` -> the latents ``z`` ``(T, D)``."""
    flow = _flow(model, cmvn_stats)
    return lambda x: flow(x).z


def _posterior_column(model: FlowModel, class_name: str) -> int | None:
    r"""The column of ``class_name`` in the class posteriors (None: every class), or a :class:`ConfigError`."""
    if len(model.class_names) < 2 or model.prior_config.cond_dim == 0:
        raise ConfigError("blurmask: the posterior target needs a DNF model with two or more classes and cond_dim > 0")
    if class_name and class_name not in model.class_names:
        raise ConfigError(f"blurmask: class '{class_name}' is not one of the model's ({', '.join(model.class_names)})")
    return model.class_names.index(class_name) if class_name else None


def posterior_target(model: FlowModel, cmvn_stats: np.ndarray | None = None, class_name: str = "") -> Target:
    r"""``x`` ``(T, K)`` -> the DNF class log posterior ``log p(y | z)``: ``(T,)`` for ``class_name``,
    ``(T, C)`` for every class when it is empty."""
    column = _posterior_column(model, class_name)
    flow = _flow(model, cmvn_stats)

    def posterior(x: Tensor) -> Tensor:
        log_post = model.prior.class_posterior_log(flow(x).z)
        return log_post if column is None else log_post[:, column]

    return posterior


def make_target(model: FlowModel, name: str, cmvn_stats: np.ndarray | None = None, class_name: str = "") -> Target:
    r"""The target ``name`` (``log_ll``, ``z`` or ``posterior``) of ``model`` (put in eval mode) for one
    utterance with its speaker's ``(2, K + 1)`` CMVN stats (required where the model's features are CMVN'd by
    speaker: without them the target failed when first called, inside the fit)."""
    model.eval()
    check_target(model, name, class_name)
    if model.pipeline.config.cmvn == "spk" and cmvn_stats is None:
        raise ConfigError("blurmask: the model's features are CMVN'd by speaker (features.cmvn spk): give the "
                          "utterance's speaker's cmvn stats (cmvn_stats)")
    if name == "log_ll":
        return log_ll_target(model, cmvn_stats)
    if name == "z":
        return latent_target(model, cmvn_stats)
    if name == "posterior":
        return posterior_target(model, cmvn_stats, class_name)
    raise AssertionError(name)  # check_target refused it


def check_target(model: FlowModel, name: str, class_name: str = "") -> None:
    r"""Refuses a target :func:`make_target` cannot make of ``model``: an unknown ``name``, or the posterior of a
    model without classes or of a class it lacks (before any utterance is read)."""
    if name not in TARGETS:
        raise ConfigError(f"blurmask: unknown target '{name}' (use {', '.join(TARGETS)})")
    if name == "posterior":
        _posterior_column(model, class_name)
