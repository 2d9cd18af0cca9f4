r"""``flowaccent cmvn``: per-speaker CMVN stats of a data dir's ``feats.scp`` (Kaldi's
``steps/compute_cmvn_stats.sh``, ``compute-cmvn-stats --spk2utt``), for features ``flowaccent fbank`` did not make.

The stats go into ``DATA_DIR/data/cmvn_NAME.DIGEST.ark`` and ``DATA_DIR/cmvn.scp``; ``DIGEST`` (8 hex digits of
the stats' SHA-256) names the ark by what it holds. So a new ark never takes the place of one a subset or a copy
of the dir points at (their offsets then named other speakers' stats, without a word), and the same stats are the
same file. Arks of earlier stats stay (a few kB each).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from pathlib import Path

import numpy as np

from flowaccent.data.datadir import DATA_DIR_LOCK, load_data_dir, write_table
from flowaccent.data.kaldi_io import ArkWriter
from flowaccent.data.lock import locked_folder
from flowaccent.data.stream import iter_utterances
from flowaccent.features.cmvn_stats import compute_cmvn_stats
from flowaccent.progress import progress_bar

#: Tables ``flowaccent cmvn`` neither reads nor needs intact: all but ``utt2spk``, ``spk2utt``, ``feats.scp`` and
#: ``utt2num_frames`` (it replaces ``cmvn.scp``).
UNUSED_BY_CMVN = ("wav.scp", "segments", "text", "utt2accent", "utt2score", "cmvn.scp")


@dataclasses.dataclass(frozen=True)
class CmvnSummary:
    r"""What :func:`make_cmvn` did.

    Attributes:
        speakers: speakers with stats.
        utterances: utterances read.
        frames: frames read.
        dim: the features' dimension (the stats are ``(2, dim + 1)``).
        ark: the ark of the stats.
        seconds: how long it took.
    """

    speakers: int
    utterances: int
    frames: int
    dim: int
    ark: Path
    seconds: float


def make_cmvn(data_dir: str | Path, quiet: bool = False) -> CmvnSummary:
    r"""Writes the per-speaker CMVN stats (float64 ``(2, D + 1)`` each, :func:`compute_cmvn_stats` summed over the
    speaker's utterances, as ``compute-cmvn-stats --spk2utt``) of the data dir's ``feats.scp`` into
    ``DATA_DIR/data/cmvn_NAME.DIGEST.ark`` and ``DATA_DIR/cmvn.scp`` (replaced; the ark first, each atomically).

    Every matrix is read and checked (one dimension for all, frames against ``utt2num_frames`` where the dir has
    it, no NaN or inf). Holds the data dir's lock (:data:`~flowaccent.data.datadir.DATA_DIR_LOCK`): refused while
    ``flowaccent fbank`` or ``fixdir`` writes it. Raises :class:`~flowaccent.errors.DataDirError` for a data dir
    that is not valid or has no ``feats.scp``, and :class:`~flowaccent.errors.KaldiIOError` or
    :class:`~flowaccent.errors.FeatureError` for a matrix that cannot be read or is wrong; nothing is written then.
    """
    start = time.perf_counter()
    data = load_data_dir(os.path.abspath(data_dir), require=("feats.scp",), unused=UNUSED_BY_CMVN)
    busy = f"cmvn: {data.path} is being written by another flowaccent fbank, fixdir or cmvn now; wait for it"
    with locked_folder(data.path, DATA_DIR_LOCK, busy):
        stats: dict[str, np.ndarray] = {}
        dim = 0
        for utt in progress_bar(iter_utterances(data, with_cmvn=False), total=len(data.utts), unit="utt",
                        desc=f"cmvn {data.name}", disable=quiet):  # one dim for all: the first's
            dim = utt.feats.shape[1]
            stats[utt.spk] = stats.get(utt.spk, 0) + compute_cmvn_stats(utt.feats)
        ark = data.path / "data" / f"cmvn_{data.name}.{_digest(stats)}.ark"
        ark.parent.mkdir(exist_ok=True)
        write_table(data.path / "cmvn.scp", write_stats(ark, stats))
    total = sum(int(s[0, -1]) for s in stats.values())
    return CmvnSummary(len(stats), len(data.utts), total, dim, ark, time.perf_counter() - start)


def write_stats(ark: Path, stats: dict[str, np.ndarray]) -> dict[str, str]:
    r"""Writes the speakers' ``stats`` into ``ark`` (sorted, atomically) and returns ``cmvn.scp``'s lines
    (speaker -> rxfile)."""
    with ArkWriter(ark) as writer:
        for spk in sorted(stats):
            writer.write(spk, stats[spk])
        lines = writer.scp_lines
    return dict(line.rstrip("\n").split(" ", 1) for line in lines)


def _digest(stats: dict[str, np.ndarray]) -> str:
    r"""8 hex digits of the SHA-256 of the stats (speakers in order, their float64 values)."""
    digest = hashlib.sha256()
    for spk in sorted(stats):
        digest.update(spk.encode("utf-8") + b"\0" + np.ascontiguousarray(stats[spk], "<f8").tobytes())
    return digest.hexdigest()[:8]
