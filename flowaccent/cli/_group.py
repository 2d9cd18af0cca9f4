r"""What a ``torchrun`` worker says of an error, once for the run: every worker reads the same command line and
meets the same errors, and each said it (rank 0 says it, :func:`say_error`); another process's end (one line, not
gloo's 50, :func:`say_peer_gone`); and a command other than ``train`` and ``score`` started as several processes
(:func:`started_by_torchrun`). Outside a torchrun run each line is printed as it is.
"""

from __future__ import annotations

import sys
import time

from flowaccent import torchrun
from flowaccent.cli import _stops


def peer_gone(error: RuntimeError) -> str | None:
    r"""In a torchrun worker, the backend's reason where ``error`` says another process is gone; else None."""
    if not torchrun.joined():
        return None
    from flowaccent.train import distributed

    return distributed.peer_gone(error)


#: How long a torchrun worker other than rank 0 waits, with an error of the command line, for torchrun to stop it
#: (:func:`say_before_the_group`).
RANK_0_SAYS_S = 10.0


def say_before_the_group(line: str, wait_s: float = RANK_0_SAYS_S) -> None:
    r"""Prints an error ``line`` met before the run's processes have joined (the command line's, a config's): every
    torchrun worker reads the same arguments, and each said it, once per rank. Rank 0 says it; another rank waits
    for torchrun to stop it, as torchrun does once rank 0 has exited with it (where rank 1 exited first, torchrun
    stopped rank 0 before it had said why), and says it with its rank where that does not come (rank 0 did not
    meet it)."""
    place = torchrun.place()
    if place is None or place[0] == 0:
        print(line, file=sys.stderr)
        return
    try:
        time.sleep(wait_s)
    except KeyboardInterrupt:  # torchrun's SIGTERM: rank 0 has said it; a Ctrl-C: it says nothing of this rank's
        if _stops.TERMINATED:
            return
    print(torchrun.with_rank(line, *place), file=sys.stderr)


def say_error(line: str) -> None:
    r"""Prints an error ``line``; in a torchrun worker once for the run, where every rank hit the same
    (:func:`flowaccent.train.distributed.said_once`, or before the processes joined :func:`say_before_the_group`),
    not once per rank."""
    if not torchrun.joined():
        say_before_the_group(line)
        return
    from flowaccent.train import distributed

    said = distributed.said_once(line)
    if said is not None:
        print(torchrun.own_line(said), file=sys.stderr, flush=True)
    distributed.mark_said(line)


#: The commands that share their work among the processes torchrun starts.
SHARED = ("train", "score")


def started_by_torchrun(command: str) -> int:
    r"""2 where ``command`` is not one of :data:`SHARED` and ``torchrun`` started several copies of it (``WORLD_SIZE``
    > 1); else 0. Each copy of another command would do the whole of it: two copies of ``score``, before it shared
    its sets, ran into one ``--out``, one of them refused as busy ('being written by another flowaccent command now')
    and torchrun then stopped the other. Said once (:func:`say_before_the_group`)."""
    place = torchrun.place()
    if command in SHARED or place is None:  # one process (a WORLD_SIZE left in the shell: not torchrun)
        return 0
    world = place[1]
    say_before_the_group(f"flowaccent {command}: error: started by torchrun as {world} processes "
                         f"(WORLD_SIZE={world}), each of which would do the whole work: run it as one process, "
                         f"without torchrun (only {' and '.join(SHARED)} share their work among processes)")
    return 2


def say_peer_gone(line: str) -> None:
    r"""Prints a torchrun worker's ``line`` that another process of the run is gone: rank 0 with its rank; another
    rank nothing where rank 0 left a line (rank 0 is the one gone and said why; it was said after rank 0's stop)."""
    if torchrun.rank():
        from flowaccent.train.distributed import said_once

        said = said_once(line, any_line=True)
    else:
        said = torchrun.with_rank(line, *torchrun.place())
    if said is not None:
        print(torchrun.own_line(said), file=sys.stderr)
