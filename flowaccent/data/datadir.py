r"""Kaldi data dirs: read, write and validate the per-utterance and per-speaker tables.

A data dir is a folder of text tables ``key value`` as Kaldi defines them
(``utils/validate_data_dir.sh``): ``wav.scp, segments, text, utt2spk, spk2utt, feats.scp,
cmvn.scp`` (keyed by speaker), ``utt2num_frames``, and this project's
``utt2accent`` and ``utt2score``. Rules checked here: every table sorted by key
in C (byte) order with unique keys and no whitespace in keys; ``spk2utt``
consistent with ``utt2spk``; ``utt2spk`` sorted by speaker too (Kaldi's ``sort -k2`` rule, which
speaker ids that prefix their utterance ids satisfy);
every per-utterance table covering exactly the utterances of ``utt2spk`` (``utt2score`` some of them);
``cmvn.scp`` covering exactly the speakers. With ``segments``, ``wav.scp`` is keyed by
recording and must hold every recording the segments name (flowaccent.data.segments).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from flowaccent.data.atomic import atomic_path, atomic_write_text
from flowaccent.data.kaldi_text import COUNT, KALDI_SPACE, NUMBER, fields, has_space
from flowaccent.data.segments import Segment, parse_segment
from flowaccent.errors import DataDirError

#: Tables keyed by utterance.
UTT_TABLES = ("wav.scp", "segments", "text", "utt2spk", "feats.scp", "utt2num_frames", "utt2accent", "utt2score")
#: Tables keyed by speaker.
SPK_TABLES = ("spk2utt", "cmvn.scp")
#: Tables that training and scoring do not read (the transcripts).
UNUSED_BY_MODELS = ("text",)
#: Tables that ``flowaccent fbank`` neither reads nor needs intact (its outputs it replaces, too).
UNUSED_BY_FBANK = ("text", "utt2accent", "utt2score", "feats.scp", "cmvn.scp", "utt2num_frames")
#: Tables that may cover some of the utterances only (ratings of an annotated part of a corpus).
PARTIAL_TABLES = ("utt2score",)
#: Tables whose value may be empty (an empty transcript).
EMPTY_VALUE_OK = ("text",)
#: Tables whose values repeat over the utterances (speaker ids, frame counts, accent labels): held once each.
_ID_VALUES = ("utt2spk", "utt2num_frames", "utt2accent")


def read_table(
    path: str | Path, allow_empty_value: bool = False, any_text: bool = False, *, shared: dict[str, str] | None = None,
    share_values: bool = False,
) -> dict[str, str]:
    r"""Reads a Kaldi table ``key value`` into an insertion-ordered dict.

    Lines end at ``\n`` only, as in Kaldi (a ``\r`` before it is dropped: CRLF files read as LF
    ones). Raises :class:`DataDirError` naming the file and line for a missing file, bytes that
    are not UTF-8 (with ``any_text``, in values they are replaced instead: transcripts in Latin-1),
    a byte-order mark, a line without a value, a duplicate key, or keys not sorted in C order.

    ``shared``: strings read before (each mapped to itself, e.g. by the tables of the same data dir read
    before): a key equal to one is kept as that one, a new key is added to it; with ``share_values`` the values
    too (ids, counts: ``utt2spk``'s speakers). A data dir's tables then hold each utterance id once, and each
    speaker once, not once per line of each table (the four tables ``train`` reads of 200k utterances: 63 MB, not
    99 MB).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataDirError(f"{path}: no such file") from None
    except OSError as error:
        raise DataDirError(f"{path}: cannot read: {error}") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raise DataDirError(f"{path}:1: starts with a UTF-8 byte-order mark (BOM); save the file without it")
    table: dict[str, str] = {}
    previous = ""
    for number, line in enumerate(_lines(raw, any_text, path), 1):
        if line.endswith("\r"):
            line = line[:-1]
        parts = fields(line, maxsplit=1)
        if not parts:
            raise DataDirError(f"{path}:{number}: empty line")
        if line[0] in KALDI_SPACE:
            raise DataDirError(f"{path}:{number}: line starts with whitespace (empty key)")
        key = parts[0] if shared is None else shared.setdefault(parts[0], parts[0])
        value = parts[1] if len(parts) == 2 else ""
        if share_values and shared is not None:
            value = shared.setdefault(value, value)
        if not value and not allow_empty_value:
            raise DataDirError(f"{path}:{number}: key '{key}' has no value")
        if key in table:
            raise DataDirError(f"{path}:{number}: duplicate key '{key}'")
        if key < previous:  # code points compare as their UTF-8 bytes do: C order (the first key: never)
            raise DataDirError(
                f"{path}:{number}: not sorted in C order ('{key}' after '{previous}'); sort with LC_ALL=C sort"
            )
        table[key] = value
        previous = key
    return table


def _lines(raw: bytes, any_text: bool, path: Path) -> list[str]:
    r"""``raw``'s lines (split at ``\n`` only) as text: the whole decoded at once, else line by line (to name the
    line that is not UTF-8, or with ``any_text`` to replace its value's bytes)."""
    try:
        lines = raw.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        lines = [_decode(data, any_text, f"{path}:{number}") for number, data in enumerate(raw.split(b"\n"), 1)]
    if lines[-1] == "":
        lines.pop()
    return lines


def _decode(data: bytes, any_text: bool, where: str) -> str:
    r"""A line as text; with ``any_text`` a value that is not UTF-8 is replaced (its key must be)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        if any_text:
            key, rest = re.match(rb"(\S*)(.*)", data, re.S).groups()  # type: ignore[union-attr]
            try:
                return key.decode("utf-8") + rest.decode("utf-8", errors="replace")
            except UnicodeDecodeError:
                pass
        raise DataDirError(f"{where}: not UTF-8 ({error.reason} at byte {error.start})") from None


def write_table(path: str | Path, mapping: Mapping[str, object]) -> None:
    r"""Writes ``key value`` lines sorted in C order, atomically.

    Values are written with ``str()``; lists and tuples are joined by spaces.
    Raises :class:`DataDirError` for an empty key or a key with whitespace, a value with a line break (it
    wrote a line the table's reader refused: ``key 'y' has no value``), or a ``path`` that is a folder (a data
    dir, not its table) or in a folder that does not exist.
    """
    if Path(path).is_dir():
        raise DataDirError(f"{path}: is a folder; give the table's file (a data dir's {Path(path) / 'spk2utt'}, say)")
    if not Path(path).parent.is_dir():  # else the error named the temporary file (.utt2spk.tmp.123)
        raise DataDirError(f"{path}: no such folder {Path(path).parent}")
    lines = []
    for key in sorted(mapping, key=_c_order):
        check_key(key, str(path))
        value = mapping[key]
        if isinstance(value, (list, tuple)):
            value = " ".join(map(str, value))
        line = f"{key} {value}".rstrip()
        if "\n" in line or "\r" in line:  # the reader splits lines at \n and drops a \r before it
            raise DataDirError(f"{path}: the value of '{key}' holds a line break ({str(value)!r}); a table's value "
                               "is one line")
        lines.append(line + "\n")
    atomic_write_text(path, "".join(lines))


def write_spk2utt(path: str | Path, utt2spk: Mapping[str, str]) -> None:
    r"""Writes ``spk2utt`` derived from ``utt2spk`` (Kaldi's ``utt2spk_to_spk2utt.pl``)."""
    write_table(path, spk2utt_of(utt2spk))


def spk2utt_of(utt2spk: Mapping[str, str]) -> dict[str, list[str]]:
    r"""Inverts ``utt2spk``: speaker -> its utterances in C order."""
    spk2utt: dict[str, list[str]] = {}
    for utt in sorted(utt2spk, key=_c_order):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    return spk2utt


def check_key(key: str, where: str) -> None:
    r"""Raises :class:`DataDirError` unless ``key`` is a valid Kaldi key (non-empty, no whitespace)."""
    if not key or has_space(key):
        raise DataDirError(f"{where}: invalid key {key!r}: keys must be non-empty without whitespace")


@dataclasses.dataclass(frozen=True)
class DataDir:
    r"""A validated Kaldi data dir.

    Attributes:
        path: the folder.
        tables: every table present, file name -> ``{key: value}``.
    """

    path: Path
    tables: Mapping[str, Mapping[str, str]]

    @property
    def name(self) -> str:
        r"""The folder's name (``train_native``)."""
        return self.path.name

    @property
    def utt2spk(self) -> Mapping[str, str]:
        return self.tables["utt2spk"]

    @property
    def utts(self) -> list[str]:
        r"""Utterance ids in C order."""
        return list(self.tables["utt2spk"])

    @property
    def spk2utt(self) -> dict[str, list[str]]:
        return spk2utt_of(self.utt2spk)

    def has(self, name: str) -> bool:
        return name in self.tables

    def table(self, name: str) -> Mapping[str, str]:
        r"""The table ``name``; :class:`DataDirError` when the data dir lacks it."""
        if name not in self.tables:
            raise DataDirError(f"{self.path}: missing {name}")
        return self.tables[name]

    def utt2num_frames(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.table("utt2num_frames").items()}

    def utt2score(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.table("utt2score").items()}

    def segments(self) -> dict[str, Segment]:
        r"""``segments`` parsed: utterance -> its span of a ``wav.scp`` recording."""
        where = self.path / "segments"
        return {u: parse_segment(v, f"{where}: utterance '{u}'") for u, v in self.table("segments").items()}


def load_data_dir(path: str | Path, require: Iterable[str] = (), unused: Iterable[str] = ()) -> DataDir:
    r"""Reads and validates a data dir; raises :class:`DataDirError` with the first problem.

    Arguments:
        path: the data dir.
        require: tables that must be present besides ``utt2spk`` and ``spk2utt``
            (e.g. ``("feats.scp", "cmvn.scp")`` for training).
        unused: tables the caller does not use, neither read nor checked (as Kaldi's
            ``make_fbank.sh`` validates with ``--no-text``): :data:`UNUSED_BY_MODELS`,
            :data:`UNUSED_BY_FBANK`.
    """
    tables, problems = _inspect(Path(path), _names(require, "require"), _names(unused, "unused"), share=True)
    if problems:
        rest = len(problems) - 1  # where the others are, not only how many
        more = f" (and {rest} more problem{'s' * (rest > 1)}: 'flowaccent validate {path}' lists a data dir's)"
        more = more if rest else ""
        raise DataDirError(problems[0] + more)
    return DataDir(Path(path), tables)


def validate_data_dir(path: str | Path, require: Iterable[str] = ()) -> list[str]:
    r"""Returns every problem found in the data dir at ``path`` (an empty list when valid)."""
    return _inspect(Path(path), _names(require, "require"))[1]


def subset_data_dir(source: str | Path, target: str | Path, utts: Iterable[str]) -> DataDir:
    r"""Writes the data dir ``target`` with only ``utts`` of ``source`` (Kaldi's ``subset_data_dir.sh``).

    Every table is restricted to the chosen utterances and their speakers; scp values
    still point at the same arks. ``cmvn.scp`` keeps the speakers' full stats, as Kaldi does.
    Other tools' tables (:data:`OTHER_TABLES`: ``utt2dur``, ``spk2gender``, ``reco2file_and_channel``, ...) are
    kept line by line as Kaldi's script keeps them, by utterance, speaker or recording.
    With ``feats.scp``, ``fbank.json`` (how the features were computed) is copied as it is: without
    it, a model trained on the subset could not refuse features computed otherwise.
    Raises :class:`DataDirError` for an utterance ``source`` lacks or an empty selection.
    """
    data = load_data_dir(source)
    chosen = set(_names(utts, "utts"))
    missing = sorted(chosen - set(data.utts), key=_c_order)
    if missing:
        raise DataDirError(f"{data.path}: subset asks for {len(missing)} unknown utterance(s), e.g. '{missing[0]}'")
    if not chosen:
        raise DataDirError(f"{data.path}: subset of no utterances")
    speakers = {data.utt2spk[u] for u in chosen}
    target = Path(target)
    if target.exists() and target.resolve() == data.path.resolve():  # its tables were cut down in place
        raise DataDirError(f"{target}: is the source data dir {data.path}; give the subset a folder of its own "
                           "(as utils/subset_data_dir.sh)")
    target.mkdir(parents=True, exist_ok=True)
    recordings = {s.recording for u, s in data.segments().items() if u in chosen} if data.has("segments") else None
    for name, table in data.tables.items():
        if name == "spk2utt":
            continue
        keys = speakers if name in SPK_TABLES else recordings if name == "wav.scp" and recordings else chosen
        write_table(target / name, {k: v for k, v in table.items() if k in keys})
    write_spk2utt(target / "spk2utt", {u: s for u, s in data.utt2spk.items() if u in chosen})
    _subset_other_tables(data, target, chosen, speakers, recordings)
    record = data.path / "fbank.json"  # flowaccent.features.fbank_record.RECORD (not imported: a cycle)
    if data.has("feats.scp") and record.is_file():
        atomic_write_text(target / record.name, record.read_text(encoding="utf-8"))
    else:
        (target / record.name).unlink(missing_ok=True)  # a record left by an earlier subset
    return load_data_dir(target)


#: Other tools' tables :func:`subset_data_dir` keeps, by what they are keyed by: those Kaldi's
#: ``utils/subset_data_dir.sh`` filters, and the demo corpus's ``utt2phones``; ``frame_shift`` is copied.
OTHER_TABLES = {"vad.scp": "utt", "utt2lang": "utt", "utt2dur": "utt", "utt2uniq": "utt", "utt2warp": "utt",
                "utt2phones": "utt", "spk2warp": "spk", "spk2gender": "spk", "reco2file_and_channel": "reco",
                "stm": "reco", "frame_shift": None}


def _subset_other_tables(data: DataDir, target: Path, utts: set[str], speakers: set[str], recordings) -> None:
    r"""The tables of :data:`OTHER_TABLES` that ``data`` has: each line kept whose first field is one of the
    subset's keys (recordings are the utterances without ``segments``)."""
    for name, kind in OTHER_TABLES.items():
        source = data.path / name
        if not source.is_file():
            continue
        keys = {"utt": utts, "spk": speakers, "reco": utts if recordings is None else recordings, None: None}[kind]
        lines = source.read_bytes().split(b"\n")  # at \n only, as read_table
        lines = [line + b"\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
        with atomic_path(target / name) as tmp:
            tmp.write_bytes(b"".join(line for line in lines if keys is None or _first_field(line) in keys))


def _first_field(line: bytes) -> str:
    first = fields(line.decode("utf-8", errors="replace"), maxsplit=1)
    return first[0] if first else ""


#: How to make a required table that is missing.
_HOW = {
    "spk2utt": " (make it from utt2spk: utils/utt2spk_to_spk2utt.pl, or flowaccent.data.write_spk2utt)",
    "utt2num_frames": " (make it with Kaldi's utils/data/get_utt2num_frames.sh, or run 'flowaccent fbank')",
}


def _names(value: Iterable[str], what: str) -> tuple[str, ...]:
    r"""``value`` as a tuple of names; a lone string is refused (its letters were taken as the names: 'f: required
    but missing', 'unknown utterance(s), e.g. '-'')."""
    if isinstance(value, (str, bytes)):
        raise DataDirError(f"{what} is a list of names, got the string {value!r} (give [{value!r}])")
    return tuple(value)


def _inspect(
    path: Path, require: tuple[str, ...], unused: tuple[str, ...] = (), share: bool = False
) -> tuple[dict, list[str]]:
    r"""``(tables, problems)`` of the data dir ``path``; ``share``: the tables hold each id once (as a
    :class:`DataDir` keeps them; :func:`read_table`'s ``shared``, which took ``validate`` 7% longer on 200k
    utterances for tables it drops at once)."""
    if not path.is_dir():
        return {}, [f"{path}: {'not a directory' if path.exists() else 'no such directory'}"]
    problems: list[str] = []
    tables: dict[str, dict[str, str]] = {}
    shared: dict[str, str] | None = {} if share else None
    for name in UTT_TABLES + SPK_TABLES:  # skipped as absent (and required ones called missing)
        if name not in unused and (path / name).is_symlink() and not (path / name).exists():
            problems.append(f"{path / name}: a broken symbolic link (to {os.readlink(path / name)})")
    for name in ("utt2spk", "spk2utt", *require):
        if name not in unused and not (path / name).exists():
            problems.append(f"{path / name}: required but missing" + _HOW.get(name, ""))
    for name in UTT_TABLES + SPK_TABLES:
        if name not in unused and (path / name).exists():
            try:
                tables[name] = read_table(path / name, name in EMPTY_VALUE_OK, any_text=name == "text", shared=shared,
                                          share_values=name in _ID_VALUES)
            except DataDirError as error:
                problems.append(str(error))
    if "utt2spk" in tables:
        problems += _check_speakers(path, tables)
        problems += _check_coverage(path, tables)
    problems += _check_values(path, tables)
    if "segments" in tables:
        problems += _check_segments(path, tables)
    problems += _check_one_fbank_run(path, tables)
    return tables, problems


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
    unsorted = [(a, b) for a, b in zip(order, order[1:]) if _c_order(b[1]) < _c_order(a[1])]
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
        for spk in sorted(set(expected) | set(got), key=_c_order):
            if expected.get(spk) != got.get(spk):
                problems.append(
                    f"{path / 'spk2utt'}: speaker '{spk}' does not match utt2spk "
                    f"(regenerate it with utt2spk_to_spk2utt.pl)"
                )
                break
    return problems


def _check_coverage(path: Path, tables: dict[str, dict[str, str]]) -> list[str]:
    utts = set(tables["utt2spk"])
    speakers = set(tables["utt2spk"].values())
    problems = []
    for name, table in tables.items():
        if name == "wav.scp" and "segments" in tables:
            continue  # keyed by recording: _check_segments
        keys = speakers if name in SPK_TABLES else utts
        kind = "speaker" if name in SPK_TABLES else "utterance"
        missing = sorted(keys - set(table), key=_c_order)
        extra = sorted(set(table) - keys, key=_c_order)
        if missing and name not in PARTIAL_TABLES:
            problems.append(f"{path / name}: {len(missing)} {kind}(s) of utt2spk missing, e.g. '{missing[0]}'")
        if extra:
            by_utt = name in SPK_TABLES and set(table) <= utts  # Kaldi's compute-cmvn-stats without --spk2utt
            problems.append(f"{path / name}: {len(extra)} {kind}(s) not in utt2spk, e.g. '{extra[0]}'"
                            + (" (keyed by utterance: speaker CMVN stats are keyed by speaker, as compute-cmvn-stats "
                               "--spk2utt writes them; or run 'flowaccent fbank')" if by_utt else ""))
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
        missing = sorted(set(recordings) - set(tables["wav.scp"]), key=_c_order)
        if missing:
            problems.append(
                f"{path / 'wav.scp'}: {len(missing)} recording(s) of segments missing, e.g. '{missing[0]}' "
                f"(of utterance '{recordings[missing[0]]}'); with segments, wav.scp is keyed by recording"
            )
    return problems


def _c_order(key: str) -> bytes:
    r"""Sort key matching ``LC_ALL=C sort``: the UTF-8 bytes."""
    return key.encode("utf-8")
