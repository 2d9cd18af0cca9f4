r"""compute_fbank against Kaldi's fbank written out in numpy (feature-window.cc, mel-computations.cc)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from flowaccent.errors import ConfigError, FeatureError
from flowaccent.features import FbankConfig, compute_fbank


def kaldi_mel(freq):
    return 1127.0 * np.log(1.0 + np.asarray(freq) / 700.0)


def kaldi_mel_banks(num_bins: int, sample_rate: float, padded: int, low=20.0, high=0.0) -> np.ndarray:
    r"""MelBanks constructor: triangles in mel between equally spaced mel points; ``(num_bins, padded/2)``."""
    num_fft_bins = padded // 2
    nyquist = 0.5 * sample_rate
    high = high if high > 0 else nyquist + high
    bin_width = sample_rate / padded
    mel_low, mel_high = kaldi_mel(low), kaldi_mel(high)
    delta = (mel_high - mel_low) / (num_bins + 1)
    banks = np.zeros((num_bins, num_fft_bins))
    for b in range(num_bins):
        left, center, right = mel_low + b * delta, mel_low + (b + 1) * delta, mel_low + (b + 2) * delta
        for i in range(num_fft_bins):
            mel = kaldi_mel(bin_width * i)
            if left < mel < right:
                banks[b, i] = (mel - left) / (center - left) if mel <= center else (right - mel) / (right - center)
    return banks


#: Kaldi's windows (feature-window.cc, ``a = 2 pi / (N - 1)``) of N samples, by ``--window-type``.
KALDI_WINDOWS = {
    "povey": lambda n, a: (0.5 - 0.5 * np.cos(a * n)) ** 0.85,
    "sine": lambda n, a: np.sin(0.5 * a * n),
}


def kaldi_fbank(wave: np.ndarray, sample_rate: int = 16000, num_bins: int = 40, window: str = "povey") -> np.ndarray:
    r"""ComputeFbank with Kaldi's defaults: snip_edges, remove DC, pre-emphasis 0.97, povey window (or another of
    :data:`KALDI_WINDOWS`), power."""
    length, shift = int(sample_rate * 0.025), int(sample_rate * 0.010)
    padded = 1 << (length - 1).bit_length()
    num_frames = 1 + (len(wave) - length) // shift
    shape = KALDI_WINDOWS[window](np.arange(length), 2 * np.pi / (length - 1))
    banks = kaldi_mel_banks(num_bins, sample_rate, padded)
    out = np.zeros((num_frames, num_bins))
    for t in range(num_frames):
        frame = wave[t * shift : t * shift + length].astype(np.float64)
        frame = frame - frame.mean()
        for i in range(length - 1, 0, -1):
            frame[i] -= 0.97 * frame[i - 1]
        frame[0] -= 0.97 * frame[0]
        frame = frame * shape
        power = np.abs(np.fft.rfft(frame, padded)) ** 2
        energies = banks @ power[: padded // 2]
        out[t] = np.log(np.maximum(energies, np.finfo(np.float32).eps))
    return out


@pytest.fixture
def wave(rng) -> np.ndarray:
    t = np.arange(8000) / 16000
    x = 4000 * np.sin(2 * np.pi * 440 * t) + 800 * rng.standard_normal(t.size)
    return x.astype(np.int16)


@pytest.mark.parametrize("window", list(KALDI_WINDOWS))
def test_matches_kaldi_formula(wave, window):
    got = compute_fbank(wave, 16000, window_type=window)
    ref = kaldi_fbank(wave, window=window)
    assert got.shape == ref.shape == (1 + (8000 - 400) // 160, 40)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-5)  # 1.8e-5 measured; dither 1.0 moves it 5.8e-3


@pytest.mark.parametrize("num_samples,frames", [(399, 0), (400, 1), (559, 1), (560, 2), (16000, 98)])
def test_frame_count_with_snip_edges(num_samples, frames, rng):
    x = (1000 * rng.standard_normal(num_samples)).astype(np.int16)
    assert compute_fbank(x, 16000).shape == (frames, 40)


#: Options other than Kaldi's defaults, each as kaldi-native-fbank names it: (where, name, value); (energy) with
#: use_energy, which the option changes.
KNF_OPTIONS = [
    ("frame", "window_type", "hamming"), ("frame", "window_type", "sine"), ("frame", "preemph_coeff", 0.5),
    ("frame", "remove_dc_offset", False),
    ("frame", "round_to_power_of_two", False), ("frame", "snip_edges", False), ("frame", "frame_length_ms", 20.0),
    ("frame", "frame_shift_ms", 5.0), ("mel", "low_freq", 300.0), ("mel", "high_freq", -2000.0),
    ("top", "use_power", False), ("top", "use_log_fbank", False), ("top", "use_energy", True),
    ("energy", "raw_energy", False), ("energy", "energy_floor", 1e12), ("energy", "htk_compat", True),
]


@pytest.mark.parametrize("where, name, value", KNF_OPTIONS, ids=[f"{o[1]}={o[2]}" for o in KNF_OPTIONS])
def test_each_option_reaches_kaldi_native_fbank(wave, where, name, value):
    r"""Each option gives kaldi-native-fbank's features with that option set on it by hand, not the defaults' (an
    option left at its default in ``knf_options`` passed every test)."""
    import kaldi_native_fbank as knf

    energy = {"use_energy": True} if where == "energy" else {}
    got = compute_fbank(wave, 16000, **energy, **{name: value})
    opts = knf.FbankOptions()
    opts.frame_opts.dither, opts.mel_opts.num_bins = 0.0, 40  # flowaccent's defaults (Kaldi: 1.0, 23)
    opts.use_energy = bool(energy)
    owner = {"frame": opts.frame_opts, "mel": opts.mel_opts}.get(where, opts)
    assert getattr(owner, name) != value  # not a default
    setattr(owner, name, value)
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(16000.0, wave.astype(np.float32))
    fbank.input_finished()
    want = np.array([fbank.get_frame(i) for i in range(fbank.num_frames_ready)], np.float32)
    np.testing.assert_array_equal(got, want)
    default = compute_fbank(wave, 16000, **energy)
    assert got.shape != default.shape or np.abs(got - default).max() > 1e-2


def test_reproducible_without_dither(wave):
    np.testing.assert_array_equal(compute_fbank(wave, 16000), compute_fbank(wave, 16000))


def test_a_tensor_wave_gives_the_numpy_waves_features(rng):
    r"""A tensor needing grad raised torch's own RuntimeError (numpy() of a tensor that requires grad)."""
    import torch

    wave = rng.normal(0, 1000, 8000).astype(np.float32)
    expected = compute_fbank(wave, 16000)
    np.testing.assert_array_equal(compute_fbank(torch.tensor(wave, requires_grad=True), 16000), expected)


