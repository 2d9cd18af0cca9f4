r"""The training stream: the batches are the fillings of its buffer, permuted, bit for bit."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from flowaccent.data import ArkWriter, load_data_dir, write_spk2utt, write_table
from flowaccent.features import FeaturePipeline, FeaturePipelineConfig
from flowaccent.train.frames import FrameSource, FrameStream, utterance_refs

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_loading import reference_epoch  # noqa: E402  the stream as first written (and timed against)


def write_uneven_dir(path: Path, lengths: list[int], dim: int = 3, seed: int = 0) -> Path:
    r"""A data dir of utterances with the given frame counts (feats.scp, utt2num_frames, utt2spk)."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    utt2spk = {}
    with ArkWriter(path / "feats.ark", path / "feats.scp") as writer:
        for i, frames in enumerate(lengths):
            utt = f"s{i % 3}-{i:04d}"
            writer.write(utt, rng.standard_normal((frames, dim)).astype(np.float32))
            utt2spk[utt] = f"s{i % 3}"
    lines = (path / "feats.scp").read_text().splitlines()
    write_table(path / "feats.scp", dict(line.split(" ", 1) for line in lines))
    write_table(path / "utt2spk", utt2spk)
    write_spk2utt(path / "spk2utt", utt2spk)
    write_table(path / "utt2num_frames", {u: n for u, n in zip(utt2spk, lengths)})
    return path


@pytest.mark.parametrize(
    "batch, buffer, world",
    [(7, 40, 1), (16, 16, 1), (5, 3, 1), (64, 1000, 1), (9, 50, 2)],  # buffer < one utterance; > the corpus
)
def test_the_stream_yields_the_reference_batches_bit_for_bit(tmp_path, batch, buffer, world):
    lengths = [int(n) for n in np.random.default_rng(1).integers(1, 30, size=23)]
    dirs = [load_data_dir(write_uneven_dir(tmp_path / "a", lengths, seed=0)),
            load_data_dir(write_uneven_dir(tmp_path / "b", lengths[::-1], seed=1))]
    source = FrameSource(dirs, 3)
    try:
        refs = utterance_refs(dirs, [dict.fromkeys(d.utts, i) for i, d in enumerate(dirs)])
        pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="utt", deltas=2, standardize=False), 3)
        for rank in range(world):
            stream = FrameStream(source, refs, pipeline, batch, buffer, seed=3, rank=rank, world=world)
            for epoch in (0, 1):
                got, want = list(stream.epoch(epoch)), list(reference_epoch(stream, epoch))
                assert len(got) == len(want) > 0
                for (x, y), (x_ref, y_ref) in zip(got, want):
                    assert x.dtype == torch.float32 and y.dtype == torch.long and x.shape == (len(y), 9)
                    assert torch.equal(x, x_ref) and torch.equal(y, y_ref)
                assert sum(len(y) for _, y in got) == stream.num_frames(epoch)
                assert all(len(y) == batch for _, y in got[:-1])
    finally:
        source.close()


@pytest.mark.parametrize("world", [1, 2, 3])
def test_the_ranks_split_each_epoch_between_them(tmp_path, world):
    r"""Each epoch's utterances go to one rank each, all of them, in another order each epoch, and the ranks'
    batches hold every frame of the corpus once (the reference stream above takes the stream's own shards)."""
    lengths = [int(n) for n in np.random.default_rng(2).integers(1, 30, size=23)]
    data = load_data_dir(write_uneven_dir(tmp_path / "a", lengths))
    source = FrameSource([data], 3)
    try:
        refs = utterance_refs([data], [dict.fromkeys(data.utts, 0)])
        pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="none", deltas=0, standardize=False), 3)
        streams = [FrameStream(source, refs, pipeline, 4, 10, seed=5, rank=r, world=world) for r in range(world)]
        corpus = np.concatenate([source.feats(ref)[0] for ref in refs])
        orders = []
        for epoch in (0, 1):
            shards = [[ref.utt for ref in stream.shard(epoch)] for stream in streams]
            utts = [u for shard in shards for u in shard]
            assert sorted(utts) == sorted(ref.utt for ref in refs) and len(set(utts)) == len(refs)
            assert max(map(len, shards)) - min(map(len, shards)) <= 1
            orders.append(utts)
            frames = torch.cat([x for stream in streams for x, _ in stream.epoch(epoch)]).numpy()
            np.testing.assert_array_equal(np.unique(frames, axis=0), np.unique(corpus, axis=0))
            assert len(frames) == len(corpus)
        assert orders[0] != orders[1]
    finally:
        source.close()


