r"""Feature extraction throughput: is it limited by kaldi-native-fbank or by our glue?

Measured side by side in one run, median of ``--repeats``:
  knf       bare kaldi-native-fbank on in-memory waveforms (the floor we build on)
  compute   flowaccent.features.compute_fbank on the same waveforms
  fbank-1   ``flowaccent fbank`` library path, 1 job: WAV read + fbank + ark/scp + CMVN
  fbank-2   the same with 2 jobs
Ratios near 1.0 for compute/knf and fbank-1/knf mean the glue costs nothing.

Usage: python benchmarks/bench_fbank.py [--utts 200] [--seconds 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.io import wavfile


def make_corpus(root: Path, utts: int, seconds: float, rate: int = 16000) -> tuple[Path, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    data = root / "bench"
    data.mkdir(parents=True)
    waves, wav_scp, utt2spk = [], [], []
    for i in range(utts):
        spk = f"spk{i % 10:02d}"
        utt = f"{spk}-{i:05d}"
        n = int(seconds * rate)
        x = 2000 * np.sin(2 * np.pi * (150 + i) * np.arange(n) / rate) + 300 * rng.standard_normal(n)
        x = x.astype(np.int16)
        wavfile.write(root / f"{utt}.wav", rate, x)
        waves.append(x.astype(np.float32))
        wav_scp.append((utt, str(root / f"{utt}.wav")))
        utt2spk.append((utt, spk))
    from flowaccent.data import write_spk2utt, write_table

    write_table(data / "wav.scp", dict(wav_scp))
    write_table(data / "utt2spk", dict(utt2spk))
    write_spk2utt(data / "spk2utt", dict(utt2spk))
    return data, waves


def bare_knf(waves: list[np.ndarray]) -> int:
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.mel_opts.num_bins = 40
    frames = 0
    for w in waves:
        f = knf.OnlineFbank(opts)
        f.accept_waveform(16000.0, w)
        f.input_finished()
        out = np.empty((f.num_frames_ready, 40), np.float32)
        for i in range(f.num_frames_ready):
            out[i] = f.get_frame(i)
        frames += out.shape[0]
    return frames


def ours(waves: list[np.ndarray]) -> int:
    from flowaccent.features import compute_fbank

    return sum(compute_fbank(w, 16000).shape[0] for w in waves)


def timed(fn) -> tuple[float, int]:
    start = time.perf_counter()
    frames = fn()
    return time.perf_counter() - start, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utts", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from flowaccent.features.make_fbank import make_fbank

    root = Path(tempfile.mkdtemp(prefix="bench_fbank_"))
    try:
        data, waves = make_corpus(root, args.utts, args.seconds)
        runs = {
            "knf": lambda: bare_knf(waves),
            "compute": lambda: ours(waves),
            "fbank-1": lambda: make_fbank(data, nj=1, quiet=True).num_frames,
            "fbank-2": lambda: make_fbank(data, nj=2, quiet=True).num_frames,
        }
        rates: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, fn in runs.items():  # interleaved, so machine noise hits all alike
                seconds, frames = timed(fn)
                rates[name].append(frames / seconds)
        median = {name: statistics.median(r) for name, r in rates.items()}
        print(f"fbank throughput, {args.utts} utts x {args.seconds:g} s, median of {args.repeats}")
        print(f"{'path':<10}{'frames/s':>12}{'vs knf':>9}")
        for name, rate in median.items():
            print(f"{name:<10}{rate:>12.0f}{rate / median['knf']:>9.3f}")
        print(f"fbank-2 / fbank-1 (parallel speed-up): {median['fbank-2'] / median['fbank-1']:.2f}")
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
