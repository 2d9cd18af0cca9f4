r"""Precision options end to end: speed and held-out NLL of ``--precision fp32 / tf32 / bf16``.

On the demo corpus (``flowaccent synth``, fbank features of ``train_native`` and ``test_native``),
for each precision P the device offers (fp32 and bf16 everywhere, tf32 on CUDA only):
  train  ``flowaccent train train_native --train.precision P --train.epochs E`` (defaults otherwise,
         same seed and data order for all P): the command's wall seconds, and the NLL of
         ``test_native`` scored in fp32 by the model it trained (the effect of training in P);
  score  ``flowaccent score --precision P test_native`` with the fp32-trained model: wall seconds
         and NLL (the effect of scoring in P), and its largest per-utterance difference from fp32.
NLL in nats per frame (frame-weighted mean of ``utt_scores.tsv``), lower is better. The device
is ``flowaccent``'s own choice (``auto``: CUDA when present).

Usage: python benchmarks/bench_precision.py [--epochs 3] [--num-sentences N] [--json PATH]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from bench_quality import FLOWACCENT, prepare_corpus  # noqa: E402

from flowaccent.data.atomic import atomic_write_json  # noqa: E402
from flowaccent.score.scorer import read_tsv  # noqa: E402


def precisions() -> list[str]:
    return ["fp32", "tf32", "bf16"] if torch.cuda.is_available() else ["fp32", "bf16"]


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def score(exp: Path, data: Path, out: Path, precision: str) -> tuple[float, np.ndarray, np.ndarray]:
    r"""``flowaccent score`` in ``precision``: (seconds, per-utterance NLL, frames per utterance)."""
    seconds = timed([*FLOWACCENT, "score", "--exp", str(exp), "--out", str(out), f"test={data}", "--quiet",
                     "--precision", precision])
    table = read_tsv(out / "test" / "utt_scores.tsv")
    return seconds, np.asarray(table["nll"]), np.asarray(table["num_frames"])


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--num-sentences", type=int, help="a smaller synthesised corpus (smoke tests only)")
    parser.add_argument("--train-args", default="", help="extra `flowaccent train` options (smoke tests only)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench_precision_"))
    rows = []
    try:
        train_data = prepare_corpus(root, args.num_sentences)
        test_data = root / "corpus" / "test_native"
        subprocess.run([*FLOWACCENT, "fbank", str(test_data), "--nj", "2", "--quiet"], check=True)
        for precision in precisions():
            exp = root / f"exp_{precision}"
            train_seconds = timed([*FLOWACCENT, "train", str(train_data), "--exp", str(exp), "--quiet",
                                   "--train.precision", precision, "--train.epochs", str(args.epochs),
                                   *args.train_args.split()])
            _, nll, frames = score(exp, test_data, root / f"scores_{precision}_fp32", "fp32")
            rows.append({"precision": precision, "train_seconds": train_seconds,
                         "trained_nll": float(np.average(nll, weights=frames))})
        reference = None
        for row in rows:  # the fp32-trained model, scored in each precision
            seconds, nll, frames = score(root / "exp_fp32", test_data, root / f"scores_fp32_{row['precision']}",
                                         row["precision"])
            reference = nll if reference is None else reference
            row.update(score_seconds=seconds, score_frames=int(frames.sum()),
                       scored_nll=float(np.average(nll, weights=frames)),
                       scored_max_utt_diff=float(np.abs(nll - reference).max()))
    finally:
        shutil.rmtree(root)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"precision on {device}: {args.epochs} epochs of train_native, NLL of test_native (nats/frame)")
    print(f"{'precision':>9} {'train s':>8} {'NLL (trained in it)':>20} {'score s':>8} {'NLL (scored in it)':>19} "
          f"{'max |utt diff|':>15}")
    for r in rows:
        print(f"{r['precision']:>9} {r['train_seconds']:>8.1f} {r['trained_nll']:>20.3f} {r['score_seconds']:>8.1f} "
              f"{r['scored_nll']:>19.4f} {r['scored_max_utt_diff']:>15.4f}")
    if args.json:
        atomic_write_json(args.json, rows)
    return rows


if __name__ == "__main__":
    main()
