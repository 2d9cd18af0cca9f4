r"""Kaldi's resampler, against its formulas written out sample by sample (``feat/resample.cc``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flowaccent.features import compute_fbank, resample
from flowaccent.features.resample import kaldi_resample, num_output_samples


def kaldi_loop(x: np.ndarray, rate_in: int, rate_out: int, zeros: int = 6) -> np.ndarray:
    r"""``LinearResample(rate_in, rate_out, 0.99 * min / 2, 6).Resample(x, flush=true)`` one output sample at a
    time, in float64: Kaldi's ``GetNumOutputSamples`` by its ticks, its ``FilterFunc``, zeros outside ``x``."""
    cutoff = 0.99 * 0.5 * min(rate_in, rate_out)
    width = zeros / (2 * cutoff)
    tick = rate_in * rate_out // math.gcd(rate_in, rate_out)
    interval, per_out = len(x) * (tick // rate_in), tick // rate_out
    last = interval // per_out
    if last * per_out == interval:
        last -= 1
    out = np.zeros(last + 1)
    for n in range(last + 1):
        t = n / rate_out
        for j in range(math.ceil((t - width) * rate_in), math.floor((t + width) * rate_in) + 1):
            d = j / rate_in - t
            window = 0.5 * (1 + math.cos(2 * math.pi * cutoff / zeros * d)) if abs(d) < width else 0.0
            sinc = math.sin(2 * math.pi * cutoff * d) / (math.pi * d) if d != 0 else 2 * cutoff
            if 0 <= j < len(x):
                out[n] += x[j] * window * sinc / rate_in
    return out


@pytest.mark.parametrize("rate_in, rate_out", [(22050, 16000), (44100, 16000), (48000, 16000), (16000, 8000),
                                               (8000, 16000), (11025, 16000), (16001, 16000)])
@pytest.mark.parametrize("block", [None, 7])
def test_matches_kaldis_formula(rate_in, rate_out, block, monkeypatch):
    r"""Against Kaldi's loop written out; ``block`` 7: the outputs made a few at a time (both paths' blocks, which
    the 701 samples fill one of: a recording over ~4 s has more)."""
    if block:
        monkeypatch.setattr(resample, "_BLOCK", block)
    x = np.random.default_rng(0).normal(0, 3000, 701).astype(np.float32)
    expected = kaldi_loop(x.astype(np.float64), rate_in, rate_out)
    got = kaldi_resample(x, rate_in, rate_out)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=2e-3)  # float32 sums of ~3000-sized samples


def test_lengths_and_identity():
    for n in range(0, 60):
        for rate_in, rate_out in ((22050, 16000), (8000, 16000), (48000, 16000)):
            expected = math.ceil(n * rate_out / rate_in)  # output times n / rate_out in [0, N / rate_in)
            assert num_output_samples(n, rate_in, rate_out) == expected
            assert kaldi_resample(np.ones(n, np.float32), rate_in, rate_out).shape == (expected,)
    x = np.arange(5, dtype=np.float32)
    assert kaldi_resample(x, 16000, 16000) is x


def test_a_tone_in_the_passband_keeps_its_shape_and_one_above_is_removed():
    rate_in, rate_out = 22050, 16000
    t_in = np.arange(rate_in) / rate_in
    t_out = np.arange(rate_out) / rate_out
    inner = slice(100, -100)  # away from the zeros before the start and past the end
    tone = kaldi_resample((1000 * np.sin(2 * np.pi * 1000 * t_in)).astype(np.float32), rate_in, rate_out)
    np.testing.assert_allclose(tone[inner], 1000 * np.sin(2 * np.pi * 1000 * t_out)[inner], atol=1.0)
    # Kaldi's filter rolls off softly (half the amplitude at its 7.92 kHz cutoff): 10 kHz, which would fold back to
    # 6 kHz, is down by 40 dB
    alias = kaldi_resample((1000 * np.sin(2 * np.pi * 10000 * t_in)).astype(np.float32), rate_in, rate_out)
    assert np.abs(alias[inner]).max() < 10


def test_fbank_of_resampled_audio_is_that_of_kaldis_resampled_audio():
    t = np.arange(2 * 22050) / 22050
    x = (3000 * np.sin(2 * np.pi * 300 * t) + 300 * np.random.default_rng(1).standard_normal(t.size)).astype(np.int16)
    resampled = kaldi_loop(x.astype(np.float64), 22050, 16000).astype(np.float32)
    np.testing.assert_allclose(compute_fbank(x, 22050), compute_fbank(resampled, 16000), atol=1e-3)
