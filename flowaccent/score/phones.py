r"""Scores by phone: each scored set's per-frame LogLL (``frame_scores.ark``) pooled over the frames of each phone
of a CTM (:mod:`flowaccent.data.ctm`), and each phone's LogLL in a set minus the reference set's, with a 95%
interval over the speakers. Where in the speech a native model finds accented speech unlikely: ``T`` in test_zh
2 nats below test_native says more than the utterance means do.

A phone of ``start`` and ``duration`` seconds holds the frames ``t`` with ``round(start / shift) <= t <
round((start + duration) / shift)``, ``shift`` the features' frame shift: frame ``t`` of an alignment starts at
``t * shift`` (``ali-to-phones --ctm-output`` writes ``start = t * shift``); halves are rounded up (:func:`frame_of`:
a start of 0.485 s is frame 49 at 0.01 s, though ``0.485 / 0.01`` is 48.4999... in floating point). Frames past an
utterance's last are dropped; a phone starting more than :data:`SLACK_FRAMES` after it is an error (a CTM of other
audio, or another frame shift). Frames in no phone (before the first, in gaps) count in none.

A CTM keyed by recording (``steps/get_train_ctm.sh`` of a data dir with ``segments``) is cut into the set's
utterances by the ``segments`` of the data dir the set was scored from (:func:`utterance_phones`).
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from flowaccent.data.ctm import Segment, channels_of, off_channel, utterances_of_recordings
from flowaccent.data.kaldi_io import ScpReader
from flowaccent.data.scp import read_scp
from flowaccent.data.segments import parse_segments
from flowaccent.data.table import read_table
from flowaccent.errors import ConfigError
from flowaccent.features.fbank_record import RECORD, read_record
from flowaccent.score.metrics import mean_difference_interval_over_groups
from flowaccent.score.resume import ark_elsewhere, read_stamp
from flowaccent.score.tables import read_tsv


class TwoChannels(ConfigError):
    r"""An utterance the CTM keys whose phones are on two channels (:func:`utterance_phones`); ``utt``: its id, for
    the caller that knows which CTM file holds it."""

    def __init__(self, utt: str, channels: Sequence[str]) -> None:
        super().__init__(f"utterance '{utt}': the CTM holds its phones on channels {', '.join(channels)}; an "
                         f"utterance's phones are on one")
        self.utt = utt


#: How many frames after an utterance's last a phone may start and be dropped rather than refused: the audio's
#: last samples make no frame of their own (``snip_edges``), and a CTM of the audio's own times ends there.
SLACK_FRAMES = 3

#: How far below a half of a frame (in frames) a time still rounds up (:func:`frame_of`): far above the floating
#: point error of ``seconds / shift`` (~1e-13 frames), far below any CTM's precision (1e-6 frames: 10 ns at 0.01 s).
HALF_TOLERANCE = 1e-6

#: The frame shift taken where neither ``--frame-shift`` nor the set's data dir says one (Kaldi's default).
DEFAULT_SHIFT = 0.01


@dataclasses.dataclass(frozen=True)
class PhoneScores:
    r"""One phone's frames in one set.

    Attributes:
        tokens: the phone's segments that hold at least one frame.
        frames: their frames.
        log_ll, log_p, log_det: means per frame.
        relative: the mean per frame of each frame's LogLL minus its utterance's mean over all its frames
            (``utt_scores.tsv``'s ``log_ll``): how far below the rest of the same speech the phone lies, a voice's
            own level taken out.
        speakers: the speakers whose utterances hold it, sorted.
        speaker_frames: ``(S,)`` each one's frames of it.
        speaker_log_ll: ``(S,)`` each one's LogLL summed over those frames.
        speaker_relative: ``(S,)`` each one's relative LogLL summed over those frames.
    """

    tokens: int
    frames: int
    log_ll: float
    log_p: float
    log_det: float
    relative: float
    speakers: tuple[str, ...]
    speaker_frames: np.ndarray
    speaker_log_ll: np.ndarray
    speaker_relative: np.ndarray


@dataclasses.dataclass(frozen=True)
class SetPhones:
    r"""One scored set's phones.

    Attributes:
        name: the set's name in the scores.
        frame_shift: seconds, and where it came from (``--frame-shift``, ``DIR/fbank.json``, ...).
        utts, frames: the set's scored utterances and frames.
        aligned_utts: the utterances the CTMs hold.
        held_frames: their frames.
        aligned_frames: those of their frames that lie in a phone.
        phones: ``{phone: PhoneScores}``, sorted by phone.
        cut_utts: of the aligned utterances, those cut from the CTMs' recordings by ``cut_by`` (the data dir's
            ``segments``; "": none).
        off_channel: words for each recording of the set's utterances the CTMs hold on other channels only than
            the data dir's ``reco2file_and_channel`` puts it on (:func:`~flowaccent.data.ctm.off_channel`).
        ctm_keys: the CTMs' keys (utterances, recordings) whose phones the set took.
    """

    name: str
    frame_shift: tuple[float, str]
    utts: int
    frames: int
    aligned_utts: int
    held_frames: int
    aligned_frames: int
    phones: dict[str, PhoneScores]
    cut_utts: int = 0
    cut_by: str = ""
    off_channel: tuple[str, ...] = ()
    ctm_keys: frozenset[str] = frozenset()


def frame_shift_of(scores: Path, name: str) -> tuple[float, str]:
    r"""The frame shift of set ``name``'s features, in seconds, and where it was read: the ``fbank.json`` that
    ``flowaccent fbank`` wrote in the data dir the set was scored from (its ``.scored.json`` names it), else that
    dir's ``frame_shift`` (Kaldi's ``utils/data/get_frame_shift.sh`` writes it), else :data:`DEFAULT_SHIFT`."""
    folder = data_dir_of(scores, name)
    if folder is None:
        return DEFAULT_SHIFT, "Kaldi's default (the set's data dir is not recorded)"
    damaged = []  # said, not taken for missing: a damaged file was 'neither fbank.json nor frame_shift'
    try:
        record = read_record(folder)
        if record is not None:
            return float(record["fbank"]["frame_shift_ms"]) / 1000, str(folder / RECORD)
    except (ConfigError, KeyError, TypeError, ValueError):  # damaged: the next source
        damaged.append(f"{folder / RECORD} cannot be read")
    path = folder / "frame_shift"
    try:
        return float(path.read_text().split()[0]), str(path)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        damaged.append(f"{path} holds no number")
    if damaged:
        return DEFAULT_SHIFT, f"Kaldi's default ({'; '.join(damaged)})"
    return DEFAULT_SHIFT, f"Kaldi's default ({folder} has neither fbank.json nor frame_shift)"


def data_dir_of(scores: Path, name: str) -> Path | None:
    r"""The data dir set ``name`` of ``scores`` was scored from (its ``.scored.json`` names it), None unrecorded."""
    data = read_stamp(scores / name).get("data")
    if not isinstance(data, dict) or not isinstance(data.get("dir"), str):
        return None
    return Path(data["dir"])


def utterance_phones(
    ctm: Mapping[str, Sequence[Segment]], utts: Sequence[str], folder: Path | None, used: set[str] | None = None
) -> tuple[dict[str, Sequence[Segment]], str, tuple[str, ...]]:
    r"""The phones of ``utts``: the CTM's own for an utterance it keys, the others' cut from the CTM's recordings by
    the ``segments`` (and ``reco2file_and_channel``) of the data dir ``folder``
    (:func:`~flowaccent.data.ctm.utterances_of_recordings`); that ``segments`` file ("": none used); and words for
    each recording of the others that the CTM holds on other channels only (:func:`~flowaccent.data.ctm.off_channel`).
    ``used``: gets the CTM's keys whose phones they took.

    Raises:
        TwoChannels: for an utterance the CTM keys whose phones are on two channels (a CTM of recordings keyed
            like the utterances?).
        DataDirError: for a damaged ``segments`` or ``reco2file_and_channel``.
    """
    out: dict[str, Sequence[Segment]] = {}
    for utt in utts:
        if utt in ctm:
            channels = channels_of(ctm[utt])
            if len(channels) > 1:
                raise TwoChannels(utt, channels)
            out[utt] = ctm[utt]
    if used is not None:
        used.update(out)
    rest = [u for u in utts if u not in out]
    path = folder / "segments" if folder is not None else None
    if not rest or path is None or not path.is_file():
        return out, "", ()
    table = read_table(path)
    spans = parse_segments({u: table[u] for u in rest if u in table}, path)
    files = folder / "reco2file_and_channel"
    tracks = read_table(files) if files.is_file() else None
    cut = utterances_of_recordings(ctm, spans, tracks, str(path), str(files), used)
    missed = off_channel(ctm, (span.recording for u, span in spans.items() if u not in cut), tracks, str(files))
    return {**out, **cut}, str(path) if cut else "", tuple(missed)


def frame_of(seconds: float, frame_shift: float) -> int:
    r"""``round(seconds / frame_shift)``, halves rounded up as written in decimal: ``math.floor(x + 0.5)`` of the
    floating point quotient rounded 128 of the 1000 times 0.005, 0.015 ... 9.995 s down at 0.01 s (``0.485 / 0.01``
    is 48.49999999999999); :data:`HALF_TOLERANCE` makes them halves."""
    return math.floor(seconds / frame_shift + 0.5 + HALF_TOLERANCE)


def frame_ranges(
    segments: Sequence[Segment], num_frames: int, frame_shift: float, where: str
) -> list[tuple[str, int, int]]:
    r"""``(phone, first, end)`` frame ranges of an utterance of ``num_frames`` frames, one per segment that holds
    a frame (module docstring). Each starts no earlier than the one before ends (phones that touch within the
    CTM's rounding share no frame). ``where``: the utterance, for the error."""
    out = []
    end = 0
    for segment in segments:
        first = frame_of(segment.start, frame_shift)
        if first >= num_frames + SLACK_FRAMES:
            raise ConfigError(
                f"{where}: phone {segment.phone!r} starts at {segment.start:g} s, frame {first}, past the "
                f"utterance's {num_frames} frames ({num_frames * frame_shift:g} s at a frame shift of {frame_shift:g} "
                f"s): a CTM of other audio, or another frame shift (--frame-shift)?")
        first = max(first, end)
        end = max(first, min(num_frames, frame_of(segment.end, frame_shift)))
        if end > first:
            out.append((segment.phone, first, end))
    return out


def set_phones(
    scores: Path, name: str, ctm: Mapping[str, Sequence[Segment]], frame_shift: tuple[float, str] | None = None
) -> SetPhones:
    r"""Set ``name`` of ``scores`` (``flowaccent score --out``) by phone: its ``utt_scores.tsv`` (utterances,
    speakers, frame counts) and ``frame_scores.scp`` (``(T, 2)`` per utterance: log_p and log_det per frame), the
    frames of each utterance ``ctm`` holds (keyed by utterance, or by recording: :func:`utterance_phones`) pooled
    by phone. ``frame_shift``: ``(seconds, source)``, else :func:`frame_shift_of`."""
    shift = frame_shift or frame_shift_of(scores, name)
    table_path, scp = scores / name / "utt_scores.tsv", scores / name / "frame_scores.scp"
    for path in (table_path, scp):
        if not path.is_file():
            raise ConfigError(f"{path}: missing; run 'flowaccent score' again")
    rxfiles = None
    if (ark := ark_elsewhere(scp.parent)) is not None:  # moved or copied since: its own ark, at the same offsets (a
        rxfiles = {}  # copy's phones were the original folder's frame scores, another model's once it was rescored)
        for entry in read_scp(scp):
            path, _, offset = entry.rxfile.rpartition(":")
            rxfiles[entry.key] = f"{scp.parent / 'frame_scores.ark'}:{offset}" if path == ark else entry.rxfile
    try:
        table = read_tsv(table_path, ("utt", "spk", "num_frames"))
    except ValueError as error:
        raise ConfigError(f"{error}; run 'flowaccent score' again") from None
    frames_of = dict(zip(table["utt"], (int(n) for n in table["num_frames"])))
    speaker_of = dict(zip(table["utt"], table["spk"]))
    used: set[str] = set()
    held, cut_by, missed = utterance_phones(ctm, list(frames_of), data_dir_of(scores, name), used)
    cut_utts = sum(utt not in ctm for utt in held)
    sums: dict[tuple[str, str], np.ndarray] = {}  # (phone, speaker) -> [frames, tokens, log_p, log_det, relative]
    aligned_utts = held_frames = aligned_frames = 0
    for utt, matrix in ScpReader(scp, expected_dim=2, utt2num_frames=frames_of, allow_nonfinite=False,
                                 rxfiles=rxfiles):
        if utt not in held:
            continue
        aligned_utts += 1
        held_frames += len(matrix)
        where = f"set '{name}', utterance '{utt}'"
        matrix = matrix.astype(np.float64)
        mean = matrix.sum(axis=1).mean()  # utt_scores.tsv's log_ll, before its rounding to 6 places
        for phone, first, end in frame_ranges(held[utt], len(matrix), shift[0], where):
            log_p, log_det = matrix[first:end].sum(axis=0)
            row = sums.setdefault((phone, speaker_of[utt]), np.zeros(5))
            row += (end - first, 1, log_p, log_det, log_p + log_det - (end - first) * mean)
            aligned_frames += end - first
    return SetPhones(name, shift, len(frames_of), int(sum(frames_of.values())), aligned_utts, held_frames,
                     aligned_frames, _pooled(sums), cut_utts, cut_by, missed, frozenset(used))


def _pooled(sums: Mapping[tuple[str, str], np.ndarray]) -> dict[str, PhoneScores]:
    r"""Each phone's :class:`PhoneScores` from its ``{(phone, speaker): [frames, tokens, log_p, log_det,
    relative]}``."""
    phones: dict[str, dict[str, np.ndarray]] = {}
    for (phone, speaker), row in sums.items():
        phones.setdefault(phone, {})[speaker] = row
    out = {}
    for phone in sorted(phones):
        speakers = tuple(sorted(phones[phone]))
        rows = np.array([phones[phone][s] for s in speakers])
        frames, tokens, log_p, log_det, relative = rows.sum(axis=0)
        out[phone] = PhoneScores(int(tokens), int(frames), (log_p + log_det) / frames, log_p / frames,
                                 log_det / frames, relative / frames, speakers, rows[:, 0].astype(np.int64),
                                 rows[:, 2] + rows[:, 3], rows[:, 4])
    return out


@dataclasses.dataclass(frozen=True)
class Difference:
    r"""A phone's LogLL in a set minus the reference set's (``value``, means per frame), and its relative LogLL
    there minus the reference's (``relative``, :class:`PhoneScores`), each with its 95% interval over the speakers
    (:func:`~flowaccent.score.metrics.mean_difference_interval_over_groups`; NaNs with fewer than 3 speakers on a
    side)."""

    phone: str
    value: float
    interval: tuple[float, float]
    relative: float
    relative_interval: tuple[float, float]


def differences(
    phones: SetPhones, reference: SetPhones, min_frames: int = 50, resamples: int = 2000, seed: int = 0
) -> list[Difference]:
    r"""Each phone with at least ``min_frames`` frames in ``phones`` and in ``reference``: its LogLL and its
    relative LogLL there minus the reference's, lowest relative first (the phones least like the reference's
    against the rest of their own speech: a voice's level, which moves every phone of it, is taken out; on the
    demo's test_zh the intervals over speakers of the relative differences were less than half as wide as the
    LogLL's, median 17.4 against 40.6 nats, docs/scoring.md). Seeded by the phone's name: a phone's intervals do not
    depend on which others there are."""
    out = []
    for phone, mine in phones.phones.items():
        theirs = reference.phones.get(phone)
        if theirs is None or min(mine.frames, theirs.frames) < min_frames:
            continue
        seeds = [seed, zlib.crc32(phone.encode())]
        interval, relative = (
            mean_difference_interval_over_groups(getattr(mine, f"speaker_{kind}"), mine.speaker_frames,
                                                 getattr(theirs, f"speaker_{kind}"), theirs.speaker_frames,
                                                 resamples, seeds)
            for kind in ("log_ll", "relative"))
        out.append(Difference(phone, mine.log_ll - theirs.log_ll, (interval[0], interval[1]),
                              mine.relative - theirs.relative, (relative[0], relative[1])))
    return sorted(out, key=lambda d: (d.relative, d.phone))
