r"""Atomic file writes: write to a temporary name in the same folder, then rename."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path


def temporary_name(path: Path) -> Path:
    r"""A hidden name next to ``path`` that is unique to this process."""
    return path.with_name(f".{path.name}.tmp.{os.getpid()}")


def partial_name(path: Path, pid: int | None = None) -> Path:
    r"""A hidden name next to ``path`` for a file that a stopped run leaves to be gone on with (``.NAME.part.PID``,
    of process ``pid``, default this one): unlike :func:`temporary_name`'s, not removed as a killed run's leftover
    (:func:`flowaccent.data.lock.remove_dead_temporaries`)."""
    return path.with_name(f".{path.name}.part.{os.getpid() if pid is None else pid}")


@contextlib.contextmanager
def write_errors_named(path: str | Path) -> Iterator[None]:
    r"""An OSError without errno or file name raised in the block (numpy's short write on a full disk: '211680
    requested and 70624 written', a traceback from the command) becomes one naming ``path`` (EIO)."""
    try:
        yield
    except OSError as error:
        if error.errno is not None or error.filename:
            raise
        raise OSError(errno.EIO, f"a short write ({error}): is the disk full?", str(path)) from None


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    r"""Yields a temporary path; renames it to ``path`` if the block succeeds, else removes it.

    Readers never see a half-written ``path``: it is either the old file or the
    complete new one (``os.replace`` is atomic on POSIX).

    Example:
        >>> with atomic_path("out.txt") as tmp:  # doctest: +SKIP
        ...     tmp.write_text("done")
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        with write_errors_named(path):
            yield tmp
        if tmp.exists():
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # gone, or not removable (a read-only file system): the first error says why
            tmp.unlink()
        raise


def atomic_link(source: str | Path, path: str | Path) -> None:
    r"""Makes ``path`` a second name of the file ``source`` (a hard link), replacing ``path``
    atomically; where the file system has no hard links, an atomic copy instead.

    For a file written whole under two names (a checkpoint that is both the last and the best):
    written once, named twice. Safe with :func:`atomic_path`: rewriting either name later replaces
    that name only, never the file the other name still holds.
    """
    source, path = Path(source), Path(path)
    tmp = temporary_name(path)
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(source, tmp)
    except OSError:  # no hard links here (or across devices): copy
        with atomic_path(path) as copy:
            shutil.copyfile(source, copy)
        return
    os.replace(tmp, path)


def atomic_copy(source: str | Path, path: str | Path) -> Path:
    r"""Copies the file ``source`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        shutil.copyfile(source, tmp)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> None:
    r"""Writes ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_named_file(path: str | Path, text: str) -> None:
    r"""``text`` (UTF-8) into the file a user named (``--out FILE``): a regular file, or none yet, written
    atomically; a link, a device or a pipe written through, as the shell's ``>`` writes them (a link to a shared
    results file was replaced by a file of its own, the shared one not updated; ``/dev/stdout``, a FIFO or, when run
    as root, the system's ``/dev/full`` by a regular file, and the command said it had written there). Through a
    link the file keeps its inode, its mode and its hard links, in a folder the user may not write to."""
    path = Path(path)
    if not path.is_symlink() and not (path.exists() and not path.is_file()):
        atomic_write_text(path, text)
        return
    for fd, stream in ((1, sys.stdout), (2, sys.stderr)):  # '--out /dev/stdout >> notes.md': the shell's append
        if os.path.realpath(path) == os.path.realpath(f"/proc/self/fd/{fd}"):  # kept (opened anew, it truncated)
            stream.write(text)
            stream.flush()
            return
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as error:  # '/dev/full': its error at the flush, naming no file
        raise OSError(error.errno, error.strerror, str(path)) from None


def json_safe(value):
    r"""``value`` with numpy scalars as Python numbers and NaN as None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not hasattr(value, "__len__"):  # numpy scalars
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) else value
    return value


def atomic_write_json(path: str | Path, value) -> None:
    r"""Writes :func:`json_safe` ``value`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(json_safe(value), indent=2) + "\n")


def bytes_digest(data: bytes) -> str:
    r""":func:`file_digest` of a file that holds ``data``."""
    return hashlib.sha1(data).hexdigest()[:16]


def file_digest(path: str | Path) -> str:
    r"""SHA-1 of a file's bytes (16 hex digits): whether a file is the one an output was made from."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]
