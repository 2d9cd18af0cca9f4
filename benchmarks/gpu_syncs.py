r"""Where the host waits for the GPU: ``flowaccent train`` and ``flowaccent score`` run in this process
under ``torch.cuda.set_sync_debug_mode("warn")``, and every call that made the host wait for the GPU
is counted by the line of flowaccent (or torch) it came from.

A line counted about once per training step (``--frames / --batch`` per epoch) or per scoring batch
keeps the GPU idle while the host launches the next one (flowaccent.transfer); lines counted a few
times (start-up, validation, checkpoints) do not matter. Needs a GPU; on a CPU it says so and exits.

Usage: python benchmarks/gpu_syncs.py [--frames 200000] [--batch 10000] [--json PATH]
"""

from __future__ import annotations

import argparse
import collections
import shutil
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from bench_common import count, stop_on_term  # noqa: E402
from bench_score import write_corpus  # noqa: E402
from bench_train import bench_config  # noqa: E402

from flowaccent.cli.main import main as flowaccent  # noqa: E402
from flowaccent.data.atomic import atomic_write_json  # noqa: E402


def counted(argv: list[str]) -> collections.Counter:
    r"""Runs ``flowaccent argv`` with sync warnings on; counts them by their innermost flowaccent frame."""
    where: collections.Counter = collections.Counter()
    shown = warnings.showwarning

    def record(message, category, filename, lineno, file=None, line=None):
        if "synchroniz" not in str(message):
            return shown(message, category, filename, lineno, file, line)
        frames = [f for f in traceback.extract_stack()[:-1] if "flowaccent" in f.filename]
        f = frames[-1] if frames else None
        where[f"{Path(f.filename).parent.name}/{Path(f.filename).name}:{f.lineno} {f.line}" if f else "?"] += 1

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record
        torch.cuda.set_sync_debug_mode("warn")
        try:
            status = flowaccent(argv)
        finally:
            torch.cuda.set_sync_debug_mode("default")
            warnings.showwarning = shown
    if status != 0:
        raise SystemExit(f"flowaccent {argv[0]} failed with status {status}")
    return where


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=count, default=200_000)
    parser.add_argument("--batch", type=count, default=10000)
    parser.add_argument("--json", help="also write the counts here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_syncs: no GPU here: nothing to count")
        return {}
    root = Path(tempfile.mkdtemp(prefix="gpu_syncs_"))
    result = {}
    try:
        data = write_corpus(root / "data", args.frames)
        (root / "conf.yaml").write_text(bench_config(args.batch).to_yaml())
        result["train"] = counted(["train", "--config", str(root / "conf.yaml"), "--exp", str(root / "exp"),
                                   str(data), "--quiet"])
        result["score"] = counted(["score", "--exp", str(root / "exp"), "--out", str(root / "scores"), str(data),
                                   "--quiet", "--batch-frames", str(args.batch)])
    finally:
        shutil.rmtree(root)
    steps = -(-args.frames // args.batch)
    for what, where in result.items():
        print(f"{what}: {sum(where.values())} synchronising calls ({steps} steps or batches); by line:")
        for line, n in where.most_common(12):
            print(f"  {n:6d}  {line}")
    if args.json:
        atomic_write_json(args.json, {k: dict(v) for k, v in result.items()})
    return result


if __name__ == "__main__":
    stop_on_term()
    main()
