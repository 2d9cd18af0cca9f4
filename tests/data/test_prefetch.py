r"""Prefetching in a thread: same items in order, errors where they happened, the thread always stopped."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
import torch

from flowaccent.data.prefetch import AUTO, GPU_DEPTH, Prefetched, prefetch, resolve_depth
from flowaccent.errors import DataDirError


def _threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "flowaccent-prefetch"]


@pytest.mark.parametrize("depth", [0, 1, 2, 5])
def test_same_items_in_the_same_order(depth):
    items = [torch.full((3,), float(i)) for i in range(20)]
    with prefetch(iter(items), depth) as it:
        got = list(it)
    assert len(got) == 20 and all(a is b for a, b in zip(got, items))
    assert not _threads()


def test_an_error_comes_out_at_its_item_with_its_type_and_message():
    finished = []

    def items():
        try:
            yield from range(3)
            raise DataDirError("feats.scp: utterance 'u3': 12 frames, but utt2num_frames says 13")
        finally:
            finished.append(True)

    got = []
    with pytest.raises(DataDirError, match="utterance 'u3'"), prefetch(items(), 2) as it:
        for item in it:
            got.append(item)
    assert got == [0, 1, 2] and finished == [True]
    assert not _threads()


@pytest.mark.parametrize("stop", [StopIteration, KeyboardInterrupt])
def test_leaving_early_stops_the_thread_and_closes_the_iterator(stop):
    made, finished = [], []

    def items():
        try:
            for i in range(1000):
                made.append(i)
                yield i
        finally:
            finished.append(threading.current_thread().name)

    expected = pytest.raises(KeyboardInterrupt) if stop is KeyboardInterrupt else contextlib.nullcontext()
    with expected, prefetch(items(), 3) as it:
        for i in it:
            if i == 4:
                time.sleep(0.2)  # let the thread run as far ahead as it can
                if stop is KeyboardInterrupt:
                    raise KeyboardInterrupt
                break
    assert finished == ["flowaccent-prefetch"]  # the iterator's finally ran, in the thread
    assert len(made) <= 5 + 3 + 1  # bounded: the consumed items, the queue, one in hand
    assert not _threads()


def test_loading_is_hidden_behind_the_consumer():
    r"""Producer and consumer each take 40 ms per item: inline the loop waits for every item,
    prefetched only for the first (both measured by ``wait_seconds``, sleeps so CPU load does not matter)."""

    def items():
        for i in range(10):
            time.sleep(0.04)
            yield i

    waits = {}
    for depth in (0, 2):
        with prefetch(items(), depth) as it:
            for _ in it:
                time.sleep(0.04)
            waits[depth] = it.wait_seconds
    assert waits[0] >= 10 * 0.04
    assert waits[2] < 0.5 * waits[0]


def test_depth_must_be_positive_and_auto_is_a_thread_on_a_gpu_only():
    with pytest.raises(ValueError, match="depth must be >= 1"):
        Prefetched(iter([]), 0)
    assert resolve_depth(AUTO, torch.device("cpu")) == 0
    assert resolve_depth(AUTO, torch.device("cuda", 1)) == GPU_DEPTH > 0
    assert resolve_depth(AUTO, torch.device("cuda"), burst=22) == 22 + GPU_DEPTH
    assert resolve_depth(AUTO, torch.device("cpu"), burst=22) == 0 and resolve_depth(3, torch.device("cuda"), 22) == 3
    assert resolve_depth(0, torch.device("cuda")) == 0 and resolve_depth(3, torch.device("cpu")) == 3
    with pytest.raises(ValueError, match="prefetch must be >= 0, or -1 for auto, got -2"):
        resolve_depth(-2, torch.device("cpu"))


def test_a_queue_that_holds_a_burst_lets_the_next_stretch_of_work_start_at_once():
    r"""An iterator that works, then yields a burst of items (the training stream's shuffling
    buffer): with a queue of ``burst + GPU_DEPTH`` the producer starts the second stretch before
    the consumer has taken a single item; with :data:`GPU_DEPTH` alone it cannot."""
    burst = 5
    for depth, starts_early in ((burst + GPU_DEPTH, True), (GPU_DEPTH, False)):
        second = threading.Event()

        def bursts(second):
            for stretch in range(2):
                if stretch:
                    second.set()
                yield from range(burst)

        with prefetch(bursts(second), depth) as items:
            # nothing consumed yet; a loaded machine may take long to start the thread, but never sets it without room
            assert second.wait(timeout=10.0 if starts_early else 1.0) is starts_early
            assert list(items) == list(range(burst)) * 2
