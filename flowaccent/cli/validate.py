r"""``flowaccent validate DATA_DIR``: what is wrong with a data dir, or that it is fine."""

from __future__ import annotations

import argparse
import sys

from flowaccent.cli.main import COMMANDS
from flowaccent.data.datadir import load_data_dir, validate_data_dir

#: Kaldi's ``validate_data_dir.sh`` options, accepted so that a recipe's line runs: each says its tables are not
#: required, as none of them is here; those that are there are checked, as Kaldi checks them.
KALDI_OPTIONS = {"feats": "feats.scp", "text": "text", "wav": "wav.scp"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "validate",
        help=COMMANDS["validate"],
        description="Checks sorting, unique keys, utt2spk/spk2utt consistency, speaker-prefix "
        "rule and coverage of every table, with Kaldi's rules for the tables flowaccent's commands do not read "
        "(spk2gender, utt2dur, ...), Windows line ends and text's symbols and whitespace (docs/data.md). With "
        "--read-feats, "
        "also reads every matrix of "
        "feats.scp (which must exist) and cmvn.scp and checks frames, dims and values, and that the "
        "CMVN stats match the features' dim.",
    )
    parser.add_argument("data_dirs", metavar="DATA_DIR", nargs="+")
    parser.add_argument("--read-feats", action="store_true", help="also read every feature matrix")
    for option, table in KALDI_OPTIONS.items():
        parser.add_argument(f"--no-{option}", action="store_true",
                            help=f"Kaldi's option: {table} not required, as it is not here (checked where it is there, "
                                 "as Kaldi checks it)")
    return parser


def run(args: argparse.Namespace) -> int:
    status = 0
    for data_dir in args.data_dirs:
        problems = validate_data_dir(data_dir)
        if not problems and args.read_feats:
            problems = _read_all(data_dir)
        if problems:
            status = 1
            for problem in problems:
                print(f"flowaccent validate: error: {problem}", file=sys.stderr)
        else:
            print(f"{data_dir}: OK")
    return status


def _read_all(data_dir: str) -> list[str]:
    r"""Reads every matrix as scoring and training read them (:func:`~flowaccent.data.stream.iter_utterances`:
    one dim throughout, finite values, frame counts against ``utt2num_frames``; ``cmvn.scp``'s stats, where
    there is one, Kaldi's ``(2, D + 1)`` for the features' ``D``); a dir without ``feats.scp`` fails. Every bad
    utterance is listed (it stopped at the first: a dir with five 0-frame utterances took five runs to clean);
    an ark that cannot be read ends the list."""
    from flowaccent.data.stream import iter_utterances
    from flowaccent.errors import FlowAccentError

    data = load_data_dir(data_dir)
    if not data.has("feats.scp"):
        return [f"{data.path}: no feats.scp to read (--read-feats)"]
    problems: list[str] = []
    try:
        for _ in iter_utterances(data, with_cmvn=data.has("cmvn.scp"), problems=problems):
            pass
    except FlowAccentError as error:
        problems.append(str(error))
    return problems