def test_resamples_to_the_configured_rate(rng):
    t = np.arange(22050) / 22050
    x = (3000 * np.sin(2 * np.pi * 300 * t) + 300 * rng.standard_normal(t.size)).astype(np.int16)
    feats = compute_fbank(x, 22050)
    assert feats.shape == (98, 40)  # one second at 16 kHz
    native = compute_fbank(x, 22050, sample_frequency=22050)
    assert native.shape == (98, 40)
    # The 300 Hz tone dominates the same mel bin either way.
    assert np.argmax(feats.mean(0)) == np.argmax(native.mean(0))


def test_int16_scale_is_enforced(wave):
    with pytest.raises(FeatureError, match="int16 scale"):
        compute_fbank(wave / 32768.0, 16000)
    floats = compute_fbank(wave.astype(np.float32), 16000)
    np.testing.assert_array_equal(floats, compute_fbank(wave, 16000))
    # a 32-bit WAV as scipy reads it (int32 at full scale) shifted every log-mel by 2 ln 65536, without a word
    with pytest.raises(FeatureError, match=r"int32 samples past int16's range .*divide 32-bit samples by 65536"):
        compute_fbank(wave.astype(np.int32) * 65536, 16000)
    np.testing.assert_array_equal(compute_fbank(wave.astype(np.int32), 16000), compute_fbank(wave, 16000))


