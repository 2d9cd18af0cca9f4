r"""``flowaccent phones``' tables: how much of each set the CTMs cover, each set's phones against the reference
set's (lowest first, with 95% intervals over the speakers), the reference's own, as Markdown and as a TSV of a
line per set and phone (:mod:`flowaccent.score.phones` computes them); the stamp its ``--out`` holds, and the part
of ``flowaccent report --phones`` read back from there."""

from __future__ import annotations

import csv
import dataclasses
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flowaccent.data.atomic import atomic_copy, file_digest
from flowaccent.data.ctm import Segment, base_phone, channel_number, read_ctm, read_phone_table
from flowaccent.errors import ConfigError
from flowaccent.report.figures import PHONES_FIGURES
from flowaccent.report.inputs import load_summary
from flowaccent.report.pages import markdown_escaped, markdown_table
from flowaccent.report.tables import fmt, with_bounds
from flowaccent.score.phones import Difference, SetPhones, TwoChannels, data_dir_of, differences, set_phones
from flowaccent.words import counted

#: What the Markdown says under its title.
LEGEND = ("LogLL: log p(x) of the model, the mean over the phone's frames (a phone of the CTM holds the frames t "
          "with round(start / shift) <= t < round(end / shift)). Relative: the mean over those frames of each "
          "frame's LogLL minus its utterance's mean LogLL, how far the phone lies below the rest of the same "
          "speech; a voice's level, which moves all its phones, is taken out. Minus the reference: the value in "
          "the set minus in the reference set; the tables rank the phones by the relative one, lowest (least like "
          "the reference's) first. Each 95% interval is a bootstrap of each set's speakers (empty with fewer than "
          "3 on a side). Phones of fewer frames than the minimum in either set are listed under the table, not "
          "ranked. docs/scoring.md of flowaccent's source says more.")


#: Below this share of the frames of the utterances the CTMs hold in a phone, the command says so: a CTM of
#: phones with long gaps, or times read at the wrong frame shift (the demo's CTMs cover 99.5-99.7%).
LOW_COVERAGE = 0.8


@dataclasses.dataclass(frozen=True)
class PhoneReport:
    r"""What ``flowaccent phones`` found: each set by phone (``sets``, the reference among them), the reference's
    name, each other set's :class:`Difference` list, the CTM files read, the minimum of frames, and what the
    command says of what it left out or cut from recordings (``notes``)."""

    sets: dict[str, SetPhones]
    reference: str
    differences: dict[str, list[Difference]]
    ctms: tuple[str, ...]
    min_frames: int
    notes: tuple[str, ...] = ()


def read_ctms(
    paths: Sequence[str | Path], phones: str | Path | None = None, base: bool = False,
    empty: list[str] | None = None, keys: dict[str, set[str]] | None = None,
) -> dict[str, list[Segment]]:
    r"""The CTM files' utterances in one mapping; ``phones``: a phone table naming integer phones; ``base``: each
    phone as :func:`~flowaccent.data.ctm.base_phone` (``AH1_B`` as ``AH``). An utterance in two files is an error
    where they give it other phones (the same lines twice: one CTM given twice), and so is every file of no phone
    (said as 'the CTMs hold none of the utterances of the reference set'); ``empty`` gets those of no phone, ``keys``
    each file's keys (utterances or recordings)."""
    symbols = read_phone_table(phones) if phones is not None else None
    merged: dict[str, list[Segment]] = {}
    where: dict[str, str] = {}
    none = []
    for path in paths:
        utterances = read_ctm(path, symbols)
        if not utterances:
            none.append(str(path))
        if keys is not None:
            keys[str(path)] = set(utterances)
        for utt, segments in utterances.items():
            if base:
                segments = [s._replace(phone=base_phone(s.phone)) for s in segments]
            if utt in merged and _as_numbers(merged[utt]) != _as_numbers(segments):
                raise ConfigError(f"{path}: utterance '{utt}' is in {where[utt]} too, with other phones")
            merged[utt], where[utt] = segments, str(path)
    if none and len(none) == len(paths):
        raise ConfigError(f"{', '.join(none)}: no phone in {'it' if len(none) == 1 else 'them'} (an empty CTM: did "
                          "the alignment fail?)")
    if empty is not None:
        empty += none
    return merged


def _as_numbers(segments: Sequence[Segment]) -> list[Segment]:
    r"""``segments`` with their channels as numbers (:func:`~flowaccent.data.ctm.channel_number`): ``A`` and ``1``
    are one channel, and one CTM written each way is the same CTM."""
    return [s._replace(channel=channel_number(s.channel)) for s in segments]


