r"""The journal of a ``flowaccent fbank`` run: beside its partial ark (the same name and ``.jobs``), a header naming
the data dir and the options, then a line per recording once its utterances are in the ark: ``RATE STAMP JOB N``,
the sample rate read, a digest of the size and modification time of the files its ``wav.scp`` entry names
(:func:`audio_stamp`), one of the entry and its utterances' ``segments`` (:func:`job_digest`) and the number of its
utterances in the ark; or ``failed JOB N`` where one of its utterances failed (the others are in the ark).
The run holds a lock (``flock``) on it while it writes: a journal nobody holds is a stopped run's, which
:mod:`flowaccent.features.fbank_resume` takes over."""

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
from collections.abc import Sequence
from pathlib import Path
from stat import S_ISREG

from flowaccent import __version__
from flowaccent.data.atomic import partial_name
from flowaccent.data.lock import alive
from flowaccent.data.segments import Segment

#: The start of a journal's first line (the rest: JSON of the version that wrote it, the data dir and the options).
MAGIC = b"flowaccent fbank journal 3 "


#: The start of a journal's line for a recording with an utterance that failed: a run that lists it computes it again,
#: and all after it.
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


def job_digest(rxfile: str, utts: Sequence[tuple[str, Segment | None]]) -> str:
    r"""A digest of a recording's ``wav.scp`` value and its utterances (keys and ``segments`` lines; 16 hex
    digits): what, with its audio files (:func:`audio_stamp`) and the options, its features depend on."""
    fields = [rxfile, [[utt, None if segment is None else dataclasses.astuple(segment)] for utt, segment in utts]]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:16]


def lock(fd: int) -> bool | None:
    r"""Takes the lock of a journal open at ``fd``: True; False where a running process holds it; None where the
    file system has no locks (Lustre without ``-o flock``, some NFS mounts)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        return False if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None
    return True


def new_header(data_dir: Path, options: str) -> bytes:
    r"""A journal's first line: the version, the data dir, the ``options`` (they and the channel, as JSON), and the
    process writing it (:func:`held`)."""
    fields = {"version": __version__, "data_dir": str(data_dir), "options": options, "pid": os.getpid(),
              "host": socket.gethostname()}
    return MAGIC + json.dumps(fields).encode() + b"\n"


def parse_header(header: bytes) -> dict | None:
    r"""A journal's first line as written by :func:`new_header`; None where it is not one (damaged)."""
    try:
        fields = json.loads(header[len(MAGIC):]) if header.startswith(MAGIC) else None
        types = {"pid": int, "version": str, "data_dir": str, "options": str}
        good = isinstance(fields, dict) and all(isinstance(fields.get(key), kind) for key, kind in types.items())
        good = good and isinstance(fields.setdefault("host", socket.gethostname()), str)  # before hosts: this one
        return fields if good and 0 < fields["pid"] < 2**31 else None
    except ValueError:
        return None


def read_lines(fd: int) -> list[bytes]:
    r"""The lines of the journal open at ``fd`` (the last: what follows the last newline)."""
    with open(os.dup(fd), "rb") as f:
        f.seek(0)
        return f.read().split(b"\n")


def held(fd: int) -> bool:
    r"""Whether a running process writes the journal open at ``fd``: it holds its lock; on a file system without
    locks, the process its header names is running (and is not this one; a number that went to another process
    since, after a reboot, keeps such a journal from being taken over or removed there), or runs on another machine
    (it cannot be told from here)."""
    locked = lock(fd)
    if locked is not None:
        return not locked
    fields = parse_header(read_lines(fd)[0])
    if fields is None:
        return False
    if fields["host"] != socket.gethostname():
        return True
    return fields["pid"] != os.getpid() and alive(fields["pid"])


