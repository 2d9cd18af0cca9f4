r"""``flowaccent blurmask --exp EXP_DIR --data DATA_DIR [--data NAME=DATA_DIR ...] --out OUT_DIR``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flowaccent.blurmask.config import BASELINES, BlurMaskConfig, DeletionConfig, RunConfig
from flowaccent.cli._options import add_config_options, config_from_args, given_options
from flowaccent.cli.main import COMMANDS
from flowaccent.errors import ConfigError
from flowaccent.words import counted


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "blurmask",
        help=COMMANDS["blurmask"],
        description="Learns, for every time-frequency cell of --utts utterances of each DATA_DIR (or those of "
        "--utt-list), how widely "
        "its energy can be blurred along frequency before the model's output (--target) changes, then "
        "removes cells in the mask's order (lowest m, highest m, random) and measures deletion curves. "
        "Writes OUT_DIR/<set>/<utt>.npz, OUT_DIR/<set>/figures/<utt>.png|pdf, utt_table.tsv, "
        "deletion_curves.png|pdf, summary.md, config.yaml and, last, summary.json.",
    )
    parser.add_argument("--exp", required=True, metavar="EXP_DIR", help="experiment dir of 'flowaccent train'")
    parser.add_argument(
        "--data", required=True, action="append", metavar="DATA_DIR", help="DATA_DIR or NAME=DATA_DIR; repeatable"
    )
    parser.add_argument("--out", required=True, help="output dir")
    parser.add_argument("--checkpoint", help="model file (default: EXP_DIR/final.pt)")
    parser.add_argument(
        "--baselines", nargs="+", choices=BASELINES, help="what removed cells become (default: floor mean blur)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_options(parser, RunConfig)
    add_config_options(parser, BlurMaskConfig)
    add_config_options(parser, DeletionConfig)
    return parser


def unused_options(fit: BlurMaskConfig, deletion: DeletionConfig, given) -> list[str]:
    r"""The options among ``given`` (field names) that the run ignores: ``--sigma-*`` under ``--variant blur``,
    ``--m-min`` under ``noise``, and ``--m-max`` there too unless the ``blur`` baseline gives removed cells that
    width (it was said to be ignored, and changed that baseline's curves)."""
    other = {"blur": ("sigma_min", "sigma_max"), "noise": ("m_min",)}[fit.variant]
    if fit.variant == "noise" and "blur" not in deletion.baselines:
        other += ("m_max",)
    return [f"--{name.replace('_', '-')}" for name in other if name in given]


def run(args: argparse.Namespace) -> int:
    given = given_options(RunConfig, args)
    if "utts" in given and given.get("utt_list"):  # --utts was ignored without a word
        raise ConfigError("--utts and --utt-list: give one (--utt-list names the utterances, --utts picks that many "
                          "of each data dir)")
    deletion = config_from_args(DeletionConfig, args)
    if args.baselines:
        deletion = deletion.replace(baselines=tuple(dict.fromkeys(args.baselines)))
    fit_config = config_from_args(BlurMaskConfig, args)  # these checks before torch's import
    if unused := unused_options(fit_config, deletion, given_options(BlurMaskConfig, args)):
        print(f"blurmask: warning: {' and '.join(unused)} {'are' if len(unused) > 1 else 'is'} not of --variant "
              f"{fit_config.variant}, which ignores {'them' if len(unused) > 1 else 'it'}", file=sys.stderr)
    run_config = config_from_args(RunConfig, args)
    from flowaccent.blurmask.run import run_blurmask
    from flowaccent.blurmask.tables import fixed, mask_symbol, utts_defined

    report = run_blurmask(
        args.exp,
        args.data,
        args.out,
        fit_config,
        deletion,
        run_config,
        args.checkpoint,
        args.quiet,
        args.command_line,
    )
    for baseline, values in report["all"]["baselines"].items():
        if "auc" not in values:
            print(f"blurmask: {counted(values['num_utts'], 'utt')}, baseline {baseline}: no removal changed the output "
                  "of any utterance (no curve)", file=sys.stderr)
            continue
        auc, srg, m = values["auc"], values["srg"], mask_symbol(report["config"]["fit"]["variant"])
        print(
            f"blurmask: {utts_defined(values)} utt{'s' * (values['num_utts'] != 1)}, baseline {baseline}: AUC lowest "
            f"{m} first "
            f"{fixed(auc['low']['mean'], 3)}, highest {m} first {fixed(auc['high']['mean'], 3)}, "
            f"random {fixed(auc['random']['mean'], 3)}, SRG {fixed(srg['mean'], 3)}",
            file=sys.stderr,
        )
    print(f"blurmask: {Path(args.out) / 'summary.json'}", file=sys.stderr)
    return 0