def build_report(
    scores: Path, ctms: Sequence[str | Path], reference: str | None = None, min_frames: int = 50,
    frame_shift: float | None = None, phones: str | Path | None = None, base: bool = False,
) -> PhoneReport:
    r"""``flowaccent phones``: the sets of ``scores`` (``flowaccent score --out``) by phone of the ``ctms``
    against ``reference`` (default: the scores' own). ``frame_shift`` (seconds) for every set, else each set's
    own (:func:`~flowaccent.score.phones.frame_shift_of`); ``phones`` and ``base`` as :func:`read_ctms`'s. A set
    the CTMs do not cover is left out with a note; the reference left out, or no other set, is an error."""
    summary = load_summary(scores)
    names = list(summary.get("sets", {}))
    reference = reference or summary.get("reference")
    if reference not in names:
        raise ConfigError(f"{scores}: no set '{reference}' to set the others against (sets: {', '.join(names)}; "
                          f"--reference NAME)")
    empty: list[str] = []
    keys: dict[str, set[str]] = {}
    ctm = read_ctms(ctms, phones, base, empty, keys)
    shift = None if frame_shift is None else (frame_shift, "--frame-shift")
    sets, notes = {}, [f"{path}: no phone in it (an empty CTM: did its alignment fail?)" for path in empty]
    left = list(notes)  # why sets were left out: an empty CTM (the likeliest), a channel, a data dir moved
    if phones is None and all(s.phone.isdigit() for segments in ctm.values() for s in segments):
        notes.append("the CTMs' phones are integers (ali-to-phones'): --phones lang/phones.txt names them")
    for name in ordered_sets(names, reference):
        try:
            found = set_phones(scores, name, ctm, shift)
        except TwoChannels as error:  # which file: 'utterance z0-1: ... on channels 1, 2' named none of 40 CTMs
            raise ConfigError(f"{next(p for p, held in keys.items() if error.utt in held)}: {error}") from None
        if found.aligned_utts == 0:
            if name == reference:
                raise ConfigError(f"the CTMs hold none of the utterances of the reference set '{reference}' "
                                  f"({', '.join(map(str, ctms))}; utterance ids as in its utt_scores.tsv, or the "
                                  f"recordings of its data dir's segments){_data_dir_gone(scores, name)}"
                                  f"{_off_channel(found)}")
            notes.append(f"set '{name}' left out: the CTMs hold none of its {found.utts} utterances"
                         + _data_dir_gone(scores, name) + _off_channel(found))
            left.append(notes[-1])
            continue
        sets[name] = found
        if found.cut_utts:
            notes.append(f"set '{name}': {found.cut_utts} utterances cut from the CTMs' recordings by {found.cut_by}")
        if found.aligned_utts < found.utts:
            notes.append(f"set '{name}': the CTMs hold {found.aligned_utts} of its {found.utts} utterances"
                         + _off_channel(found))
        if found.aligned_frames < LOW_COVERAGE * found.held_frames:
            notes.append(f"set '{name}': its phones hold {found.aligned_frames} of the {found.held_frames} frames of "
                         f"the utterances the CTMs hold: long gaps between phones, or another frame shift than "
                         f"{found.frame_shift[0]:g} s ({found.frame_shift[1]})?")
    if len(sets) < 2:  # why the others were left out was not said
        raise ConfigError(f"the CTMs hold utterances of no set but the reference '{reference}': nothing to set "
                          f"against it" + "".join(f"; {note}" for note in left))
    used = set().union(*(s.ctm_keys for s in sets.values()))
    notes += [f"{path}: none of its {len(held)} utterance(s) or recording(s) is of a scored set: not used (a CTM of "
              f"another set?)" for path, held in keys.items() if held and not held & used]  # it was, without a word
    differences_of = {name: differences(s, sets[reference], min_frames) for name, s in sets.items()
                      if name != reference}
    return PhoneReport(sets, reference, differences_of, tuple(map(str, ctms)), min_frames, tuple(notes))


def _data_dir_gone(scores: Path, name: str) -> str:
    r"""Words to add where the data dir set ``name`` was scored from is gone (moved?): a CTM of recordings is cut
    by its ``segments``; "" where it is there or not recorded."""
    folder = data_dir_of(scores, name)
    if folder is None or folder.is_dir():
        return ""
    return (f" (nor can a CTM of recordings be cut by its data dir's segments: {folder}, which it was scored from, is "
            f"gone)")