def test_options_and_errors(wave):
    assert compute_fbank(wave, 16000, num_mel_bins=23, use_energy=True).shape[1] == 24
    assert compute_fbank(wave, 16000, snip_edges=False).shape[0] == 50  # round(8000 / 160)
    with pytest.raises(ConfigError):
        compute_fbank(wave, 16000, no_such_option=1)
    with pytest.raises(FeatureError):
        compute_fbank(np.zeros((2, 100), np.int16), 16000)
    for rate in (0, -16000, 16000.5, "16000", True):  # 0 said 'pass --allow-upsample true'
        with pytest.raises(FeatureError, match="sample rate is a whole number of Hz > 0, got "):
            compute_fbank(wave, rate)
    np.testing.assert_array_equal(compute_fbank(wave, 16000.0), compute_fbank(wave, np.int64(16000)))
    with pytest.raises(ConfigError):
        FbankConfig.from_dict({"window_type": "kaiser"})
    for option in ("frame_shift_ms", "frame_length_ms"):  # knf would fail later with "the number of frames decreased"
        with pytest.raises(ConfigError, match=rf"{option} \(--{option.replace('_', '-')}\) must be in \(0, 1000\], "
                                              "got -10"):
            FbankConfig(**{option: -10.0})
    # past them: kaldi-native-fbank's 'incompatible function arguments' (1e12 bins: no C int), or, for a frame of 1e6
    # ms, a minute of one FFT that neither Ctrl-C nor SIGTERM stopped
    for option, value, most in (("num_mel_bins", 10**12, "1024"), ("sample_frequency", 10**12, "384000"),
                                ("frame_length_ms", 1e6, "1000"), ("frame_shift_ms", 1e6, "1000")):
        with pytest.raises(ConfigError, match=rf"{option} .* must be in \(0, {most}\], got 1e\+"):
            FbankConfig(**{option: value})
    assert FbankConfig(sample_frequency=48000, num_mel_bins=80).num_mel_bins == 80


def test_the_config_is_made_once_per_options_and_checked_as_given(wave, monkeypatch):
    r"""Its checks (a kaldi-native-fbank made among them) took ~0.1 ms a call, ~8% of a 1 s utterance's features; a
    config made for 40 bins is not taken for 40.0 or True (equal as keys), nor one for 23 for a list."""
    from flowaccent.features import fbank

    made = []
    check = FbankConfig.__post_init__
    monkeypatch.setattr(FbankConfig, "__post_init__", lambda self: made.append(1) or check(self))
    fbank._cached_config.cache_clear()
    for _ in range(3):
        compute_fbank(wave, 16000)
        compute_fbank(wave, 16000, num_mel_bins=23, snip_edges=False)
    assert len(made) == 2
    with pytest.raises(ConfigError, match="num_mel_bins: expected an integer, got True"):
        compute_fbank(wave, 16000, num_mel_bins=True)
    with pytest.raises(ConfigError, match="num_mel_bins: expected an integer, got 40.5"):
        compute_fbank(wave, 16000, num_mel_bins=40.5)
    np.testing.assert_array_equal(compute_fbank(wave, 16000, num_mel_bins=40.0), compute_fbank(wave, 16000))
    with pytest.raises(ConfigError, match="expected a number"):
        compute_fbank(wave, 16000, num_mel_bins=23, frame_shift_ms=[10.0])



@pytest.mark.parametrize("options, message", [
    ({"frame_shift_ms": 0.01}, "frame_shift_ms 0.01 give 400 and 0 samples at 16000 Hz; both are milliseconds"),
    ({"frame_length_ms": 0.025}, "frame_length_ms 0.025 and frame_shift_ms 10.0 give 0 and 160 samples"),
    ({"high_freq": 9000.0}, "Bad values in options: low-freq 20 and high-freq 9000 vs. nyquist 8000"),
    ({"low_freq": 9000.0}, "Bad values in options: low-freq 9000"),
    ({"num_mel_bins": 300}, "300 mel bins (--num-mel-bins) do not fit the band of --sample-frequency 16000 Hz with "
                            "these options: at most 126 do"),
    ({"num_mel_bins": 60, "low_freq": 3000.0, "high_freq": 4000.0}, "at most 55 do; lower --num-mel-bins, or widen"),
    # the default 40 bins at 1 kHz: kaldi-native-fbank's words blamed num_mel_bins, which the user had not set
    ({"sample_frequency": 1000}, "40 mel bins (--num-mel-bins) do not fit the band of --sample-frequency 1000 Hz"),
    ({"num_mel_bins": 200, "sample_frequency": 8000, "low_freq": 2990.0, "high_freq": 3000.0},
     "with these options: none does: widen the band (--sample-frequency"),  # not 'at most 0 do; lower ...'
])
def test_options_kaldi_refuses_are_config_errors_when_read(options, message):
    r"""Each was a traceback after the first WAV was read (a shift of 0 samples: SIGFPE, no message)."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        FbankConfig(**options)
    assert FbankConfig(sample_frequency=8000, high_freq=-400.0).sample_frequency == 8000  # negative: from Nyquist
    FbankConfig(num_mel_bins=126)  # the most said above: taken
    FbankConfig(num_mel_bins=55, low_freq=3000.0, high_freq=4000.0)
