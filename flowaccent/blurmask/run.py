r"""``flowaccent blurmask``: fit and evaluate blur masks of a few utterances of a trained flow.

For each data dir, ``utts`` utterances spread evenly over it are read, a mask is fitted for the
chosen target, and deletion curves are measured for every baseline. Per utterance,
``OUT/<set>/<utt>.npz`` and a figure ``OUT/<set>/figures/<utt>.png|pdf``; over utterances,
``utt_table.tsv``, ``deletion_curves.png|pdf``, ``summary.md``, ``config.yaml`` and, last,
``summary.json``. Every file is written under a temporary name and renamed.

A run writes into ``OUT/.partial/`` and moves its files into place only once all are written: a failed or
stopped rerun leaves the earlier run's results as they were (it had removed its summaries and some of its
utterances' files, and left the utterances it had done beside the earlier run's). ``.partial/`` stays after a
failure or a Ctrl-C, and a rerun takes over each utterance done there with the same model, options and features
(a key of them stored in its ``.npz``), so a stopped run resumes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm import tqdm

from flowaccent import plots
from flowaccent.blurmask.config import BlurMaskConfig, DeletionConfig, RunConfig
from flowaccent.blurmask.evaluate import (
    ORDERS,
    DeletionCurves,
    deletion_curves,
    removal_mask,
    summarise,
)
from flowaccent.blurmask.fit import BlurMaskResult, fit_blur_mask
from flowaccent.blurmask.targets import make_target
from flowaccent.data.atomic import atomic_path, atomic_write_json, atomic_write_text, file_digest
from flowaccent.data.datadir import DataDir
from flowaccent.data.kaldi_io import RandomAccessReader
from flowaccent.data.kaldi_text import fields
from flowaccent.data.lock import output_lock
from flowaccent.data.specs import check_set_folders, load_named_dirs, output_dir, warn_other_sets
from flowaccent.data.stream import load_cmvn_stats
from flowaccent.errors import ConfigError, FeatureError, FlowAccentError
from flowaccent.features.fbank_record import check_sets
from flowaccent.model import FlowModel
from flowaccent.train.checkpoint import load_experiment_model


@dataclasses.dataclass(frozen=True)
class UttResult:
    r"""One utterance's mask and curves (the mask itself is in its ``.npz``)."""

    set_name: str
    utt: str
    num_frames: int
    invariance_error: float
    mean_m: float
    curves: dict[str, DeletionCurves]


def select_utterances(data: DataDir, count: int) -> list[str]:
    r"""``count`` utterances of ``data`` spread evenly over its (sorted) list; all when it has fewer."""
    utts = list(data.table("feats.scp"))
    if len(utts) <= count:
        return utts
    return [utts[round(i)] for i in np.linspace(0, len(utts) - 1, count)]


def choose_utterances(sets: dict[str, DataDir], run: RunConfig) -> dict[str, list[str]]:
    r"""The utterances of each set: those of ``run.utt_list`` (in ``feats.scp``'s order), else ``run.utts`` spread
    over each set (:func:`select_utterances`). A listed utterance in no set, or a set with none listed, is an error
    (a typo would otherwise mask nothing, or mask a set the list left out)."""
    if not run.utt_list:
        return {name: select_utterances(data, run.utts) for name, data in sets.items()}
    path = Path(run.utt_list)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"--utt-list {path}: cannot read it ({type(error).__name__}: {error})") from None
    if text.startswith("\ufeff"):  # invisible in the error that no utterance matched
        raise ConfigError(f"--utt-list {path}: starts with a UTF-8 byte-order mark (BOM); save the file without it")
    # lines at \n, fields at ASCII whitespace, as Kaldi's: str.splitlines and str.split cut ids that hold a no-break
    # space, U+2028 or U+0085
    wanted = [line[0] for line in map(fields, text.split("\n")) if line]
    if not wanted:
        raise ConfigError(f"--utt-list {path}: no utterance ids in it")
    listed = set(wanted)
    chosen = {name: [u for u in data.table("feats.scp") if u in listed] for name, data in sets.items()}
    found = {u for utts in chosen.values() for u in utts}
    missing = [u for u in dict.fromkeys(wanted) if u not in found]
    if missing:
        raise ConfigError(f"--utt-list {path}: {len(missing)} utterance(s) in none of the data dirs' "
                          f"feats.scp, e.g. '{missing[0]}'")
    for name, utts in chosen.items():
        if not utts:
            raise ConfigError(f"--utt-list {path}: names no utterance of set {name}; leave that --data out")
    return chosen


