r"""``make_cmvn`` and ``flowaccent cmvn`` (Kaldi's ``steps/compute_cmvn_stats.sh``): per-speaker stats of a data
dir's features, against Kaldi's formula and ``fbank``'s stats, written atomically under a name of their own."""

from __future__ import annotations

import fcntl
import os
import shutil

import numpy as np
import pytest

from flowaccent.cli.main import main
from flowaccent.data import ArkWriter, read_table, subset_data_dir, validate_data_dir
from flowaccent.data.kaldi_io import RandomAccessReader, ScpReader
from flowaccent.errors import ConfigError, DataDirError, FeatureError, KaldiIOError
from flowaccent.features.make_cmvn import make_cmvn


def stats_of(d):
    return dict(ScpReader(d / "cmvn.scp"))


def files(d):
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture
def feats_dir(tmp_path, rng):
    r"""A data dir of Kaldi features without cmvn.scp: speaker a (two utterances), speaker b (one), dim 5."""
    d = tmp_path / "mine"
    d.mkdir()
    mats = {"a-1": rng.normal(3, 2, (7, 5)), "a-2": rng.normal(-1, 1, (4, 5)), "b-1": rng.normal(0, 5, (9, 5))}
    with ArkWriter(d / "feats.ark", d / "feats.scp") as writer:
        for utt, mat in mats.items():
            writer.write(utt, mat.astype(np.float32))
    (d / "utt2spk").write_text("a-1 a\na-2 a\nb-1 b\n")
    (d / "spk2utt").write_text("a a-1 a-2\nb b-1\n")
    return d, {utt: mat.astype(np.float32) for utt, mat in mats.items()}


def test_kaldis_formula_summed_over_each_speakers_utterances(feats_dir):
    d, mats = feats_dir
    (d / "cmvn.scp").write_text("a-1 gone.ark:1\na-2 gone.ark:2\nb-1 gone.ark:3\n")  # compute-cmvn-stats without
    assert [p for p in validate_data_dir(d) if f"'flowaccent cmvn {d}' does" in p]  # --spk2utt: by utterance
    (d / "text").write_text("a-1 only one\n")  # tables it does not read are not checked (validate lists them)
    (d / "wav.scp").write_text("a-1 x.wav\n")
    summary = make_cmvn(d, quiet=True)
    assert (summary.speakers, summary.utterances, summary.frames, summary.dim) == (2, 3, 20, 5)
    stats = stats_of(d)
    for spk, utts in {"a": ["a-1", "a-2"], "b": ["b-1"]}.items():
        x = np.concatenate([mats[u] for u in utts]).astype(np.float64)
        expected = np.zeros((2, 6))
        expected[0, :5], expected[1, :5], expected[0, 5] = x.sum(0), (x * x).sum(0), len(x)
        assert stats[spk].dtype == np.float64
        np.testing.assert_allclose(stats[spk], expected, rtol=1e-12)
    assert summary.ark.parent == d / "data" and summary.ark.name.startswith("cmvn_mine.")
    assert sorted(p.split(": ")[0] for p in validate_data_dir(d)) == [str(d / "text"), str(d / "wav.scp")]
    before = files(d)
    assert make_cmvn(d, quiet=True).ark == summary.ark and files(d) == before  # the same stats, the same file


def test_the_stats_fbank_writes(wav_data_dir):
    r"""On fbank's features: fbank's own stats, to the bit; and the dir stays valid (fbank's one-run check, which
    compares the run tags in ark names, does not take this ark for one of another fbank run)."""
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0
    theirs = stats_of(wav_data_dir)
    make_cmvn(wav_data_dir, quiet=True)
    ours = stats_of(wav_data_dir)
    assert list(ours) == list(theirs) and all(np.array_equal(ours[s], theirs[s]) for s in ours)
    assert read_table(wav_data_dir / "cmvn.scp") != {}
    assert main(["validate", str(wav_data_dir), "--read-feats"]) == 0
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0  # fbank's stats again; this ark left alone
    assert len(list((wav_data_dir / "data").glob("cmvn_data.*.ark"))) == 2


