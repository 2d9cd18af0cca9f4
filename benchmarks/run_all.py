r"""Runs every benchmark of ``docs/performance.md`` in one go and writes the table.

Sections (``--only`` picks some), each a ratio of things measured side by side in this run,
median of ``--repeats``:

  model     model-only train (eager, compiled)/inference frames/s as a share of the matmul rate (bench_model.py)
  products  a training step's oneDNN products by kind (forward, input and weight gradients, the weight
            gradient's transposed copies) against the packed forward rate (bench_products.py; oneDNN only)
  optim     the Adam step alone: default, foreach and fused (the trainer's) (bench_optim.py)
  malloc    inference-only processes with glibc's default allocator vs flowaccent's (bench_malloc.py)
  train     `flowaccent train` end to end vs model-only training, train.compile false/true, and the
            time data loading takes vs the time the steps waited for it (bench_train.py)
  score     `flowaccent score` end to end vs model-only inference, peak RSS at 1M and 4M frames,
            and with the other --prefetch setting (bench_score.py)
  baseline  `flowaccent score --baseline gmm`: the GMM's scoring in torch vs scikit-learn per utterance,
            the command fitting it vs loading the kept fit (bench_baseline.py, on the demo corpus)
  loading   the CPU's part without a model (deltas, the training stream, the scorer's feature batches
            and its records of scored batches) against the code before, kept in the benchmark (bench_loading.py)
  quality   time to the lab setting's held-out NLL on the demo corpus (bench_quality.py, ~30 min)
  precision `train`/`score --precision fp32|tf32|bf16`: seconds and NLL, full-length training over two
            seeds (bench_precision.py, ~35 min on a CPU with bf16 units, far longer without)
  bf16      the model table in bf16 on the CPU, when it multiplies bf16 in hardware (AMX, AVX512-BF16)
  blur      triangular_blur vs the dense O(T K K) blur (bench_blur.py)
  peers     flowaccent vs zuko, normflows and a plain RealNVP (bench_peers.py; `make bench-install`)
  gpu       the model table on CUDA in fp32/tf32/bf16 (compiled column: CUDA graphs), when a GPU is present
On a machine with a GPU, `train`, `score` and `precision` run on it too (`flowaccent`'s device
``auto``), which gives the end-to-end ratios on the GPU.

Writes ``OUT/latest.json`` (every number) and ``OUT/latest.md`` (the tables), both again after each section,
so a run stopped keeps what its sections measured. An earlier run's two files there are first renamed
``OUT/run-DATE-HHMMSS.json`` and ``.md`` (``--only model`` into a folder of a full run replaced its every
section). A section that fails is said, with its traceback, and the others run; the run then exits with
status 1, its failures listed in ``latest.json`` (``failed``).

Usage (the venv's Python, after ``make install``; ``make bench-install`` adds the peers):
  .venv/bin/python benchmarks/run_all.py [--only model blur ...] [--out benchmarks/results] [--quick]
  .venv/bin/python benchmarks/run_all.py --tables OUT/latest.json     (latest.md again, from the numbers)
  --quick: tiny sizes, to check that the benchmarks run in minutes (the tests do this); numbers meaningless.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import bench_baseline  # noqa: E402
import bench_blur  # noqa: E402
import bench_loading  # noqa: E402
import bench_malloc  # noqa: E402
import bench_model  # noqa: E402
import bench_optim  # noqa: E402
import bench_peers  # noqa: E402
import bench_precision  # noqa: E402
import bench_products  # noqa: E402
import bench_quality  # noqa: E402
import bench_score  # noqa: E402
import bench_train  # noqa: E402
from bench_common import count, stop_on_term  # noqa: E402

from flowaccent.data.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from flowaccent.runtime import bf16_in_hardware, cpu_units  # noqa: E402

SECTIONS = (
    "model", "products", "optim", "malloc", "train", "score", "baseline", "loading", "quality", "precision", "bf16",
    "blur", "peers", "gpu",
)


def describe_machine() -> str:
    r"""The CPU (model, family/model numbers, the vector and matrix units its kernels can use), torch and the
    GPU: the rates and the bf16 findings differ between machines of the same kind (docs/performance.md)."""
    info = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    units = cpu_units()
    cpu = info.get("model name", platform.processor() or "unknown CPU")
    if "cpu family" in info:
        cpu += f" (family {info['cpu family']}, model {info['model']})"
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (f"{os.cpu_count()} CPUs, {cpu}, {' '.join(units) or 'no AVX512/AMX'}; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; {gpu}")


def run_section(name: str, repeats: int, quick: bool) -> object:
    rep = ["--repeats", str(1 if quick else repeats)]
    if name == "model":
        return bench_model.main((["--dims", "8", "--batches", "64", "--steps", "1"] if quick else []) + rep)
    if name == "products":
        if not torch.backends.mkldnn.is_available():
            print("torch is built without oneDNN: the products section is skipped")
            return None
        return bench_products.main((["--dims", "8", "--batches", "64", "--steps", "1"] if quick else []) + rep)
    if name == "optim":
        return bench_optim.main((["--dims", "8", "--batch", "64", "--steps", "1"] if quick else []) + rep)
    if name == "malloc":
        return bench_malloc.main((["--dim", "8", "--batch", "64", "--steps", "1"] if quick else []) + rep)
    if name == "train":
        return bench_train.main((["--frames", "20000", "--batch", "1000", "--blocks", "2", "--hidden", "64"]
                                 if quick else []) + rep)
    if name == "score":
        return bench_score.main((["--frames", "10000", "--scale", "2", "--hidden", "16", "--blocks", "2"]
                                 if quick else []) + rep)
    if name == "baseline":
        return bench_baseline.main((["--num-sentences", "24"] if quick else []) + rep)
    if name == "loading":
        quick_args = ["--frames", "20000", "--batch", "1000", "--rss-dims", "120"]
        return bench_loading.main((quick_args if quick else []) + rep)
    if name == "quality":
        quick_args = ["--ref-epochs", "1", "--num-sentences", "24",
                      "--flowaccent-args", "--train.epochs 1 --model.hidden 16 --model.num-blocks 2"]
        return bench_quality.main(quick_args if quick else [])
    if name == "precision":
        return bench_precision.main(["--epochs", "1", "--seeds", "0", "--num-sentences", "24", "--train-args",
                                     "--model.hidden 16 --model.num-blocks 2"] if quick else [])
    if name == "bf16":
        if not bf16_in_hardware(torch.device("cpu")):
            print("this CPU emulates bf16 (no AMX or AVX512-BF16): the bf16 section is skipped")
            return None
        quick_args = ["--dims", "8", "--batches", "64", "--steps", "1"] if quick else []
        return bench_model.main(quick_args + rep + ["--precision", "bf16"])
    if name == "blur":
        return bench_blur.main((["--bins", "16", "--frames", "20"] if quick else []) + rep)
    if name == "peers":
        return bench_peers.main((["--dims", "8", "--batch", "64", "--steps", "1"] if quick else []) + rep)
    if name == "gpu":
        if not torch.cuda.is_available():
            print("no CUDA device: the GPU section is skipped")
            return None
        # the compiled column as CUDA graphs: on an H200 the eager step was bound by launching kernels
        # (docs/performance.md, GPU), which torch.compile's default mode only partly removes
        return [row for precision in ("fp32", "tf32", "bf16")
                for row in bench_model.main(["--device", "cuda", "--precision", precision, "--steps", "30",
                                             "--compile-mode", "reduce-overhead"] + rep)]
    raise ValueError(name)


def markdown(results: dict) -> str:
    r"""The tables of docs/performance.md from the results of one run."""
    lines = [f"Run {results['date']} on {results['machine']}.", ""]
    if rows := results.get("model"):
        lines += ["### Model only: share of the matmul rate", "",
                  "| D | batch | matmul GFLOP/s | train matmuls alone | train frames/s | train share "
                  "| vs nflows layers | vs MKL products | train share of oneDNN | oneDNN train products alone "
                  "| compiled train frames/s | compiled train share | compiled of oneDNN "
                  "| inference frames/s | inference share | vs unfolded | oneDNN packed GFLOP/s "
                  "| inference share of it |",
                  "|" + " ---: |" * 18]
        lines += [f"| {r['dim']} | {r['batch']} | {r['matmul_gflops']:.1f} | {100 * r['train_matmuls_share']:.1f}% | "
                  f"{r['train_fps']:.0f} | {100 * r['train_share']:.1f}% | {r['fused_speedup']:.2f}x | "
                  f"{r['onednn_train_speedup']:.2f}x | {100 * r['train_share_packed']:.1f}% | "
                  f"{100 * r['train_onednn_products_share_packed']:.1f}% | "
                  f"{r['train_compiled_fps']:.0f} | {100 * r['train_compiled_share']:.1f}% | "
                  f"{100 * r['train_compiled_share_packed']:.1f}% | "
                  f"{r['infer_fps']:.0f} | {100 * r['infer_share']:.1f}% | {r['fold_speedup']:.2f}x | "
                  f"{r['packed_gflops']:.1f} | {100 * r['infer_share_packed']:.1f}% |"
                  for r in rows]
        lines.append("")
    if rows := results.get("products"):
        lines += ["### A training step's oneDNN products by kind (10 x 512, GFLOP/s and share of the packed rate)", "",
                  "| D | batch | packed | forward | input gradient | weight gradient | its product alone "
                  "| its copies ms per step | copies' share of the products | all three of packed |",
                  "|" + " ---: |" * 10]
        lines += [f"| {r['dim']} | {r['batch']} | {r['packed_gflops']:.1f} | "
                  + " | ".join(f"{r[f'{k}_gflops']:.1f} ({100 * r[f'{k}_share_packed']:.1f}%)"
                               for k in bench_products.KINDS[1:])
                  + f" | {r['copy_ms']:.1f} | {100 * r['copy_share_of_products']:.1f}% | "
                  f"{100 * r['products_share_packed']:.1f}% |" for r in rows]
        lines.append("")
    if rows := results.get("optim"):
        lines += [f"### Adam step alone (10 x 512, gradients of batch {rows[0]['batch']})", "",
                  "| D | default ms | foreach ms | fused ms | fused speedup | default's share of a step "
                  "| fused's share of a step |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {r['dim']} | {r['default_ms']:.2f} | {r['foreach_ms']:.2f} | {r['fused_ms']:.2f} | "
                  f"{r['fused_speedup']:.2f}x | {100 * r['default_share_of_step']:.1f}% | "
                  f"{100 * r['fused_share_of_step']:.1f}% |" for r in rows]
        lines.append("")
    if rows := results.get("malloc"):
        lines += [f"### Allocator (inference only, fresh processes, D={rows[0]['dim']}, batch {rows[0]['batch']})", "",
                  "| allocator | inference frames/s | vs glibc defaults | page faults per step |",
                  "| --- | ---: | ---: | ---: |"]
        lines += [f"| {r['malloc']} | {r['infer_fps']:.0f} | {r['vs_system']:.3f}x | {r['faults_per_step']:.0f} |"
                  for r in rows]
        lines.append("")
    if r := results.get("train"):
        lines += [f"### `flowaccent train` end to end (D=120, {r['blocks']} x {r['hidden']})", "",
                  "| train.compile | frames | batch | model-only frames/s | steady frames/s | ratio "
                  "| whole command frames/s | ratio |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {name} | {r['frames']} | {r['batch']} | {v['model_only_fps']:.0f} | {v['steady_fps']:.0f} | "
                  f"{v['steady_ratio']:.3f} | {v['wall_fps']:.0f} | {v['wall_ratio']:.3f} |"
                  for name, v in (("false", r), ("true", r["compiled"]))]
        lines += ["", f"`--train.compile true` over `false`: {r['compiled_speedup_steady']:.3f}x steady, "
                  f"{r['compiled_speedup_wall']:.3f}x whole command (compiling included). Data loading: one "
                  f"epoch of the training stream alone took {r['loading_s']:.2f} s; the command's steps waited "
                  f"{r['data_wait_s']:.2f} s (false) and {r['compiled']['data_wait_s']:.2f} s (true) for batches "
                  f"(`train.prefetch` {r['prefetch']}).", ""]
    if r := results.get("score"):
        lines += [f"### `flowaccent score` end to end (D=120, {r['blocks']} x {r['hidden']} DNF)", "",
                  "| frames | seconds | frames/s | vs model-only inference | peak RSS MiB |",
                  "| ---: | ---: | ---: | ---: | ---: |",
                  f"| {r['frames']} | {r['seconds']:.1f} | {r['fps']:.0f} | {r['ratio']:.3f} | {r['rss_mib']:.0f} |",
                  f"| {r['large_frames']} | {r['large_seconds']:.1f} | {r['large_fps']:.0f} | {r['large_ratio']:.3f} | "
                  f"{r['large_rss_mib']:.0f} |", "",
                  f"Peak RSS ratio {r['rss_ratio']:.3f}; model-only inference {r['model_only_fps']:.0f} frames/s. "
                  f"With `--prefetch {r['other_prefetch']}` (the default here: {r['prefetch']}) at {r['frames']} "
                  f"frames: {r['other_seconds']:.1f} s, ratio {r['other_ratio']:.3f}, {r['other_speedup']:.3f}x "
                  "the default's speed. From the two sizes: "
                  f"{r['fixed_seconds']:.1f} s that do not grow with the corpus (start-up), then "
                  f"{r['marginal_fps']:.0f} frames/s, {r['marginal_ratio']:.3f} of model-only inference.", ""]
    if r := results.get("baseline"):
        lines += ["### The GMM baseline of `flowaccent score` (demo corpus)", "", bench_baseline.markdown(r), ""]
    if r := results.get("loading"):
        lines += [f"### Data loading alone ({r['frames']} frames of 40-d, batch {r['batch']})", "",
                  "| part | now s | before s | now frames/s | speed-up |", "| --- | ---: | ---: | ---: | ---: |"]
        lines += [f"| {part} | {r[f'{part}_seconds']:.3f} | {r[f'{part}_before_seconds']:.3f} | "
                  f"{r[f'{part}_fps']:.0f} | {r[f'{part}_speedup']:.2f}x |"
                  for part in ("deltas", "stream", "stream_440", "score", "score_rows")]
        lines += ["", f"Deltas: largest difference from the shifted adds {r['deltas_max_diff']:.1e}. Peak RSS of a "
                  "process streaming one epoch, MiB (now / before): "
                  + "; ".join(f"D={m['dim']} {'a filling ahead' if m['ahead'] else 'inline'} {m['now_mib']:.0f} / "
                              f"{m['before_mib']:.0f}" for m in r["rss"]) + ".", ""]
    if r := results.get("quality"):
        reached = (f"{r['flowaccent_seconds_to_target']:.0f} s (epoch {r['flowaccent_epoch_at_target']})"
                   if r["flowaccent_epoch_at_target"] else "not reached")
        lines += ["### Time to quality (demo corpus, train_native)", "",
                  "| | epochs | seconds | held-out NLL |", "| --- | ---: | ---: | ---: |",
                  f"| lab setting (plain reference) | {r['reference_epochs']} | {r['reference_seconds']:.0f} | "
                  f"{r['reference_final_nll']:.3f} |",
                  f"| `flowaccent train`, defaults, to that NLL | {r['flowaccent_epoch_at_target'] or '-'} | "
                  f"{reached} | |",
                  f"| `flowaccent train`, defaults, all epochs | {r['flowaccent_epochs']} | "
                  f"{r['flowaccent_total_seconds']:.0f} | {r['flowaccent_final_nll']:.3f} |", "",
                  f"Time ratio {r['time_ratio']:.3f} ({r['train_frames']} training, "
                  f"{r['valid_frames']} held-out frames).",
                  ""]
    if r := results.get("precision"):
        lines += ["### Precision options (demo corpus: train on train_native, NLL of test_native)", "",
                  bench_precision.markdown(r), ""]
    if rows := results.get("bf16"):
        lines += ["### bf16 on this CPU, model only (vs fp32: the fp32 step timed in the same repeats)", "",
                  "| D | batch | bf16 matmul GFLOP/s | train frames/s | vs fp32 | compiled train frames/s | vs fp32 "
                  "compiled | inference frames/s | vs fp32 |", "|" + " ---: |" * 9]
        for r in rows:

            def ratio(key, r=r):
                value = r.get(f"{key}_vs_fp32", math.nan)
                return "-" if math.isnan(value) else f"{value:.2f}x"

            lines.append(f"| {r['dim']} | {r['batch']} | {r['matmul_gflops']:.1f} | {r['train_fps']:.0f} | "
                         f"{ratio('train_fps')} | {r['train_compiled_fps']:.0f} | {ratio('train_compiled_fps')} | "
                         f"{r['infer_fps']:.0f} | {ratio('infer_fps')} |")
        lines.append("")
    if rows := results.get("blur"):
        first, tolerance = rows[0], bench_blur.TOLERANCE
        lines += [f"### Blur-mask kernel (forward + backward, T={first['frames']}, m ~ U[1, {first['m_max']:g}])", "",
                  f"| K | triangular_blur ms | dense ms | speedup | relative diff (float64) | relative diff (float32) "
                  f"| equal (within {tolerance:g}) |", "| ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        lines += [f"| {r['bins']} | {r['triangular_blur_ms']:.2f} | {r['dense_ms']:.2f} | {r['speedup']:.1f}x | "
                  f"{r['max_rel_diff_float64']:.1e} | {r['max_rel_diff_float32']:.1e} | "
                  f"{'yes' if max(r['max_rel_diff_float64'], r['max_rel_diff_float32']) <= tolerance else 'NO'} |"
                  for r in rows]
        lines.append("")
    if rows := results.get("peers"):
        lines += ["### Peers (same architecture, model only)", "", bench_peers.markdown(rows), ""]
    if rows := results.get("gpu"):
        lines += ["### GPU", "", "| precision | D | batch | matmul GFLOP/s | train frames/s | train share | "
                  "vs nflows layers | compiled train frames/s | compiled train share | inference frames/s | "
                  "inference share |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {r['precision']} | {r['dim']} | {r['batch']} | {r['matmul_gflops']:.1f} | {r['train_fps']:.0f} | "
                  f"{100 * r['train_share']:.1f}% | {r['fused_speedup']:.2f}x | {r['train_compiled_fps']:.0f} | "
                  f"{100 * r['train_compiled_share']:.1f}% | {r['infer_fps']:.0f} | {100 * r['infer_share']:.1f}% |"
                  for r in rows]
        mode = rows[0].get("compile_mode", "default")
        graphs = " (CUDA graphs)" if mode == "reduce-overhead" else ""
        lines += ["", f"Compiled column: torch.compile mode `{mode}`{graphs}."]
        lines.append("")
    if failed := results.get("failed"):
        lines += ["### Failed sections", "", *(f"- {name}: {error}" for name, error in failed.items()), ""]
    return "\n".join(lines)


def keep_earlier(out: Path) -> None:
    r"""Renames an earlier run's ``latest.json`` and ``latest.md`` in ``out`` to ``run-DATE-HHMMSS.*`` (the time
    its ``latest.json`` was last written), so this run's files replace nothing."""
    earlier = out / "latest.json"
    if not earlier.exists():
        return
    stamp = datetime.datetime.fromtimestamp(earlier.stat().st_mtime).strftime("%Y-%m-%d-%H%M%S")
    for suffix in (".json", ".md"):
        if (out / f"latest{suffix}").exists():
            os.replace(out / f"latest{suffix}", out / f"run-{stamp}{suffix}")
    print(f"run_all: the earlier run's latest.json and latest.md are now {out}/run-{stamp}.*")


