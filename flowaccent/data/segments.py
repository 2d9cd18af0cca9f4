r"""Kaldi ``segments``: utterances as time spans of recordings, cut as ``extract-segments`` cuts them.

With a ``segments`` file (``utt recording start end [channel]``, times in seconds, ``end`` -1: to
the recording's end) ``wav.scp`` is keyed by recording, and each utterance's audio is the span of
its recording. Sample indices are Kaldi's: ``int(start * rate)`` and ``int(end * rate)``
(truncated). An end past the recording's end by less than 0.5 s is cut back to it (Kaldi's
``--max-overshoot``); by more, and a start at or past the end, are errors here where Kaldi skips
the segment with a warning: the toolkit wants features for every utterance of ``utt2spk``.

Example:
    >>> s = parse_segment("rec1 1.5 2.0", "segments: utterance 'u'")
    >>> s, cut(np.arange(48000.0), 16000, s, "u").shape
    (Segment(recording='rec1', start=1.5, end=2.0, channel=-1), (8000,))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from flowaccent.data.kaldi_text import COUNT, NUMBER
from flowaccent.data.kaldi_text import fields as kaldi_fields
from flowaccent.errors import AudioError, DataDirError

#: Kaldi's ``extract-segments --max-overshoot``: seconds an end may pass the recording's end.
MAX_OVERSHOOT = 0.5


@dataclasses.dataclass(frozen=True)
class Segment:
    r"""One line of ``segments`` after the utterance id.

    Attributes:
        recording: the ``wav.scp`` key.
        start: start time in seconds (>= 0).
        end: end time in seconds (> start), or -1: to the end of the recording.
        channel: the channel of a multi-channel recording (-1: not given).
    """

    recording: str
    start: float
    end: float
    channel: int = -1


def parse_segment(value: str, where: str) -> Segment:
    r"""Parses ``recording start end [channel]``; :class:`DataDirError` naming ``where`` if it is not one."""
    fields = kaldi_fields(value)
    if len(fields) not in (3, 4):
        raise DataDirError(f"{where}: expected 'recording start end [channel]', got '{value}'")
    numbers = [NUMBER.fullmatch(f) for f in fields[1:3]] + [COUNT.fullmatch(f.lstrip("-")) for f in fields[3:]]
    if not all(numbers):  # float() and int() took 1_0 and other scripts' digits
        raise DataDirError(f"{where}: bad start, end or channel in '{value}'")
    start, end = float(fields[1]), float(fields[2])
    channel = int(fields[3]) if len(fields) == 4 else -1
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0:
        raise DataDirError(f"{where}: start must be a time >= 0 and end a time, got '{value}'")
    if end != -1 and end <= start:
        raise DataDirError(f"{where}: empty segment (end {fields[2]} <= start {fields[1]}; -1: to the end)")
    if len(fields) == 4 and channel < 0:
        raise DataDirError(f"{where}: channel must be >= 0, got {fields[3]}")
    return Segment(fields[0], start, end, channel)


def parse_segments(table: Mapping[str, str], path: str | Path) -> dict[str, Segment]:
    r"""``{utt: Segment}`` of the lines ``table`` (``{utt: value}``) of the ``segments`` file ``path``."""
    return {utt: parse_segment(value, f"{path}: utterance '{utt}'") for utt, value in table.items()}


def cut(samples: np.ndarray, rate: int, segment: Segment, where: str) -> np.ndarray:
    r"""The segment's samples of a recording: ``(N,)`` or ``(N, C)`` -> its rows ``start..end``.

    Raises :class:`AudioError` naming ``where`` for a start at or past the recording's end, or an
    end past it by :data:`MAX_OVERSHOOT` seconds or more.
    """
    num = samples.shape[0]
    first = int(segment.start * rate)
    last = num if segment.end == -1 else int(segment.end * rate)
    if first >= num:
        raise AudioError(f"{where}: starts at {segment.start} s, at or after the end of '{segment.recording}' "
                         f"({num / rate:.3f} s)")
    if last > num:
        if last >= num + int(MAX_OVERSHOOT * rate):
            raise AudioError(f"{where}: ends at {segment.end} s, {MAX_OVERSHOOT} s or more after the end of "
                             f"'{segment.recording}' ({num / rate:.3f} s)")
        last = num
    return samples[first:last]
