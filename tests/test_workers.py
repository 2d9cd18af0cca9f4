r"""flowaccent.workers: order, fresh processes, errors, early stops and Ctrl-C without killing a worker."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from flowaccent.errors import WorkerError
from flowaccent.workers import ABORTED, check_stopping, imap_fresh_processes, imap_processes

from .conftest import fails_after

_STATE: dict = {}


@pytest.fixture(autouse=True)
def deadline():
    r"""A test that hangs (as ``Pool`` did here) fails after 60 s instead of stalling the suite."""
    with fails_after(60, "no result in 60 s: the workers hang"):
        yield


@pytest.fixture(params=["pool", "fresh"])
def imap(request):
    r"""Each behaviour below for both functions: workers kept (``imap_processes``), one process per job."""
    return imap_processes if request.param == "pool" else imap_fresh_processes


def _init(offset: int) -> None:
    _STATE["offset"] = offset


def _add(x: int) -> tuple[int, int]:
    return x + _STATE["offset"], os.getpid()


def _pid(x: int) -> tuple[int, int]:
    return x, os.getpid()


def _job(job: tuple[str, Path]) -> str:
    r"""``fail``: raises once a ``slow`` job beside it has begun (raising at once, it could beat the executor's
    queue thread to the next job, which was then rightly cancelled as not started, seen once in CI; a fixed
    0.2 s wait only made that rarer on a loaded machine); ``slow``: says it began, 0.5 s, then a marker file;
    ``late``: 0.1 s then a marker file."""
    kind, marker = job
    if kind == "fail":
        deadline = time.monotonic() + 10
        while not any(marker.parent.glob("begun-*")) and time.monotonic() < deadline:
            time.sleep(0.01)
        raise ValueError(f"job {marker.name} failed")
    if kind == "slow":
        (marker.parent / f"begun-{marker.name}").touch()
    time.sleep(0.5 if kind == "slow" else 0.1)
    marker.write_text(kind)
    return kind


def _interrupted(x: int) -> int:
    os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends to the whole process group
    time.sleep(0.05)
    return x


def _slow_part(marker: Path) -> Path:
    check_stopping()
    time.sleep(0.3)
    marker.write_text("done")
    return marker


def _unpicklable(x: int):
    return lambda: x


def _die(x: int) -> int:
    if x == 3:
        os._exit(9)  # as the kernel's OOM killer would end it: no exception, no result
    return x


def test_results_in_job_order_from_initialised_workers():
    out = list(imap_processes(_add, range(40), 2, initializer=_init, initargs=(100,), chunksize=3))
    assert [v for v, _ in out] == list(range(100, 140))
    pids = {pid for _, pid in out}
    assert os.getpid() not in pids and len(pids) <= 2  # in the workers (which of them: the scheduler's choice)
    assert not multiprocessing.active_children()


def test_no_more_workers_than_jobs():
    r"""``fbank --nj 1000000000000`` was an OverflowError of the pool's call queue (a Python traceback)."""
    out = list(imap_processes(_add, range(3), 10**12, initializer=_init, initargs=(100,)))
    assert [v for v, _ in out] == [100, 101, 102] and len({pid for _, pid in out}) <= 3


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_fresh_processes_run_one_job_each(method):
    out = list(imap_fresh_processes(_pid, range(6), 2, multiprocessing.get_context(method)))
    assert sorted(x for x, _ in out) == list(range(6))
    pids = [pid for _, pid in out]
    assert len(set(pids)) == 6 and os.getpid() not in pids
    assert not multiprocessing.active_children()


def test_an_error_cancels_what_has_not_started_and_lets_the_running_job_finish(imap, tmp_path):
    jobs = [("fail", tmp_path / "f"), ("slow", tmp_path / "s")] + [("late", tmp_path / f"l{i}") for i in range(30)]
    start = time.perf_counter()
    with pytest.raises(ValueError, match="job f failed"):
        list(imap(_job, jobs, 2))
    assert time.perf_counter() - start < 10
    assert (tmp_path / "s").read_text() == "slow"  # not killed mid-job (Pool.terminate would have)
    assert len(list(tmp_path.glob("l*"))) < 30  # cancelled: all 30 would take 3 s
    assert not multiprocessing.active_children()


