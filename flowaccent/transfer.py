r"""Copies between the host and a GPU that do not make the host wait for the GPU.

On a GPU the training step and the scoring forward are launched by the host and run later; the
host can launch the next one while the GPU still works on this one, unless something makes it
wait. Two things did, at every step: a copy of a batch from ordinary (pageable) host memory to
the GPU (PyTorch then waits for the GPU's queue to drain before it returns), and reading the
step's results on the host (the logged means, the scores) right after launching it.

So batches are put in page-locked memory while they are made (:func:`pinned`, in the loader
thread), copied with ``non_blocking`` (:func:`to_device`), and results travel back in the same
way, read only once an event says they have arrived (:class:`HostCopy`), by which time the host
has launched the next step. On a CPU all of this is the plain copy (none).

Measured on one H200 (docs/performance.md, "Second lease"): no gain beyond the noise for eager
training and scoring, whose steps are bound by the host launching their kernels (15.1 ms to
launch a training step the GPU runs in 9.3), so the GPU waited for the host either way. What
this removes is the host's own waiting, which is what is left once launching is cheap (CUDA
graphs, ``train.compile_mode reduce-overhead``).

A third thing made the host wait at every forward: reading a flag that sits with the weights on
the GPU ("is ActNorm initialised?", "is the standardisation fitted?"); such flags only ever turn
True, so :class:`TrueFlags` remembers them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

import torch

from flowaccent.data.prefetch import close_iterable

T = TypeVar("T")


def pinned(items: Iterable[T], device: torch.device) -> Iterable[T]:
    r"""``items`` (tuples, or None) with each tuple's tensors in page-locked host memory when
    ``device`` is a GPU, so that :func:`to_device` need not wait; ``items`` itself on a CPU. On a GPU
    a generator that closes ``items`` when closed, so that its clean-up runs where this one's does."""
    return _pinning(items) if device.type == "cuda" else items


def _pinning(items: Iterable[T]) -> Iterator[T]:
    try:
        for item in items:
            yield item if item is None else tuple(t.pin_memory() if torch.is_tensor(t) else t for t in item)
    finally:
        close_iterable(items)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    r"""``t`` on ``device``; from page-locked memory without making the host wait for the copy (the
    GPU's queue orders it before the work that reads it)."""
    return t.to(device, non_blocking=t.is_pinned())


class HostCopy:
    r"""Tensors on their way from ``device`` to the host: the copies are queued behind the work
    that makes them, and :meth:`get` waits for them (only for them, not for the work launched
    after). On a CPU the tensors themselves.

    Arguments:
        tensors: name -> tensor on the device, any shape.
    """

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self._event = None
        if device := next((t.device for t in tensors.values() if t.device.type == "cuda"), None):
            self._tensors = {k: t.to("cpu", non_blocking=True) for k, t in tensors.items()}  # page-locked
            self._event = torch.cuda.Event()
            self._event.record(torch.cuda.current_stream(device))  # the copies' stream: the tensors' device's
        else:
            self._tensors = dict(tensors)

    def get(self) -> dict[str, torch.Tensor]:
        r"""The tensors on the host, once they have arrived."""
        if self._event is not None:
            self._event.synchronize()
            self._event = None
        return self._tensors


class TrueFlags:
    r"""Mixin for a :class:`torch.nn.Module` with bool buffers that only ever turn True (``initialized``,
    ``fitted``) except by loading a state: :meth:`flag` reads one from the device until it is True and
    then answers from the host; loading a state forgets the answers."""

    def flag(self, name: str) -> bool:
        r"""The bool buffer ``name``."""
        known = self.__dict__.setdefault("_true_flags", set())
        if name not in known and bool(getattr(self, name)):
            known.add(name)
        return name in known

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self.__dict__.get("_true_flags", set()).clear()  # the loaded state may say otherwise
        super()._load_from_state_dict(*args, **kwargs)  # type: ignore[misc]