def check_file_names(chosen: dict[str, list[str]]) -> None:
    r"""A :class:`ConfigError` where two utterances of a set would share their files (:func:`utt_file_name`: ``a/b``
    and ``a_b``): the second's overwrote the first's, and the run failed moving them into place, every time."""
    for name, utts in chosen.items():
        seen: dict[str, str] = {}
        for utt in utts:
            if (other := seen.setdefault(utt_file_name(utt), utt)) != utt:
                raise ConfigError(f"set {name}: utterances '{other}' and '{utt}' would share the files "
                                  f"{utt_file_name(utt)}.npz and figures (a / in an id is written _): leave one "
                                  "out (--utt-list)")


def utt_file_name(utt: str) -> str:
    r"""The name of an utterance's files (its .npz and figures): the id, a / in it made _."""
    return utt.replace("/", "_")


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
) -> UttResult:
    r"""Fits the mask of one utterance ``(T, K)``, measures its deletion curves, writes its files (``key``: what
    they were made from, see :func:`utterance_key`, stored in the ``.npz``)."""
    x = torch.as_tensor(feats, dtype=torch.float32)
    target = make_target(model, run.target, stats, run.target_class)
    result: BlurMaskResult = fit_blur_mask(target, x, fit)
    widths = None if fit.variant == "blur" else 1.0  # a blur mask's kept cells keep their widths m
    curves = {
        b: deletion_curves(target, x, result.m, b, deletion, widths=widths, max_blur=fit.m_max, mode=fit.mode)
        for b in deletion.baselines
    }
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
    return UttResult(name, utt, len(feats), result.invariance_error, float(m.mean()), curves)


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
                             float(arrays["m"].mean()), curves)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # damaged: done again
        return None


#: What blurmask writes beside the sets' folders (no set may take these names), ``summary.json`` last.
OUTPUT_FILES = ("config.yaml", "summary.md", "utt_table.tsv", "deletion_curves.pdf", "deletion_curves.png",
                "summary.json")
#: Where a run writes until it has written everything (kept after a failure: a rerun resumes from it).
PARTIAL = ".partial"


def run_blurmask(
    exp_dir: str | Path,
    data_specs: list[str],
    out_dir: str | Path,
    fit: BlurMaskConfig = BlurMaskConfig(),
    deletion: DeletionConfig = DeletionConfig(),
    run: RunConfig = RunConfig(),
    checkpoint: str | Path | None = None,
    quiet: bool = False,
    command: str = "",
) -> dict[str, Any]:
    r"""Explains ``run.utts`` utterances of each data dir (``path`` or ``name=path``) with
    ``EXP_DIR/final.pt`` (or ``checkpoint``); writes ``out_dir`` (locked meanwhile) and returns the summary."""
    out = output_dir(out_dir, "blurmask", OUTPUT_FILES[:-1])
    with output_lock(out, "blurmask"):
        return _run_blurmask(Path(exp_dir), data_specs, out, fit, deletion, run, checkpoint, quiet, command)


def _run_blurmask(exp, data_specs, out, fit, deletion, run, checkpoint, quiet, command) -> dict[str, Any]:
    model = load_experiment_model(exp, checkpoint, "blurmask")
    make_target(model, run.target, None, run.target_class)  # a bad target stops here, before any work
    need_cmvn = model.pipeline.config.cmvn == "spk"
    need = ("feats.scp",) + (("cmvn.scp",) if need_cmvn else ())
    sets = load_named_dirs(data_specs, need, "blurmask", (*OUTPUT_FILES, PARTIAL))
    check_sets(exp, sets, "blurmask")
    check_set_folders(out, sets, "blurmask")
    warn_other_sets(out, sets, "blurmask")
    chosen = choose_utterances(sets, run)
    check_file_names(chosen)
    stage = out / PARTIAL
    for name in OUTPUT_FILES:  # a stopped run's summaries: this run writes its own
        (stage / name).unlink(missing_ok=True)
    digest = file_digest(Path(checkpoint) if checkpoint else exp / "final.pt")
    results = _explain_sets(model, sets, chosen, need_cmvn, stage, fit, deletion, run, quiet, digest)
    report = _write_summary(stage, exp, checkpoint, digest, results, list(sets), fit, deletion, run, command)
    _move_into_place(stage, out, chosen)
    return report


