r"""Training frames: utterances of several data dirs (one class each), shuffled through a bounded buffer."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import zlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from flowaccent.data.datadir import DataDir
from flowaccent.data.kaldi_io import RandomAccessReader
from flowaccent.data.stream import load_cmvn_stats
from flowaccent.errors import DataDirError
from flowaccent.features.pipeline import FeaturePipeline


@dataclasses.dataclass(frozen=True, slots=True)
class UttRef:
    r"""One utterance: which source, its id, speaker, class label and frame count (slots: one per utterance of the
    data, 72 bytes each and no dict of its own)."""

    source: int
    utt: str
    spk: str
    label: int
    num_frames: int


class FrameSource:
    r"""Reads the features of the utterances of several data dirs, with their speakers' CMVN stats."""

    def __init__(self, dirs: Sequence[DataDir], input_dim: int, with_cmvn: bool = True):
        self.dirs = list(dirs)
        self.readers = [RandomAccessReader(d.path / "feats.scp", input_dim, rxfiles=d.table("feats.scp"))
                        for d in self.dirs]
        for d, reader in zip(self.dirs, self.readers):  # a dir's features of another dim before its stats
            reader[d.utts[0]]
        self.cmvn = [load_cmvn_stats(d, input_dim) if with_cmvn and d.has("cmvn.scp") else {} for d in self.dirs]

    def feats(self, ref: UttRef) -> tuple[np.ndarray, np.ndarray | None]:
        r"""Stored features ``(T, D)`` and the speaker's stats of ``ref``."""
        feats = self.readers[ref.source][ref.utt]
        if feats.shape[0] != ref.num_frames:
            where = f"{self.dirs[ref.source].path / 'feats.scp'}: utterance '{ref.utt}'"
            raise DataDirError(f"{where}: {feats.shape[0]} frames, but utt2num_frames says {ref.num_frames}")
        return feats, self.cmvn[ref.source].get(ref.spk)

    def twin(self) -> FrameSource:
        r"""The same utterances and stats through readers with their own open files, for reading in
        another thread at the same time (:meth:`RandomAccessReader.twin`)."""
        twin = copy.copy(self)
        twin.readers = [reader.twin() for reader in self.readers]
        return twin

    def close(self) -> None:
        for reader in self.readers:
            reader.close()


def utterance_refs(dirs: Sequence[DataDir], utt_labels: Sequence[dict[str, int]]) -> list[UttRef]:
    r"""Every utterance of ``dirs`` with its class label (``utt_labels[i][utt]``); needs ``utt2num_frames``."""
    refs = []
    for i, (data, labels) in enumerate(zip(dirs, utt_labels)):
        frames = data.utt2num_frames()
        refs += [UttRef(i, utt, data.utt2spk[utt], labels[utt], frames[utt]) for utt in data.utts]
    return refs


