r"""``utt_scores.tsv``, scoring's per-utterance table: written, extended by a column, read back;
``spk_scores.tsv``, the same per speaker.

Without torch, so that what only reads the scores (``flowaccent report``, the summary) starts
without importing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flowaccent.data.atomic import atomic_write_text

#: The columns every table has, in order; ``score`` (a rating, from ``utt2score``) and ``llr`` (DNF
#: models) follow when present, and a baseline's column (``gmm_log_ll``) may be added after.
COLUMNS = ("utt", "spk", "num_frames", "log_ll", "log_p", "log_det", "nll")


def write_tsv(path: Path, rows: dict[str, list], scores: dict[str, float] | None = None) -> None:
    r"""``utt spk num_frames log_ll log_p log_det nll [score] [llr]``, one line per utterance of ``rows``
    (``{column: values}``); ``scores``: each utterance's rating."""
    columns = list(COLUMNS) + (["score"] if scores else []) + (["llr"] if "llr" in rows else [])
    lines = ["\t".join(columns)]
    for i, utt in enumerate(rows["utt"]):
        values = {c: rows[c][i] for c in rows}
        if scores:
            values["score"] = scores.get(utt, float("nan"))  # nan: not rated (utt2score may cover some)
        lines.append("\t".join(_fmt(values[c]) for c in columns))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def add_column(path: Path, column: str, values: dict[str, float]) -> None:
    r"""Appends ``column`` (``{utt: value}``, one per line of the table) to the table at ``path``."""
    lines = path.read_text(encoding="utf-8").removesuffix("\n").split("\n")  # ids may hold U+2028, U+0085, ...
    out = [lines[0] + f"\t{column}"] + [f"{line}\t{values[line.split(chr(9))[0]]:.6f}" for line in lines[1:]]
    atomic_write_text(path, "\n".join(out) + "\n")


#: The rows :func:`read_tsv` parses at a time.
_ROWS = 8192


def read_tsv(path: Path, columns: Sequence[str] = ()) -> dict[str, np.ndarray | list[str]]:
    r"""Reads ``utt_scores.tsv`` back: text columns as lists, numbers as float arrays.

    Raises ValueError naming the file and line where the table is damaged (not UTF-8, a row with another number
    of fields than the header, a number that does not parse): rows cut short were dropped silently, the columns
    zipped to the shortest; and naming the ``columns`` the caller needs that its header lacks (a KeyError
    otherwise).

    Reads :data:`_ROWS` lines at a time, their number columns parsed into arrays as it goes, one string per
    speaker: the whole text, its lines and every row's fields at once took 4x the table at its peak (100 MB
    beside it at 200k utterances, the peak of ``flowaccent score``'s summary).
    """
    try:
        table = _read_tsv(path)
    except UnicodeDecodeError:
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as error:  # its offset in the file, not in the block read
            raise ValueError(f"{path}: not UTF-8 text (byte {error.start})") from None
        raise
    if missing := [name for name in columns if name not in table]:
        raise ValueError(f"{path}: no column {', '.join(missing)} (its header: {' '.join(table) or 'empty'})")
    return table


def _read_tsv(path: Path) -> dict[str, np.ndarray | list[str]]:
    with open(path, encoding="utf-8") as file:  # lines end at "\n", "\r\n" or "\r", not at U+2028, U+0085, ...
        first_line = file.readline().removesuffix("\n")
        header = first_line.split("\t")
        if twice := sorted({name for name in header if header.count(name) > 1}):
            raise ValueError(f"{path}: the header names {', '.join(twice)} twice")
        table: dict[str, Any] = {name: [] for name in header}  # the number columns: a list of blocks first
        speakers: dict[str, str] = {}  # one string per speaker, not per utterance
        rows: list[list[str]] = []
        blank: list[str] = []  # blank lines not yet known to be the last (an editor's blank last line)
        first = 2  # the line number of rows[0]; first - 2 rows added
        for line in file:
            line = line.removesuffix("\n")
            if not line.strip():
                blank.append(line)
                continue
            rows += [row.split("\t") for row in blank]  # not the last: rows like any other
            rows.append(line.split("\t"))
            blank = []
            if len(rows) >= _ROWS:
                _add_rows(path, table, header, rows, first, speakers)
                first, rows = first + len(rows), []
        _add_rows(path, table, header, rows, first, speakers)
    if not first_line.strip() and first + len(rows) == 2:  # only blank lines
        raise ValueError(f"{path}: empty (no header)")
    return {name: v if name in ("utt", "spk") else np.concatenate(v or [np.empty(0)]) for name, v in table.items()}


