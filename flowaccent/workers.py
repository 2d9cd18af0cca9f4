r"""A function mapped over jobs in worker processes that stops without killing any of them.

``multiprocessing.Pool`` used as a context manager ends with ``terminate()``: on the first error
it sends SIGTERM to every worker. A worker killed while it writes a result holds the result
queue's lock for ever, and the pool's own shutdown then waits on that lock: the command hangs
(seen with ``flowaccent fbank --nj 2`` and a failing ``wav.scp`` pipe: twice in at most 920 runs
on tiny utterances, in a process with other threads; none in 1500 runs with this module).
:func:`imap_processes` instead cancels the jobs not started, lets the running ones finish and
waits for the workers to exit on their own; a worker that dies is reported
(:class:`~flowaccent.errors.WorkerError`) instead of waited for. Workers ignore Ctrl-C: the
parent gets it, says so, and stops them as above (a job that calls :func:`check_stopping` between its
parts, as ``fbank``'s between a chunk's recordings, ends early); a second Ctrl-C kills the running workers and
leaves the pool (:data:`ABORTED`: the command then exits at once, without waiting at
interpreter exit). On Linux a worker also ends when the parent process dies (``kill PID``).
:func:`imap_fresh_processes` does the same with a new process for every job (Python 3.11's
``max_tasks_per_child`` can deadlock: CPython gh-115634).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sized
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from flowaccent.errors import WorkerError
from flowaccent.signals import STOPS, forget, pass_on, repeated

J = TypeVar("J")
R = TypeVar("R")

#: Set by a second Ctrl-C, after the running workers were killed: exit without waiting for them.
ABORTED = threading.Event()
#: In a worker of :func:`imap_processes`: the event its parent sets on the first Ctrl-C.
_STOP: Any = None


@contextlib.contextmanager
def _interruptible(kill: Callable[[], None], stop: Callable[[], None] = lambda: None) -> Iterator[None]:
    r"""Ctrl-C while workers run: the first calls ``stop``, says what happens and raises ``KeyboardInterrupt``
    (the workers finish the jobs they are on); a second calls ``kill`` and raises it again. SIGTERM, where
    the command handles it (:mod:`flowaccent.cli._stops`), kills them at once too. Only in the main thread
    (where Python runs signal handlers); elsewhere Ctrl-C keeps its default."""
    ABORTED.clear()
    forget()  # a stop before this pool is not one its first signal repeats
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    presses = 0

    def on_interrupt(signum, frame) -> None:
        if _held(on_interrupt, signum, frame):
            return
        nonlocal presses
        presses += 1
        if presses == 1:
            stop()
            print("stopping: the workers finish the jobs they are on (Ctrl-C again: kill them now)",
                  file=sys.stderr, flush=True)
        else:
            kill()
            ABORTED.set()
        raise KeyboardInterrupt

    handlers = {s: signal.getsignal(s) for s in STOPS[1:]}
    handlers = {s: h for s, h in handlers.items() if callable(h)}  # the command line's (cli._stops): a library caller's
    # SIGTERM and SIGHUP keep their own meaning

    def on_terminate(signum, frame) -> None:  # SIGTERM, SIGHUP (the command's handler): a second Ctrl-C, no waiting
        if repeated(signum) or _held(on_terminate, signum, frame):
            return
        kill()
        ABORTED.set()
        pass_on(handlers[signum], signum, frame)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_interrupt)
    for number in handlers:
        signal.signal(number, on_terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        for number, handler in handlers.items():
            signal.signal(number, handler)


def check_stopping() -> None:
    r"""In a worker of :func:`imap_processes`: raises :class:`~flowaccent.errors.WorkerError` when the parent is
    stopping (a first Ctrl-C). The jobs of a chunk (``chunksize``) run one after another in one call: a job that
    calls this first ends the chunk there, so its worker stops after the job it is on, not the whole chunk."""
    if _STOP is not None and _STOP.is_set():
        raise WorkerError("stopped: the parent was interrupted")


def imap_processes(
    fn: Callable[[J], R],
    jobs: Iterable[J],
    nj: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
    chunksize: int = 1,
) -> Iterator[R]:
    r"""``fn(job)`` for every job, computed by ``nj`` processes, yielded in the order of ``jobs``.

    An exception of ``fn`` is raised here for its job, after the jobs before it were yielded. When
    that happens, or the consumer stops early (``close()``, an exception, Ctrl-C), the jobs not yet
    started are cancelled and this waits for the running ones, each in its worker; no worker is
    killed. Close the generator (or exhaust it) to shut the workers down at once. A worker that
    dies raises :class:`~flowaccent.errors.WorkerError`.

    Arguments:
        fn, jobs: a picklable function and its arguments.
        nj: worker processes (at least 1; no more than there are jobs, where ``jobs`` has a length).
        initializer, initargs: called once in each worker before its first job.
        chunksize: jobs sent to a worker at a time.

    Workers are forked where the platform can (they start at once and need no ``__main__``
    guard), else started the platform's default way.
    """
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    stop = context.Event()
    _quiet_manager_race()
    if isinstance(jobs, Sized):  # no more workers than jobs: --nj 1e12 was an OverflowError of the pool's queue
        nj = min(nj, len(jobs))
    executor = ProcessPoolExecutor(
        max_workers=max(1, nj),
        mp_context=context,
        initializer=_start_worker,
        initargs=(initializer, initargs, stop),
    )

    def kill() -> None:
        for process in list((getattr(executor, "_processes", None) or {}).values()):
            process.kill()

    with _interruptible(kill, stop.set):
        try:
            # the workers are forked as the jobs are submitted: a signal then is delivered after (_forking)
            with _forking():
                results = executor.map(fn, jobs, chunksize=chunksize)
            yield from results
        except BrokenProcessPool as error:
            if ABORTED.is_set():
                raise KeyboardInterrupt from None
            raise WorkerError(f"a worker process died (killed, out of memory or crashed): {error}") from error
        finally:
            executor.shutdown(wait=not ABORTED.is_set(), cancel_futures=True)


def _quiet_manager_race() -> None:
    r"""Before Python 3.12 (CPython gh-107219), the pool's manager thread, finding its workers killed (SIGTERM or a
    second Ctrl-C: :func:`_interruptible`), set an exception on futures the consumer had cancelled, and died with a
    traceback of ``InvalidStateError`` after the command's own message (``kill`` of ``fbank --nj 2``: 2 runs
    of 12). Python 3.12 ignores that exception there; so does this hook, which passes on everything else."""
    if sys.version_info < (3, 12) and not getattr(threading.excepthook, "_flowaccent", False):
        threading.excepthook = _without_manager_race(threading.excepthook)


def _without_manager_race(previous: Callable) -> Callable:
    r"""A ``threading.excepthook`` dropping :func:`_quiet_manager_race`'s exception, handing ``previous`` the rest."""
    from concurrent.futures import InvalidStateError
    from concurrent.futures.process import _ExecutorManagerThread

    def hook(args) -> None:
        if not (isinstance(args.exc_value, InvalidStateError) and isinstance(args.thread, _ExecutorManagerThread)):
            previous(args)

    hook._flowaccent = True  # type: ignore[attr-defined]
    return hook


