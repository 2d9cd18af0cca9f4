r"""``score --resume``: the sets an earlier run scored completely, with the same inputs, are kept, not scored again.

A set's folder is complete once its last file is written: then :func:`mark_complete` writes ``.scored.json``
there, a *stamp* of what its files were made from (:func:`set_stamp`): the model file's digest, the data dir
(where it is, and :func:`~flowaccent.data.fingerprint.dir_fingerprint`'s exact form: its scps, utterances'
speakers and archives by place, size and modification time, and its ``utt2score``), the options its files
depend on (the latent sample's seed and size, the precision, the ``llr``'s class; the number of processes
where several under ``torchrun`` shared the work: their latent sample is another) and the GMM baseline's
parameters; and the sizes of the files it wrote (:data:`OUTPUTS`), which must still be found so
(:func:`damage`). Scoring a set removes its stamp first, so a folder half written over by a run that stopped
never passes for complete. A wrong keep would put one set's numbers under another's name without a word; a
needless rescoring costs time only: so data copied or moved is scored again.

``--batch-frames``, ``--device`` and ``--prefetch`` are not in the stamp: they move the scores by rounding only.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flowaccent.data.atomic import atomic_write_json, file_digest
from flowaccent.data.datadir import DataDir
from flowaccent.data.fingerprint import dir_fingerprint
from flowaccent.data.kaldi_text import fields
from flowaccent.score.config import ScoreConfig
from flowaccent.score.tables import read_tsv

if TYPE_CHECKING:
    from flowaccent.score.scorer import SetScores

#: A complete set folder's stamp.
MARKER = ".scored.json"

#: Bumped when what a set folder holds changes: a stamp of another format is not a match.
FORMAT = 1

#: The files of a scored set's folder, all written before its stamp.
OUTPUTS = ("utt_scores.tsv", "spk_scores.tsv", "frame_scores.ark", "frame_scores.scp", "latents.npy",
           "latent_utts.txt", "utt_latent_means.npy")


def set_stamp(
    model_digest: str, data: DataDir, with_cmvn: bool, config: ScoreConfig, llr_class: str | None,
    gmm_digest: str | None, processes: int = 1,
) -> dict[str, Any]:
    r"""What a set's files are made from (JSON-able): two runs of equal stamps write the same files, up to the
    rounding of another batch size or device; but where ``data["commands"]`` (its scps run commands, ``cmd |``:
    what they give cannot be checked without running them), the set is always scored again."""
    parts = {"dir": str(data.path.resolve()), **dir_fingerprint(data, with_cmvn, exact=True)}
    scps = ["feats.scp"] + (["cmvn.scp"] if with_cmvn else [])
    parts["commands"] = any(rx.rstrip().endswith("|") for name in scps for rx in data.table(name).values())
    score = data.path / "utt2score"
    parts["utt2score"] = file_digest(score) if score.is_file() else None
    options = {"seed": config.seed, "max_latents": config.max_latents, "precision": config.precision,
               "llr_class": llr_class} | ({"processes": processes} if processes > 1 else {})  # its latent sample
    return {"format": FORMAT, "model": model_digest, "data": parts, "options": options, "baseline": gmm_digest}


def gmm_digest(gmm) -> str:
    r"""The digest of a :class:`~flowaccent.score.baseline.DiagonalGmm`'s parameters."""
    h = hashlib.sha256()
    for values in (gmm.weights, gmm.means, gmm.variances):
        h.update(np.ascontiguousarray(values.cpu().numpy()).tobytes())
    return h.hexdigest()[:16]


def unmark(folder: Path) -> None:
    r"""Removes ``folder``'s stamp: its files are about to be written again."""
    if folder.is_dir():  # a file in its place: scoring names it
        (folder / MARKER).unlink(missing_ok=True)


def mark_complete(folder: Path, stamp: dict[str, Any]) -> None:
    r"""Stamps ``folder``, whose files (:data:`OUTPUTS`) are all written, with ``stamp`` and their sizes."""
    files = {name: (folder / name).stat().st_size for name in OUTPUTS}
    atomic_write_json(folder / MARKER, {**stamp, "files": files})


