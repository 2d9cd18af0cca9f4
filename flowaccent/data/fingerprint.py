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
from collections.abc import Sequence
from pathlib import Path

from flowaccent.data.kaldi_io import ScpEntry, read_scp


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _wheres(entries: list[ScpEntry], archives: dict[str, str]) -> bytes:
    r"""The lines ``key rxfile`` of ``entries`` with each archive named by its file name only; ``archives`` gets
    ``{path: file name}`` of each archive they point into, in the scp's order (one ``Path`` per archive, not per
    entry: those were half of the digests' 1.9 s on 200k utterances)."""
    lines = []
    for entry in entries:
        if entry.is_pipe:
            lines.append(f"{entry.key} {entry.rxfile}\n")
            continue
        path = entry.location()[0]
        if (name := archives.get(path)) is None:
            name = archives[path] = Path(path).name
        lines.append(f"{entry.key} {name}{entry.rxfile[len(path):]}\n")
    return "".join(lines).encode()


def _archive_sizes(archives: dict[str, str]) -> bytes:
    r"""``name size`` of every archive of ``archives`` (``{path: file name}``, relative paths from the current
    folder, as they are read; -1 for one that is not there)."""
    sizes = {path: Path(path).stat().st_size if Path(path).exists() else -1 for path in archives}
    return "".join(f"{archives[p]} {s}\n" for p, s in sizes.items()).encode()


def dir_fingerprint(path: Path, with_cmvn: bool, labelled: bool = False) -> dict[str, str]:
    r"""``{part: digest}`` of the tables that decide the frames a run reads from the data dir ``path`` (and, where
    its ``utt2accent`` gives the utterances' classes, ``labelled``, their labels)."""
    archives: dict[str, str] = {}
    out = {name: _digest(_wheres(read_scp(path / name), archives))
           for name in ["feats.scp"] + (["cmvn.scp"] if with_cmvn else [])}
    out["utt2spk"] = _digest((path / "utt2spk").read_bytes())
    out["arks"] = _digest(_archive_sizes(archives))
    if labelled:  # relabelled between a stop and --resume: half the run trained on each labelling, without a word
        out["utt2accent"] = _digest((path / "utt2accent").read_bytes())
    return out


def fingerprint_text(paths: Sequence[Path], with_cmvn: bool, labelled: Sequence[Path] = ()) -> str:
    r"""The lines of ``data_digest.txt`` for the data dirs ``paths``; ``labelled``: those of them whose
    ``utt2accent`` gives the classes."""
    lines = []
    for path in paths:
        digests = dir_fingerprint(path, with_cmvn, path in labelled)
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
