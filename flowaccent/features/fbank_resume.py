r"""Going on after a stopped ``flowaccent fbank`` (``--resume``): what a run leaves when it stops, and taking it over.

A run writes its features ark under a hidden name (``DATA_DIR/data/.raw_fbank_NAME.TAG.ark.part.PID``,
:class:`~flowaccent.data.kaldi_io.ArkWriter`), one recording after another in the order of ``wav.scp`` (or
``segments``), and next to it a journal (the same name and ``.jobs``): a header naming the data dir, then a line per
recording once its utterances are in the ark, with the sample rate read and a digest of the size and modification
time of the files its ``wav.scp`` entry names (:func:`audio_stamp`), or ``failed``. The run holds a lock
(``flock``) on the journal while it writes: a journal nobody holds is a stopped run's, whatever became of its
process's number (a reboot hands it to another). A run that stops (Ctrl-C, ``kill``, SIGKILL, an error, failed
utterances) leaves both behind.

``TAG`` is a digest of ``wav.scp``, ``segments``, the options and the channel (:func:`make_fbank`'s ark names): a
stopped run of another ``TAG`` is never taken over; one of the same ``TAG`` computed the same features, whatever the
data dir's name then. A run with ``--resume`` locks the stopped run's journal, keeps the longest run of recordings
from the start that holds (each in the journal, not failed, its files there and the same size and time as then, its
utterances in the ark in order and whole), cuts both files after them and writes on into them: with ``dither`` 0
(the default) the same bytes an uninterrupted run writes.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import itertools
import json
import os
import re
import shlex
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from stat import S_ISREG

import numpy as np
from tqdm import tqdm

from flowaccent import __version__
from flowaccent.data.atomic import partial_name
from flowaccent.data.kaldi_io import read_next
from flowaccent.data.lock import alive
from flowaccent.errors import KaldiIOError

#: The start of a journal's first line (the rest: JSON of the version that wrote it and the data dir).
MAGIC = b"flowaccent fbank journal 2 "
#: A journal's line for a recording with an utterance that failed (it and all after it are computed again).
FAILED = b"failed"
#: A journal's stamp of an entry that names no file: such a recording is never taken over.
UNCHECKED = "-"


def journal_of(ark: Path) -> Path:
    r"""The journal next to a temporary ark."""
    return ark.with_name(f"{ark.name}.jobs")


def _named_paths(rxfile: str) -> dict[str, None]:
    r"""What a ``wav.scp`` value may name as files, in order: the value (of ``archive:offset``, the archive), or the
    words of a ``cmd |`` (``sph2pipe -f wav /corpus/x.sph |``: its ``.sph``; split as a shell splits them)."""
    value = rxfile.strip()
    if value.endswith("|"):
        try:
            words = shlex.split(value[:-1])
        except ValueError:  # quotes a shell would refuse too
            words = value[:-1].split()
    else:
        words = [value]
    paths: dict[str, None] = {}
    for word in words:
        archive = re.fullmatch(r"(.+):(\d+)", word)
        paths.update(dict.fromkeys((word, archive.group(1)) if archive else (word,)))
    return paths


def audio_stamp(rxfile: str) -> str:
    r"""A digest of ``path size mtime_ns`` of each file a ``wav.scp`` value names (:func:`_named_paths` that are
    files; 16 hex digits): audio written again (a file copied over, a download made again) is read again, not taken
    over; :data:`UNCHECKED` where it names none. A file named inside a script, or relative to a ``cd`` in the
    command, is not seen."""
    lines = []
    for path in _named_paths(rxfile):
        try:
            stat = os.stat(path)
        except (OSError, ValueError):  # not a file's name (ValueError: a NUL in it)
            continue
        if S_ISREG(stat.st_mode):
            lines.append(f"{os.path.abspath(path)} {stat.st_size} {stat.st_mtime_ns}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()[:16] if lines else UNCHECKED


def _lock(fd: int) -> bool | None:
    r"""Takes the lock of a journal open at ``fd``: True; False where a running process holds it; None where the
    file system has no locks (Lustre without ``-o flock``, some NFS mounts)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        return False if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None
    return True


def _header(data_dir: Path) -> bytes:
    r"""A journal's first line: the version, the data dir, and the process writing it (:func:`_held`)."""
    fields = {"version": __version__, "data_dir": str(data_dir), "pid": os.getpid(), "host": socket.gethostname()}
    return MAGIC + json.dumps(fields).encode() + b"\n"


