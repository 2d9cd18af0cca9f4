r"""A training run's start (:func:`start_run`): resumed from its last checkpoint, with what the resume may change
said and checked, or new, with the feature standardisation fitted and the model initialised on a first batch."""

from __future__ import annotations

import contextlib
import itertools
import sys
from pathlib import Path

import torch

from flowaccent.errors import ConfigError
from flowaccent.train.checkpoint import Progress
from flowaccent.train.experiment import check_world, note_format
from flowaccent.train.frames import FrameStream, standardization_sample


def start_run(model, optimizer, last: Path, state, changes, source, train_refs, config, env, check=False) -> Progress:
    r"""Restores a run to resume from ``state`` (``last``'s checkpoint; ``changes``: its stored config and the
    changes :func:`~flowaccent.train.experiment.refused_changes` allowed), or, with None, fits the standardisation
    and initialises a new one. ``check``: nothing is written after it, and its notes say so."""
    if state is not None:
        stored, changed = changes
        trained = state["progress"]["epoch"]
        patience = stored["train"]["patience"]
        stopped = bool(patience) and state["progress"]["bad_epochs"] >= patience
        if stopped:  # stopped early: nothing is left to train
            if "train.epochs" in changed:
                raise ConfigError(f"{last}: --train.epochs on --resume: the run stopped early at epoch {trained} (no "
                                  f"better validation NLL for {patience} epochs; best epoch "
                                  f"{state['progress']['best_epoch']}), so more epochs would train none; train afresh "
                                  f"in another --exp (with another train.patience) to go on")
            if env.is_main:
                again = "" if check else "; final.pt is written again from best.pt"
                print(f"train: the run stopped early at epoch {trained} (best epoch {state['progress']['best_epoch']}):"
                      f" nothing to train{again}", file=sys.stderr)
        if "train.epochs" in changed and config.train.epochs <= trained:
            raise ConfigError(f"{last}: --train.epochs {config.train.epochs} on --resume: the run has trained "
                              f"{trained} epoch(s) already; give more, or leave it as it was "
                              f"({stored['train']['epochs']})")
        if changed and env.is_main:
            cosine = config.train.lr_schedule == "cosine" and "train.epochs" in changed
            note = " (the cosine schedule follows the new count from here)" if cosine else ""
            print(f"train: resuming with {'; '.join(changed.values())}{note}", file=sys.stderr)
        model.load_state_dict(state["model"]["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        progress = Progress(**state["progress"])
        if not stopped and trained >= config.train.epochs and env.is_main:
            again = "" if check else "; final.pt is written again"
            print(f"train: the run has trained its {trained} epoch(s): nothing to train{again}", file=sys.stderr)
        goes_on = not stopped and trained < config.train.epochs
        check_world(progress, env, last, note=goes_on)
        if goes_on and env.is_main:
            note_format(state, last, check)
        return progress
    cfg = config.train
    if config.features.standardize:
        model.pipeline.fit(source.feats(r) for r in standardization_sample(train_refs, cfg.standardize_max_utts))
    init = FrameStream(source, train_refs, model.pipeline, cfg.batch_size, cfg.buffer_frames, cfg.seed)
    x, y = init_batch(init, model.prior.num_classes)
    model.initialize(x.to(env.device), y.to(env.device))  # a class-context flow takes its context from y
    return Progress(world=env.world)


def init_batch(stream: FrameStream, num_classes: int, most: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(frames (N, D), labels (N,))`` to initialise a model on: the first batch of ``stream``'s first epoch,
    joined by the next ones until every class has frames among them (at most ``most`` batches). The class means
    start from each class's own latents: a class absent from the first batch started at 0."""
    xs, ys = [], []
    with contextlib.closing(stream.epoch(0)) as batches:
        for x, y in itertools.islice(batches, most):
            xs.append(x)
            ys.append(y)
            if len(torch.unique(torch.cat(ys))) >= num_classes:
                break
    return torch.cat(xs), torch.cat(ys)
