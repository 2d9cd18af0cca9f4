r"""``flowaccent score``: score corpora with a trained flow and write ``summary.json``."""

from __future__ import annotations

import contextlib
import os
import sys
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from flowaccent.data.atomic import atomic_write_json, atomic_write_text, file_digest
from flowaccent.data.lock import output_lock
from flowaccent.data.specs import (
    check_set_folders,
    load_named_dirs,
    output_dir,
    removed_on_failure,
    warn_other_sets,
)
from flowaccent.data.stream import check_dims
from flowaccent.errors import ConfigError
from flowaccent.features.fbank_record import check_sets
from flowaccent.report import DRAWN, remove_drawn
from flowaccent.runtime import check_precision, precision_note, resolve_device
from flowaccent.score import regress, shares, summary
from flowaccent.score.baseline import experiment_baseline, gmm_utterance_log_ll
from flowaccent.score.checks import shared_utts, warn_shared, warn_short_cmvn_units, warn_short_utterances
from flowaccent.score.config import ScoreConfig
from flowaccent.score.resume import (
    damage,
    differences,
    gmm_digest,
    is_marked,
    load_set_scores,
    mark_complete,
    set_stamp,
    unmark,
)
from flowaccent.score.scorer import SetScores, native_index, score_dir
from flowaccent.score.tables import add_column, read_tsv, write_speaker_tsv
from flowaccent.train.checkpoint import load_experiment_model

#: What scoring writes beside the sets' folders, and what report and plot draw there (no set may take these names).
OUTPUT_FILES = ("config.yaml", "summary.json", *DRAWN)  # figures/: where 'flowaccent plot' draws by default


def score_corpora(
    exp_dir: str | Path,
    out_dir: str | Path,
    data_specs: list[str],
    reference: str | None = None,
    baseline: str | None = None,
    config: ScoreConfig = ScoreConfig(),
    checkpoint: str | Path | None = None,
    quiet: bool = False,
    command: str = "",
    resume: bool = False,
) -> dict[str, Any]:
    r"""Scores every data dir (``path`` or ``name=path``) into ``out_dir/<name>/`` and writes
    ``out_dir/summary.json``; returns the summary. ``reference`` (default: the first set) is
    what detection AUCs separate the other sets from. ``out_dir`` is locked meanwhile
    (:func:`~flowaccent.data.lock.output_lock`). With ``resume``, a set that an earlier run into ``out_dir``
    scored completely from the same model, data and options is read back, not scored again
    (:mod:`flowaccent.score.resume`); a run that stops keeps the sets it finished. Under ``torchrun`` every process
    scores a share of each set and rank 0 does the rest (:mod:`flowaccent.score.shares`); the others return ``{}``."""
    team = shares.join_team(config.device)  # under torchrun: rank 0 runs the command, each rank scores shares
    if team is not None and team.rank:
        shares.serve(team, Path(exp_dir), checkpoint, config)
        return {}
    with shares.Leader(team) if team else contextlib.nullcontext() as leader:
        out = output_dir(out_dir, "score", ("config.yaml",))
        with output_lock(out, "score"):
            return _score_corpora(Path(exp_dir), out, data_specs, reference, baseline, config, checkpoint, quiet,
                                  command, resume, leader)


