r"""wav.scp entries: files, pipes, sample formats, and clear errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
from scipy.io import wavfile

from flowaccent.data import read_wav
from flowaccent.data.audio import read_audio
from flowaccent.errors import AudioError


def test_formats_are_brought_to_int16_scale(tmp_path):
    x16 = np.array([0, 1000, -32768, 32767], np.int16)
    wavfile.write(tmp_path / "a.wav", 8000, x16)
    wavfile.write(tmp_path / "b.wav", 8000, x16.astype(np.int32) << 16)
    wavfile.write(tmp_path / "c.wav", 8000, x16.astype(np.float32) / 32768)
    for name in "abc":
        samples, rate = read_wav(str(tmp_path / f"{name}.wav"))
        assert rate == 8000 and samples.dtype == np.float32
        np.testing.assert_allclose(samples, x16, atol=1e-3)
    piped, _ = read_wav(f"cat {tmp_path / 'a.wav'} |")
    np.testing.assert_array_equal(piped, x16)


def test_channels(tmp_path):
    stereo = np.stack([np.arange(10), -np.arange(10)], axis=1).astype(np.int16)
    wavfile.write(tmp_path / "s.wav", 16000, stereo)
    with pytest.raises(AudioError, match="2 channels"):
        read_wav(str(tmp_path / "s.wav"))
    right, _ = read_wav(str(tmp_path / "s.wav"), channel=1)
    np.testing.assert_array_equal(right, -np.arange(10))
    wavfile.write(tmp_path / "m.wav", 16000, stereo[:, 0].copy())  # mono: channel 0 is the audio, 1 is not there
    np.testing.assert_array_equal(read_wav(str(tmp_path / "m.wav"), channel=0)[0], np.arange(10))
    with pytest.raises(AudioError, match=r"channel 1 requested, but the audio has 1 channel \(channels count from 0; "):
        read_wav(str(tmp_path / "m.wav"), channel=1)
    with pytest.raises(AudioError, match=r"channel 2 requested, but the audio has 2 channels \(channels count from"):
        read_wav(str(tmp_path / "s.wav"), channel=2)


def test_errors_name_the_utterance(tmp_path):
    where = "wav.scp: utterance 'u1'"
    with pytest.raises(AudioError, match="utterance 'u1': audio file .* does not exist$"):
        read_wav(str(tmp_path / "missing.wav"), where)
    with pytest.raises(AudioError, match=r"audio file 'wav/x.wav' does not exist \(relative to the current folder, /"):
        read_wav("wav/x.wav", where)  # Kaldi's relative paths are read from where its scripts run
    (tmp_path / "text.wav").write_text("this is not audio")
    with pytest.raises(AudioError, match="utterance 'u1': .* not a readable WAV"):
        read_wav(str(tmp_path / "text.wav"), where)
    with pytest.raises(AudioError, match="utterance 'u1': pipe 'exit 2' failed"):
        read_wav("exit 2 |", where)
    wavfile.write(tmp_path / "empty.wav", 16000, np.zeros(0, np.int16))
    with pytest.raises(AudioError, match="no samples"):
        read_wav(str(tmp_path / "empty.wav"), where)
    (tmp_path / "bad.ark").write_bytes(b"u1 XXXX")
    with pytest.raises(AudioError, match=f"utterance 'u1': '{tmp_path}/bad.ark:3': no WAV object at that offset, "
                                         f"nor kaldiio's AUDIO one"):
        read_wav(f"{tmp_path / 'bad.ark'}:3", where)


def test_kaldiios_audio_objects_in_an_archive(tmp_path):
    r"""ESPnet's ``*.ark`` audio formats: kaldiio's ``save_ark(..., write_function="soundfile")`` writes ``AUDIO``, a
    byte n, the length in n little-endian bytes, then the file soundfile wrote (FLAC here, WAV by default). They
    were refused as 'no WAV object at that offset'."""
    import soundfile

    samples = (np.sin(np.arange(3000) / 7.0) * 8000).astype(np.int16)
    blobs = {}
    for fmt in ("FLAC", "WAV"):
        out = io.BytesIO()
        soundfile.write(out, samples, 16000, format=fmt, subtype="PCM_16")
        blobs[fmt] = out.getvalue()
    ark, offsets = bytearray(), {}
    for key, blob in (("u-flac", blobs["FLAC"]), ("u-wav", blobs["WAV"])):
        ark += f"{key} ".encode()
        offsets[key] = len(ark)
        width = (len(blob).bit_length() + 7) // 8
        ark += b"AUDIO" + bytes([width]) + len(blob).to_bytes(width, "little") + blob
    (tmp_path / "a.ark").write_bytes(bytes(ark))
    for key, offset in offsets.items():
        data, rate = read_wav(f"{tmp_path / 'a.ark'}:{offset}", key)
        assert rate == 16000
        np.testing.assert_array_equal(data, samples)
    (tmp_path / "cut.ark").write_bytes(bytes(ark[: offsets["u-wav"] - 10]))  # the FLAC's last bytes gone
    with pytest.raises(AudioError, match=rf"'{tmp_path}/cut.ark:{offsets['u-flac']}': kaldiio's AUDIO object of "
                                         rf"{len(blobs['FLAC'])} bytes, \d+ there \(a cut archive\?\)"):
        read_wav(f"{tmp_path / 'cut.ark'}:{offsets['u-flac']}", "u-flac")


def test_wav_objects_in_an_archive(tmp_path):
    r"""``wav.ark:OFFSET`` entries, as Kaldi's wav-copy writes them (and reads them in wav.scp): 'does not exist'."""
    import kaldiio

    x = (np.arange(1600) % 100 * 50).astype(np.int16)
    stereo = np.stack([x[:800], -x[:800]], axis=1)
    kaldiio.save_ark(str(tmp_path / "wav.ark"), {"u1": (16000, x), "u2": (8000, stereo)}, scp=str(tmp_path / "w.scp"))
    entries = dict(line.split() for line in (tmp_path / "w.scp").read_text().splitlines())
    samples, rate = read_wav(entries["u1"])
    assert rate == 16000
    np.testing.assert_array_equal(samples, x)
    samples, rate = read_wav(entries["u2"], channel=1)
    assert rate == 8000
    np.testing.assert_array_equal(samples, -x[:800])


