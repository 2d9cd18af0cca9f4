r"""Going on after a stopped ``flowaccent fbank`` (``--resume``): what a run leaves when it stops, and taking it over.

A run writes its features ark under a temporary name (``DATA_DIR/data/.raw_fbank_NAME.TAG.ark.part.PID``,
:class:`~flowaccent.data.kaldi_io.ArkWriter`), one recording after another in the order of ``wav.scp`` (or
``segments``), and next to it a journal (the same name and ``.jobs``): a line per recording once its utterances are
in the ark and flushed, with the sample rate read and a digest of the size and modification time of the files its
``wav.scp`` entry names (the audio file; in a ``cmd |`` entry, each word that is a file), or ``failed``. A run that
stops (Ctrl-C, ``kill``, SIGKILL, an error) leaves both behind; not one that went through every recording and failed
for the utterances it lists (a ``wav.scp`` fixed is another ``TAG``).

``TAG`` is a digest of ``wav.scp``, ``segments``, the options and the channel (:func:`make_fbank`'s ark names), so
a run of another ``TAG`` never takes the ark over. A run with ``--resume`` renames the stopped run's files to its
own names and keeps the longest run of recordings from the start that holds: each in the journal, not failed, its
files the same size and time as then, its utterances in the ark in order and whole. The ark is cut after the last
of them and written on from there: with ``dither`` 0 (the default) the same bytes an uninterrupted run writes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import numpy as np
from tqdm import tqdm

from flowaccent.data.atomic import partial_name
from flowaccent.data.kaldi_io import read_next
from flowaccent.data.lock import alive
from flowaccent.errors import KaldiIOError

#: The first line of a journal: its format.
HEADER = "flowaccent fbank journal 1\n"
#: A journal's line for a recording with an utterance that failed (it and all after it are computed again).
FAILED = "failed"


def journal_of(ark: Path) -> Path:
    r"""The journal next to a temporary ark."""
    return ark.with_name(f"{ark.name}.jobs")


def audio_stamp(rxfile: str) -> str:
    r"""A digest of ``path size mtime_ns`` of each file a ``wav.scp`` value names (16 hex digits): the audio file
    (of ``archive:offset``, the archive), or each word of a ``cmd |`` that is a file: changed audio (a file copied
    over, a download made again) is read again, not taken over."""
    lines = []
    for word in rxfile.replace("|", " ").split():
        word = word.strip("'\"")
        archive = re.fullmatch(r"(.+):(\d+)", word)
        for path in (word, archive.group(1)) if archive else (word,):
            try:
                stat = os.stat(path)
            except (OSError, ValueError):  # not a file's name
                continue
            if not os.path.isdir(path):
                lines.append(f"{os.path.abspath(path)} {stat.st_size} {stat.st_mtime_ns}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()[:16]


class Journal:
    r"""Writes a run's journal (a line per recording, :func:`audio_stamp`) next to its temporary ark.

    Arguments:
        path: the journal (:func:`journal_of` of the ark).
        kept: the lines of a stopped run's journal that were taken over (its file cut after them), or None: a new
            journal.
    """

    def __init__(self, path: Path, kept: int | None = None):
        self.path = path
        self.kept = kept or 0  # recordings from the start done without a failure
        self.utts = 0  # their utterances, not counting those taken over
        self._failed = False
        self._fd: IO[str] = open(path, "a" if kept is not None else "w", buffering=1)  # a line: to the system
        if kept is None:
            self._fd.write(HEADER)

    def done(self, rate: int, stamp: str, utts: int) -> None:
        r"""A recording's ``utts`` utterances are in the ark (flushed); ``rate``: its sample rate."""
        self._fd.write(f"{rate} {stamp}\n")
        if not self._failed:
            self.kept += 1
            self.utts += utts

    def failed(self) -> None:
        r"""A recording's utterance failed (those of it that did not are in the ark)."""
        self._fd.write(f"{FAILED}\n")
        self._failed = True

    def close(self) -> None:
        self._fd.close()


@dataclasses.dataclass(frozen=True)
class TakenOver:
    r"""What :func:`take_over` kept of a stopped run."""

    source: Path  #: the stopped run's ark, as it was named
    recordings: int  #: the jobs kept, from the start
    entries: tuple[tuple[str, int], ...]  #: their utterances' keys and offsets in the ark


