r"""Reading a Kaldi ark as a stream, entry after entry (a file, or a ``cmd |`` pipe whose exit status is checked
after its last object), and running an scp's ``cmd |``; a truncated or corrupt entry, a missing ark or a failed
pipe is a :class:`~flowaccent.errors.KaldiIOError` naming it."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from flowaccent.data.kaldi_object import read_object
from flowaccent.errors import KaldiIOError


def open_ark(path: str, where: str) -> IO[bytes]:
    r"""``path`` opened to read; a :class:`KaldiIOError` naming it after ``where`` (the scp line; "": none)."""
    where = f"{where}: " if where else ""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        relative = "" if Path(path).is_absolute() else f" (relative to the current folder, {Path.cwd()})"
        raise KaldiIOError(f"{where}ark '{path}' does not exist{relative}") from None
    except OSError as error:
        raise KaldiIOError(f"{where}cannot open ark '{path}': {error.strerror}") from None


def run_pipe(command: str, where: str) -> bytes:
    r"""Runs ``command`` in a shell (stdin empty: a command reading it ends, not waits) and returns its stdout;
    a non-zero exit is a :class:`KaldiIOError`."""
    result = subprocess.run(command, shell=True, capture_output=True, check=False, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        status = pipe_status(result.returncode, result.stderr)
        raise KaldiIOError(f"{where}: pipe '{command.strip()}' failed ({status})")
    return result.stdout


def pipe_status(code: int, stderr: bytes) -> str:
    r"""A failed pipe's exit status and the last line it wrote to stderr, for messages."""
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    tail = f": {lines[-1]}" if lines else ""
    return f"exit status {code}{tail}"


def _read_key(fd: IO[bytes], where: str) -> str | None:
    r"""The next key up to its space; None at a clean end of the ark."""
    raw = bytearray()
    while True:
        c = fd.read(1)
        if not c:
            if raw.strip():
                raise KaldiIOError(f"{where}: truncated ark: the file ends inside a key")
            return None
        if c == b" ":
            if not raw.strip():
                raise KaldiIOError(f"{where}: corrupt ark: empty key")
            try:
                return raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise KaldiIOError(f"{where}: corrupt ark: a key that is not UTF-8 text") from None
        raw += c
        if len(raw) > 4096:
            raise KaldiIOError(f"{where}: corrupt ark: no key separator within 4096 bytes")


def read_next(fd: IO[bytes], where: str) -> tuple[str, int, np.ndarray] | None:
    r"""The next ``(key, offset of its object, object)`` of an ark open at an entry's start; None at its clean end.
    A truncated or corrupt entry is a :class:`KaldiIOError`."""
    key = _read_key(fd, where)
    if key is None:
        return None
    offset = fd.tell()
    return key, offset, read_object(fd, f"{where}: utterance '{key}'")


def ark_stream(target: str) -> Iterator[tuple[str, np.ndarray]]:
    command = target.rstrip()
    is_pipe = command.endswith("|")
    if is_pipe:
        stderr = tempfile.TemporaryFile()
        proc = subprocess.Popen(
            command[:-1], shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
        )
        fd: IO[bytes] = proc.stdout  # type: ignore[assignment]
    else:
        fd = open_ark(target, "")  # the message names the ark
    try:
        count = 0
        while True:
            key = _read_key(fd, f"{target}: after {count} utterance(s)")
            if key is None:
                break
            yield key, read_object(fd, f"{target}: utterance '{key}'")
            count += 1
        if is_pipe and proc.wait() != 0:
            stderr.seek(0)
            raise KaldiIOError(f"pipe '{command[:-1].strip()}' failed ({pipe_status(proc.returncode, stderr.read())})")
    finally:
        fd.close()
        if is_pipe:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            stderr.close()
