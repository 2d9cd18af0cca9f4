r"""Kaldi's CTM of phones: ``<utt> <channel> <start> <duration> <phone> [<confidence>]`` per line, times in
seconds, what ``ali-to-phones --ctm-output`` writes (its phones as integers until ``utils/int2sym.pl -f 5``
names them) and what the demo corpus writes beside each data dir (``phones.ctm``, from espeak's own timing).

A file may hold any utterances in any order; one utterance's phones are sorted by start and may not overlap
(a frame then belongs to one phone). Keyed by utterance, as ``ali-to-phones`` keys it; a CTM keyed by recording,
times from the recording's start (``steps/get_train_ctm.sh`` of a data dir with ``segments``, through
``utils/convert_ctm.pl``), is cut back into utterances by :func:`utterances_of_recordings`. Phones of one key on
two channels (``A`` and ``B`` of a telephone call) may overlap.

Example:
    >>> import io, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "phones.ctm"
    >>> _ = path.write_text("u1 1 0.00 0.12 sil\nu1 1 0.12 0.08 T\n")
    >>> read_ctm(path)["u1"][1]
    Segment(start=0.12, duration=0.08, phone='T', channel='1')
    >>> span = kaldi_segments.Segment("rec1", 10.0, 20.0)  # segments: 'u1 rec1 10.0 20.0'
    >>> utterances_of_recordings({"rec1": [Segment(18.0, 1.0, "T")]}, {"u1": span})
    {'u1': [Segment(start=8.0, duration=1.0, phone='T', channel='1')]}
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

from flowaccent.data import segments as kaldi_segments
from flowaccent.data.atomic import atomic_write_text
from flowaccent.data.table import c_order
from flowaccent.errors import DataDirError


class Segment(NamedTuple):
    r"""One phone of an utterance (or a recording): its start and duration in seconds, its name, and the CTM's
    channel field (``1`` of every line ``ali-to-phones`` writes)."""

    start: float
    duration: float
    phone: str
    channel: str = "1"

    @property
    def end(self) -> float:
        return self.start + self.duration


#: How far one phone may run into the next (seconds) and still count as ending where it starts: a start and a
#: duration written to 3 decimals round each on its own.
OVERLAP_TOLERANCE = 1e-3

#: Added to :data:`OVERLAP_TOLERANCE`: the floating point error of ``start + duration`` (1.217 + 0.124 is
#: 1.3410000000000002, past 1.340 + 1e-3: an overlap of 1 ms exactly was refused).
_SUM_ERROR = 1e-9


def read_ctm(path: str | Path, symbols: Mapping[str, str] | None = None) -> dict[str, list[Segment]]:
    r"""``{utt: [Segment, ...]}`` of a CTM file, each utterance's phones sorted by start. ``symbols``: a phone
    table (``lang/phones.txt``, ``{integer: name}``) to name the phones of a CTM that holds integers.

    Raises:
        DataDirError: naming the file and line, for a line of other than 5 or 6 fields, a start or duration that
            is no number, is negative or not finite, a confidence that is no number (nor ``NA``), an integer
            without a name in ``symbols``, or two phones of one utterance and channel that overlap.
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
        if len(fields) == 6 and not _is_confidence(fields[5]):  # a phone of two fields ('a b'), or a word CTM's
            raise DataDirError(f"{where}: confidence {fields[5]!r} is no number (nor NA): a line is 'utt channel "
                               f"start duration phone [confidence]', a phone one field: {line.strip()!r}")
        phone = fields[4]
        if symbols is not None:
            if phone not in symbols:
                named = phone in set(symbols.values())  # a CTM of names, read through a table of integers
                raise DataDirError(f"{where}: phone {phone!r} is not in the phone table given (--phones)" + (
                    ": the table maps integers to names, and this CTM holds names already; leave --phones out"
                    if named else ""))
            phone = symbols[phone]
        lines.setdefault(fields[0], []).append((Segment(start, duration, phone, fields[1]), number))
    out = {}
    for utt, segments in lines.items():
        segments.sort(key=lambda pair: pair[0].start)
        last: dict[str, Segment] = {}  # each channel's phone before
        for after, number in segments:
            before = last.get(channel_number(after.channel))
            last[channel_number(after.channel)] = after
            if before is not None and before.end > after.start + OVERLAP_TOLERANCE + _SUM_ERROR:
                raise DataDirError(f"{path}: line {number}: utterance '{utt}': phone {after.phone!r} at "
                                   f"{after.start:g} s starts before {before.phone!r} ends ({before.end:g} s)")
        out[utt] = [segment for segment, _ in segments]
    return out


