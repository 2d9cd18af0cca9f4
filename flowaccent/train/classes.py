r"""The data dirs a run trains on: their classes (one per dir, or per utterance from ``utt2accent``), the dim of
their stored features, and what is legal in them but often a mistake."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from flowaccent.data.datadir import UNUSED_BY_MODELS, DataDir, load_data_dir
from flowaccent.errors import ConfigError, DataDirError, FeatureError

if TYPE_CHECKING:
    from flowaccent.train.frames import UttRef


def load_classes(
    specs: Sequence[tuple[str | None, Path]], need_cmvn: bool
) -> tuple[list[DataDir], tuple[str, ...], list[dict[str, int]]]:
    r"""Loads the data dirs and names each utterance's class.

    The class of an utterance is the explicit ``name=`` of its dir, else its
    ``utt2accent`` value when the dir has one, else the dir's name.
    """
    _check_distinct(specs)
    require = ("feats.scp", "utt2num_frames") + (("cmvn.scp",) if need_cmvn else ())
    dirs, names, per_utt = [], [], []
    for name, path in specs:
        data = load_data_dir(path, require=require, unused=UNUSED_BY_MODELS)
        accents = data.table("utt2accent") if name is None and data.has("utt2accent") else {}
        utt_class = {utt: name or accents.get(utt) or data.name for utt in data.utts}
        for cls in utt_class.values():
            if cls not in names:
                if len(cls.split()) != 1 or cls.strip() != cls:  # classes.txt, one a line, is read back split
                    where = "its NAME" if name else f"{data.path / 'utt2accent'}" if accents else "its folder's name"
                    raise ConfigError(f"{path}: class '{cls}' ({where}) holds whitespace, which the model's "
                                      f"classes.txt and score cannot keep apart; give NAME=DATA_DIR another NAME")
                names.append(cls)
        dirs.append(data)
        per_utt.append(utt_class)
    labels = [{utt: names.index(c) for utt, c in m.items()} for m in per_utt]
    return dirs, tuple(names), labels


def _check_distinct(specs: Sequence[tuple[str | None, Path]]) -> None:
    r"""Refuses a data dir given twice (its frames counted twice, or under two classes at once)."""
    seen: dict[Path, str] = {}
    for name, path in specs:
        key, label = path.resolve(), f"'{name}'" if name else "unnamed"
        if key in seen:
            both = f" (as {seen[key]} and {label})" if seen[key] != label else ""
            raise ConfigError(f"data dir {path} is given twice{both}; its utterances would be trained on twice")
        seen[key] = label


def data_warnings(specs: Sequence[tuple[str | None, Path]], dirs: list[DataDir]) -> list[str]:
    r"""Lines for what is legal but often a mistake: dirs sharing utterance ids (a copy of one dir?), and a
    class pooled from several dirs that only their folder names made one (``a/train`` and ``b/train``)."""
    lines = []
    for i, a in enumerate(dirs):
        for b in dirs[i + 1 :]:
            if shared := len(set(a.utts) & set(b.utts)):
                lines.append(f"train: warning: data dirs {a.path} and {b.path} share {shared} utterance id(s) "
                             "(a copy of the same data?)")
    by_folder: dict[str, list[Path]] = {}
    for (name, _), data in zip(specs, dirs):
        if name is None and not data.has("utt2accent"):
            by_folder.setdefault(data.name, []).append(data.path)
    for cls, paths in by_folder.items():
        if len(paths) > 1:
            lines.append(f"train: warning: class '{cls}' pools {len(paths)} data dirs named only by their folder "
                         f"({', '.join(map(str, paths))}); give each NAME=DATA_DIR to keep them apart")
    return lines


#: Kaldi's filterbanks and MFCCs have at most this many coefficients (80 mel bins); more, given deltas or splicing
#: again, is usually features that were spliced or given deltas already.
MAX_RAW_DIM = 80


def expanded_warning(input_dim: int, model_dim: int) -> str | None:
    r"""A line where stored features of more than :data:`MAX_RAW_DIM` dims get deltas or splicing (the lab's 440-d
    features are 40-d fbank spliced by the pipeline: 440-d arks spliced again make a 4840-d flow)."""
    if input_dim <= MAX_RAW_DIM or model_dim == input_dim:
        return None
    return (f"train: warning: the stored features are {input_dim}-d and the feature pipeline makes {model_dim}-d "
            f"frames of them (deltas/splicing); if the arks hold features spliced or with deltas already "
            f"(splice-feats, add-deltas), give --features.deltas 0 --features.splice 0")


def feats_dim(data: DataDir) -> int:
    r"""The dim of the first utterance's features in ``feats.scp`` (one line of it: an scp reader of the whole
    took 0.5 s of a 200k-utterance dir's start-up)."""
    from flowaccent.data.kaldi_io import check_matrix, read_matrix

    scp = data.path / "feats.scp"
    for utt, rxfile in data.table("feats.scp").items():
        return check_matrix(read_matrix(rxfile, utt, str(scp)), f"{scp}: utterance '{utt}'").shape[1]
    raise DataDirError(f"{scp}: no utterances")


def same_dim(dirs: Sequence[DataDir]) -> int:
    r"""The dim of the features of ``dirs`` (each one's first utterance's), refusing dirs of other dims before any
    work: 40-d and 13-d dirs failed on the first 13-d batch with 'dim 13, expected 40', naming neither dir."""
    dims = [feats_dim(data) for data in dirs]
    other = next((i for i, dim in enumerate(dims) if dim != dims[0]), None)
    if other is not None:
        raise FeatureError(f"the features of {dirs[other].path} are {dims[other]}-d, those of {dirs[0].path} "
                           f"{dims[0]}-d: one model takes features of one kind (compute them with the same options)")
    return dims[0]


def short_warning(refs: Sequence[UttRef], context: int) -> str | None:
    r"""A line where utterances are shorter than the pipeline's ``context`` (deltas and splicing): each of their
    frames holds copies of their edge frames. ``score`` said so of the sets it scored; a model of 401 frames'
    context on utterances of 300 trained without a word."""
    short = [ref for ref in refs if ref.num_frames < context]
    if not short:
        return None
    first = min(short, key=lambda ref: ref.num_frames)
    return (f"train: warning: {len(short)} of {len(refs)} utterance(s) shorter than the feature pipeline's context of "
            f"{context} frames (deltas and splicing; e.g. '{first.utt}': {first.num_frames}): each of their frames "
            f"holds copies of their edge frames")
