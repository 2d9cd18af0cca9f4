r"""Mending a data dir whose tables disagree (Kaldi's ``utils/fix_data_dir.sh``): keep the utterances every list has.

The usual case: ``flowaccent fbank`` failed on a few utterances (unreadable audio) and listed them in
``DATA_DIR/data/fbank_failed.txt``; they are left out with :func:`fix_data_dir` (``exclude``) and ``fbank --resume``
goes on. Also: lines removed from ``wav.scp`` or ``segments`` by hand, a transcript missing for some utterances,
tables written unsorted.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path

from flowaccent.data.atomic import atomic_path, atomic_write_json, atomic_write_text
from flowaccent.data.datadir import DATA_DIR_LOCK, kept_lines, other_tables
from flowaccent.data.kaldi_io import frame_counts
from flowaccent.data.kaldi_text import fields
from flowaccent.data.lock import locked_folder
from flowaccent.data.rules import (
    EMPTY_VALUE_OK,
    FEATS_DIGEST,
    KALDI_TABLES,
    NEEDED,
    SPK_TABLES,
    UTT_TABLES,
    as_names,
    missing_how,
    recorded_utterances,
    stale_feats,
    utterances_digest,
)
from flowaccent.data.table import read_table, spk2utt_of, table_text
from flowaccent.errors import DataDirError, FeatureError, KaldiIOError

#: Where the tables a fix changed are kept as they were, in the data dir (as Kaldi keeps them).
BACKUP = ".backup"

#: In :data:`BACKUP` while a fix writes: the tables it backed up (a fix stopped then left them as they were before).
_WRITING = ".writing"


@dataclasses.dataclass(frozen=True)
class FixSummary:
    r"""What :func:`fix_data_dir` did.

    Attributes:
        kept: utterances kept.
        total: utterances ``utt2spk`` listed before.
        lacking: table -> how many of ``utt2spk``'s utterances it lacks (``wav.scp`` with ``segments``: whose
            recording it lacks); only tables that lack some.
        excluded: utterances of the data dir left out as ``exclude`` listed them.
        unknown: utterances ``exclude`` listed that the data dir does not have (left out before, say).
        changed: the tables written: rewritten (their old versions in ``backup``), or made.
        backup: the folder of the old tables; None where no table was replaced.
        stale_feats: why ``feats.scp`` was not held against the utterances (:func:`~flowaccent.data.rules.stale_feats`:
            an earlier ``flowaccent fbank`` run's, or as a run wrote it before utterances were added); "": it was.
        added: utterances kept that ``feats.scp`` lacks, where it is stale (the next ``flowaccent fbank`` computes
            them).
        counted: utterances kept whose frames were counted in ``feats.scp`` for ``utt2num_frames``, which lacked them
            (or was not there: it is made).
        made: the tables of ``changed`` that were not there (``spk2utt``, ``utt2num_frames``).
    """

    kept: int
    total: int
    lacking: Mapping[str, int]
    excluded: int
    unknown: int
    changed: tuple[str, ...]
    backup: Path | None
    stale_feats: str = ""
    counted: int = 0
    made: tuple[str, ...] = ()
    added: int = 0

    @property
    def replaced(self) -> tuple[str, ...]:
        r"""The tables of :attr:`changed` that were there (kept in ``backup``); the others were :attr:`made`."""
        return tuple(name for name in self.changed if name not in self.made)


def fix_data_dir(path: str | Path, exclude: Iterable[str] = ()) -> FixSummary:
    r"""Keeps, in the data dir at ``path``, the utterances that every table of
    :data:`~flowaccent.data.rules.NEEDED` it has lists (Kaldi's
    ``utils/fix_data_dir.sh``), less those of ``exclude``; rewrites every table to them, their speakers
    (``cmvn.scp``, ``spk2utt`` made again from ``utt2spk``) and their recordings (``wav.scp`` with ``segments``),
    and Kaldi's other tables (:data:`~flowaccent.data.datadir.OTHER_TABLES`) line by line; tables not sorted in C
    order are sorted. Lines are kept byte for byte. The tables it changes are kept as they were in
    ``path/.backup`` first (a fix stopped while writing is gone on with by the next, whose backups are then those of
    before the first). ``utt2spk`` must be sorted by speaker too (Kaldi's rule; sorting cannot mend it).

    ``utt2num_frames`` gets the frame counts it lacks (Kaldi's ``utils/data/get_utt2num_frames.sh``; made where it is
    not there and ``feats.scp`` is), counted in ``feats.scp``'s matrices (binary ones: from their headers).

    Where the last ``flowaccent fbank`` on the dir failed (its ``data/fbank_failed.txt`` is there), ``feats.scp`` is
    an earlier run's, which the next ``fbank`` replaces: utterances it lacks (those added since) are kept, not left
    out as Kaldi's script would (they are filtered to the utterances kept all the same). So too where ``feats.scp``
    lists what a ``flowaccent fbank`` run wrote (``fbank.json``'s digest of its utterances), which took every
    utterance the dir had: those it lacks were added since. The digest follows the ``feats.scp`` a fix writes.

    Holds the data dir's lock (:data:`~flowaccent.data.datadir.DATA_DIR_LOCK`): refused while ``flowaccent fbank``
    writes it. Raises :class:`DataDirError` for a missing folder or ``utt2spk``, a table that cannot be read (a
    duplicate key, a line without a value), ``segments`` without ``wav.scp``, or no utterance left;
    :class:`~flowaccent.errors.KaldiIOError` or :class:`~flowaccent.errors.FeatureError` for a matrix whose frames
    cannot be counted (a missing or damaged ark, no frames). Nothing is changed then.
    """
    path = Path(path)
    excluded = set(as_names(exclude, "exclude"))
    if not path.is_dir():
        raise DataDirError(f"{path}: {'not a directory' if path.exists() else 'no such directory'}")
    if not (path / "utt2spk").is_file():
        raise DataDirError(missing_how(path, "utt2spk"))
    busy = f"fixdir: {path} is being written by another flowaccent fbank, fixdir or cmvn now; wait for it"
    with locked_folder(path, DATA_DIR_LOCK, busy):
        tables = {name: read_table(path / name, name in EMPTY_VALUE_OK, any_text=name == "text", any_order=True)
                  for name in (*UTT_TABLES, *SPK_TABLES, "utt2lang") if name != "spk2utt" and (path / name).is_file()}
        utt2spk = tables["utt2spk"]
        if not utt2spk:
            raise DataDirError(f"{path / 'utt2spk'}: empty data dir (no utterances)")
        _check_lines(path, utt2spk)
        lacking = _lacking(path, tables)
        stale = stale_feats(path, tables["feats.scp"], utt2spk) if "feats.scp" in tables else ""
        if stale:
            lacking = _lacking(path, {name: table for name, table in tables.items() if name != "feats.scp"})
        kept = {u for u in utt2spk if u not in excluded and not any(u in missing for missing in lacking.values())}
        counts = {name: len(missing) for name, missing in lacking.items() if missing}
        listed = excluded & utt2spk.keys()
        if not kept:
            raise DataDirError(f"{path}: no utterance would be left ({left_out(counts, len(listed))}); nothing changed")
        speakers = {utt2spk[u] for u in kept}
        segments = tables.get("segments")
        recordings = {fields(segments[u])[0] for u in kept} if segments is not None else None
        keys = {name: speakers if name in SPK_TABLES else recordings if name == "wav.scp" and segments else kept
                for name in tables}
        keys |= other_tables(path, kept, speakers, recordings)
        old = {name: (path / name).read_bytes() for name in [*keys, "spk2utt"] if (path / name).is_file()}
        new = {name: kept_lines(old[name], names, sort=True) for name, names in keys.items()}
        counted = 0 if stale else _count_frames(path, tables, kept, old.get("utt2num_frames", b""), new)
        spk2utt = spk2utt_of({u: utt2spk[u] for u in kept})
        new["spk2utt"] = table_text(spk2utt, str(path / "spk2utt")).encode("utf-8")
        changed = tuple(name for name, data in new.items() if old.get(name) != data)
        _write(path, {name: new[name] for name in changed}, old)
        if "feats.scp" in changed:
            _follow_digest(path, tables["feats.scp"], kept)
    added = len(kept - tables["feats.scp"].keys()) if stale else 0
    made = tuple(name for name in changed if name not in old)
    backup = path / BACKUP if set(changed) - set(made) else None  # none replaced: no folder (it named one not there)
    return FixSummary(len(kept), len(utt2spk), counts, len(listed), len(excluded) - len(listed), changed, backup,
                      stale, counted, made, added)


def _follow_digest(path: Path, feats: Iterable[str], kept: set[str]) -> None:
    r"""Where ``path/fbank.json`` holds the digest of the utterances of the ``feats.scp`` a fix rewrote (``feats``,
    as ``flowaccent fbank`` wrote it), the digest of those ``kept``: it still lists that run's, less those left
    out."""
    record, digest = recorded_utterances(path)
    if digest is not None and digest == utterances_digest(feats):
        left = utterances_digest(u for u in feats if u in kept)
        atomic_write_json(path / "fbank.json", {**record, FEATS_DIGEST: left})


def _count_frames(path: Path, tables: dict[str, dict[str, str]], kept: set[str], old: bytes,
                  new: dict[str, bytes]) -> int:
    r"""Puts into ``new`` the ``utt2num_frames`` (whose bytes are ``old``) with the frame counts in ``feats.scp`` of
    the ``kept`` utterances it lacks, in C order, where it lacks some and there is a ``feats.scp``; how many."""
    frames = tables.get("utt2num_frames", {})
    lacking = [u for u in kept if u not in frames]
    if "feats.scp" not in tables or not lacking:
        return 0
    try:
        counted = frame_counts(path / "feats.scp", lacking, rxfiles=tables["feats.scp"])
    except (KaldiIOError, FeatureError) as error:
        raise type(error)(f"{error} (counting the frames utt2num_frames lacks; nothing changed)") from None
    lines = kept_lines(old, kept) + table_text(counted, str(path / "utt2num_frames")).encode("utf-8")
    new["utt2num_frames"] = kept_lines(lines, None, sort=True)
    return len(counted)


def _check_lines(path: Path, utt2spk: Mapping[str, str]) -> None:
    r"""Refuses what a fix cannot mend and would spread: a speaker of more than one field (it made ``spk2utt``'s
    keys, and was said as a bad key there), a duplicate key or an empty line in a table of
    :data:`~flowaccent.data.rules.KALDI_TABLES` (both lines were kept)."""
    bad = next((utt for utt, spk in utt2spk.items() if len(fields(spk)) != 1), None)
    if bad is not None:
        raise DataDirError(f"{path / 'utt2spk'}: utterance '{bad}': '{utt2spk[bad]}' is not one speaker id (a line is "
                           f"'utterance speaker')")
    for name in KALDI_TABLES:
        if (path / name).is_file():
            read_table(path / name, any_order=True)


def _lacking(path: Path, tables: dict[str, dict[str, str]]) -> dict[str, set[str]]:
    r"""Table of ``NEEDED`` -> the utterances of ``utt2spk`` it lacks (``wav.scp`` with ``segments``: those whose
    recording it lacks)."""
    utts = tables["utt2spk"]
    segments = tables.get("segments")
    if segments is not None and "wav.scp" not in tables:
        features = " (a dir of features only: remove segments)" if "feats.scp" in tables else ""
        raise DataDirError(f"{path / 'segments'}: is there, but no wav.scp (the recordings it cuts); give its wav.scp"
                           f"{features}")
    lacking = {name: {u for u in utts if u not in tables[name]} for name in NEEDED if name in tables}
    if segments is not None:
        lacking["wav.scp"] = {u for u in utts if u in segments and fields(segments[u])[0] not in tables["wav.scp"]}
    return lacking


def left_out(lacking: Mapping[str, int], excluded: int, how: str = "excluded") -> str:
    r"""Why utterances are left out, in words: how many each table lacks (:attr:`FixSummary.lacking`), and how many
    were ``excluded`` (``how``: said so)."""
    return ", ".join([f"{n} not in {name}" for name, n in lacking.items()] + [f"{excluded} {how}"] * bool(excluded))


def _write(path: Path, tables: dict[str, bytes], old: dict[str, bytes]) -> None:
    r"""Writes ``tables`` (name -> content) into the data dir ``path``, each atomically, after keeping the ``old``
    ones (name -> content, of those there) in :data:`BACKUP`. A list of those backed up stays there while it
    writes: a fix stopped then (Ctrl-C, a full disk) left the tables half rewritten, and the next keeps those
    backups (the tables before it) instead of backing up the half-rewritten tables over them."""
    if not tables:
        return
    backup = path / BACKUP
    writing = backup / _WRITING
    saved = set(writing.read_text(encoding="utf-8").split()) if writing.is_file() else set()
    if backup.exists() and not backup.is_dir():
        raise DataDirError(f"{backup}: not a folder, where fixdir keeps the tables it replaces (as Kaldi's script "
                           "does): move it away; nothing changed")
    backup.mkdir(exist_ok=True)
    for name in tables:
        if name not in saved and name in old:
            with atomic_path(backup / name) as tmp:
                tmp.write_bytes(old[name])
    atomic_write_text(writing, "".join(f"{name}\n" for name in sorted(saved | set(tables))))
    for name, data in tables.items():
        with atomic_path(path / name) as tmp:
            tmp.write_bytes(data)
    writing.unlink()
    with contextlib.suppress(OSError):  # tables made, none replaced: no backup folder left empty
        backup.rmdir()