#: A job of :func:`~flowaccent.features.make_fbank.make_fbank`: a ``wav.scp`` value and its utterances' keys.
Job = tuple[str, Sequence[str]]


def take_over(
    ark: Path, jobs: Sequence[Job], add: Callable[[str, np.ndarray, int], None], quiet: bool = False
) -> TakenOver | None:
    r"""Takes over the stopped run of ``ark`` (the final name) with the most recordings in its journal: renames its
    files to this process's temporary ark and journal, keeps the recordings of ``jobs`` it did (see the module),
    cuts both files after them and calls ``add(utt, features, rate)`` for each kept utterance in order (a progress
    bar unless ``quiet``). None where no stopped run (its process gone) left one."""
    target = partial_name(ark)
    mine = journal_of(target)
    for source in _stopped(ark):
        try:
            if source != target:  # another run sharing the folder (data dirs of one name) took it first: not found
                os.rename(source, target)
                os.rename(journal_of(source), mine)
        except FileNotFoundError:
            if target.exists() and not mine.exists():
                target.unlink()
            continue
        return _keep(source, target, mine, jobs, add, quiet)
    return None


def _stopped(ark: Path) -> list[Path]:
    r"""Temporary arks of ``ark`` with a journal whose process is gone (or is this one: a run of the Python API
    stopped before), the longest journal first."""
    ours = re.compile(rf"{re.escape(partial_name(ark, 0).name).removesuffix('0')}(\d+)")
    found = []
    for path in ark.parent.iterdir():
        match = ours.fullmatch(path.name)
        if match and (int(match.group(1)) == os.getpid() or not alive(int(match.group(1)))):  # this one's: stopped
            try:
                found.append((journal_of(path).stat().st_size, path))
            except FileNotFoundError:  # a SIGKILL before its first line, or a journal already taken
                continue
    return [path for _, path in sorted(found, key=lambda item: -item[0])]


def _keep(
    source: Path, ark: Path, journal: Path, jobs: Sequence[Job], add: Callable[[str, np.ndarray, int], None],
    quiet: bool,
) -> TakenOver:
    r"""The checks of :func:`take_over` on the files renamed to ``ark`` and ``journal``."""
    with open(journal, "rb") as f:
        lines = f.read().split(b"\n")
    entries: list[tuple[str, int]] = []
    kept, ark_end, journal_end = 0, 0, 0
    if lines[0] + b"\n" == HEADER.encode():
        journal_end = len(lines[0]) + 1
        with (
            open(ark, "rb") as fd,
            tqdm(total=min(len(jobs), len(lines) - 2), unit="rec", desc="fbank: checking a stopped run's features",
                 disable=quiet) as bar,
        ):
            for (rxfile, utts), line in zip(jobs, lines[1:-1]):  # the last: after the last newline
                bar.update()
                recording = _recording(fd, line.decode("utf-8", "replace"), rxfile, utts)
                if recording is None:
                    break
                rate, read = recording
                for key, offset, features in read:
                    add(key, features, rate)
                    entries.append((key, offset))
                kept, ark_end, journal_end = kept + 1, fd.tell(), journal_end + len(line) + 1
    os.truncate(ark, ark_end)
    os.truncate(journal, journal_end)
    if not journal_end:
        journal.write_text(HEADER)
    return TakenOver(source, kept, tuple(entries))


def _recording(fd: IO[bytes], line: str, rxfile: str, utts: Sequence[str]):
    r"""A job's ``(rate, [(key, offset, features), ...])`` read from the ark at ``fd``, or None where its journal
    ``line`` says it failed, its audio changed since, or its utterances are not all there, whole and in order."""
    fields = line.split()
    if len(fields) != 2 or not fields[0].isdigit() or fields[1] != audio_stamp(rxfile):
        return None
    read = []
    for utt in utts:
        try:
            entry = read_next(fd, "a stopped run's ark")
        except KaldiIOError:  # cut inside it (SIGKILL) or damaged
            return None
        if entry is None or entry[0] != utt or entry[2].ndim != 2 or entry[2].dtype != np.float32:
            return None
        read.append(entry)
    return int(fields[0]), read
