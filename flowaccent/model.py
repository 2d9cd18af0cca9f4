r"""The flow model: feature standardisation, RealNVP couplings and the DNF prior in one module."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from flowaccent.errors import ConfigError, FeatureError
from flowaccent.features._array import as_tensor
from flowaccent.features.config import FeaturePipelineConfig
from flowaccent.features.pipeline import FeaturePipeline
from flowaccent.flows.config import ModelConfig
from flowaccent.flows.halves import forward_training
from flowaccent.flows.inplace import forward_in_place
from flowaccent.flows.realnvp import build_realnvp
from flowaccent.nn import gradient_filter
from flowaccent.prior import DNFPrior, draw_device
from flowaccent.prior_config import PriorConfig
from flowaccent.runtime import full_precision


@dataclasses.dataclass(frozen=True)
class FlowOutput:
    r"""Per-frame scores, natural log, summed over dimensions.

    Attributes:
        z: latents ``(B, D)``.
        log_p: ``log p(z)`` under the prior ``(B,)``.
        log_det: ``log|det dz/dx|`` including the standardisation ``(B,)``.
    """

    z: Tensor
    log_p: Tensor
    log_det: Tensor

    @property
    def log_ll(self) -> Tensor:
        r"""``log p(x) = log_p + log_det`` ``(B,)``: a density of the features after CMVN/deltas/splicing."""
        return self.log_p + self.log_det

    @property
    def nll(self) -> Tensor:
        r"""``-log_ll`` ``(B,)``: what the lab's tables print as "LogLL" (the training loss)."""
        return -self.log_ll


