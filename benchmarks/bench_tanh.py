r"""The coupling's tanh on a CPU: ``torch.tanh_`` against ``flows.coupling.tanh_`` (``2 sigmoid(2x) - 1``).

Two measurements, side by side in one run, median of ``--repeats`` (interleaved):
  op     the in-place tanh alone on ``(batch, D/2)`` float32 (what each coupling computes), ms, and the
         largest absolute error of each against float64 ``tanh``
  model  inference and training frames/s of the 10 x 512 flow (``bench_model.build``; inference as
         ``flowaccent score`` runs it, training forward + backward + fused Adam) with the coupling's tanh
         as it is, and with ``torch.tanh_`` put back (flows.coupling patched; flows.halves calls it there): the speed-up

Usage: python benchmarks/bench_tanh.py [--dims 120 440] [--batches 2048 10000] [--repeats 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import time
from unittest import mock

import torch
from bench_common import stop_on_term  # noqa: E402
from bench_model import ARCH, add_table_args, build, time_infer, time_train

from flowaccent.allocator import tune_allocator
from flowaccent.data.atomic import atomic_write_json
from flowaccent.flows import coupling


def torch_tanh():
    r"""``torch.tanh_`` as the coupling's tanh inside the block (the code before flows.coupling.tanh_)."""
    fn = lambda x: x.tanh_()  # noqa: E731
    return mock.patch.multiple(coupling, tanh_=fn)


def op_ms(fn, u: torch.Tensor, reps: int = 20) -> float:
    v = u.clone()
    start = time.perf_counter()
    for _ in range(reps):
        fn(v.copy_(u))
    copy_start = time.perf_counter()
    for _ in range(reps):
        v.copy_(u)
    end = time.perf_counter()
    return ((copy_start - start) - (end - copy_start)) / reps * 1e3  # the copy taken out


def run(dims: list[int], batches: list[int], repeats: int = 5, steps: int = 3) -> list[dict]:
    rows = []
    for dim in dims:
        model = build(dim, ARCH, cond_dim=dim)
        for batch in batches:
            u = torch.randn(batch, dim // 2) * 2
            exact = torch.tanh(u.double())
            errors = {name: (fn(u.clone()).double() - exact).abs().max().item()
                      for name, fn in (("torch", torch.Tensor.tanh_), ("coupling", coupling.tanh_))}
            times: dict[str, list[float]] = {k: [] for k in ("op_torch", "op_coupling", "infer_torch",
                                                            "infer_coupling", "train_torch", "train_coupling")}
            for _ in range(repeats):
                times["op_torch"].append(op_ms(torch.Tensor.tanh_, u))
                times["op_coupling"].append(op_ms(coupling.tanh_, u))
                with torch_tanh():
                    times["infer_torch"].append(time_infer(model, batch, steps)[0])
                    times["train_torch"].append(time_train(model, batch, steps))
                times["infer_coupling"].append(time_infer(model, batch, steps)[0])
                times["train_coupling"].append(time_train(model, batch, steps))
            med = {k: statistics.median(v) for k, v in times.items()}
            rows.append({"dim": dim, "batch": batch, **med, "error_torch": errors["torch"],
                         "error_coupling": errors["coupling"],
                         "infer_speedup": statistics.median(c / t for c, t in zip(times["infer_coupling"],
                                                                                 times["infer_torch"])),
                         "train_speedup": statistics.median(c / t for c, t in zip(times["train_coupling"],
                                                                                 times["train_torch"]))})
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_table_args(parser, repeats=5)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    tune_allocator()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.repeats} interleaved")
    print("   D  batch  torch.tanh_ ms  coupling ms  op speed-up  max err torch  max err coupling"
          "  infer fr/s (torch -> coupling)  speed-up  train fr/s (torch -> coupling)  speed-up")
    rows = run(args.dims, args.batches, args.repeats, args.steps)
    for r in rows:
        print(f"{r['dim']:4d} {r['batch']:6d} {r['op_torch']:15.3f} {r['op_coupling']:12.3f} "
              f"{r['op_torch'] / r['op_coupling']:11.2f}x {r['error_torch']:14.1e} {r['error_coupling']:17.1e} "
              f"{r['infer_torch']:15.0f} -> {r['infer_coupling']:6.0f} {r['infer_speedup']:17.3f}x "
              f"{r['train_torch']:15.0f} -> {r['train_coupling']:6.0f} {r['train_speedup']:17.3f}x")
    if args.json:
        atomic_write_json(args.json, {"rows": rows})
    return rows


if __name__ == "__main__":
    stop_on_term()
    main()