def _score_corpora(exp, out, data_specs, reference, baseline, config, checkpoint, quiet, command, resume,
                   leader=None) -> dict:
    device = resolve_device(config.device, "score")
    check_precision(device, config.precision, "score")
    if note := precision_note(device, config.precision, "score"):
        print(note, file=sys.stderr)
    model = load_experiment_model(exp, checkpoint, "score")
    digest = file_digest(Path(checkpoint) if checkpoint else exp / "final.pt")  # report: the scores are its
    native = native_index(model, config.native_class)  # a class the model lacks stops here, before any work
    if len(model.class_names) > 1 and model.prior_config.cond_dim == 0:
        print(f"score: warning: the model's prior ignores its classes (prior.cond_dim 0, {exp / 'config.yaml'}): its "
              "llr is 0 for every frame", file=sys.stderr)
    sets, reference = _checked_sets(exp, out, model, data_specs, reference, baseline)
    gmm, gmm_info = experiment_baseline(model, exp, checkpoint, quiet) if baseline == "gmm" else (None, None)  # first
    warn_other_sets(out, sets, "score")
    out.mkdir(parents=True, exist_ok=True)  # made by its lock already
    # they only ever describe complete scores (config.yaml: whose). config.yaml goes first and comes last: a
    # SIGKILL between the two left config.yaml alone, and output_dir then refused the folder as another's
    for name in ("config.yaml", "summary.json"):
        (out / name).unlink(missing_ok=True)
    if drawn := remove_drawn(out):  # an earlier plot's figures stayed beside the new scores, with no word
        print(f"score: note: {drawn} file(s) of a report or figures drawn from {out}'s earlier scores removed "
              f"(draw them again with 'flowaccent report' or 'plot')", file=sys.stderr)
    llr_class = model.class_names[native] if len(model.class_names) > 1 else None
    stamp = partial(set_stamp, digest, with_cmvn=model.pipeline.config.cmvn == "spk", config=config,
                    llr_class=llr_class, gmm_digest=gmm_digest(gmm) if gmm is not None else None,
                    processes=leader.team.world if leader else 1)
    finished: list[str] = []  # the sets this run scored completely: they stay if it stops
    # a damaged corpus or Ctrl-C, also while summarising: no half-made set left (and the lock removes an --out
    # it made, left empty)
    try:
        with removed_on_failure(out, sets, ("config.yaml", "summary.json"), complete=is_marked):
            results, tables = {}, {}  # each set's scores, and its utt_scores.tsv as read back
            for name, data in sets.items():
                made_of = stamp(data)
                results[name], tables[name] = (resume and _kept(out / name, name, made_of)) or \
                    _score_set(model, gmm, data, name, out / name, made_of, config, quiet, leader)
                finished.append(name)
            report: dict[str, Any] = {
                "model": _model_record(exp, checkpoint, model, digest, llr_class),
                "reference": reference,
                "command": command,
            } | ({"baseline": gmm_info} if gmm_info is not None else {})
            _write_summary(report, exp, out, sets, results, tables, model, config)
    except BaseException:
        if finished:
            print(f"score: {len(finished)} set(s) scored completely stay in {out} ({', '.join(finished)}): --resume "
                  "keeps them in a rerun", file=sys.stderr)
        raise
    return report


def _checked_sets(exp: Path, out: Path, model, data_specs, reference: str | None, baseline: str | None):
    r"""``(sets, reference)``: the data dirs to score (``{name: DataDir}``, checked against the model's features and
    ``out``'s folders) and the set the detection AUCs separate the others from (the first by default); an error
    for an unknown ``reference`` or ``baseline``."""
    need = ("feats.scp",) + (("cmvn.scp",) if model.pipeline.config.cmvn == "spk" else ())
    sets = load_named_dirs(data_specs, need, "score", OUTPUT_FILES)
    check_sets(exp, sets, "score")
    check_dims(sets, model.pipeline.input_dim, "score", with_cmvn="cmvn.scp" in need, made=model.pipeline.output_dim)
    check_set_folders(out, sets, "score")
    warn_short_cmvn_units(sets, model.pipeline.config.cmvn)
    reference = reference or next(iter(sets))
    if reference not in sets:
        raise ConfigError(f"score: --reference {reference} is not one of the sets {', '.join(sets)}")
    if baseline not in (None, "none", "gmm"):
        raise ConfigError(f"score: unknown baseline '{baseline}' (use gmm)")
    return sets, reference