def _parsed(header: bytes) -> dict | None:
    r"""A journal's first line as written by :func:`_header`; None where it is not one (damaged)."""
    try:
        fields = json.loads(header[len(MAGIC):]) if header.startswith(MAGIC) else None
        types = {"pid": int, "version": str, "data_dir": str}
        good = isinstance(fields, dict) and all(isinstance(fields.get(key), kind) for key, kind in types.items())
        good = good and isinstance(fields.setdefault("host", socket.gethostname()), str)  # before hosts: this one
        return fields if good and 0 < fields["pid"] < 2**31 else None
    except ValueError:
        return None


def _read(fd: int) -> list[bytes]:
    r"""The lines of the journal open at ``fd`` (the last: what follows the last newline)."""
    with open(os.dup(fd), "rb") as f:
        f.seek(0)
        return f.read().split(b"\n")


def _held(fd: int) -> bool:
    r"""Whether a running process writes the journal open at ``fd``: it holds its lock; on a file system without
    locks, the process its header names is running (and is not this one; a number that went to another process
    since, after a reboot, keeps such a journal from being taken over or removed there), or runs on another machine
    (it cannot be told from here)."""
    locked = _lock(fd)
    if locked is not None:
        return not locked
    fields = _parsed(_read(fd)[0])
    if fields is None:
        return False
    if fields["host"] != socket.gethostname():
        return True
    return fields["pid"] != os.getpid() and alive(fields["pid"])


