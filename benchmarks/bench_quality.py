r"""Time to quality: ``flowaccent train`` with its defaults against the lab's setting, on the demo corpus.

The lab's setting, written out as a plain PyTorch reference (``plain_realnvp.PlainRealNVP``):
RealNVP, 10 blocks, hidden 256, BatchNorm between blocks, Adam lr 1e-4 (constant), batch 10000,
``--ref-epochs`` epochs (the lab's budget: 100), all training frames in memory, reshuffled every
epoch. Its clock counts only its training steps (not loading, not its per-epoch validation).

flowaccent: ``flowaccent train DATA --exp EXP`` with no config at all (10 x 512, ActNorm, Adam
lr 2e-3 with warm-up and cosine decay, batch 4096, 20 epochs), in a child process; its clock
runs from the command's start (start-up, the standardisation pass, validation and checkpoints
all count) to the end of the first epoch whose validation NLL is at or below the reference's
final NLL (the ``time`` of that epoch's record in ``log/train.jsonl``).

Both are judged on the same held-out utterances (flowaccent's own validation split of the
training dir, ``train.valid_fraction`` 0.05 by its utterance-id hash) and in the same space
(CMVN per speaker + deltas, before standardisation: the reference's NLL adds the log-det of its
standardisation), in nats per frame.

Usage: python benchmarks/bench_quality.py [--corpus DIR] [--ref-epochs 100] [--json PATH]
  --corpus: a corpus written by ``flowaccent synth`` (default: synthesised here, seed 0).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from bench_common import stop_on_term  # noqa: E402
from plain_realnvp import PlainRealNVP  # noqa: E402

from flowaccent.allocator import tune_allocator  # noqa: E402
from flowaccent.data.atomic import atomic_write_json  # noqa: E402
from flowaccent.features import FeaturePipeline, FeaturePipelineConfig  # noqa: E402
from flowaccent.train.classes import load_classes  # noqa: E402
from flowaccent.train.config import TrainConfig  # noqa: E402
from flowaccent.train.frames import FrameSource, FrameStream, split_valid, utterance_refs  # noqa: E402

FLOWACCENT = [sys.executable, "-m", "flowaccent"]


def prepare_corpus(root: Path, num_sentences: int | None = None) -> Path:
    r"""The demo corpus's ``train_native`` with fbank features: synthesised and extracted here."""
    sizes = ["--num-sentences", str(num_sentences)] if num_sentences else []
    subprocess.run([*FLOWACCENT, "synth", str(root / "corpus"), "--nj", "2", "--quiet", *sizes], check=True)
    data = root / "corpus" / "train_native"
    subprocess.run([*FLOWACCENT, "fbank", str(data), "--nj", "2", "--quiet"], check=True)
    return data


