r"""Typed, checked reading and writing of Kaldi arks and scps (a wrapper around kaldiio).

kaldiio parses the binary format; this module makes every damaged input a
:class:`~flowaccent.errors.KaldiIOError` naming the file and the utterance:
a truncated ark (inside a key, a header or the matrix data, or between
utterances when an scp or ``utt2num_frames`` says more exist), a corrupt type
token or binary marker, an offset past the end, a missing file, a failing
``cmd |`` pipe (its exit status is checked), keys with whitespace, integer
arrays (which Kaldi cannot store) and wrong dimensions. Readers stream: one
utterance in memory at a time.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from flowaccent.data.atomic import temporary_name
from flowaccent.data.kaldi_object import read_object
from flowaccent.data.kaldi_text import COUNT, fields, has_space
from flowaccent.errors import FeatureError, KaldiIOError

_RXFILE = re.compile(r"^(?P<path>.*?)(?::(?P<offset>\d+))?(?:\[(?P<range>[^\]]*)\])?$")


@dataclasses.dataclass(frozen=True)
class ScpEntry:
    r"""One line of an scp: ``key rxfile``; ``rxfile`` is ``path[:offset][range]`` or ``cmd |``."""

    key: str
    rxfile: str

    @property
    def is_pipe(self) -> bool:
        return self.rxfile.rstrip().endswith("|")

    def location(self) -> tuple[str, int | None, tuple[slice, ...] | None]:
        r"""``(path, byte offset or None, (row slice[, column slice]) or None)``."""
        rxfile = self.rxfile
        if not rxfile.endswith("]"):  # no range: _RXFILE's answer without its backtracking (2.2 -> 0.45 µs)
            path, colon, offset = rxfile.rpartition(":")
            return (path, int(offset), None) if colon and offset.isdecimal() else (rxfile, None, None)
        match = _RXFILE.match(rxfile)
        assert match is not None  # the pattern matches every string
        offset = int(match["offset"]) if match["offset"] is not None else None
        return match["path"], offset, _parse_range(match["range"], self.key)


def _located(entry: ScpEntry, scp: Path | str) -> tuple[str, int | None, tuple[slice, ...] | None]:
    r"""``entry.location()``, a bad range's error naming the scp it is in (it named the utterance alone)."""
    try:
        return entry.location()
    except KaldiIOError as error:
        raise KaldiIOError(f"{scp}: {error}") from None


def _parse_range(text: str | None, key: str) -> tuple[slice, ...] | None:
    r"""Kaldi's ``[first:last]`` / ``[r1:r2,c1:c2]`` (inclusive) ranges as slices."""
    if text is None:
        return None
    slices = []
    for part in text.split(","):
        if part.strip() in ("", ":"):
            slices.append(slice(None))
            continue
        bounds = part.split(":")
        if len(bounds) != 2 or not all(COUNT.fullmatch(b.strip()) for b in bounds) or int(bounds[0]) > int(bounds[1]):
            raise KaldiIOError(f"utterance '{key}': bad range '[{text}]' (Kaldi's [first:last], first <= last)")
        slices.append(slice(int(bounds[0]), int(bounds[1]) + 1))
    return tuple(slices)


def read_scp(path: str | Path) -> list[ScpEntry]:
    r"""Reads an scp file into entries (checks: file exists, every line has a key and a value, unique keys)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").split("\n")  # at \n only, as Kaldi (not U+2028, U+0085...)
        if lines[-1] == "":
            lines.pop()
    except FileNotFoundError:
        raise KaldiIOError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise KaldiIOError(f"{path}: cannot read: {error}") from None
    entries, seen = [], set()
    for number, line in enumerate(lines, 1):
        parts = fields(line, maxsplit=1)
        if len(parts) != 2:
            raise KaldiIOError(f"{path}:{number}: expected 'key rxfile', got {line!r}")
        if parts[0] in seen:
            raise KaldiIOError(f"{path}:{number}: duplicate key '{parts[0]}'")
        seen.add(parts[0])
        entries.append(ScpEntry(parts[0], parts[1]))
    return entries


def _rxfiles_of(scp: Path, rxfiles: Mapping[str, str] | None) -> Mapping[str, str]:
    r"""``rxfiles`` (an scp's ``{key: rxfile}`` read already: a data dir's table, not held twice), else ``scp``'s."""
    return rxfiles if rxfiles is not None else {entry.key: entry.rxfile for entry in read_scp(scp)}


