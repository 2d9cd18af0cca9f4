r"""``fbank.json``: how a data dir's features were computed, so a model is never fed others silently.

``flowaccent fbank`` writes ``DATA_DIR/fbank.json`` (the :class:`~flowaccent.features.fbank.FbankConfig`,
the channel, and how many utterances came at each sample rate); ``flowaccent train`` keeps its
training dirs' record in ``EXP_DIR/fbank.json``; ``score`` and ``blurmask`` refuse a set whose
features were computed with other options than the model's, naming the option. Features of the
same dimension computed otherwise (a 5 ms shift, linear energies, another rate) were scored
without a word: a set with a 5 ms shift looked more native than the native one. Data dirs
without a record (features made by Kaldi, or by flowaccent before the record existed) are checked for
their frame rate alone, where they have Kaldi's ``utt2dur`` (:func:`frame_rate_problem`), and ``score`` and
``blurmask`` say they are otherwise unchecked where the model has a record. A record whose run's arks
``feats.scp`` no longer lists (features computed again by another tool in a dir ``flowaccent fbank``
once ran in) is taken as no record, with a warning: it vouched for them.

Example:
    >>> differences({"frame_shift_ms": 10.0, "dither": 0.0}, {"frame_shift_ms": 5.0, "dither": 0.0})
    ['frame_shift_ms 5.0 (not 10.0)']
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowaccent.data.atomic import atomic_write_json
from flowaccent.data.rules import FEATS_DIGEST
from flowaccent.errors import ConfigError, FlowAccentError

#: The record's file name, in a data dir and in an experiment dir.
RECORD = "fbank.json"
#: Options that say whether audio may be resampled, not how features are computed.
NOT_COMPARED = ("allow_upsample", "allow_downsample")
#: How ``flowaccent fbank`` resamples audio at another rate (the record's ``resampler``): Kaldi's windowed sinc
#: (:mod:`flowaccent.features.resample`). A record without one is from before it: scipy's polyphase filter, whose
#: features of 22.05 kHz audio were higher than Kaldi's by 0.17-0.31 on average (up to 0.6) in the top 3 of 40 mel
#: bins (docs/features.md).
RESAMPLER = "kaldi"
OLD_RESAMPLER = "scipy resample_poly"
#: A ``flowaccent fbank`` run's tag in the names of the arks it writes (``raw_fbank_NAME.TAG.ark``): 10 hex digits.
RUN_TAG = "[0-9a-f]{10}"


def write_record(
    folder: Path, options: Mapping[str, Any], channel: int, rates: Mapping[int, int], run: str | None = None,
    feats: str | None = None, inputs: str | None = None, written: str | None = None,
) -> None:
    r"""Writes ``folder/fbank.json``: ``options`` (``FbankConfig.to_dict()``), ``channel``, ``rates``
    (sample rate of the audio as read -> utterances), ``run``, the tag in the names of the arks it
    wrote (``raw_fbank_NAME.RUN.ark``): features that ``feats.scp`` lists from other arks are not the ones
    described (:func:`data_record`); and ``feats``, the digest of the utterances the ``feats.scp`` it wrote lists
    (:func:`~flowaccent.data.rules.utterances_digest`: utterances it lacks were added since,
    :func:`~flowaccent.data.rules.stale_feats`); ``inputs``, a digest of the audio files and ``utt2spk`` the run
    read, and ``written``, one of the tables and arks it wrote (``fbank --resume`` keeps features whose record says
    these, :mod:`flowaccent.features.make_fbank`)."""
    record = {"fbank": dict(options), "channel": channel, "source_rates": {str(r): n for r, n in sorted(rates.items())},
              "resampler": RESAMPLER, **({"run": run} if run else {}), **({FEATS_DIGEST: feats} if feats else {}),
              **({"inputs": inputs} if inputs else {}), **({"written": written} if written else {})}
    atomic_write_json(folder / RECORD, record)


def read_record(folder: Path, mend: str = "") -> dict[str, Any] | None:
    r"""``folder/fbank.json`` as written by :func:`write_record`, or None where there is none. ``mend``: what to do
    about a damaged one (default: compute the data dir's features again)."""
    path = folder / RECORD
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
        record["fbank"], record["source_rates"]  # noqa: B018 - both must be there
    except (ValueError, TypeError, KeyError):
        mend = mend or f"run 'flowaccent fbank {folder}' again"
        raise ConfigError(f"{path}: damaged; {mend}") from None
    return record


def data_record(folder: Path, command: str) -> dict[str, Any] | None:
    r"""A data dir's record (:func:`read_record`) where it describes the features ``feats.scp`` lists; None,
    with a warning, where ``feats.scp`` points at other arks than the run that wrote the record (features
    computed again by another tool: the record left behind would vouch for them). A record from before
    records named their run is checked against ``flowaccent fbank``'s ark names, any run."""
    record = read_record(folder)
    if record is None:
        return None
    from flowaccent.data.datadir import read_table

    run = re.escape(record["run"]) if "run" in record else RUN_TAG  # a record from before runs were named
    ours = re.compile(rf"(?:^|/)raw_fbank_[^/]*\.{run}\.ark:")
    if all(ours.search(value) for value in read_table(folder / "feats.scp").values()):
        return record
    print(f"{command}: warning: {folder / RECORD} describes features that {folder / 'feats.scp'} no longer lists "
          f"(computed again by another tool?): they are not checked against the model's fbank options",
          file=sys.stderr)
    return None


def resampler(record: Mapping[str, Any]) -> str | None:
    r"""How the record's audio was resampled (:data:`RESAMPLER`, or :data:`OLD_RESAMPLER` for a record from before
    records said); None where none of it was (all at ``sample_frequency``)."""
    target = str(record["fbank"].get("sample_frequency"))
    if all(rate == target for rate in record["source_rates"]):
        return None
    return record.get("resampler", OLD_RESAMPLER)


def differences(want: Mapping[str, Any], got: Mapping[str, Any]) -> list[str]:
    r"""The options of ``got`` that differ from ``want``'s, as ``'name got (not want)'``."""
    names = [n for n in dict.fromkeys([*want, *got]) if n not in NOT_COMPARED]
    return [f"{n} {got.get(n)} (not {want.get(n)})" for n in names if want.get(n) != got.get(n)]


def training_record(dirs: list[Path]) -> dict[str, Any] | None:
    r"""The record the training dirs share (their rates summed), None if none has one; a
    :class:`ConfigError` naming the dir and the option where two differ. A dir without a record among dirs
    with one is named in a warning: its features are checked against nothing, and the record, which scoring
    checks sets against, does not describe them."""
    records = [(d, r) for d in dirs if (r := data_record(d, "train")) is not None]
    if not records:
        return None
    for folder in dirs:
        if not any(folder == d for d, _ in records) and not (folder / RECORD).exists():  # else data_record said so
            print(f"train: warning: {folder} has no record of how its features were computed ({RECORD}, written by "
                  f"'flowaccent fbank'), unlike {records[0][0]}: its features are not checked against the others', "
                  f"and the model's {RECORD} (what score checks sets against) describes only theirs", file=sys.stderr)
    (first_dir, first), rates, resampled = records[0], {}, {}  # resampled: how -> the first dir resampled so
    for folder, record in records:
        if diff := differences(first["fbank"], record["fbank"]):
            raise ConfigError(f"{folder}'s features were computed with {', '.join(diff)} of {first_dir}'s "
                              f"({RECORD}); compute them with the same 'flowaccent fbank' options")
        if (how := resampler(record)) is not None:
            resampled.setdefault(how, folder)
        for rate, n in record["source_rates"].items():
            rates[rate] = rates.get(rate, 0) + n
    if len(resampled) > 1:
        (how_a, a), (how_b, b) = list(resampled.items())[:2]
        raise ConfigError(f"{b}'s audio was resampled with {how_b}, {a}'s with {how_a} ({RECORD}): their "
                          f"top mel bins differ; compute both with this version's 'flowaccent fbank'")
    first = {k: v for k, v in first.items() if k not in ("run", FEATS_DIGEST, "inputs", "written")}  # the dirs'
    # own, not the model's
    return {**first, "source_rates": rates, "resampler": next(iter(resampled), RESAMPLER)}


#: Largest relative difference between a set's frames and the frames its audio's length makes under the model's
#: options, before its features are taken to come at another frame rate (a 5 ms shift makes twice as many).
FRAME_RATE_TOLERANCE = 0.1


def frame_rate_problem(data: Any, options: Mapping[str, Any]) -> str | None:
    r"""Where a data dir's features come at another frame rate than ``options`` (the model's fbank options)
    make: its frames (``utt2num_frames``) against those its audio's length (Kaldi's ``utt2dur``, which
    Kaldi's ``make_fbank.sh`` writes) makes under ``options``, over the utterances in both, as Kaldi's
    ``utils/data/get_frame_shift.sh`` works a frame shift out from the two tables; None where they agree
    within :data:`FRAME_RATE_TOLERANCE`, or the dir has not both tables (or values that are not numbers:
    ``utt2dur`` is another tool's table, not checked here)."""
    from flowaccent.data.datadir import read_table
    from flowaccent.data.kaldi_text import NUMBER
    from flowaccent.features.fbank import kaldi_num_frames

    if not data.has("utt2num_frames") or not (data.path / "utt2dur").is_file():
        return None
    try:
        durations = read_table(data.path / "utt2dur")
    except FlowAccentError:
        return None
    frames = data.utt2num_frames()
    rate = float(options.get("sample_frequency", 16000))
    got = made = 0
    for utt, text in durations.items():
        if utt in frames and NUMBER.fullmatch(text) and 0 <= float(text) < math.inf:
            got, made = got + frames[utt], made + kaldi_num_frames(round(float(text) * rate), options)
    if made == 0 or got == 0 or abs(got - made) <= FRAME_RATE_TOLERANCE * made:
        return None
    shift = float(options.get("frame_shift_ms", 10.0))
    return (f"its features come every {shift * made / got:.1f} ms, not every {shift:g} ms as the model's "
            f"(frame_shift_ms): {got} frames (utt2num_frames) where its audio's length (utt2dur) makes {made} with "
            f"the model's options")


def check_sets(exp: Path, sets: Mapping[str, Any], command: str) -> None:
    r"""Refuses a set (name -> :class:`~flowaccent.data.datadir.DataDir`) whose features were computed with
    other options than the model's training data (``exp/fbank.json``); warns about a set upsampled from
    audio at a lower rate than any the model was trained on (its upper band is empty). Where ``exp`` has no record
    and a set has one (a model copied without its experiment dir's ``fbank.json``), it says the sets are not
    checked: features at a 5 ms shift were scored by a 10 ms model without a word."""
    model = read_record(exp, "'flowaccent train' copied it from the model's training data dirs: copy one of their "
                             "fbank.json in its place (or remove it: the sets' options are then not checked)")
    if model is None:
        recorded = [name for name, data in sets.items() if (data.path / RECORD).exists()]
        if recorded:
            print(f"{command}: warning: no record of how the model's training features were computed ({exp / RECORD}, "
                  f"which 'flowaccent train' keeps where 'flowaccent fbank' made them): the fbank options of set(s) "
                  f"{', '.join(recorded)} are not checked against the model's", file=sys.stderr)
        return
    trained_rates = {int(r) for r in model["source_rates"]}
    for name, data in sets.items():
        record = data_record(data.path, command)
        if record is None:
            if problem := frame_rate_problem(data, model["fbank"]):
                raise ConfigError(f"{command}: set {name}: {problem} ({exp / RECORD}); compute its features again "
                                  f"with 'flowaccent fbank' and the model's options")
            if not (data.path / RECORD).exists():  # one left beside other features: data_record said so
                print(f"{command}: warning: set {name}: no record of how its features were computed "
                      f"({data.path / RECORD}, written by 'flowaccent fbank'): not checked against the model's "
                      f"fbank options ({exp / RECORD})", file=sys.stderr)
            continue
        if diff := differences(model["fbank"], record["fbank"]):
            raise ConfigError(
                f"{command}: set {name}: its features were computed with {', '.join(diff)} of the model's training "
                f"features ({data.path / RECORD} against {exp / RECORD}); compute them again with "
                f"'flowaccent fbank' and the model's options"
            )
        if (ours := resampler(model)) and (theirs := resampler(record)) and ours != theirs:
            raise ConfigError(
                f"{command}: set {name}: its audio was resampled with {theirs}, the model's training audio with "
                f"{ours} ({data.path / RECORD} against {exp / RECORD}): their top mel bins differ; compute the "
                f"features of both with this version's 'flowaccent fbank'"
            )
        target = record["fbank"].get("sample_frequency", 0)
        low = sorted(int(r) for r in record["source_rates"] if int(r) < min(trained_rates | {target}))
        if low:
            print(f"{command}: warning: set {name}: audio at {low[0]} Hz upsampled to {target} Hz (its band above "
                  f"{low[0] // 2} Hz is empty), the model's training audio was at {min(trained_rates)} Hz or more: "
                  f"its scores differ by bandwidth as well as accent", file=sys.stderr)
