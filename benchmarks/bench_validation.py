r"""The trainer's validation pass: the held-out utterances joined into batches against one forward each.

Writes a corpus of ``--utts`` utterances of ``--utt-frames`` frames (40-d; the demo's
train_native holds out ~40 of ~300 frames each) and computes their NLL per frame as the trainer
does after every epoch (``flowaccent.train.validation.held_out_nll``: whole utterances joined into
batches of about ``--batch`` frames, the trainer's default batch) and as it did before, one forward
per utterance (``per_utterance_nll``, kept here as the reference), interleaved, median of
``--repeats``. Two models: the 10 x 512 flow, and 10 blocks of hidden 16, whose arithmetic is
nearly nothing, so its time is what each forward costs around the arithmetic (on a GPU a forward
of the 10 x 512 flow was bound by launching its kernels, ~4-5 ms whatever the batch: the small
model stands in for that on a CPU). Runs where ``flowaccent train`` runs by default (CUDA when
present). Printed: ms per validation pass each way, the speed-up, and the largest difference
between the two NLLs.

Usage: python benchmarks/bench_validation.py [--utts 40] [--utt-frames 300] [--batch 4096] [--repeats 5]
                                             [--json PATH]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from bench_common import count, stop_on_term  # noqa: E402
from bench_model import perturb, sync  # noqa: E402
from bench_score import write_corpus  # noqa: E402
from bench_train import bench_config, trainer_stream  # noqa: E402

from flowaccent.data.atomic import atomic_write_json  # noqa: E402
from flowaccent.flows.packed import packed_inference  # noqa: E402
from flowaccent.runtime import resolve_device  # noqa: E402
from flowaccent.train.validation import held_out_nll  # noqa: E402


@torch.no_grad()
def per_utterance_nll(model, stream, device: torch.device) -> float:
    r"""The validation NLL as the trainer computed it before: one forward per utterance."""
    total, count = torch.zeros((), dtype=torch.float64), 0
    with packed_inference(model):
        for ref in stream.refs:
            x = stream.frames_of(ref).to(device)
            y = torch.full((len(x),), ref.label, dtype=torch.long, device=device)
            total += model(x, y).nll.sum().double().cpu()
            count += len(x)
    return float(total) / count


def model_for(stream, hidden: int, device: torch.device):
    r"""A DNF flow of 10 blocks x ``hidden`` on the stream's 120-d frames, initialised on its first frames."""
    from flowaccent.flows.config import ModelConfig
    from flowaccent.model import FlowModel
    from flowaccent.prior_config import PriorConfig

    model = FlowModel(stream.pipeline, ModelConfig(num_blocks=10, hidden=hidden), PriorConfig(cond_dim=120),
                      ("native",))
    model.to(device)  # as the trainer does: the stream's pipeline (shared) then lives on the device too
    x, y = next(stream.joined(4096))
    model.initialize(x.to(device), y.to(device))
    perturb(model)
    return model.eval()


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utts", type=count, default=40)
    parser.add_argument("--utt-frames", type=count, default=300)
    parser.add_argument("--batch", type=count, default=4096)
    parser.add_argument("--repeats", type=count, default=5)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    from flowaccent.allocator import tune_allocator

    tune_allocator()  # as the `flowaccent` command runs
    device = resolve_device("auto", "train")
    root = Path(tempfile.mkdtemp(prefix="bench_validation_"))
    rows = []
    try:
        data = write_corpus(root / "data", args.utts * args.utt_frames, utt_frames=args.utt_frames)
        with trainer_stream(data, bench_config(args.batch)) as stream:
            for hidden in (512, 16):
                model = model_for(stream, hidden, device)
                times = {"per_utterance": [], "joined": []}
                for _ in range(args.repeats):  # interleaved; the first call of each warms up
                    for way in times:
                        for timed in (False, True):
                            sync(device.type)
                            start = time.perf_counter()
                            if way == "joined":
                                joined = held_out_nll(model, stream, args.batch, device, "fp32")["nll"]
                            else:
                                alone = per_utterance_nll(model, stream, device)
                            sync(device.type)
                            if timed:
                                times[way].append(1e3 * (time.perf_counter() - start))
                ms = {way: statistics.median(t) for way, t in times.items()}
                rows.append({"device": device.type, "hidden": hidden, "utts": args.utts, "utt_frames": args.utt_frames,
                             "batch": args.batch, "per_utterance_ms": ms["per_utterance"], "joined_ms": ms["joined"],
                             "speedup": ms["per_utterance"] / ms["joined"], "nll_difference": abs(joined - alone),
                             "nll": joined})
    finally:
        shutil.rmtree(root)
    print(f"validation of {args.utts} utterances x {args.utt_frames} frames (D=120), 10 blocks, on {device.type}, "
          f"joined into batches of ~{args.batch} frames vs one forward each; median of {args.repeats}")
    print(f"{'hidden':>6} {'per utterance ms':>17} {'joined ms':>10} {'speed-up':>9} {'NLL':>9} {'difference':>11}")
    for r in rows:
        print(f"{r['hidden']:>6} {r['per_utterance_ms']:>17.1f} {r['joined_ms']:>10.1f} {r['speedup']:>8.2f}x "
              f"{r['nll']:>9.3f} {r['nll_difference']:>11.1e}")
    if args.json:
        atomic_write_json(args.json, rows)
    return rows


if __name__ == "__main__":
    stop_on_term()
    main()
