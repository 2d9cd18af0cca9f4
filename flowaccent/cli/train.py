r"""``flowaccent train --config CONF.yaml --exp EXP_DIR DATA_DIR [DATA_DIR ...] [--resume]``."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from flowaccent import torchrun
from flowaccent.cli._options import add_config_options, given_options
from flowaccent.cli.main import COMMANDS
from flowaccent.errors import ConfigError
from flowaccent.train.config import RESUMABLE, ExperimentConfig
from flowaccent.words import counted

SECTIONS = ("features", "model", "prior", "train")


def _resumable() -> str:
    r"""The config fields ``--resume`` lets change (:data:`flowaccent.train.config.RESUMABLE`; the help listed them by
    hand and left out train.precision): ``train.epochs, device, ... and prefetch``."""
    first, *rest = sorted(RESUMABLE, key=lambda name: (name != "train.epochs", name))
    names = [first, *(name.removeprefix("train.") for name in rest)]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else first


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help=COMMANDS["train"],
        description="Each DATA_DIR is one class, named after the dir, or NAME=DATA_DIR; a dir's utt2accent "
        "(when there is no NAME=) names the class of each utterance. Needs feats.scp, utt2num_frames "
        "(and cmvn.scp for features.cmvn=spk), as written by 'flowaccent fbank'. Writes EXP_DIR/"
        "{config.yaml, classes.txt, data.txt, data_digest.txt, fbank.json, checkpoints/{last,best}.pt, final.pt, "
        "log/train.jsonl, tensorboard/}. "
        "Options --SECTION.FIELD override the YAML. Multi-process: torchrun --nproc_per_node N "
        "$(which flowaccent) train ...",
    )
    parser.add_argument("data_dirs", metavar="DATA_DIR", nargs="*",
                        help="NAME=DATA_DIR or DATA_DIR, one or more (with --resume: default EXP_DIR/data.txt's; "
                        "with --check alone: optional)")
    parser.add_argument("--config", help="YAML with sections features, model, prior, train (default: all defaults; "
                        "with --resume, EXP_DIR/config.yaml)")
    parser.add_argument("--exp", required=True, metavar="EXP_DIR", help="experiment dir")
    parser.add_argument("--resume", action="store_true", help="continue from EXP_DIR/checkpoints/last.pt (of the "
                        f"config, only {_resumable()} may change, and the data dirs and their contents may not)")
    parser.add_argument("--check", action="store_true", help="check and exit, training and writing nothing: with "
                        "--resume, that the run would go on (its config and data against its last checkpoint); "
                        "without, that a new run would start (the config and its options, and the DATA_DIRs "
                        "when given); a recipe checks all its runs before it trains any")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, nor a line per epoch with its "
                        "validation NLL (log/train.jsonl has them)")
    for section in SECTIONS:
        add_config_options(parser, type(getattr(ExperimentConfig(), section)), prefix=section)
    return parser


def load_config(args: argparse.Namespace) -> ExperimentConfig:
    r"""The YAML (or defaults; for ``--resume``, the run's own ``EXP_DIR/config.yaml``, or the config its last
    checkpoint keeps) with the command-line overrides applied."""
    from flowaccent.data.specs import is_data_dir

    own, last = Path(args.exp) / "config.yaml", Path(args.exp) / "checkpoints" / "last.pt"
    if is_data_dir(Path(args.exp)):  # a run went in among its tables and replaced its fbank.json (exit 0)
        raise ConfigError(f"--exp {args.exp} is a Kaldi data dir; give the run a folder of its own (exp/NAME)")
    if args.resume and Path(args.exp).is_file():  # --exp DIR/final.pt: it said 'holds no run to resume'
        raise ConfigError(f"--exp {args.exp} is a file; give the run's experiment dir ({Path(args.exp).parent}?)")
    if args.config:
        base = ExperimentConfig.from_yaml(args.config)
    elif args.resume and own.is_file():
        base = ExperimentConfig.from_yaml(own)
    elif args.resume and (kept := next((p for p in (last, Path(args.exp) / "final.pt") if p.is_file()), None)):
        from flowaccent.train.checkpoint import load_checkpoint  # config.yaml gone: the run's own, as it keeps it

        base = ExperimentConfig.from_dict(load_checkpoint(kept).get("config"), str(kept))
    elif args.resume:  # a typo in --exp started the default run (10 x 512, 20 epochs) from nothing
        raise ConfigError(f"--resume: {args.exp} holds no run to resume (neither {own} nor {last} nor a finished run's "
                          f"final.pt); give the --exp of the run, or --config to start one there")
    else:
        base = ExperimentConfig()
    overrides = {s: given_options(type(getattr(base, s)), args, s) for s in SECTIONS}
    return base.with_overrides(overrides)


def data_dirs(args: argparse.Namespace) -> list[str]:
    r"""The DATA_DIR arguments; none with ``--resume``: those the run began with (``EXP_DIR/data.txt``)."""
    if args.data_dirs:
        return list(args.data_dirs)
    recorded = Path(args.exp) / "data.txt"
    if args.resume and recorded.is_file():
        lines = recorded.read_text(encoding="utf-8").splitlines()
        from flowaccent.data.specs import parse_data_specs

        for _, folder in parse_data_specs(lines):
            if not folder.is_dir():  # moved since: 'no such directory' named neither data.txt nor a way on
                raise ConfigError(f"{folder}: {'not a directory' if folder.exists() else 'no such directory'} (a "
                                  f"data dir the run began with, as {recorded} records it; moved since? edit "
                                  f"{recorded} to say where it is now)")
        return lines
    missing = f" and {recorded} does not exist" if args.resume else ""
    raise ConfigError(f"give one or more DATA_DIR (NAME=DATA_DIR){missing}")


def run(args: argparse.Namespace) -> int:
    config = load_config(args)  # a config error, or a check with no data, is told before torch's import (~1.5 s)
    if args.check and not args.resume and not args.data_dirs:  # before the data exist (a recipe's start)
        if torchrun.rank():  # said once per torchrun run (it was once per rank)
            return 0
        print(f"train: {args.config or 'the default config'} and the options given are valid (no DATA_DIR given: "
              "no data checked)", file=sys.stderr)
        return 0
    dirs = data_dirs(args)
    from flowaccent.train.trainer import train

    read_from = args.config or (Path(args.exp) / "config.yaml" if args.resume else None)  # as load_config reads
    summary = train(config, args.exp, dirs, resume=args.resume, quiet=args.quiet, check=args.check,
                    config_file=read_from)
    if torchrun.rank():  # one summary line per run, from torchrun's rank 0
        return 0
    if args.check:
        where = {"resume": f"would go on after {summary.epochs_run} finished epoch(s) (step {summary.global_step})",
                 "done": f"has nothing left to train ({summary.epochs_run} epoch(s) done)",
                 "final": "holds a finished run of this config and data (final.pt; its checkpoints/last.pt is gone): "
                          "nothing left to train"}.get(summary.would,
                                                                                              "would start a new run")
        print(f"train: {summary.exp_dir}: {where}", file=sys.stderr)
        return 0
    valid = (f"best valid NLL {summary.best_valid_nll:.3f} nats/frame" if math.isfinite(summary.best_valid_nll)
             else "no validation NLL (no utterances held out)")
    best = summary.stopped_early_at_best
    early = (f" (stopped early, of {config.train.epochs}: no better valid NLL in the {config.train.patience} "
             f"epoch(s) after epoch {best}, --train.patience)" if best else "")
    resumed = "" if summary.resumed_at is None else f" (resumed at step {summary.resumed_at})"
    print(
        f"train: {summary.exp_dir}: {counted(summary.epochs_run, 'epoch')}{early}, "
        f"{counted(summary.global_step, 'step')}{resumed}, "
        f"{valid}; model {summary.final}",
        file=sys.stderr,
    )
    return 0