def test_a_consumer_that_stops_early_shuts_the_workers_down(imap, tmp_path):
    jobs = [("slow", tmp_path / f"s{i}") for i in range(20)]
    results = imap(_job, jobs, 2)
    assert next(results) == "slow"
    results.close()
    assert len(list(tmp_path.glob("s*"))) < 20
    assert not multiprocessing.active_children()


def test_workers_leave_ctrl_c_to_the_parent(imap):
    assert sorted(imap(_interrupted, range(4), 2)) == [0, 1, 2, 3]


def test_a_first_ctrl_c_ends_a_chunk_after_the_job_it_is_on(tmp_path):
    r"""The 10 jobs of one chunk run in one call of the worker (3 s); after a first Ctrl-C, those that call
    ``check_stopping`` do not start. Before, the worker went on through its whole chunk."""
    results = imap_processes(_slow_part, [tmp_path / f"m{i}" for i in range(10)], 1, chunksize=10)
    sent = []

    def ctrl_c_once_a_job_is_done() -> None:  # not at a fixed time: a worker started late under load did none
        deadline = time.monotonic() + 60
        while not (tmp_path / "m0").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=ctrl_c_once_a_job_is_done, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        next(results)  # waits for the chunk's results; the interrupt ends the wait, and the workers' shutdown
    assert time.monotonic() - sent[0] < 1.8  # the job it is on (0.3 s), not the chunk's other 8 (2.4 s)
    assert 1 <= len(list(tmp_path.glob("m*"))) <= 3
    assert not multiprocessing.active_children()


def test_a_worker_that_dies_is_an_error_not_a_wait(imap):
    with pytest.raises(WorkerError, match="a worker process died"):
        list(imap(_die, range(8), 2))
    assert not multiprocessing.active_children()


def test_a_result_that_cannot_be_sent_back_is_an_error():
    with pytest.raises(WorkerError, match="could not be sent back"):
        list(imap_fresh_processes(_unpicklable, range(3), 2))
    assert not multiprocessing.active_children()


#: Set by a test: the next fork sends SIGTERM to the forking process from inside the fork (an at-fork hook).
_TERM_IN_FORK: list[bool] = []


def _term_in_fork() -> None:
    if _TERM_IN_FORK and os.getpid() == _TERM_IN_FORK_PARENT[0]:
        _TERM_IN_FORK.clear()
        os.kill(os.getpid(), signal.SIGTERM)


_TERM_IN_FORK_PARENT: list[int] = [0]
os.register_at_fork(before=_term_in_fork)


def test_a_signal_while_the_workers_are_forked_is_not_lost(imap):
    r"""A SIGTERM (or Ctrl-C) that came as a worker was forked was raised in an at-fork hook (logging's), printed as
    'Exception ignored' with a traceback and lost: ``fbank --nj 2`` ran on to the end and exited 0, and a worker
    forked then could miss its set-up and outlive the command. It is held back while the workers are forked."""

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)  # as flowaccent.cli.main's handler
    try:
        _TERM_IN_FORK_PARENT[0] = os.getpid()
        _TERM_IN_FORK.append(True)
        fork = {} if imap is imap_processes else {"context": multiprocessing.get_context("fork")}  # at-fork hooks
        with pytest.raises(KeyboardInterrupt):  # run in a fork alone (the suite's default context may be another)
            list(imap(_pid, range(8), 2, **fork))
    finally:
        _TERM_IN_FORK.clear()
        signal.signal(signal.SIGTERM, previous)
        ABORTED.clear()  # a later flowaccent command in this process would take it for its own second Ctrl-C


