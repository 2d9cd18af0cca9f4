r"""``flowaccent fbank DATA_DIR``: filterbanks, utt2num_frames and per-speaker CMVN stats."""

from __future__ import annotations

import argparse
import sys

from flowaccent.cli._options import add_config_options, given_options, integer
from flowaccent.cli.main import COMMANDS
from flowaccent.features.fbank import FbankConfig
from flowaccent.features.kaldi_conf import KALDI_NAMES, read_kaldi_conf
from flowaccent.features.make_fbank import make_fbank
from flowaccent.words import counted


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "fbank",
        help=COMMANDS["fbank"],
        description="Reads wav.scp (files and 'cmd |' entries; with a segments file, recordings cut into "
        "utterances as Kaldi's extract-segments cuts them) and writes feats.scp + ark, "
        "utt2num_frames, per-speaker cmvn.scp and fbank.json (these options and the audio's rates, which train "
        "keeps and score checks sets against) into the data dir (arks under DATA_DIR/data/). "
        "Atomic and idempotent. Kaldi's compute-fbank-feats options, with dither 0 and 40 bins.",
    )
    parser.add_argument("data_dir", metavar="DATA_DIR")
    parser.add_argument("--nj", type=integer, default=1, help="parallel jobs (default: 1)")
    parser.add_argument("--channel", type=integer, help="audio channel; -1: mono required (default: -1)")
    parser.add_argument("--config", metavar="FILE", help="a Kaldi feature config file (conf/fbank.conf: --name=value "
                        "lines, Kaldi's names taken too); options on the command line win")
    parser.add_argument("--resume", action="store_true", help="take over the features a stopped run (Ctrl-C, kill, "
                        "an error, failed utterances) with the same options wrote, of the recordings listed now, up to "
                        "the first that is new or changed, has an utterance that failed, or whose audio files changed "
                        "since (recordings and segments no longer listed left out), and compute the rest: the same "
                        "files as one run; features complete already, of the same options, audio files and utt2spk "
                        "(fbank.json), are kept")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_options(parser, FbankConfig, aliases=KALDI_NAMES)  # and compute-fbank-feats' spellings
    return parser


def run(args: argparse.Namespace) -> int:
    values, channel = read_kaldi_conf(args.config) if args.config else ({}, None)
    config = FbankConfig.from_dict(values | given_options(FbankConfig, args), "fbank")
    channel = args.channel if args.channel is not None else -1 if channel is None else channel
    summary = make_fbank(args.data_dir, config, nj=args.nj, channel=channel, quiet=args.quiet,
                         resume=args.resume)
    computed = summary.num_frames > summary.taken_frames  # all taken over: no rate to say
    if summary.kept:  # said why by make_fbank
        print(f"fbank: {args.data_dir}: {counted(summary.num_utts, 'utterance')}, {summary.num_frames} frames, kept",
              file=sys.stderr)
        return 0
    print(
        f"fbank: {args.data_dir}: {counted(summary.num_utts, 'utterance')}, {summary.num_frames} frames"
        f"{f' ({summary.taken_frames} taken over)' if summary.taken_frames else ''} in {summary.seconds:.1f} s"
        f"{f' ({summary.frames_per_second:.0f} frames/s)' if computed else ''}",
        file=sys.stderr,
    )
    resampled = {rate: n for rate, n in summary.source_rates.items() if rate != config.sample_frequency}
    if resampled:
        rates = ", ".join(f"{n} from {rate} Hz" for rate, n in sorted(resampled.items()))
        print(f"fbank: resampled to {config.sample_frequency} Hz: {rates}", file=sys.stderr)
    if summary.removed:  # a subset or copy made before pointed at them: its feats.scp now points at nothing
        print(f"fbank: removed the features of an earlier run ({', '.join(str(p) for p in summary.removed)}); data "
              f"dirs made from {args.data_dir} before (a subset, a copy) pointed at them: make them again",
              file=sys.stderr)
    return 0