def test_a_stream_of_no_utterances_yields_nothing(tmp_path):
    data = load_data_dir(write_uneven_dir(tmp_path / "a", [4, 5]))
    source = FrameSource([data], 3)
    try:
        pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="none", deltas=0, standardize=False), 3)
        assert list(FrameStream(source, [], pipeline, 4, 8, 0).epoch(0)) == []
    finally:
        source.close()


def test_cmvn_stats_of_another_dim_are_named(tmp_path):
    r"""The training data's CMVN stats are checked against the features' dim, as scoring checks them: training said
    'apply_cmvn: stats are for dim 2, features have dim 3', naming neither file nor speaker."""
    from flowaccent.errors import FeatureError

    path = write_uneven_dir(tmp_path / "a", [4, 5])
    with ArkWriter(path / "cmvn.ark", path / "cmvn.scp") as writer:
        for spk in ("s0", "s1"):
            writer.write(spk, np.array([[1.0, 2.0, 4.0], [1.0, 4.0, 0.0]]))
    data = load_data_dir(path)
    with pytest.raises(FeatureError, match=f"{path / 'cmvn.scp'}: speaker 's0': stats of dim 2 for features of dim 3"):
        FrameSource([data], 3)
    FrameSource([data], 3, with_cmvn=False).close()  # a pipeline without speaker CMVN does not read them
    # a second dir of another dim: its features are named, not its (consistent) stats
    other = write_uneven_dir(tmp_path / "b", [4, 5], dim=2)
    with ArkWriter(other / "cmvn.ark", other / "cmvn.scp") as writer:
        for spk in ("s0", "s1"):
            writer.write(spk, np.array([[1.0, 2.0, 4.0], [1.0, 4.0, 0.0]]))  # right for its own 2-d features
    other = load_data_dir(other)
    with pytest.raises(FeatureError, match=f"{tmp_path / 'b' / 'feats.scp'}.*dim 2, expected 3"):
        FrameSource([load_data_dir(write_uneven_dir(tmp_path / "c", [4])), other], 3)