def test_under_the_command_lines_handler_a_sigterm_as_workers_are_forked_stops_as_sigterm(imap, tmp_path,
                                                                                         monkeypatch):
    r"""With ``flowaccent CMD``'s own SIGTERM handler: the SIGTERM held while the workers are forked, then handed on,
    stops the pool and the command as a SIGTERM (exit 143; not taken for its own repeat and dropped, nor said as
    a Ctrl-C); a stop just before the pool began is not one it repeats."""
    from flowaccent import signals
    from flowaccent.cli import _stops as cli

    previous = signal.signal(signal.SIGTERM, cli.on_stop_signal)
    cli.TERMINATED.clear()
    try:
        with signals.owned([signal.SIGTERM]):
            signals.repeated(signal.SIGTERM)  # a stop just before
            _TERM_IN_FORK_PARENT[0] = os.getpid()
            _TERM_IN_FORK.append(True)
            fork = {} if imap is imap_processes else {"context": multiprocessing.get_context("fork")}
            with pytest.raises(KeyboardInterrupt):
                list(imap(_pid, range(8), 2, **fork))
        assert cli.TERMINATED == [signal.SIGTERM]
        cli.TERMINATED.clear()
        with signals.owned([signal.SIGTERM]):  # and one while the workers run
            results = imap(_slow_part, [tmp_path / f"m{i}" for i in range(4)], 1)
            threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
            with pytest.raises(KeyboardInterrupt):
                list(results)
        assert cli.TERMINATED == [signal.SIGTERM]
        cli.TERMINATED.clear()
        from concurrent.futures import ProcessPoolExecutor

        shutdown = ProcessPoolExecutor.shutdown

        def again(self, *args, **kwargs):  # the same SIGTERM's second copy (Slurm's and a recipe's), in the cleanup
            signal.raise_signal(signal.SIGTERM)
            return shutdown(self, *args, **kwargs)

        monkeypatch.setattr(ProcessPoolExecutor, "shutdown", again)
        with signals.owned([signal.SIGTERM]):
            results = imap(_slow_part, [tmp_path / f"n{i}" for i in range(4)], 1)
            threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
            with pytest.raises(KeyboardInterrupt):
                list(results)
        assert cli.TERMINATED == [signal.SIGTERM]  # one stop, its cleanup not broken into
    finally:
        _TERM_IN_FORK.clear()
        signal.signal(signal.SIGTERM, previous)
        cli.TERMINATED.clear()
        signals.forget()
        ABORTED.clear()


def test_workers_are_forked_without_tqdm_monitor_thread(imap, monkeypatch):
    r"""A progress bar starts tqdm's monitor thread, which wakes every 10 s under tqdm's lock: a worker forked
    then inherits that lock held (Python 3.12 warns of forking a process with threads). It is ended first."""
    from tqdm import tqdm

    monkeypatch.setattr(tqdm, "monitor_interval", 10)  # as a fresh process has it
    real_fork, threads = os.fork, []

    def fork():
        threads.append([t.name for t in threading.enumerate()])
        return real_fork()

    with open(os.devnull, "w") as sink, tqdm(total=3, disable=False, file=sink) as bar:
        assert tqdm.monitor is not None and tqdm.monitor.is_alive()  # the bar started it
        monitor = tqdm.monitor
        monkeypatch.setattr(os, "fork", fork)
        out = list(imap(_pid, range(3), 2))
        monkeypatch.setattr(os, "fork", real_fork)
        bar.update(3)
    assert sorted(x for x, _ in out) == [0, 1, 2] and threads
    assert not [names for names in threads if "tqdm_monitor" in names]
    assert not monitor.is_alive() and tqdm.monitor is None and tqdm.monitor_interval == 0


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="CPython 3.12 ignores it itself (gh-107219)")
def test_the_pool_managers_race_with_cancelled_futures_prints_no_traceback():
    r"""``kill`` of ``fbank --nj 2`` printed a traceback of ``InvalidStateError`` from the pool's manager thread after
    the command's own message (about one run in six): it set an exception on a future the consumer had cancelled.
    That exception from that thread is dropped; any other is printed as before."""
    from concurrent.futures import InvalidStateError
    from concurrent.futures.process import _ExecutorManagerThread

    from flowaccent.workers import _quiet_manager_race, _without_manager_race

    _quiet_manager_race()
    installed = threading.excepthook
    _quiet_manager_race()  # once is enough: not a hook on a hook
    assert threading.excepthook is installed and installed._flowaccent
    printed = []
    hook = _without_manager_race(lambda args: printed.append((type(args.exc_value).__name__, args.thread)))
    manager = object.__new__(_ExecutorManagerThread)
    other = threading.Thread(name="other")
    for error, thread in [(InvalidStateError("CANCELLED: <Future>"), manager), (InvalidStateError("x"), other),
                          (ValueError("y"), manager)]:
        hook(threading.ExceptHookArgs((type(error), error, None, thread)))
    assert printed == [("InvalidStateError", other), ("ValueError", manager)]
