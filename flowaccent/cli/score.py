r"""``flowaccent score --exp EXP_DIR --out OUT_DIR DATA_DIR [DATA_DIR ...]``."""

from __future__ import annotations

import argparse
import sys

from flowaccent.cli._options import add_config_options, config_from_args
from flowaccent.cli.main import COMMANDS
from flowaccent.score.config import ScoreConfig
from flowaccent.words import counted


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "score",
        help=COMMANDS["score"],
        description="Scores every utterance of each DATA_DIR (or NAME=DATA_DIR) with EXP_DIR/final.pt and "
        "writes OUT_DIR/<set>/{utt_scores.tsv, spk_scores.tsv, frame_scores.ark/scp, latents.npy, latent_utts.txt, "
        "utt_latent_means.npy} and OUT_DIR/{summary.json, config.yaml}. "
        "A set's name (NAME, else the dir's own name) is a folder name of ASCII letters, digits, _ . + - (not "
        "first .). Streams: memory stays flat for any corpus size. Features must match the model's (same fbank "
        "options; feats.scp and cmvn.scp as written by 'flowaccent fbank'). Several processes: torchrun "
        "--nproc_per_node N $(which flowaccent) score ...: each scores a share of every set (OUT_DIR on a file "
        "system all of them see).",
    )
    parser.add_argument("data_dirs", metavar="DATA_DIR", nargs="+")
    parser.add_argument("--exp", required=True, metavar="EXP_DIR", help="experiment dir of 'flowaccent train'")
    parser.add_argument("--out", required=True, help="output dir")
    parser.add_argument("--reference", help="set the others are told apart from (default: the first)")
    parser.add_argument("--baseline", choices=("none", "gmm"), default="none", help="also score a diagonal GMM")
    parser.add_argument("--checkpoint", help="model file (default: EXP_DIR/final.pt)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--resume", action="store_true", help="keep the sets an earlier run into OUT_DIR scored "
                        "completely from the same model, data and options (not --batch-frames, --device, --prefetch) "
                        "instead of scoring them again; a run that stops keeps the sets it finished")
    add_config_options(parser, ScoreConfig)
    return parser


def run(args: argparse.Namespace) -> int:
    config = config_from_args(ScoreConfig, args)  # a config error is told before torch's import (~1.5 s)
    from flowaccent.score.run import score_corpora

    report = score_corpora(
        args.exp,
        args.out,
        args.data_dirs,
        args.reference,
        args.baseline,
        config,
        args.checkpoint,
        args.quiet,
        args.command_line,
        args.resume,
    )
    from flowaccent.report.tables import with_interval

    for name, values in report.get("sets", {}).items():  # none on a torchrun rank but 0
        detection = report["detection"].get(name, {})
        auc_text = f", AUC vs {report['reference']} {with_interval(detection, 'log_ll')}" if detection.get("auc") \
            is not None else ""
        print(
            f"score: {name}: {counted(values['num_utts'], 'utt')}, LogLL {values['log_ll']:.2f} "
            f"(LogP {values['log_p']:.2f}, LogDet {values['log_det']:.2f}){auc_text}",
            file=sys.stderr,
        )
    return 0