def _model_record(exp: Path, checkpoint, model, digest: str, llr_class: str | None) -> dict[str, Any]:
    r"""``summary.json``'s ``model``: the experiment, the model file and its digest, the model's shape and classes.
    Paths absolute (not resolved): as given, a report or a hint made from another folder named the wrong one, and
    the report's check of the checkpoint's digest did not find the file."""
    return {
        "exp": os.path.abspath(exp),
        "checkpoint": os.path.abspath(checkpoint or exp / "final.pt"),
        "dim": model.dim,
        "cond_dim": model.prior_config.cond_dim,
        "classes": list(model.class_names),
    } | ({"checkpoint_digest" if checkpoint else "final_digest": digest}) | (
        {"llr_class": llr_class} if llr_class is not None else {}
    )


def _score_set(
    model, gmm, data, name: str, folder: Path, stamp: dict, config: ScoreConfig, quiet: bool,
    leader: shares.Leader | None = None,
) -> tuple[SetScores, dict]:
    r"""Scores one set into ``folder`` (and its GMM baseline's column, with ``gmm``), then stamps it complete;
    returns its scores and its ``utt_scores.tsv`` as read back (:func:`read_tsv`). With ``leader``, every process
    of the torchrun run scores a share of it."""
    unmark(folder)  # first: a folder half written over is never taken for complete
    shares.remove_shares(folder)  # a stopped torchrun run's: they stayed beside a stamp
    if leader is None:
        scores = score_dir(model, data, name, folder, config, quiet)
    else:
        leader.score(model, data, name, folder, config, quiet)
    if gmm is not None:
        add_column(folder / "utt_scores.tsv", "gmm_log_ll", gmm_utterance_log_ll(gmm, data, model.pipeline))
    table = read_tsv(folder / "utt_scores.tsv")
    if leader is not None:  # the joined files, read back as --resume reads a kept set's
        scores = load_set_scores(folder, name, table)
    write_speaker_tsv(folder / "spk_scores.tsv", table)
    mark_complete(folder, stamp)
    return scores, table


def _kept(folder: Path, name: str, stamp: dict) -> tuple[SetScores, dict] | None:
    r"""``--resume``: the scores in ``folder`` and its ``utt_scores.tsv`` where an earlier run made them completely
    from the same inputs (``stamp``), else None (and why, where there was something)."""
    if not folder.is_dir():
        return None
    changed = None if stamp["data"]["commands"] else differences(folder, stamp)
    if stamp["data"]["commands"]:
        why = "its feats.scp or cmvn.scp runs commands ('... |'), whose output cannot be checked"
    elif changed is None:
        why = "not stamped complete (its scoring did not finish, or an older flowaccent scored it)"
    elif changed:
        why = f"what it was scored from changed: {', '.join(changed)}"
    elif damaged := damage(folder):
        why = damaged
    else:
        try:
            table = read_tsv(folder / "utt_scores.tsv")
            scores = load_set_scores(folder, name, table)
        except (OSError, ValueError) as error:
            why = f"its files are damaged ({error})"
        else:
            print(f"score: set {name}: kept (--resume: scored completely before, from the same model, data and "
                  f"options): {folder}", file=sys.stderr)
            return scores, table
    print(f"score: set {name}: scoring it again: {why}", file=sys.stderr)
    return None


def _write_summary(
    report: dict[str, Any], exp: Path, out: Path, sets, results, tables, model, config: ScoreConfig
) -> None:
    r"""Says what the scored sets (``results``, their ``tables``) call for, adds their summary to ``report``
    (which names the model and the reference set) and writes it as ``summary.json``, with the model's
    ``config.yaml``."""
    warn_short_cmvn_units(sets, model.pipeline.config.cmvn, results)  # sets without utt2num_frames
    warn_shared(results, sets)
    warn_short_utterances(results, model.pipeline.config.context)
    report.update(_summarise(sets, results, tables, out, model, report["reference"], config))
    config_text = (exp / "config.yaml").read_text() if (exp / "config.yaml").exists() else ""
    atomic_write_json(out / "summary.json", report)
    atomic_write_text(out / "config.yaml", config_text)  # after summary.json: see _score_corpora