def _off_channel(found: SetPhones) -> str:
    r"""Words to add where the CTMs hold recordings of set ``found`` on other channels than its data dir's
    ``reco2file_and_channel`` says: the first such recording, and how many more; "" where none."""
    if not found.off_channel:
        return ""
    more = len(found.off_channel) - 1
    return f" ({found.off_channel[0]}" + (f"; {more} more of its recordings likewise" if more else "") + ")"


def coverage_table(report: PhoneReport) -> tuple[str, list[str], list[list[str]]]:
    rows = []
    for s in report.sets.values():
        share = f" ({100 * s.aligned_frames / s.frames:.1f}%)" if s.frames else ""
        shift, source = s.frame_shift
        rows.append([s.name + (" (reference)" if s.name == report.reference else ""), f"{s.aligned_utts} of {s.utts}",
                     f"{s.aligned_frames} of {s.frames}{share}", str(len(s.phones)), f"{shift:g} s ({source})"])
    return ("Coverage: the scored utterances the CTMs hold, their frames in a phone",
            ["set", "utterances", "frames", "phones", "frame shift"], rows)


def difference_table(report: PhoneReport, name: str) -> tuple[str, list[str], list[list[str]]]:
    mine, theirs, ref = report.sets[name].phones, report.sets[report.reference].phones, report.reference
    rows = [[d.phone, str(mine[d.phone].tokens), str(mine[d.phone].frames), str(len(mine[d.phone].speakers)),
             fmt(mine[d.phone].relative), fmt(theirs[d.phone].relative),
             with_bounds(d.relative, list(d.relative_interval)), fmt(mine[d.phone].log_ll),
             fmt(theirs[d.phone].log_ll), with_bounds(d.value, list(d.interval))]
            for d in report.differences[name]]
    return (f"{name}: phones against {ref}'s, lowest relative LogLL minus {ref}'s first",
            ["phone", "tokens", "frames", "speakers", "relative", f"{ref}'s", f"minus {ref} [95%]", "LogLL",
             f"{ref}'s", f"minus {ref} [95%]"], rows)


def left_out(report: PhoneReport, name: str) -> list[str]:
    r"""The lines under a set's table: its phones too rare to rank, and those the reference does not have."""
    ranked = {d.phone for d in report.differences[name]}
    theirs = report.sets[report.reference].phones
    rare, absent = [], []
    for phone, p in report.sets[name].phones.items():
        if phone not in theirs:
            absent.append(f"{phone} ({fmt(p.relative)}, {p.frames} frames)")
        elif phone not in ranked:
            rare.append(f"{phone} ({p.frames} frames here, {theirs[phone].frames} in {report.reference})")
    lines = []
    if rare:
        lines.append(f"Fewer than {report.min_frames} frames here or in {report.reference}: {', '.join(rare)}.")
    if absent:
        lines.append(f"Not in {report.reference} (relative LogLL, frames): {', '.join(absent)}.")
    return lines


def reference_table(report: PhoneReport) -> tuple[str, list[str], list[list[str]]]:
    rows = [[phone, str(p.tokens), str(p.frames), str(len(p.speakers)), fmt(p.relative), fmt(p.log_ll),
             fmt(p.log_p), fmt(p.log_det)]
            for phone, p in sorted(report.sets[report.reference].phones.items(), key=lambda kv: kv[1].relative)]
    return (f"{report.reference} (the reference): phones, lowest relative LogLL first",
            ["phone", "tokens", "frames", "speakers", "relative", "LogLL", "LogP", "LogDet"], rows)


def markdown_text(report: PhoneReport, scores: str, command: str = "", figure: str = "") -> str:
    r"""The whole Markdown page: title, legend, coverage, a table per other set, the reference's table."""
    e = markdown_escaped  # phones and paths: Kaldi's <sil> was a tag a renderer dropped
    lines = [f"# flowaccent phones: {e(str(scores))}", "", LEGEND, "", f"CTM: {e(', '.join(report.ctms))}.", ""]
    if command:
        lines += ["```", command, "```", ""]
    lines += markdown_table(*coverage_table(report))
    if report.notes:  # a set left out is in no table: said here, not on the terminal only
        lines += [*(f"- {e(_sentence(note, report.ctms))}" for note in report.notes), ""]
    if figure:
        lines += [f"![Each phone's LogLL minus the reference's]({figure})", ""]
    for name in report.differences:
        lines += markdown_table(*difference_table(report, name))
        lines += [line for text in left_out(report, name) for line in (e(text), "")]
    lines += markdown_table(*reference_table(report))
    return "\n".join(lines)


