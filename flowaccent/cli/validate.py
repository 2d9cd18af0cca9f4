r"""``flowaccent validate DATA_DIR``: what is wrong with a data dir, or that it is fine."""

from __future__ import annotations

import argparse
import sys

from flowaccent.cli.main import COMMANDS
from flowaccent.data.datadir import load_data_dir, validate_data_dir
from flowaccent.data.kaldi_io import ScpReader


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "validate",
        help=COMMANDS["validate"],
        description="Checks sorting, unique keys, utt2spk/spk2utt consistency, speaker-prefix "
        "rule and coverage of every table. With --read-feats, also reads every matrix of "
        "feats.scp (and cmvn.scp) and checks frames, dims and values.",
    )
    parser.add_argument("data_dirs", metavar="DATA_DIR", nargs="+")
    parser.add_argument("--read-feats", action="store_true", help="also read every feature matrix")
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
    from flowaccent.errors import FlowAccentError

    data = load_data_dir(data_dir)
    try:
        if data.has("feats.scp"):
            frames = data.utt2num_frames() if data.has("utt2num_frames") else None
            dims = {m.shape[1] for _, m in ScpReader(data.path / "feats.scp", utt2num_frames=frames)}
            if len(dims) > 1:
                return [f"{data.path / 'feats.scp'}: utterances have different dims {sorted(dims)}"]
        if data.has("cmvn.scp"):
            for _, _m in ScpReader(data.path / "cmvn.scp"):
                pass
    except FlowAccentError as error:
        return [str(error)]
    return []