def regression_sample(rated: np.ndarray, most: int, seed: int) -> np.ndarray:
    r"""The indices of the rated utterances (``rated``: a mask over a set's) that the SVR regressions use: all, or
    where there are more than ``most`` (> 0), a seeded random ``most`` of them, in the table's order."""
    index = np.flatnonzero(rated)
    if most == 0 or len(index) <= most:
        return index
    return np.sort(np.random.default_rng(seed).choice(index, most, replace=False))


def _summarise(
    sets, results: dict[str, SetScores], tables: dict[str, dict], out: Path, model, reference: str,
    config: ScoreConfig = ScoreConfig(),
) -> dict[str, Any]:
    r"""The summary of the scored sets from their scores (``results``) and ``utt_scores.tsv`` tables."""
    per_set = {}
    for name in sets:
        per_set[name] = summary.set_summary(out / name, model.dim, model.prior_config.cond_dim, tables[name])
        if sets[name].has("utt2accent"):  # the figures' colours follow it
            per_set[name]["accent"] = summary.set_accent(sets[name].table("utt2accent"))
        if "gmm_log_ll" in tables[name]:
            frames = tables[name]["num_frames"]
            per_set[name]["gmm_log_ll"] = float((tables[name]["gmm_log_ll"] * frames).sum() / frames.sum())
    scores = {name: summary.utterance_scores(tables[name]) for name in sets}
    detection = {name: summary.detection(scores[reference], scores[name], tables[reference]["spk"], tables[name]["spk"])
                 for name in sets if name != reference}
    rating, regression = {}, {}
    # the rated utterances of sets whose ratings vary (a native set rated 5 throughout has nothing to correlate with)
    rated_mask = {}
    for name, table in tables.items():
        mask = np.isfinite(table["score"]) if "score" in table else np.zeros(0, bool)
        if mask.any() and np.ptp(table["score"][mask]) > 0:
            rated_mask[name] = mask
    fitted = {name: regression_sample(mask, config.regression_max_utts, config.seed)
              for name, mask in rated_mask.items()}
    drawn_from = {name: int(rated_mask[name].sum()) for name, index in fitted.items()
                  if len(index) < rated_mask[name].sum()}  # the sets sampled: their rated utterances
    rated = {name: tables[name]["score"][index] for name, index in fitted.items()}  # what the SVRs fit
    means = {name: results[name].latent_means[index] for name, index in fitted.items()}  # utt_latent_means.npy's
    speakers = {name: [tables[name]["spk"][i] for i in index] for name, index in fitted.items()}  # folds, intervals
    for name, ratings in rated.items():
        mask = rated_mask[name]
        rating[name] = summary.rating({k: v[mask] for k, v in scores[name].items()}, tables[name]["score"][mask],
                                      np.asarray(tables[name]["spk"])[mask])
        regression[name] = {"svr_cv": regress.cross_validated(means[name], ratings, speakers[name]),
                            "svr_cv_shuffled": regress.shuffled(means[name], ratings, speakers[name])}
        if name in drawn_from:
            for result in regression[name].values():
                result["sample_of"] = drawn_from[name]
            print(f"score: set {name}: the SVR regressions use {len(fitted[name])} of its {drawn_from[name]} rated "
                  "utterances, drawn at random (--regression-max-utts; 0 for all: their time grows with about "
                  "the square of the utterances)", file=sys.stderr)
    for a in rated:
        for b in rated:
            if a != b:
                fit = regress.transfer(means[a], rated[a], means[b], rated[b], speakers[b])
                if b in drawn_from:  # applied to b's sample ("n" counts b's utterances)
                    fit["sample_of"] = drawn_from[b]
                shared = shared_utts(results[a], results[b])
                regression[f"{a}->{b}"] = {"svr": {**fit, "shared_utts": shared} if shared else fit}
    return {"sets": per_set, "detection": detection, "rating": rating, "regression": regression}
