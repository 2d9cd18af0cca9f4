r"""Each step's loss checked for non-finite values one step late, so the host never waits for the device."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from flowaccent.train.checkpoint import Progress, TrainingError, checkpoint_path
from flowaccent.transfer import HostCopy


class StepChecks:
    r"""The steps' logged means, checked for a non-finite loss one step late.

    Reading a step's loss on the host right after its forward made the host wait for the GPU at
    every step (see :mod:`flowaccent.transfer`), so each step's means are read after the next step
    has been launched. A non-finite loss then stops training one step later than it happens, with
    the weights already updated by it; what keeps the last good checkpoint good is that every
    checkpoint is written only after :meth:`flush` (the trainer's loop calls it before each save).

    Arguments:
        sums: float64 ``(3,)``, the window's sums of loss, -LogP, -LogDet times the batch size; added to here.
        exp: the experiment directory (named in the error).
    """

    def __init__(self, sums: torch.Tensor, exp: Path):
        self.sums, self.exp = sums, exp
        self._pending: tuple[HostCopy, int, int, int, int] | None = None

    def add(self, stats: HostCopy, frames: int, progress: Progress) -> None:
        r"""Takes a launched step's means (``frames`` in its batch; ``progress`` as before the step), and
        checks the step before it."""
        self.flush()
        self._pending = (stats, frames, progress.global_step + 1, progress.epoch + 1, progress.step_in_epoch + 1)

    def flush(self) -> None:
        r"""Waits for the last step's means, checks them (TrainingError) and adds them to the sums."""
        if self._pending is None:
            return
        copy, frames, step, epoch, batch = self._pending
        stats = copy.get()["stats"]  # a Ctrl-C in this wait leaves the step pending: the flush before saving checks it
        self._pending = None
        if not math.isfinite(stats[0]):
            last = checkpoint_path(self.exp, "last")
            kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written before it"
            raise TrainingError(
                f"non-finite loss ({stats[0].item()}) at step {step} (epoch {epoch}, batch {batch}); training "
                f"stopped, {kept}"
            )
        self.sums += stats * frames
