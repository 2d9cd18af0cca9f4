r"""``flowaccent cmvn DATA_DIR``: per-speaker CMVN stats of a data dir's features (Kaldi's
``steps/compute_cmvn_stats.sh``)."""

from __future__ import annotations

import argparse
import sys

from flowaccent.cli.main import COMMANDS


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "cmvn",
        help=COMMANDS["cmvn"],
        description="Kaldi's steps/compute_cmvn_stats.sh: reads every matrix of the data dir's feats.scp and writes "
        "each speaker's CMVN stats (compute-cmvn-stats --spk2utt) into DATA_DIR/data/cmvn_NAME.DIGEST.ark and "
        "DATA_DIR/cmvn.scp (replaced), for features 'flowaccent fbank' did not make (it writes cmvn.scp itself) "
        "and models trained with features.cmvn: spk. DIGEST names the ark by the stats it holds: an ark a subset "
        "or copy of the dir points at is never replaced. Atomic: nothing is written if a matrix cannot be read.",
    )
    parser.add_argument("data_dir", metavar="DATA_DIR")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    from flowaccent.features.make_cmvn import make_cmvn

    summary = make_cmvn(args.data_dir, quiet=args.quiet)
    print(f"cmvn: {args.data_dir}: stats of {summary.speakers} speaker(s), {summary.utterances} utterance(s), "
          f"{summary.frames} frames of dim {summary.dim} in {summary.seconds:.1f} s ({summary.ark})", file=sys.stderr)
    return 0
