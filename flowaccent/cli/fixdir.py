r"""``flowaccent fixdir DATA_DIR``: keep the utterances every table lists (Kaldi's ``utils/fix_data_dir.sh``), less
those an ``--exclude`` list names, then validate."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flowaccent.cli.main import COMMANDS
from flowaccent.data.fix import fix_data_dir, left_out
from flowaccent.data.kaldi_text import fields
from flowaccent.data.rules import FBANK_OUTPUTS, NEEDED
from flowaccent.errors import DataDirError


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "fixdir",
        help=COMMANDS["fixdir"],
        description=f"Kaldi's utils/fix_data_dir.sh: keeps the utterances that every table of {', '.join(NEEDED)} "
        "the data dir has lists (with segments, whose recording wav.scp lists), less those --exclude names, and "
        "rewrites every table to them, their speakers and recordings (spk2utt made again, cmvn.scp of the speakers "
        "left; Kaldi's other tables such as utt2dur and spk2gender line by line); unsorted tables are sorted. "
        "utt2num_frames gets the frame counts it lacks, counted in feats.scp (Kaldi's "
        "utils/data/get_utt2num_frames.sh; made where it is not there). The "
        "tables it changes are kept as they were in DATA_DIR/.backup. Then validates the data dir. Where the last "
        "'flowaccent fbank' on the dir failed, its feats.scp (an earlier run's) leaves no utterance out. After a "
        "'flowaccent fbank' that failed on some utterances: 'flowaccent fixdir --exclude "
        "DATA_DIR/data/fbank_failed.txt DATA_DIR', then 'flowaccent fbank --resume DATA_DIR' computes only what the "
        "failed run did not.",
    )
    parser.add_argument("data_dir", metavar="DATA_DIR")
    parser.add_argument("--exclude", metavar="FILE", action="append", default=[],
                        help="utterances to leave out: the first word of each line (fbank's "
                        "DATA_DIR/data/fbank_failed.txt, or a list of ids); may be given more than once")
    return parser


def run(args: argparse.Namespace) -> int:
    from flowaccent.data.rules import inspect_dir

    exclude = [utt for path in args.exclude for utt in _listed(path)]
    summary = fix_data_dir(args.data_dir, exclude)
    why = left_out(summary.lacking, summary.excluded, "listed by --exclude")
    kept = (f"kept {summary.kept} of {summary.total} utterance(s) ({why})" if summary.kept < summary.total
            else f"kept all {summary.total} utterance(s)")
    unknown = f"; {summary.unknown} utterance(s) --exclude lists are not in it" if summary.unknown else ""
    made = f"; made {', '.join(summary.made)}" if summary.made else ""
    replaced = (f"; wrote {', '.join(summary.replaced)} (the tables they replaced: {summary.backup})"
                if summary.replaced else "")
    wrote = made + replaced if summary.changed else "; nothing to change"
    added = f" ({summary.added} kept that it lacks)" if summary.added else ""
    stale = (f"; feats.scp is {summary.stale_feats}: it leaves no utterance out{added}, and "
             f"{', '.join(FBANK_OUTPUTS)} are not checked ('flowaccent fbank' replaces them)" if summary.stale_feats
             else "")
    counted = (f"; counted the frames of {summary.counted} utterance(s) in feats.scp for utt2num_frames"
               if summary.counted else "")
    print(f"fixdir: {args.data_dir}: {kept}{unknown}{stale}{counted}{wrote}", file=sys.stderr)
    problems = inspect_dir(Path(args.data_dir), (), FBANK_OUTPUTS if summary.stale_feats else (), kaldi=True)[1]
    for problem in problems:  # what a fix cannot mend (utt2spk not sorted by speaker, a bad value)
        print(f"flowaccent fixdir: error: {problem}", file=sys.stderr)
    if not problems:
        print(f"{args.data_dir}: OK")
    return 1 if problems else 0


def _listed(path: str) -> list[str]:
    r"""The utterance ids a ``--exclude`` file lists: the first field of each line (blank lines skipped)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise DataDirError(f"{path}: cannot read the --exclude list: {error.strerror}") from None
    return [words[0] for words in map(fields, text.split("\n")) if words]