def channels_of(segments: Iterable[Segment]) -> list[str]:
    r"""The channels (:func:`channel_number`) ``segments`` are on, sorted."""
    return sorted({channel_number(s.channel) for s in segments})


def channel_number(channel: str) -> str:
    r"""A CTM's channel as a number: NIST's ``A`` and ``B`` (``reco2file_and_channel``'s) are ``1`` and ``2``."""
    return str(ord(channel.upper()) - ord("A") + 1) if len(channel) == 1 and channel.isalpha() else channel


def utterances_of_recordings(
    ctm: Mapping[str, list[Segment]], segments: Mapping[str, kaldi_segments.Segment],
    reco2file_and_channel: Mapping[str, str] | None = None, where: str = "segments",
    files_where: str = "reco2file_and_channel", used: set[str] | None = None,
) -> dict[str, list[Segment]]:
    r"""A CTM of recordings (times from each recording's start) as one of the utterances of ``segments``
    (``{utt: Segment}``, :meth:`~flowaccent.data.datadir.DataDir.segments`): what ``utils/convert_ctm.pl`` did,
    undone. A recording's phones are keyed by its file and on its channel where ``reco2file_and_channel``
    (``{recording: "file channel"}``) names them and the CTM holds that file, else by the recording itself, on
    whichever one channel they are (a CTM written before ``reco2file_and_channel`` was: keyed by the recordings).
    An utterance holds each phone whose middle lies in its span, its times then from the span's start and cut to
    the span; a phone of two overlapping spans is in both. Utterances of no phone are left out. ``used``: gets the
    CTM's keys whose phones an utterance took.

    Raises:
        DataDirError: naming ``where`` (the segments) for a recording without ``reco2file_and_channel`` whose
            phones are on two channels, ``files_where`` for a ``reco2file_and_channel`` line other than ``file
            channel``.
    """
    tracks: dict[tuple[str, str | None], tuple[list[float], list[Segment]]] = {}
    out = {}
    for utt, span in segments.items():
        key = _track(span.recording, reco2file_and_channel, files_where)
        unheld = ""
        if key[0] not in ctm and span.recording in ctm:
            if key[1] is not None:  # the table names a file the CTM does not hold: keyed by the recording instead
                unheld = f"; {files_where} puts it on '{key[0]}', which the CTM does not hold"
            key = span.recording, None
        if key not in tracks:
            tracks[key] = _by_middle(ctm.get(key[0], []), key, where, unheld)
        middles, phones = tracks[key]
        end = math.inf if span.end == -1 else span.end
        held = phones[bisect.bisect_left(middles, span.start):bisect.bisect_left(middles, end)]
        if held:
            out[utt] = sorted((_cut(p, span.start, end) for p in held), key=lambda s: s.start)
            if used is not None:
                used.add(key[0])
    return out


def off_channel(
    ctm: Mapping[str, list[Segment]], recordings: Iterable[str], reco2file_and_channel: Mapping[str, str] | None,
    where: str = "reco2file_and_channel",
) -> list[str]:
    r"""Words for each of ``recordings`` that ``reco2file_and_channel`` puts on a channel of a file the CTM holds on
    other channels only, so that :func:`utterances_of_recordings` finds none of its phones (the table's channels
    and the CTM's in another order?), sorted by recording.

    Example:
        >>> print(*off_channel({"call": [Segment(0.0, 1.0, "T", "1")]}, ["callB"], {"callB": "call B"}))
        reco2file_and_channel puts recording 'callB' on channel B (2) of 'call', which the CTMs hold on channel 1 only
    """
    out = []
    for recording in sorted(set(recordings)):
        file, channel = _track(recording, reco2file_and_channel, where)
        if channel is None or file not in ctm or channel in (held := channels_of(ctm[file])):
            continue
        written = reco2file_and_channel[recording].split()[1]  # type: ignore[index]  # _track read it
        named = written if written == channel else f"{written} ({channel})"
        out.append(f"{where} puts recording '{recording}' on channel {named} of '{file}', which the CTMs hold on "
                   f"channel{'s' * (len(held) > 1)} {', '.join(held)} only")
    return out


