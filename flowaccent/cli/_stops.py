r"""How a command stops on a signal: SIGTERM (``kill PID``, Slurm's preemption and time limit) and SIGHUP (the
terminal closed: a dropped ssh session) are turned into Ctrl-C's ``KeyboardInterrupt`` (:func:`on_stop_signal`), so
a command unwinds as on Ctrl-C: temporary files are removed and ``train`` writes its checkpoint. The command then
says what stopped it (:func:`interrupted`) and the program dies by that signal (:func:`die_by`).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import NoReturn

from flowaccent import torchrun
from flowaccent.signals import repeated

#: The signal of :data:`~flowaccent.signals.STOPS` other than SIGINT that stopped the command (its exit status is then
#: 128 + it, not Ctrl-C's 130).
TERMINATED: list[int] = []
#: The signal that stopped the command, once it has cleaned up: :func:`flowaccent.cli.main.entry` dies by it.
STOPPED_BY: list[int] = []
#: Not empty once a stop signal has reached a torchrun worker of a process group (:func:`interrupted`): it ends as
#: one (:func:`flowaccent.train.distributed.finish`), also where it has left the group since.
STOPPED_IN_GROUP: list[bool] = []
#: What a stopped command says of each signal.
STOPPED_HOW = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated", signal.SIGHUP: "hung up (SIGHUP)"}


def clear() -> None:
    r"""Forgets an earlier command's stop (a caller running several in one process)."""
    TERMINATED.clear()
    STOPPED_BY.clear()
    STOPPED_IN_GROUP.clear()


def on_stop_signal(signum, frame) -> None:
    r"""The command line's handler of SIGTERM and SIGHUP: records the signal and raises ``KeyboardInterrupt``."""
    if repeated(signum):  # the same SIGTERM twice (a scheduler's and a recipe's): the first's cleanup goes on
        return
    TERMINATED.append(signum)
    raise KeyboardInterrupt  # unwinds as Ctrl-C does: temporary files removed, checkpoints written


def interrupted(who: str) -> int:
    r"""Says a Ctrl-C, SIGTERM or SIGHUP stopped ``who`` and returns its exit status (130, 143 or 129). In a torchrun
    run rank 0 says it and leaves it in the run's store; another rank leaves the group (so that a rank 0 waiting for it
    in a collective hears its own signal) and says it, with its rank, only where rank 0 left no line there
    (:func:`flowaccent.train.distributed.said_once`): a terminal's Ctrl-C reaches every worker, and
    torchrun's SIGTERM every one still running once one has ended, which says why (each rank said it; one behind
    rank 0 added 'terminated' to the error rank 0 had said), but a signal to one worker alone (a ``kill``, one
    machine's terminal) was said by none, and rank 0's 'another process of this run is gone; its own output says
    why' pointed at nothing. Before the processes have joined, another rank says nothing."""
    STOPPED_BY[:] = [TERMINATED[0] if TERMINATED else signal.SIGINT]
    line: str | None = f"{who}: {STOPPED_HOW[STOPPED_BY[0]]}"
    if torchrun.joined():
        from flowaccent.train import distributed

        STOPPED_IN_GROUP.append(True)  # first: a signal from here on ends it as one of the group too
        distributed.mark_said(line)  # rank 0's, for the others
        line = distributed.said_once(line, any_line=True, leave=True)
        line = line and torchrun.own_line(line)
    elif torchrun.rank():
        line = None
    try:
        if line is not None:
            print(line, file=sys.stderr, flush=True)
    except OSError:  # the terminal is gone (SIGHUP): nowhere to say it
        pass
    return 128 + STOPPED_BY[0]


def die_by(number: int) -> NoReturn:
    r"""Ends the process by signal ``number`` at once (its cleanup is done; what Python would still do at exit,
    such as waiting for threads, is skipped, as with ``os._exit``)."""
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [number])
    os.kill(os.getpid(), number)
    os._exit(128 + number)  # not reached
