r"""The CPU's part of training and scoring without a model, against the code before.

What a step waits for when the model is fast (a GPU: docs/performance.md, section GPU) is the CPU
making its batches. Timed here without a model, median of ``--repeats`` interleaved runs, each
against a reference kept in this file, the code as it was before (2026-11-30):

  deltas   ``add_deltas`` on ``(500, 40)`` utterances: one small matmul per frame (now) against
           shifted multiply-adds tap by tap (before, ``shifted_add_deltas``);
  stream   one epoch of the trainer's stream (``FrameStream``, batch ``--batch``, a 200k-frame
           shuffling buffer) of 40-d + deltas = 120-d (``stream``) or 11 spliced frames = 440-d
           (``stream_440``): now each utterance written once into a buffer reused across
           fillings and each batch gathered as it is taken; before
           (``reference_epoch``) the utterances joined into a new buffer per filling and the
           whole buffer permuted into another, with the deltas as before;
  score    the scorer's feature batches (reading, deltas, joining ~8000 frames), the deltas
           now and before;
  score_rows  the scorer's records of its scored batches (per-utterance rows, the per-frame ark, the
           latent sample, the mean latents): now per batch (``scorer._add_batch``), before per
           utterance (``add_rows_before``), on the same synthetic outputs of a 120-d DNF model.

The batches are the same bit for bit (tests/train/test_frames.py); the deltas' largest
difference is printed. Then the peak RSS of a process that streams one epoch (now and before), for
120-d (deltas) and 440-d (11 spliced frames) input, with the batches made inline and a whole filling
ahead (``train.prefetch`` auto on a GPU), each in a fresh process with a 5 ms pause per batch.

Usage: python benchmarks/bench_loading.py [--frames 1000000] [--batch 10000] [--repeats 3]
                                          [--rss-dims 120 440] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from bench_common import count, stop_on_term  # noqa: E402
from bench_score import peak_rss_run, write_corpus  # noqa: E402
from bench_train import bench_config, trainer_stream  # noqa: E402

from flowaccent.data.atomic import atomic_write_json  # noqa: E402
from flowaccent.data.prefetch import GPU_DEPTH, prefetch  # noqa: E402
from flowaccent.features import deltas as deltas_module  # noqa: E402
from flowaccent.features import pipeline as pipeline_module  # noqa: E402


def shifted_add_deltas(x: torch.Tensor, order: int = 2, window: int = 2) -> torch.Tensor:
    r"""``add_deltas`` as it was: the edge-padded frames, then each window as shifted multiply-adds."""
    scales = deltas_module.delta_scales(order, window)
    num_frames, pad = x.shape[-2], order * window
    padded = x[..., torch.arange(-pad, num_frames + pad).clamp_(0, num_frames - 1), :]
    blocks = [x]
    for w in scales[1:]:
        first = pad - (len(w) - 1) // 2
        out = None
        for j, weight in enumerate(w.tolist()):
            if weight != 0.0:
                term = padded[..., first + j : first + j + num_frames, :]
                out = term * weight if out is None else out.add_(term, alpha=weight)
        blocks.append(out)
    return torch.cat(blocks, dim=-1)


def reference_epoch(stream, epoch: int):
    r"""``FrameStream.epoch`` as it was: each utterance's frames joined into a new buffer per
    filling, the whole buffer permuted into another, then cut; the rest carried to the next."""
    rng = np.random.default_rng([stream.seed, epoch, stream.rank, 1])
    frames, labels, held = [], [], 0

    def shuffled():
        x, y = torch.cat(frames), torch.cat(labels)
        perm = torch.from_numpy(rng.permutation(len(x)))
        return x[perm], y[perm]

    for ref in stream.shard(epoch):
        x = stream.frames_of(ref)
        frames.append(x)
        labels.append(torch.full((len(x),), ref.label, dtype=torch.long))
        held += len(x)
        if held >= stream.buffer_frames:
            x_all, y_all = shuffled()
            cut = len(x_all) - len(x_all) % stream.batch_size
            for i in range(0, cut, stream.batch_size):
                yield x_all[i : i + stream.batch_size], y_all[i : i + stream.batch_size]
            frames, labels, held = [x_all[cut:]], [y_all[cut:]], len(x_all) - cut
    if held:
        x_all, y_all = shuffled()
        for i in range(0, len(x_all), stream.batch_size):
            yield x_all[i : i + stream.batch_size], y_all[i : i + stream.batch_size]


@contextlib.contextmanager
def deltas_before():
    r"""The feature pipeline with the deltas as they were."""
    now = pipeline_module.add_deltas
    pipeline_module.add_deltas = shifted_add_deltas
    try:
        yield
    finally:
        pipeline_module.add_deltas = now


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def score_batches(data: Path) -> None:
    r"""The scorer's feature batches of ``data`` (40-d, deltas), as ``flowaccent score`` makes them."""
    from flowaccent.data.datadir import load_data_dir
    from flowaccent.data.stream import iter_utterances
    from flowaccent.features import FeaturePipeline
    from flowaccent.score.config import ScoreConfig
    from flowaccent.score.scorer import _feature_batches

    class Model:  # what _feature_batches reads of a model
        pipeline = FeaturePipeline(bench_config(10000).features, 40)

    for _ in _feature_batches(Model, iter_utterances(load_data_dir(data), 40, False), ScoreConfig().batch_frames):
        pass


