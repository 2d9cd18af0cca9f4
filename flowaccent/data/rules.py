r"""The rules a Kaldi data dir is checked against (those of Kaldi's ``utils/validate_data_dir.sh``, and this
project's tables): :func:`inspect_dir` reads its tables and lists every problem."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Collection, Iterable
from pathlib import Path

from flowaccent.data.atomic import bytes_digest
from flowaccent.data.kaldi_text import COUNT, NUMBER, fields
from flowaccent.data.segments import parse_segment
from flowaccent.data.table import DuplicateKeyError, c_order, read_table, spk2utt_of
from flowaccent.errors import DataDirError

#: Tables keyed by utterance.
UTT_TABLES = ("wav.scp", "segments", "text", "utt2spk", "feats.scp", "utt2num_frames", "utt2accent", "utt2score")

#: Tables keyed by speaker.
SPK_TABLES = ("spk2utt", "cmvn.scp")

#: The tables an utterance must be in where a data dir has them: ``flowaccent fixdir`` keeps the utterances all of
#: them list (Kaldi's ``utils/fix_data_dir.sh``'s, and this project's accent labels); with ``segments``, ``wav.scp``
#: is keyed by recording.
NEEDED = ("utt2spk", "feats.scp", "text", "utt2accent", "utt2lang", "segments", "wav.scp")

#: The tables ``flowaccent fbank`` writes (and replaces).
FBANK_OUTPUTS = ("feats.scp", "cmvn.scp", "utt2num_frames")

#: The failed utterances of the last ``flowaccent fbank``, with their errors, in ``DATA_DIR/data/`` (there while the
#: last run is one that failed: each run removes it first).
FBANK_FAILED = "fbank_failed.txt"

#: The key of ``fbank.json`` (:mod:`flowaccent.features.fbank_record`) that holds the digest of the utterances the
#: ``feats.scp`` its run wrote lists (:func:`utterances_digest`).
FEATS_DIGEST = "feats_scp"

#: Tables that may cover some of the utterances only (ratings of an annotated part of a corpus).
PARTIAL_TABLES = ("utt2score",)

#: Tables whose value may be empty (an empty transcript).
EMPTY_VALUE_OK = ("text",)

#: Tables whose values repeat over the utterances (speaker ids, frame counts, accent labels): held once each.
_ID_VALUES = ("utt2spk", "utt2num_frames", "utt2accent")

#: How to make a required table that is missing (a table made from ``feats.scp`` where it is there: else
#: :data:`_WITH_FEATS`).
_HOW = {
    "utt2spk": " ('utterance speaker' a line; speakers not known: one per utterance, as Kaldi's recipes make it, "
    "awk '{{print $1, $1}}' {path}/{table} > {path}/utt2spk, or of segments' first column where it has segments)",
    "feats.scp": " (compute the features: 'flowaccent fbank {path}', or Kaldi's steps/make_fbank.sh)",
    "spk2utt": " (make it from utt2spk: 'flowaccent fixdir {path}', or Kaldi's utils/utt2spk_to_spk2utt.pl)",
    "cmvn.scp": " (make it from feats.scp with 'flowaccent cmvn {path}' or Kaldi's steps/compute_cmvn_stats.sh)",
    "utt2num_frames": " (make it from feats.scp with 'flowaccent fixdir {path}' or Kaldi's "
    "utils/data/get_utt2num_frames.sh; or run 'flowaccent fbank {path}' for new features)",
}

#: Other tools' tables of one line a key that Kaldi's ``validate_data_dir.sh`` checks (flowaccent's commands do not
#: read them: ``validate`` and ``fixdir`` check them, :func:`inspect_dir`'s ``kaldi``), each keyed by utterance,
#: speaker or recording (``wav.scp``'s: with ``segments``, theirs).
KALDI_TABLES = {"utt2dur": "utt", "utt2lang": "utt", "utt2uniq": "utt", "utt2warp": "utt", "vad.scp": "utt",
                "spk2gender": "spk", "spk2warp": "spk", "reco2file_and_channel": "reco", "reco2dur": "reco"}

#: How to mend a table of :data:`KALDI_TABLES` that lacks some keys (Kaldi's script requires each to list them all).
_LACKING = {"utt2dur": "; Kaldi's utils/data/get_utt2dur.sh makes it", "spk2gender": "; give each speaker one",
            "utt2lang": "; 'flowaccent fixdir {path}' leaves them out",
            "reco2dur": "; Kaldi's utils/data/get_reco2dur.sh makes it"}


def _number(value: str, low: float, high: float) -> bool:
    r"""``value`` a number (not ``4_5``, nor Arabic-Indic digits) in the open interval ``(low, high)``."""
    return bool(NUMBER.fullmatch(value)) and low < float(value) < high


#: Of :data:`KALDI_TABLES`, the values Kaldi's script requires, and what they are in words.
_KALDI_VALUES = {
    "utt2dur": (lambda v: _number(v, 0, math.inf), "a duration > 0 (seconds)"),
    "reco2dur": (lambda v: _number(v, 0, math.inf), "a duration > 0 (seconds)"),
    "utt2warp": (lambda v: _number(v, 0.5, 1.5), "a warp factor in (0.5, 1.5)"),
    "spk2warp": (lambda v: _number(v, 0.5, 1.5), "a warp factor in (0.5, 1.5)"),
    "spk2gender": (lambda v: v in ("m", "f"), "'m' or 'f'"),
    "reco2file_and_channel": (lambda v: len(fields(v)) == 2 and fields(v)[1] in ("A", "B", "1"),
                              "'file channel', the channel A or B"),
}

#: Of a table made from ``feats.scp``, where that is missing too.
_WITH_FEATS = " (written with feats.scp by 'flowaccent fbank')"


def _utt2spk_error(tables: dict[str, dict[str, str]], error: DataDirError) -> str:
    r"""What is said of an ``utt2spk`` that cannot be read: a duplicate key that is no utterance of the tables read
    before it (``segments``, else ``wav.scp``) is a speaker, its columns swapped."""
    utterances = tables.get("segments", tables.get("wav.scp"))
    if not isinstance(error, DuplicateKeyError) or utterances is None or error.key in utterances:
        return str(error)
    return f"{error.said}: not an utterance of wav.scp or segments: a speaker? utt2spk is 'utterance speaker' a line"


def utterances_digest(utts: Iterable[str]) -> str:
    r"""Digest (:func:`~flowaccent.data.atomic.bytes_digest`) of the utterance ids a ``feats.scp`` lists, in any
    order: the same wherever the dir and its arks are (a copy, a resumed run's)."""
    return bytes_digest("\n".join(sorted(utts)).encode("utf-8"))


def recorded_utterances(path: Path) -> tuple[dict, str | None]:
    r"""The data dir ``path``'s ``fbank.json`` and the :func:`utterances_digest` of the ``feats.scp`` its run wrote
    (:data:`FEATS_DIGEST`); ``({}, None)`` where there is none, or it is damaged or not a record."""
    try:
        record = json.loads((path / "fbank.json").read_text())
        return record, record.get(FEATS_DIGEST)
    except (OSError, ValueError, AttributeError):
        return {}, None


def stale_feats(path: Path, feats: Collection[str], utts: Iterable[str]) -> str:
    r"""Why the data dir ``path``'s ``feats.scp`` (its utterances ``feats``) is to be replaced by the next
    ``flowaccent fbank``, the utterances of ``utts`` it lacks not left out as Kaldi's rule has it (in words; "" where
    it is not): its last run failed (``data/fbank_failed.txt``: ``feats.scp`` is an earlier run's), or it lacks some
    and lists what a run wrote (the digest its ``fbank.json`` records), which took every utterance of the dir then:
    those were added since. A ``feats.scp`` filtered by hand, or made by another tool, is neither."""
    if (path / "data" / FBANK_FAILED).is_file():
        return "of an fbank run before the one that failed (data/fbank_failed.txt)"
    if all(utt in feats for utt in utts) or recorded_utterances(path)[1] != utterances_digest(feats):
        return ""
    return "as 'flowaccent fbank' wrote it, before the utterances it lacks were added"


def missing(path: Path, name: str) -> str:
    r"""The problem of a required table ``name`` the data dir ``path`` lacks (then how to make it, where said:
    :func:`missing_how`)."""
    return f"{path / name}: required but missing"


def missing_how(path: Path, name: str) -> str:
    r""":func:`missing`, and how to make the table where there is a way to say (utt2spk's is of the dir's spk2utt,
    else one speaker an utterance of its wav.scp or feats.scp: not said of a dir with none; spk2utt's is of
    utt2spk, where there is one)."""
    table = next((t for t in ("wav.scp", "feats.scp") if (path / t).exists()), None)
    if name == "utt2spk" and (path / "spk2utt").exists():  # its speakers are there: one per utterance lost them
        return missing(path, name) + (f" (make it from spk2utt: Kaldi's utils/spk2utt_to_utt2spk.pl {path}/spk2utt > "
                                      f"{path}/utt2spk)")
    if (name == "utt2spk" and table is None) or (name == "spk2utt" and not (path / "utt2spk").exists()):
        return missing(path, name)  # no table to make it of
    return missing(path, name) + _HOW.get(name, "").format(path=path, table=table)


def as_names(value: Iterable[str], what: str) -> tuple[str, ...]:
    r"""``value`` as a tuple of names; a lone string is refused (its letters were taken as the names: 'f: required
    but missing', 'unknown utterance(s), e.g. '-'')."""
    if isinstance(value, (str, bytes)):
        raise DataDirError(f"{what} is a list of names, got the string {value!r} (give [{value!r}])")
    return tuple(value)


def inspect_dir(
    path: Path, require: tuple[str, ...], unused: tuple[str, ...] = (), share: bool = False, kaldi: bool = False
) -> tuple[dict, list[str]]:
    r"""``(tables, problems)`` of the data dir ``path``; ``share``: the tables hold each id once (as a
    :class:`~flowaccent.data.datadir.DataDir` keeps them; :func:`read_table`'s ``shared``, which took ``validate``
    7% longer on 200k utterances for tables it drops at once); ``kaldi``: Kaldi's rules that flowaccent's own
    commands do not need too (:func:`_check_kaldi`: ``validate`` and ``fixdir``)."""
    if not path.is_dir():
        return {}, [f"{path}: {'not a directory' if path.exists() else 'no such directory'}"]
    problems: list[str] = []
    tables: dict[str, dict[str, str]] = {}
    shared: dict[str, str] | None = {} if share else None
    for name in UTT_TABLES + SPK_TABLES:  # skipped as absent (and required ones called missing)
        if name not in unused and (path / name).is_symlink() and not (path / name).exists():
            problems.append(f"{path / name}: a broken symbolic link (to {os.readlink(path / name)})")
    no_feats = "feats.scp" in require and not (path / "feats.scp").exists()
    for name in ("utt2spk", "spk2utt", *require):
        if name not in unused and not (path / name).exists():
            with_feats = no_feats and name in ("cmvn.scp", "utt2num_frames")
            problems.append(missing(path, name) + _WITH_FEATS if with_feats else missing_how(path, name))
    for name in UTT_TABLES + SPK_TABLES:
        if name not in unused and (path / name).exists():
            try:
                tables[name] = read_table(path / name, name in EMPTY_VALUE_OK, any_text=name == "text", shared=shared,
                                          share_values=name in _ID_VALUES)
            except DataDirError as error:
                problems.append(_utt2spk_error(tables, error) if name == "utt2spk" else str(error))
    if "utt2spk" in tables:
        problems += _check_speakers(path, tables)
        problems += _check_coverage(path, tables)
    problems += _check_values(path, tables)
    if "segments" in tables:
        problems += _check_segments(path, tables)
    problems += _check_one_fbank_run(path, tables)
    if kaldi and path.is_dir():
        problems += _check_kaldi(path, tables, unused)
    return tables, problems


def _check_kaldi(path: Path, tables: dict[str, dict[str, str]], unused: tuple[str, ...]) -> list[str]:
    r"""What Kaldi's ``validate_data_dir.sh`` refuses that flowaccent's commands read (they drop a ``\r`` before a
    line's end, and do not read :data:`KALDI_TABLES` nor ``text``'s words): the tables of
    :data:`KALDI_TABLES` (:func:`_check_kaldi_tables`), recordings of ``wav.scp`` that no segment cuts, what
    :func:`_check_bytes` checks. The tables of ``unused`` are not checked."""
    present = [name for name in KALDI_TABLES if name not in unused and (path / name).is_file()]
    segments = tables.get("segments")
    recordings = None if segments is None else {fields(value)[0] for value in segments.values() if fields(value)}
    problems = _check_kaldi_tables(path, tables, present, recordings)
    if recordings is not None and "wav.scp" in tables:
        unused_recordings = sorted(set(tables["wav.scp"]) - recordings, key=c_order)
        if unused_recordings:
            problems.append(f"{path / 'wav.scp'}: {len(unused_recordings)} recording(s) that no line of segments cuts, "
                            f"e.g. '{unused_recordings[0]}' (Kaldi's validate_data_dir.sh requires the same "
                            f"recordings; 'flowaccent fixdir {path}' removes them)")
    for name in [*UTT_TABLES, *SPK_TABLES, *present]:
        if name not in unused and (path / name).is_file():
            problems += _check_bytes(path / name)
    return problems


def _check_kaldi_tables(
    path: Path, tables: dict[str, dict[str, str]], present: list[str], recordings: set[str] | None
) -> list[str]:
    r"""The tables ``present`` of :data:`KALDI_TABLES`: one line a key, sorted, of the dir's keys (``recordings``:
    those ``segments`` cuts; None: none, the utterances are), each key; values as :data:`_KALDI_VALUES`."""
    problems: list[str] = []
    utt2spk = tables.get("utt2spk", {})
    keys = {"utt": set(utt2spk), "spk": set(utt2spk.values()),
            "reco": set(utt2spk) if recordings is None else recordings}
    whose = {"utt": ("utterance", "utt2spk"), "spk": ("speaker", "utt2spk"),
             "reco": ("recording", "segments" if recordings is not None else
                      "utt2spk (no segments: its utterances are the recordings)")}
    for name in present:
        try:
            table = read_table(path / name)
        except DataDirError as error:
            problems.append(str(error))
            continue
        kind, (what, of) = KALDI_TABLES[name], whose[KALDI_TABLES[name]]
        lacking = sorted(keys[kind] - set(table), key=c_order) if utt2spk else []
        extra = sorted(set(table) - keys[kind], key=c_order) if utt2spk else []
        if lacking:
            problems.append(f"{path / name}: {len(lacking)} {what}(s) of {of} missing, e.g. '{lacking[0]}' (Kaldi's "
                            f"validate_data_dir.sh requires them all{_LACKING.get(name, '').format(path=path)})")
        if extra:
            problems.append(f"{path / name}: {len(extra)} {what}(s) not in {of}, e.g. '{extra[0]}' ('flowaccent "
                            f"fixdir {path}' removes them)")
        good, said = _KALDI_VALUES.get(name, (None, ""))
        bad = next((key for key, value in table.items() if not good(value)), None) if good else None
        if bad is not None:
            problems.append(f"{path / name}: {what} '{bad}': '{table[bad]}' is not {said}")
    return problems


def _check_bytes(table: Path) -> list[str]:
    r"""A ``table``'s bytes as Kaldi's scripts and tools take them: a last line without its line end (Kaldi's
    ``validate_data_dir.sh``: 'invalid newline'), Windows line ends (Kaldi's tools read the ``\r`` as part of a line's
    last field), and :func:`_check_contents`'s rules for ``text`` and ``wav.scp``. A ``text`` that is not UTF-8 is
    Kaldi's as it is: ``validate_text.pl`` checks the whitespace only of lines that decode."""
    problems = []
    with contextlib.suppress(OSError):  # said where the table was read
        raw = table.read_bytes()
        if raw and not raw.endswith(b"\n"):
            problems.append(f"{table}: no line end after its last line, which Kaldi's validate_data_dir.sh refuses "
                            f"('invalid newline'); echo >> {table}")
        at = raw.find(b"\r\n")
        if at >= 0:
            problems.append(f"{table}:{_line_of(raw, at)}: a Windows line end (\\r\\n): Kaldi's tools take the \\r as "
                            f"part of the line's last field (flowaccent's drop it); sed -i 's/\\r$//' {table}")
        problems += _check_contents(table, raw)
    return problems


#: Words of ``text`` that Kaldi's ``validate_text.pl`` refuses: the language model's sentence marks, the
#: disambiguation symbol.
_LM_SYMBOLS = ("<s>", "</s>", "#0")


def _check_contents(table: Path, raw: bytes) -> list[str]:
    r"""Kaldi's rules for ``text`` (``validate_text.pl``: no ``<s>``, ``</s>`` or ``#0``, no whitespace but ASCII
    spaces and tabs in a line that decodes as UTF-8) and ``wav.scp`` (no ``~`` for a home folder, which Kaldi's
    tools do not expand)."""
    if table.name == "wav.scp":
        tilde = re.search(rb"^\S+[ \t]+~", raw, re.M)
        return [f"{table}:{_line_of(raw, tilde.start())}: a path starting with '~', which Kaldi's tools do not "
                f"expand (validate_data_dir.sh refuses it); give the whole path"] if tilde else []
    if table.name != "text":
        return []
    for number, line in enumerate(raw.split(b"\n"), 1):
        try:
            words = line.rstrip(b"\r").decode("utf-8")
        except UnicodeDecodeError:
            continue  # not UTF-8: validate_text.pl lets it be
        if symbol := next((w for w in words.split()[1:] if w in _LM_SYMBOLS), None):
            return [f"{table}:{number}: holds '{symbol}', a symbol of the language model that Kaldi's validate_text.pl "
                    f"refuses in a transcript"]
        if space := next((c for c in words if c.isspace() and c not in " \t"), None):
            return [f"{table}:{number}: holds whitespace {space!r}, which Kaldi's validate_text.pl refuses (only "
                    f"spaces and tabs)"]
    return []


def _line_of(data: bytes, at: int) -> int:
    r"""The number of the line (from 1) that holds byte ``at`` of ``data``."""
    return data.count(b"\n", 0, at) + 1


#: The run tag in the ark names ``flowaccent fbank`` writes (``raw_fbank_NAME.TAG.ark``, ``cmvn_NAME.TAG.ark``).
_FBANK_ARK = re.compile(r"(?:raw_fbank|cmvn)_.*\.([0-9a-f]{10})\.ark:\d+")


def _check_one_fbank_run(path: Path, tables: dict[str, dict[str, str]]) -> list[str]:
    r"""``feats.scp`` and ``cmvn.scp`` written by one ``flowaccent fbank`` run: their tables are replaced one
    after the other, so a run killed between them left new features beside old stats (other options)."""
    tags = []
    for name in ("feats.scp", "cmvn.scp"):
        first = next(iter(tables.get(name, {}).values()), "")
        tags.append(match.group(1) if (match := _FBANK_ARK.search(first)) else None)
    if None not in tags and tags[0] != tags[1]:
        return [f"{path / 'cmvn.scp'}: from another 'flowaccent fbank' run than feats.scp (one was interrupted?); "
                f"run 'flowaccent fbank {path}' again"]
    return []


def _check_speakers(path: Path, tables: dict[str, dict[str, str]]) -> list[str]:
    utt2spk = tables["utt2spk"]
    if not utt2spk:
        return [f"{path / 'utt2spk'}: empty data dir (no utterances)"]
    problems = []
    bad = [(utt, spk) for utt, spk in utt2spk.items() if len(fields(spk)) != 1]
    if bad:
        problems.append(f"{path / 'utt2spk'}: {len(bad)} utterance(s) with a bad speaker, e.g. '{bad[0][0]}': "
                        f"'{bad[0][1]}'")
    order = list(utt2spk.items())  # sorted by utterance; Kaldi's validate_data_dir.sh: sorted by speaker too
    unsorted = [(a, b) for a, b in zip(order, order[1:]) if c_order(b[1]) < c_order(a[1])]
    if unsorted:
        (utt_a, spk_a), (utt_b, spk_b) = unsorted[0]
        prefixed = utt_a.startswith(spk_a) and utt_b.startswith(spk_b)  # s10_a before s1_a, yet s1 before s10
        how = ("give the speaker ids one length (s01, s10) or join them to the utterance ids with '-', which sorts "
               "before the digits ('_' sorts after them)" if prefixed else "make each speaker id a prefix of its "
               "utterance ids")
        problems.append(
            f"{path / 'utt2spk'}: not sorted by speaker as well as by utterance ({len(unsorted)} place(s), e.g. "
            f"'{utt_b} {spk_b}' after '{utt_a} {spk_a}'), as Kaldi requires (sort -k2); {how}"
        )
    if "spk2utt" in tables:
        expected = spk2utt_of(utt2spk)
        got = {spk: fields(utts) for spk, utts in tables["spk2utt"].items()}  # any whitespace, as Kaldi's scripts
        for spk in sorted(set(expected) | set(got), key=c_order):
            if expected.get(spk) != got.get(spk):
                problems.append(
                    f"{path / 'spk2utt'}: speaker '{spk}' does not match utt2spk "
                    f"(regenerate it with utt2spk_to_spk2utt.pl, or 'flowaccent fixdir {path}')"
                )
                break
    return problems


def _check_coverage(path: Path, tables: dict[str, dict[str, str]]) -> list[str]:
    utts = set(tables["utt2spk"])
    speakers = set(tables["utt2spk"].values())
    problems = []
    stale = stale_feats(path, tables["feats.scp"], utts) if "feats.scp" in tables else ""
    for name, table in tables.items():
        if name == "wav.scp" and "segments" in tables:
            continue  # keyed by recording: _check_segments
        keys = speakers if name in SPK_TABLES else utts
        kind = "speaker" if name in SPK_TABLES else "utterance"
        missing = sorted(keys - set(table), key=c_order)
        extra = sorted(set(table) - keys, key=c_order)
        by_utt = bool(extra) and name in SPK_TABLES and set(table) <= utts  # compute-cmvn-stats without --spk2utt
        if missing and name not in PARTIAL_TABLES and not by_utt:  # its speakers 'missing' hid why: said below
            fix = f" ('flowaccent fixdir {path}' leaves them out)" if name in NEEDED else ""
            if name == "utt2num_frames" and "feats.scp" in tables and not stale:
                fix = f" ('flowaccent fixdir {path}' counts their frames in feats.scp)"
            if name == "cmvn.scp":  # fixdir keeps them, unlike Kaldi's script, which drops their utterances
                fix = f" ('flowaccent cmvn {path}' computes every speaker's)"
            if name == "feats.scp" and stale:  # fixdir keeps them (an old run's)
                fix = f" (feats.scp is {stale}: 'flowaccent fbank' computes them)"
            problems.append(f"{path / name}: {len(missing)} {kind}(s) of utt2spk missing, e.g. '{missing[0]}'{fix}")
        if extra:
            problems.append(f"{path / name}: {len(extra)} {kind}(s) not in utt2spk, e.g. '{extra[0]}'"
                            + (" (keyed by utterance: speaker CMVN stats are keyed by speaker, as compute-cmvn-stats "
                               f"--spk2utt writes them, and 'flowaccent cmvn {path}' does)" if by_utt else
                               f" ('flowaccent fixdir {path}' removes them)"))
    return problems


def _check_values(path: Path, tables: dict[str, dict[str, str]]) -> list[str]:
    problems = []
    for utt, value in tables.get("utt2num_frames", {}).items():
        if not COUNT.fullmatch(value) or int(value) <= 0:
            problems.append(f"{path / 'utt2num_frames'}: utterance '{utt}': bad frame count '{value}'")
            break
    for utt, value in tables.get("utt2score", {}).items():
        ok = bool(NUMBER.fullmatch(value)) and math.isfinite(float(value))  # not 4_5 or Arabic-Indic digits
        if not ok:
            problems.append(f"{path / 'utt2score'}: utterance '{utt}': not a number '{value}'")
            break
    for utt, value in tables.get("utt2accent", {}).items():
        if len(fields(value)) != 1:
            problems.append(f"{path / 'utt2accent'}: utterance '{utt}': accent must be one token")
            break
    return problems


def _check_segments(path: Path, tables: dict[str, dict[str, str]]) -> list[str]:
    r"""Each line of ``segments`` a valid span; each recording it names in ``wav.scp`` (when present)."""
    problems = []
    recordings: dict[str, str] = {}
    for utt, value in tables["segments"].items():
        try:
            recordings.setdefault(parse_segment(value, f"{path / 'segments'}: utterance '{utt}'").recording, utt)
        except DataDirError as error:
            problems.append(str(error))
            break
    if "wav.scp" in tables:
        missing = sorted(set(recordings) - set(tables["wav.scp"]), key=c_order)
        if missing:
            problems.append(
                f"{path / 'wav.scp'}: {len(missing)} recording(s) of segments missing, e.g. '{missing[0]}' "
                f"(of utterance '{recordings[missing[0]]}'); with segments, wav.scp is keyed by recording ('flowaccent "
                f"fixdir {path}' leaves their utterances out)"
            )
    return problems
