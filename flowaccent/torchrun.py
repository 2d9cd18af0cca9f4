r"""What ``torchrun`` tells the process it starts, read from its environment without importing torch.

A process is one of a torchrun run only where ``WORLD_SIZE`` > 1 comes with the rest of what torchrun sets
(:data:`ENV`): a ``WORLD_SIZE`` or ``RANK`` left in a shell is not a run (a ``RANK=1`` alone made ``train`` take
itself for rank 1 of one process: it trained, saved nothing and exited 0).
"""

from __future__ import annotations

import os
import sys

from flowaccent.errors import ConfigError

#: What torchrun sets for each process besides ``WORLD_SIZE``.
ENV = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def place() -> tuple[int, int] | None:
    r"""``(rank, world)`` of a process torchrun started as one of several; None otherwise (one process, or a
    variable left in the shell: :func:`world_size` says so where it matters)."""
    try:
        world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    except ValueError:
        return None
    if world <= 1 or any(name not in os.environ for name in ENV):
        return None
    return rank, world


def joined() -> bool:
    r"""Whether this process has joined its torchrun run's process group (torch's own check, where
    ``torch.distributed`` is imported already: a module left half imported by a Ctrl-C is not asked, nor imported
    again)."""
    dist = sys.modules.get("torch.distributed")
    return dist is not None and place() is not None and dist.is_available() and dist.is_initialized()


def with_rank(line: str, rank: int, world: int) -> str:
    r"""An error ``line`` as process ``rank`` of ``world`` says it: ``PROG: error: rank 1/2: ...``; a stop's
    ``PROG: terminated`` as ``PROG: rank 1/2: terminated``.

    Example:
        >>> with_rank("flowaccent score: error: data/x: no such data dir", 1, 2)
        'flowaccent score: error: rank 1/2: data/x: no such data dir'
        >>> with_rank("flowaccent train: terminated", 1, 2)
        'flowaccent train: rank 1/2: terminated'
    """
    head, sep, rest = line.partition(": error: ") if ": error: " in line else line.partition(": ")
    return f"{head}{sep}rank {rank}/{world}: {rest}" if sep else f"rank {rank}/{world}: {line}"


def rank() -> int:
    r"""This process's rank in its torchrun run; 0 outside one."""
    where = place()
    return where[0] if where else 0


def own_line(line: str) -> str:
    r"""``line`` as this process prints it after the run's processes have joined: on a line of its own in a rank
    other than 0 (a newline first), as rank 0's progress bar, on the terminal they share, may be mid-line (rank 1's
    error was printed on the end of the bar's line, which the bar's next redraw wiped on a terminal)."""
    return f"\n{line}" if rank() else line


def local_rank() -> int:
    r"""This process's place on its machine in its torchrun run (the GPU it takes); 0 outside one."""
    return int(os.environ["LOCAL_RANK"]) if place() else 0


def local_world_size() -> int | None:
    r"""The processes of this torchrun run on this machine (``LOCAL_WORLD_SIZE``); 1 outside one; None where a
    launcher other than torchrun did not set it (each process guessed its own place + 1: every one another count)."""
    if not place():
        return 1
    return int(os.environ["LOCAL_WORLD_SIZE"]) if "LOCAL_WORLD_SIZE" in os.environ else None


def world_size() -> int:
    r"""The processes torchrun started (1 without it). A :class:`ConfigError` where ``WORLD_SIZE`` > 1 is set
    without the rest of torchrun's variables (one left in the shell: torch's process group gave a traceback,
    'environment variable RANK expected, but not set'), or is not a number: for the commands that share their
    work, whose processes would wait for the others."""
    text = os.environ.get("WORLD_SIZE", "1")
    try:
        world = int(text)
    except ValueError:
        raise ConfigError(f"WORLD_SIZE={text!r} is not a number of processes (torchrun sets it)") from None
    missing = [name for name in ENV if name not in os.environ]
    if world > 1 and missing:
        raise ConfigError(f"WORLD_SIZE={world} is set, but not {', '.join(missing)}: this process was not started by "
                          "torchrun; unset WORLD_SIZE, or start the command with torchrun")
    return max(world, 1)