def _cut(phone: Segment, start: float, end: float) -> Segment:
    r"""``phone`` of a recording as one of the utterance spanning ``start`` to ``end`` of it: its start from the
    utterance's, cut to the span (a duration not cut kept as it was). Times to the microsecond: a phone at
    15.4569 s of a recording is at 3.4569 s of an utterance from 12.0 s, not at ``15.4569 - 12.0 =
    3.456899999999999``, whose end (+ 0.0481 s) would round to the frame before."""
    first, last = max(phone.start, start), min(phone.end, end)
    duration = phone.duration if (first, last) == (phone.start, phone.end) else round(last - first, 6)
    return Segment(round(first - start, 6), duration, phone.phone)


def _track(
    recording: str, reco2file_and_channel: Mapping[str, str] | None, where: str
) -> tuple[str, str | None]:
    r"""``(file, channel)`` of a recording: ``reco2file_and_channel``'s, else ``(recording, None)``."""
    if reco2file_and_channel is None or recording not in reco2file_and_channel:
        return recording, None
    fields = reco2file_and_channel[recording].split()
    if len(fields) != 2:
        raise DataDirError(f"{where}: recording '{recording}': expected 'file channel', got "
                           f"{reco2file_and_channel[recording]!r}")
    return fields[0], channel_number(fields[1])


def _by_middle(
    phones: list[Segment], track: tuple[str, str | None], where: str, unheld: str = ""
) -> tuple[list[float], list[Segment]]:
    r"""The phones of ``track`` (``(file, channel)``; channel None: the one channel there is) sorted by their
    middles, and the middles. ``unheld``: words on the file ``reco2file_and_channel`` names instead, for the error."""
    file, channel = track
    if channel is None:
        channels = channels_of(phones)
        if len(channels) > 1:  # with a table naming files the CTM lacks, 'needs reco2file_and_channel' misled
            raise DataDirError(f"{where}: the CTM holds recording '{file}' on channels {', '.join(channels)}: which "
                               f"is which recording needs reco2file_and_channel ('recording file channel'){unheld}")
    else:
        phones = [p for p in phones if channel_number(p.channel) == channel]
    phones = sorted(phones, key=lambda p: p.start + p.duration / 2)
    return [p.start + p.duration / 2 for p in phones], phones


def _is_confidence(text: str) -> bool:
    r"""Whether ``text`` is a CTM's confidence: a finite number, or ``NA`` (NIST's not given)."""
    try:
        return math.isfinite(float(text))
    except ValueError:
        return text.upper() == "NA"


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
    r"""``{integer: name}`` of a Kaldi phone table (``lang/phones.txt``: ``<name> <integer>`` per line); an integer
    given twice is an error (another file than a phone table: the last name was taken)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataDirError(f"{path}: no such phone table") from None
    except UnicodeDecodeError as error:  # a model or another binary file given by mistake: it was a traceback
        raise DataDirError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}), not a phone table "
                           f"(lang/phones.txt)") from None
    table: dict[str, str] = {}
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit():
            raise DataDirError(f"{path}: line {number}: expected '<phone> <integer>': {line.strip()!r}")
        if fields[1] in table:
            raise DataDirError(f"{path}: line {number}: integer {fields[1]} names {fields[0]!r} here and "
                               f"{table[fields[1]]!r} on line {lines[fields[1]]}")
        table[fields[1]], lines[fields[1]] = fields[0], number
    return table


def write_ctm(path: str | Path, utterances: Mapping[str, Iterable[tuple[float, float, str]]]) -> None:
    r"""Writes ``{utt: [(start, duration, phone), ...]}`` as a CTM (channel 1), atomically, its utterances in C order
    and each one's phones in the order given (sorted as Kaldi and sclite expect, ``sort -k1,1 -k3,3n``, where those
    are in time order: ``synth`` wrote its jobs' utterances one job after another). Times to 0.1 ms: the start and
    the end are rounded, the duration is their difference (a phone ends where the next starts)."""
    lines = [f"{utt} 1 {round(start, 4):.4f} {round(start + duration, 4) - round(start, 4):.4f} {phone}\n"
             for utt in sorted(utterances, key=c_order) for start, duration, phone in utterances[utt]]
    atomic_write_text(Path(path), "".join(lines))
