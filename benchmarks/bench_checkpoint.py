r"""The checkpoints written at the end of an epoch that is the best so far: two files against one file named twice.

The trainer writes ``checkpoints/best.pt`` and ``checkpoints/last.pt`` (model, Adam's state,
progress; atomically, with an fsync) after every epoch that improves the validation NLL. It wrote
the same state twice; it now writes best.pt and makes last.pt a second name of it
(``flowaccent.data.atomic.atomic_link``). This times both for the 10 x 512 flow (D=120, DNF
prior) after one Adam step, interleaved, median of ``--repeats``, in a temporary folder under
``--dir`` (the disk the checkpoints go to matters most).

Usage: python benchmarks/bench_checkpoint.py [--repeats 7] [--dir /tmp] [--json PATH]
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
from bench_model import build  # noqa: E402

from flowaccent.data.atomic import atomic_link, atomic_write_json  # noqa: E402
from flowaccent.flows.config import ModelConfig  # noqa: E402
from flowaccent.train.checkpoint import Progress, save_checkpoint  # noqa: E402
from flowaccent.train.optimizer import make_optimizer  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=count, default=7)
    parser.add_argument("--dir", default=None, help="where the temporary folder goes (default: the system's)")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    model = build(120, ModelConfig(num_blocks=10, hidden=512), 120)
    optimizer = make_optimizer(model.parameters(), 1e-3, 0.0)
    x = torch.randn(2048, 120)
    model(x, torch.arange(2048) % 2).nll.mean().backward()
    optimizer.step()  # Adam's state exists, as in a checkpoint after training
    progress = Progress(epoch=1, best_epoch=1)
    root = Path(tempfile.mkdtemp(prefix="bench_checkpoint_", dir=args.dir))
    def save(name: str) -> None:
        save_checkpoint(root / name, model, optimizer, progress, {})

    ways = {
        "two_files": lambda: (save("best.pt"), save("last.pt")),
        "linked": lambda: (save("best.pt"), atomic_link(root / "best.pt", root / "last.pt")),
    }
    times = {way: [] for way in ways}
    try:
        for _ in range(args.repeats):
            for way, write in ways.items():
                start = time.perf_counter()
                write()
                times[way].append(1e3 * (time.perf_counter() - start))
        size = (root / "best.pt").stat().st_size
    finally:
        shutil.rmtree(root)
    ms = {way: statistics.median(t) for way, t in times.items()}
    result = {"repeats": args.repeats, "file_mb": size / 1e6, "two_files_ms": ms["two_files"],
              "linked_ms": ms["linked"], "speedup": ms["two_files"] / ms["linked"]}
    print(f"end-of-epoch checkpoints of the best epoch so far, 10 x 512 flow + Adam ({result['file_mb']:.1f} MB each), "
          f"median of {args.repeats}: two files {ms['two_files']:.1f} ms, one file named twice {ms['linked']:.1f} ms, "
          f"{result['speedup']:.2f}x")
    if args.json:
        atomic_write_json(args.json, result)
    return result


if __name__ == "__main__":
    stop_on_term()
    main()