class FlowModel(nn.Module):
    r"""``x`` (features after CMVN/deltas/splicing, before standardisation) ``(B, D)`` -> scores.

    Arguments:
        pipeline: the feature pipeline (its standardisation is part of the flow).
        model: the RealNVP architecture.
        prior: the DNF prior.
        class_names: one name per class (``("native", "zh")``); one class for a plain flow.

    Example:
        >>> pipe = FeaturePipeline(FeaturePipelineConfig(cmvn="none", standardize=False), 40)
        >>> m = FlowModel(pipe, ModelConfig(num_blocks=2, hidden=16), PriorConfig(), ("native",))
        >>> m(torch.randn(5, 120)).log_ll.shape
        torch.Size([5])
    """

    def __init__(self, pipeline: FeaturePipeline, model: ModelConfig, prior: PriorConfig, class_names: tuple[str, ...]):
        super().__init__()
        if not isinstance(pipeline, FeaturePipeline):
            raise ConfigError(f"FlowModel: pipeline is a FeaturePipeline, got {type(pipeline).__name__}")
        for config, kind in ((model, ModelConfig), (prior, PriorConfig)):
            if not isinstance(config, kind):
                raise ConfigError(f"FlowModel: expected a {kind.__name__}, got {type(config).__name__}")
        if isinstance(class_names, str) or not all(isinstance(c, str) and c for c in class_names) or not class_names:
            # a string: one class per letter ("native": 6 classes)
            raise ConfigError(f"FlowModel: class_names is a tuple of names (('native',) for one class), got "
                              f"{class_names!r}")
        self.pipeline = pipeline
        self.model_config, self.prior_config = model, prior
        self.class_names = tuple(class_names)
        self.dim = pipeline.output_dim
        self.transform = build_realnvp(model, self.dim)
        self.prior = DNFPrior(prior, self.dim, len(self.class_names))

    def forward(
        self,
        x: Tensor,
        labels: Tensor | None = None,
        context: Tensor | None = None,
        filter_threshold: float | None = None,
    ) -> FlowOutput:
        r"""Scores frames ``x`` ``(B, D)``; ``labels`` ``(B,)`` condition the prior (None: marginal).

        With ``filter_threshold`` the gradient reaching ``z`` from the prior passes a
        :class:`~flowaccent.nn.GradientFilter` over frames (outlier frames damped; the
        gradient of the prior's class means is scaled by the filter's mean ratio over the frames). Values are
        unchanged. The frames' values are not checked (a pass over every batch): a NaN or inf frame's scores are NaN;
        :meth:`score_utterance` refuses such an utterance.
        """
        self._check_frames(x, "frames")
        labels = self.class_labels(labels, len(x), x.device)
        context = self.class_context(len(x), labels, context)
        y = self.pipeline.standardize(x.to(self.prior.means.dtype))  # float64 frames into a float32 flow
        if torch.is_grad_enabled():  # training: couplings fused with their ActNorm (flows.halves)
            z, log_det = forward_training(self.transform, y, context)
        else:  # scoring: one buffer updated in place (the same values, fewer passes over memory)
            z, log_det = forward_in_place(self.transform, y, context)
        log_det = log_det + self.pipeline.log_abs_det().to(log_det.dtype)
        z_prior, means = z, None
        if filter_threshold is not None:  # the class means too: their gradient came from every frame unfiltered
            z_prior, means = gradient_filter(z, self.prior.means, batch_dim=0, threshold=filter_threshold)
        with full_precision(z.device.type):  # bf16 (flowaccent.runtime) is for the conditioners only
            log_p = self.prior.log_prob(z_prior, labels, means)
        return FlowOutput(z, log_p, log_det)

    def _check_frames(self, x: Tensor, what: str) -> None:
        r"""A :class:`FeatureError` unless ``x`` is a tensor ``(B, D)`` of this flow's ``D``."""
        if not isinstance(x, Tensor):
            hint = (" (stored features of an utterance, numpy or torch: score_utterance)" if what == "frames"
                    else " (torch.from_numpy)")
            raise FeatureError(f"flow: expected a tensor of {what} (B, {self.dim}), got {type(x).__name__}{hint}")
        if x.dim() != 2 or x.shape[1] != self.dim:
            raw = what == "frames" and x.dim() == 2 and x.shape[1] == self.pipeline.input_dim  # as stored: no deltas
            hint = (f" (features of dim {self.pipeline.input_dim} are as stored, before the pipeline's deltas and "
                    "splicing: score_utterance takes those)") if raw else ""
            raise FeatureError(f"flow: expected {what} (B, {self.dim}), got {tuple(x.shape)}{hint}")
        if not x.is_floating_point():  # integers went through, cast by the first product
            raise FeatureError(f"flow: expected floating-point {what}, got {x.dtype}")

    def class_labels(self, labels: Tensor | np.ndarray | int | None, num: int, device=None) -> Tensor | None:
        r"""``labels`` as ``(num,)`` class indices (long) on ``device``: one per frame (a tensor, array or list), or one
        index (an int, numpy integer or 0-d tensor) for every frame; None stays None (the marginal). A
        :class:`FeatureError` for float or bool labels, another shape, or an index that is no class: a ``(1,)`` tensor
        was broadcast, frame 0's ``log_p`` standing for every frame's (18 nats off on a demo utterance)."""
        if labels is None:
            return None
        if isinstance(labels, bool) or not isinstance(labels, (int, np.integer, np.ndarray, Tensor, list, tuple)):
            raise FeatureError(f"flow: labels are class indices (int, or one per frame), got {type(labels).__name__}")
        tensor = labels if isinstance(labels, Tensor) else torch.as_tensor(np.asarray(labels))
        if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
            raise FeatureError(f"flow: labels are integer class indices, got {tensor.dtype}")
        if tensor.dim() == 0:
            tensor = tensor.expand(num)
        if tuple(tensor.shape) != (num,):
            raise FeatureError(f"flow: labels are one class index per frame ({num},) or one for all, got "
                               f"{tuple(tensor.shape)}")
        classes = len(self.class_names)
        checked = tensor.device.type == "cpu" and num and not torch.compiler.is_compiling()  # no GPU sync, graph break
        if checked and not 0 <= int(tensor.min()) <= int(tensor.max()) < classes:
            bad = int(tensor[(tensor < 0) | (tensor >= classes)][0])
            raise FeatureError(f"flow: label {bad} is no class (0..{classes - 1}: "
                               f"{', '.join(self.class_names)})")
        return tensor.to(device=device, dtype=torch.long)

    def class_context(self, num: int, labels: Tensor | None, context: Tensor | None = None) -> Tensor | None:
        r"""The couplings' context of ``num`` frames: ``context`` as given, else for a flow built with
        ``model.context_dim`` (the class as context) the one-hot ``labels`` ``(num, C)``; None for a flow without
        context. With two or more classes such a flow differs per class, so frames without labels (the marginal
        over classes) are a :class:`FeatureError`."""
        width = self.model_config.context_dim
        if context is not None:
            if not width:
                raise FeatureError("flow: built without context (model.context_dim 0), given a context")
            if not isinstance(context, Tensor) or tuple(context.shape) != (num, width):
                shape = tuple(context.shape) if isinstance(context, Tensor) else type(context).__name__
                raise FeatureError(f"flow: context is a tensor ({num}, {width}) (model.context_dim {width}), got "
                                   f"{shape}")
            return context
        if not width:
            return None
        if labels is None and width == 1:  # one class: its context is every frame's
            return torch.ones(num, 1, dtype=self.prior.means.dtype, device=self.prior.means.device)
        if width != len(self.class_names):  # one_hot of a class past the width: torch's error; a wider one: a column
            raise FeatureError(f"flow: model.context_dim {width} is not the number of classes "
                               f"({len(self.class_names)}), so the class cannot be the couplings' context: give "
                               "context= yourself")
        if labels is None:
            raise FeatureError(f"flow: built with model.context_dim = {width} (the class as the couplings' context), "
                               "so its flow differs per class: give the frames' class labels")
        return nn.functional.one_hot(labels.long(), width).to(self.prior.means.dtype)

    def inverse(self, z: Tensor, context: Tensor | None = None, labels: Tensor | None = None) -> Tensor:
        r"""``z`` ``(B, D)`` -> frames ``x`` ``(B, D)`` (before standardisation); a flow with the class as context
        takes the class ``labels`` ``(B,)`` (or the ``context`` itself)."""
        self._check_frames(z, "latents")
        labels = self.class_labels(labels, len(z), z.device)
        y, _ = self.transform.inverse(z, self.class_context(len(z), labels, context))
        return self.pipeline.unstandardize(y)

    @torch.no_grad()
    def sample(self, num: int, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        r"""Draws ``(num, D)`` frames from the model (eval mode for batchnorm flows) of classes ``labels``
        ``(num,)``, or of classes drawn uniformly. The noise is drawn on ``generator``'s device (the CPU by
        default, so a seed gives the same draws for a model anywhere), then moved to the model's."""
        if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 0:
            raise FeatureError(f"flow: sample takes a number of frames >= 0, got {num!r}")
        if labels is None:
            labels = torch.randint(self.prior.num_classes, (num,), generator=generator, device=draw_device(generator))
        labels = self.class_labels(labels, num, labels.device if isinstance(labels, Tensor) else None)
        z = self.prior.sample(num, labels, generator).to(self.prior.means.dtype)
        return self.inverse(z, labels=labels.to(z.device))

    def score_utterance(
        self, feats: np.ndarray | Tensor, cmvn_stats: np.ndarray | None = None,
        labels: Tensor | np.ndarray | int | None = None,
    ) -> FlowOutput:
        r"""Scores stored features ``(T, D_raw)`` of one utterance through the whole pipeline; ``labels``: one class
        index for every frame, or one per frame ``(T,)`` (None: the marginal over the classes). Features that are
        not finite are a :class:`FeatureError` naming the first frame (a NaN would give NaN scores). CMVN, deltas
        and splicing run where ``feats`` are; the frames then go to the model's device."""
        feats = as_tensor(feats)
        if not torch.isfinite(feats).all():
            frame = int(torch.nonzero(~torch.isfinite(feats))[0, -2])
            raise FeatureError(f"features: not finite in frame {frame}")
        device = self.prior.means.device
        x = self.pipeline.unstandardized(feats, cmvn_stats).to(device)
        return self(x, labels)

    @torch.no_grad()
    def initialize(self, x: Tensor, labels: Tensor | None = None, context: Tensor | None = None) -> None:
        r"""Data-dependent initialisation on one batch ``(B, D)``: ActNorm statistics, then the
        DNF class means from the latents of the (still identity-like) flow. A :class:`FeatureError` for fewer than 2
        frames or one not finite: ActNorm's scales came out NaN (a standard deviation of one frame), and so did every
        score after, with only torch's warning."""
        self._check_frames(x, "frames")
        if len(x) < 2:
            raise FeatureError(f"flow: cannot initialise on {len(x)} frame(s): ActNorm's statistics need 2 or more")
        if not bool(torch.isfinite(x).all()):
            raise FeatureError("flow: cannot initialise on frames that are not finite (NaN or inf)")
        was_training = self.training
        self.train()
        labels = self.class_labels(0 if labels is None else labels, len(x), x.device)  # float or no class: refused
        z, _ = self.transform(self.pipeline.standardize(x), self.class_context(len(x), labels, context))
        self.prior.init_means(z, labels)
        self.train(was_training)

    def to_checkpoint(self) -> dict[str, Any]:
        r"""Everything to rebuild this model exactly: configs, class names, pipeline, weights."""
        return {
            "model_config": self.model_config.to_dict(),
            "prior_config": self.prior_config.to_dict(),
            "class_names": list(self.class_names),
            "pipeline": self.pipeline.to_state(),
            "state_dict": self.state_dict(),
        }

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any]) -> FlowModel:
        r"""Inverse of :meth:`to_checkpoint` (``state``; or a whole training checkpoint, ``torch.load("final.pt")``,
        whose ``"model"`` it is); a clear error when the parts do not fit. In eval mode, as scoring runs it (as
        :func:`~flowaccent.train.checkpoint.load_model` returns it): a BatchNorm flow in training mode scored each batch
        with its own statistics, and overwrote its running ones even under ``torch.no_grad``; ``model.train()`` to
        train it further."""
        if isinstance(state, dict) and isinstance(state.get("model"), dict):  # a training checkpoint: its model
            state = state["model"]
        if not isinstance(state, dict):  # a path: 'not a flowaccent model (no pipeline, ...)'
            raise ConfigError(f"FlowModel.from_checkpoint takes a checkpoint's dict, got {type(state).__name__} (a "
                              "file: flowaccent.train.checkpoint.load_model(path))")
        parts = ("pipeline", "model_config", "prior_config", "class_names", "state_dict")
        missing = [k for k in parts if k not in state]
        if missing:  # said "checkpoint does not match its config: 'pipeline'" of another tool's dict
            raise ConfigError(f"not a flowaccent model (no {', '.join(missing)})")
        try:
            pipeline = FeaturePipeline.from_state(state["pipeline"])
            with torch.random.fork_rng(devices=[]):  # the layers' random init, overwritten: not the caller's draws
                model = cls(
                    pipeline,
                    ModelConfig.from_dict(state["model_config"], "checkpoint model"),
                    PriorConfig.from_dict(state["prior_config"], "checkpoint prior"),
                    tuple(state["class_names"]),
                )
            dtype = next(
                v.dtype for k, v in state["state_dict"].items() if k.startswith("transform.") and v.is_floating_point()
            )
            # float64 weights load without rounding, float32 ones stay so under a float64 default; the pipeline keeps
            # its float64 statistics (model.to made them float32: final.pt's were not best.pt's, by up to 2.3e-7)
            model.transform.to(dtype)
            model.prior.to(dtype)
            model.load_state_dict(state["state_dict"])
        except (KeyError, RuntimeError) as error:
            raise ConfigError(f"checkpoint does not match its config: {str(error).splitlines()[0]}") from None
        return model.eval()


def build_model(
    features: FeaturePipelineConfig,
    input_dim: int,
    model: ModelConfig,
    prior: PriorConfig,
    class_names: tuple[str, ...],
) -> FlowModel:
    r"""A fresh model for ``input_dim``-d stored features (the pipeline still needs ``fit``)."""
    return FlowModel(FeaturePipeline(features, input_dim), model, prior, class_names)