class Journal:
    r"""A run's journal (a line per recording, :class:`Line`) next to its partial ark, locked while open.

    Arguments:
        ark: the partial ark it describes (the journal is :func:`journal_of` it).
        fd: the journal, open and locked: a stopped run's, left with the lines of the recordings taken over
            (:func:`~flowaccent.features.fbank_resume.take_over`), or a new one (:meth:`start`).
    """

    def __init__(self, ark: Path, fd: int):
        self.ark, self.path, self._fd = ark, journal_of(ark), fd

    @classmethod
    def start(cls, final: Path, data_dir: Path, options: str) -> Journal:
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
                lock(fd)  # made by this process: nobody else holds it
                write_all(fd, new_header(data_dir, options))
            except BaseException:
                os.close(fd)
                journal_of(ark).unlink(missing_ok=True)
                raise
            return cls(ark, fd)
        raise AssertionError("unreachable")

    def done(self, rate: int, stamp: str, job: str, utts: int) -> None:
        r"""A recording's ``utts`` utterances are in the ark (flushed); ``rate``: its sample rate, ``stamp`` its
        :func:`audio_stamp`, ``job`` its :func:`job_digest`."""
        os.write(self._fd, f"{rate} {stamp} {job} {utts}\n".encode())  # one write: a line is there whole or not at all

    def failed(self, job: str, utts: int) -> None:
        r"""An utterance of a recording failed; ``utts``: those of it that did not, in the ark (flushed); ``job``: its
        :func:`job_digest`."""
        os.write(self._fd, FAILED + f" {job} {utts}\n".encode())

    def kept(self) -> tuple[int, int]:
        r"""The recordings it says were done, and their utterances (those that failed are not counted)."""
        lines = [parse_line(line) for line in read_lines(self._fd)[1:-1]]
        done = [line for line in lines if line is not None and not line.failed]
        return len(done), sum(line.utts for line in done)

    def close(self) -> None:
        os.close(self._fd)  # and its lock


@dataclasses.dataclass(frozen=True)
class Line:
    r"""A journal's line for a recording (:class:`Journal`)."""

    failed: bool  #: an utterance of it failed
    job: str  #: its :func:`job_digest`
    utts: int  #: its utterances in the ark
    rate: int = 0  #: its sample rate (a recording done)
    stamp: str = UNCHECKED  #: its :func:`audio_stamp` (a recording done)


def parse_line(line: bytes) -> Line | None:
    r"""A journal's line for a recording; None where it is damaged."""
    fields = line.decode("utf-8", "replace").split(" ")
    if len(fields) == 3 and fields[0] == FAILED.decode() and fields[2].isdigit():
        return Line(True, fields[1], int(fields[2]))
    if len(fields) == 4 and fields[0].isdigit() and fields[3].isdigit():
        return Line(False, fields[2], int(fields[3]), int(fields[0]), fields[1])
    return None


def plan(lines: Sequence[Line | None], jobs: Sequence[str]) -> tuple[list[int], str | None]:
    r"""Which of a stopped run's journal ``lines`` a run of ``jobs`` (the :func:`job_digest` of each of its
    recordings, in order) can keep: for each of ``jobs`` from the first, the index of its line, found after the one
    before's (the lines between: recordings no longer listed, left out), until one is not there or failed; and why
    it stopped there (None: where the stopped run had computed nothing more of ``jobs``)."""
    kept: list[int] = []
    wanted = set(jobs)
    for job in jobs:
        start = kept[-1] + 1 if kept else 0
        at = next((i for i in range(start, len(lines)) if lines[i] is None or lines[i].job == job), len(lines))
        if at == len(lines):
            later = any(line.job in wanted for line in lines[start:])
            return kept, "its wav.scp entry or segments changed since, or it is new there" if later else None
        if lines[at] is None:
            return kept, "its journal line is damaged"
        if lines[at].failed:
            return kept, "an utterance of it failed"
        kept.append(at)
    return kept, None


def kept_count(fd: int, jobs: Sequence[str]) -> int:
    r"""The recordings of ``jobs`` (:func:`plan`) a run would keep of the stopped one whose journal is open at ``fd``;
    0 where it is another version's or damaged."""
    lines = read_lines(fd)
    fields = parse_header(lines[0])
    if fields is None or fields["version"] != __version__:
        return 0
    return len(plan([parse_line(line) for line in lines[1:-1]], jobs)[0])


def write_all(fd: int, content: bytes) -> None:
    r"""Writes all of ``content`` (a full disk writes part of it, without an error)."""
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view):]
