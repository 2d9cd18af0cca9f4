r"""An output folder held by one command at a time: an exclusive ``flock`` on a file inside it.

Two trainings into one ``--exp`` started within half a second both ran, their logs and checkpoints
mixed; two ``score`` runs into one ``--out`` both exited 0 with tables holding a column of each.
The lock is released when the process ends, however it ends (the kernel drops it), so a killed
run never leaves a folder locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from flowaccent.errors import ConfigError


@contextlib.contextmanager
def locked_folder(folder: Path, name: str, busy: str) -> Iterator[None]:
    r"""Holds an exclusive lock on ``folder/name`` while the block runs; made for the lock alone (nothing else
    written into it), the folder is removed afterwards.

    Arguments:
        folder: the command's output folder (made if missing).
        name: the lock file's name (``.train.lock``, ``.score.lock``).
        busy: the :class:`ConfigError`'s message when another process holds the lock.
    """
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / name, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ConfigError(busy) from None
    try:
        yield
    finally:
        os.close(fd)  # releases the lock
        if made and set(os.listdir(folder)) <= {name}:  # stopped before writing anything: no folder left
            shutil.rmtree(folder, ignore_errors=True)


#: The lock of a ``score`` or ``blurmask`` output folder (one name: neither may write while the other does).
OUT_LOCK = ".out.lock"


def output_lock(out: Path, command: str) -> contextlib.AbstractContextManager[None]:
    r""":func:`locked_folder` for a command's ``--out``."""
    busy = f"{command}: --out {out} is being written by another flowaccent command now; wait for it or give another " \
           "--out"
    return locked_folder(out, OUT_LOCK, busy)
