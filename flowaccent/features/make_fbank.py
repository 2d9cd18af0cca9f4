r"""Filterbank extraction for a whole data dir (``flowaccent fbank``): ark, scp, CMVN stats.

Like Kaldi's ``steps/make_fbank.sh`` followed by ``steps/compute_cmvn_stats.sh``:
reads ``wav.scp`` (and ``segments``: utterances cut from recordings, each recording read
once, as ``extract-segments`` cuts them, flowaccent.data.segments), writes ``feats.scp`` + ark,
``utt2num_frames``, per-speaker ``cmvn.scp`` and ``fbank.json`` (the options and the audio's rates,
flowaccent.features.fbank_record) into the data dir (arks under ``DATA_DIR/data/``). Atomic: arks are
written under temporary names and renamed, tables replaced only after every
utterance succeeded; a failure leaves the data dir as it was (but for a stopped run's hidden partial ark, which
``resume`` goes on from: :mod:`flowaccent.features.fbank_resume`). The recordings are read and their features
computed by :mod:`flowaccent.features.fbank_jobs`. Utterances that fail (a missing
file, audio too short) do not stop the others: the error names the first and counts the rest,
listed with it in ``DATA_DIR/data/fbank_failed.txt``, so one run finds every bad utterance. Idempotent: the
ark names depend only on the data dir's name, ``wav.scp``, ``segments`` and the options, so a
rerun writes the same bytes under the same names (with ``dither`` 0, the default: dither's noise depends on the
process and on the order it computes the recordings in).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from flowaccent import __version__
from flowaccent.data.atomic import atomic_path, atomic_write_text
from flowaccent.data.datadir import DATA_DIR_LOCK, UNUSED_BY_FBANK, DataDir, load_data_dir, read_table
from flowaccent.data.kaldi_io import ArkWriter, read_scp
from flowaccent.data.lock import locked_folder
from flowaccent.data.rules import FBANK_FAILED, utterances_digest
from flowaccent.data.table import table_text
from flowaccent.errors import AudioError, ConfigError, FlowAccentError, KaldiIOError
from flowaccent.features.cmvn_stats import compute_cmvn_stats
from flowaccent.features.fbank import FbankConfig
from flowaccent.features.fbank_jobs import compute_all, recording_jobs
from flowaccent.features.fbank_journal import UNCHECKED, Line, audio_stamp, job_id
from flowaccent.features.fbank_record import RECORD, RESAMPLER, RUN_TAG, read_record, write_record
from flowaccent.features.fbank_resume import Journal, TakenOver, remove_stopped, take_over
from flowaccent.features.make_cmvn import write_stats
from flowaccent.progress import progress_bar


@dataclasses.dataclass(frozen=True)
class FbankSummary:
    r"""What :func:`make_fbank` did: counts, the ark written and the speed."""

    num_utts: int
    num_frames: int
    feats_ark: Path
    seconds: float
    source_rates: dict[int, int] = dataclasses.field(default_factory=dict)  # sample rate read -> utterances
    #: the arks of an earlier run (other options) this run removed: dirs made from the data dir before still
    #: pointed at them
    removed: tuple[Path, ...] = ()
    #: of ``num_frames``, those taken over from a stopped run (``resume``), not computed by this one
    taken_frames: int = 0
    #: whether the features were there, complete, of a finished run with these options and inputs (``resume``)
    kept: bool = False

    @property
    def frames_per_second(self) -> float:
        r"""The frames this run computed, per second."""
        return (self.num_frames - self.taken_frames) / max(self.seconds, 1e-9)


def make_fbank(
    data_dir: str | Path,
    config: FbankConfig = FbankConfig(),
    nj: int = 1,
    channel: int = -1,
    quiet: bool = False,
    resume: bool = False,
) -> FbankSummary:
    r"""Computes filterbanks and per-speaker CMVN stats for every utterance of ``data_dir``.

    Arguments:
        data_dir: a valid Kaldi data dir with ``wav.scp`` (and ``segments``, if its utterances are
            spans of recordings).
        config: filterbank options.
        nj: parallel worker processes (each reads whole recordings).
        channel: audio channel (-1: audio must be mono); a channel in ``segments`` overrides it.
        quiet: no progress bar.
        resume: take over the utterances a stopped run with the same options and channel wrote, of the recordings
            listed now, up to the first that is new, changed or failed (:mod:`flowaccent.features.fbank_resume`), and
            compute the rest; features there complete, of these options, audio files and ``utt2spk``, are kept
            (``FbankSummary.kept``).

    Returns:
        a :class:`FbankSummary`.
    """
    if nj < 1:
        raise ConfigError(f"fbank: nj must be >= 1, got {nj}")
    if channel < -1:
        raise ConfigError(f"fbank: channel must be >= -1 (-1: mono), got {channel}")
    start = time.perf_counter()
    # '.', '..' or another spelling of the dir: one name for its arks (links kept, as the user named them)
    data = load_data_dir(os.path.abspath(data_dir), require=("wav.scp",), unused=UNUSED_BY_FBANK)
    tag = _fingerprint(data.path, config, channel)
    busy = f"fbank: {data.path} is being written by another flowaccent fbank, fixdir or cmvn now; wait for it"
    # the data dir's lock, not data/'s: data dirs may share one storage folder there (links), as in Kaldi
    with locked_folder(data.path, DATA_DIR_LOCK, busy):  # a second run on the dir crashed on the first's arks
        return _make_fbank(data, config, channel, nj, quiet, resume, tag, start)


def _make_fbank(
    data: DataDir, config: FbankConfig, channel: int, nj: int, quiet: bool, resume: bool, tag: str, start: float
) -> FbankSummary:
    r"""The work of :func:`make_fbank` on the validated, locked ``data`` (``tag``: the run's tag in its ark
    names; ``start``: when the command began)."""
    options = _options(config, channel)
    ark_dir = data.path / "data"
    if ark_dir.is_symlink() and not ark_dir.exists():  # mkdir said only 'File exists'
        raise ConfigError(f"fbank: {ark_dir} is a link to {os.readlink(ark_dir)}, which is not there (a disk not "
                          f"mounted?); the arks go into it")
    if ark_dir.exists() and not ark_dir.is_dir():
        raise ConfigError(f"fbank: {ark_dir} is a file; the arks go into a folder of that name: move the file")
    ark_dir.mkdir(exist_ok=True)
    previous = _arks_listed(data.path, ark_dir)
    feats_ark = ark_dir / f"raw_fbank_{data.name}.{tag}.ark"
    cmvn_ark = ark_dir / f"cmvn_{data.name}.{tag}.ark"

    jobs = recording_jobs(data)
    inputs = _inputs_digest(data, jobs)
    if resume and (kept := _complete_already(data, tag, inputs, feats_ark, cmvn_ark)):
        remove_stopped(ark_dir, rf"\.raw_fbank_.+\.{RUN_TAG}\.ark", data.path)  # as a run that completes does
        return dataclasses.replace(kept, seconds=time.perf_counter() - start)
    num_frames: dict[str, int] = {}
    stats: dict[str, np.ndarray] = {}
    rates: dict[int, int] = {}

    def add(utt: str, feats: np.ndarray, rate: int) -> None:
        rates[rate] = rates.get(rate, 0) + 1
        num_frames[utt] = feats.shape[0]
        spk = data.utt2spk[utt]
        stats[spk] = stats.get(spk, 0) + compute_cmvn_stats(feats)

    taken = take_over(ark_dir, tag, options, data.path, jobs, add, quiet) if resume else None
    failed: list[tuple[str, str]] = []
    failed_list = ark_dir / FBANK_FAILED
    journal, writer = _open_output(taken, len(jobs), feats_ark, failed_list, (data.path, options))
    left = jobs[taken.recordings if taken else 0:]
    listed = False  # failed utterances: the error lists them, and says what stays
    try:
        with (
            writer,
            progress_bar(total=len(data.utts), initial=len(num_frames), unit="utt", desc=f"fbank {data.name}",
                 disable=quiet) as bar,
            contextlib.closing(compute_all(left, config, channel, nj)) as computed,
        ):  # workers stop on Ctrl-C
            _write_recordings(zip(left, computed), writer, journal, bar, add, failed)
            listed = bool(failed)
            if failed:
                mended = (", once the failed utterance(s) are mended or left out of the data dir ('flowaccent "
                          f"fixdir --exclude {failed_list} {data.path}'),")
                raise _failed(data.path, failed, failed_list, _left(journal, mended))
            feats_lines = writer.scp_lines
        journal.path.unlink()
    except BaseException:
        if not listed and (stay := _left(journal)):
            print(f"fbank: {stay}", file=sys.stderr)
        raise
    finally:
        journal.close()  # and its lock: after the ark was renamed, or its journal says what it holds
    # the earlier run's tables read arks of these names, replaced now (the tag does not cover utt2spk or the audio)
    stale = bool({feats_ark.name, cmvn_ark.name} & previous)
    _write_tables(data.path, feats_lines, cmvn_ark, stats, num_frames, stale)
    write_record(data.path, config.to_dict(), channel, rates, run=tag,  # last: tables and record from one run
                 feats=utterances_digest(num_frames), inputs=inputs, written=_written_digest(data.path, feats_ark,
                                                                                              cmvn_ark))
    removed = _remove_stale(ark_dir, data.name, keep={feats_ark.name, cmvn_ark.name}, listed=previous)
    remove_stopped(ark_dir, rf"\.raw_fbank_.+\.{RUN_TAG}\.ark", data.path)  # also of the dir under another name
    seconds = time.perf_counter() - start
    taken_frames = sum(num_frames[utt] for utt, _ in taken.entries) if taken else 0
    return FbankSummary(len(num_frames), sum(num_frames.values()), feats_ark, seconds, rates, removed, taken_frames)


def _open_output(
    taken: TakenOver | None, num_recordings: int, feats_ark: Path, failed_list: Path, header: tuple[Path, str]
) -> tuple[Journal, ArkWriter]:
    r"""The run's journal and ark writer: a stopped run's, ``taken`` over (said), or new ones for ``feats_ark`` (the
    journal's ``header``: the data dir and :func:`_options`); an earlier run's ``failed_list`` removed."""
    try:
        if taken:
            _said(taken, num_recordings)
        failed_list.unlink(missing_ok=True)
        journal = Journal(taken.ark, taken.journal) if taken else Journal.start(feats_ark, *header)
        return journal, ArkWriter(feats_ark, partial=journal.ark, taken=taken.entries if taken else ())
    except BaseException:  # a Ctrl-C: the stopped run's journal not left locked (the Python API goes on)
        if taken:
            os.close(taken.journal)
        raise


def _write_recordings(computed, writer: ArkWriter, journal: Journal, bar: tqdm, add, failed: list) -> None:
    r"""Writes each ``computed`` recording's utterances (``(job, (rate, stamp, [(utt, feats or error)]))``) with
    ``writer`` (``add(utt, feats, rate)`` counts their frames and CMVN stats), then its line into ``journal``; an
    utterance that failed goes into ``failed`` as ``(utt, message)`` instead."""
    for job, (rate, stamp, recording) in computed:
        for utt, feats in recording:
            bar.update()
            if isinstance(feats, FlowAccentError):
                failed.append((utt, str(feats)))
                continue
            writer.write(utt, feats)
            add(utt, feats, rate)
        writer.flush()  # then the journal's line: a SIGKILL leaves no line without its utterances
        recording_id, utt_ids = job_id(*job)
        written = tuple(i for i, (_, feats) in zip(utt_ids, recording) if not isinstance(feats, FlowAccentError))
        journal.write(Line(len(written) < len(recording), rate, stamp, recording_id, written))


def _failed(path: Path, failed: list[tuple[str, str]], failed_list: Path, stay: str | None) -> AudioError:
    r"""The error of a run whose utterances ``failed`` (``(utt, message)``): the first's message, and with more than
    one, where they are all listed: ``failed_list``, written in any case (for ``flowaccent fixdir --exclude``; the ark
    is not written, the data dir left as it was but for the list); ``stay``: what a ``--resume`` keeps of the run
    (:func:`_left`)."""
    stay = f"; {stay}" if stay else ""
    atomic_write_text(failed_list, "".join(f"{utt} {message}\n" for utt, message in failed))
    if len(failed) > 1:
        return AudioError(f"{path}: {failed[0][1]} (and {len(failed) - 1} more utterance(s) failed; all in "
                          f"{failed_list}){stay}")
    return AudioError(f"{path}: {failed[0][1]}{stay}")  # the message names the table, this the data dir


def _write_tables(path: Path, feats_lines: list[str], cmvn_ark: Path, stats: dict[str, np.ndarray],
                  num_frames: dict[str, int], stale: bool) -> None:
    r"""The per-speaker CMVN stats into ``cmvn_ark``, then the data dir's ``feats.scp`` (``feats_lines``: the ark
    writer's scp lines), ``cmvn.scp`` and ``utt2num_frames``, each written whole under a temporary name before any
    is renamed into place; its ``fbank.json`` removed just before (written after them by the caller: tables and
    record from one run). A full disk among them left a ``feats.scp`` without its ``cmvn.scp`` (or the earlier
    run's), which ``validate`` passed and ``score`` took. A failure before the renames now leaves the earlier
    run's tables and record, unless they are ``stale`` (they read arks of this run's names, replaced already); then,
    or where it comes among the renames (a Ctrl-C), the tables and the record are removed: none that looks whole."""
    tables = ("feats.scp", "cmvn.scp", "utt2num_frames")
    renaming = False
    try:
        mappings = dict(zip(tables, (dict(line.rstrip("\n").split(" ", 1) for line in feats_lines),
                                     write_stats(cmvn_ark, stats), num_frames)))
        texts = {name: table_text(mapping, str(path / name)) for name, mapping in mappings.items()}
        with contextlib.ExitStack() as renamed:  # renamed on leaving it, feats.scp last
            for name, text in texts.items():
                renamed.enter_context(atomic_path(path / name)).write_text(text, encoding="utf-8")
            (path / RECORD).unlink(missing_ok=True)
            renaming = True
    except BaseException:
        if stale or renaming:
            for name in (*tables, RECORD):
                (path / name).unlink(missing_ok=True)
        raise


def _said(taken: TakenOver, recordings: int) -> None:
    r"""Says on stderr what :func:`take_over` kept (``recordings``: all the run has). (Nothing is said where there
    was no stopped run: a recipe passes ``--resume`` on every run.)"""
    why = f" ({taken.why}, and all after it)" if taken.why else ""
    print(f"fbank: --resume: took over {len(taken.entries)} utterance(s) of {taken.recordings} recording(s) of a "
          f"stopped run ({taken.ark}); computing the other {recordings - taken.recordings} recording(s){why}",
          file=sys.stderr)


def _left(journal: Journal, when: str = "") -> str | None:
    r"""After a failure or a stop: what the ``journal``'s partial ark and the journal keep for a ``--resume``, said in
    a sentence (``when``: after the resume's options, when it may run); None, with both removed, where they keep
    nothing."""
    recordings, utts = journal.kept()
    if not recordings:
        journal.ark.unlink(missing_ok=True)
        journal.path.unlink(missing_ok=True)
        return None
    return (f"the features of {utts} utterance(s) ({recordings} recording(s)) stay in {journal.ark}: 'flowaccent fbank "
            f"--resume' with the same options{when} goes on from them (the next run that completes removes them)")


def _options(config: FbankConfig, channel: int) -> str:
    r"""The options and the channel as the journal's header names them, and as :func:`_fingerprint` digests them."""
    return json.dumps([config.to_dict(), channel], sort_keys=True)


def _inputs_digest(data: DataDir, jobs: list) -> str | None:
    r"""A digest of what the features hold beyond the run's tag (:func:`_fingerprint`: the options, ``wav.scp`` and
    ``segments``): each recording's audio files (:func:`~flowaccent.features.fbank_journal.audio_stamp`: path, size,
    modification time) and ``utt2spk`` (the CMVN stats are per speaker). None where an entry names no file (a
    command whose input is not seen): such features are never kept as complete."""
    h = hashlib.sha1()
    for rxfile, _ in jobs:
        stamp = audio_stamp(rxfile)
        if stamp == UNCHECKED:
            return None
        h.update(f"{stamp}\n".encode())
    h.update(b"utt2spk\0" + (data.path / "utt2spk").read_bytes())
    h.update(f"flowaccent {__version__}".encode())  # another version's features are computed again, as its
    return h.hexdigest()[:16]  # stopped runs' are not taken over


def _written_digest(path: Path, feats_ark: Path, cmvn_ark: Path) -> str | None:
    r"""A digest of what a run wrote: the bytes of ``feats.scp``, ``cmvn.scp``, ``utt2num_frames`` and the CMVN
    stats' ark (a few kB), and the size of the features' ark (a table edited by hand, ``flowaccent cmvn`` run since,
    the stats written over by a data dir of the same name sharing the storage folder, an ark cut short); None where
    one is missing. Not times: a rerun writes the same bytes."""
    h = hashlib.sha1()
    try:
        for table in ("feats.scp", "cmvn.scp", "utt2num_frames"):
            h.update(table.encode() + b"\0" + (path / table).read_bytes())
        h.update(b"cmvn\0" + cmvn_ark.read_bytes())
        h.update(f"{feats_ark.name} {feats_ark.stat().st_size}\n".encode())
    except OSError:
        return None
    return h.hexdigest()[:16]


def _complete_already(data: DataDir, tag: str, inputs: str | None, feats_ark: Path, cmvn_ark: Path
                      ) -> FbankSummary | None:
    r"""With ``--resume``: where ``fbank.json`` says a finished run of this tag and these ``inputs`` wrote the
    features, and its tables and arks are there as it wrote them (:func:`_written_digest`: a run that completes
    lists every utterance and speaker of the dir, which the tag and ``inputs`` fix), what it wrote, said in a line;
    else None. A recipe passes ``--resume`` on every run: its rerun after a stop computed the features of the sets
    that had finished again (hours of WSJ)."""
    record = read_record(data.path)
    if (inputs is None or record is None or record.get("run") != tag or record.get("inputs") != inputs
            or record.get("resampler") != RESAMPLER
            or record.get("written") != _written_digest(data.path, feats_ark, cmvn_ark)):
        return None
    frames = [int(n) for n in read_table(data.path / "utt2num_frames").values()]
    print(f"fbank: {data.path}: the features are complete already, of these options and this audio (fbank.json); "
          "kept (leave --resume out to compute them again)", file=sys.stderr)
    rates = {int(rate): n for rate, n in record["source_rates"].items()}
    return FbankSummary(len(frames), sum(frames), feats_ark, 0.0, rates, (), sum(frames), kept=True)


def _fingerprint(data_dir: Path, config: FbankConfig, channel: int) -> str:
    r"""The run's ``TAG``: a digest of the options and channel (:func:`_options`), ``wav.scp`` and ``segments``."""
    h = hashlib.sha1()
    h.update(_options(config, channel).encode())
    h.update((data_dir / "wav.scp").read_bytes())
    if (data_dir / "segments").exists():
        h.update(b"segments\0" + (data_dir / "segments").read_bytes())
    return h.hexdigest()[:10]  # RUN_TAG


def _arks_listed(data_dir: Path, ark_dir: Path) -> set[str]:
    r"""Names of the files in ``ark_dir`` that ``data_dir``'s ``feats.scp`` and ``cmvn.scp`` point at now."""
    names = set()
    for table in ("feats.scp", "cmvn.scp"):
        try:
            entries = read_scp(data_dir / table) if (data_dir / table).is_file() else []
        except KaldiIOError:  # a damaged table: none of its arks is taken for this dir's
            entries = []
        arks = {Path(entry.location()[0]) for entry in entries if not entry.is_pipe}
        names |= {ark.name for ark in arks if ark.parent.resolve() == ark_dir.resolve()}
    return names


def _remove_stale(ark_dir: Path, name: str, keep: set[str], listed: set[str]) -> tuple[Path, ...]:
    r"""Removes arks of earlier runs of this command on this data dir (other options or wav.scp): those with its
    run tag (``raw_fbank_NAME.TAG.ark``, ``TAG`` 10 hex digits) that its tables pointed at before this run
    (``listed``).
    Other arks stay: Kaldi's ``steps/make_fbank.sh`` writes ``raw_fbank_NAME.JOB.ark`` into the same folder,
    which its subsets and copies may still point at; and data dirs of the same name whose ``data/`` is one
    shared folder (links) have arks of the same names but their own (removing them by name alone left another
    dir's feats.scp pointing at nothing). Returns the arks it removed.
    """
    removed = []
    ours = re.compile(rf"(?:raw_fbank|cmvn)_{re.escape(name)}\.{RUN_TAG}\.ark")
    for path in ark_dir.iterdir():
        if ours.fullmatch(path.name) and path.name not in keep and path.name in listed:
            path.unlink(missing_ok=True)
            removed.append(path)
    return tuple(sorted(removed))