def damage(folder: Path) -> str | None:
    r"""What is wrong with the files of a stamped ``folder`` (a file missing, or of another size than it was
    written at; ``frame_scores.scp`` pointing into another folder: the output folder was moved), or None."""
    try:
        files = json.loads((folder / MARKER).read_text())["files"]
        for name in OUTPUTS:
            if not (folder / name).is_file():
                return f"{name} is missing"
            if (folder / name).stat().st_size != files[name]:
                return f"{name} is not as it was written (another size)"
        elsewhere = ark_elsewhere(folder)
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"its stamp or files cannot be read ({error})"
    if elsewhere is not None:
        return f"its frame_scores.scp points to {elsewhere}, not to the ark beside it (the folder moved or copied?)"
    return None


def ark_elsewhere(folder: Path) -> str | None:
    r"""The ark a scored set ``folder``'s ``frame_scores.scp`` points to (its first line's) where that is not the
    ``frame_scores.ark`` beside it (the scores folder moved or copied since: its scp still names the old folder's
    ark, which may have been scored again by another model), else None."""
    with open(folder / "frame_scores.scp", encoding="utf-8", newline="\n") as f:  # lines and fields as Kaldi's: an
        first = fields(f.readline(), maxsplit=1)  # id with a no-break space was read as a key and a path elsewhere
    if len(first) == 2:
        ark = first[1].strip().rsplit(":", 1)[0]
        if not (Path(ark).is_file() and os.path.samefile(ark, folder / "frame_scores.ark")):
            return ark
    return None


def read_stamp(folder: Path) -> dict[str, Any]:
    r"""``folder``'s stamp as stored, ``{}`` where it is gone, damaged or not an object (then the set cannot be
    checked against others, only shown)."""
    try:
        stamp = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def is_marked(folder: Path) -> bool:
    r"""Whether ``folder`` holds a stamp (:func:`removed_on_failure` keeps such a set folder)."""
    return (folder / MARKER).is_file()


def differences(folder: Path, stamp: dict[str, Any]) -> list[str] | None:
    r"""What differs between ``folder``'s stamp and ``stamp`` (``[]``: nothing; the names of the parts, e.g.
    ``model``, ``data (feats.scp)``, ``options (seed)``); None where the folder has no readable stamp."""
    try:
        stored = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("format") != FORMAT:
        return ["the stamp's format (another flowaccent's)"]
    out = []
    for part, value in stamp.items():
        old = stored.get(part)
        if isinstance(value, dict) and isinstance(old, dict):
            if keys := [key for key in value | old if old.get(key) != value.get(key)]:
                out.append(f"{part} ({', '.join(keys)})")
        elif old != value:
            out.append(part)
    return out


def load_set_scores(folder: Path, name: str, table: dict | None = None) -> SetScores:
    r"""The :class:`SetScores` of a complete set folder, read from its files (``table``: its ``utt_scores.tsv``
    read already). Raises OSError or ValueError where one is missing or cannot be read."""
    from flowaccent.score.scorer import SetScores  # torch: not for the stamps alone (flowaccent compare)

    table = read_tsv(folder / "utt_scores.tsv") if table is None else table
    utts = list(table["utt"])
    numbers = {k: np.asarray(v, np.float64) for k, v in table.items() if k not in ("utt", "spk")}
    latent_means = np.load(folder / "utt_latent_means.npy")
    latents = np.load(folder / "latents.npy")
    latent_utts = np.array((folder / "latent_utts.txt").read_text().split("\n")[:-1], dtype=str)  # ids: any but \n
    if len(latent_means) != len(utts) or len(latents) != len(latent_utts):
        raise ValueError(f"{folder}: its files disagree on the number of utterances or latents")
    return SetScores(name, utts, numbers["num_frames"].astype(int), numbers, latent_means, latents, latent_utts)
