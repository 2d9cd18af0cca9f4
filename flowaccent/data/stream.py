r"""Streaming a data dir's features utterance by utterance, with the speaker's CMVN stats."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from flowaccent.data.datadir import DataDir, load_data_dir
from flowaccent.data.kaldi_io import ScpReader, check_matrix, read_matrix
from flowaccent.errors import FeatureError


@dataclasses.dataclass(frozen=True)
class Utterance:
    r"""One utterance's stored features ``(T, D)`` and its speaker's ``(2, D + 1)`` CMVN stats."""

    utt: str
    spk: str
    feats: np.ndarray
    cmvn_stats: np.ndarray | None


def iter_utterances(
    data: DataDir | str | Path, expected_dim: int | None = None, with_cmvn: bool = True,
    problems: list[str] | None = None,
) -> Iterator[Utterance]:
    r"""Yields every utterance of ``data`` in order; one utterance in memory at a time.

    Checks each matrix (dims, NaN/inf, frame count against ``utt2num_frames``)
    and loads the per-speaker CMVN stats once (they are small).

    Arguments:
        data: a data dir with ``feats.scp`` (and ``cmvn.scp`` when ``with_cmvn``), loaded or its path.
        expected_dim: the dimension every matrix must have (None: that of the first).
        with_cmvn: attach the speaker's stats (requires ``cmvn.scp``).
        problems: where given, an utterance failing those checks is listed there (its message) and skipped, not
            raised (:class:`~flowaccent.data.kaldi_io.ScpReader`'s ``problems``).
    """
    if not isinstance(data, DataDir):
        data = load_data_dir(data, require=("feats.scp",) + (("cmvn.scp",) if with_cmvn else ()))
    frames = data.utt2num_frames() if data.has("utt2num_frames") else None
    reader = ScpReader(data.path / "feats.scp", expected_dim, frames, problems=problems,
                       rxfiles=data.tables.get("feats.scp"))  # the table read, where the dir's was
    cmvn = load_cmvn_stats(data) if with_cmvn else {}
    for utt, feats in reader:
        if reader.expected_dim is None:
            reader.expected_dim = feats.shape[1]
        spk = data.utt2spk[utt]
        stats = cmvn.get(spk)
        if with_cmvn and stats.shape[1] != feats.shape[1] + 1:
            message = (f"{data.path / 'cmvn.scp'}: speaker '{spk}': stats of dim {stats.shape[1] - 1} "
                       f"for features of dim {feats.shape[1]}")
            if problems is None:
                raise FeatureError(message)
            if message not in problems:  # once per speaker
                problems.append(message)
            continue
        yield Utterance(utt, spk, feats, stats)


def load_cmvn_stats(data: DataDir, dim: int | None = None) -> dict[str, np.ndarray]:
    r"""Per-speaker CMVN stats ``(2, D + 1)`` from ``cmvn.scp``, checked (with ``dim``: ``D`` = ``dim``, the
    features')."""
    stats = {}
    stats_scp = ScpReader(data.path / "cmvn.scp", rxfiles=data.table("cmvn.scp"), allow_nonfinite=True)  # said below
    again = f"make them again: 'flowaccent cmvn {data.path}'"
    for spk, matrix in stats_scp:  # a clear error without it
        where = f"{data.path / 'cmvn.scp'}: speaker '{spk}'"
        check_matrix(matrix, where, allow_nonfinite=True)
        if not np.isfinite(matrix).all():
            row = int(np.argwhere(~np.isfinite(matrix))[0, 0])
            raise FeatureError(f"{where}: NaN or inf in the CMVN stats (row {row}); {again}")
        if matrix.shape[0] != 2 or matrix[0, -1] < 1:
            what = "no frames counted" if matrix.shape[0] == 2 else f"shape {matrix.shape}, Kaldi's is (2, D + 1)"
            raise FeatureError(f"{where}: not Kaldi CMVN stats ({what}: count {matrix[0, -1]}); {again}")
        if dim is not None and matrix.shape[1] != dim + 1:
            raise FeatureError(f"{where}: stats of dim {matrix.shape[1] - 1} for features of dim {dim}")
        stats[spk] = matrix.astype(np.float64)
    return stats


def check_dims(
    sets: Mapping[str, DataDir], dim: int, command: str, with_cmvn: bool = False, made: int | None = None
) -> None:
    r"""Refuses a set (name -> data dir) whose first matrix of ``feats.scp`` is not of ``dim``, the model's (a corpus
    of other features: 80 filterbanks, MFCCs), or ``with_cmvn``, whose first speaker's stats in ``cmvn.scp`` are
    not of ``dim + 1`` columns, before any work (``command`` names it): it was said when the set's turn came, after
    the sets before it had been scored. One utterance and one speaker of each set are read; the others are checked
    as they are read. ``made``: the dim of the frames the model's pipeline makes of ``dim`` (deltas, splicing),
    said where it is not ``dim``: 440-d arks spliced already, for a model of 40-d stored features, were said to be
    of 'dim 440, expected 40' alone."""
    for name, data in sets.items():
        utt, rxfile = next(iter(data.table("feats.scp").items()))
        where = f"{command}: set {name}: {data.path / 'feats.scp'}: utterance '{utt}'"
        matrix = read_matrix(rxfile, utt, str(data.path / "feats.scp"))
        got = matrix.shape[1] if matrix.ndim == 2 else None
        if got is not None and got != dim and made is not None and made != dim:
            already = " (already spliced or given deltas? give the features before splice-feats or add-deltas)"
            raise FeatureError(f"{where}: features have dim {got}, expected {dim}: the model takes {dim}-d stored "
                               f"features and makes its {made}-d frames of them itself{already * (got == made)}")
        check_matrix(matrix, where, dim, allow_nonfinite=True)
        if with_cmvn:
            spk = data.utt2spk[utt]
            stats = read_matrix(data.table("cmvn.scp")[spk], spk, str(data.path / "cmvn.scp"))
            if stats.ndim != 2 or stats.shape[1] != dim + 1:
                raise FeatureError(f"{command}: set {name}: {data.path / 'cmvn.scp'}: speaker '{spk}': stats of shape "
                                   f"{stats.shape} for features of dim {dim} (Kaldi's: (2, {dim + 1}))")
