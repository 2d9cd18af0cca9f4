r"""One utterance's blur mask: fitted, its deletion curves measured, its files written (``<set>/<utt>.npz``, its
figure), and the key of what they were made from, by which a rerun takes over what a stopped run had done."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from flowaccent import plots
from flowaccent.blurmask.config import BlurMaskConfig, DeletionConfig, RunConfig
from flowaccent.blurmask.evaluate import ORDERS, DeletionCurves, deletion_curves, removal_mask
from flowaccent.blurmask.fit import BlurMaskResult, fit_blur_mask
from flowaccent.blurmask.tables import mask_symbol, utt_file_name
from flowaccent.blurmask.targets import make_target
from flowaccent.data.atomic import atomic_path
from flowaccent.model import FlowModel


@dataclasses.dataclass(frozen=True)
class UttResult:
    r"""One utterance's mask and curves (the mask itself is in its ``.npz``)."""

    set_name: str
    utt: str
    num_frames: int
    invariance_error: float
    mean_m: float
    curves: dict[str, DeletionCurves]
    #: Its widest cell's ``m`` less its narrowest's: near 0, the mask tells no cell from another.
    m_spread: float = float("nan")


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def explain_utterance(
    model: FlowModel,
    name: str,
    utt: str,
    feats: np.ndarray,
    stats: np.ndarray | None,
    out: Path,
    fit: BlurMaskConfig,
    deletion: DeletionConfig,
    run: RunConfig,
    key: str = "",
    phase: Callable[[str], None] | None = None,
) -> UttResult:
    r"""Fits the mask of one utterance ``(T, K)``, measures its deletion curves, writes its files (``key``: what
    they were made from, see :func:`utterance_key`, stored in the ``.npz``). ``phase``: told what the work is on
    (``fit step 12/300``, ``deletion curves, baseline mean``, ``figure``)."""
    phase = phase or (lambda _: None)
    x = torch.as_tensor(feats, dtype=torch.float32)
    target = make_target(model, run.target, stats, run.target_class)
    result: BlurMaskResult = fit_blur_mask(target, x, fit, progress=lambda i, n: phase(f"fit step {i}/{n}"))
    widths = None if fit.variant == "blur" else 1.0  # a blur mask's kept cells keep their widths m
    curves = {}
    for b in deletion.baselines:
        phase(f"deletion curves, baseline {b}")
        curves[b] = deletion_curves(target, x, result.m, b, deletion, widths=widths, max_blur=fit.m_max, mode=fit.mode)
    arrays = {"feats": feats, "m": result.m.numpy(), "loss": result.loss, "invariance": result.invariance}
    arrays |= {"invariance_error": np.float64(result.invariance_error), "key": np.str_(key), "utt": np.str_(utt)}
    arrays["fractions"] = deletion.fractions
    for b, c in curves.items():
        arrays.update({f"change_{b}_{o}": c.change[o] for o in ORDERS})
        arrays[f"random_std_{b}"] = c.random_std
    base = out / name / utt_file_name(utt)
    base.parent.mkdir(parents=True, exist_ok=True)
    npz = base.parent / f"{base.name}.npz"  # not with_suffix: ids may hold dots
    # The .npz (its key) marks the figures done (done_before), so it goes first and comes back last: a run stopped
    # while drawing left new figures beside an earlier run's .npz, or the other way round, which a rerun with the
    # earlier key took over (another --steps' figure filed beside this run's results)
    npz.unlink(missing_ok=True)
    m = result.m.numpy()
    phase("figure")
    plots.blurmask_utterance(
        feats,
        m,
        removal_mask(result.m, 0.5, "low").numpy(),
        removal_mask(result.m, 0.5, "high").numpy(),
        out / name / "figures" / utt_file_name(utt),
        f"{name} {utt}: target {run.target}, invariance error {result.invariance_error:.2g}",
        "blur width m (bins)" if fit.variant == "blur" else "noise scale sigma",
        mask_symbol(fit.variant),
        (fit.m_min, fit.m_max) if fit.variant == "blur" else (fit.sigma_min, fit.sigma_max),
    )
    _write_npz(npz, **arrays)
    return UttResult(name, utt, len(feats), result.invariance_error, float(m.mean()), curves, float(np.ptp(m)))


