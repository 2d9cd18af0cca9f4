r"""Going on after a stopped ``flowaccent fbank`` (``--resume``): what a run leaves when it stops, and taking it over.

A run writes its features ark under a hidden name (``DATA_DIR/data/.raw_fbank_NAME.TAG.ark.part.PID``,
:class:`~flowaccent.data.ark_writer.ArkWriter`), one recording after another in the order of ``wav.scp`` (or
``segments``), and next to it a journal (:mod:`flowaccent.features.fbank_journal`): a line per recording once its
utterances are in the ark, with digests of its ``wav.scp`` entry, of each of its utterances' ``segments`` line and
of the files the entry names (``failed`` first where an utterance of it failed). The run holds a lock (``flock``)
on the journal while it writes: a journal nobody holds is a stopped run's, whatever became of its process's number
(a reboot hands it to another). A run that stops (Ctrl-C, ``kill``, SIGKILL, an error, failed
utterances) leaves both behind.

``TAG`` is a digest of ``wav.scp``, ``segments``, the options and the channel (:func:`make_fbank`'s ark names): a
stopped run of the same ``TAG`` computed the same features, whatever the data dir's name then. One of another
``TAG`` is taken over where its journal names this data dir and the same options: its ``wav.scp`` or ``segments``
changed since (failed recordings left out, recordings added). A run with ``--resume`` locks the stopped run's
journal and keeps, of the recordings listed now, the longest run from the first that holds (:func:`plan`): each in
the journal after the one before (the recordings between, no longer listed, are left out), the same ``wav.scp``
entry and key, its utterances now among the journal's for it with the same ``segments`` lines (the others, no
longer listed, are left out: a segment that failed), its files there and the same size and time as then, its
utterances in the ark in order and whole. It moves those after a left-out utterance back in the ark (the journal
cut to the recordings before first, so a stop while they move loses no more), cuts both files after them and writes
on into them: with ``dither`` 0 (the default) the same bytes an uninterrupted run writes.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from flowaccent import __version__
from flowaccent.data.kaldi_io import read_next
from flowaccent.data.lock import alive
from flowaccent.errors import KaldiIOError
from flowaccent.features.fbank_jobs import Job
from flowaccent.features.fbank_journal import (
    MAGIC,
    UNCHECKED,
    JobId,
    Journal,
    Line,
    audio_stamp,
    held,
    job_id,
    journal_of,
    kept_count,
    lock,
    new_header,
    parse_header,
    parse_line,
    plan,
    read_lines,
    write_all,
)
from flowaccent.features.fbank_record import RUN_TAG
from flowaccent.progress import progress_bar

__all__ = ["Journal", "TakenOver", "audio_stamp", "remove_stopped", "take_over"]


@dataclasses.dataclass(frozen=True)
class TakenOver:
    r"""What :func:`take_over` kept of a stopped run: its files, which the run writes on."""

    ark: Path  #: the stopped run's ark
    journal: int  #: its journal, open and locked
    recordings: int  #: the jobs kept, from the start
    entries: tuple[tuple[str, int], ...]  #: their utterances' keys and offsets in the ark
    why: str | None  #: why the next recording in its journal was not kept (None: the journal ended)


def take_over(
    folder: Path, tag: str, options: str, data_dir: Path, jobs: Sequence[Job],
    add: Callable[[str, np.ndarray, int], None], quiet: bool = False,
) -> TakenOver | None:
    r"""Takes over the stopped run in ``folder`` (``DATA_DIR/data``) whose journal lists the most of ``jobs`` from
    the start: one of ``tag``, or of another tag whose journal names ``data_dir`` and ``options`` (see the module).
    Keeps the recordings of ``jobs`` it did (see the module), moved back over the utterances left out, cuts both files
    after them and calls ``add(utt, features, rate)`` for each kept utterance in order (a progress bar unless
    ``quiet``). None where no stopped run left one."""
    ids = [job_id(*job) for job in jobs]
    found = _stopped(folder, tag, options, data_dir, ids)
    for _, _, fd in found[1:]:
        os.close(fd)
    if not found:
        return None
    _, partial, fd = found[0]
    journal = [fd]  # its fd, which a replaced journal changes
    try:
        return _keep(partial, journal, data_dir, options, list(zip(jobs, ids)), add, quiet)
    except BaseException:  # a Ctrl-C while checking: its files as they were, unlocked (the Python API goes on)
        os.close(journal[0])
        raise


def _stopped(
    folder: Path, tag: str, options: str, data_dir: Path, jobs: Sequence[JobId]
) -> list[tuple[int, Path, int]]:
    r"""``(recordings of jobs its journal says were done, ark, journal fd locked)`` of the partial arks in ``folder``
    that :func:`take_over` may take (``jobs``: the :func:`job_id` of each recording now) and whose journal no
    running process holds, the one that would keep the most first (0 for another version's)."""
    ours = re.compile(rf"\.raw_fbank_.+\.({RUN_TAG})\.ark\.part\.(\d+)")
    found: list[tuple[int, Path, int]] = []
    try:
        for path in folder.iterdir():
            if not (match := ours.fullmatch(path.name)):
                continue
            try:
                fd = os.open(journal_of(path), os.O_RDWR | os.O_APPEND)
            except OSError:  # none: SIGKILL before its header; or not ours to write
                continue
            found.append((0, path, fd))  # closed on a Ctrl-C from here on
            if held(fd) or os.fstat(fd).st_nlink == 0:  # a run writing it now; removed before the lock was had
                os.close(found.pop()[2])
                continue
            found[-1] = (kept_count(fd, jobs), path, fd)
            if match.group(1) != tag and not (found[-1][0] and _same_dir(fd, options, data_dir)):
                os.close(found.pop()[2])  # another data dir's, other options', or nothing of it to keep
    except BaseException:  # a Ctrl-C: no journal left locked by this process (the Python API goes on)
        for _, _, fd in found:
            os.close(fd)
        raise
    return sorted(found, key=lambda item: -item[0])


def _same_dir(fd: int, options: str, data_dir: Path) -> bool:
    r"""Whether the journal open at ``fd`` names ``data_dir`` (as it is now) and ``options``."""
    fields = parse_header(read_lines(fd)[0])
    try:
        return fields is not None and fields["options"] == options and Path(fields["data_dir"]).samefile(data_dir)
    except OSError:  # its dir is gone
        return False


def _keep(
    ark: Path, journal: list[int], data_dir: Path, options: str, jobs: Sequence[tuple[Job, JobId]],
    add: Callable[[str, np.ndarray, int], None], quiet: bool,
) -> TakenOver:
    r"""The checks of :func:`take_over` on the stopped run's ``ark`` and its journal (``journal[0]``: its fd,
    locked; the fd of the journal that replaces it, once it is); ``jobs``: each recording now, with its
    :func:`job_id`."""
    lines = read_lines(journal[0])
    if lock(journal[0]) is None:  # no locks: claimed before the check (it may take minutes) by the header's process
        _replaced(journal_of(ark), journal, new_header(data_dir, options) + b"\n".join(lines[1:]))
    entries: list[tuple[str, int]] = []
    kept, end, why = [], 0, None
    header = parse_header(lines[0])
    older = re.match(rb"flowaccent fbank journal (\d+) ", lines[0])
    if header is None and older and older.group(0) != MAGIC:
        why = "its journal is of an older flowaccent (another format)"
    elif header is None:
        why = "its journal's header is damaged"
    elif header["version"] != __version__:
        why = f"it was written by another version of flowaccent ({header['version']}; this is {__version__})"
    else:
        parsed = [parse_line(line) for line in lines[1:-1]]  # the last: after the last newline
        at, why = plan(parsed, [ids for _, ids in jobs])
        with (
            open(ark, "r+b") as fd,
            progress_bar(total=at[-1][0] + 1 if at else 0, unit="rec", desc="fbank: checking a stopped run's features",
                 disable=quiet) as bar,
        ):
            recordings, entries, stop = _read(fd, parsed, at, jobs, add, bar)
            if why and not stop:
                (_, utts), _ = jobs[len(at)]
                why = f"recording {len(at) + 1} ('{utts[0][0]}'): {why}"
            why = stop or why
            kept = [Line(False, parsed[index].rate, parsed[index].stamp, *ids).encode()
                    for (index, _), (_, ids) in zip(at, jobs[:len(recordings)])]
            ranges = [(n, a, b) for n, recording in enumerate(recordings) for a, b in recording]  # n: its recording
            ends = list(itertools.accumulate((b - a for _, a, b in ranges), initial=0))  # where each goes
            still = next((i for i, (_, a, _) in enumerate(ranges) if a != ends[i]), len(ranges))
            if still < len(ranges):  # utterances left out before some kept: those after them move back
                _replaced(journal_of(ark), journal, new_header(data_dir, options) + b"".join(
                    kept[:ranges[still][0]]))  # a stop while they move keeps the recordings before
                _compact(fd, [(a, b) for _, a, b in ranges[still:]], ends[still])
            end = ends[-1]
    os.truncate(ark, end)  # then the journal: killed between the two, the next run checks them again
    _replaced(journal_of(ark), journal, new_header(data_dir, options) + b"".join(kept))
    return TakenOver(ark, journal[0], len(kept), tuple(entries), why)


def _read(
    fd, lines: Sequence[Line | None], at: Sequence[tuple[int, tuple[int, ...]]], jobs: Sequence[tuple[Job, JobId]],
    add: Callable[[str, np.ndarray, int], None], bar: tqdm,
) -> tuple[list[list[tuple[int, int]]], list[tuple[str, int]], str | None]:
    r"""Reads the ark at ``fd`` (a stopped run's, its journal's ``lines``) up to the recordings :func:`plan` keeps
    (``at``: their lines, and their utterances' places there), checking them (:func:`_recording`) and calling
    ``add(utt, features, rate)`` for their utterances. Returns, for each of those that hold, from the first to the
    first that does not, its utterances' byte ranges; their keys and offsets once they follow one another from the
    ark's start (:func:`_compact`); and why it stopped (None: every one held)."""
    recordings: list[list[tuple[int, int]]] = []
    entries: list[tuple[str, int]] = []
    line, size = 0, 0
    for n, (((rxfile, utts), _), (index, places)) in enumerate(zip(jobs, at)):
        where = f"recording {n + 1} ('{utts[0][0]}'): "
        for skipped in lines[line:index]:  # recordings no longer listed
            bar.update()
            if any(_next(fd) is None for _ in skipped.utts):
                return recordings, entries, where + "the stopped run's ark is damaged before it"
        line = index + 1
        bar.update()
        read, why = _recording(fd, lines[index], rxfile, dict(zip(places, (utt for utt, _ in utts))))
        if why:
            return recordings, entries, where + why
        recordings.append([])
        for (key, offset, features), (start, stop) in read:
            add(key, features, lines[index].rate)
            entries.append((key, offset - start + size))
            recordings[-1].append((start, stop))
            size += stop - start
    return recordings, entries, None


def _recording(fd, line: Line, rxfile: str, utts: dict[int, str]) -> tuple[list, str | None]:
    r"""A recording's ``([((key, offset, features), (start, end)), ...], None)`` read from the ark at ``fd`` (its
    journal's ``line``, of the recording listed now; ``utts``: the keys of its utterances now by their places among
    the line's, those at other places read over), or ``([], why)`` where its audio cannot be checked or changed since,
    or its utterances are not all there, whole and in order."""
    if line.stamp == UNCHECKED:
        return [], "its wav.scp entry names no file whose size and time can be checked"
    if line.stamp != audio_stamp(rxfile):
        return [], "its audio files changed since (or are gone)"
    read = []
    for place in range(len(line.utts)):
        start = fd.tell()
        try:
            entry = read_next(fd, "a stopped run's ark")
        except KaldiIOError:  # cut inside it (SIGKILL) or damaged
            return [], "its features are cut short in the ark (the run was killed while writing them)"
        if entry is None:
            return [], "its features are not in the ark (the run was killed while writing them)"
        utt = utts.get(place)
        if utt is None:  # left out of the data dir since
            continue
        if entry[0] != utt or entry[2].ndim != 2 or entry[2].dtype != np.float32:
            return [], f"the ark holds '{entry[0]}' where '{utt}' was expected"
        read.append((entry, (start, fd.tell())))
    return read, None


def _next(fd) -> tuple[str, int, np.ndarray] | None:
    r"""The next object of the ark at ``fd``; None where it is cut short, damaged or ended."""
    try:
        return read_next(fd, "a stopped run's ark")
    except KaldiIOError:
        return None


def _compact(fd, ranges: Sequence[tuple[int, int]], to: int) -> None:
    r"""Moves the byte ``ranges`` (in order, each after the one before) of the file open at ``fd`` back to follow one
    another from ``to`` (where the one before the first ends)."""
    for start, stop in ranges:
        while start < stop:  # chunk by chunk, each read before it is written: a move back
            fd.seek(start)
            chunk = fd.read(min(stop - start, 1 << 24))
            fd.seek(to)
            fd.write(chunk)
            start, to = start + len(chunk), to + len(chunk)
    fd.flush()


def _replaced(path: Path, journal: list[int], content: bytes) -> None:
    r"""Replaces the journal at ``path`` (open and locked at ``journal[0]``, closed here) with ``content``: written
    to a new file, locked, then renamed over it, so that a stop at any moment leaves one whole journal, never one
    cut (its header naming this data dir and process now). ``journal[0]`` is the new journal's fd, locked, before
    the old one is closed (a Ctrl-C in between leaves one fd open, never closes one twice)."""
    new = path.with_name(f"{path.name}.tmp.{os.getpid()}")  # hidden, as the journal's name is
    new_fd = os.open(new, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    try:
        lock(new_fd)
        write_all(new_fd, content)
        os.rename(new, path)
    except BaseException:
        os.close(new_fd)
        new.unlink(missing_ok=True)
        raise
    journal[0], old = new_fd, journal[0]
    os.close(old)


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
        if held(fd):
            return
        fields = parse_header(read_lines(fd)[0])
        named = Path(fields["data_dir"]) if fields else None
        if named is None or named.resolve() == data_dir.resolve() or \
                not (named / "data").is_dir() or (named / "data").resolve() != folder.resolve():
            ark.unlink(missing_ok=True)
            journal_of(ark).unlink(missing_ok=True)
    finally:
        os.close(fd)
