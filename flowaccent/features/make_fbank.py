r"""Filterbank extraction for a whole data dir (``flowaccent fbank``): ark, scp, CMVN stats.

Like Kaldi's ``steps/make_fbank.sh`` followed by ``steps/compute_cmvn_stats.sh``:
reads ``wav.scp``, writes ``feats.scp`` + ark, ``utt2num_frames`` and per-speaker
``cmvn.scp`` into the data dir (arks under ``DATA_DIR/data/``). Atomic: arks are
written under temporary names and renamed, tables replaced only after every
utterance succeeded; a failure leaves the data dir as it was. Idempotent: the
ark names depend only on the data dir's name, ``wav.scp`` and the options, so a
rerun writes the same bytes under the same names.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from flowaccent.data.audio import read_wav
from flowaccent.data.datadir import load_data_dir, write_table
from flowaccent.data.kaldi_io import ArkWriter
from flowaccent.errors import AudioError, ConfigError, FeatureError
from flowaccent.features.cmvn_stats import compute_cmvn_stats
from flowaccent.features.fbank import FbankConfig, compute_fbank_with
from flowaccent.workers import imap_processes


@dataclasses.dataclass(frozen=True)
class FbankSummary:
    r"""What :func:`make_fbank` did: counts, the ark written and the speed."""

    num_utts: int
    num_frames: int
    feats_ark: Path
    seconds: float

    @property
    def frames_per_second(self) -> float:
        return self.num_frames / max(self.seconds, 1e-9)


def make_fbank(
    data_dir: str | Path,
    config: FbankConfig = FbankConfig(),
    nj: int = 1,
    channel: int = -1,
    quiet: bool = False,
) -> FbankSummary:
    r"""Computes filterbanks and per-speaker CMVN stats for every utterance of ``data_dir``.

    Arguments:
        data_dir: a valid Kaldi data dir with ``wav.scp``.
        config: filterbank options.
        nj: parallel worker processes.
        channel: audio channel (-1: audio must be mono).
        quiet: no progress bar.

    Returns:
        a :class:`FbankSummary`.
    """
    if nj < 1 or channel < -1:
        raise ConfigError(f"fbank: nj must be >= 1 and channel >= -1 (-1: mono), got {nj} and {channel}")
    start = time.perf_counter()
    data = load_data_dir(data_dir, require=("wav.scp",))
    wav_scp = data.table("wav.scp")
    tag = _fingerprint(data.path, config, channel)
    ark_dir = data.path / "data"
    ark_dir.mkdir(exist_ok=True)
    feats_ark = ark_dir / f"raw_fbank_{data.name}.{tag}.ark"
    cmvn_ark = ark_dir / f"cmvn_{data.name}.{tag}.ark"

    jobs = [(utt, wav_scp[utt]) for utt in data.utts]
    num_frames: dict[str, int] = {}
    stats: dict[str, np.ndarray] = {}
    with (
        ArkWriter(feats_ark) as writer,
        tqdm(total=len(jobs), unit="utt", desc=f"fbank {data.name}", disable=quiet) as bar,
        contextlib.closing(_compute_all(jobs, config, channel, nj)) as computed,  # workers stop on any error
    ):
        for utt, feats in computed:
            writer.write(utt, feats)
            num_frames[utt] = feats.shape[0]
            spk = data.utt2spk[utt]
            stats[spk] = stats.get(spk, 0) + compute_cmvn_stats(feats)
            bar.update()
        feats_lines = writer.scp_lines
    with ArkWriter(cmvn_ark) as cmvn_writer:
        for spk in sorted(stats):
            cmvn_writer.write(spk, stats[spk])
        cmvn_lines = cmvn_writer.scp_lines

    write_table(data.path / "feats.scp", dict(line.rstrip("\n").split(" ", 1) for line in feats_lines))
    write_table(data.path / "cmvn.scp", dict(line.rstrip("\n").split(" ", 1) for line in cmvn_lines))
    write_table(data.path / "utt2num_frames", num_frames)
    _remove_stale(ark_dir, data.name, keep={feats_ark.name, cmvn_ark.name})
    return FbankSummary(len(jobs), sum(num_frames.values()), feats_ark, time.perf_counter() - start)


def _compute_all(
    jobs: list[tuple[str, str]], config: FbankConfig, channel: int, nj: int
) -> Iterator[tuple[str, np.ndarray]]:
    r"""Yields ``(utt, feats)`` in the order of ``jobs``, computed by ``nj`` processes."""
    if nj <= 1 or len(jobs) < 2:
        for job in jobs:
            yield _compute_one(job, config, channel)
        return
    chunk = max(1, min(16, len(jobs) // (4 * nj)))
    yield from imap_processes(_worker, jobs, nj, initializer=_init_worker, initargs=(config, channel), chunksize=chunk)


_WORKER: dict = {}


def _init_worker(config: FbankConfig, channel: int) -> None:
    _WORKER["config"], _WORKER["channel"] = config, channel


def _worker(job: tuple[str, str]) -> tuple[str, np.ndarray]:
    return _compute_one(job, _WORKER["config"], _WORKER["channel"])


def _compute_one(job: tuple[str, str], config: FbankConfig, channel: int) -> tuple[str, np.ndarray]:
    utt, rxfile = job
    where = f"wav.scp: utterance '{utt}'"
    samples, rate = read_wav(rxfile, where, channel)
    try:
        feats = compute_fbank_with(config, samples, rate)
    except FeatureError as error:
        raise FeatureError(f"{where}: {error}") from None
    if feats.shape[0] == 0:
        raise AudioError(f"{where}: audio too short for one frame ({samples.shape[0]} samples at {rate} Hz)")
    return utt, feats


def _fingerprint(data_dir: Path, config: FbankConfig, channel: int) -> str:
    h = hashlib.sha1()
    h.update(json.dumps([config.to_dict(), channel], sort_keys=True).encode())
    h.update((data_dir / "wav.scp").read_bytes())
    return h.hexdigest()[:10]


def _remove_stale(ark_dir: Path, name: str, keep: set[str]) -> None:
    r"""Removes arks of earlier runs on this data dir (other options or wav.scp, or killed runs)."""
    for pattern in (f"raw_fbank_{name}.*.ark", f"cmvn_{name}.*.ark"):
        for path in [*ark_dir.glob(pattern), *ark_dir.glob(f".{pattern}.tmp.*")]:
            if path.name not in keep:
                path.unlink(missing_ok=True)
