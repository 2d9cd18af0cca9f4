r"""Feature extraction throughput: is it limited by kaldi-native-fbank or by our glue?

Measured side by side in one run, median of ``--repeats``:
  knf       bare kaldi-native-fbank on in-memory waveforms (the floor we build on)
  compute   flowaccent.features.compute_fbank on the same waveforms
  fbank-1   ``flowaccent fbank`` library path, 1 job: WAV read + fbank + ark/scp + CMVN
  fbank-2   the same with 2 jobs
Ratios near 1.0 for compute/knf and fbank-1/knf mean the glue costs nothing.
``--other-tree DIR`` also times ``make_fbank`` with 2 jobs of this checkout and of another one
(``DIR`` holds its ``flowaccent/``), each in a fresh process, interleaved with the rows above.
``--left-out K`` also times the mend of a run that failed on K utterances (spread evenly; their audio unreadable),
which are then left out of the data dir: ``make_fbank(resume=True)`` (1 job) against a run of the same lists from
scratch, in seconds, each repeat with its own failed run.

Usage: python benchmarks/bench_fbank.py [--utts 200] [--seconds 3] [--repeats 3] [--other-tree DIR] [--left-out K]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_common import count, stop_on_term  # noqa: E402
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


#: ``make_fbank`` with 2 jobs in a fresh process: prints its frames/s (start-up not counted).
IN_PROCESS = (
    "import sys, time; from flowaccent.features.make_fbank import make_fbank; start = time.perf_counter(); "
    "frames = make_fbank(sys.argv[1], nj=2, quiet=True).num_frames; print(frames / (time.perf_counter() - start))"
)


def fbank_in_process(data: Path, tree: str | None) -> float:
    r"""Frames/s of ``make_fbank(data, nj=2)`` in a fresh process of this checkout or of ``tree``."""
    from bench_model import other_tree

    done = subprocess.run([sys.executable, "-c", IN_PROCESS, str(data)], capture_output=True, text=True,
                          check=True, **other_tree(tree))
    return float(done.stdout.split()[-1])


def left_out_run(data: Path, copy: Path, k: int) -> tuple[float, float]:
    r"""Seconds of ``make_fbank(copy, resume=True)`` after a run on a copy of ``data`` failed on ``k`` utterances
    that were then left out of it, and of a run of the same lists from scratch."""
    from flowaccent.data import read_table, write_spk2utt, write_table
    from flowaccent.errors import AudioError
    from flowaccent.features.make_fbank import make_fbank

    shutil.copytree(data, copy, ignore=shutil.ignore_patterns("data", "feats.scp", "cmvn.scp", "utt2num_frames",
                                                              "fbank.json"))
    wav, utt2spk = read_table(copy / "wav.scp"), read_table(copy / "utt2spk")
    bad = sorted(wav)[len(wav) // (2 * k)::max(1, len(wav) // k)][:k]
    for utt in bad:
        wav[utt] = str(copy / f"{utt}.bad.wav")
        Path(wav[utt]).write_bytes(b"not a wav file")
    write_table(copy / "wav.scp", wav)
    try:
        make_fbank(copy, quiet=True)
        raise AssertionError("the run with unreadable audio did not fail")
    except AudioError:
        pass
    for utt in bad:
        del wav[utt], utt2spk[utt]
    write_table(copy / "wav.scp", wav)
    write_table(copy / "utt2spk", utt2spk)
    write_spk2utt(copy / "spk2utt", utt2spk)
    resumed, _ = timed(lambda: make_fbank(copy, quiet=True, resume=True).num_frames)
    scratch, _ = timed(lambda: make_fbank(copy, quiet=True).num_frames)
    shutil.rmtree(copy)
    return resumed, scratch


def timed(fn) -> tuple[float, int]:
    start = time.perf_counter()
    frames = fn()
    return time.perf_counter() - start, frames


def main(argv: list[str] | None = None) -> dict[str, float]:
    r"""Prints the table; returns each row's median frames/s."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utts", type=count, default=200)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=count, default=3)
    parser.add_argument("--other-tree", help="also time make_fbank (2 jobs, fresh processes) of another checkout")
    parser.add_argument("--left-out", type=int, default=0, metavar="K",
                        help="also time --resume after K failed utterances were left out, against from scratch")
    args = parser.parse_args(argv)

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
        fresh = {"fbank-2 here": None, "fbank-2 other": args.other_tree} if args.other_tree else {}
        rates.update({name: [] for name in fresh})
        mends: list[tuple[float, float]] = []
        from bench_model import in_turn

        for r in range(args.repeats):
            for name, fn in runs.items():  # interleaved, so machine noise hits all alike
                seconds, frames = timed(fn)
                rates[name].append(frames / seconds)
            for name, tree in in_turn(fresh.items(), r):  # the two checkouts' processes, each repeat in another order
                rates[name].append(fbank_in_process(data, tree))
            if args.left_out:
                mends.append(left_out_run(data, root / "left_out", args.left_out))
        median = {name: statistics.median(r) for name, r in rates.items()}
        print(f"fbank throughput, {args.utts} utts x {args.seconds:g} s, median of {args.repeats}")
        print(f"{'path':<14}{'frames/s':>12}{'vs knf':>9}")
        for name, rate in median.items():
            print(f"{name:<14}{rate:>12.0f}{rate / median['knf']:>9.3f}")
        print(f"fbank-2 / fbank-1 (parallel speed-up): {median['fbank-2'] / median['fbank-1']:.2f}")
        if fresh:
            here, other = rates["fbank-2 here"], rates["fbank-2 other"]
            ratios = ", ".join(f"{a / b:.3f}" for a, b in zip(here, other))
            ratio = median["fbank-2 here"] / median["fbank-2 other"]
            print(f"fresh processes, this checkout / {args.other_tree}: {ratio:.3f} (per repeat: {ratios})")
        if mends:
            resumed, scratch = (statistics.median(s) for s in zip(*mends))
            ratios = ", ".join(f"{a / b:.3f}" for a, b in mends)
            print(f"--resume after {args.left_out} failed utterance(s) left out: {resumed:.2f} s, from scratch "
                  f"{scratch:.2f} s: {resumed / scratch:.3f} of the time (per repeat: {ratios})")
            median |= {"resume left out s": resumed, "scratch s": scratch}
        return median
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    stop_on_term()
    main()