def _move_into_place(stage: Path, out: Path, chosen: dict[str, list[str]]) -> None:
    r"""Moves a finished run's files from ``stage`` (``OUT/.partial``) into ``out``: ``summary.json`` goes first
    (the folder claims no complete results while files move), the sets' files, then the summaries, ``summary.json``
    last; an earlier run's files of utterances this run did not explain are removed, other files in the sets'
    folders (the user's) are left."""
    (out / "summary.json").unlink(missing_ok=True)
    for name, utts in chosen.items():
        files = [f"{utt_file_name(u)}.npz" for u in utts] + [f"figures/{utt_file_name(u)}.{s}" for u in utts
                                                           for s in ("png", "pdf")]
        (out / name / "figures").mkdir(parents=True, exist_ok=True)
        for file in files:
            os.replace(stage / name / file, out / name / file)
        remove_stale_files(out / name, utts)
    for name in OUTPUT_FILES:
        os.replace(stage / name, out / name)
    shutil.rmtree(stage)


def _explain_sets(model, sets, chosen, need_cmvn, out, fit, deletion, run, quiet, digest="") -> list[UttResult]:
    r"""Explains the ``chosen`` utterances of each of ``sets``, writing their files into ``out/<set>/``; one done
    there already with the same key (:func:`utterance_key`, the model's file ``digest`` among it) is taken as it
    is. The folders' other utterances' files are removed first."""
    for name, utts in chosen.items():
        remove_stale_files(out / name, utts, quiet=True)
    taken = 0
    results: list[UttResult] = []
    with tqdm(total=sum(map(len, chosen.values())), unit="utt", desc="blurmask", disable=quiet) as bar:
        for name, data in sets.items():
            cmvn = load_cmvn_stats(data) if need_cmvn else {}
            with RandomAccessReader(data.path / "feats.scp", model.pipeline.input_dim) as reader:
                for utt in chosen[name]:
                    feats = reader[utt]
                    stats = cmvn.get(data.utt2spk[utt]) if need_cmvn else None
                    if stats is not None and stats.shape[1] != model.pipeline.input_dim + 1:
                        raise FeatureError(
                            f"{data.path / 'cmvn.scp'}: speaker '{data.utt2spk[utt]}': stats of dim "
                            f"{stats.shape[1] - 1}, the model expects {model.pipeline.input_dim}"
                        )
                    for warning in short_warning(model, name, utt, len(feats)):
                        tqdm.write(warning, file=sys.stderr)
                    key = utterance_key(digest, fit, deletion, run, feats, stats)
                    if (done := done_before(out / name, utt, key, deletion)) is not None:
                        results.append(done)
                        taken += 1
                    else:
                        try:
                            results.append(explain_utterance(model, name, utt, feats, stats, out, fit, deletion, run,
                                                             key))
                        except FlowAccentError as error:  # e.g. a NaN output of features far out of range
                            where = f"set {name} ({data.path / 'feats.scp'}): utterance '{utt}'"
                            raise type(error)(f"{where}: {error}") from None
                    # also of one taken over: the stopped run's warnings were said once, before the Ctrl-C
                    for warning in undefined_warnings(results[-1]) + fit_warnings(results[-1], fit):
                        tqdm.write(warning, file=sys.stderr)
                    bar.update()
    if taken:
        print(f"blurmask: {taken} utterance(s) taken as a stopped run with the same model, options and features "
              f"had done them ({out})", file=sys.stderr)
    return results


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


