r"""One training run's loop: epochs, steps, validation, checkpoints and logs (:class:`Runner`)."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from flowaccent.data.atomic import atomic_link
from flowaccent.data.prefetch import Inline, Prefetched, prefetch, resolve_depth
from flowaccent.errors import ConfigError
from flowaccent.model import FlowModel
from flowaccent.progress import progress_bar
from flowaccent.runtime import compiled, compute_precision
from flowaccent.train import distributed
from flowaccent.train.checkpoint import Progress, checkpoint_path, resume_command, save_checkpoint
from flowaccent.train.config import ExperimentConfig
from flowaccent.train.frames import FrameStream
from flowaccent.train.interrupts import HeldSignals
from flowaccent.train.step_checks import StepChecks
from flowaccent.train.tensorboard import add_scalars, open_writer
from flowaccent.train.validation import held_out_nll
from flowaccent.transfer import HostCopy, pinned, to_device
from flowaccent.words import counted


def _stopped_by(error: BaseException) -> bool:
    r"""Whether ``error`` stops a run at a whole step: a signal (``KeyboardInterrupt``), or a collective whose peer
    process is gone; any other error (a bug, a non-finite loss) is one the step itself raised."""
    return isinstance(error, KeyboardInterrupt) or distributed.peer_gone(error) is not None


class Runner:
    r"""Epochs, steps, validation, checkpoints and logs of one training run."""

    def __init__(self, model: FlowModel, optimizer, config: ExperimentConfig, exp: Path, env, quiet: bool):
        self.model, self.optimizer, self.config, self.exp, self.env = model, optimizer, config, exp, env
        self.cfg = config.train
        self.quiet = quiet or not env.is_main
        self.net = model
        if env.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(model)  # broadcasts rank 0's initialised weights
        #: the training forward: ``self.net``, or it compiled (train.compile; validation runs ``model`` eagerly)
        mode = None if self.cfg.compile_mode == "default" else self.cfg.compile_mode
        self.forward = compiled(self.net, env.device, "train", mode) if self.cfg.compile else self.net
        if self.cfg.compile and not self.quiet:
            print("train: train.compile: the first step of each batch shape compiles first", file=sys.stderr)
        self.tb = open_writer(exp) if env.is_main else None  # after trim_log: its records, again
        self.log_path = exp / "log" / "train.jsonl"
        self.log_file = open(self.log_path, "a") if env.is_main else None
        #: holds SIGINT/SIGTERM back in critical sections while :meth:`fit` runs (a step with its count, log record
        #: and checkpoint; a checkpoint's write; an epoch's end); before and after it, signals act at once
        self.held = HeldSignals(deliver_on=distributed.peer_gone)

    def fit(self, stream: FrameStream, valid_stream: FrameStream, progress: Progress) -> None:
        r"""Trains the remaining epochs on ``stream``'s batches and validates on ``valid_stream``'s
        utterances after each. One prefetching iterator runs over all the epochs
        (:meth:`FrameStream.epochs`): with a thread (``train.prefetch``) the next epoch's first
        batches are made while this one's validation and checkpoints run. So that the two read at
        the same time, ``valid_stream`` must read through its own :class:`~flowaccent.train.frames.FrameSource`."""
        stopped = bool(self.cfg.patience) and progress.bad_epochs >= self.cfg.patience  # early: resuming it is a no-op
        epochs = range(progress.epoch, progress.epoch if stopped else self.cfg.epochs)
        plan = [(epoch, self._steps_per_epoch(stream, epoch)) for epoch in epochs]
        # the steps of the whole run: those taken, and the rest (the current epoch's taken ones counted once)
        total = progress.global_step + sum(steps for _, steps in plan) - (progress.step_in_epoch if plan else 0)
        if self.env.is_main and plan and total < self.cfg.log_every_steps:  # no train record: no curves, no word
            print(f"train: note: train.log_every_steps {self.cfg.log_every_steps} is more than the run's {total} "
                  "steps: no train records (nor curves) will be written; give a smaller log_every_steps",
                  file=sys.stderr)
        if self.env.is_main and plan and total < self.cfg.warmup_steps:  # the run ended inside its warm-up, unsaid
            share = math.floor(1000 * total / self.cfg.warmup_steps) / 10  # 0.2%, 99.9%: not 0% nor 100%
            share_text = f"{share:g}%" if share else "under 0.1%"
            print(f"train: note: train.warmup_steps {self.cfg.warmup_steps} is more than the run's {total} steps: the "
                  f"learning rate stays below train.lr {self.cfg.lr:g} throughout (at most {share_text} of it); give a "
                  "smaller warmup_steps", file=sys.stderr)
        if plan and not self.env.distributed and (frames := stream.num_frames(plan[0][0])) < stream.batch_size:
            print(f"train: note: train.batch_size {self.cfg.batch_size} is more than the {frames} training frames: "
                  "each epoch is one step of all of them", file=sys.stderr)  # 1e12 trained so, without a word
        depth = resolve_depth(self.cfg.prefetch, self.env.device, stream.burst)
        batches = pinned(stream.epochs(plan, progress.step_in_epoch), self.env.device)  # made in the thread, if any
        with prefetch(batches, depth) as batches, self.held:  # a Ctrl-C waits for a step's count, its log, its saves
            for _, steps in plan:
                seconds = self._train_epoch(batches, steps, progress)
                start = time.perf_counter()
                try:
                    valid = self._validate(valid_stream)
                except (KeyboardInterrupt, RuntimeError) as error:  # the epoch's steps are done: a resume validates
                    self._save_if_stopped(error, progress)  # it and goes on (a process gone in its collectives: rank 0
                    raise  # saved nothing, and the epoch was lost)
                seconds["valid_s"] = time.perf_counter() - start
                self._end_epoch(progress, valid, seconds)
                if self.cfg.patience and progress.bad_epochs >= self.cfg.patience:
                    self._log({"event": "early_stop", "epoch": progress.epoch, "best_epoch": progress.best_epoch})
                    break

    def _steps_per_epoch(self, stream: FrameStream, epoch: int) -> int:
        r"""Full batches only: the frames past the last (fewer than a batch, other frames each epoch) wait for
        the next epoch. A short last batch took a full-weight step on a few frames, and under BatchNorm a batch of
        one frame made the loss NaN (its variance over the batch) and stopped the run. One process with fewer
        frames than a batch takes them all in one step."""
        frames = stream.num_frames(epoch)
        steps = (
            distributed.all_min(frames // stream.batch_size, self.env)
            if self.env.distributed
            else max(frames // stream.batch_size, min(frames, 1))
        )
        if self.cfg.max_steps_per_epoch:
            steps = min(steps, self.cfg.max_steps_per_epoch)
        if steps < 1 and self.env.distributed:  # every rank is here: the minimum is global
            if len(stream.refs) < self.env.world:  # a process has none: 'lower train.batch_size' could not help
                raise ConfigError(
                    f"{counted(len(stream.refs), 'training utterance')} for {self.env.world} processes, each of "
                    f"which streams its own share of them: a process has none; use at most {len(stream.refs)} "
                    f"process{'es' if len(stream.refs) > 1 else ''}"
                )
            raise ConfigError(
                f"train.batch_size {self.cfg.batch_size} is {counted(stream.batch_size, 'frame')} for each of the "
                f"{self.env.world} processes, more than the fewest training frames a process has in epoch "
                f"{epoch + 1} ({distributed.all_min(frames, self.env)}: each streams its own share of the "
                f"utterances); lower train.batch_size, or use fewer processes"
            )
        if steps < 1:
            raise ConfigError(f"train.batch_size {self.cfg.batch_size} is larger than the training frames ({frames})")
        return steps

    def _train_epoch(self, batches: Prefetched | Inline, steps: int, progress: Progress) -> dict[str, float]:
        r"""Steps through one epoch's batches of ``batches`` (up to the ``None`` that ends them), each step with its
        count, its log record and its checkpoint one critical section of :attr:`held`; returns its seconds:
        ``train_s`` in all, ``data_wait_s`` of them waiting for batches."""
        self.model.train()
        bar = progress_bar(
            total=steps,
            initial=progress.step_in_epoch,
            unit="step",
            disable=self.quiet,
            desc=f"epoch {progress.epoch + 1}/{self.cfg.epochs}",
        )
        start, frames, timed, sums = time.perf_counter(), 0, 0, torch.zeros(3, dtype=torch.float64)
        if progress.window:  # resumed within the epoch: the window its checkpoint left open
            sums += torch.tensor(progress.window[:3], dtype=torch.float64)
            frames = int(progress.window[3])
        epoch_start = start
        epoch_waited = waited = batches.wait_seconds
        checks = StepChecks(sums, self.exp)
        try:
            for x, y in iter(batches.__next__, None):
                # A Ctrl-C waits for the step's count (last.pt then matches the weights) and for the record and
                # checkpoint due at this step: delivered between the count and the record, it saved the step
                # in the open window and its record was never written (the log skipped it on resume).
                with self.held.critical():
                    x, y = to_device(x, self.env.device), to_device(y, self.env.device)
                    batch = len(x) * self.env.world  # every rank's batch is one size (full batches only)
                    checks.add(self._step(x, y, progress), batch, progress)
                    frames, timed = frames + batch, timed + batch
                    progress.step_in_epoch += 1
                    progress.global_step += 1
                    bar.update()
                    if progress.global_step % self.cfg.log_every_steps == 0:
                        checks.flush()
                        elapsed = time.perf_counter() - start
                        self._log_train(progress, sums / frames, timed / elapsed, batches.wait_seconds - waited)
                        bar.set_postfix(nll=f"{(sums[0] / frames).item():.2f}", refresh=False)  # drawn as it moves
                        start, frames, timed, waited = time.perf_counter(), 0, 0, batches.wait_seconds
                        sums.zero_()
                    every = self.cfg.checkpoint_every_steps
                    if every and progress.global_step % every == 0:
                        checks.flush()  # only checked steps are saved
                        progress.window = [*sums.tolist(), frames]
                        self._save("last", progress)
            checks.flush()
        except (KeyboardInterrupt, RuntimeError) as error:  # stopped, or another process of the run is gone
            if _stopped_by(error):  # any other error's step did not count
                checks.flush()
                progress.window = [*sums.tolist(), frames]
                bar.close()  # first: its line was drawn again after the message, which began on it
                self._save_if_stopped(error, progress)
            raise
        finally:
            bar.close()
        progress.window = []  # the epoch's last steps short of a window are not logged
        return {"train_s": time.perf_counter() - epoch_start, "data_wait_s": batches.wait_seconds - epoch_waited}

    def _step(self, x: torch.Tensor, y: torch.Tensor, progress: Progress) -> HostCopy:
        r"""One optimiser step on the batch ``x (B, D)``, ``y (B,)``; returns its loss, -LogP and -LogDet
        means on their way to the host (read one step later: :class:`StepChecks`), over every rank's batch: the
        records said rank 0's alone, and its frames per second, half the run's with 2 processes."""
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr(progress)
        threshold = self.cfg.gradient_filter_threshold if self.cfg.gradient_filter else None
        with compute_precision(self.env.device, self.cfg.precision):  # the class as context: from y, in the flow
            out = self.forward(x, y, None, threshold)
        loss = out.nll.mean()
        stats = torch.stack([loss.detach(), -out.log_p.detach().mean(), -out.log_det.detach().mean()]).double()
        stats = distributed.mean_over_ranks(stats, self.env)
        stats = HostCopy({"stats": stats})  # no wait here: the host goes on launching the backward
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        return stats

    def _lr(self, progress: Progress) -> float:
        cfg = self.cfg
        warm = min(1.0, (progress.global_step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
        if cfg.lr_schedule == "cosine":
            return cfg.lr * warm * 0.5 * (1 + math.cos(math.pi * progress.epoch / cfg.epochs))
        if cfg.lr_schedule == "exponential":
            return cfg.lr * warm * cfg.lr_decay**progress.epoch
        return cfg.lr * warm

    def _validate(self, stream: FrameStream) -> dict[str, float] | None:
        r"""The held-out NLL of rank 0's model (the one it saves), the same on every rank: each rank validated all of
        the set with its own BatchNorm running statistics (DDP hands out rank 0's before each forward, and each
        rank then updates its own from its shard), so the ranks' NLLs differed, and with them could their best
        epoch and early stop (one rank then waited for the other's gradients until the collectives' timeout)."""
        self.model.eval()
        if self.env.distributed:
            distributed.broadcast_buffers(self.model)
        return held_out_nll(self.model, stream, self.cfg.batch_size, self.env.device, self.cfg.precision, self.env)

    def _end_epoch(self, progress: Progress, valid: dict | None, seconds: dict[str, float]) -> None:
        r"""Counts the epoch, keeps the best model, writes the checkpoints and logs the epoch with where
        its wall time went (``seconds``: ``train_s``, ``data_wait_s``, ``valid_s``; ``save_s`` added here); a
        signal waits for all of it (:attr:`held`)."""
        with self.held.critical():
            self._end_epoch_held(progress, valid, seconds)

    def _end_epoch_held(self, progress: Progress, valid: dict | None, seconds: dict[str, float]) -> None:
        start = time.perf_counter()
        progress.epoch += 1
        progress.step_in_epoch = 0
        record = {"epoch": progress.epoch, "step": progress.global_step, "valid": valid}
        improved = valid is not None and valid["nll"] < progress.best_valid
        if improved:
            progress.best_valid, progress.best_epoch, progress.bad_epochs = valid["nll"], progress.epoch, 0
        elif valid is not None:
            progress.bad_epochs += 1
        progress.history.append(record)
        if improved:  # best first: killed in between, last.pt is the older one and a resume redoes the epoch
            self._save("best", progress)
            if self.env.is_main:  # the same checkpoint: written once, named twice
                atomic_link(checkpoint_path(self.exp, "best"), checkpoint_path(self.exp, "last"))
        else:
            self._save("last", progress)
        seconds = {**seconds, "save_s": time.perf_counter() - start}
        self._log({"event": "epoch", **record, **{k: round(v, 4) for k, v in seconds.items()}})
        if not self.quiet and self.env.is_main:  # the bar goes with its epoch; this line stays above the next
            said = f"valid NLL {valid['nll']:.3f}" if valid is not None else "no validation (no utterances held out)"
            best = f" (best {progress.best_valid:.3f}, epoch {progress.best_epoch})" if valid is not None else ""
            tqdm.write(f"train: epoch {progress.epoch}/{self.cfg.epochs}: {said}{best}, "
                       f"{sum(v for k, v in seconds.items() if k != 'data_wait_s'):.0f} s", file=sys.stderr)

    def _log_train(self, progress: Progress, means: torch.Tensor, fps: float, data_wait: float) -> None:
        r"""Logs a window's means; ``data_wait``: seconds its steps waited for batches (reading,
        features and shuffling, as far as no prefetch thread hid them)."""
        nll, neg_log_p, neg_log_det = means.tolist()
        record = {
            "event": "train",
            "epoch": progress.epoch + 1,
            "step": progress.global_step,
            "nll": nll,
            "log_p": -neg_log_p,
            "log_det": -neg_log_det,
            "lr": self.optimizer.param_groups[0]["lr"],  # the last step's (_lr(progress) is the next one's)
            "frames_per_s": fps,
            "data_wait_s": round(data_wait, 4),
        }
        self._log(record)

    def _log(self, record: dict) -> None:
        r"""One record to ``log/train.jsonl`` and its scalars to TensorBoard."""
        record = {**record, "time": round(time.time(), 3)}  # wall clock (Unix seconds), for curves against time
        if self.log_file is not None:
            try:
                self.log_file.write(json.dumps(record) + "\n")
                self.log_file.flush()
            except OSError as error:  # a full disk: the log's name with it (resuming trims a line cut short)
                raise OSError(error.errno, error.strerror, str(self.log_path)) from error
        if self.tb is not None:
            add_scalars(self.tb, record)

    def _save(self, which: str, progress: Progress) -> None:
        r"""Writes checkpoint ``which`` (:func:`checkpoint_path`; rank 0); a signal waits for it: a Ctrl-C inside
        ``torch.save`` ended the run with 'RuntimeError: [enforce fail at inline_container.cc] unexpected pos' rather
        than as interrupted."""
        if self.env.is_main:
            with self.held.critical():
                save_checkpoint(
                    checkpoint_path(self.exp, which), self.model, self.optimizer, progress, self.config.to_dict()
                )

    def _save_if_stopped(self, error: BaseException, progress: Progress) -> None:
        r"""Writes ``last.pt`` at ``progress`` where ``error`` stopped the run there (:func:`_stopped_by`): a signal,
        or another process of the run gone. Of a signal it says how to go on (the command then says 'interrupted',
        which did not say the run was kept)."""
        if not _stopped_by(error):
            return
        self._save("last", progress)
        if isinstance(error, KeyboardInterrupt) and self.env.is_main:
            print(f"train: stopped in epoch {progress.epoch + 1} at step {progress.global_step}: "
                  f"{checkpoint_path(self.exp, 'last')} written; '{resume_command(self.exp, self.env.world)}' "
                  f"goes on from it", file=sys.stderr)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.log_file is not None:
            try:
                self.log_file.close()
            except OSError as error:  # what a full disk left unwritten
                raise OSError(error.errno, error.strerror, str(self.log_path)) from error
