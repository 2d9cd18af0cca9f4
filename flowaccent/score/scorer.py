r"""Scoring one data dir with a trained flow: per-utterance table, per-frame ark, latent sample.

Streams utterances, scores them in batches of about ``batch_frames`` frames and writes as
it goes: memory stays flat whatever the corpus size (one batch, the latent reservoir and
one mean latent per utterance).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from flowaccent.data.atomic import write_errors_named
from flowaccent.data.datadir import UNUSED_BY_MODELS, DataDir, load_data_dir
from flowaccent.data.kaldi_io import ArkWriter
from flowaccent.data.prefetch import prefetch, resolve_depth
from flowaccent.data.stream import Utterance, iter_utterances
from flowaccent.errors import ConfigError, FeatureError
from flowaccent.flows.packed import packed_inference, padded_rows
from flowaccent.model import FlowModel
from flowaccent.progress import progress_bar
from flowaccent.runtime import check_precision, compute_precision, resolve_device
from flowaccent.score.config import ScoreConfig
from flowaccent.score.tables import COLUMNS, write_tsv
from flowaccent.transfer import HostCopy, pinned, to_device


@dataclasses.dataclass
class SetScores:
    r"""What scoring a set produced, beyond the files: utterance means and the latent sample."""

    name: str
    utts: list[str]
    num_frames: np.ndarray
    utt_table: dict[str, np.ndarray]
    latent_means: np.ndarray
    latents: np.ndarray
    latent_utts: np.ndarray


class Reservoir:
    r"""A uniform random sample of at most ``size`` rows from a stream (Vitter's algorithm R).

    Row ``i`` of the stream (``i >= size``) replaces a slot drawn from ``0..i`` when that is below
    ``size``; the draws come from the seeded generator row by row, so the sample does not depend
    on how the stream is cut into calls of :meth:`add` (tested). Its arrays grow with the rows seen, up to
    ``size``: a ``--max-latents`` of 10**8 reserved 45 GB before the first row (a traceback), 3*10**7 took 500 MB
    for a set of 1,764 frames."""

    def __init__(self, size: int, dim: int, seed: int):
        self.rows = np.zeros((min(size, 4096), dim), np.float32)
        self.tags = np.empty(len(self.rows), dtype=object)
        self.seen, self.size = 0, size
        self.rng = np.random.default_rng(seed)

    def _grow(self, rows: int) -> None:
        r"""Room for ``rows`` rows (at most ``size``), doubling."""
        if rows > len(self.rows):
            want = min(self.size, max(rows, 2 * len(self.rows)))
            grown = np.zeros((want, self.rows.shape[1]), np.float32)
            grown[: len(self.rows)] = self.rows
            tags = np.empty(want, dtype=object)
            tags[: len(self.tags)] = self.tags
            self.rows, self.tags = grown, tags

    def add(self, rows: np.ndarray, tags: str | np.ndarray) -> None:
        r"""Adds ``rows (N, dim)``, each tagged with ``tags`` (one for all, or ``(N,)``)."""
        n = len(rows)
        tags = np.broadcast_to(np.asarray(tags, dtype=object), (n,))
        self._grow(min(self.size, self.seen + n))
        idx = np.arange(self.seen, self.seen + n)
        fill = idx < self.size
        self.rows[idx[fill]], self.tags[idx[fill]] = rows[fill], tags[fill]
        rest = np.flatnonzero(~fill)
        if len(rest):
            slots = self.rng.integers(0, idx[rest] + 1)
            keep = slots < self.size  # a later row of one call overwrites an earlier one, as in a loop
            self.rows[slots[keep]], self.tags[slots[keep]] = rows[rest[keep]], tags[rest[keep]]
        self.seen += n

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        n = min(self.seen, self.size)
        return self.rows[:n].copy(), self.tags[:n].astype(str)


def native_index(model: FlowModel, name: str = "") -> int:
    r"""Index of the class whose ``llr`` is reported."""
    names = model.class_names
    wanted = name or ("native" if "native" in names else names[0])
    if wanted not in names:
        raise ConfigError(f"score: class '{wanted}' is not one of the model's classes {', '.join(names)}")
    return names.index(wanted)


@torch.no_grad()
def score_dir(
    model: FlowModel, data: DataDir | str | Path, name: str, out_dir: str | Path, config: ScoreConfig = ScoreConfig(),
    quiet: bool = False,
) -> SetScores:
    r"""Scores every utterance of ``data`` (a :class:`DataDir`, or its path) into ``out_dir`` (``utt_scores.tsv``,
    ``frame_scores.{ark,scp}``, ``latents.npy``, ``latent_utts.txt``, ``utt_latent_means.npy``); returns the
    per-utterance values.
    """
    if not isinstance(model, FlowModel):
        raise ConfigError(f"score: model is a FlowModel (load_model(path)), got {type(model).__name__}")
    if not isinstance(config, ScoreConfig):
        raise ConfigError(f"score: config is a ScoreConfig, got {type(config).__name__}")
    if not isinstance(data, DataDir):  # a path: 'str' object has no attribute 'utts'
        need = ("feats.scp",) + (("cmvn.scp",) if model.pipeline.config.cmvn == "spk" else ())  # as score's
        data = load_data_dir(data, require=need, unused=UNUSED_BY_MODELS)
    out_dir = Path(out_dir)
    device = resolve_device(config.device, "score")
    check_precision(device, config.precision, "score")
    home, training = next(model.parameters()).device, model.training
    model.eval().to(device)
    try:
        return _score_dir(model, data, name, out_dir, config, quiet, device)
    finally:
        model.to(home).train(training)  # the caller's model as it was


def _score_dir(
    model: FlowModel, data: DataDir, name: str, out_dir: Path, config: ScoreConfig, quiet: bool, device: torch.device
) -> SetScores:
    with_llr = len(model.class_names) > 1
    native = native_index(model, config.native_class)  # checked for a one-class model too (it has no llr)
    columns = list(COLUMNS) + (["llr"] if with_llr else [])
    rows: dict[str, list] = {c: [] for c in columns}
    total = len(data.utts)
    latent_means = np.zeros((total, model.dim), np.float32)  # filled batch by batch: never held twice
    done = 0
    reservoir = Reservoir(config.max_latents, model.dim, config.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    utterances = iter_utterances(data, model.pipeline.input_dim, model.pipeline.config.cmvn == "spk")
    with (
        ArkWriter(out_dir / "frame_scores.ark", out_dir / "frame_scores.scp") as ark,
        progress_bar(total=total, unit="utt", desc=f"score {name}", disable=quiet) as bar,
        packed_inference(model),  # the weights stay fixed while scoring
    ):
        for pending, batch in _scored(model, utterances, config, native if with_llr else None, device):
            means = _add_batch(pending, batch, rows, ark, reservoir, f"set {name} ({data.path / 'feats.scp'})")
            latent_means[done : done + len(means)] = means
            done += len(means)
            bar.update(len(pending))
    write_tsv(out_dir / "utt_scores.tsv", rows, data.utt2score() if data.has("utt2score") else None)
    latents, latent_utts = reservoir.sample()
    save_npy(out_dir / "latents.npy", latents)
    (out_dir / "latent_utts.txt").write_text("".join(f"{u}\n" for u in latent_utts))
    table = {c: np.asarray(rows[c], np.float64) for c in columns if c not in ("utt", "spk")}
    latent_means = latent_means[:done]  # every utterance (iter_utterances skips none: it raises)
    save_npy(out_dir / "utt_latent_means.npy", latent_means)  # summary.json's regressions are fitted on them
    return SetScores(name, rows["utt"], table["num_frames"].astype(int), table, latent_means, latents, latent_utts)


def save_npy(path: Path, array: np.ndarray) -> None:
    with write_errors_named(path):  # numpy's short write on a full disk names no file
        np.save(path, array)


def _add_batch(
    pending: list[tuple[Utterance, int]], batch: dict[str, np.ndarray], rows: dict[str, list], ark: ArkWriter,
    reservoir: Reservoir, where: str = "",
) -> np.ndarray:
    r"""Records a scored batch: a row per utterance in ``rows``, its frames' ``[log_p, log_det]`` in the
    ark, its frames' ``z`` offered to the latent sample; returns the utterances' mean ``z`` ``(U, D)``.
    A score that is not finite (features or CMVN stats far outside what the model saw: a value of 3e38
    gave NaN, a CMVN sum of 1e30 gave -inf) is a :class:`FeatureError` naming the utterance (``where``:
    its set)."""
    counts = np.array([frames for _, frames in pending])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    per_frame = np.stack([batch["log_p"], batch["log_det"]], axis=1)  # (N, 2) float32, as the ark keeps it
    log_p, log_det = per_frame[:, 0].astype(np.float64), per_frame[:, 1].astype(np.float64)
    log_ll = utterance_means(log_p + log_det, starts, counts)
    values = {"num_frames": counts, "log_ll": log_ll, "log_p": utterance_means(log_p, starts, counts),
              "log_det": utterance_means(log_det, starts, counts), "nll": -log_ll}
    if "llr" in rows:
        values["llr"] = utterance_means(batch["llr"], starts, counts)
    for column in [c for c in ("log_ll", "llr") if c in values]:
        bad = np.flatnonzero(~np.isfinite(values[column]))
        if len(bad):
            utt = pending[bad[0]][0]
            largest = float(np.abs(utt.feats).max()) if utt.feats.size else 0.0
            raise FeatureError(
                f"{where}: utterance '{utt.utt}': {column} is {values[column][bad[0]]} ({len(bad)} such utterance(s) "
                f"in this batch): its features (largest |value| {largest:.3g}) or its speaker's CMVN stats are far "
                "outside what the model can score"
            )
    utts = [utt.utt for utt, _ in pending]
    rows["utt"] += utts
    rows["spk"] += [utt.spk for utt, _ in pending]
    for column, per_utt in values.items():
        rows[column] += per_utt.tolist()
    for utt, start, count in zip(utts, starts, counts):
        ark.write(utt, per_frame[start : start + count])
    reservoir.add(batch["z"], np.repeat(np.array(utts, dtype=object), counts))
    # numpy's mean of each block of rows (as before: the same float32 values); reduceat along rows was slower
    return np.stack([batch["z"][start : start + count].mean(0) for start, count in zip(starts, counts)])


def utterance_means(values: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    r"""Means of consecutive runs of ``values (N,)``: run ``i`` starts at ``starts[i]`` and has
    ``counts[i] >= 1`` values; summed in float64, ``(len(starts),)``."""
    return np.add.reduceat(values, starts, dtype=np.float64) / counts


def _scored(
    model: FlowModel, utterances: Iterator[Utterance], config: ScoreConfig, native: int | None, device: torch.device
) -> Iterator[tuple[list[tuple[Utterance, int]], dict[str, np.ndarray]]]:
    r"""Yields batches of utterances ``[(utterance, frames)]`` with their frames' ``z (N, D)``, ``log_p``,
    ``log_det`` (and ``llr``) ``(N,)``, float32 numpy, in order; the batches are read and featurised
    ahead in a thread where ``config.prefetch`` says so. Each batch's results are read once the next
    batch has been launched, so a GPU computes one while the host records the other."""
    depth = resolve_depth(config.prefetch, device)
    batches = pinned(_feature_batches(model, utterances, config.batch_frames), device)  # in the thread, if any
    with prefetch(batches, depth) as batches:
        launched = None
        for pending, x in batches:
            scored = _run_batch(model, x, native, device, config.precision, config.batch_frames)
            previous, launched = launched, (pending, scored)
            if previous is not None:
                yield previous[0], _numpy(previous[1])
        if launched is not None:
            yield launched[0], _numpy(launched[1])


def _numpy(copy: HostCopy) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in copy.get().items()}


def _feature_batches(
    model: FlowModel, utterances: Iterator[Utterance], batch_frames: int
) -> Iterator[tuple[list[tuple[Utterance, int]], torch.Tensor]]:
    r"""Utterances grouped into batches of about ``batch_frames`` frames: ``([(utterance, frames)],
    x (N, D) float32)``, ``x`` their pipeline frames (CMVN/deltas/splicing) joined in order (a flow of float64
    weights takes them in its own dtype: :meth:`FlowModel.forward`)."""
    pending: list[tuple[Utterance, int]] = []
    parts: list[torch.Tensor] = []
    held = 0
    for utt in utterances:
        x = model.pipeline.unstandardized(torch.from_numpy(utt.feats), utt.cmvn_stats).float()
        pending.append((utt, len(x)))
        parts.append(x)
        held += len(x)
        if held >= batch_frames:
            yield pending, _joined(parts)
            pending, parts, held = [], [], 0
    if pending:
        yield pending, _joined(parts)


def _joined(parts: list[torch.Tensor]) -> torch.Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts)  # a long utterance alone: no copy of it


def _run_batch(
    model: FlowModel, x: torch.Tensor, native: int | None, device: torch.device, precision: str,
    batch_frames: int | None = None,
) -> HostCopy:
    r"""The flow's ``z``, ``log_p``, ``log_det`` (and the ``llr`` of class ``native``) of ``x (N, D)``,
    float32, on their way to the host. A batch of twice ``batch_frames`` or more (an utterance longer than a
    batch) goes through the flow in parts of ``batch_frames``: its activations took memory in proportion to the
    utterance (2.6 GB for one of 200k frames, a 440-d model of hidden 512); its features and results still do."""
    x = to_device(x, device)
    if not batch_frames or len(x) < 2 * batch_frames:
        return HostCopy(_scored_part(model, x, native, device, precision))
    joined: dict[str, torch.Tensor] = {}
    for start in range(0, len(x), batch_frames):
        part = _scored_part(model, x[start : start + batch_frames], native, device, precision)
        for k, v in part.items():
            joined.setdefault(k, v.new_empty((len(x), *v.shape[1:])))[start : start + len(v)] = v
    return HostCopy(joined)


def _scored_part(model: FlowModel, x: torch.Tensor, native: int | None, device: torch.device, precision: str):
    with compute_precision(device, precision):
        out = model(padded_rows(x)[0])  # a batch of any size: RSS grew with each new one (oneDNN's kernels)
    result = {"z": out.z[: len(x)], "log_p": out.log_p[: len(x)], "log_det": out.log_det[: len(x)]}
    if native is not None:
        per_class = model.prior.class_log_probs(result["z"])
        others = torch.cat([per_class[:, :native], per_class[:, native + 1 :]], dim=1)
        result["llr"] = per_class[:, native] - (torch.logsumexp(others, 1) - math.log(others.shape[1]))
    return {k: v.float() for k, v in result.items()}