def short_warning(model: FlowModel, name: str, utt: str, num_frames: int) -> list[str]:
    r"""A warning when an utterance is shorter than the model's context (deltas and splicing, both
    sides, and the frame itself): every frame's features then hold copies of the edge frames."""
    context = model.pipeline.config.context
    if num_frames >= context:
        return []
    return [f"blurmask: warning: set {name}: utterance '{utt}' has {num_frames} frame(s), fewer than the model's "
            f"context of {context} (deltas and splicing): every frame's features hold copies of its edge frames"]


def undefined_warnings(result: UttResult) -> list[str]:
    r"""A warning per baseline whose removals never changed the utterance's output (its curves are undefined)."""
    return [
        f"blurmask: warning: set {result.set_name}: utterance '{result.utt}' ({result.num_frames} frame(s)): no "
        f"removal with the {b} baseline changed the output; its curves, AUCs and SRG are undefined and left out "
        "of the summary's means"
        for b, c in result.curves.items()
        if not c.defined
    ]


#: An invariance error above this (the final mask changes this share of the output's variance or more) is named.
POOR_FIT = 0.5


def fit_warnings(result: UttResult, fit: BlurMaskConfig) -> list[str]:
    r"""Warnings where an utterance's fit did not do what a mask is for: its final mask changes the output by
    :data:`POOR_FIT` of its variance or more, or nearly every cell sits at the largest width (an output that hardly
    depends on the input, or a largest width that blurs everything). Both ran without a word (an invariance error
    of 1.45 with ``--m-max 1000``)."""
    where = f"blurmask: warning: set {result.set_name}: utterance '{result.utt}'"
    symbol, top = ("m", fit.m_max) if fit.variant == "blur" else ("sigma", fit.sigma_max)
    out = []
    if result.invariance_error >= POOR_FIT:  # lam weighs the widths' term (entropy) or the invariance's
        lam = "a smaller --lam" if fit.lam_on == "entropy" else "a larger --lam"
        out.append(f"{where}: its mask changes {result.invariance_error:.0%} of the output's variance (invariance "
                   f"error): it does not keep the output as a mask should; try more --steps, {lam} (--lam-on "
                   f"{fit.lam_on}) or a smaller --{symbol}-max")
    if result.mean_m >= 0.95 * top:
        out.append(f"{where}: mean {symbol} {result.mean_m:.4g}, nearly every cell at --{symbol}-max {top:g}: the "
                   "output hardly depends on the input here, or the largest width blurs everything")
    return out


def _group_summary(group: list[UttResult], baselines: tuple[str, ...]) -> dict[str, Any]:
    return {
        "num_utts": len(group),
        "invariance_error": float(np.mean([r.invariance_error for r in group])) if group else None,
        "mean_m": float(np.mean([r.mean_m for r in group])) if group else None,
        "baselines": {b: summarise([r.curves[b] for r in group]) for b in baselines},
    }


def _write_summary(out, exp, checkpoint, digest, results, names, fit, deletion, run, command) -> dict[str, Any]:
    report: dict[str, Any] = {
        "model": {"exp": str(exp), "checkpoint": str(checkpoint or exp / "final.pt"), "digest": digest},
        "config": {"fit": fit.to_dict(), "deletion": deletion.to_dict(), "run": run.to_dict()},
        "command": command,
        "sets": {n: _group_summary([r for r in results if r.set_name == n], deletion.baselines) for n in names},
        "all": _group_summary(results, deletion.baselines),
    }
    out.mkdir(parents=True, exist_ok=True)  # made by the first utterance's files, or here (a failure before: none)
    atomic_write_text(out / "utt_table.tsv", _utt_table(results, deletion))
    plots.blurmask_deletion_curves(
        report["all"]["baselines"],
        out / "deletion_curves",
        f"Deletion curves over {len(results)} utterance{'s' * (len(results) != 1)} (target {run.target}, "
        f"{fit.variant} mask, mode {fit.mode})",
        mask_symbol(fit.variant),
    )
    atomic_write_text(out / "summary.md", summary_markdown(report))
    atomic_write_text(out / "config.yaml", yaml.safe_dump(report["config"], sort_keys=False))
    atomic_write_json(out / "summary.json", report)
    return report


