r"""``flowaccent synth OUT_DIR``: the synthetic demo corpus (native, Mandarin- and Japanese-accented English)."""

from __future__ import annotations

import argparse
import sys

from flowaccent.cli._options import add_config_options, config_from_args, integer
from flowaccent.cli.main import COMMANDS
from flowaccent.synth.corpus import make_corpus
from flowaccent.synth.plan import SynthConfig


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "synth",
        help=COMMANDS["synth"],
        description="Writes Kaldi data dirs OUT_DIR/{train_native, dev_native, test_native, train_zh, "
        "test_zh, test_ja} (wav.scp, text, utt2spk, spk2utt, utt2accent, utt2score; utt2phones, the phonemes "
        "spoken, phones.ctm, when espeak spoke each, and canonical.ctm, the native reading's phonemes timed by "
        "them, for 'flowaccent phones') with WAV files under "
        "OUT_DIR/wav/, read by espeak-ng natively and with Mandarin and Japanese transfer rules at graded "
        "strength. OUT_DIR must not exist (or must be empty). Same options, same bytes.",
    )
    parser.add_argument("out_dir", metavar="OUT_DIR")
    parser.add_argument("--nj", type=integer, default=1, help="parallel processes (default: 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_options(parser, SynthConfig)
    return parser


def run(args: argparse.Namespace) -> int:
    config = config_from_args(SynthConfig, args)
    summary = make_corpus(args.out_dir, config, nj=args.nj, quiet=args.quiet)
    counts = ", ".join(f"{name} {n}" for name, n in summary.num_utts.items())
    print(
        f"synth: {summary.out_dir}: {sum(summary.num_utts.values())} utterances ({counts}), "
        f"{summary.audio_seconds / 3600:.2f} h of audio in {summary.seconds:.1f} s",
        file=sys.stderr,
    )
    return 0