def _add_rows(path: Path, table: dict[str, Any], header: list[str], rows: list[list[str]], first: int,
              speakers: dict[str, str]) -> None:
    r"""Appends ``rows`` (split lines, the first at line ``first``) to ``table``'s columns."""
    for number, row in enumerate(rows, first):
        if len(row) != len(header):
            raise ValueError(f"{path}: line {number} has {len(row)} fields, the header {len(header)}")
    for index, name in enumerate(header):
        column = [row[index] for row in rows]
        if name == "utt":
            table[name] += column
        elif name == "spk":
            table[name] += [speakers.setdefault(s, s) for s in column]
        else:
            try:
                table[name].append(np.asarray(column, np.float64).reshape(len(rows)))
            except ValueError:
                number, text = next((i, v) for i, v in enumerate(column, first) if not _is_number(v))
                raise ValueError(f"{path}: line {number}: {name} {text!r} is not a number") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


#: ``spk_scores.tsv``'s leading columns; the utterance table's score columns follow.
SPEAKER_COLUMNS = ("spk", "num_utts", "num_frames")


def write_speaker_tsv(path: Path, table: dict[str, np.ndarray | list[str]]) -> None:
    r"""``spk_scores.tsv`` from a set's :func:`read_tsv` table: one line per speaker (C order).

    ``num_utts``, ``num_frames``, then every score column of the utterance table: per-frame
    scores (``log_ll``, ``llr``, ``gmm_log_ll``, ...) as the speaker's frame-weighted mean, so the
    same per-frame means as the utterance table over all the speaker's frames; ``score`` (a
    rating, per utterance) as the mean over the speaker's utterances.

    Sums by speaker in one pass (``np.bincount``): a mask over every utterance per speaker took time in
    speakers x utterances, 2.6 s on 20k utterances each its own speaker (Kaldi's ``utt2spk`` where the
    speakers are not known), hours on a million.
    """
    index: dict[str, int] = {}
    of = np.fromiter((index.setdefault(s, len(index)) for s in table["spk"]), np.intp, len(table["spk"]))
    speakers, n = list(index), len(index)
    frames = np.asarray(table["num_frames"], np.float64)
    spk_frames = np.bincount(of, frames, n)
    columns = [c for c in table if c not in ("utt", "spk", "num_frames")]
    means = {}
    for column in columns:
        v = np.asarray(table[column], np.float64)
        if column == "score":  # the rated utterances' mean (nan: none rated)
            rated = np.isfinite(v)
            count = np.bincount(of[rated], minlength=n)
            means[column] = np.where(count > 0, np.bincount(of[rated], v[rated], n) / np.maximum(count, 1), np.nan)
        else:
            means[column] = np.bincount(of, v * frames, n) / spk_frames
    utts = np.bincount(of, minlength=n)
    lines = ["\t".join(list(SPEAKER_COLUMNS) + columns)]
    for i in sorted(range(n), key=lambda i: speakers[i].encode()):
        values = [speakers[i], int(utts[i]), int(spk_frames[i]), *(means[c][i] for c in columns)]
        lines.append("\t".join(_fmt(v) for v in values))
    atomic_write_text(path, "\n".join(lines) + "\n")


def _fmt(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.6f}"
