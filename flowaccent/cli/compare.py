r"""``flowaccent compare SCORES [NAME=SCORES ...]``: several models' scores side by side."""

from __future__ import annotations

import argparse
import os
import sys

from flowaccent.cli import _stdout
from flowaccent.cli.main import COMMANDS


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "compare",
        help=COMMANDS["compare"],
        description="Reads the summary.json of each SCORES (the --out of 'flowaccent score', one per model) and "
        "prints one table per value (utterances, LogLL, LogP, LogDet, the GMM baseline's LogLL, skew, kurtosis, "
        "each score's AUC and correlation with the rating with their 95% intervals, the SVR's), rows the models and "
        "columns the sets; after each AUC table, each model's AUC minus the first's with the p of DeLong's paired "
        "test over the speakers (where the models share a reference set and scored the same utterances); and "
        "notes where a column does not compare like with like: a set of one name scored from other utterances or "
        "features (the sets' .scored.json), AUCs against other reference sets, another precision. A model is "
        "named by NAME=, else by its folder (by the experiment for EXP/scores).",
    )
    parser.add_argument("scores", nargs="+", metavar="SCORES", help="NAME=SCORES or SCORES, one per model")
    parser.add_argument("--out", metavar="FILE", help="write to FILE (atomically) instead of stdout")
    parser.add_argument("--format", choices=("md", "tsv"),
                        help="md: Markdown tables; tsv: one line per value, 'model metric set value' (default: tsv "
                        "for an --out ending in .tsv, else md)")
    return parser


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from flowaccent.data.atomic import write_named_file
    from flowaccent.data.specs import check_parents
    from flowaccent.errors import ConfigError
    from flowaccent.report.compare import compare, load_scored, markdown_text, tsv_text

    out = Path(args.out) if args.out else None
    if out is not None and (out.is_dir() or args.out.endswith(("/", os.sep))):  # 'new/' wrote a file 'new'
        raise ConfigError(f"--out {args.out} is a folder; give a file name (compare.md, compare.tsv)")
    if out is not None:
        check_parents(out, "compare", file=True)
        _check_not_ours(out)  # before the scores are read
    comparison = compare(load_scored(args.scores))
    tsv = args.format == "tsv" or (args.format is None and out is not None and out.suffix.lower() == ".tsv")
    text = tsv_text(comparison) if tsv else markdown_text(comparison, args.command_line)
    if out is None:
        _stdout.write(text)
    else:
        # it said '.../.c.tsv.tmp.14856: No such file or directory'; a link's: the folder of the file it names
        Path(os.path.realpath(out)).parent.mkdir(parents=True, exist_ok=True)
        write_named_file(out, text)
    for note in comparison.notes if tsv or out is not None else ():  # Markdown on the terminal holds them
        print(f"compare: note: {note}", file=sys.stderr)
    if out is not None:
        print(f"compare: {len(comparison.scored)} model(s): {out}", file=sys.stderr)
    return 0


#: The first line of each of compare's outputs (Markdown, TSV): an ``--out`` that holds one is an earlier comparison.
_OWN_START = ("# flowaccent: ", "model\tmetric\tset\tvalue")


def _check_not_ours(out) -> None:
    r"""Refuses an ``--out`` that is a file there already and not an earlier comparison: ``SCORES/summary.json`` was
    replaced by the Markdown (every later compare, phones or report on those scores failed), so was a model's
    ``config.yaml``."""
    from flowaccent.errors import ConfigError

    if not out.is_file() or out.stat().st_size == 0:  # an empty one: '--out /dev/stdout > new.md' made it
        return
    with open(out, encoding="utf-8", errors="replace") as f:
        if f.readline().startswith(_OWN_START):
            return
    raise ConfigError(f"--out {out} is a file there already, not an earlier comparison, which it would replace; give "
                      "the comparison a file of its own (or remove that one)")
