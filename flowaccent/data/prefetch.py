r"""Running an iterator ahead in a background thread, so reading and features overlap compute.

Training and scoring each consume batches that a Python iterator builds (read the ark, CMVN,
deltas, shuffle or join). Run inline, every batch's loading time is added to the loop's; run in
a thread, it is hidden behind the model's forward and backward, which spend their time in
native code that releases the GIL. The queue holds at most ``depth`` items, so memory stays
bounded; the items come out in the same order with the same values as the iterator's (the
thread only moves the work earlier).

This is meant for a model on a GPU, where the CPU's cores are not all busy with the model. On a
CPU whose cores the model's own threads already keep busy it does not pay. Measured
(``benchmarks/bench_score.py``, docs/performance.md): scoring on the 2-core CPU took 1.1-1.2x as
long with the thread as with the features made inline, for the same CPU time, so cores sat
idle (most likely the model's OpenMP team waiting at its barriers for the thread that lost its
core to the loader). So the commands' default (``AUTO``) is a thread on CUDA and none on a CPU
(:func:`resolve_depth`).

An iterator that yields in bursts needs a queue that holds a whole burst: the training stream
reads a shuffling buffer's worth of utterances and then yields all of its batches at once, so
with a queue of 2 the thread could start on the next buffer only when the consumer had taken all
but 2 of the current one's batches, and the loading of each buffer was hidden behind 2 steps
instead of ~20. On one H200 the steps waited 1.31 s per 1M-frame epoch for 0.94 s of loading
with 2 (docs/performance.md). So :func:`resolve_depth` takes the iterator's ``burst``.

An exception in the iterator is re-raised in the consumer at the item where it happened (same
type and message); leaving the ``with`` block early (a ``break``, an error, Ctrl-C in the
consumer) stops the thread and waits for it, so the iterator's resources (open arks) are free
again when the block is left.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

import torch

T = TypeVar("T")

#: ``prefetch`` setting meaning: :data:`GPU_DEPTH` when the model runs on a GPU, inline on a CPU.
AUTO = -1
GPU_DEPTH = 2

_DONE = object()  # the iterator is exhausted


def resolve_depth(setting: int, device: torch.device, burst: int = 0) -> int:
    r"""Items made ahead for a ``prefetch`` setting: ``setting`` itself when >= 0; for
    :data:`AUTO`, ``burst + GPU_DEPTH`` when the model runs on ``device`` of type ``cuda`` (``burst``:
    the most items the iterator yields after one stretch of work, e.g.
    :attr:`flowaccent.train.frames.FrameStream.burst`), else 0."""
    if setting == AUTO:
        return burst + GPU_DEPTH if device.type == "cuda" else 0
    if setting < 0:
        raise ValueError(f"prefetch must be >= 0, or {AUTO} for auto, got {setting}")
    return setting


class Prefetched(Iterator[T]):
    r"""Items of an iterable, produced up to ``depth`` ahead by a daemon thread.

    ``wait_seconds`` accumulates the time the consumer spent waiting for an item (0 when the
    thread keeps ahead): the share of a loop's time that loading still costs.
    """

    def __init__(self, items: Iterable[T], depth: int):
        if depth < 1:
            raise ValueError(f"prefetch depth must be >= 1, got {depth}")
        self.wait_seconds = 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._produce, args=(items,), name="flowaccent-prefetch", daemon=True)
        self._thread.start()

    def _produce(self, items: Iterable[T]) -> None:
        try:
            for item in items:
                if not self._put((True, item)):
                    return
            self._put((True, _DONE))
        except BaseException as error:  # handed to the consumer, raised there
            self._put((False, error))
        finally:
            close_iterable(items)  # a generator: its finally blocks run in this thread

    def _put(self, entry: tuple[bool, object]) -> bool:
        r"""Queues ``entry`` unless the consumer stopped; returns whether it was queued."""
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        start = time.perf_counter()
        ok, item = self._queue.get()
        self.wait_seconds += time.perf_counter() - start
        if not ok:
            self._finished = True
            raise item  # type: ignore[misc]
        if item is _DONE:
            self._finished = True
            raise StopIteration
        return item  # type: ignore[return-value]

    def close(self) -> None:
        r"""Stops the thread and waits for it (idempotent)."""
        self._finished = True
        self._stop.set()
        self._thread.join()


class Inline(Iterator[T]):
    r"""Items of an iterable made on demand in the consumer's thread; ``wait_seconds`` is the
    time spent making them (what :class:`Prefetched` hides)."""

    def __init__(self, items: Iterable[T]):
        self.wait_seconds = 0.0
        self._items = iter(items)

    def __next__(self) -> T:
        start = time.perf_counter()
        try:
            return next(self._items)
        finally:
            self.wait_seconds += time.perf_counter() - start

    def close(self) -> None:
        close_iterable(self._items)


def close_iterable(items: Iterable) -> None:
    r"""Closes ``items`` if it is a generator (or has ``close``): its ``finally`` blocks run now."""
    close = getattr(items, "close", None)
    if close is not None:
        close()


@contextlib.contextmanager
def prefetch(items: Iterable[T], depth: int) -> Iterator[Prefetched[T] | Inline[T]]:
    r"""``with prefetch(items, depth) as it:`` iterates ``items`` with up to ``depth`` items made
    ahead in a thread, or inline with ``depth == 0``; either way ``it.wait_seconds`` is the time
    the loop waited for items. The thread is stopped and joined when the block is left."""
    prefetched: Prefetched[T] | Inline[T] = Prefetched(items, depth) if depth else Inline(items)
    try:
        yield prefetched
    finally:
        prefetched.close()
