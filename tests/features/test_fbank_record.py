r"""fbank.json: written by fbank, kept by train, checked by score; resampling up refused unless allowed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flowaccent.cli.main import main
from flowaccent.data import ScpReader, load_data_dir, read_table, read_wav, write_table
from flowaccent.data.rules import utterances_digest
from flowaccent.errors import ConfigError
from flowaccent.features import compute_fbank
from flowaccent.features.fbank_record import differences, training_record

from ..conftest import make_wav_data_dir


def test_fbank_records_its_options_and_the_audio_rates(tmp_path, capsys):
    data = make_wav_data_dir(tmp_path / "a", sample_rate=22050)
    assert main(["fbank", str(data), "--quiet", "--frame-shift-ms", "5"]) == 0
    record = json.loads((data / "fbank.json").read_text())
    assert record["fbank"]["frame_shift_ms"] == 5.0 and record["channel"] == -1
    assert record["source_rates"] == {"22050": 6}
    assert record["feats_scp"] == utterances_digest(read_table(data / "feats.scp"))  # fixdir: utterances added since
    assert "feats_scp" not in training_record([data]) and "run" not in training_record([data])  # not the model's
    assert "fbank: resampled to 16000 Hz: 6 from 22050 Hz" in capsys.readouterr().err


def test_upsampling_is_refused_unless_allowed(tmp_path, capsys):
    data = make_wav_data_dir(tmp_path / "a", sample_rate=8000)
    assert main(["fbank", str(data), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "audio at 8000 Hz, features at sample_frequency 16000 Hz: upsampled, its band above 4000 Hz" in err
    assert err.startswith("flowaccent fbank: error: ") and err.count("fbank:") == 1, err  # the command, once
    assert not (data / "feats.scp").exists()
    assert main(["fbank", str(data), "--quiet", "--allow-upsample", "true"]) == 0
    assert main(["fbank", str(data), "--quiet", "--sample-frequency", "8000"]) == 0  # or features at its own rate
    utt, feats = next(iter(ScpReader(data / "feats.scp")))
    samples, rate = read_wav(load_data_dir(data).table("wav.scp")[utt])
    np.testing.assert_array_equal(feats, compute_fbank(samples, rate, sample_frequency=8000))
    high = make_wav_data_dir(tmp_path / "b", sample_rate=22050)
    assert main(["fbank", str(high), "--quiet", "--allow-downsample", "false"]) == 1
    assert "pass --allow-downsample true, or --sample-frequency 22050" in capsys.readouterr().err


def test_a_training_dir_without_a_record_among_dirs_with_one_is_named(tmp_path, capsys):
    r"""Mixed in silently before, and the model's record then vouched for features nobody checked."""
    a, b = make_wav_data_dir(tmp_path / "a"), make_wav_data_dir(tmp_path / "b", seed=1)
    for data in (a, b):
        assert main(["fbank", str(data), "--quiet"]) == 0
    (b / "fbank.json").unlink()
    capsys.readouterr()
    assert training_record([a, b])["source_rates"] == {"16000": 6}
    assert f"train: warning: {b} has no record of how its features were computed (fbank.json" in \
        capsys.readouterr().err
    training_record([a])
    assert capsys.readouterr().err == ""


def test_training_dirs_must_share_their_options(tmp_path, capsys):
    a, b = make_wav_data_dir(tmp_path / "a"), make_wav_data_dir(tmp_path / "b", seed=1)
    assert main(["fbank", str(a), "--quiet"]) == 0
    assert main(["fbank", str(b), "--quiet", "--frame-shift-ms", "5"]) == 0
    with pytest.raises(ConfigError, match=f"^{b}'s features were computed with frame_shift_ms 5.0 .not 10.0."):
        training_record([a, b])
    exp = tmp_path / "exp"
    capsys.readouterr()
    assert main(["train", "--exp", str(exp), f"native={a}", f"zh={b}", "--quiet"]) == 1
    assert f"flowaccent train: error: {b}'s features were computed with " in capsys.readouterr().err
    assert not any(exp.rglob("*"))  # refused before anything was written (config.yaml, data.txt, log/ before)
    assert main(["train", "--exp", str(exp), f"native={a}", f"zh={b}", "--quiet", "--check"]) == 1  # it said 'would
    assert f"flowaccent train: error: {b}'s features were computed with " in capsys.readouterr().err  # start a new run'
    assert main(["fbank", str(b), "--quiet"]) == 0
    assert training_record([a, b])["source_rates"] == {"16000": 12}
    assert training_record([tmp_path]) is None  # no record: not checked
    assert differences({"dither": 0.0, "allow_upsample": False}, {"dither": 1.0, "allow_upsample": True}) == [
        "dither 1.0 (not 0.0)"]  # whether audio may be resampled is not how features are computed


def test_a_record_describes_its_own_run_only(tmp_path, capsys):
    r"""The record names its run's tag; where feats.scp lists other arks (Kaldi's, written over flowaccent's in the
    same dir) it is no record, or it would vouch for them (a 5 ms shift then scored without a word)."""
    from flowaccent.data import ArkWriter
    from flowaccent.features.fbank_record import data_record

    data = make_wav_data_dir(tmp_path / "a")
    assert main(["fbank", str(data), "--quiet"]) == 0
    capsys.readouterr()
    record = data_record(data, "score")
    assert record is not None and len(record["run"]) == 10 and capsys.readouterr().err == ""
    kaldi = data / "data" / "raw_fbank_a.1.ark"  # as Kaldi's steps/make_fbank.sh names its arks
    with ArkWriter(kaldi, data / "feats.scp") as ark:
        for utt, feats in ScpReader(data / "feats.scp"):
            ark.write(utt, feats)
    assert data_record(data, "score") is None
    err = capsys.readouterr().err
    assert f"{data / 'fbank.json'} describes features that {data / 'feats.scp'} no longer lists" in err
    assert training_record([data]) is None


