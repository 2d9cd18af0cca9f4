r"""Multi-process training under ``torchrun``: gloo on CPU, nccl on GPU; rank 0 writes."""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import time
import traceback

import torch
import torch.distributed as dist

from flowaccent import torchrun
from flowaccent.runtime import resolve_device
from flowaccent.signals import ending_at_once, ignore_stops


@dataclasses.dataclass(frozen=True)
class DistEnv:
    r"""This process's place: ``rank`` of ``world`` processes, on ``device``."""

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup(device: str = "auto") -> DistEnv:
    r"""Initialises the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1)."""
    world = torchrun.world_size()
    return DistEnv(torchrun.rank(), world, join_group(device, "train"))


def join_group(device: str, what: str, backend: str | None = None, **options) -> torch.device:
    r"""This process's device (``device``, the option ``what.device``: checked by every process before any joins,
    made current where it is a GPU), and under torchrun the run's process group initialised (``backend``: nccl on a
    GPU, gloo on the CPU by default; ``options`` go to ``init_process_group``). A stop signal in the rendezvous
    ends the process at once (:func:`~flowaccent.signals.ending_at_once`): nothing is made yet."""
    target = resolve_device(device, what)
    if target.type == "cuda":
        torch.cuda.set_device(target)
    if torchrun.world_size() > 1 and not dist.is_initialized():
        with ending_at_once():
            dist.init_process_group(backend or ("nccl" if target.type == "cuda" else "gloo"), **options)
    return target


@torch.no_grad()
def broadcast_buffers(module: torch.nn.Module) -> None:
    r"""Every rank takes rank 0's buffers (BatchNorm's running statistics): DDP hands them out before each
    forward, and each rank then updates its own from its shard, so after the last step they differed from
    the model rank 0 saved."""
    for buffer in module.buffers():
        carried = buffer.detach().to(torch.float64 if not buffer.is_floating_point() else buffer.dtype).clone()
        dist.broadcast(carried, 0)
        buffer.copy_(carried.to(buffer.dtype))


def all_min(value: int, env: DistEnv) -> int:
    r"""The minimum of ``value`` over all processes."""
    if not env.distributed:
        return value
    t = torch.tensor([value], dtype=torch.long, device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def sum_over_ranks(values: torch.Tensor, env: DistEnv) -> torch.Tensor:
    r"""``values`` (on the host) summed over all processes: a new tensor on the host, the same on every rank."""
    summed = values.to(env.device)
    dist.all_reduce(summed)
    return summed.cpu()


def mean_over_ranks(values: torch.Tensor, env: DistEnv) -> torch.Tensor:
    r"""``values`` averaged over all processes (in place; a tensor on ``env.device``): the means of a step whose
    ranks' batches are of one size are the means over the whole batch. Every rank then holds the same."""
    if env.distributed:
        dist.all_reduce(values)  # gloo has no AVG: SUM, then divided
        values /= env.world
    return values


#: What gloo and NCCL say when a peer process is gone (killed, or stopped by its own error) during a collective.
_PEER_GONE = ("Connection reset by peer", "Connection closed by peer", "Broken pipe", "remote process exited",
              "NCCL communicator was aborted", "Socket Timeout")


def peer_gone(error: BaseException) -> str | None:
    r"""The backend's reason (its first sentence) where ``error`` says another process of the run is gone, else
    None: a collective whose peer left raises a RuntimeError with a 50-line traceback."""
    if not isinstance(error, RuntimeError):
        return None
    text = str(error)
    if not any(phrase in text for phrase in _PEER_GONE):
        return None
    reason = text.split(". This is typically caused")[0].split("\n")[0]
    return re.sub(r"^\[[^\]]*(third_party|gloo|nccl)[^\]]*\]\s*", "", reason).strip()


#: The key under which rank 0 leaves its error in the run's store (:func:`said_once`).
_SAID = "flowaccent/error"


def said_once(line: str, wait_s: float = 2.0, any_line: bool = False, leave: bool = False) -> str | None:
    r"""What this process prints of an error ``line`` every process of a torchrun run may hit alike (a missing data
    dir, too large a batch): each printed it, one line per process. Rank 0 prints ``line``, then leaves it in the
    run's store (:func:`mark_said`); another rank prints nothing where rank 0 left the same line within
    ``wait_s`` seconds, else ``line`` with its rank (an error of its own, or rank 0 is busy elsewhere).
    ``any_line``: nothing where rank 0 left any line (a stop signal's ``line``: rank 0's own stop, or the error
    after which torchrun stopped this rank, says why the run ended; a signal to this rank alone is said).
    ``leave``: another rank leaves the process group first (``destroy_process_group``): rank 0, waiting for it in a
    collective, is deaf to signals there, and would say its own stop only once this rank had gone.

    A signal while waiting (torchrun's SIGTERM, sent once rank 0 has exited: most often after leaving its line)
    ends the wait; the store is asked once more. (That SIGTERM had rank 1 say rank 0's line again, with its rank.)"""
    if not dist.is_initialized() or dist.get_rank() == 0:
        return line
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        store = dist.distributed_c10d._get_default_store()
    except Exception:  # torch's private API: no store to ask
        store = None
    if leave:
        if (error := sys.exc_info()[1]) is not None:  # the stop's traceback: its frames (a collective's locals)
            traceback.clear_frames(error.__traceback__)  # held the group, whose connections stayed open till exit
        try:
            dist.destroy_process_group()  # the group freed, its connections closed: rank 0's collective ends
        except (Exception, KeyboardInterrupt):  # a peer gone already: left all the same
            pass
    deadline = time.monotonic() + wait_s
    try:
        while (said := _left_by_rank_0(store)) is None and time.monotonic() < deadline:
            time.sleep(0.02)  # polled: the store's own wait logged two socket warnings on a timeout
    except KeyboardInterrupt:
        try:
            said = _left_by_rank_0(store)
        except KeyboardInterrupt:  # yet another signal: said here
            said = None
    if said == line or (any_line and said):
        return None
    return torchrun.with_rank(line, rank, world)


def _left_by_rank_0(store) -> str | None:
    r"""The line rank 0 left in the run's ``store`` (:func:`mark_said`); None where there is none yet, ``""`` where
    there is no store to ask: no use waiting."""
    try:
        return store.get(_SAID).decode() if store.check([_SAID]) else None
    except Exception:
        return ""


def mark_said(line: str) -> None:
    r"""Rank 0, after printing ``line``: leaves it for the other ranks (:func:`said_once`)."""
    if dist.is_initialized() and dist.get_rank() == 0:
        try:
            dist.distributed_c10d._get_default_store().set(_SAID, line)
        except Exception:  # the others then say it too, with their rank
            pass


def finish(code: int) -> None:
    r"""Ends a torchrun worker cleanly and exits with ``code``.

    torch 2.13 with gloo on CPU sometimes aborts at interpreter exit after the work
    is done (DESIGN.md section 5); a barrier, ``destroy_process_group``, flushed
    streams and ``os._exit`` avoid it. The stop signals are ignored once the group is gone: torchrun's SIGTERM, sent
    once another process has exited, landed in the flush, and its KeyboardInterrupt unwound past ``os._exit`` (a
    traceback, and the interpreter's own exit).
    """
    if dist.is_initialized():
        try:
            if code == 0:
                dist.barrier()
            dist.destroy_process_group()
        except (Exception, KeyboardInterrupt):  # a peer already gone, or a signal while waiting for it: exit anyway
            pass
    ignore_stops()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