#: The TSV's columns.
TSV_COLUMNS = ("set", "phone", "tokens", "frames", "speakers", "log_ll", "log_p", "log_det", "relative",
               "log_ll_minus_ref", "log_ll_low", "log_ll_high", "relative_minus_ref", "relative_low", "relative_high")


def tsv_text(report: PhoneReport) -> str:
    r"""A line per set and phone (:data:`TSV_COLUMNS`); the differences from the reference and their bounds are
    ``nan`` for the reference set's phones and for those not ranked (too few frames, not in the reference)."""
    lines = ["\t".join(TSV_COLUMNS)]
    for name, s in report.sets.items():
        ranked = {d.phone: d for d in report.differences.get(name, ())}
        for phone, p in s.phones.items():
            d = ranked.get(phone)
            values = (d.value, *d.interval, d.relative, *d.relative_interval) if d else (math.nan,) * 6
            lines.append("\t".join([name, phone, str(p.tokens), str(p.frames), str(len(p.speakers)),
                                    *(f"{v:.6f}" for v in (p.log_ll, p.log_p, p.log_det, p.relative, *values))]))
    return "\n".join(lines) + "\n"


def summary_line(report: PhoneReport, count: int = 3) -> list[str]:
    r"""A line per other set: its ``count`` phones least like the reference's, for the command's output."""
    lines = []
    for name, found in report.differences.items():
        if not found:  # each too rare (the table is empty, its phones listed under it) or not in the reference
            mine = report.sets[name].phones.keys()
            shared = len(mine & report.sets[report.reference].phones.keys())
            lines.append(f"{name}: no phone ranked: " + (
                f"{counted(shared, 'phone')} in {report.reference} too, each of fewer than --min-frames "
                f"{report.min_frames} frames here or there" if shared else
                f"none of its {counted(len(mine), 'phone')} is in {report.reference}"))
            continue
        worst = ", ".join(f"{d.phone} {d.relative:+.2f}" for d in found[:count])
        lines.append(f"{name}: {counted(len(found), 'phone')} ranked; lowest relative LogLL against "
                     f"{report.reference}: {worst}")
    return lines


def ordered_sets(sets: Sequence[str], reference: str) -> list[str]:
    r"""The reference first, then the others as given."""
    return [reference, *(s for s in sets if s != reference)]


#: The stamp ``flowaccent phones --out DIR`` writes beside its tables: which scores they are of.
STAMP = "phones.json"

#: Phones per set in ``flowaccent report --phones``' tables (``phones.md`` has them all).
REPORT_PHONES = 10


def stamp(report: PhoneReport, scores: Path, command: str = "") -> dict[str, Any]:
    r"""What ``DIR/phones.json`` holds: the scores' folder and the digest of their ``summary.json`` (scores made
    again since are other scores), the reference, the minimum of frames, the CTMs and the command."""
    return {"format": 1, "scores": str(scores), "summary_digest": file_digest(scores / "summary.json"),
            "reference": report.reference, "min_frames": report.min_frames, "ctms": list(report.ctms),
            "command": command, "notes": list(report.notes)}


def load_phones(folder: Path, scores: Path) -> tuple[dict[str, Any], list[dict[str, str]]]:
    r"""The stamp and the ``phone_scores.tsv`` rows of a ``flowaccent phones --out`` folder, refused where they are
    not of ``scores`` as they are now (another summary.json: other scores, or scored again since)."""
    path, table = folder / STAMP, folder / "phone_scores.tsv"
    if not folder.is_dir():
        what = "a file, not a folder" if folder.exists() else "no such folder"
        raise ConfigError(f"{folder}: {what} (--phones: the --out of 'flowaccent phones')")
    if not path.exists() and (folder / "summary.json").exists():  # it said to run phones --out into the scores
        raise ConfigError(f"{folder}: the output of 'flowaccent score' or 'blurmask', not of 'flowaccent phones' "
                          f"(--phones: the folder 'flowaccent phones --out DIR' wrote)")
    for needed in (path, table):
        if not needed.is_file():
            raise ConfigError(f"{needed}: missing; run 'flowaccent phones --out {folder}' first (or it did not finish)")
    try:
        made = json.loads(path.read_text())
        made["summary_digest"], made["reference"]  # noqa: B018 (the keys it needs)
        with table.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        missing = [c for c in TSV_COLUMNS if rows and c not in rows[0]]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{folder}: not the output of 'flowaccent phones' ({type(error).__name__}: {error}); run "
                          f"it again") from None
    if missing:
        raise ConfigError(f"{table}: no column {', '.join(missing)}; run 'flowaccent phones --out {folder}' again")
    if made["summary_digest"] != file_digest(scores / "summary.json"):
        # its scores path as typed then (relative to where it ran): another model's phones or these scored again
        raise ConfigError(f"{folder}: phones of {made.get('scores', 'other scores')} as they were then, not of "
                          f"{scores} as they are (other scores, or scored again since); run 'flowaccent phones "
                          f"--scores {scores} CTM ... --out {folder}' again")
    return made, rows