#: While workers are forked: the first signal :func:`_interruptible`'s handlers got then, as ``(handler, signum,
#: frame)``, for :func:`_forking` to deliver after (``[]``: none; ``None``: not forking).
_FORK_HELD: list | None = None


def _held(handler: Callable, signum: int, frame) -> bool:
    r"""Whether a signal ``handler`` got is held for :func:`_forking` (it came while workers were forked)."""
    if _FORK_HELD is None:
        return False
    if not _FORK_HELD:
        _FORK_HELD.append((handler, signum, frame))
    return True


@contextlib.contextmanager
def _forking() -> Iterator[None]:
    r"""Holds back the signals :func:`_interruptible` handles while the block forks workers, and delivers the first
    after it. Raised in the fork, a Ctrl-C or SIGTERM was raised in an at-fork hook (logging's), printed as a
    traceback and lost: the command ran on to the end (exit 0). (Blocking the signals in this thread is not
    enough: another thread, tqdm's monitor, takes them, and the handler still runs here in the fork.)"""
    global _FORK_HELD
    _end_tqdm_monitor()
    _FORK_HELD = []
    try:
        yield
    finally:
        held, _FORK_HELD = _FORK_HELD, None
    if held:
        pass_on(*held[0])


def _end_tqdm_monitor() -> None:
    r"""Ends tqdm's monitor thread before workers are forked, and keeps it from starting again in this process.
    The monitor wakes every 10 s to redraw bars that stalled, under tqdm's lock; a worker forked at that moment
    inherits the lock held by a thread it does not have (Python 3.12 warns of any fork of a process with
    threads: `fbank --nj 2` did, and now forks from its main thread alone). Without the monitor a bar is
    redrawn as it advances, not on its own."""
    from tqdm import tqdm

    tqdm.monitor_interval = 0
    monitor, tqdm.monitor = tqdm.monitor, None
    if monitor is not None:
        monitor.exit()


