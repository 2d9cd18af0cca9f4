r"""Normalisation layers between coupling blocks: ActNorm, BatchNorm (nflows), or none."""

from __future__ import annotations

import torch
from nflows.transforms import normalization
from nflows.transforms.normalization import BatchNorm
from torch import Tensor, nn

from flowaccent.features.pipeline import spread_or_one
from flowaccent.transfer import TrueFlags


class ActNorm(TrueFlags, normalization.ActNorm):
    r"""nflows ActNorm ``y = x exp(log_scale) + shift`` ``(B, D) -> (B, D)``, whose forward can be
    compiled in one graph (``train.compile``).

    nflows checks ``self.initialized``, a tensor, on every training forward to initialise from
    the first batch; under ``torch.compile`` that check splits the flow's graph at every block.
    While compiling, the check is skipped: compiled training starts only after
    ``FlowModel.initialize`` (the trainer checks). Same parameters, buffers and values as nflows'.

    Reading that tensor on a GPU makes the host wait for the GPU's queue to drain, at every
    training forward; once it is True, :meth:`is_initialized` answers from the host
    (:class:`flowaccent.transfer.TrueFlags`).

    A dimension constant in the first batch (its spread under :data:`~flowaccent.features.pipeline.STD_FLOOR`:
    mel bins that are empty in all audio, upsampled from 8 kHz, and so constant after standardisation) is centred
    but not scaled, as the features' standardisation leaves it (:func:`~flowaccent.features.pipeline.spread_or_one`):
    the log of its spread, 0, made ``log_scale`` inf and the loss nan at step 1, and the spread floored at 1e-5 scaled
    what the couplings later put into it 1e5 times (a valid NLL of 7.1e13 nats/frame). Other spreads give nflows'
    values.
    """

    def _initialize(self, inputs: Tensor) -> None:
        r"""nflows' data-dependent start, the spread floored, written in place: nflows set ``initialized.data`` to a
        new CPU tensor, which moved the buffer of a model on a GPU to the CPU (DDP's broadcast of the buffers over
        nccl, which has no CPU backend, then cannot work)."""
        with torch.no_grad():
            std = spread_or_one(inputs.std(dim=0))
            self.log_scale.copy_(-torch.log(std))
            self.shift.copy_(-(inputs / std).mean(dim=0))
            self.initialized.fill_(True)

    def is_initialized(self) -> bool:
        r"""``initialized``, read from the device until it is True, then remembered."""
        return self.flag("initialized")

    def forward(self, inputs: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if torch.compiler.is_compiling() and inputs.dim() == 2:
            log_det = self.log_scale.sum().expand(inputs.shape[0])
            return torch.addcmul(self.shift, inputs, self.log_scale.exp()), log_det
        if self.training and inputs.dim() == 2 and self.is_initialized():  # nflows' arithmetic, without its check
            return self.scale.view(1, -1) * inputs + self.shift.view(1, -1), self.log_scale.sum() * inputs.new_ones(
                inputs.shape[0]
            )
        return super().forward(inputs, context)


def is_initialized(norm: normalization.ActNorm) -> bool:
    r"""Whether ``norm`` is initialised; ours answer from the host once they are (:meth:`ActNorm.is_initialized`)."""
    return norm.is_initialized() if isinstance(norm, ActNorm) else bool(norm.initialized)


class FrozenStatsBatchNorm(BatchNorm):
    r"""nflows BatchNorm whose running variance starts at 1 (nflows: 0, which makes an untrained
    model's eval-mode scores infinite). In eval mode it uses the running statistics, so
    scores do not depend on the batch; call ``model.eval()`` before scoring.
    """

    def __init__(self, features: int, momentum: float = 0.1):
        super().__init__(features, momentum=momentum)
        with torch.no_grad():
            self.running_var.fill_(1.0)


def make_norm(kind: str, features: int) -> nn.Module | None:
    r"""``actnorm`` (data-initialised on the first training batch), ``batchnorm`` or ``none``."""
    if kind == "actnorm":
        return ActNorm(features)
    if kind == "batchnorm":
        return FrozenStatsBatchNorm(features)
    if kind == "none":
        return None
    raise ValueError(f"unknown norm {kind!r}")
