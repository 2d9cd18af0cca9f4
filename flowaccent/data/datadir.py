r"""Kaldi data dirs: read, write and validate the per-utterance and per-speaker tables.

A data dir is a folder of text tables ``key value`` as Kaldi defines them
(``utils/validate_data_dir.sh``): ``wav.scp, segments, text, utt2spk, spk2utt, feats.scp,
cmvn.scp`` (keyed by speaker), ``utt2num_frames``, and this project's
``utt2accent`` and ``utt2score``. Rules checked (by :mod:`flowaccent.data.rules`): every table sorted by key
in C (byte) order with unique keys and no whitespace in keys; ``spk2utt``
consistent with ``utt2spk``; ``utt2spk`` sorted by speaker too (Kaldi's ``sort -k2`` rule, which
speaker ids that prefix their utterance ids satisfy);
every per-utterance table covering exactly the utterances of ``utt2spk`` (``utt2score`` some of them);
``cmvn.scp`` covering exactly the speakers. With ``segments``, ``wav.scp`` is keyed by
recording and must hold every recording the segments name (flowaccent.data.segments).

One table is read and written by :mod:`flowaccent.data.table`, the rules are checked by
:mod:`flowaccent.data.rules`; what they offer a caller is named here too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path

from flowaccent.data.atomic import atomic_path, atomic_write_text
from flowaccent.data.rules import FBANK_OUTPUTS, SPK_TABLES, UTT_TABLES, as_names, inspect_dir, missing
from flowaccent.data.segments import Segment, parse_segments
from flowaccent.data.table import c_order, read_table, spk2utt_of, write_spk2utt, write_table
from flowaccent.errors import DataDirError

__all__ = [
    "SPK_TABLES", "UNUSED_BY_FBANK", "UNUSED_BY_MODELS", "UTT_TABLES", "DataDir", "load_data_dir", "read_table",
    "subset_data_dir", "validate_data_dir", "write_spk2utt", "write_table",
]

#: Tables that training and scoring do not read (the transcripts).
UNUSED_BY_MODELS = ("text",)
#: Tables that ``flowaccent fbank`` neither reads nor needs intact (its outputs it replaces, too).
UNUSED_BY_FBANK = ("text", "utt2accent", "utt2score", *FBANK_OUTPUTS)
#: The lock file of whatever rewrites a data dir's tables (``flowaccent fbank``, ``fixdir``, ``cmvn``): one at a time.
DATA_DIR_LOCK = ".fbank.lock"


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
        r"""The folder's name (``train_native``; of ``.`` or ``..``, the folder they are: it was ``''``)."""
        return self.path.name if self.path.name not in ("", "..") else self.path.resolve().name

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
        return parse_segments(self.table("segments"), self.path / "segments")


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
    require = as_names(require, "require")
    tables, problems = inspect_dir(Path(path), require, as_names(unused, "unused"), share=True)
    if problems:
        # the other tables this command requires that are missing, said too: 'flowaccent validate' requires none
        lacking = tuple(missing(Path(path), name) for name in require)
        also = [problem for problem in problems[1:] if problem.startswith(lacking)]
        rest = len(problems) - 1 - len(also)  # where the others are, not only how many
        more = f" (and {rest} more problem{'s' * (rest > 1)}: 'flowaccent validate {path}' lists a data dir's)"
        raise DataDirError("; ".join([problems[0], *also]) + (more if rest else ""))
    return DataDir(Path(path), tables)


def validate_data_dir(path: str | Path, require: Iterable[str] = (), unused: Iterable[str] = ()) -> list[str]:
    r"""Returns every problem found in the data dir at ``path`` (an empty list when valid), Kaldi's rules for the
    tables flowaccent's commands do not read included; the tables of ``unused`` are not checked (the
    ``flowaccent validate`` command checks every table there, as Kaldi's script does, ``--no-text`` or not)."""
    return inspect_dir(Path(path), as_names(require, "require"), as_names(unused, "unused"), kaldi=True)[1]


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
    chosen = set(as_names(utts, "utts"))
    missing = sorted(chosen - set(data.utts), key=c_order)
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
    for name, keys in other_tables(data.path, chosen, speakers, recordings).items():
        with atomic_path(target / name) as tmp:
            tmp.write_bytes(kept_lines((data.path / name).read_bytes(), keys))
    record = data.path / "fbank.json"  # flowaccent.features.fbank_record.RECORD (not imported: a cycle)
    if data.has("feats.scp") and record.is_file():
        atomic_write_text(target / record.name, record.read_text(encoding="utf-8"))
    else:
        (target / record.name).unlink(missing_ok=True)  # a record left by an earlier subset
    return load_data_dir(target)


#: Other tools' tables :func:`subset_data_dir` keeps, by what they are keyed by: those Kaldi's
#: ``utils/subset_data_dir.sh`` filters, and the demo corpus's ``utt2phones``, ``phones.ctm`` and ``canonical.ctm``
#: (a CTM's lines of one utterance kept in their order); ``frame_shift`` is copied.
OTHER_TABLES = {"vad.scp": "utt", "utt2lang": "utt", "utt2dur": "utt", "utt2uniq": "utt", "utt2warp": "utt",
                "utt2phones": "utt", "phones.ctm": "utt", "canonical.ctm": "utt", "spk2warp": "spk",
                "spk2gender": "spk", "reco2file_and_channel": "reco", "reco2dur": "reco", "stm": "reco",
                "frame_shift": None}


def other_tables(
    source: Path, utts: set[str], speakers: set[str], recordings: set[str] | None
) -> dict[str, set[str] | None]:
    r"""The tables of :data:`OTHER_TABLES` that the data dir ``source`` has, each with the keys of its lines to keep
    (None: all): ``utts``, ``speakers`` or ``recordings`` (None: the utterances, a dir without ``segments``)."""
    keys = {"utt": utts, "spk": speakers, "reco": utts if recordings is None else recordings, None: None}
    return {name: keys[kind] for name, kind in OTHER_TABLES.items() if (source / name).is_file()}


def kept_lines(table: bytes, keys: set[str] | None, sort: bool = False) -> bytes:
    r"""The lines of ``table`` (a table file's bytes) whose first field is one of ``keys`` (None: all), byte for byte
    as they are (Kaldi's ``filter_scp.pl``); with ``sort``, in C order of that field."""
    lines = table.split(b"\n")  # at \n only, as read_table
    lines = [line + b"\n" for line in lines[:-1]] + ([lines[-1] + b"\n"] if lines[-1] else [])
    wanted = None if keys is None else {key.encode("utf-8") for key in keys}
    kept = [(first, line) for first, line in zip(map(_first_field, lines), lines) if wanted is None or first in wanted]
    if sort:  # C order: the bytes' (stable: lines of one key keep their order)
        kept.sort(key=lambda pair: pair[0])
    return b"".join(line for _, line in kept)


def _first_field(line: bytes) -> bytes:
    r"""A line's first field as Kaldi splits it: at ASCII whitespace, which is ``bytes.split``'s."""
    first = line.split(None, 1)
    return first[0] if first else b""
