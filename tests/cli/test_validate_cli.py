r"""``flowaccent validate``: says what is wrong, or that the dir is fine."""

from __future__ import annotations

import numpy as np

from flowaccent.cli.main import main
from flowaccent.data import ArkWriter, ScpReader, load_data_dir


def test_fine_and_broken(wav_data_dir, capsys):
    assert main(["validate", str(wav_data_dir)]) == 0
    assert capsys.readouterr().out.strip() == f"{wav_data_dir}: OK"
    (wav_data_dir / "spk2utt").write_text("spkA spkA-000\nspkB spkB-000 spkB-001 spkB-002\n")
    (wav_data_dir / "text").write_text("spkA-000 HELLO\n")
    assert main(["validate", str(wav_data_dir)]) == 1
    err = capsys.readouterr().err
    assert "spk2utt: speaker 'spkA' does not match utt2spk" in err
    assert "text: 5 utterance(s) of utt2spk missing" in err


def test_read_feats_finds_a_truncated_ark(wav_data_dir, capsys):
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0
    capsys.readouterr()
    ark = next((wav_data_dir / "data").glob("raw_fbank_*.ark"))
    ark.write_bytes(ark.read_bytes()[:-100])
    assert main(["validate", str(wav_data_dir)]) == 0  # tables alone are fine
    assert main(["validate", str(wav_data_dir), "--read-feats"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "utterance 'spkB-002'" in err[0] and "truncated ark" in err[0]


def test_read_feats_needs_feats_and_stats_of_their_dim(wav_data_dir, capsys):
    r"""``--read-feats`` fails where scoring would: no feats.scp to read, or CMVN stats of another dim."""
    assert main(["validate", str(wav_data_dir), "--read-feats"]) == 1  # wav.scp only, no features yet
    err = capsys.readouterr().err.strip()
    assert err == f"flowaccent validate: error: {wav_data_dir}: no feats.scp to read (--read-feats)"
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0
    assert main(["validate", str(wav_data_dir), "--read-feats"]) == 0
    capsys.readouterr()
    speakers = load_data_dir(wav_data_dir).spk2utt
    with ArkWriter(wav_data_dir / "cmvn23.ark", wav_data_dir / "cmvn.scp") as writer:
        for spk in sorted(speakers):
            stats = np.zeros((2, 24), dtype=np.float32)
            stats[0, -1] = 10.0
            writer.write(spk, stats)
    assert main(["validate", str(wav_data_dir), "--read-feats"]) == 1
    assert "stats of dim 23 for features of dim 40" in capsys.readouterr().err
    again = f"make them again: 'flowaccent cmvn {wav_data_dir}'"
    for row, value, said in [(0, 0.0, "not Kaldi CMVN stats (no frames counted: count 0.0)"),
                             (1, np.nan, "NaN or inf in the CMVN stats (row 1)")]:  # said as the features'
        with ArkWriter(wav_data_dir / "cmvn40.ark", wav_data_dir / "cmvn.scp") as writer:
            for spk in sorted(speakers):
                stats = np.ones((2, 41))
                stats[row, -1] = value
                writer.write(spk, stats)
        assert main(["validate", str(wav_data_dir), "--read-feats"]) == 1
        assert capsys.readouterr().err == (f"flowaccent validate: error: {wav_data_dir}/cmvn.scp: speaker 'spkA': "
                                           f"{said}; {again}\n")
    (wav_data_dir / "cmvn.scp").write_text((wav_data_dir / "cmvn.scp").read_text().split("\n", 1)[1])
    assert main(["validate", str(wav_data_dir)]) == 1  # fixdir keeps the speaker (Kaldi's script drops it)
    assert capsys.readouterr().err == (f"flowaccent validate: error: {wav_data_dir}/cmvn.scp: 1 speaker(s) of utt2spk "
                                       f"missing, e.g. 'spkA' ('flowaccent cmvn {wav_data_dir}' computes every "
                                       "speaker's)\n")


def test_read_feats_lists_every_bad_utterance(wav_data_dir, capsys):
    r"""It stopped at the first bad utterance: a dir with five 0-frame utterances took five runs to clean."""
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0
    data = load_data_dir(wav_data_dir)
    feats = {utt: m for utt, m in ScpReader(wav_data_dir / "feats.scp")}
    utts = list(feats)
    feats[utts[0]] = feats[utts[0]][:0]
    feats[utts[2]] = feats[utts[2]][:0]
    feats[utts[3]] = np.where(np.arange(len(feats[utts[3]]))[:, None] == 4, np.nan, feats[utts[3]]).astype(np.float32)
    with ArkWriter(wav_data_dir / "edited.ark", wav_data_dir / "feats.scp") as writer:
        for utt in data.utts:
            writer.write(utt, feats[utt])
    (wav_data_dir / "utt2num_frames").unlink()
    capsys.readouterr()
    assert main(["validate", str(wav_data_dir), "--read-feats"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3
    assert f"utterance '{utts[0]}': zero-length" in err[0] and f"utterance '{utts[2]}': zero-length" in err[1]
    assert f"utterance '{utts[3]}': NaN or inf in the features (first at frame 4)" in err[2]


def test_recording_tables_of_a_dir_without_segments(wav_data_dir, capsys):
    utts = (wav_data_dir / "utt2spk").read_text().split()[::2]
    (wav_data_dir / "reco2dur").write_text(f"{utts[0]} 1.5\n")  # no segments: the recordings are the utterances
    assert main(["validate", str(wav_data_dir)]) == 1
    assert capsys.readouterr().err == (f"flowaccent validate: error: {wav_data_dir}/reco2dur: {len(utts) - 1} "
                                       f"recording(s) of utt2spk (no segments: its utterances are the recordings) "
                                       f"missing, e.g. '{utts[1]}' (Kaldi's validate_data_dir.sh requires them all; "
                                       "Kaldi's utils/data/get_reco2dur.sh makes it)\n")