def phones_part(
    folder: Path, made: dict[str, Any], rows: list[dict[str, str]], fig_dir: Path, index: int | None = None,
    named: str | None = None,
) -> tuple[list[tuple[str, list[str], list[list[str]]]], dict[str, Path], str, str]:
    r"""``(tables, figures, naming, command)`` of a ``flowaccent phones`` run (:func:`load_phones`): per set but
    the reference, its :data:`REPORT_PHONES` lowest phones by relative LogLL minus the reference's, from
    ``phone_scores.tsv``; the figure copied into ``fig_dir`` as ``phones_relative.png``; the legend (for the first
    run) and the run's notes, a paragraph ("" for a later run without notes); the command. ``index``: the run's
    place among several of one report (None: the only one), whose titles then name its folder (``named``, default
    its last part) and CTM files and whose figure is ``phones_relative_<index + 1>.png`` past the first."""
    reference = made["reference"]
    label = ""
    if index is not None:
        names = ", ".join(dict.fromkeys(Path(c).name for c in made.get("ctms", [])))
        named = named or folder.name
        label = f"{named}: {names}" if names else named
    which = f" ({label})" if label else ""
    tables = []
    for name in dict.fromkeys(r["set"] for r in rows if r["set"] != reference):
        ranked = sorted((r for r in rows if r["set"] == name and r["relative_minus_ref"] != "nan"),
                        key=lambda r: (float(r["relative_minus_ref"]), r["phone"]))
        shown = [[r["phone"], r["frames"], r["speakers"], _bounded(r, "relative"), _bounded(r, "log_ll")]
                 for r in ranked[:REPORT_PHONES]]
        tables.append((f"Phones{which}: {name}'s lowest relative LogLL minus {reference}'s ({len(shown)} of "
                       f"{len(ranked)} ranked; {folder / 'phones.md'} has all)",
                       ["phone", "frames", "speakers", f"relative minus {reference} [95%]",
                        f"LogLL minus {reference} [95%]"], shown))
    figures = {}
    png = folder / "phones.png"
    if png.is_file():
        fig_dir.mkdir(parents=True, exist_ok=True)
        suffix, caption = f"_{index + 1}" if index else "", f", {label}" if label else ""
        figures[f"Relative LogLL by phone minus {reference}'s (flowaccent phones{caption})"] = atomic_copy(
            png, fig_dir / f"{PHONES_FIGURES}relative{suffix}.png")
    # a paragraph of the page's HTML: its '<=' and the notes' paths escaped; each run's notes (a second run's were
    # lost), named by the run where there are several
    said = [_sentence(note, made.get("ctms", ())) for note in made.get("notes", [])]
    legend = ["Phones (flowaccent phones).", LEGEND] if not index else []
    notes = [f"Phones{which}:", *said] if said and which else said
    naming = html.escape(" ".join([*legend, *notes]), quote=False)
    return tables, figures, naming, made.get("command") or "(command not recorded)"


def _sentence(note: str, paths: Sequence[str] = ()) -> str:
    r"""A note of :attr:`PhoneReport.notes` (``set 'x' left out: ...``) as a sentence; one that starts with a
    file's path (of ``paths``, the CTMs) keeps it as it is (``empty.ctm`` was written ``Empty.ctm``)."""
    path = any(note.startswith(f"{p}: ") for p in paths)
    return (note if path else note[:1].upper() + note[1:]) + ("" if note.endswith(("?", ".")) else ".")


def _bounded(row: dict[str, str], kind: str) -> str:
    r"""A TSV row's difference of ``kind`` (``relative``, ``log_ll``) and its interval, as the tables show them."""
    value, low, high = (float(row[f"{kind}_{part}"]) for part in ("minus_ref", "low", "high"))
    return with_bounds(value, [low, high])