def _utt_table(results: list[UttResult], deletion: DeletionConfig) -> str:
    columns = ["set", "utt", "num_frames", "baseline", "invariance_error", "mean_m"]
    columns += [f"auc_{o}" for o in ORDERS] + ["srg"] + [f"change{p}_{o}" for p in (50, 80) for o in ORDERS]
    lines = ["\t".join(columns)]
    for r in results:
        for b in deletion.baselines:
            c = r.curves[b]
            values = [r.set_name, r.utt, str(r.num_frames), b, f"{r.invariance_error:.6g}", f"{r.mean_m:.4f}"]
            values += [fixed(c.auc[o], 4) for o in ORDERS] + [fixed(c.srg, 4)]
            values += [f"{c.at(p / 100, o):.6g}" for p in (50, 80) for o in ORDERS]
            lines.append("\t".join(values))
    return "\n".join(lines) + "\n"


def fixed(value: float, digits: int) -> str:
    r"""``value`` with ``digits`` decimals, never a negative zero: ``fixed(-0.0001, 3) == "0.000"``."""
    return f"{round(value, digits) + 0.0:.{digits}f}"


def utts_defined(summary: dict[str, Any]) -> str:
    r"""``"4"``, or ``"3 of 4"`` where some utterances' curves are undefined (their output never changed)."""
    defined, total = summary["num_defined"], summary["num_utts"]
    return f"{defined}" if defined == total else f"{defined} of {total}"


def mask_symbol(variant: str) -> str:
    r"""What a mask of ``variant`` is called in tables and figures: ``m`` (blur widths) or ``sigma`` (noise)."""
    return "m" if variant == "blur" else "sigma"


#: Titles of :func:`summary_tables`' two tables.
AUC_TABLE = "AUCs and SRG per set and baseline"
LAB_TABLE = "The lab's table: median output change over all utterances, in output standard deviations"


def summary_tables(report: dict[str, Any], everything: str = "**all**") -> list[tuple[str, list[str], list[list[str]]]]:
    r"""``(title, header, rows)`` of the summary's tables: AUCs and SRG per set and baseline (``everything``: the
    name of the rows over all sets), and the lab's 50/80 table; ``report``: the run's ``summary.json``. For
    ``summary.md`` and ``flowaccent report --blurmask``."""
    m = mask_symbol(report["config"]["fit"]["variant"])
    header = ["set", "baseline", "utts", f"AUC lowest {m} first", f"AUC highest {m} first", "AUC random",
              "SRG (utterances > 0)"]
    rows = []
    for name, values in [*report["sets"].items(), (everything, report["all"])]:
        for b, s in values["baselines"].items():
            if "auc" in s:
                auc, srg = s["auc"], s["srg"]
                rows.append([name, b, utts_defined(s), *(fixed(auc[o]["mean"], 3) for o in ("low", "high", "random")),
                             f"{fixed(srg['mean'], 3)} ± {fixed(srg['std'], 3)} ({srg['positive']} of "
                             f"{s['num_defined']})"])
            elif s["num_utts"]:
                rows.append([name, b, utts_defined(s), "-", "-", "-", "-"])
    lab = ["baseline", "removed", f"lowest {m} (most important)", f"highest {m} (least important)", "random",
           "low > high"]
    lab_rows = [
        [b, f"{fraction}%", f"{row['low']:.3g}", f"{row['high']:.3g}", f"{row['random']:.3g}",
         f"{row['low_above_high']}/{s['num_utts']}"]
        for b, s in report["all"]["baselines"].items()
        for fraction, row in s.get("table", {}).items()
    ]
    return [(AUC_TABLE, header, rows), (LAB_TABLE, lab, lab_rows)]


def summary_markdown(report: dict[str, Any]) -> str:
    r"""The summary's tables in Markdown (:func:`summary_tables`)."""
    lines = ["# Blur-mask summary", "", f"`{report['command']}`", ""]
    if any(s["num_defined"] < s["num_utts"] for s in report["all"]["baselines"].values()):
        lines += ["Utterances whose output no removal changed have no curve; '3 of 4' counts the others.", ""]
    for title, header, rows in summary_tables(report):
        if title != AUC_TABLE:
            lines += ["", f"{title}.", ""]
        lines += ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