def standardization_sample(refs: Sequence[UttRef], max_utts: int) -> list[UttRef]:
    r"""The utterances the standardisation is fitted on: at most ``max_utts``, evenly spaced in ``refs`` (a step
    of ``len // max_utts`` took up to about twice as many)."""
    return list(refs[:: max(1, -(-len(refs) // max_utts))])


def held_out(key: str, fraction: float) -> bool:
    r"""Whether the utterance (or speaker) ``key`` is in the validation share ``fraction``
    (``train.valid_fraction``, ``train.valid_by``): a hash of its id, so the same utterances whatever the data
    dirs' order (the GMM baseline leaves them out too)."""
    return zlib.crc32(key.encode()) % 10_000 < int(fraction * 10_000)


def validation_key(utt: str, spk: str, by: str) -> str:
    r"""What :func:`held_out` hashes for ``train.valid_by`` = ``by``: the speaker's id or the utterance's."""
    return spk if by == "speaker" else utt


def split_valid(refs: list[UttRef], fraction: float, by: str = "utterance") -> tuple[list[UttRef], list[UttRef]]:
    r"""Deterministic held-out split by a hash of the utterance id, or of the speaker id with ``by="speaker"``
    (:func:`held_out`): ``(train, valid)``."""
    if fraction <= 0:
        return refs, []
    valid = [r for r in refs if held_out(validation_key(r.utt, r.spk, by), fraction)]
    chosen = {id(r) for r in valid}
    return [r for r in refs if id(r) not in chosen], valid


class FrameStream:
    r"""Shuffled batches of pipeline frames ``(B, D)`` and labels ``(B,)``, memory bounded.

    Each epoch the utterance order is a permutation seeded by ``(seed, epoch)``, the
    same in every process; process ``rank`` of ``world`` takes every ``world``-th
    utterance. Frames go through the pipeline (without standardisation) into a
    buffer of about ``buffer_frames`` frames, which is shuffled and cut into batches.

    Arguments:
        source: reads utterances.
        refs: the utterances to stream.
        pipeline: CMVN/deltas/splicing (standardisation happens in the model).
        batch_size: frames per batch for this process.
        buffer_frames: shuffling buffer size.
        seed: base seed.
        rank, world: this process and the number of processes.
    """

    def __init__(
        self,
        source: FrameSource,
        refs: Sequence[UttRef],
        pipeline: FeaturePipeline,
        batch_size: int,
        buffer_frames: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
    ):
        self.source, self.refs, self.pipeline = source, list(refs), pipeline
        self.batch_size, self.buffer_frames = batch_size, max(buffer_frames, batch_size)
        self.seed, self.rank, self.world = seed, rank, world

    @property
    def burst(self) -> int:
        r"""About the most batches one filling of the buffer yields at once (it is cut once it holds
        ``buffer_frames`` frames, so it holds up to one utterance and a partial batch more; an
        utterance longer than a batch adds more): what a prefetching queue must hold for the next
        filling to start early (flowaccent.data.prefetch.resolve_depth)."""
        return self.buffer_frames // self.batch_size + 2

    def shard(self, epoch: int) -> list[UttRef]:
        r"""This process's utterances for ``epoch``, in streaming order."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.refs))
        return [self.refs[i] for i in order[self.rank :: self.world]]

    def num_frames(self, epoch: int = 0) -> int:
        return sum(r.num_frames for r in self.shard(epoch))

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        r"""Yields ``(frames (B, D) float32, labels (B,) int64)``; the last batch may be short.

        Each filling of the buffer (what is left of the last one, then utterances until it holds
        ``buffer_frames``) is permuted and cut into batches; what does not fill a batch stays for
        the next filling. The frame counts of ``utt2num_frames`` size the buffer before it is read,
        so each utterance's frames are written into it once, and each batch is gathered from it as
        it is taken (no shuffled copy of the whole buffer)."""
        rng = np.random.default_rng([self.seed, epoch, self.rank, 1])
        refs = self.shard(epoch)
        rest_x = torch.empty(0, self.pipeline.output_dim)
        rest_y = torch.empty(0, dtype=torch.long)
        space = (torch.empty(0, self.pipeline.output_dim), torch.empty(0, dtype=torch.long))
        start = 0
        while start < len(refs) or len(rest_x):
            end, held = start, len(rest_x)
            while end < len(refs) and held < self.buffer_frames:
                held += refs[end].num_frames
                end += 1
            if held > len(space[0]):  # the batches and the rest are copies: the buffer is reused
                space = (torch.empty(held, self.pipeline.output_dim), torch.empty(held, dtype=torch.long))
            x, y = space[0][:held], space[1][:held]
            self._fill(refs[start:end], rest_x, rest_y, x, y)
            start = end
            perm = torch.from_numpy(rng.permutation(held))
            cut = held - held % self.batch_size if held >= self.buffer_frames else held
            for i in range(0, cut, self.batch_size):
                take = perm[i : i + self.batch_size]
                yield x.index_select(0, take), y.index_select(0, take)
            rest_x, rest_y = x.index_select(0, perm[cut:]), y.index_select(0, perm[cut:])

    def epochs(
        self, plan: Sequence[tuple[int, int]], skip: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor] | None]:
        r"""The batches of several epochs in one iterator, each epoch's followed by ``None``: for each
        ``(epoch, steps)`` of ``plan`` the first ``steps`` batches of :meth:`epoch`, leaving out the
        first ``skip`` of the first epoch (resuming inside it; the stream replays the same batches).

        One iterator for the whole run lets a prefetching thread go on into the next epoch while
        the consumer finishes this one, validates and writes checkpoints, so the next epoch's first
        filling of the buffer (most of an epoch on a small corpus) is ready when its first step
        starts, instead of being loaded while the steps wait. Each epoch's generator is closed
        before the next one starts (its buffer is freed first)."""
        for n, (epoch, steps) in enumerate(plan):
            if n or skip < steps:  # (a resume after all of an epoch's steps only validates it)
                with contextlib.closing(self.epoch(epoch)) as batches:
                    yield from itertools.islice(batches, 0 if n else skip, steps)
            yield None

    def _fill(self, refs: Sequence[UttRef], rest_x: torch.Tensor, rest_y: torch.Tensor, x: torch.Tensor,
              y: torch.Tensor) -> None:
        r"""Fills the buffer ``x (N, D)`` and its labels ``y (N,)`` in place: ``rest_x`` first, then the
        frames of ``refs``."""
        at = len(rest_x)
        x[:at], y[:at] = rest_x, rest_y
        for ref in refs:
            x[at : at + ref.num_frames] = self.frames_of(ref)  # FrameSource checked the count
            y[at : at + ref.num_frames] = ref.label
            at += ref.num_frames

    def joined(self, batch_frames: int, share: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        r"""The utterances in order, whole, joined into batches ``(frames (N, D) float32, labels (N,)
        int64)`` of at least ``batch_frames`` frames (the last one may hold fewer): for sums over
        all utterances, such as the validation NLL, one forward per batch instead of one per
        utterance (on a GPU each forward of a short utterance costs its kernels' launches). With
        ``share``, this process's utterances alone: every ``world``-th, from the ``rank``-th."""
        xs, ys, held = [], [], 0
        for ref in self.refs[self.rank :: self.world] if share else self.refs:
            xs.append(self.frames_of(ref))
            ys.append(torch.full((ref.num_frames,), ref.label, dtype=torch.long))
            held += ref.num_frames
            if held >= batch_frames:
                yield torch.cat(xs), torch.cat(ys)
                xs, ys, held = [], [], 0
        if xs:
            yield torch.cat(xs), torch.cat(ys)

    @torch.no_grad()
    def frames_of(self, ref: UttRef) -> torch.Tensor:
        r"""Pipeline frames ``(T, D)`` float32 of one utterance (without standardisation)."""
        feats, stats = self.source.feats(ref)
        return self.pipeline.unstandardized(torch.from_numpy(feats), stats).float()