#: In every key: an ``.npz`` written before its figures (up to 86476ac) may sit beside another run's figures, so its
#: key must not match one of this version.
KEY_FORMAT = 2


def utterance_key(model_digest: str, fit: BlurMaskConfig, deletion: DeletionConfig, run: RunConfig,
                  feats: np.ndarray, stats: np.ndarray | None) -> str:
    r"""What an utterance's results are made from: the model file, the options that shape them and the features
    (and CMVN stats); equal keys, equal results."""
    h = hashlib.sha256(json.dumps([KEY_FORMAT, model_digest, fit.to_dict(), deletion.to_dict(), run.target,
                                   run.target_class], sort_keys=True, default=str).encode())
    for array in (feats, stats):
        if array is not None:
            h.update(repr((array.shape, array.dtype.str)).encode())
            h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:32]


def done_before(folder: Path, utt: str, key: str, deletion: DeletionConfig) -> UttResult | None:
    r"""The result of ``utt`` that a stopped run left in ``folder`` (``OUT/.partial/<set>``) with ``key``, its
    figures with it (written before its ``.npz``: :func:`explain_utterance`); None where there is none."""
    npz = folder / f"{utt_file_name(utt)}.npz"
    figures = [folder / "figures" / f"{utt_file_name(utt)}.{s}" for s in ("png", "pdf")]
    if not (npz.is_file() and all(f.is_file() for f in figures)):
        return None
    try:
        with np.load(npz) as arrays:
            if "key" not in arrays or str(arrays["key"]) != key or str(arrays["utt"]) != utt:  # a/b's taken for a_b
                return None
            curves = {b: DeletionCurves(b, arrays["fractions"], {o: arrays[f"change_{b}_{o}"] for o in ORDERS},
                                        arrays[f"random_std_{b}"]) for b in deletion.baselines}
            return UttResult(folder.name, utt, len(arrays["feats"]), float(arrays["invariance_error"]),
                             float(arrays["m"].mean()), curves, float(np.ptp(arrays["m"])))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # damaged: done again
        return None


def remove_stale_files(folder: Path, utts: list[str], quiet: bool = False) -> None:
    r"""Removes the per-utterance files (``<utt>.npz``, ``figures/<utt>.png|pdf``) an earlier run left in a set's
    ``folder`` for utterances this run does not explain (another ``--utts``): the folder then holds this run's
    utterances only, as ``utt_table.tsv`` does. Other files are left: an ``.npz`` is an earlier run's where it
    holds a mask's fields (:func:`_is_utterance_file`), a figure where its ``.npz`` is (every ``*.npz`` and
    ``figures/*.png`` went, the user's own with them)."""
    keep = {utt_file_name(utt) for utt in utts}
    npz = [p for p in folder.glob("*.npz") if p.stem not in keep and _is_utterance_file(p)]
    stems = {p.name[: -len(".npz")] for p in npz}
    # the figures first: the .npz is what tells them for an earlier run's (a stop between left them for ever)
    stale = [p for suffix in ("png", "pdf") for p in folder.glob(f"figures/*.{suffix}")
             if p.name[: -len(suffix) - 1] in stems] + npz
    for path in stale:
        path.unlink()
    if stale and not quiet:
        print(f"blurmask: removed {len(stale)} file(s) of an earlier run from {folder} (utterances this run does "
              "not explain)", file=sys.stderr)


def _is_utterance_file(path: Path) -> bool:
    r"""Whether ``path`` is an utterance's ``.npz`` as :func:`explain_utterance` writes it: its fields, and (written
    since it holds one) its utterance id that of the file's name (not a copy under another name)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = set(npz.files)
            if not {"m", "key", "invariance_error", "fractions"} <= names:
                return False
            return "utt" not in names or utt_file_name(str(npz["utt"])) == path.name[: -len(".npz")]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):  # not an npz at all, or a damaged one: not ours
        return False