def test_epochs_chains_the_planned_batches_of_each_epoch_with_an_end_marker(tmp_path, monkeypatch):
    r"""``FrameStream.epochs``: for each ``(epoch, steps)`` the first ``steps`` batches of that epoch
    (the first epoch's first ``skip`` left out), then ``None``; each epoch's generator is closed
    before the next one starts."""
    lengths = [int(n) for n in np.random.default_rng(2).integers(1, 30, size=23)]
    data = load_data_dir(write_uneven_dir(tmp_path / "a", lengths))
    source = FrameSource([data], 3)
    try:
        pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="none", deltas=0, standardize=False), 3)
        stream = FrameStream(source, utterance_refs([data], [dict.fromkeys(data.utts, 0)]), pipeline, 7, 40, 3)
        whole = {e: list(stream.epoch(e)) for e in (2, 3, 4)}
        plan, skip = [(2, 5), (3, 1000), (4, 3)], 2  # steps beyond the epoch's batches: all of them
        want = [*whole[2][skip:5], None, *whole[3], None, *whole[4][:3], None]
        got = list(stream.epochs(plan, skip))
        assert len(got) == len(want) and len(whole[3]) == -(-sum(lengths) // 7)
        for item, expected in zip(got, want):
            assert (item is None) == (expected is None)
            if item is not None:
                assert torch.equal(item[0], expected[0]) and torch.equal(item[1], expected[1])

        events, epoch = [], stream.epoch

        def recorded(e):
            events.append(("start", e))
            try:
                yield from epoch(e)
            finally:
                events.append(("closed", e))

        monkeypatch.setattr(stream, "epoch", recorded)
        list(stream.epochs(plan, skip))
        assert events == [("start", 2), ("closed", 2), ("start", 3), ("closed", 3), ("start", 4), ("closed", 4)]
    finally:
        source.close()


def test_a_twin_source_reads_the_same_frames_through_its_own_files(tmp_path):
    r"""``FrameSource.twin`` (validation reads while the training stream's thread does): same
    frames and stats, separate open files, closing one leaves the other working."""
    data = load_data_dir(write_uneven_dir(tmp_path / "a", [4, 5, 6]))
    source = FrameSource([data], 3)
    twin = source.twin()
    refs = utterance_refs([data], [dict.fromkeys(data.utts, 0)])
    try:
        read = [source.feats(ref)[0] for ref in refs]
        for ref, a in zip(refs, read):
            np.testing.assert_array_equal(twin.feats(ref)[0], a)
        assert source.readers[0]._fds and twin.readers[0]._fds
        assert set(map(id, source.readers[0]._fds.values())).isdisjoint(map(id, twin.readers[0]._fds.values()))
        assert twin.readers[0].rxfiles is source.readers[0].rxfiles is data.table("feats.scp")  # read once, held once
        source.close()
        np.testing.assert_array_equal(twin.feats(refs[1])[0], read[1])
    finally:
        source.close()
        twin.close()


@pytest.mark.parametrize("batch_frames", [1, 25, 60, 10_000])
def test_joined_batches_hold_whole_utterances_in_order(tmp_path, batch_frames):
    r"""``FrameStream.joined`` (validation): every utterance once, whole, in order, with its label;
    each batch but the last holds at least ``batch_frames`` frames and no more utterances than it
    needs for that."""
    lengths = [int(n) for n in np.random.default_rng(3).integers(1, 30, size=17)]
    dirs = [load_data_dir(write_uneven_dir(tmp_path / "a", lengths, seed=0)),
            load_data_dir(write_uneven_dir(tmp_path / "b", lengths[:5], seed=1))]
    source = FrameSource(dirs, 3)
    try:
        refs = utterance_refs(dirs, [dict.fromkeys(d.utts, i) for i, d in enumerate(dirs)])
        pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="utt", deltas=1, standardize=False), 3)
        stream = FrameStream(source, refs, pipeline, 8, 16, seed=0)
        batches = list(stream.joined(batch_frames))
        assert torch.equal(torch.cat([x for x, _ in batches]), torch.cat([stream.frames_of(r) for r in refs]))
        assert torch.equal(torch.cat([y for _, y in batches]),
                           torch.tensor([r.label for r in refs for _ in range(r.num_frames)]))
        at = 0
        for i, (x, y) in enumerate(batches):
            assert x.shape == (len(y), 6) and y.dtype == torch.long
            taken = []
            while sum(taken) < len(x):
                taken.append(refs[at].num_frames)
                at += 1
            assert sum(taken) == len(x)  # whole utterances
            if i < len(batches) - 1:
                assert sum(taken) >= batch_frames > sum(taken[:-1])
        assert at == len(refs)
    finally:
        source.close()


def test_the_standardisation_sample_takes_at_most_max_utts():
    r"""A step of ``len // max_utts`` took every utterance of 3999 for a maximum of 2000; the sample is spread evenly
    over all of ``refs`` (the first ``max_utts`` would fit the standardisation to the first dirs' speakers)."""
    from flowaccent.train.frames import standardization_sample

    for n, most in ((3999, 2000), (2000, 2000), (10, 3), (5, 2000), (4001, 2000)):
        taken = standardization_sample(list(range(n)), most)
        assert len(taken) <= most and taken[0] == 0 and len(taken) >= min(n, most) // 2
        gaps = set(np.diff(taken)) or {1}
        assert len(gaps) == 1 and taken[-1] + gaps.pop() >= n  # one step apart, to within a step of the end
