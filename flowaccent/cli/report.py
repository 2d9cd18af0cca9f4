r"""``flowaccent report`` and ``flowaccent plot``: figures, report.html and report.md from scores."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flowaccent.cli._options import whole_number
from flowaccent.cli.main import COMMANDS


def _add(subparsers, name: str, description: str, out_help: str) -> argparse.ArgumentParser:
    r"""``report`` and ``plot`` take the same options: ``--exp``, ``--scores``, ``--out``, ``--tsne-frames``."""
    from flowaccent.report import TSNE_FRAMES

    parser = subparsers.add_parser(name, help=COMMANDS[name], description=description)
    parser.add_argument("--exp", required=True, metavar="EXP_DIR", help="experiment dir")
    parser.add_argument("--scores", required=True, help="output dir of 'flowaccent score'")
    parser.add_argument("--out", help=out_help)
    parser.add_argument("--tsne-frames", type=whole_number("0: no t-SNE"), default=TSNE_FRAMES, metavar="N",
                        help=f"frames per set in the t-SNE of the latents, a random sample (default: {TSNE_FRAMES}; "
                        "0: no t-SNE; the slowest figure, its time growing faster than its points)")
    return parser


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = _add(
        subparsers,
        "report",
        "Reads EXP_DIR (config, training log) and SCORES (the output of 'flowaccent score') and "
        "writes report.html (images embedded; --out), its .md twin and figures/*.png|pdf in its folder: give each "
        "report its own folder (two in one share figures/).",
        "a path ending in .html, or a folder for OUT/report.html (any other name is taken as a folder; default: "
        "EXP_DIR/report.html; a link: written beside the file it links to)",
    )
    parser.add_argument("--blurmask", metavar="DIR", help="also the results of 'flowaccent blurmask --out DIR' "
                        "(masks of the scored model): its AUC/SRG tables, deletion curves and a mask per set")
    parser.add_argument("--phones", metavar="DIR", action="append",
                        help="also the results of 'flowaccent phones --out DIR' (of these scores): each set's lowest "
                        "phones against the reference's, and their figure; repeat it for several runs (the phones "
                        "spoken and those of a canonical alignment)")
    return parser


def run(args: argparse.Namespace) -> int:
    from flowaccent.report import write_report

    command = args.command_line
    out = write_report(args.exp, args.scores, args.out, command, blurmask=args.blurmask, tsne_frames=args.tsne_frames,
                       phones=args.phones)
    print(f"report: {out}", file=sys.stderr)
    return 0


def add_plot_parser(subparsers) -> argparse.ArgumentParser:
    return _add(
        subparsers,
        "plot",
        "Draws the figures of 'flowaccent report' (training curves, latents' first dims, PCA and t-SNE, LogLL "
        "histograms, ROC curves, ratings) from EXP_DIR and SCORES as PNG and PDF, without the report.",
        "figure dir (default: SCORES/figures)",
    )


def run_plot(args: argparse.Namespace) -> int:
    from flowaccent.report import make_figures

    out = Path(args.out) if args.out else Path(args.scores) / "figures"
    for title, png in make_figures(Path(args.exp), Path(args.scores), out, tsne_frames=args.tsne_frames).items():
        print(f"plot: {title}: {png}", file=sys.stderr)
    return 0
