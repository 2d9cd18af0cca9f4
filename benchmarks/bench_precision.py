r"""Precision options end to end: speed and NLL of ``--precision fp32 / tf32 / bf16``.

On the demo corpus (``flowaccent synth``, fbank features of ``train_native`` and ``test_native``),
for each precision P the device offers (fp32 and bf16 everywhere, tf32 on CUDA only) and each seed:
  train  ``flowaccent train train_native --train.precision P --train.seed S`` with the trainer's
         defaults otherwise (20 epochs; ``--epochs`` shortens it): the command's wall seconds, its
         best validation NLL (held-out utterances of the training speakers), and the NLL of
         ``test_native`` (unseen speakers) scored in fp32 by the model it trained;
  score  ``flowaccent score --precision P test_native`` with the first seed's fp32-trained model, right
         after that training (the first): wall seconds and NLL (the effect of scoring in P), and its
         largest per-utterance difference.
Seeds change the weights' initialisation and the data order, so the spread of fp32's own seeds
says how large a difference between precisions has to be to mean anything. NLL in nats per frame
(frame-weighted mean of ``utt_scores.tsv``), lower is better. The device is ``flowaccent``'s own
choice (``auto``: CUDA when present); whether it multiplies bf16 in hardware is printed (without
AMX/AVX512-BF16 a CPU emulates bf16, and training in it takes ~3x fp32's time).

Usage: python benchmarks/bench_precision.py [--epochs E] [--seeds 0 1] [--num-sentences N] [--json PATH]
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
import torch

sys.path.insert(0, str(Path(__file__).parent))

from bench_common import count, stop_on_term  # noqa: E402
from bench_quality import FLOWACCENT, prepare_corpus  # noqa: E402

from flowaccent.data.atomic import atomic_write_json  # noqa: E402
from flowaccent.runtime import bf16_in_hardware, resolve_device  # noqa: E402
from flowaccent.score.tables import read_tsv  # noqa: E402
from flowaccent.train.checkpoint import load_checkpoint  # noqa: E402


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


def train_row(root: Path, train_data: Path, test_data: Path, precision: str, seed: int, extra: list[str]) -> dict:
    r"""One ``flowaccent train`` in ``precision``: seconds, best validation NLL, fp32 test NLL."""
    exp = root / f"exp_{precision}_s{seed}"
    seconds = timed([*FLOWACCENT, "train", str(train_data), "--exp", str(exp), "--quiet",
                     "--train.precision", precision, "--train.seed", str(seed), *extra])
    _, nll, frames = score(exp, test_data, root / f"scores_{precision}_s{seed}_fp32", "fp32")
    progress = load_checkpoint(exp / "final.pt")["progress"]
    return {"precision": precision, "seed": seed, "train_seconds": seconds, "epochs": progress["epoch"],
            "valid_nll": progress["best_valid"], "trained_nll": float(np.average(nll, weights=frames))}


def summarise(train_rows: list[dict]) -> list[dict]:
    r"""Per precision: means over the seeds, and speed and NLL differences against fp32's means."""
    out = []
    for precision in dict.fromkeys(r["precision"] for r in train_rows):
        rows = [r for r in train_rows if r["precision"] == precision]
        out.append({"precision": precision, "seeds": len(rows),
                    **{key: statistics.mean(r[key] for r in rows) for key in ("train_seconds", "valid_nll",
                                                                               "trained_nll")},
                    **{f"{key}_spread": max(r[key] for r in rows) - min(r[key] for r in rows)
                       for key in ("valid_nll", "trained_nll")}})
    fp32 = out[0]
    for row in out:
        row.update(speedup=fp32["train_seconds"] / row["train_seconds"],
                   valid_nll_diff=row["valid_nll"] - fp32["valid_nll"],
                   trained_nll_diff=row["trained_nll"] - fp32["trained_nll"])
    return out


