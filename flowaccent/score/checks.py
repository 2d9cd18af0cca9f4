r"""What scoring warns about and goes on: sets that share utterances, and CMVN units of too few frames.
Each is one line on stderr (an earlier run's sets left in the output folder: flowaccent.data.specs)."""

from __future__ import annotations

import sys

from flowaccent.data.datadir import DataDir
from flowaccent.data.stream import load_cmvn_stats
from flowaccent.score.scorer import SetScores


def shared_utts(a: SetScores, b: SetScores) -> int:
    r"""How many utterance ids two scored sets have in common."""
    return len(set(a.utts) & set(b.utts))


#: Fewer frames than this (1 s) in a CMVN unit (speaker or utterance): its statistics say little.
MIN_CMVN_FRAMES = 100


def warn_short_cmvn_units(
    sets: dict[str, DataDir], cmvn: str, scored: dict[str, SetScores] | None = None
) -> None:
    r"""A line for each set with speakers (``cmvn`` ``spk``) or utterances (``utt``) of under
    :data:`MIN_CMVN_FRAMES` frames: normalised on so few frames, their scores are not comparable. A speaker's
    frames are the count in its ``cmvn.scp`` stats, what it is normalised on (a subset keeps each speaker's whole
    stats: counting the set's frames warned about speakers of many), read before scoring. An utterance's: before
    scoring, of the sets with ``utt2num_frames``; with ``scored``, after it, of the others (the frames read)."""
    for name, data in sets.items():
        if cmvn == "spk" and scored is None and data.has("cmvn.scp"):  # none: an error when it is scored
            speakers = set(data.utt2spk.values())
            frames = {spk: int(s[0, -1]) for spk, s in load_cmvn_stats(data).items() if spk in speakers}
        elif cmvn == "utt" and data.has("utt2num_frames") != (scored is not None):
            frames = data.utt2num_frames() if scored is None else dict(zip(scored[name].utts, scored[name].num_frames))
        else:
            continue
        short = sorted((n, unit) for unit, n in frames.items() if n < MIN_CMVN_FRAMES)
        if short:
            kind = "speaker" if cmvn == "spk" else "utterance"
            print(f"score: warning: set {name}: {len(short)} {kind}(s) of under {MIN_CMVN_FRAMES} frames (e.g. "
                  f"'{short[0][1]}': {short[0][0]}); the model's {kind} CMVN normalises them on so few frames that "
                  f"their scores are not comparable (1 frame: every feature 0)", file=sys.stderr)


def warn_short_utterances(results: dict[str, SetScores], context: int) -> None:
    r"""A line for each set with utterances shorter than the model's ``context`` (frames, deltas and splicing):
    every frame of such an utterance holds copies of its edge frames (deltas of 0 at 1 frame), so its score is
    not like the others': a 1-frame utterance scored a LogLL of 56.1 in a set whose mean was 11.2 (a tiny model,
    ad hoc), and nothing said so."""
    for name, scored in results.items():
        short = sorted((int(n), utt) for utt, n in zip(scored.utts, scored.num_frames) if n < context)
        if short:
            print(f"score: warning: set {name}: {len(short)} utterance(s) shorter than the model's context of "
                  f"{context} frames (deltas and splicing; e.g. '{short[0][1]}': {short[0][0]}): every frame holds "
                  f"copies of its edge frames, so their scores are not comparable", file=sys.stderr)


def warn_shared(results: dict[str, SetScores], sets: dict[str, DataDir]) -> None:
    r"""A line for each pair of sets with utterance ids in common (the same data under two names?), or else with
    speakers in common (an SVR fitted on one and applied to the other meets speakers it was fitted on)."""
    names = list(results)
    speakers = {name: {sets[name].utt2spk[u] for u in results[name].utts} for name in names}
    utts, spks = [], []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if shared := shared_utts(results[a], results[b]):
                utts.append(f"{a} and {b} share {shared} utterance id(s)")
            elif common := len(speakers[a] & speakers[b]):
                spks.append(f"{a} and {b} share {common} speaker(s)")
    _pairs(utts, "utterance ids", "an SVR fitted on one and applied to the other, and where one is the reference the "
           "other's AUC against it, compare the same utterances")
    _pairs(spks, "speakers", "an SVR fitted on one and applied to the other is tested on speakers it was fitted on, "
           "and where one is the reference the other's AUC interval is of a paired design (narrower where a speaker "
           "scores alike in both)")


def _pairs(said: list[str], what: str, why: str, most: int = 3) -> None:
    r"""A line for each of a few pairs of sets, one line in all for more (20 sets gave 57 lines)."""
    lines = [f"sets {pair}" for pair in said]
    if len(said) > most:
        lines = [f"{len(said)} pairs of sets share {what} (sets {'; '.join(said[:most])}; ...)"]
    for line in lines:
        print(f"score: warning: {line}; {why}", file=sys.stderr)