class Journal:
    r"""A run's journal (a line per recording, :func:`audio_stamp`) next to its partial ark, locked while open.

    Arguments:
        ark: the partial ark it describes (the journal is :func:`journal_of` it).
        fd: the journal, open and locked: a stopped run's, cut after the lines taken over (:func:`take_over`), or
            a new one (:meth:`start`).
    """

    def __init__(self, ark: Path, fd: int):
        self.ark, self.path, self._fd = ark, journal_of(ark), fd

    @classmethod
    def start(cls, final: Path, data_dir: Path) -> Journal:
        r"""A new journal, for a partial ark of ``final`` named with this process's number and, where files of that
        name are there (a stopped run of this number: the Python API, a reboot; one of another container or machine
        sharing the folder, which cannot be told from a stopped one without locks), digits after it."""
        for n in itertools.count():
            ark = partial_name(final, int(f"{os.getpid()}{n}") if n else None)
            if ark.exists():
                continue
            try:
                fd = os.open(journal_of(ark), os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            except FileExistsError:
                continue
            try:
                _lock(fd)  # made by this process: nobody else holds it
                _write(fd, _header(data_dir))
            except BaseException:
                os.close(fd)
                journal_of(ark).unlink(missing_ok=True)
                raise
            return cls(ark, fd)
        raise AssertionError("unreachable")

    def done(self, rate: int, stamp: str) -> None:
        r"""A recording's utterances are in the ark (flushed); ``rate``: its sample rate."""
        os.write(self._fd, f"{rate} {stamp}\n".encode())  # one write: a line is there whole or not at all

    def failed(self) -> None:
        r"""A recording's utterance failed (those of it that did not are in the ark)."""
        os.write(self._fd, FAILED + b"\n")

    def kept(self) -> int:
        r"""The recordings it says were done, from the start to the first failed one (:func:`_done`)."""
        return _done(self._fd)

    def close(self) -> None:
        os.close(self._fd)  # and its lock


@dataclasses.dataclass(frozen=True)
class TakenOver:
    r"""What :func:`take_over` kept of a stopped run: its files, which the run writes on."""

    ark: Path  #: the stopped run's ark
    journal: int  #: its journal, open and locked
    recordings: int  #: the jobs kept, from the start
    entries: tuple[tuple[str, int], ...]  #: their utterances' keys and offsets in the ark
    why: str | None  #: why the next recording in its journal was not kept (None: the journal ended)


#: A job of :func:`~flowaccent.features.make_fbank.make_fbank`: a ``wav.scp`` value and its utterances' keys.
Job = tuple[str, Sequence[str]]


def take_over(
    folder: Path, tag: str, data_dir: Path, jobs: Sequence[Job], add: Callable[[str, np.ndarray, int], None],
    quiet: bool = False,
) -> TakenOver | None:
    r"""Takes over the stopped run of ``tag`` in ``folder`` (``DATA_DIR/data``) with the most recordings in its
    journal: keeps the recordings of ``jobs`` it did (see the module), cuts both files after them and calls
    ``add(utt, features, rate)`` for each kept utterance in order (a progress bar unless ``quiet``). None where
    no stopped run left one."""
    found = _stopped(folder, rf"\.raw_fbank_.+\.{re.escape(tag)}\.ark")
    for _, _, fd in found[1:]:
        os.close(fd)
    if not found:
        return None
    _, partial, fd = found[0]
    journal = [fd]  # its fd, which a replaced journal changes
    try:
        return _keep(partial, journal, data_dir, jobs, add, quiet)
    except BaseException:  # a Ctrl-C while checking: its files as they were, unlocked (the Python API goes on)
        os.close(journal[0])
        raise


def _stopped(folder: Path, name: str) -> list[tuple[int, Path, int]]:
    r"""``(recordings its journal says were done, ark, journal fd locked)`` of the partial arks in ``folder`` whose
    name before ``.part.PID`` matches ``name`` and whose journal no running process holds, the one that would keep
    the most first (0 for another version's)."""
    ours = re.compile(rf"{name}\.part\.(\d+)")
    found: list[tuple[int, Path, int]] = []
    try:
        for path in folder.iterdir():
            if not ours.fullmatch(path.name):
                continue
            try:
                fd = os.open(journal_of(path), os.O_RDWR | os.O_APPEND)
            except OSError:  # none: SIGKILL before its header; or not ours to write
                continue
            found.append((0, path, fd))  # closed on a Ctrl-C from here on
            if _held(fd) or os.fstat(fd).st_nlink == 0:  # a run writing it now; removed before the lock was had
                os.close(found.pop()[2])
                continue
            found[-1] = (_done(fd), path, fd)
    except BaseException:  # a Ctrl-C: no journal left locked by this process (the Python API goes on)
        for _, _, fd in found:
            os.close(fd)
        raise
    return sorted(found, key=lambda item: -item[0])


def _done(fd: int) -> int:
    r"""The recordings the journal open at ``fd`` says were done before its first failed one; 0 where it is
    another version's or damaged."""
    lines = _read(fd)
    fields = _parsed(lines[0])
    if fields is None or fields["version"] != __version__:
        return 0
    return next((i for i, line in enumerate(lines[1:-1]) if line == FAILED), len(lines) - 2)


def _keep(
    ark: Path, journal: list[int], data_dir: Path, jobs: Sequence[Job], add: Callable[[str, np.ndarray, int], None],
    quiet: bool,
) -> TakenOver:
    r"""The checks of :func:`take_over` on the stopped run's ``ark`` and its journal (``journal[0]``: its fd,
    locked; the fd of the journal that replaces it, once it is)."""
    lines = _read(journal[0])
    if _lock(journal[0]) is None:  # no locks: claimed before the check (it may take minutes) by the header's process
        _replaced(journal_of(ark), journal, _header(data_dir) + b"\n".join(lines[1:]))
    entries: list[tuple[str, int]] = []
    kept, ark_end, why = 0, 0, None
    header = _parsed(lines[0])
    if header is None:
        why = "its journal's header is damaged"
    elif header["version"] != __version__:
        why = f"it was written by another version of flowaccent ({header['version']}; this is {__version__})"
    else:
        with (
            open(ark, "rb") as fd,
            tqdm(total=min(len(jobs), len(lines) - 2), unit="rec", desc="fbank: checking a stopped run's features",
                 disable=quiet) as bar,
        ):
            for (rxfile, utts), line in zip(jobs, lines[1:-1]):  # the last: after the last newline
                bar.update()
                rate, read, why = _recording(fd, line, rxfile, utts)
                if why:
                    why = f"recording {kept + 1} ('{utts[0]}'): {why}"
                    break
                for key, offset, features in read:
                    add(key, features, rate)
                    entries.append((key, offset))
                kept, ark_end = kept + 1, fd.tell()
    os.truncate(ark, ark_end)  # then the journal: killed between the two, the next run checks them again
    _replaced(journal_of(ark), journal, _header(data_dir) + b"".join(line + b"\n" for line in lines[1:kept + 1]))
    return TakenOver(ark, journal[0], kept, tuple(entries), why)


def _write(fd: int, content: bytes) -> None:
    r"""Writes all of ``content`` (a full disk writes part of it, without an error)."""
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view):]


