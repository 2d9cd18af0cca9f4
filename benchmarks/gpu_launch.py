r"""Is a GPU step bound by the host launching it? For the 10 x 512 flow's training step (forward,
backward, Adam) and its scoring forward: the host's seconds to launch one (no waiting for the
GPU) against the wall seconds per step over many in a row (the GPU's queue drained once at the
end), and the GPU's own busy time per step (CUDA events around the whole run, divided).

When the launch time is about the wall time, the GPU waits for the host: making the host wait
less for the GPU (flowaccent.transfer) cannot speed the step up, only launching fewer kernels
(CUDA graphs, ``train.compile_mode reduce-overhead``) can. At batch 10000 the step is also timed
with what ``flowaccent train`` adds to it (the logged means, gradient clipping: ``trainer_10000``),
then under ``train.deterministic`` (``+det_10000``), then that without filling each new tensor
(``torch.utils.deterministic.fill_uninitialized_memory = False``: ``+det_nofill``). Needs a GPU; on a
CPU it says so.

Usage: python benchmarks/gpu_launch.py [--steps 30] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from bench_common import count, stop_on_term  # noqa: E402
from bench_model import ARCH, build  # noqa: E402

from flowaccent.data.atomic import atomic_write_json  # noqa: E402
from flowaccent.flows.packed import packed_inference  # noqa: E402
from flowaccent.train.optimizer import make_optimizer  # noqa: E402
from flowaccent.transfer import HostCopy  # noqa: E402


def timed(step, steps: int) -> dict:
    r"""Milliseconds per ``step``: the host's launching (median of ``steps``) and the wall clock of all of
    them in a row; and the GPU's busy time for one (median of 5), measured with the step queued whole
    behind a 0.2 s sleep kernel, so that no gap waiting for the host falls between its events."""
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    launch = []
    start = time.perf_counter()
    for _ in range(steps):
        t = time.perf_counter()
        step()
        launch.append(time.perf_counter() - t)
    torch.cuda.synchronize()
    wall = (time.perf_counter() - start) / steps
    busy = []
    for _ in range(5):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda._sleep(400_000_000)  # cycles: ~0.2 s at 2 GHz, longer than launching one step
        begin.record()
        step()
        end.record()
        torch.cuda.synchronize()
        busy.append(begin.elapsed_time(end))
    return {"launch_ms": 1e3 * statistics.median(launch), "wall_ms": 1e3 * wall, "gpu_ms": statistics.median(busy)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=count, default=30)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_launch: no GPU here")
        return {}
    model = build(120, ARCH, 0, "cuda")
    optimizer = make_optimizer(model.parameters(), lr=1e-5)
    rows = {}
    for batch in (2048, 10000):
        x = torch.randn(batch, 120, device="cuda")
        y = torch.arange(batch, device="cuda") % 2

        def train_step(x=x, y=y):
            loss = model(x, y).nll.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        model.train()
        rows[f"train_{batch}"] = timed(train_step, args.steps)

    def trainer_step(x=x, y=y):  # what `flowaccent train` adds to each step: the logged means, gradient clipping
        out = model(x, y)
        loss = out.nll.mean()
        stats = torch.stack([loss.detach(), -out.log_p.detach().mean(), -out.log_det.detach().mean()]).double()
        HostCopy({"stats": stats})
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()

    rows["trainer_10000"] = timed(trainer_step, args.steps)
    fill = torch.utils.deterministic.fill_uninitialized_memory
    try:  # train.deterministic (on by default): with and without filling each new tensor
        torch.use_deterministic_algorithms(True, warn_only=True)
        rows["+det_10000"] = timed(trainer_step, args.steps)
        torch.utils.deterministic.fill_uninitialized_memory = False
        rows["+det_nofill"] = timed(trainer_step, args.steps)
    finally:
        torch.use_deterministic_algorithms(False)
        torch.utils.deterministic.fill_uninitialized_memory = fill
    model.eval()
    for batch in (8000, 65536):
        x = torch.randn(batch, 120, device="cuda")
        with torch.no_grad(), packed_inference(model):
            rows[f"score_{batch}"] = timed(lambda x=x: model(x), args.steps)
    print(f"{'step':>13} {'host launch ms':>15} {'wall ms':>8} {'GPU ms':>7}")
    for name, r in rows.items():
        print(f"{name:>13} {r['launch_ms']:>15.2f} {r['wall_ms']:>8.2f} {r['gpu_ms']:>7.2f}")
    if args.json:
        atomic_write_json(args.json, rows)
    return rows


if __name__ == "__main__":
    stop_on_term()
    main()
