r"""``flowaccent phones --scores DIR CTM [CTM ...]``: each scored set's LogLL by phone, against the reference set."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flowaccent.cli import _stdout
from flowaccent.cli._options import whole_number
from flowaccent.cli.main import COMMANDS


def _positive(text: str) -> float:
    r"""A frame shift in seconds: > 0, and at most 1 (``10``, meant as ms, ranked no phone, without a word)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got '{text}'")
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected seconds (0.01 for 10 ms), got '{text}'")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "phones",
        help=COMMANDS["phones"],
        description="Pools each scored set's per-frame LogLL (frame_scores.ark of 'flowaccent score') over the "
        "frames of each phone of the CTM files (Kaldi's 'utt channel start duration phone' lines: "
        "ali-to-phones --ctm-output, or the demo corpus's DATA_DIR/phones.ctm or canonical.ctm; keyed by "
        "recording, as "
        "steps/get_train_ctm.sh writes one of a data dir with segments, they are cut into the utterances by the "
        "segments of the data dir each set was scored from) and ranks each set's phones by "
        "their relative LogLL (each frame's minus its utterance's mean: a voice's level taken out) minus the "
        "reference set's, beside their LogLL minus the reference's, each with a 95% interval by a bootstrap of "
        "the speakers. Writes "
        "Markdown to stdout, or with --out DIR: DIR/phones.md, DIR/phone_scores.tsv (a line per set and phone) "
        "and the figure DIR/phones.png and .pdf (and DIR/phones.json: which scores; 'flowaccent report --phones "
        "DIR' shows them). A set none of whose utterances the CTMs hold is left out, and "
        "said so.",
    )
    parser.add_argument("ctm", nargs="+", metavar="CTM",
                        help="CTM files, keyed by utterance or by recording (any sets, any order)")
    parser.add_argument("--scores", required=True, metavar="DIR", help="the --out of 'flowaccent score'")
    parser.add_argument("--out", metavar="DIR",
                        help="write phones.md, phone_scores.tsv, phones.png/.pdf and phones.json there")
    parser.add_argument("--reference", metavar="NAME",
                        help="the set the others are set against (default: the one 'flowaccent score' used)")
    parser.add_argument("--frame-shift", type=_positive, metavar="SECONDS",
                        help="the features' frame shift (default: each set's data dir's fbank.json, else its "
                        "frame_shift file, else 0.01)")
    parser.add_argument("--min-frames", type=whole_number(), default=50, metavar="N",
                        help="rank a phone only with at least N frames in the set and in the reference (default: "
                        "50)")
    parser.add_argument("--phones", metavar="FILE",
                        help="a phone table (lang/phones.txt) naming the integers of a CTM ali-to-phones wrote")
    parser.add_argument("--base-phones", action="store_true",
                        help="pool a phone's Kaldi variants: drop a word-position suffix (_B, _E, _I, _S), then a "
                        "stress digit (AH1_B, AH0_E: AH)")
    return parser


def run(args: argparse.Namespace) -> int:
    import contextlib

    from flowaccent.data.lock import output_lock, reading_lock
    from flowaccent.errors import ConfigError

    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder (phones.md, phone_scores.tsv and the figure go in)")
    if out is not None:  # in among a scored set's files (or a data dir's tables), as report and plot refuse
        from flowaccent.data.specs import check_not_inputs

        check_not_inputs(out, "the phones tables and figure")
    scores = Path(args.scores)
    with contextlib.ExitStack() as held:  # two runs into one --out mixed their tables; a score rewrote the scores
        if out is not None:
            held.enter_context(output_lock(out, "phones"))
        if out is None or out.resolve() != scores.resolve():  # else held already, and a second lock would refuse it
            held.enter_context(reading_lock(scores, f"--scores {scores}"))
        return _run(args, out)


def _run(args: argparse.Namespace, out: Path | None) -> int:
    r""":func:`run`'s work, its folders locked."""
    from flowaccent.data.atomic import atomic_write_json, atomic_write_text
    from flowaccent.report.phones import STAMP, build_report, markdown_text, stamp, summary_line, tsv_text

    report = build_report(Path(args.scores), args.ctm, args.reference, args.min_frames, args.frame_shift,
                          args.phones, args.base_phones)
    for note in report.notes:
        print(f"phones: note: {note}", file=sys.stderr)
    if out is None:
        _stdout.write(markdown_text(report, args.scores, args.command_line))
        return 0
    from flowaccent.plots import phone_differences

    out.mkdir(parents=True, exist_ok=True)
    (out / STAMP).unlink(missing_ok=True)  # an earlier run's tables are not these scores' until the stamp is back
    png = phone_differences(report.differences, report.reference, out / "phones")
    atomic_write_text(out / "phone_scores.tsv", tsv_text(report))
    atomic_write_text(out / "phones.md", markdown_text(report, args.scores, args.command_line, png.name))
    atomic_write_json(out / STAMP, stamp(report, Path(args.scores), args.command_line))
    for line in summary_line(report):
        print(f"phones: {line}", file=sys.stderr)
    print(f"phones: {out / 'phones.md'}, {out / 'phone_scores.tsv'}, {png}", file=sys.stderr)
    return 0
