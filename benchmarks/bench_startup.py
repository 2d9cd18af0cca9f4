r"""Where a scoring command's start-up goes: fresh processes, each doing one more step of what
``flowaccent score`` does before and around its first batch (median of ``--repeats``, interleaved):

  python         the interpreter alone
  import torch   ``import torch``
  + device       and a first tensor on the device (on a GPU: CUDA's initialisation)
  + model        and the 10 x 512 checkpoint loaded, moved there and run on one utterance's frames (500)
  score          ``flowaccent score`` of a tiny corpus (``--frames``), start to end

Each row gives its seconds and what it adds to the row before. On a GPU the ``score`` row also runs
with ``--device cpu`` (``score on cpu``), which separates what CUDA adds from what any scoring command
costs. On the H200 ``flowaccent score`` spent 4-6 s that do not grow with the corpus, against ~0.5 s
of the model's work on 1M frames (docs/performance.md, section GPU): this says where they go.
``--profile`` also prints a cProfile of the score command run in this process (top entries by
cumulative time). More rows time whole commands from the python row: ``report``, ``flowaccent
report`` of the tiny corpus's scores (it imports no torch), with ``--blurmask`` ``report --blurmask``, the same
with a blur-mask run of one of its utterances (2 steps) and without the t-SNE (``--tsne-frames 0``, which would
hide the rest), ``help``, ``flowaccent --help`` (the list of commands), ``train --help`` (a command's options:
its configs, no torch), and with ``--other-tree DIR`` the same commands of another checkout (``DIR`` holds its
``flowaccent/``), their ``adds`` then over this checkout's same row.

Usage: python benchmarks/bench_startup.py [--frames 1000] [--repeats 5] [--profile] [--blurmask]
                                          [--other-tree DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_common import count, stop_on_term  # noqa: E402
from bench_model import in_turn, other_tree  # noqa: E402
from bench_score import score_argv, write_corpus, write_model  # noqa: E402

from flowaccent.data.atomic import atomic_write_json  # noqa: E402
from flowaccent.runtime import resolve_device  # noqa: E402

#: What each fresh process runs (``{exp}`` and ``{device}`` filled in); each row one step further.
STEPS = {
    "python": "pass",
    "import torch": "import torch",
    "+ device": "import torch; torch.zeros(1, device='{device}').sum().item()",
    "+ model": (
        "import torch\n"
        "from flowaccent.train.checkpoint import load_model\n"
        "model = load_model('{exp}/final.pt').eval().to('{device}')\n"
        "with torch.no_grad():\n"
        "    model(torch.zeros(500, model.dim, device='{device}')).nll.sum().item()"
    ),
}


#: The suffix of another checkout's rows (``--other-tree``).
OTHER = " (other)"


def timed(command: list[str], tree: str | None = None) -> float:
    r"""Seconds of ``command`` in a fresh process (of the checkout ``tree``: None for this one)."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, **other_tree(tree))
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])}... failed with status {done.returncode}: {done.stderr[-2000:]}")
    return seconds


def profile_score(argv: list[str], top: int = 25) -> None:
    r"""``flowaccent argv`` under cProfile in this process."""
    import cProfile
    import pstats

    from flowaccent.cli.main import main as flowaccent

    profiler = cProfile.Profile()
    profiler.runcall(flowaccent, argv)
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(top)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=count, default=1000, help="the tiny corpus's frames (500 per utterance)")
    parser.add_argument("--repeats", type=count, default=5)
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of one score command")
    parser.add_argument("--blurmask", action="store_true", help="also time 'report --blurmask' (a blur-mask run first)")
    parser.add_argument("--other-tree", help="also time the score and report commands of another checkout")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    device = resolve_device("auto", "score").type  # where `flowaccent score` (device auto) runs
    root = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    try:
        data = write_corpus(root / "data", args.frames)
        write_model(root / "exp", args.blocks, args.hidden)
        commands = {name: [sys.executable, "-c", code.format(exp=root / "exp", device=device)]
                    for name, code in STEPS.items()}
        flowaccent = [sys.executable, "-m", "flowaccent"]
        commands["score"] = flowaccent + score_argv(root / "exp", data, root / "out", device)
        if device != "cpu":
            commands["score on cpu"] = flowaccent + score_argv(root / "exp", data, root / "out_cpu", "cpu")
        timed(commands["score"])  # the scores the report rows read
        report = flowaccent + ["report", "--exp", str(root / "exp"), "--scores", str(root / "out"), "--out"]
        commands["report"] = report + [str(root / "report" / "report.html")]
        masked = report[:-1] + ["--blurmask", str(root / "masks"), "--tsne-frames", "0", "--out"]
        if args.blurmask:
            timed(flowaccent + ["blurmask", "--exp", str(root / "exp"), "--data", str(data), "--out",
                                str(root / "masks"), "--utts", "1", "--steps", "2", "--quiet"])  # what they read
            commands["report --blurmask"] = masked + [str(root / "report_masks" / "report.html")]
        commands["help"] = flowaccent + ["--help"]
        commands["train --help"] = flowaccent + ["train", "--help"]
        if args.other_tree:
            commands["score" + OTHER] = commands["score"]
            commands["report" + OTHER] = report + [str(root / "report_other" / "report.html")]
            if args.blurmask:
                commands["report --blurmask" + OTHER] = masked + [str(root / "report_masks_other" / "report.html")]
            commands["help" + OTHER] = commands["help"]
            commands["train --help" + OTHER] = commands["train --help"]
        trees = {name: os.path.abspath(args.other_tree) if name.endswith(OTHER) else None for name in commands}
        times: dict[str, list[float]] = {name: [] for name in commands}
        for r in range(args.repeats):
            for name in in_turn(commands, r):  # no command always first
                times[name].append(timed(commands[name], trees[name]))
        rows, previous = {}, None
        print(f"start-up of `flowaccent score` on {device}, {args.blocks} x {args.hidden}, {args.frames} frames, "
              f"median of {args.repeats} fresh processes each")
        print(f"{'step':>26} {'seconds':>8} {'adds':>7}")
        bases = {"score on cpu": "import torch", "report": "python", "report --blurmask": "python", "help": "python",
                 "train --help": "python"}
        bases.update({name: name.removesuffix(OTHER) for name in times if name.endswith(OTHER)})  # this checkout's
        for name, values in times.items():
            seconds = statistics.median(values)
            base = bases.get(name, previous)  # the steps build on each other
            adds = seconds - (rows[base]["seconds"] if base else 0.0)
            rows[name] = {"seconds": seconds, "adds": adds, "all": values}
            print(f"{name:>26} {seconds:>8.2f} {adds:>+7.2f}")
            if name not in bases:
                previous = name
        print("(adds: over the row before; for `score on cpu`, over `import torch`; for `report`, `report --blurmask`, "
              "`help` and `train --help`, over `python`; for another checkout's row, over this one's)")
        if args.profile:
            profile_score(score_argv(root / "exp", data, root / "out_profile", device))
        result = {"device": device, "frames": args.frames, "repeats": args.repeats, "rows": rows}
        if args.json:
            atomic_write_json(args.json, result)
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    stop_on_term()
    main()