def check_matrix(
    array: np.ndarray,
    where: str,
    expected_dim: int | None = None,
    expected_frames: int | None = None,
    allow_nonfinite: bool = False,
) -> np.ndarray:
    r"""Checks a features matrix ``(T, D)``; raises :class:`FeatureError` naming ``where``.

    Checks: 2-D, at least one frame, ``D == expected_dim``, ``T == expected_frames``,
    and (unless ``allow_nonfinite``) no NaN or inf.
    """
    if not isinstance(array, np.ndarray) or array.ndim != 2:
        shape = getattr(array, "shape", type(array).__name__)
        raise FeatureError(f"{where}: expected a matrix (T, D), got {shape}")
    if array.shape[0] == 0:
        raise FeatureError(f"{where}: zero-length utterance (0 frames): remove it from the data dir (its feats.scp "
                           "line, then Kaldi's utils/fix_data_dir.sh)")
    if expected_dim is not None and array.shape[1] != expected_dim:
        raise FeatureError(f"{where}: features have dim {array.shape[1]}, expected {expected_dim}")
    if expected_frames is not None and array.shape[0] != expected_frames:
        raise FeatureError(f"{where}: {array.shape[0]} frames, but utt2num_frames says {expected_frames}")
    if not allow_nonfinite and not np.isfinite(array).all():
        bad = int(np.argwhere(~np.isfinite(array))[0, 0])
        raise FeatureError(f"{where}: NaN or inf in the features (first at frame {bad})")
    return array


def _read_object(fd: IO[bytes], where: str) -> np.ndarray:
    r"""Reads one Kaldi object (after its key) from ``fd`` (see :mod:`flowaccent.data.kaldi_object`)."""
    return read_object(fd, where)


def read_matrix(rxfile: str, key: str = "", source: str = "") -> np.ndarray:
    r"""Reads one object named by an scp value (``path:offset[range]``, a plain file, or ``cmd |``).

    Arguments:
        rxfile: the value of an scp line.
        key: the utterance, for messages.
        source: the scp file, for messages.
    """
    entry = ScpEntry(key, rxfile)
    where = f"{source}: utterance '{key}'" if source else f"utterance '{key}'"
    if entry.is_pipe:
        data = run_pipe(rxfile[: rxfile.rstrip().rfind("|")], where)
        import io

        return _read_object(io.BytesIO(data), f"{where}: output of '{rxfile}'")
    path, offset, ranges = entry.location()
    with _open(path, where) as fd:
        return _read_at(fd, path, offset, ranges, where)


def _open(path: str, where: str) -> IO[bytes]:
    r"""``path`` opened to read; a :class:`KaldiIOError` naming it after ``where`` (the scp line; "": none)."""
    where = f"{where}: " if where else ""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        relative = "" if Path(path).is_absolute() else f" (relative to the current folder, {Path.cwd()})"
        raise KaldiIOError(f"{where}ark '{path}' does not exist{relative}") from None
    except OSError as error:
        raise KaldiIOError(f"{where}cannot open ark '{path}': {error.strerror}") from None


def _key_kind(scp: Path) -> str:
    r"""What an scp's keys name in messages: ``cmvn.scp``'s are speakers (Kaldi's per-speaker stats)."""
    return "speaker" if scp.name == "cmvn.scp" else "utterance"


def _read_at(fd: IO[bytes], path: str, offset: int | None, ranges, where: str) -> np.ndarray:
    if offset is not None:
        size = os.fstat(fd.fileno()).st_size
        if offset >= size:
            raise KaldiIOError(f"{where}: offset {offset} is past the end of '{path}' ({size} bytes): truncated ark?")
        fd.seek(offset)
    array = _read_object(fd, f"{where} in '{path}'")
    return _take(array, ranges, where) if ranges is not None else array


