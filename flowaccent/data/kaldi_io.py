r"""Typed, checked reading and writing of Kaldi arks and scps (a wrapper around kaldiio).

kaldiio parses the binary format; this module and those it stands on (below) make every damaged input a
:class:`~flowaccent.errors.KaldiIOError` naming the file and the utterance:
a truncated ark (inside a key, a header or the matrix data, or between
utterances when an scp or ``utt2num_frames`` says more exist), a corrupt type
token or binary marker, an offset past the end, a missing file, a failing
``cmd |`` pipe (its exit status is checked), keys with whitespace, integer
arrays (which Kaldi cannot store) and wrong dimensions. Readers stream: one
utterance in memory at a time.

This module reads tables and checks matrices; the parts it stands on have their own files, and what they offer
is named here too: an scp's lines (:mod:`flowaccent.data.scp`), arks read as streams and pipes
(:mod:`flowaccent.data.ark_reader`), arks written (:mod:`flowaccent.data.ark_writer`), one Kaldi object
(:mod:`flowaccent.data.kaldi_object`).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from flowaccent.data.ark_reader import ark_stream, open_ark, read_next, run_pipe
from flowaccent.data.ark_writer import ArkWriter
from flowaccent.data.kaldi_object import read_object, read_rows
from flowaccent.data.scp import ScpEntry, located, read_scp
from flowaccent.errors import FeatureError, KaldiIOError

__all__ = [
    "ArkWriter", "RandomAccessReader", "ScpEntry", "ScpReader", "check_matrix", "frame_counts", "iter_ark",
    "read_matrix", "read_next", "read_scp", "run_pipe",
]


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
        raise _no_frames(where)
    if expected_dim is not None and array.shape[1] != expected_dim:
        raise FeatureError(f"{where}: features have dim {array.shape[1]}, expected {expected_dim}")
    if expected_frames is not None and array.shape[0] != expected_frames:
        raise FeatureError(f"{where}: {array.shape[0]} frames, but utt2num_frames says {expected_frames}")
    if not allow_nonfinite and not np.isfinite(array).all():
        bad = int(np.argwhere(~np.isfinite(array))[0, 0])
        raise FeatureError(f"{where}: NaN or inf in the features (first at frame {bad})")
    return array


def _no_frames(where: str) -> FeatureError:
    return FeatureError(f"{where}: zero-length utterance (0 frames): remove it from the data dir (its feats.scp line, "
                        "then 'flowaccent fixdir' or Kaldi's utils/fix_data_dir.sh)")


def frame_counts(
    path: str | Path, keys: Iterable[str] | None = None, rxfiles: Mapping[str, str] | None = None
) -> dict[str, int]:
    r"""Kaldi's ``feat-to-len``: ``{key: frames}`` of the matrices of the scp ``path`` (those of ``keys`` only, where
    given; a key the scp lacks is left out), in its order, keeping one ark open at a time. A binary matrix's frames
    are read from its header (its data is checked to be in the file, not read); a text matrix, and a ``cmd |``'s
    output, are read whole. ``rxfiles``: as :class:`ScpReader`'s.

    Raises :class:`KaldiIOError` for what reading the matrices raises (a missing ark, a truncated or corrupt one, a
    range past its end) and for a vector; :class:`FeatureError` for a matrix of no frames.
    """
    path = Path(path)
    wanted = None if keys is None else set(keys)
    counts: dict[str, int] = {}
    with contextlib.closing(_OneArk()) as arks:
        for entry in itertools.starmap(ScpEntry, _rxfiles_of(path, rxfiles).items()):
            if wanted is not None and entry.key not in wanted:
                continue
            where = f"{path}: {_key_kind(path)} '{entry.key}'"
            if entry.is_pipe:
                array = read_matrix(entry.rxfile, entry.key, str(path))
                counts[entry.key] = check_matrix(array, where, allow_nonfinite=True).shape[0]
                continue
            file, offset, ranges = located(entry, path)
            fd = arks.open(file, where)
            if offset is None:  # a file of one matrix
                fd.seek(0)
            else:
                _seek(fd, file, offset, where)
            rows = read_rows(fd, f"{where} in '{file}'")
            if ranges is not None:
                _check_range(ranges[0], rows, "rows", where)
                rows = len(range(rows)[ranges[0]])
            if rows == 0:
                raise _no_frames(where)
            counts[entry.key] = rows
    return counts


def read_matrix(rxfile: str, key: str = "", source: str = "") -> np.ndarray:
    r"""Reads one object named by an scp value (``path:offset[range]``, a plain file, or ``cmd |``).

    Arguments:
        rxfile: the value of an scp line.
        key: the utterance, for messages.
        source: the scp file, for messages.
    """
    entry = ScpEntry(key, rxfile)
    named = f"utterance '{key}'" if key else f"'{rxfile}'"  # no key: the rxfile itself, not "utterance ''"
    where = f"{source}: {named}" if source else named
    if entry.is_pipe:
        data = run_pipe(rxfile[: rxfile.rstrip().rfind("|")], where)
        import io

        return read_object(io.BytesIO(data), f"{where}: output of '{rxfile}'")
    path, offset, ranges = entry.location()
    with open_ark(path, where) as fd:
        return _read_at(fd, path, offset, ranges, where)


def _key_kind(scp: Path) -> str:
    r"""What an scp's keys name in messages: ``cmvn.scp``'s are speakers (Kaldi's per-speaker stats)."""
    return "speaker" if scp.name == "cmvn.scp" else "utterance"


def _read_at(fd: IO[bytes], path: str, offset: int | None, ranges, where: str) -> np.ndarray:
    if offset is not None:
        _seek(fd, path, offset, where)
    array = read_object(fd, f"{where} in '{path}'")
    return _take(array, ranges, where) if ranges is not None else array


class _OneArk:
    r"""The ark of the entry an scp is read at, kept open while the next entries are in it (close when done)."""

    def __init__(self) -> None:
        self.fd: IO[bytes] | None = None
        self.path: str | None = None

    def open(self, path: str, where: str) -> IO[bytes]:
        r"""``path`` open to read (``where``: the entry, for the error where it cannot be opened)."""
        if path != self.path or self.fd is None:
            self.close()
            self.fd, self.path = open_ark(path, where), path
        return self.fd

    def close(self) -> None:
        if self.fd is not None:
            self.fd.close()
        self.fd = self.path = None


def _seek(fd: IO[bytes], path: str, offset: int, where: str) -> None:
    size = os.fstat(fd.fileno()).st_size
    if offset >= size:
        raise KaldiIOError(f"{where}: offset {offset} is past the end of '{path}' ({size} bytes): truncated ark?")
    fd.seek(offset)


def _take(array: np.ndarray, ranges: tuple[slice, ...], where: str) -> np.ndarray:
    r"""``array[ranges]``, refused where a range reaches past the matrix (numpy would cut it short silently;
    Kaldi refuses it)."""
    if len(ranges) > array.ndim:
        raise KaldiIOError(f"{where}: a range of {len(ranges)} dimensions for an object of {array.ndim}")
    for axis, (part, size) in enumerate(zip(ranges, array.shape)):
        _check_range(part, size, ("rows", "columns")[axis] if array.ndim == 2 else "elements", where)
    return array[ranges]


def _check_range(part: slice, size: int, what: str, where: str) -> None:
    if part.stop is not None and part.stop > size:
        raise KaldiIOError(f"{where}: range [{part.start}:{part.stop - 1}] of {what} is past the end of the matrix's "
                           f"{size} {what}")


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
        with contextlib.closing(_OneArk()) as arks:
            for entry in itertools.starmap(ScpEntry, self.rxfiles.items()):
                where = f"{self.path}: {_key_kind(self.path)} '{entry.key}'"
                if entry.is_pipe:
                    array = read_matrix(entry.rxfile, entry.key, str(self.path))
                else:
                    path, offset, ranges = located(entry, self.path)
                    array = _read_at(arks.open(path, where), path, offset, ranges, where)
                try:
                    array = self._check(entry.key, array)
                except FeatureError as error:
                    if self.problems is None:
                        raise
                    self.problems.append(str(error))
                    continue
                yield entry.key, array

    def _check(self, key: str, array: np.ndarray) -> np.ndarray:
        frames = None if self.utt2num_frames is None else self.utt2num_frames.get(key)
        where = f"{self.path}: {_key_kind(self.path)} '{key}'"
        return check_matrix(array, where, self.expected_dim, frames, self.allow_nonfinite)


def iter_ark(rspecifier: str | os.PathLike, expected_keys: Sequence[str] | None = None
             ) -> Iterator[tuple[str, np.ndarray]]:
    r"""Streams ``(key, array)`` from ``ark:path``, ``ark:cmd |``, ``scp:path`` or a plain path (an ark; a path
    ending in ``.scp`` is read as an scp: read as an ark, ``feats.scp`` was 'not a Kaldi matrix').

    With ``expected_keys`` (from an scp or ``utt2num_frames``) the keys read must be
    exactly those, in that order: an ark cut between utterances is an error, not
    a shorter corpus. A pipe's exit status is checked after its last object.
    """
    rspecifier = os.fspath(rspecifier)  # a Path: 'argument of type PosixPath is not iterable'
    plain = "scp" if rspecifier.endswith(".scp") else "ark"
    kind, _, target = rspecifier.partition(":") if ":" in rspecifier else (plain, "", rspecifier)
    kind = kind.split(",")[0]
    if kind == "scp":
        pairs = ScpReader(target, allow_nonfinite=True)
    elif kind == "ark":
        pairs = ark_stream(target)
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
            path, offset, ranges = located(entry, self.path)
            if path not in self._fds:
                self._fds[path] = open_ark(path, where)
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
