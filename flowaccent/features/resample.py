r"""Kaldi's resampler (``ResampleWaveform`` of ``feat/resample.h``): what ``compute-fbank-feats
--allow-downsample`` / ``--allow-upsample`` does to audio at another rate than ``--sample-frequency``.

A windowed-sinc interpolation (Kaldi's ``LinearResample`` with ``flush``): output sample ``n`` at time
``t = n / to_rate`` is ``sum_j x[j] h(j / from_rate - t) / from_rate`` over the input samples ``j`` within
the filter's support, where

    h(d) = sin(2 pi f d) / (pi d) * (1 + cos(2 pi f d / Z)) / 2   for |d| < Z / (2 f), else 0,

``f = 0.99 * min(from_rate, to_rate) / 2`` the low-pass cutoff and ``Z = 6`` zero crossings each side.
Samples before the start and past the end count as zeros, and there are as many output samples as
output times fall in ``[0, N / from_rate)``. The filter repeats with the pattern of sample times, every
``from_rate / gcd`` input and ``to_rate / gcd`` output samples, so its weights are worked out once per
output phase. Where that pattern is short (22.05, 44.1, 48 or 8 kHz to 16 kHz), each unit's output samples
are one product of its input samples with a matrix of the phases' weights; else the samples of each
output are gathered.
"""

from __future__ import annotations

import math

import numpy as np

#: Kaldi's zero crossings of the windowed sinc each side (``lowpass_filter_width``).
NUM_ZEROS = 6

#: Output samples computed at once (bounds the memory of an hour-long recording).
_BLOCK = 1 << 16
#: Largest weight matrix of one repeating unit (input samples x output phases) multiplied as a matrix.
_DENSE = 1 << 20


def num_output_samples(num_input: int, from_rate: int, to_rate: int) -> int:
    r"""Kaldi's ``GetNumOutputSamples(num_input, flush=true)``: the output times ``n / to_rate`` in
    ``[0, num_input / from_rate)``."""
    ticks = num_input * to_rate  # time in ticks of 1 / (from_rate * to_rate): exact
    return 0 if ticks <= 0 else (ticks - 1) // from_rate + 1


def phase_weights(from_rate: int, to_rate: int, num_zeros: int = NUM_ZEROS) -> tuple[np.ndarray, np.ndarray]:
    r"""``(first, weights)``: for each of the ``to_rate / gcd`` output phases, the first input index of its
    filter ``(P,)`` (int64, may be negative) and the filter's weights ``(P, K)`` (float64, zero-padded where a
    phase needs fewer than ``K`` taps)."""
    cutoff = 0.99 * 0.5 * min(from_rate, to_rate)
    width = num_zeros / (2.0 * cutoff)  # seconds each side of the output time
    phases = to_rate // math.gcd(from_rate, to_rate)
    output_t = np.arange(phases) / to_rate
    first = np.ceil((output_t - width) * from_rate).astype(np.int64)
    last = np.floor((output_t + width) * from_rate).astype(np.int64)
    taps = int((last - first).max()) + 1
    index = first[:, None] + np.arange(taps)[None, :]
    delta = index / from_rate - output_t[:, None]
    window = np.where(np.abs(delta) < width, 0.5 * (1 + np.cos(2 * np.pi * cutoff / num_zeros * delta)), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sinc = np.where(delta != 0, np.sin(2 * np.pi * cutoff * delta) / (np.pi * delta), 2 * cutoff)
    weights = np.where(index <= last[:, None], window * sinc / from_rate, 0.0)
    return first, weights


def kaldi_resample(wave: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    r"""``(N,)`` samples at ``from_rate`` -> float32 ``(M,)`` at ``to_rate`` as Kaldi resamples them
    (:func:`num_output_samples` gives ``M``); the same array when the rates are equal."""
    from_rate, to_rate = int(from_rate), int(to_rate)
    if from_rate == to_rate:
        return wave
    wave = np.asarray(wave, dtype=np.float32)
    first, weights = phase_weights(from_rate, to_rate)
    g = math.gcd(from_rate, to_rate)
    in_unit, out_unit = from_rate // g, to_rate // g
    taps = weights.shape[1]
    total = num_output_samples(wave.size, from_rate, to_rate)
    pad = max(0, -int(first.min()))
    weights32 = weights.astype(np.float32)  # Kaldi's weights are BaseFloat (float32)
    columns = int(first.max()) + pad + taps  # input samples one unit's outputs read, from its first's
    units = -(-total // out_unit)
    padded = np.zeros(max(pad + wave.size, (units - 1) * in_unit + columns) + taps + in_unit, np.float32)
    padded[pad : pad + wave.size] = wave
    if columns * out_unit <= _DENSE:
        return _by_units(padded, first + pad, weights32, in_unit, units, columns)[:total]
    out = np.empty(total, np.float32)
    for start in range(0, total, _BLOCK):
        n = np.arange(start, min(start + _BLOCK, total))
        phase = n % out_unit
        begin = first[phase] + (n // out_unit) * in_unit + pad
        samples = padded[begin[:, None] + np.arange(taps)[None, :]]
        out[n[0] : n[-1] + 1] = np.einsum("nk,nk->n", samples, weights32[phase])
    return out


def _by_units(padded: np.ndarray, first: np.ndarray, weights: np.ndarray, in_unit: int, units: int, columns: int):
    r"""The outputs of ``units`` repeating units ``(units * P,)``: unit ``u`` reads the ``columns`` samples of
    ``padded`` from ``u * in_unit`` (a strided view, not copied) into a matrix ``(columns, P)`` of the ``P`` phases'
    weights, each phase's at its ``first`` (already shifted by the padding)."""
    phases, taps = weights.shape
    matrix = np.zeros((columns, phases), np.float32)
    for phase in range(phases):
        matrix[first[phase] : first[phase] + taps, phase] = weights[phase]
    rows = np.lib.stride_tricks.as_strided(padded, (units, columns), (in_unit * padded.itemsize, padded.itemsize),
                                           writeable=False)
    out = np.empty((units, phases), np.float32)
    block = max(1, _BLOCK // phases)
    for start in range(0, units, block):
        np.matmul(rows[start : start + block], matrix, out=out[start : start + block])
    return out.reshape(-1)