def _take(array: np.ndarray, ranges: tuple[slice, ...], where: str) -> np.ndarray:
    r"""``array[ranges]``, refused where a range reaches past the matrix (numpy would cut it short silently;
    Kaldi refuses it)."""
    if len(ranges) > array.ndim:
        raise KaldiIOError(f"{where}: a range of {len(ranges)} dimensions for an object of {array.ndim}")
    for axis, (part, size) in enumerate(zip(ranges, array.shape)):
        if part.stop is not None and part.stop > size:
            what = ("rows", "columns")[axis] if array.ndim == 2 else "elements"
            raise KaldiIOError(f"{where}: range [{part.start}:{part.stop - 1}] of {what} is past the end of the "
                               f"matrix's {size} {what}")
    return array[ranges]


def run_pipe(command: str, where: str) -> bytes:
    r"""Runs ``command`` in a shell (stdin empty: a command reading it ends, not waits) and returns its stdout;
    a non-zero exit is a :class:`KaldiIOError`."""
    result = subprocess.run(command, shell=True, capture_output=True, check=False, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise KaldiIOError(f"{where}: pipe '{command.strip()}' failed ({_status(result.returncode, result.stderr)})")
    return result.stdout


def _status(code: int, stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    tail = f": {lines[-1]}" if lines else ""
    return f"exit status {code}{tail}"


class ScpReader:
    r"""Streams ``(key, matrix)`` of an scp in order, keeping one ark open at a time.

    Arguments:
        path: the scp (``feats.scp``).
        expected_dim: feature dimension every matrix must have, or None.
        utt2num_frames: expected frame counts, checked when given.
        allow_nonfinite: accept NaN/inf values (they are an error by default).
        problems: where given, a matrix failing those checks is listed there (its message) and skipped, not
            raised (``flowaccent validate --read-feats`` lists every bad utterance); reading errors still raise.
        rxfiles: the scp's ``{key: rxfile}`` in its order, where it was read already (a
            :class:`~flowaccent.data.datadir.DataDir`'s ``feats.scp`` table, the same lines): not read again.

    Example:
        >>> for key, feats in ScpReader("data/train/feats.scp", expected_dim=40):  # doctest: +SKIP
        ...     print(key, feats.shape)
    """

    def __init__(
        self,
        path: str | Path,
        expected_dim: int | None = None,
        utt2num_frames: Mapping[str, int] | None = None,
        allow_nonfinite: bool = False,
        problems: list[str] | None = None,
        rxfiles: Mapping[str, str] | None = None,
    ):
        self.path = Path(path)
        self.rxfiles = _rxfiles_of(self.path, rxfiles)
        self.expected_dim = expected_dim
        self.utt2num_frames = utt2num_frames
        self.allow_nonfinite = allow_nonfinite
        self.problems = problems

    def __len__(self) -> int:
        return len(self.rxfiles)

    def ids(self) -> list[str]:
        r"""The keys in scp order (not ``keys()``: ``dict(reader)`` then builds from ``(key, matrix)`` pairs)."""
        return list(self.rxfiles)

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        fd: IO[bytes] | None = None
        open_path = None
        try:
            for entry in itertools.starmap(ScpEntry, self.rxfiles.items()):
                where = f"{self.path}: {_key_kind(self.path)} '{entry.key}'"
                if entry.is_pipe:
                    array = read_matrix(entry.rxfile, entry.key, str(self.path))
                else:
                    path, offset, ranges = _located(entry, self.path)
                    if path != open_path:
                        if fd is not None:
                            fd.close()
                        fd, open_path = _open(path, where), path
                    array = _read_at(fd, path, offset, ranges, where)
                try:
                    array = self._check(entry.key, array)
                except FeatureError as error:
                    if self.problems is None:
                        raise
                    self.problems.append(str(error))
                    continue
                yield entry.key, array
        finally:
            if fd is not None:
                fd.close()

    def _check(self, key: str, array: np.ndarray) -> np.ndarray:
        frames = None if self.utt2num_frames is None else self.utt2num_frames.get(key)
        where = f"{self.path}: {_key_kind(self.path)} '{key}'"
        return check_matrix(array, where, self.expected_dim, frames, self.allow_nonfinite)


def iter_ark(rspecifier: str, expected_keys: Sequence[str] | None = None) -> Iterator[tuple[str, np.ndarray]]:
    r"""Streams ``(key, array)`` from ``ark:path``, ``ark:cmd |``, ``scp:path`` or a plain path.

    With ``expected_keys`` (from an scp or ``utt2num_frames``) the keys read must be
    exactly those, in that order: an ark cut between utterances is an error, not
    a shorter corpus. A pipe's exit status is checked after its last object.
    """
    kind, _, target = rspecifier.partition(":") if ":" in rspecifier else ("ark", "", rspecifier)
    kind = kind.split(",")[0]
    if kind == "scp":
        pairs = ScpReader(target, allow_nonfinite=True)
    elif kind == "ark":
        pairs = _iter_ark_stream(target)
    else:
        raise KaldiIOError(f"{rspecifier}: unknown rspecifier kind '{kind}' (use ark: or scp:)")
    if expected_keys is None:
        yield from pairs
        return
    count = 0
    for key, array in pairs:
        if count >= len(expected_keys) or key != expected_keys[count]:
            wanted = expected_keys[count] if count < len(expected_keys) else "nothing more"
            raise KaldiIOError(f"{target}: utterance '{key}' found where '{wanted}' was expected")
        count += 1
        yield key, array
    if count < len(expected_keys):
        raise KaldiIOError(
            f"{target}: ends after {count} utterance(s); '{expected_keys[count]}' and "
            f"{len(expected_keys) - count - 1} more are missing (truncated between utterances?)"
        )


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
    return key, offset, _read_object(fd, f"{where}: utterance '{key}'")


def _iter_ark_stream(target: str) -> Iterator[tuple[str, np.ndarray]]:
    command = target.rstrip()
    is_pipe = command.endswith("|")
    if is_pipe:
        stderr = tempfile.TemporaryFile()
        proc = subprocess.Popen(
            command[:-1], shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
        )
        fd: IO[bytes] = proc.stdout  # type: ignore[assignment]
    else:
        fd = _open(target, "")  # the message names the ark
    try:
        count = 0
        while True:
            key = _read_key(fd, f"{target}: after {count} utterance(s)")
            if key is None:
                break
            yield key, _read_object(fd, f"{target}: utterance '{key}'")
            count += 1
        if is_pipe and proc.wait() != 0:
            stderr.seek(0)
            raise KaldiIOError(f"pipe '{command[:-1].strip()}' failed ({_status(proc.returncode, stderr.read())})")
    finally:
        fd.close()
        if is_pipe:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            stderr.close()


class ArkWriter:
    r"""Writes ``ark`` (+ ``scp``) atomically: nothing appears under the final names unless all went well.

    Matrices are written as Kaldi binary float (``FM``) or double (``DM``)
    objects; integer arrays and keys with whitespace are refused. The scp
    points at the final ark path with byte offsets.

    Example:
        >>> with ArkWriter("raw.ark", "feats.scp") as w:  # doctest: +SKIP
        ...     w.write("spk1-utt1", feats)
    """

    def __init__(
        self, ark: str | Path, scp: str | Path | None = None, *, partial: Path | None = None,
        taken: Sequence[tuple[str, int]] = (),
    ):
        r"""``partial``: the temporary ark's name instead of :func:`~flowaccent.data.atomic.temporary_name`'s, kept
        on a failure (what a stopped ``fbank`` leaves for its ``--resume``); ``taken``: the keys and offsets of what
        that ark holds already (a stopped run's, cut after its last whole object): written after it."""
        self.ark, self.scp = Path(ark).absolute(), Path(scp) if scp else None
        self.partial = partial
        self._tmp_ark = partial or temporary_name(self.ark)
        self._lines = [f"{key} {self.ark}:{offset}\n" for key, offset in taken]
        self._keys = {key for key, _ in taken}
        self._fd: IO[bytes] | None = None

    @property
    def temporary(self) -> Path:
        r"""Where the ark is written until it is complete."""
        return self._tmp_ark

    def __enter__(self) -> ArkWriter:
        self._fd = open(self._tmp_ark, "ab" if self._lines else "wb")
        return self

    def flush(self) -> None:
        r"""Hands what was written to the operating system (a process killed after it leaves it in the file)."""
        assert self._fd is not None, "use ArkWriter as a context manager"
        self._fd.flush()

    def write(self, key: str, array: np.ndarray) -> None:
        r"""Appends one ``(T, D)`` matrix or ``(D,)`` vector of float32/float64 under ``key``."""
        from kaldiio.matio import write_array

        assert self._fd is not None, "use ArkWriter as a context manager"
        where = f"{self.ark}: utterance '{key}'"
        if not key or has_space(key):
            raise KaldiIOError(f"{where}: keys must be non-empty without whitespace")
        if key in self._keys:
            raise KaldiIOError(f"{where}: duplicate key")
        array = np.asarray(array)
        if array.dtype not in (np.float32, np.float64) or array.ndim not in (1, 2):
            raise KaldiIOError(
                f"{where}: Kaldi arks store float32/float64 vectors or matrices, "
                f"got {array.dtype} of shape {array.shape}"
            )
        self._fd.write(key.encode("utf-8") + b" ")
        offset = self._fd.tell()
        write_array(self._fd, np.ascontiguousarray(array))
        self._keys.add(key)
        self._lines.append(f"{key} {self.ark}:{offset}\n")

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._fd is not None
        self._fd.close()
        if exc_type is not None:
            if self.partial is not None:
                return
            with contextlib.suppress(FileNotFoundError):
                self._tmp_ark.unlink()
            return
        with open(self._tmp_ark, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(self._tmp_ark, self.ark)
        if self.scp is not None:
            from flowaccent.data.atomic import atomic_write_text

            atomic_write_text(self.scp, "".join(self._lines))

    @property
    def scp_lines(self) -> list[str]:
        r"""The scp lines written so far (``key /abs/path.ark:offset``)."""
        return list(self._lines)


class RandomAccessReader:
    r"""Reads matrices of an scp by key, in any order, keeping arks open (close when done).

    Example:
        >>> with RandomAccessReader("feats.scp") as reader:  # doctest: +SKIP
        ...     feats = reader["spk1-utt1"]
    """

    def __init__(
        self, path: str | Path, expected_dim: int | None = None, allow_nonfinite: bool = False,
        rxfiles: Mapping[str, str] | None = None,
    ):
        r"""``rxfiles``: as :class:`ScpReader`'s."""
        self.path = Path(path)
        self.rxfiles = _rxfiles_of(self.path, rxfiles)
        self.expected_dim = expected_dim
        self.allow_nonfinite = allow_nonfinite
        self._fds: dict[str, IO[bytes]] = {}

    def __contains__(self, key: str) -> bool:
        return key in self.rxfiles

    def __getitem__(self, key: str) -> np.ndarray:
        where = f"{self.path}: {_key_kind(self.path)} '{key}'"
        rxfile = self.rxfiles.get(key)
        if rxfile is None:
            raise KaldiIOError(f"{where}: not in the scp")
        entry = ScpEntry(key, rxfile)
        if entry.is_pipe:
            array = read_matrix(entry.rxfile, key, str(self.path))
        else:
            path, offset, ranges = _located(entry, self.path)
            if path not in self._fds:
                self._fds[path] = _open(path, where)
            array = _read_at(self._fds[path], path, offset, ranges, where)
        return check_matrix(array, where, self.expected_dim, None, self.allow_nonfinite)

    def twin(self) -> RandomAccessReader:
        r"""A reader of the same scp (its ``rxfiles`` shared) with its own open files: one
        reader's seek-and-read must not interleave with another thread's on the same file."""
        twin = copy.copy(self)
        twin._fds = {}
        return twin

    def close(self) -> None:
        for fd in self._fds.values():
            fd.close()
        self._fds.clear()

    def __enter__(self) -> RandomAccessReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
