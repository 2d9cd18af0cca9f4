r"""What a data dir's frames are made of, in a few digests: so that ``train --resume`` can tell the data it
replays from the data the run began with, where the dir's path stayed the same (a new split written over it,
features computed again).

One line per dir, ``PATH<TAB>feats.scp=H utt2spk=H [cmvn.scp=H] arks=H``: ``H`` is the first 16 hex digits
of a SHA-256: over ``utt2spk``'s bytes; over an scp's keys and where they point, with each archive named by
its file name only (so that data moved, and its scp rewritten to the new place, is the same data); and for
``arks`` over the sizes of the archives the scps point into (Kaldi's ``make_fbank.sh`` writes new features
under the old archive names; a size is cheap to read and stays the same when the data is copied or moved).
Pipes in an scp are taken as written and not run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from flowaccent.data.datadir import DataDir
from flowaccent.data.kaldi_io import ScpEntry, read_scp

#: Lines hashed at a time: the text a digest is taken of is never held whole (a line per utterance).
_BLOCK = 4096


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _wheres(rxfiles: Iterable[tuple[str, str]], archives: dict[str, str]) -> str:
    r"""The digest of the lines ``key rxfile`` of an scp's ``(key, rxfile)`` pairs with each archive named by its
    file name only; ``archives`` gets ``{path: file name}`` of each archive they point into, in the scp's order
    (one ``Path`` per archive, not per entry: those were half of the digests' 1.9 s on 200k utterances)."""
    hasher, lines = hashlib.sha256(), []
    for key, rxfile in rxfiles:
        entry = ScpEntry(key, rxfile)
        if entry.is_pipe:
            lines.append(f"{key} {rxfile}\n")
        else:
            path = entry.location()[0]
            if (name := archives.get(path)) is None:
                name = archives[path] = Path(path).name
            lines.append(f"{key} {name}{rxfile[len(path):]}\n")
        if len(lines) == _BLOCK:
            hasher.update("".join(lines).encode())
            lines.clear()
    hasher.update("".join(lines).encode())
    return hasher.hexdigest()[:16]


def _archive_sizes(archives: dict[str, str], exact: bool = False) -> bytes:
    r"""``name size`` of every archive of ``archives`` (``{path: file name}``, relative paths from the current
    folder, as they are read; -1 for one that is not there); ``exact``: ``path size mtime_ns``, the path resolved
    (an archive written again, moved or copied since is another)."""
    lines = []
    for path, name in archives.items():
        try:
            stat = Path(path).stat()
        except OSError:
            lines.append(f"{Path(path).absolute() if exact else name} -1\n")
            continue
        where = f"{Path(path).resolve()} {stat.st_size} {stat.st_mtime_ns}" if exact else f"{name} {stat.st_size}"
        lines.append(where + "\n")
    return "".join(lines).encode()


def _folder(data: Path | DataDir) -> Path:
    return data.path if isinstance(data, DataDir) else data


def _rxfiles(data: Path | DataDir, name: str) -> Iterable[tuple[str, str]]:
    r"""The ``(key, rxfile)`` pairs of the scp ``name`` of ``data``: its table where ``data`` is a :class:`DataDir`
    that read it, else the file's."""
    if isinstance(data, DataDir) and data.has(name):
        return data.table(name).items()
    return ((entry.key, entry.rxfile) for entry in read_scp(_folder(data) / name))


def dir_fingerprint(
    data: Path | DataDir, with_cmvn: bool, labelled: bool = False, exact: bool = False
) -> dict[str, str]:
    r"""``{part: digest}`` of the tables that decide the frames a run reads from the data dir ``data`` (its folder,
    or the :class:`DataDir` read from it: its scps are then not read again), and, where its ``utt2accent`` gives
    the utterances' classes, ``labelled``, their labels. ``exact`` (``score --resume``'s): the archives by where
    they are, their sizes and modification times (:func:`_archive_sizes`), not their names and sizes: features
    computed again into the same names at the same sizes (new audio, another dither) are other data."""
    path = _folder(data)
    archives: dict[str, str] = {}
    scps = ["feats.scp"] + (["cmvn.scp"] if with_cmvn else [])
    out = {name: _wheres(_rxfiles(data, name), archives) for name in scps}
    out["utt2spk"] = _digest((path / "utt2spk").read_bytes())
    out["arks"] = _digest(_archive_sizes(archives, exact))
    if labelled:  # relabelled between a stop and --resume: half the run trained on each labelling, without a word
        out["utt2accent"] = _digest((path / "utt2accent").read_bytes())
    return out


def fingerprint_text(dirs: Sequence[Path | DataDir], with_cmvn: bool, labelled: Sequence[Path] = ()) -> str:
    r"""The lines of ``data_digest.txt`` for the data dirs ``dirs`` (folders, or :class:`DataDir`\ s read from them);
    ``labelled``: the folders of those whose ``utt2accent`` gives the classes."""
    lines = []
    for data in dirs:
        path = _folder(data)
        digests = dir_fingerprint(data, with_cmvn, path in labelled)
        lines.append(f"{path.absolute()}\t" + " ".join(f"{k}={v}" for k, v in digests.items()) + "\n")
    return "".join(lines)


def changed_parts(stored: str, now: str) -> list[tuple[str, list[str]]]:
    r"""``[(dir, [what changed])]`` between two ``data_digest.txt`` texts of the same dirs, compared in order
    (the dirs' paths may differ: data moved, ``data.txt`` edited). A part present in one text only (a run from
    before ``cmvn.scp`` was used) is not compared."""
    out = []
    for old, new in zip(stored.splitlines(), now.splitlines()):
        old_path, _, old_parts = old.partition("\t")
        _, _, new_parts = new.partition("\t")
        before = dict(p.split("=", 1) for p in old_parts.split())
        after = dict(p.split("=", 1) for p in new_parts.split())
        if changed := [k for k in after if k in before and before[k] != after[k]]:
            out.append((old_path, changed))
    return out