def score_table(exp: Path, test_data: Path, root: Path):
    r"""Yields the scoring table's rows: the fp32-trained model ``exp`` scored in each precision."""
    reference = None
    for precision in precisions():
        seconds, nll, frames = score(exp, test_data, root / f"scores_fp32_{precision}", precision)
        reference = nll if reference is None else reference
        yield {"precision": precision, "score_seconds": seconds, "score_frames": int(frames.sum()),
               "scored_nll": float(np.average(nll, weights=frames)),
               "scored_max_utt_diff": float(np.abs(nll - reference).max())}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=count, help="train this many epochs (default: the trainer's default)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--num-sentences", type=int, help="a smaller synthesised corpus (smoke tests only)")
    parser.add_argument("--train-args", default="", help="extra `flowaccent train` options (smoke tests only)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    extra = (["--train.epochs", str(args.epochs)] if args.epochs else []) + args.train_args.split()
    device = resolve_device("auto", "bench")
    root = Path(tempfile.mkdtemp(prefix="bench_precision_"))
    try:
        train_data = prepare_corpus(root, args.num_sentences)
        test_data = root / "corpus" / "test_native"
        subprocess.run([*FLOWACCENT, "fbank", str(test_data), "--nj", "2", "--quiet"], check=True)
        train_rows, score_rows = [], []

        def keep() -> None:  # row by row: an interrupted run keeps what it measured
            if args.json:
                atomic_write_json(args.json, {"train": train_rows, "score": score_rows, "partial": True})

        for seed in args.seeds:  # precisions interleaved, fp32 first
            for precision in precisions():
                train_rows.append(train_row(root, train_data, test_data, precision, seed, extra))
                keep()
                if (seed, precision) == (args.seeds[0], "fp32"):  # as soon as its model exists: a run cut short
                    for row in score_table(root / f"exp_fp32_s{seed}", test_data, root):  # (a GPU's lease) has it
                        score_rows.append(row)
                        keep()
    finally:
        shutil.rmtree(root)
    results = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "CPU",
               "bf16_in_hardware": bf16_in_hardware(device), "train": train_rows,
               "summary": summarise(train_rows), "score": score_rows}
    print(markdown(results))
    if args.json:
        atomic_write_json(args.json, results)
    return results


def markdown(results: dict) -> str:
    r"""The precision tables of docs/performance.md."""
    first = results["train"][0]
    lines = [f"On the {results['device']} (bf16 {'in hardware' if results['bf16_in_hardware'] else 'emulated'}): "
             f"`flowaccent train` on train_native, {first['epochs']} epochs, per seed; NLL in nats per frame.", "",
             "| precision | seed | train seconds | best validation NLL | test_native NLL (scored in fp32) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['precision']} | {r['seed']} | {r['train_seconds']:.1f} | {r['valid_nll']:.3f} | "
              f"{r['trained_nll']:.3f} |" for r in results["train"]]
    lines += ["", "| precision | seeds | mean train seconds | speed vs fp32 "
              "| validation NLL vs fp32 (fp32's seed spread) | test NLL vs fp32 (fp32's seed spread) |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    fp32 = results["summary"][0]
    lines += [f"| {r['precision']} | {r['seeds']} | {r['train_seconds']:.1f} | {r['speedup']:.2f}x | "
              f"{r['valid_nll_diff']:+.3f} ({fp32['valid_nll_spread']:.3f}) | "
              f"{r['trained_nll_diff']:+.3f} ({fp32['trained_nll_spread']:.3f}) |" for r in results["summary"]]
    lines += ["", "Scoring test_native with the first seed's fp32-trained model in each precision:", "",
              "| precision | score seconds | NLL | largest per-utterance difference from fp32 |",
              "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r['precision']} | {r['score_seconds']:.1f} | {r['scored_nll']:.4f} | "
              f"{r['scored_max_utt_diff']:.4f} |" for r in results["score"]]
    return "\n".join(lines)


if __name__ == "__main__":
    stop_on_term()
    main()
