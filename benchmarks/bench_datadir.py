r"""Start-up on a data dir of many utterances: what the commands do per utterance before any frame is used.

Writes a Kaldi data dir of ``--utts`` utterances (default 200000 of 5 frames, 40-d; LibriSpeech's 960 h hold
281k, GigaSpeech's XL 8.3M) and times, in fresh processes, median of ``--repeats``, with each process's peak
RSS (``ru_maxrss``, through :func:`bench_score.peak_rss_run`, whose start is in the seconds too):

  validate     ``flowaccent validate DIR``: the tables read and checked
  train check  ``flowaccent train DIR --exp E --check --features.cmvn none`` (the dir has no CMVN stats):
               all that ``train`` does before its first step for a new run (the tables, the data's digests
               for ``--resume``, the feature readers, the model and its optimiser), then it stops
  score        ``flowaccent score`` of the dir with a 2 x 32 flow (trained one step by this checkout first):
               what scoring does per utterance around a model that costs next to nothing
  spk table    ``score``'s ``spk_scores.tsv`` of ``--speaker-utts`` utterances (default 50000) each its own
               speaker (Kaldi's ``utt2spk`` where the speakers are not known), written by
               ``write_speaker_tsv`` in a child process (its start and imports, ~0.3 s, in the seconds)

With ``--other-tree DIR`` (a folder holding another version's ``flowaccent/``, e.g. ``git archive REV flowaccent
| tar -x -C DIR``) the same commands of that checkout run in the same repeats, alternating, the order swapped
every repeat, and each row gives this checkout's speed over it (the median of the per-repeat ratios) and its
peak RSS over this one's (medians). Then, in
this process, the library's parts on the same dir (best of ``--repeats``): ``read_table`` of ``utt2spk``,
``read_scp`` of ``feats.scp``, ``load_data_dir``, ``fingerprint_text``.

Usage: python benchmarks/bench_datadir.py [--utts 200000] [--repeats 5] [--other-tree DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_common import count, stop_on_term  # noqa: E402
from bench_model import other_tree  # noqa: E402
from bench_quality import FLOWACCENT  # noqa: E402
from bench_score import peak_rss_run, write_corpus  # noqa: E402

from flowaccent.data.atomic import atomic_write_json  # noqa: E402

#: Writes the speaker table of ``argv[1]`` utterances, each its own speaker, to ``argv[2]``.
SPEAKER_TABLE = """
import sys
import numpy as np
from pathlib import Path
from flowaccent.score.tables import write_speaker_tsv
n, rng = int(sys.argv[1]), np.random.default_rng(0)
utts = [f"spk{i:07d}-utt" for i in range(n)]
table = {"utt": utts, "spk": utts, "num_frames": rng.integers(1, 900, n).astype(float)}
table.update({c: rng.normal(size=n) for c in ("log_ll", "log_p", "log_det", "nll", "llr")})
write_speaker_tsv(Path(sys.argv[2]), table)
"""


def commands(data: Path, root: Path, speaker_utts: int) -> dict[str, list[str]]:
    r"""The timed commands on ``data`` (absolute paths: another checkout's commands run in its folder); ``root``:
    where the model to score is (:func:`small_model`) and their outputs go."""
    return {"validate": [*FLOWACCENT, "validate", str(data)],
            "train check": [*FLOWACCENT, "train", str(data), "--exp", str(root / "exp"), "--check",
                            "--features.cmvn", "none"],
            "score": [*FLOWACCENT, "score", "--exp", str(root / "model"), "--out", str(root / "scores"), str(data),
                      "--quiet"],
            "spk table": [sys.executable, "-c", SPEAKER_TABLE, str(speaker_utts), str(root / "spk_scores.tsv")]}


def small_model(data: Path, root: Path) -> None:
    r"""Trains the 2 x 32 flow that ``score`` runs with into ``root / "model"`` (one step)."""
    peak_rss_run([*FLOWACCENT, "train", str(data), "--exp", str(root / "model"), "--features.cmvn", "none",
              "--model.num-blocks", "2", "--model.hidden", "32", "--train.epochs", "1",
              "--train.max-steps-per-epoch", "1", "--quiet"])


def parts(data: Path, repeats: int) -> dict[str, float]:
    r"""Best seconds of each library part on ``data``, in this process."""
    from flowaccent.data.datadir import load_data_dir, read_table
    from flowaccent.data.fingerprint import fingerprint_text
    from flowaccent.data.kaldi_io import read_scp

    calls = {"read_table utt2spk": lambda: read_table(data / "utt2spk"),
             "read_scp feats.scp": lambda: read_scp(data / "feats.scp"),
             "load_data_dir": lambda: load_data_dir(data),
             "fingerprint_text": lambda: fingerprint_text([data], with_cmvn=False)}
    best = {}
    for name, call in calls.items():
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - start)
        best[name] = min(seconds)
    return best


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utts", type=count, default=200_000)
    parser.add_argument("--repeats", type=count, default=5)
    parser.add_argument("--speaker-utts", type=int, default=50_000, help="the spk table's utterances")
    parser.add_argument("--other-tree", help="also time the commands of another checkout (its folder)")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    other_tree(args.other_tree)  # a folder without flowaccent/: said before the corpus is written
    root = Path(tempfile.mkdtemp(prefix="bench_datadir_"))
    trees = [None, args.other_tree] if args.other_tree else [None]
    try:
        data = write_corpus(root / "data", args.utts * 5, utt_frames=5)
        small_model(data, root)
        runs: dict[tuple[str, str | None], list[tuple[float, float]]] = {}
        for repeat in range(args.repeats):
            for name, command in commands(data, root, args.speaker_utts).items():
                for tree in trees if repeat % 2 == 0 else trees[::-1]:
                    runs.setdefault((name, tree), []).append(peak_rss_run(command, tree))
        rows = []
        for name in commands(data, root, args.speaker_utts):
            mine = runs[name, None]
            row = {"command": name, "seconds": statistics.median(s for s, _ in mine),
                   "rss_mib": statistics.median(r for _, r in mine)}
            if args.other_tree:
                theirs = runs[name, args.other_tree]
                row["other_seconds"] = statistics.median(s for s, _ in theirs)
                row["speedup"] = statistics.median(t / m for (m, _), (t, _) in zip(mine, theirs))
                row["other_rss_mib"] = statistics.median(r for _, r in theirs)
            rows.append(row)
        result = {"utts": args.utts, "speaker_utts": args.speaker_utts, "repeats": args.repeats, "commands": rows,
                  "parts": parts(data, args.repeats)}
    finally:
        shutil.rmtree(root)
    print(markdown(result))
    if args.json:
        atomic_write_json(args.json, result)
    return result


def markdown(result: dict) -> str:
    other = "other_seconds" in result["commands"][0]
    lines = [f"{result['utts']} utterances of 5 frames (the spk table: {result['speaker_utts']}), median of "
             f"{result['repeats']} fresh processes:", "",
             "| command | seconds | peak RSS MiB |"
             + (" other checkout's seconds | speed vs it | its peak RSS MiB |" if other else ""),
             "| --- | ---: | ---: |" + (" ---: | ---: | ---: |" if other else "")]
    for row in result["commands"]:
        lines.append(f"| {row['command']} | {row['seconds']:.2f} | {row['rss_mib']:.0f} |"
                     + (f" {row['other_seconds']:.2f} | {row['speedup']:.2f}x | {row['other_rss_mib']:.0f} |"
                        if other else ""))
    lines += ["", "In this process, best of the repeats:", "", "| part | seconds |", "| --- | ---: |"]
    lines += [f"| {name} | {seconds:.3f} |" for name, seconds in result["parts"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    stop_on_term()
    main()