def test_a_pipe_reading_stdin_ends_instead_of_waiting(tmp_path):
    import subprocess
    import sys

    code = "from flowaccent.data import read_wav\ntry:\n    read_wav('cat |')\nexcept Exception as e:\n    print(e)"
    done = subprocess.run([sys.executable, "-c", code], stdin=subprocess.PIPE, capture_output=True, text=True,
                          timeout=60)  # stdin left open: the pipe waited on it for ever
    assert "'cat |' holds no audio: the command wrote nothing" in done.stdout


def test_truncated_and_streamed_wavs(tmp_path, capsys):
    r"""A file shorter than its header: read, with one line naming it (scipy's own warning named nothing); a
    streamed header's placeholder size (sox writing to a pipe): read silently."""
    import struct

    x = (np.arange(16000) % 200 * 100).astype(np.int16)
    wavfile.write(tmp_path / "a.wav", 16000, x)
    whole = (tmp_path / "a.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(whole[:20044])
    samples, _ = read_wav(str(tmp_path / "cut.wav"), "wav.scp: utterance 'u1'")
    np.testing.assert_array_equal(samples, x[:10000])
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"wav.scp: utterance 'u1': warning: '{tmp_path / 'cut.wav'}' ends before its header says: "
                   f"10000 samples read, 32044 bytes expected (truncated?)"]
    assert whole[36:40] == b"data"
    streamed = whole[:4] + struct.pack("<I", 0x7FFFF024) + whole[8:40] + struct.pack("<I", 0x7FFFF000) + whole[44:]
    (tmp_path / "s.wav").write_bytes(streamed)
    np.testing.assert_array_equal(read_wav(f"cat {tmp_path / 's.wav'} |")[0], x)
    assert capsys.readouterr().err == ""
    # sizes of 0, which Kaldi's wave reader also takes as streamed (scipy: "local variable 'fs' ..."), a file or a pipe
    for riff in (0, len(whole) - 8):
        (tmp_path / "z.wav").write_bytes(whole[:4] + struct.pack("<I", riff) + whole[8:40] + struct.pack("<I", 0)
                                         + whole[44:])
        np.testing.assert_array_equal(read_wav(str(tmp_path / "z.wav"))[0], x)
        np.testing.assert_array_equal(read_wav(f"cat {tmp_path / 'z.wav'} |")[0], x)
    # ... with a 6000-byte LIST chunk before the data, and with a partial last sample (dropped, as Kaldi drops it)
    listed = b"LIST" + struct.pack("<I", 6000) + b"INFO" + bytes(5996)
    for riff, tail in ((0, b""), (len(whole) - 8 + len(listed), b""), (0, b"\x01")):
        (tmp_path / "z.wav").write_bytes(whole[:4] + struct.pack("<I", riff) + whole[8:36] + listed + b"data"
                                         + struct.pack("<I", 0) + whole[44:] + tail)
        np.testing.assert_array_equal(read_wav(str(tmp_path / "z.wav"))[0], x)
        np.testing.assert_array_equal(read_wav(f"cat {tmp_path / 'z.wav'} |")[0], x)
    # 0xffffffff, which ffmpeg writes to a pipe and Kaldi takes as streamed: with a partial last sample frame it
    # was 'not a readable WAV file (cannot reshape array of size 32001 into shape (2))'
    stereo = np.stack([x, -x], axis=1)
    wavfile.write(tmp_path / "st.wav", 16000, stereo)
    whole = (tmp_path / "st.wav").read_bytes()
    for riff, data, tail in ((0xFFFFFFFF, 0xFFFFFFFF, b"\x01\x02"), (len(whole) - 8, 0xFFFFFFFF, b"\x01"),
                             (0xFFFFFFFF, len(whole) - 44, b"\x01\x02\x03"), (0, 0xFFFFFFFE, b"\x01")):
        (tmp_path / "f.wav").write_bytes(whole[:4] + struct.pack("<I", riff) + whole[8:40] + struct.pack("<I", data)
                                         + whole[44:] + tail)
        for rxfile in (str(tmp_path / "f.wav"), f"cat {tmp_path / 'f.wav'} |"):
            np.testing.assert_array_equal(read_wav(rxfile, channel=1)[0], -x)
    assert capsys.readouterr().err == ""


