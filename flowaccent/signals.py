r"""The signals that stop a command: what a user (Ctrl-C), a scheduler (``kill``, Slurm) and a closed terminal send.
:mod:`flowaccent.cli._stops` turns the others into Ctrl-C's ``KeyboardInterrupt``, :mod:`flowaccent.workers` stops its
workers on them and holds them back while it forks, and :mod:`flowaccent.train.interrupts` holds them back in a
training step.

A SIGTERM or SIGHUP that comes again within :data:`AGAIN_S` of the one a command acted on is the same stop sent
twice, and is dropped (:func:`repeated`): a scheduler's SIGTERM reaches every process of a job, and a recipe passes
its own on to the command it runs (``recipes/common/foreground.sh``), so the command got two a few milliseconds
apart. The second broke into what the first set going: a training step held to its end, a checkpoint's write, the
removal of a half-scored set (it stayed, and a lone ``.out.lock`` in a folder the run had made). A second Ctrl-C
still acts (``fbank``'s workers are killed at once on it). Only while the command's own handlers are in place
(:func:`owned`): a library caller's handler gets every signal, as it set it up to.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterable, Iterator

#: SIGINT first; the others are unwound as it is.
STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

#: Seconds within which a SIGTERM or SIGHUP repeats the last one acted on (:func:`repeated`).
AGAIN_S = 1.0

#: When each signal last came that was not dropped (``time.monotonic``).
_acted: dict[int, float] = {}
#: Set while :func:`pass_on` hands a signal held back to its handler: not a new arrival.
_passing = False
#: The signals that flowaccent's command line handles now (:func:`owned`).
_own: set[int] = set()


@contextlib.contextmanager
def owned(numbers: Iterable[int]) -> Iterator[None]:
    r"""While the block runs, ``numbers`` are handled by the command line's own handlers (:mod:`flowaccent.cli._stops`):
    only their repeats are dropped (:func:`repeated`)."""
    numbers = set(numbers)
    _own.update(numbers)
    try:
        yield
    finally:
        _own.difference_update(numbers)


def repeated(signum: int) -> bool:
    r"""For a handler the system called with ``signum``: whether it is the same stop again (a SIGTERM or SIGHUP
    within :data:`AGAIN_S` of the last of its kind not dropped), to be dropped. Records the arrival otherwise.
    Never for SIGINT, for a signal the command line does not handle itself (:func:`owned`: a library caller's
    handler sees every one), nor for a signal :func:`pass_on` hands on."""
    if signum == signal.SIGINT or signum not in _own or _passing:
        return False
    now = time.monotonic()
    last = _acted.get(signum)
    if last is not None and now - last < AGAIN_S:
        return True
    _acted[signum] = now
    return False


def pass_on(handler: Callable, signum: int, frame) -> None:
    r"""Calls ``handler(signum, frame)`` for a signal held back and delivered late: the handler does not take it for
    a repeat of the arrival it was held at."""
    global _passing
    passing, _passing = _passing, True
    try:
        handler(signum, frame)
    finally:
        _passing = passing  # a pass_on within another's handler leaves the outer one's in force


def forget() -> None:
    r"""Forgets the signals that came: a new command, pool of workers or training begins (several run in one process:
    tests, notebooks)."""
    _acted.clear()


@contextlib.contextmanager
def ending_at_once() -> Iterator[None]:
    r"""While the block runs, a stop signal ends the process at once (the system's default), where the command line
    handles it (:func:`owned`; SIGINT: Python's own handler). For a wait in C++ that runs no Python handler until it
    returns, with nothing made yet to clean up: the rendezvous of torchrun's processes, which waited deaf to
    torchrun's SIGTERM (sent once another process had failed before joining) until torchrun killed it 30 s later."""
    mine = {number: signal.getsignal(number) for number in STOPS}
    mine = {number: handler for number, handler in mine.items()
            if number in _own or (number == signal.SIGINT and handler is signal.default_int_handler)}
    try:
        for number in mine:
            signal.signal(number, signal.SIG_DFL)
    except ValueError:  # not the main thread: its handlers stay
        mine = {}
    try:
        yield
    finally:
        for number, handler in mine.items():
            signal.signal(number, handler)


def ignore_stops() -> None:
    r"""Ignores :data:`STOPS` from here on, one already come among them (its handler not yet run): for a process's
    last steps, where a ``KeyboardInterrupt`` would unwind past its ``os._exit``. The disposition is the process's:
    blocking them in this thread alone left them to the others (torch's), whose delivery still raised here."""
    for number in STOPS:
        try:
            signal.signal(number, signal.SIG_IGN)
        except ValueError:  # not the main thread: nothing to unwind here
            pass
