r"""``segments``: Kaldi's extract-segments arithmetic, and fbank over recordings cut into utterances."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import wavfile

from flowaccent.cli.main import main
from flowaccent.data import ScpReader, load_data_dir, read_wav
from flowaccent.data.segments import Segment, cut, parse_segment
from flowaccent.errors import AudioError, DataDirError
from flowaccent.features import compute_fbank


def test_sample_indices_truncate_as_kaldi():
    x = np.arange(40000.0)
    # extract-segments: int32 start_samp = start * samp_freq (truncated); 2.01 * 16000 = 32159.99...
    assert 2.01 * 16000 < 32160
    got = cut(x, 16000, Segment("r", 1.1, 2.01), "u")
    assert got[0] == int(1.1 * 16000) == 17600 and got[-1] == 32158 and got.shape == (32159 - 17600,)
    assert cut(x, 16000, Segment("r", 2.0, -1), "u").shape == (8000,)  # -1: to the end
    assert cut(x[:, None].repeat(2, 1), 16000, Segment("r", 0, 1), "u").shape == (16000, 2)


def test_overshoot_below_half_a_second_is_cut_back_else_an_error():
    x = np.zeros(16000)
    assert cut(x, 16000, Segment("r", 0.5, 1.49), "u").shape == (8000,)
    with pytest.raises(AudioError, match="u: ends at 1.5 s, 0.5 s or more after the end of 'r' .1.000 s."):
        cut(x, 16000, Segment("r", 0.5, 1.5), "u")
    with pytest.raises(AudioError, match="u: starts at 1.0 s, at or after the end of 'r'"):
        cut(x, 16000, Segment("r", 1.0, 1.2), "u")


@pytest.mark.parametrize(
    "value,fragment",
    [("r 1 1", "empty segment"), ("r 2 1", "empty segment"), ("r nan 1", "bad start, end"),
     ("r 0 inf", "bad start, end"),
     ("r 0 1 x", "bad start"), ("r 0", "expected"), ("r 0 1 0 9", "expected")],
)
def test_bad_lines(value, fragment):
    with pytest.raises(DataDirError, match=f"where: .*{fragment}"):
        parse_segment(value, "where")


@pytest.fixture
def segmented(tmp_path):
    r"""Two recordings cut into 3 + 1 utterances: a mono WAV read through a counting pipe, a stereo WAV."""
    rng = np.random.default_rng(5)
    mono = (3000 * rng.standard_normal(3 * 16000)).astype(np.int16)
    stereo = (3000 * rng.standard_normal((16000, 2))).astype(np.int16)
    wavfile.write(tmp_path / "rec1.wav", 16000, mono)
    wavfile.write(tmp_path / "rec2.wav", 16000, stereo)
    d = tmp_path / "data"
    d.mkdir()
    (d / "wav.scp").write_text(f"rec1 sh -c 'echo x >> {tmp_path}/reads; cat {tmp_path}/rec1.wav' |\n"
                               f"rec2 {tmp_path}/rec2.wav\n")
    (d / "segments").write_text("s1-a rec1 0 1.2\ns1-b rec1 1.2 2.01\ns1-c rec1 2.01 3.3\ns2-a rec2 0.1 -1 1\n")
    (d / "utt2spk").write_text("s1-a s1\ns1-b s1\ns1-c s1\ns2-a s2\n")
    (d / "spk2utt").write_text("s1 s1-a s1-b s1-c\ns2 s2-a\n")
    return d, mono, stereo


@pytest.mark.parametrize("nj", [1, 2])
def test_fbank_features_are_those_of_the_cut_audio(segmented, nj):
    d, mono, stereo = segmented
    assert main(["fbank", str(d), "--quiet", "--nj", str(nj)]) == 0
    assert (d.parent / "reads").read_text() == "x\n"  # the recording read once for its three segments
    want = {
        "s1-a": mono[: int(1.2 * 16000)],
        "s1-b": mono[int(1.2 * 16000) : int(2.01 * 16000)],
        "s1-c": mono[int(2.01 * 16000) :],  # 3.3 s: past the end by 0.3 s, cut back as Kaldi does
        "s2-a": stereo[1600:, 1],  # channel 1 from the segments line
    }
    got = dict(ScpReader(d / "feats.scp"))
    assert set(got) == set(want)
    for utt, samples in want.items():
        np.testing.assert_array_equal(got[utt], compute_fbank(samples.astype(np.float32), 16000), err_msg=utt)
    assert load_data_dir(d).utt2num_frames()["s1-a"] == got["s1-a"].shape[0]
    assert main(["validate", str(d), "--read-feats"]) == 0


def test_fbank_errors_name_the_segment_and_leave_the_dir(segmented, capsys):
    d, _, _ = segmented
    (d / "segments").write_text("s1-a rec1 0 1.2\ns1-b rec1 1.2 2.01\ns1-c rec1 2.01 4\ns2-a rec2 0.1 -1\n")
    before = sorted(p.name for p in d.iterdir())
    assert main(["fbank", str(d), "--quiet"]) == 1
    assert "segments: utterance 's1-c': ends at 4.0 s, 0.5 s or more after the end of 'rec1'" in capsys.readouterr().err
    (d / "segments").write_text("s1-a rec1 0 1.2\ns1-b rec1 1.2 2.01\ns1-c rec1 2.01 3\ns2-a rec2 0.1 -1\n")
    assert main(["fbank", str(d), "--quiet"]) == 1  # stereo, no channel in segments nor --channel
    assert "segments: utterance 's2-a': 2 channels; choose one with --channel" in capsys.readouterr().err
    left = ("data", ".fbank.lock")  # the arks' folder, and the file its lock is on (kept, as lock files are)
    assert sorted(p.name for p in d.iterdir() if p.name not in left) == [n for n in before if n not in left]
    assert main(["fbank", str(d), "--quiet", "--channel", "0"]) == 0
    samples, _ = read_wav(str(d.parent / "rec2.wav"), channel=0)
    np.testing.assert_array_equal(dict(ScpReader(d / "feats.scp"))["s2-a"], compute_fbank(samples[1600:], 16000))
