r"""Kaldi's CTM of phones: ``<utt> <channel> <start> <duration> <phone> [<confidence>]`` per line, times in
seconds, what ``ali-to-phones --ctm-output`` writes (its phones as integers until ``utils/int2sym.pl -f 5``
names them) and what the demo corpus writes beside each data dir (``phones.ctm``, from espeak's own timing).

A file may hold any utterances in any order; one utterance's phones are sorted by start and may not overlap
(a frame then belongs to one phone). Keyed by utterance, as ``ali-to-phones`` keys it (not by recording, as a
CTM of ``segments`` would be).

Example:
    >>> import io, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "phones.ctm"
    >>> _ = path.write_text("u1 1 0.00 0.12 sil\nu1 1 0.12 0.08 T\n")
    >>> read_ctm(path)["u1"]
    [Segment(start=0.0, duration=0.12, phone='sil'), Segment(start=0.12, duration=0.08, phone='T')]
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

from flowaccent.data.atomic import atomic_write_text
from flowaccent.errors import DataDirError


class Segment(NamedTuple):
    r"""One phone of an utterance: its start and duration in seconds, and its name."""

    start: float
    duration: float
    phone: str

    @property
    def end(self) -> float:
        return self.start + self.duration


#: How far one phone may run into the next (seconds) and still count as ending where it starts: a start and a
#: duration written to 3 decimals round each on its own.
OVERLAP_TOLERANCE = 1e-3


def read_ctm(path: str | Path, symbols: Mapping[str, str] | None = None) -> dict[str, list[Segment]]:
    r"""``{utt: [Segment, ...]}`` of a CTM file, each utterance's phones sorted by start. ``symbols``: a phone
    table (``lang/phones.txt``, ``{integer: name}``) to name the phones of a CTM that holds integers.

    Raises:
        DataDirError: naming the file and line, for a line of other than 5 or 6 fields, a start or duration that
            is no number, is negative or not finite, an integer without a name in ``symbols``, or two phones of
            one utterance that overlap.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataDirError(f"{path}: no such CTM file") from None
    except UnicodeDecodeError as error:
        raise DataDirError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    lines: dict[str, list[tuple[Segment, int]]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith(";;"):  # NIST's comment lines
            continue
        where = f"{path}: line {number}"
        if len(fields) not in (5, 6):
            raise DataDirError(f"{where}: {len(fields)} fields, expected 'utt channel start duration phone "
                               f"[confidence]': {line.strip()!r}")
        start, duration = _seconds(fields[2], "start", where), _seconds(fields[3], "duration", where)
        phone = fields[4]
        if symbols is not None:
            if phone not in symbols:
                raise DataDirError(f"{where}: phone {phone!r} is not in the phone table given (--phones)")
            phone = symbols[phone]
        lines.setdefault(fields[0], []).append((Segment(start, duration, phone), number))
    out = {}
    for utt, segments in lines.items():
        segments.sort(key=lambda pair: pair[0].start)
        for (before, _), (after, number) in zip(segments, segments[1:]):
            if before.end > after.start + OVERLAP_TOLERANCE:
                raise DataDirError(f"{path}: line {number}: utterance '{utt}': phone {after.phone!r} at "
                                   f"{after.start:g} s starts before {before.phone!r} ends ({before.end:g} s)")
        out[utt] = [segment for segment, _ in segments]
    return out


def _seconds(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise DataDirError(f"{where}: {what} {text!r} is not a number of seconds >= 0")
    return value


#: Kaldi's word-position suffix of a phone (``_B`` begin, ``_E`` end, ``_I`` inside, ``_S`` singleton), then the
#: stress digit of CMUdict's vowels (``AH0``, ``AH1``, ``AH2``): what :func:`base_phone` drops.
_POSITION, _STRESS = re.compile(r"(?<=.)_[BEIS]$"), re.compile(r"(?<=[A-Za-z])[012]$")


def base_phone(phone: str) -> str:
    r"""``phone`` without Kaldi's word-position suffix and CMUdict's stress digit: ``AH1_B``, ``AH0_E`` and ``AH``
    are all ``AH``; ``SIL_S`` is ``SIL``. The variants Kaldi's ``lang/phones/roots.txt`` shares one tree root."""
    return _STRESS.sub("", _POSITION.sub("", phone))


def read_phone_table(path: str | Path) -> dict[str, str]:
    r"""``{integer: name}`` of a Kaldi phone table (``lang/phones.txt``: ``<name> <integer>`` per line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataDirError(f"{path}: no such phone table") from None
    table = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit():
            raise DataDirError(f"{path}: line {number}: expected '<phone> <integer>': {line.strip()!r}")
        table[fields[1]] = fields[0]
    return table


def write_ctm(path: str | Path, utterances: Mapping[str, Iterable[tuple[float, float, str]]]) -> None:
    r"""Writes ``{utt: [(start, duration, phone), ...]}`` as a CTM (channel 1), atomically. Times to 0.1 ms: the
    start and the end are rounded, the duration is their difference (a phone ends where the next starts)."""
    lines = [f"{utt} 1 {round(start, 4):.4f} {round(start + duration, 4) - round(start, 4):.4f} {phone}\n"
             for utt, segments in utterances.items() for start, duration, phone in segments]
    atomic_write_text(Path(path), "".join(lines))