def _start_worker(initializer: Callable[..., None] | None, initargs: tuple[Any, ...], stop: Any = None) -> None:
    global _STOP
    _STOP = stop
    _worker_signals()
    if initializer is not None:
        initializer(*initargs)


def _worker_signals() -> None:
    r"""In a worker: ignore Ctrl-C (it reaches the whole process group; the parent stops the work), and on
    Linux end with the parent process (``PR_SET_PDEATHSIG``; a forkserver's workers with the forkserver,
    which ends with the parent), so ``kill PARENT`` leaves no worker behind."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal's reaches them too: the parent stops them
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the command's handler: SIGTERM ends a worker at once
    if sys.platform.startswith("linux"):
        parent = os.getppid()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before that took effect
            os._exit(1)


def imap_fresh_processes(fn: Callable[[J], R], jobs: Iterable[J], nj: int, context=None) -> Iterator[R]:
    r"""``fn(job)`` for every job, each in a process started for it alone, at most ``nj`` at a time,
    yielded in the order they finish.

    For work whose result depends on what a process did before (a library with global state): no
    process runs two jobs. Errors, early stops, Ctrl-C and dying workers as in :func:`imap_processes`:
    no job starts after them, the running ones finish (their results are dropped), none is killed.

    Arguments:
        fn, jobs: a picklable function and its arguments.
        nj: processes at a time (at least 1).
        context: a ``multiprocessing`` context (start method); default: the platform's.
    """
    context = context or multiprocessing.get_context()
    pending = list(jobs)[::-1]
    running: dict[multiprocessing.connection.Connection, multiprocessing.process.BaseProcess] = {}

    def kill() -> None:
        for process in list(running.values()):
            process.kill()

    with _interruptible(kill):
        try:
            while pending or running:
                while pending and len(running) < max(1, nj):
                    receive, send = context.Pipe(duplex=False)
                    process = context.Process(target=_run_fresh, args=(fn, pending.pop(), send))
                    with _forking():  # a signal in the fork: lost in an at-fork hook
                        process.start()
                    send.close()
                    running[receive] = process
                for receive in multiprocessing.connection.wait(list(running)):
                    ok, value = _result(receive, running.pop(receive))
                    if not ok:
                        raise value
                    yield value
        finally:
            for receive, process in running.items():  # wait for the running jobs; a job's pipe must be read to end it
                _result(receive, process, check=False)


def _run_fresh(fn: Callable[[J], R], job: J, send) -> None:
    _worker_signals()
    try:
        result = (True, fn(job))
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the parent
        result = (False, error)
    try:
        send.send(result)
    except Exception as error:  # noqa: BLE001 - an unpicklable result or exception
        send.send((False, WorkerError(f"a worker's result could not be sent back: {error!r}")))
    send.close()


def _result(receive, process, check: bool = True) -> tuple[bool, Any]:
    r"""``(ok, value)`` from a job's pipe, after its process ended; a process that ended without one
    raises :class:`~flowaccent.errors.WorkerError` (with ``check``)."""
    try:
        result = receive.recv()
    except EOFError:
        result = None
    except Exception as error:  # noqa: BLE001 - e.g. an exception class that cannot be rebuilt here
        result = (False, WorkerError(f"a worker's result could not be read: {error!r}"))
    finally:
        receive.close()
        process.join()
    if result is None and check:
        raise WorkerError(f"a worker process died (killed, out of memory or crashed): exit code {process.exitcode}")
    return result or (False, None)
