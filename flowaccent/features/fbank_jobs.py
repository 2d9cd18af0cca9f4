r"""The work of ``flowaccent fbank``, one job per recording: each recording read once (its utterances cut from it
by ``segments``), each utterance's features or the error that stopped them, in ``nj`` processes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flowaccent.data.audio import read_audio, select_channel
from flowaccent.data.datadir import DataDir
from flowaccent.data.segments import Segment, cut
from flowaccent.errors import AudioError, FeatureError, FlowAccentError
from flowaccent.features.fbank import FbankConfig, compute_fbank_with
from flowaccent.features.fbank_journal import audio_stamp
from flowaccent.workers import check_stopping, imap_processes

#: One recording to read: its ``wav.scp`` value and the utterances cut from it (segment None: all of it).
Job = tuple[str, list[tuple[str, Segment | None]]]


def recording_jobs(data: DataDir) -> list[Job]:
    r"""One job per recording, in the order of its first utterance (with no ``segments``: per utterance)."""
    wav_scp = data.table("wav.scp")
    if not data.has("segments"):
        return [(wav_scp[utt], [(utt, None)]) for utt in data.utts]
    by_recording: dict[str, list[tuple[str, Segment | None]]] = {}
    for utt, segment in data.segments().items():
        by_recording.setdefault(segment.recording, []).append((utt, segment))
    return [(wav_scp[recording], utts) for recording, utts in by_recording.items()]


def compute_all(
    jobs: list[Job], config: FbankConfig, channel: int, nj: int
) -> Iterator[tuple[int, str, list[tuple[str, Any]]]]:
    r"""Each job's ``(sample rate, audio stamp, [(utt, feats or error), ...])``, in the order of ``jobs`` (``nj``
    processes)."""
    if nj <= 1 or len(jobs) < 2:
        for job in jobs:
            yield compute_one(job, config, channel)
        return
    chunk = max(1, min(16, len(jobs) // (4 * nj)))
    yield from imap_processes(_worker, jobs, nj, initializer=_init_worker, initargs=(config, channel), chunksize=chunk)


_WORKER: dict = {}


def _init_worker(config: FbankConfig, channel: int) -> None:
    _WORKER["config"], _WORKER["channel"] = config, channel


def _worker(job: Job) -> tuple[int, str, list[tuple[str, Any]]]:
    check_stopping()  # after a first Ctrl-C: end with the recording this worker is on, not its whole chunk
    return compute_one(job, _WORKER["config"], _WORKER["channel"])


def compute_one(job: Job, config: FbankConfig, channel: int) -> tuple[int, str, list[tuple[str, Any]]]:
    r"""Reads the job's recording once; returns its sample rate, the :func:`audio_stamp` of its files (taken
    before they are read) and, for each utterance cut from it, its features or the error that stopped them
    (:class:`~flowaccent.errors.FlowAccentError`)."""
    rxfile, utts = job
    first, segment = utts[0]
    where = f"wav.scp: utterance '{first}'" if segment is None else f"wav.scp: recording '{segment.recording}'"
    stamp = audio_stamp(rxfile)
    try:
        data, rate = read_audio(rxfile, where)
    except FlowAccentError as error:
        return 0, stamp, [(utt, error) for utt, _ in utts]
    return rate, stamp, [(utt, _utterance(data, rate, segment, config, channel, utt)) for utt, segment in utts]


def _utterance(data, rate: int, segment: Segment | None, config: FbankConfig, channel: int, utt: str) -> Any:
    r"""One utterance's ``(T, D)`` features from its recording's samples, or the error that stopped them."""
    where = f"wav.scp: utterance '{utt}'" if segment is None else f"segments: utterance '{utt}'"
    try:
        if segment is not None:
            data, channel = cut(data, rate, segment, where), segment.channel if segment.channel >= 0 else channel
        samples = select_channel(data, channel, where)
        try:
            feats = compute_fbank_with(config, samples, rate)
        except FeatureError as error:
            raise FeatureError(f"{where}: {str(error).removeprefix('fbank: ')}") from None  # the command says fbank
        if feats.shape[0] == 0:
            raise AudioError(f"{where}: audio too short for one frame ({samples.shape[0]} samples at {rate} Hz)")
    except FlowAccentError as error:
        return error
    return feats