def scored_outputs(frames: int, dim: int = 120, utt_frames: int = 500, batch: int = 8000):
    r"""What the scorer's model gives for ``frames`` frames: ``[(pending, outputs)]`` in batches of
    ``batch`` frames of ``utt_frames``-frame utterances (one set of random outputs, reused)."""
    from flowaccent.data.stream import Utterance

    rng = np.random.default_rng(0)
    outputs = {"z": rng.standard_normal((batch, dim)).astype(np.float32),
               **{k: rng.standard_normal(batch).astype(np.float32) for k in ("log_p", "log_det", "llr")}}
    per_batch = batch // utt_frames
    return [([(Utterance(f"spk{i % 50:03d}-{i * per_batch + j:07d}", f"spk{i % 50:03d}", None, None), utt_frames)
              for j in range(per_batch)], outputs) for i in range(frames // batch)]


def add_rows_before(pending, outputs, rows, ark, reservoir, means) -> None:
    r"""The scorer's records of one batch as they were: utterance by utterance."""
    start = 0
    for utt, frames in pending:
        end = start + frames
        log_p, log_det = (outputs[k][start:end].astype(np.float64) for k in ("log_p", "log_det"))
        log_ll = log_p + log_det
        ark.write(utt.utt, np.stack([log_p, log_det], axis=1).astype(np.float32))
        values = {"utt": utt.utt, "spk": utt.spk, "num_frames": len(log_p), "log_ll": log_ll.mean(),
                  "log_p": log_p.mean(), "log_det": log_det.mean(), "nll": -log_ll.mean(),
                  "llr": outputs["llr"][start:end].astype(np.float64).mean()}
        for c in rows:
            rows[c].append(values[c])
        means.append(outputs["z"][start:end].mean(0))
        reservoir.add(outputs["z"][start:end], utt.utt)
        start = end


def record_rows(batches, out: Path, before: bool) -> None:
    r"""The scorer's records of ``batches`` (:func:`scored_outputs`) into ``out``, now or ``before``."""
    from flowaccent.data.kaldi_io import ArkWriter
    from flowaccent.score.scorer import Reservoir, _add_batch
    from flowaccent.score.tables import COLUMNS

    rows: dict[str, list] = {c: [] for c in (*COLUMNS, "llr")}
    reservoir, means = Reservoir(20000, batches[0][1]["z"].shape[1], 0), []
    with ArkWriter(out / "frame_scores.ark", out / "frame_scores.scp") as ark:
        for pending, outputs in batches:
            if before:
                add_rows_before(pending, outputs, rows, ark, reservoir, means)
            else:
                means.append(_add_batch(pending, outputs, rows, ark, reservoir))


def stream_config(batch: int, dim: int):
    r"""bench_train's experiment with 120-d (deltas) or 440-d (11 spliced frames) input."""
    config = bench_config(batch)
    if dim == 440:
        return dataclasses.replace(config, features=dataclasses.replace(config.features, deltas=0, splice=5))
    return config


def stream_one_epoch(data: Path, batch: int, dim: int, ahead: bool, before: bool) -> None:
    r"""One epoch of the trainer's stream (``before``: as it was), a whole filling made ahead or none,
    5 ms per batch (so a queue fills)."""
    from flowaccent.allocator import tune_allocator

    tune_allocator()
    with trainer_stream(data, stream_config(batch, dim)) as stream, contextlib.ExitStack() as stack:
        if before:
            stack.enter_context(deltas_before())
        epoch = reference_epoch(stream, 0) if before else stream.epoch(0)
        with prefetch(epoch, stream.burst + GPU_DEPTH if ahead else 0) as batches:
            for x, _ in batches:
                assert x.shape[1] == dim
                time.sleep(0.005)


def epoch_peak_rss(data: Path, batch: int, dim: int, ahead: bool, before: bool) -> float:
    r"""Peak RSS in MiB of a fresh process that runs :func:`stream_one_epoch`."""
    child = [sys.executable, __file__, "--child", str(data), str(batch), str(dim), str(int(ahead)), str(int(before))]
    return peak_rss_run(child)[1]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=count, default=1_000_000)
    parser.add_argument("--batch", type=count, default=10000)
    parser.add_argument("--repeats", type=count, default=3)
    parser.add_argument("--rss-dims", type=int, nargs="*", choices=(120, 440), default=[120, 440],
                        help="input dims whose streaming peak RSS is measured (none: skip)")
    parser.add_argument("--json", help="also write the result here")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)  # data batch dim ahead before
    args = parser.parse_args(argv)
    if args.child:
        data, batch, dim, ahead, before = args.child
        stream_one_epoch(Path(data), int(batch), int(dim), ahead == "1", before == "1")
        return {}
    from flowaccent.allocator import tune_allocator

    tune_allocator()  # as the `flowaccent` command runs
    rng = np.random.default_rng(0)
    utts = [torch.from_numpy(rng.standard_normal((500, 40)).astype(np.float32)) for _ in range(args.frames // 500)]
    diff = max(float((deltas_module.add_deltas(u) - shifted_add_deltas(u)).abs().max()) for u in utts[:200])
    parts = ("deltas", "stream", "stream_440", "score", "score_rows")
    times: dict[str, list[float]] = {k: [] for part in parts for k in (part, f"{part}_before")}
    root = Path(tempfile.mkdtemp(prefix="bench_loading_"))
    try:
        data = write_corpus(root / "data", args.frames)
        outputs = scored_outputs(args.frames)
        with (trainer_stream(data, stream_config(args.batch, 120)) as stream,
              trainer_stream(data, stream_config(args.batch, 440)) as stream_440):
            for _ in range(args.repeats):
                times["deltas"].append(seconds(lambda: [deltas_module.add_deltas(u) for u in utts]))
                times["deltas_before"].append(seconds(lambda: [shifted_add_deltas(u) for u in utts]))
                for part, s in (("stream", stream), ("stream_440", stream_440)):
                    times[part].append(seconds(lambda s=s: sum(1 for _ in s.epoch(0))))
                    with deltas_before():
                        times[f"{part}_before"].append(seconds(lambda s=s: sum(1 for _ in reference_epoch(s, 0))))
                times["score"].append(seconds(lambda: score_batches(data)))
                with deltas_before():
                    times["score_before"].append(seconds(lambda: score_batches(data)))
                for part, before in (("score_rows", False), ("score_rows_before", True)):
                    times[part].append(seconds(lambda before=before: record_rows(outputs, root, before)))
        rss = [{"dim": dim, "ahead": ahead, "now_mib": epoch_peak_rss(data, args.batch, dim, ahead, False),
                "before_mib": epoch_peak_rss(data, args.batch, dim, ahead, True)}
               for dim in args.rss_dims for ahead in (False, True)]
    finally:
        shutil.rmtree(root)
    median = {k: statistics.median(v) for k, v in times.items()}
    result = {"frames": args.frames, "batch": args.batch, "repeats": args.repeats, "deltas_max_diff": diff, "rss": rss,
              **{f"{k}_seconds": v for k, v in median.items()}}
    print(f"the CPU's part without a model, {args.frames} frames of 40-d, median of {args.repeats}")
    print(f"{'part':>10} {'now s':>7} {'before s':>9} {'now frames/s':>13} {'speed-up':>9}")
    for part in parts:
        now, before = median[part], median[f"{part}_before"]
        result[f"{part}_speedup"] = before / now
        result[f"{part}_fps"] = args.frames / now
        print(f"{part:>10} {now:>7.3f} {before:>9.3f} {args.frames / now:>13.0f} {before / now:>8.2f}x")
    print(f"deltas: largest difference from the shifted adds {diff:.1e}")
    print("peak RSS of one epoch of the stream (MiB):")
    for r in rss:
        print(f"  D={r['dim']}, {'a filling ahead' if r['ahead'] else 'inline':>15}: now {r['now_mib']:.0f}, "
              f"before {r['before_mib']:.0f}")
    if args.json:
        atomic_write_json(args.json, result)
    return result


if __name__ == "__main__":
    stop_on_term()
    main()