def write(out: Path, results: dict) -> str:
    r"""``latest.json`` and ``latest.md`` of ``results`` so far; the tables."""
    table = markdown(results)
    atomic_write_json(out / "latest.json", results)
    atomic_write_text(out / "latest.md", table)
    return table


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--repeats", type=count, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs")
    parser.add_argument("--tables", type=Path, metavar="JSON",
                        help="the tables of an earlier run's JSON beside it (its .md) and print them; run nothing")
    args = parser.parse_args(argv)
    if args.tables:
        results = json.loads(args.tables.read_text())
        table = markdown(results)
        atomic_write_text(args.tables.with_suffix(".md"), table)
        print(table)
        return results
    machine = describe_machine()
    results: dict = {"date": datetime.date.today().isoformat(), "machine": machine, "seconds": {}}
    args.out.mkdir(parents=True, exist_ok=True)
    keep_earlier(args.out)
    for name in args.only:
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        try:
            results[name] = run_section(name, args.repeats, args.quick)
        except Exception as error:  # noqa: BLE001 - the other sections still run (a full run takes 78 min)
            traceback.print_exc()
            print(f"run_all: section {name} failed; going on with the others", file=sys.stderr)
            results.setdefault("failed", {})[name] = f"{type(error).__name__}: {error}"
        except SystemExit as stop:  # a benchmark's argument or goal check (bench_blur: not equal), said once here
            print(f"run_all: section {name} exited: {stop.code}; going on with the others", file=sys.stderr)
            results.setdefault("failed", {})[name] = f"exited: {stop.code}"
        results["seconds"][name] = round(time.perf_counter() - start, 1)
        table = write(args.out, results)  # kept section by section
    print(table)
    if results.get("failed"):
        sys.exit(f"run_all: {len(results['failed'])} section(s) failed: {', '.join(results['failed'])}")
    return results


if __name__ == "__main__":
    stop_on_term()
    main()