def test_new_stats_never_replace_an_ark_a_subset_points_at(feats_dir, tmp_path):
    d, mats = feats_dir
    first = make_cmvn(d, quiet=True).ark
    subset_data_dir(d, tmp_path / "sub", ["b-1"])
    old_b = stats_of(tmp_path / "sub")["b"]
    (d / "utt2spk").write_text("a-1 a\na-2 b\nb-1 b\n")  # a-2 was b's: other stats, at other offsets
    (d / "spk2utt").write_text("a a-1\nb a-2 b-1\n")
    second = make_cmvn(d, quiet=True).ark
    assert second != first and first.exists()
    assert np.array_equal(stats_of(tmp_path / "sub")["b"], old_b)
    assert stats_of(d)["b"][0, -1] == 13
    (d / "utt2spk").write_text("a-1 a\na-2 bb\nb-1 bb\n")  # the same stats of a speaker of another name
    (d / "spk2utt").write_text("a a-1\nbb a-2 b-1\n")
    assert make_cmvn(d, quiet=True).ark not in (first, second) and second.exists()


def test_what_cannot_be_read_writes_nothing(feats_dir):
    d, mats = feats_dir
    bare = d.parent / "bare"
    bare.mkdir()
    for table in ("utt2spk", "spk2utt"):
        shutil.copy(d / table, bare / table)
    with pytest.raises(DataDirError, match="bare/feats.scp: required but missing"):
        make_cmvn(bare)
    lines = (d / "feats.scp").read_text().splitlines()
    with ArkWriter(d / "other.ark", d / "other.scp") as writer:
        writer.write("b-1", np.ones((3, 4), np.float32))
        writer.write("nan", np.full((3, 5), np.nan, np.float32))
    other = dict(line.split(" ", 1) for line in (d / "other.scp").read_text().splitlines())
    before = files(d)
    for rxfile, error, message in [
        (other["b-1"], FeatureError, r"utterance 'b-1': features have dim 4, expected 5"),
        (other["nan"], FeatureError, r"utterance 'b-1': NaN or inf"),
        (f"{d / 'gone.ark'}:3", KaldiIOError, "gone.ark' does not exist"),
    ]:
        (d / "feats.scp").write_text(f"{lines[0]}\n{lines[1]}\nb-1 {rxfile}\n")
        with pytest.raises(error, match=message):
            make_cmvn(d, quiet=True)
        assert files(d) == before | {"feats.scp": (d / "feats.scp").read_bytes()}  # no lock file left either
    (d / "feats.scp").write_text("\n".join(lines) + "\n")
    (d / "utt2num_frames").write_text("a-1 7\na-2 5\nb-1 9\n")
    with pytest.raises(FeatureError, match="utterance 'a-2': 4 frames, but utt2num_frames says 5"):
        make_cmvn(d, quiet=True)
    assert not (d / "cmvn.scp").exists()


def test_refused_while_another_command_writes_the_dir(feats_dir):
    d, _ = feats_dir
    held = os.open(d / ".fbank.lock", os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ConfigError, match="being written by another flowaccent fbank, fixdir or cmvn now"):
            make_cmvn(d, quiet=True)
    finally:
        os.close(held)
    assert not (d / "cmvn.scp").exists()


def test_the_command_says_what_it_wrote(feats_dir, tmp_path, capsys):
    r"""Kaldi's features without utt2num_frames and cmvn.scp, which train needs: fixdir, then cmvn, makes them."""
    d, _ = feats_dir
    assert main(["fixdir", str(d)]) == 0
    assert main(["train", str(d), "--exp", str(tmp_path / "exp"), "--check"]) == 1
    assert capsys.readouterr().err.endswith(f"flowaccent train: error: {d / 'cmvn.scp'}: required but missing (make "
                                            f"it from feats.scp with 'flowaccent cmvn {d}' or Kaldi's "
                                            "steps/compute_cmvn_stats.sh)\n")
    assert main(["cmvn", str(d), "--quiet"]) == 0
    ark = next((d / "data").glob("cmvn_mine.*.ark"))
    err = capsys.readouterr().err
    assert err.startswith(f"cmvn: {d}: stats of 2 speaker(s), 3 utterance(s), 20 frames of dim 5 in ")
    assert err.endswith(f" s ({ark})\n")
    with RandomAccessReader(d / "cmvn.scp") as reader:
        assert reader["b"].shape == (2, 6)
    assert main(["train", str(d), "--exp", str(tmp_path / "exp"), "--check"]) == 0
    assert capsys.readouterr().err.endswith("would start a new run\n")
    assert main(["cmvn", str(d / "nope")]) == 1
    assert capsys.readouterr().err.startswith(f"flowaccent cmvn: error: {d / 'nope'}: no such directory")