def load_frames(data: Path, valid_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Pipeline frames (CMVN per speaker, deltas; not standardised) of the train and validation split:
    ``(N_train, 120)``, ``(N_valid, 120)``, split exactly as ``flowaccent train`` splits them."""
    dirs, _, labels = load_classes([(None, data)], need_cmvn=True)
    train_refs, valid_refs = split_valid(utterance_refs(dirs, labels), valid_fraction)
    pipeline_config = FeaturePipelineConfig()  # flowaccent's default features (as `flowaccent train` uses)
    source = FrameSource(dirs, 40)
    stream = FrameStream(source, train_refs, FeaturePipeline(pipeline_config, 40), 1, 1, 0)
    try:
        return (torch.cat([stream.frames_of(r) for r in train_refs]).float(),
                torch.cat([stream.frames_of(r) for r in valid_refs]).float())
    finally:
        source.close()


def train_reference(train: torch.Tensor, valid: torch.Tensor, epochs: int, seed: int = 0) -> list[dict]:
    r"""The lab's setting; returns per epoch its training seconds so far and validation NLL (nats/frame)."""
    torch.manual_seed(seed)
    mean, std = train.mean(0), train.std(0)
    train_std, valid_std = (train - mean) / std, (valid - mean) / std
    log_det_std = -float(torch.log(std).sum())  # d(standardised)/dx
    model = PlainRealNVP(train.shape[1], num_blocks=10, hidden=256, num_layers=2, norm="batchnorm")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(seed)
    clock, curve = 0.0, []
    for epoch in range(epochs):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(train_std), generator=generator)
        for i in range(0, len(order), 10000):
            loss = -model.log_prob(train_std[order[i : i + 10000]]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        clock += time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            nll = -float(torch.cat([model.log_prob(v) for v in valid_std.split(20000)]).mean()) - log_det_std
        curve.append({"epoch": epoch + 1, "seconds": clock, "valid_nll": nll})
        print(f"reference epoch {epoch + 1}: {clock:7.1f} s, valid NLL {nll:.3f}", flush=True)
    return curve


def train_flowaccent(data: Path, exp: Path, extra: list[str]) -> tuple[float, list[dict]]:
    r"""``flowaccent train`` with its defaults (and ``extra`` options); returns its start time and epoch records."""
    start = time.time()
    subprocess.run([*FLOWACCENT, "train", str(data), "--exp", str(exp), "--quiet", *extra], check=True)
    records = [json.loads(line) for line in (exp / "log" / "train.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["event"] == "epoch"]
    curve = [{"epoch": r["epoch"], "seconds": r["time"] - start, "valid_nll": r["valid"]["nll"]} for r in epochs]
    for c in curve:
        print(f"flowaccent epoch {c['epoch']}: {c['seconds']:7.1f} s, valid NLL {c['valid_nll']:.3f}", flush=True)
    return start, curve


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, help="an existing `flowaccent synth` corpus (default: make one)")
    parser.add_argument("--ref-epochs", type=int, default=100)
    parser.add_argument("--num-sentences", type=int, help="a smaller synthesised corpus (smoke tests only)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("--flowaccent-args", default="", help="extra `flowaccent train` options (smoke tests only)")
    args = parser.parse_args(argv)
    tune_allocator()  # as the `flowaccent` command does
    root = Path(tempfile.mkdtemp(prefix="bench_quality_"))
    try:
        if args.corpus:
            data = root / "train_native"
            shutil.copytree(args.corpus / "train_native", data)
            subprocess.run([*FLOWACCENT, "fbank", str(data), "--nj", "2", "--quiet"], check=True)
        else:
            data = prepare_corpus(root, args.num_sentences)
        train, valid = load_frames(data, TrainConfig().valid_fraction)
        print(f"demo corpus train_native: {len(train)} training frames, {len(valid)} held out, D={train.shape[1]}")
        _, ours = train_flowaccent(data, root / "exp", args.flowaccent_args.split())
        reference = train_reference(train, valid, args.ref_epochs)
    finally:
        shutil.rmtree(root)
    target, ref_seconds = reference[-1]["valid_nll"], reference[-1]["seconds"]
    reached = next((c for c in ours if c["valid_nll"] <= target), None)
    result = {
        "train_frames": len(train), "valid_frames": len(valid),
        "reference_epochs": args.ref_epochs, "reference_seconds": ref_seconds, "reference_final_nll": target,
        "flowaccent_epochs": len(ours), "flowaccent_final_nll": ours[-1]["valid_nll"],
        "flowaccent_best_nll": min(c["valid_nll"] for c in ours),
        "flowaccent_total_seconds": ours[-1]["seconds"],
        "flowaccent_seconds_to_target": reached["seconds"] if reached else math.nan,
        "flowaccent_epoch_at_target": reached["epoch"] if reached else None,
        "time_ratio": reached["seconds"] / ref_seconds if reached else math.nan,
        "reference_curve": reference, "flowaccent_curve": ours,
    }
    print(f"reference ({args.ref_epochs} epochs): {ref_seconds:.1f} s of training, final held-out NLL {target:.3f}")
    if reached:
        print(f"flowaccent reaches it at epoch {reached['epoch']} after {reached['seconds']:.1f} s: "
              f"{result['time_ratio']:.3f} of the reference's time")
    else:
        print("flowaccent does not reach it within its default epochs")
    print(f"flowaccent after its {len(ours)} default epochs: {ours[-1]['seconds']:.1f} s, "
          f"held-out NLL {ours[-1]['valid_nll']:.3f} (best {result['flowaccent_best_nll']:.3f})")
    if args.json:
        atomic_write_json(args.json, result)
    return result


if __name__ == "__main__":
    stop_on_term()
    main()