def _replaced(path: Path, journal: list[int], content: bytes) -> None:
    r"""Replaces the journal at ``path`` (open and locked at ``journal[0]``, closed here) with ``content``: written
    to a new file, locked, then renamed over it, so that a stop at any moment leaves one whole journal, never one
    cut (its header naming this data dir and process now). ``journal[0]`` is the new journal's fd, locked, before
    the old one is closed (a Ctrl-C in between leaves one fd open, never closes one twice)."""
    new = path.with_name(f"{path.name}.tmp.{os.getpid()}")  # hidden, as the journal's name is
    new_fd = os.open(new, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    try:
        _lock(new_fd)
        _write(new_fd, content)
        os.rename(new, path)
    except BaseException:
        os.close(new_fd)
        new.unlink(missing_ok=True)
        raise
    journal[0], old = new_fd, journal[0]
    os.close(old)


def _recording(fd, line: bytes, rxfile: str, utts: Sequence[str]) -> tuple[int, list, str | None]:
    r"""A job's ``(rate, [(key, offset, features), ...], None)`` read from the ark at ``fd``, or ``(0, [], why)``
    where its journal ``line`` says it failed, its audio cannot be checked or changed since, or its utterances
    are not all there, whole and in order."""
    fields = line.decode("utf-8", "replace").split()
    if line == FAILED:
        return 0, [], "an utterance of it failed"
    if len(fields) != 2 or not fields[0].isdigit():
        return 0, [], "its journal line is damaged"
    if fields[1] == UNCHECKED:
        return 0, [], "its wav.scp entry names no file whose size and time can be checked"
    if fields[1] != audio_stamp(rxfile):
        return 0, [], "its audio files changed since (or are gone)"
    read = []
    for utt in utts:
        try:
            entry = read_next(fd, "a stopped run's ark")
        except KaldiIOError:  # cut inside it (SIGKILL) or damaged
            return 0, [], "its features are cut short in the ark (the run was killed while writing them)"
        if entry is None:
            return 0, [], "its features are not in the ark (the run was killed while writing them)"
        if entry[0] != utt or entry[2].ndim != 2 or entry[2].dtype != np.float32:
            return 0, [], f"the ark holds '{entry[0]}' where '{utt}' was expected"
        read.append(entry)
    return int(fields[0]), read, None


def remove_stopped(folder: Path, name: str, data_dir: Path) -> None:
    r"""Removes what stopped runs left in ``folder`` (``data_dir``'s ``data/``, once a run of it completed): the
    partial arks whose name before ``.part.PID`` matches ``name`` and that no running process holds, but for those
    of another data dir whose ``data/`` is this folder too (linked to one storage folder): their journal names such
    a dir. (Those of this dir, of one moved, renamed or copied since, or of a damaged journal, go.) Partial arks
    without a journal whose process is gone go too, and journals without an ark (a SIGKILL between removing the
    two) by the same rule as those with one."""
    ours = re.compile(rf"{name}\.part\.(\d+)(\.jobs)?")
    for path in folder.iterdir():
        match = ours.fullmatch(path.name)
        if not match:
            continue
        ark = path.with_name(path.name.removesuffix(".jobs"))
        if match.group(2) is None and not journal_of(path).exists() and not alive(int(match.group(1))):
            path.unlink(missing_ok=True)  # its journal gone: a SIGKILL before its header
        elif match.group(2) is None or not ark.exists():
            _remove_unless_shared(ark, folder, data_dir)


def _remove_unless_shared(ark: Path, folder: Path, data_dir: Path) -> None:
    r"""Removes ``ark`` and its journal, both or what is left of them, where no running process holds the journal
    and it does not name another data dir whose ``data/`` is ``folder`` (:func:`remove_stopped`)."""
    try:
        fd = os.open(journal_of(ark), os.O_RDWR | os.O_APPEND)
    except OSError:  # removed since, or not ours to write
        return
    try:
        if _held(fd):
            return
        fields = _parsed(_read(fd)[0])
        named = Path(fields["data_dir"]) if fields else None
        if named is None or named.resolve() == data_dir.resolve() or \
                not (named / "data").is_dir() or (named / "data").resolve() != folder.resolve():
            ark.unlink(missing_ok=True)
            journal_of(ark).unlink(missing_ok=True)
    finally:
        os.close(fd)
