r"""An output folder held by one command at a time: an exclusive ``flock`` on a file inside it.

Two trainings into one ``--exp`` started within half a second both ran, their logs and checkpoints
mixed; two ``score`` runs into one ``--out`` both exited 0 with tables holding a column of each.
The lock is released when the process ends, however it ends (the kernel drops it), so a killed
run never leaves a folder locked.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from flowaccent.errors import ConfigError


@contextlib.contextmanager
def locked_folder(folder: Path, name: str, busy: str) -> Iterator[None]:
    r"""Holds an exclusive lock on ``folder/name`` while the block runs; made for the lock alone (nothing else
    written into it), the folder is removed afterwards. Temporary files a killed run left in it are removed
    first (:func:`remove_dead_temporaries`). In a folder that was there, a lock file this run made is removed
    where the run wrote nothing else (a refused run left ``.out.lock`` in the corpus folder it was pointed at).

    Arguments:
        folder: the command's output folder (made if missing).
        name: the lock file's name (``.train.lock``, ``.score.lock``).
        busy: the :class:`ConfigError`'s message when another process holds the lock.
    """
    made = not folder.exists()
    if folder.exists() and not folder.is_dir():  # mkdir's 'File exists' said nothing of what was wrong
        raise ConfigError(f"{folder} is a file, not a folder; give the command a folder of its own")
    folder.mkdir(parents=True, exist_ok=True)
    before = None if made or (folder / name).exists() else set(os.listdir(folder))
    fd, _ = locked_file(folder / name, busy, folder)
    try:
        remove_dead_temporaries(folder)
        yield
    finally:
        if before is not None and set(os.listdir(folder)) <= before | {name}:  # wrote nothing: removed, still held
            (folder / name).unlink(missing_ok=True)
        os.close(fd)  # releases the lock
        if made and set(os.listdir(folder)) <= {name}:  # stopped before writing anything: no folder left
            shutil.rmtree(folder, ignore_errors=True)


def locked_file(path: Path, busy: str, guarded: Path) -> tuple[int, bool]:
    r"""An open descriptor of ``path`` (made where missing) holding an exclusive ``flock`` on it (closing it releases
    the lock), and True. A :class:`ConfigError` of ``busy`` where another process holds it. On a file system without
    ``flock`` (Lustre without ``-o flock``, some NFS and FUSE mounts: every run was refused as busy there) a warning
    that a second run into ``guarded`` at the same time would not be refused, the descriptor, unlocked, and False."""
    for attempt in range(_ATTEMPTS):
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                os.close(fd)
                raise ConfigError(busy) from None
            print(f"warning: cannot lock {path} ({error.strerror}); a second run into {guarded} at the same time "
                  "would not be refused", file=sys.stderr)
            return fd, False
        if _same_file(fd, path) or attempt == _ATTEMPTS - 1:  # (a file system whose stat and fstat never agree)
            return fd, True
        os.close(fd)  # the holder removed the file as it let go (:func:`locked_folder`): a new one is the lock now
    raise AssertionError("not reached")


#: Opens of a lock file removed each time before it was locked (:func:`locked_file`), before the last is kept.
_ATTEMPTS = 10


def _same_file(fd: int, path: Path) -> bool:
    r"""Whether ``path`` still names the file open at ``fd``: a run that wrote nothing removes its lock file while
    it holds it, so one opened before that and locked after it is a lock of no name, and a third run's new file
    would be locked at the same time."""
    try:
        mine, named = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (named.st_dev, named.st_ino)


def try_flock(fd: int, operation: int = fcntl.LOCK_EX) -> bool | None:
    r"""Takes ``operation`` (``LOCK_EX``, ``LOCK_SH``) on the file open at ``fd`` without waiting: True; False where
    another process holds it; None where the file system has no locks (Lustre without ``-o flock``, some NFS
    mounts)."""
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except OSError as error:
        return False if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None
    return True


#: A temporary name of :func:`flowaccent.data.atomic.temporary_name`: ``.NAME.tmp.PID``.
_TEMPORARY = re.compile(r"^\..+\.tmp\.([0-9]+)$")


def remove_dead_temporaries(folder: Path) -> None:
    r"""Removes the temporary files (``.NAME.tmp.PID``) under ``folder`` whose process is gone: SIGKILL (or a
    power cut) leaves the one being written, and a rerun never wrote that name again."""
    for path in folder.rglob(".*.tmp.*"):
        match = _TEMPORARY.match(path.name)
        if match and path.is_file() and not alive(int(match.group(1))):
            path.unlink(missing_ok=True)


def alive(pid: int) -> bool:
    r"""Whether process ``pid`` exists (this machine's; another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


#: The lock of a ``score``, ``blurmask`` or ``phones`` output folder (one name: none may write while another does),
#: held shared by the commands that read one (:func:`reading_lock`).
OUT_LOCK = ".out.lock"


def output_lock(out: Path, command: str) -> contextlib.AbstractContextManager[None]:
    r""":func:`locked_folder` for a command's ``--out``: refused while another command writes it or reads it
    (:func:`reading_lock`)."""
    busy = (f"{command}: --out {out} is in use by another flowaccent command now (writing it, or a report, plot or "
            "phones reading it); wait for it or give another --out")
    return locked_folder(out, OUT_LOCK, busy)


@contextlib.contextmanager
def reading_lock(folder: Path, what: str) -> Iterator[None]:
    r"""A shared lock on ``folder``'s :data:`OUT_LOCK` while the block reads the folder's output (a report of a
    ``score --out``): a ``score`` into it is refused meanwhile, and this is refused while one writes it. A report
    drawn while score rewrote its folder put the old figures back beside the new scores, and one started while
    score ran said the scores 'stopped before its end'. Readers do not refuse each other. Where the folder has no
    lock file (copied without it, or written before flowaccent locked) or it cannot be locked, nothing is held.

    Arguments:
        folder: the output folder read.
        what: how the command names it, for the busy error (``--scores DIR``).
    """
    try:
        fd = os.open(folder / OUT_LOCK, os.O_RDONLY)
    except OSError:  # none there (or not a folder: the reader's own checks say so)
        fd = None
    try:
        if fd is not None and try_flock(fd, fcntl.LOCK_SH) is False:
            raise ConfigError(f"{what} is being written by another flowaccent command now; wait for it to end")
        yield
    finally:
        if fd is not None:
            os.close(fd)