def test_damaged_record_is_an_error(tmp_path):
    from flowaccent.features.fbank_record import check_sets, read_record

    (tmp_path / "fbank.json").write_text("{")
    with pytest.raises(ConfigError, match="fbank.json: damaged; run 'flowaccent fbank"):
        read_record(tmp_path)
    # an experiment dir's: 'flowaccent fbank EXP' computed features in a model's folder
    with pytest.raises(ConfigError, match=r"fbank.json: damaged; 'flowaccent train' copied it from the model's "
                                          r"training data dirs: copy one of their fbank.json in its place"):
        check_sets(tmp_path, {}, "score")


def test_features_of_audio_resampled_another_way_are_not_mixed(tmp_path):
    r"""Records say how audio was resampled (Kaldi's filter; one without a word is of the scipy filter flowaccent
    used before, whose top mel bins differ): training dirs or a scored set resampled the other way are refused;
    where one side resampled nothing it does not matter."""
    from types import SimpleNamespace

    from flowaccent.features.fbank_record import OLD_RESAMPLER, check_sets, resampler

    a, b = make_wav_data_dir(tmp_path / "a", sample_rate=22050), make_wav_data_dir(tmp_path / "b", sample_rate=22050)
    native = make_wav_data_dir(tmp_path / "c", seed=1)  # at 16 kHz: nothing resampled
    for data in (a, b, native):
        assert main(["fbank", str(data), "--quiet"]) == 0
    assert resampler(json.loads((a / "fbank.json").read_text())) == "kaldi"
    assert resampler(json.loads((native / "fbank.json").read_text())) is None
    old = json.loads((b / "fbank.json").read_text())
    del old["resampler"]
    (b / "fbank.json").write_text(json.dumps(old))
    assert resampler(old) == OLD_RESAMPLER
    with pytest.raises(ConfigError, match=f"^{b}'s audio was resampled with scipy resample_poly, {a}'s with "
                                          "kaldi"):
        training_record([a, b])
    assert training_record([b, native])["resampler"] == OLD_RESAMPLER
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "fbank.json").write_text(json.dumps(training_record([a, native])))
    sets = {name: SimpleNamespace(path=path) for name, path in (("new", a), ("native", native))}
    check_sets(exp, sets, "score")  # the same filter, or nothing resampled
    with pytest.raises(ConfigError, match="score: set old: its audio was resampled with scipy resample_poly, the "
                                          "model's training audio with kaldi"):
        check_sets(exp, {"old": SimpleNamespace(path=b)}, "score")
    (exp / "fbank.json").write_text(json.dumps(training_record([native])))  # a model of 16 kHz audio only
    check_sets(exp, {"old": SimpleNamespace(path=b)}, "score")


@pytest.mark.parametrize("options", [{}, {"snip_edges": False}, {"frame_shift_ms": 5.0, "frame_length_ms": 20.0},
                                     {"sample_frequency": 8000, "snip_edges": False}])
def test_frame_counts_are_the_features_own(options):
    r"""kaldi_num_frames (what the frame-rate check expects of a set's audio) against the frames compute_fbank
    makes, short audio included (none, less than a window, one window, one sample more)."""
    from flowaccent.features.fbank import FbankConfig, compute_fbank_with, kaldi_num_frames

    config = FbankConfig(**options, dither=0.0)
    rate = int(config.sample_frequency)
    window = int(rate * config.frame_length_ms / 1000)
    rng = np.random.default_rng(0)
    for samples in (0, 1, window - 1, window, window + 1, rate // 3 + 7, rate + 80):
        wave = rng.normal(0, 1000, samples)
        assert kaldi_num_frames(samples, config.to_dict()) == len(compute_fbank_with(config, wave, rate)), samples


def test_a_set_without_a_record_at_another_frame_rate_is_refused(tmp_path):
    r"""Kaldi's features (no fbank.json) at a 5 ms shift were scored by a 10 ms model with the warning every set
    without a record gets; their frames against utt2dur's lengths (Kaldi's make_fbank.sh writes both) give them
    away, as utils/data/get_frame_shift.sh works a shift out."""
    from flowaccent.features.fbank import FbankConfig
    from flowaccent.features.fbank_record import frame_rate_problem

    data = make_wav_data_dir(tmp_path / "a")
    assert main(["fbank", str(data), "--quiet"]) == 0
    (data / "fbank.json").unlink()
    ten, five = FbankConfig().to_dict(), FbankConfig(frame_shift_ms=5.0).to_dict()
    frames = {u: int(n) for u, n in load_data_dir(data).utt2num_frames().items()}
    durations = {u: float(len(read_wav(p)[0])) / 16000 for u, p in read_table(data / "wav.scp").items()}
    assert frame_rate_problem(load_data_dir(data), ten) is None  # no utt2dur: nothing to check against
    write_table(data / "utt2dur", {u: f"{d:.3f}" for u, d in durations.items()})
    assert frame_rate_problem(load_data_dir(data), ten) is None
    problem = frame_rate_problem(load_data_dir(data), five)
    made = sum(1 + (round(d * 16000) - 400) // 80 for d in durations.values())
    assert problem == (f"its features come every 10.0 ms, not every 5 ms as the model's (frame_shift_ms): "
                       f"{sum(frames.values())} frames (utt2num_frames) where its audio's length (utt2dur) makes "
                       f"{made} with the model's options")
    write_table(data / "utt2dur", {u: "n/a" for u in durations})  # another tool's table, not ours to refuse
    assert frame_rate_problem(load_data_dir(data), five) is None