def test_float_wav_at_int16_scale_is_refused(tmp_path):
    wavfile.write(tmp_path / "f.wav", 16000, np.array([0.0, 23000.0, -100.0], np.float32))
    with pytest.raises(AudioError, match="float WAV samples reach 23000; float WAV holds .-1, 1."):
        read_wav(str(tmp_path / "f.wav"), "u")
    wavfile.write(tmp_path / "g.wav", 16000, np.array([0.0, 1.2, -0.5], np.float32))  # some overshoot: fine
    np.testing.assert_allclose(read_wav(str(tmp_path / "g.wav"))[0], [0.0, 1.2 * 32768, -0.5 * 32768], rtol=1e-6)


@pytest.mark.parametrize(("name", "options"), [("a.flac", {}), ("a.sph", {"format": "NIST"}), ("a.aiff", {})])
def test_formats_other_than_wav_give_the_wavs_samples(tmp_path, name, options):
    r"""ESPnet's and lhotse's data dirs name FLAC files in wav.scp (TIMIT's are NIST SPHERE): 'not a readable WAV
    file' before. Lossless formats read as the same samples as the WAV, by path and from a pipe, 16 and 24 bits."""
    import soundfile

    rng = np.random.default_rng(0)
    x16 = (rng.standard_normal(4000) * 3000).clip(-32768, 32767).astype(np.int16)
    x24 = (rng.standard_normal((4000, 2)) * 3e5).astype(np.int32) << 8  # 24-bit values, left-justified
    for x, subtype in ((x16, "PCM_16"), (x24, "PCM_24")):
        wav, other = tmp_path / f"{subtype}.wav", tmp_path / f"{subtype}-{name}"
        soundfile.write(wav, x, 16000, subtype=subtype)
        soundfile.write(other, x, 16000, subtype=subtype, **options)
        assert other.read_bytes()[:4] not in (b"RIFF", b"RF64")
        expected, _ = read_audio(str(wav))  # scipy's WAV reader, as before
        for entry in (str(other), f"cat {other} |"):
            data, rate = read_audio(entry)
            assert rate == 16000 and data.dtype == expected.dtype
            np.testing.assert_array_equal(data, expected)
        channel = x.ndim - 1
        np.testing.assert_array_equal(read_wav(str(other), channel=channel)[0], read_wav(str(wav), channel=channel)[0])


def test_unreadable_and_empty_audio_is_named(tmp_path):
    import soundfile

    where = "wav.scp: utterance 'u1'"
    soundfile.write(tmp_path / "a.flac", np.zeros(16000, np.int16), 16000)
    (tmp_path / "cut.flac").write_bytes((tmp_path / "a.flac").read_bytes()[:30])
    (tmp_path / "empty.flac").write_bytes(b"")
    with pytest.raises(AudioError, match=rf"^{where}: '.*cut.flac' is not a readable WAV file, nor audio libsndfile "
                                         r"reads \([^<]+\)$"):
        read_wav(str(tmp_path / "cut.flac"), where)
    with pytest.raises(AudioError, match=rf"^{where}: '.*empty.flac' holds no audio: the file is empty$"):
        read_wav(str(tmp_path / "empty.flac"), where)
    with pytest.raises(AudioError, match=rf"^{where}: 'true \|' holds no audio: the command wrote nothing$"):
        read_wav("true |", where)
    with pytest.raises(AudioError, match=r"'echo junk \|' is not a readable WAV file, nor audio libsndfile reads "
                                         r"\(Format not recognised.\)$"):
        read_wav("echo junk |", where)


def test_audio_that_cannot_be_opened_is_the_utterances_error(tmp_path, monkeypatch):
    r"""A WAV of mode 000 (or an I/O error) stopped fbank on a bare 'Permission denied' naming neither the utterance
    nor wav.scp, and it was not listed with the other failed utterances. (As root, chmod does not stop a read:
    the open is refused by hand.)"""
    import errno

    from flowaccent.data import audio

    path = tmp_path / "a.wav"
    wavfile.write(path, 16000, np.zeros(800, np.int16))

    def refused(name, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(name))

    monkeypatch.setattr(audio, "open", refused, raising=False)
    with pytest.raises(AudioError, match=rf"^wav.scp: utterance 'u1': audio file '{path}': Permission denied$"):
        read_wav(str(path), "wav.scp: utterance 'u1'")
