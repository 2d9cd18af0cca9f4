r"""The journal of a ``flowaccent fbank`` run: beside its partial ark (the same name and ``.jobs``), a header naming
the data dir and the options, then a line per recording once its utterances are in the ark: ``RATE STAMP REC N U1
.. UN``, the sample rate read, a digest of the size and modification time of the files its ``wav.scp`` entry names
(:func:`audio_stamp`), one of the entry and its key, and one of each of its N utterances in the ark, its key and
``segments`` line (:func:`job_id`); ``failed`` first where one of its utterances failed (the others are in the
ark).
The run holds a lock (``flock``) on it while it writes: a journal nobody holds is a stopped run's, which
:mod:`flowaccent.features.fbank_resume` takes over."""

from __future__ import annotations

import dataclasses
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
from flowaccent.data.lock import alive, try_flock
from flowaccent.data.segments import Segment

#: The start of a journal's first line (the rest: JSON of the version that wrote it, the data dir and the options).
MAGIC = b"flowaccent fbank journal 3 "


#: The start of a journal's line for a recording with an utterance that failed: a run that lists that utterance
#: computes the recording again, and all after it.
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


#: What a journal line says a recording is (:func:`job_id`): a digest of its ``wav.scp`` entry and key, and one of
#: each of its utterances.
JobId = tuple[str, tuple[str, ...]]


def job_id(rxfile: str, utts: Sequence[tuple[str, Segment | None]]) -> JobId:
    r"""A recording's :data:`JobId`: a digest of its ``wav.scp`` value and key (16 hex digits), and one of each of
    its utterances' key and ``segments`` line (8 hex digits): what, with its audio files (:func:`audio_stamp`) and
    the options, its features depend on."""
    first, segment = utts[0]
    recording = hashlib.sha256(json.dumps([rxfile, first if segment is None else segment.recording]).encode())
    return recording.hexdigest()[:16], tuple(
        hashlib.sha256(json.dumps([utt, None if seg is None else dataclasses.astuple(seg)]).encode()).hexdigest()[:8]
        for utt, seg in utts)


def lock(fd: int) -> bool | None:
    r"""Takes the lock of a journal open at ``fd`` (:func:`~flowaccent.data.lock.try_flock`): True; False where a
    running process holds it; None where the file system has no locks."""
    return try_flock(fd)


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

    def write(self, line: Line) -> None:
        r"""A recording's ``line``: its utterances there are in the ark (flushed)."""
        os.write(self._fd, line.encode())  # one write: a line is there whole or not at all

    def kept(self) -> tuple[int, int]:
        r"""The recordings with utterances in the ark, and those utterances (those that failed are not there)."""
        lines = [line for line in map(parse_line, read_lines(self._fd)[1:-1]) if line is not None and line.utts]
        return len(lines), sum(len(line.utts) for line in lines)

    def close(self) -> None:
        os.close(self._fd)  # and its lock


@dataclasses.dataclass(frozen=True)
class Line:
    r"""A journal's line for a recording (:class:`Journal`)."""

    failed: bool  #: an utterance of it failed
    rate: int  #: its sample rate (0: its audio was not read)
    stamp: str  #: its :func:`audio_stamp`
    recording: str  #: the digest of its entry and key (:func:`job_id`)
    utts: tuple[str, ...]  #: the digests of its utterances in the ark, in order (:func:`job_id`)

    def encode(self) -> bytes:
        fields = [FAILED.decode()] * self.failed + [str(self.rate), self.stamp, self.recording, str(len(self.utts))]
        return (" ".join(fields + list(self.utts)) + "\n").encode()


def parse_line(line: bytes) -> Line | None:
    r"""A journal's line for a recording (:meth:`Line.encode`); None where it is damaged."""
    fields = line.decode("utf-8", "replace").split(" ")
    failed = fields[0] == FAILED.decode()
    fields = fields[failed:]
    if len(fields) < 4 or not fields[0].isdigit() or not fields[3].isdigit() or len(fields) != 4 + int(fields[3]):
        return None
    return Line(failed, int(fields[0]), fields[1], fields[2], tuple(fields[4:]))


def plan(lines: Sequence[Line | None], jobs: Sequence[JobId]) -> tuple[list[tuple[int, tuple[int, ...]]], str | None]:
    r"""What of a stopped run's journal ``lines`` a run of ``jobs`` (the :func:`job_id` of each of its recordings, in
    order) can keep: for each of ``jobs`` from the first, the index of its line, found after the one before's (the
    lines between: recordings no longer listed, left out), and the places there of its utterances (those of the
    line's not among them: utterances no longer listed, left out), until one is not there, or not all its
    utterances; and why it stopped there (None: where the stopped run had computed nothing more of ``jobs``)."""
    kept: list[tuple[int, tuple[int, ...]]] = []
    wanted = {recording for recording, _ in jobs}
    for recording, utts in jobs:
        start = kept[-1][0] + 1 if kept else 0
        at = next((i for i in range(start, len(lines)) if lines[i] is None or lines[i].recording == recording),
                  len(lines))
        if at == len(lines):
            later = any(line.recording in wanted for line in lines[start:])
            return kept, "its wav.scp entry changed since, or it is new there" if later else None
        line = lines[at]
        if line is None:
            return kept, "its journal line is damaged"
        places = _places(utts, line.utts)
        if places is None:
            return kept, "an utterance of it failed" if line.failed else "its segments changed since"
        kept.append((at, places))
    return kept, None


def _places(want: Sequence[str], have: Sequence[str]) -> tuple[int, ...] | None:
    r"""The place in ``have`` of each of ``want``, in order (each after the one before's); None where one is not."""
    places: list[int] = []
    for item in want:
        start = places[-1] + 1 if places else 0
        place = next((i for i in range(start, len(have)) if have[i] == item), None)
        if place is None:
            return None
        places.append(place)
    return tuple(places)


def kept_count(fd: int, jobs: Sequence[JobId]) -> int:
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
