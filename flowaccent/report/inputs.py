r"""What a report reads, checked: the scores' ``summary.json``, each set's latents and utterance table against
what the summary says of them, and the experiment dir that scored them (its config, its training data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from flowaccent.data.atomic import file_digest
from flowaccent.errors import ConfigError
from flowaccent.score.tables import read_tsv


def load_summary(scores: str | Path, given_as: str = "--scores") -> dict[str, Any]:
    r"""The ``summary.json`` of a ``flowaccent score --out`` folder, given as the option or argument ``given_as``."""
    scores = Path(scores)
    path = scores / "summary.json"
    if not scores.is_dir():
        what = "a file, not a folder" if scores.exists() else "no such folder"  # a file was said as missing
        raise ConfigError(f"{scores}: {what} ({given_as}: the --out of 'flowaccent score')")
    if not path.exists():
        if (scores / "scores" / "summary.json").exists():  # the experiment dir, whose default scores are inside
            raise ConfigError(f"{scores}: an experiment dir, not scores; its scores are {scores / 'scores'} "
                              f"({given_as}: the --out of 'flowaccent score')")
        raise ConfigError(f"{path}: missing; {_why_no_summary(scores, given_as)}")
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON ({error}); run 'flowaccent score' again") from None
    if isinstance(summary, dict) and "all" in summary and "reference" not in summary:
        raise ConfigError(f"{path}: the summary of 'flowaccent blurmask', not of 'flowaccent score' ({given_as}: the "
                          f"--out of 'flowaccent score'; report --blurmask shows blur masks)")
    if not isinstance(summary, dict) or not all(isinstance(summary.get(k), dict) for k in ("sets", "model")):
        raise ConfigError(f"{path}: not the summary of 'flowaccent score' (no sets or model); give the --out folder "
                          f"of 'flowaccent score' ({given_as})")  # report and plot: "'list' object has no ..."
    return summary


def _why_no_summary(scores: Path, given_as: str) -> str:
    r"""What a folder without ``summary.json`` is, and what to give instead: a Kaldi data dir, one set's folder of
    the scores, a score run that stopped (its sets stamped ``.scored.json``), or none of these."""
    if any((scores / table).exists() for table in ("utt2spk", "wav.scp", "feats.scp")):
        return (f"a Kaldi data dir, not scores; score it first ('flowaccent score --exp EXP --out SCORES "
                f"{scores}') and give SCORES ({given_as})")
    if (scores / "utt_scores.tsv").exists() and (scores.parent / "summary.json").exists():
        return f"one set's folder of the scores {scores.parent}; give that folder ({given_as})"
    if (scores / "final.pt").is_file() or (scores / "checkpoints").is_dir():  # its report.html: not a report's --out
        return (f"an experiment dir, not scores; score it first ('flowaccent score --exp {scores} --out SCORES "
                f"DATA_DIR ...') and give SCORES ({given_as})")
    for page, command in (("phones.json", "phones"), ("report.html", "report")):  # said as not finished
        if (scores / page).is_file():
            made = _made_from(scores / page) if page == "phones.json" else ""
            return (f"the --out of 'flowaccent {command}', not scores; give the scores it was made from"
                    + (f" ({made})" if made else "") + f" ({given_as})")
    if any(scores.glob("*/.scored.json")) or (scores / "config.yaml").exists():
        return ("'flowaccent score' into it stopped before its end; finish it with 'flowaccent score --resume' "
                "and the same options")
    return "run 'flowaccent score' first (or it did not finish)"


def _made_from(stamp: Path) -> str:
    r"""The scores folder a ``phones.json`` names, or "" where it cannot be read."""
    try:
        made = json.loads(stamp.read_text()).get("scores")
    except (OSError, ValueError, AttributeError):
        return ""
    return made if isinstance(made, str) else ""


def _check_same_model(exp: Path, scores: Path, summary: dict[str, Any]) -> None:
    r"""Refuses an ``--exp`` whose ``config.yaml`` is not the one ``flowaccent score`` copied beside the scores, or
    whose ``final.pt`` is not the file scored (the summary's ``final_digest``; with ``--checkpoint``, the
    checkpoint's ``checkpoint_digest`` where the file still is): its training curves and configuration would be
    shown as those of another model's scores."""
    made_by, given = scores / "config.yaml", exp / "config.yaml"
    scored = summary.get("model", {})
    if made_by.exists() and given.exists() and made_by.read_text() != given.read_text():
        model = scored.get("exp", "another experiment")
        if Path(model).resolve() == exp.resolve():
            raise ConfigError(f"{scores}: scored by {model} before its config.yaml changed (trained on or edited "
                              f"since); score it again")
        raise ConfigError(
            f"{scores}: scored by {model}, whose config.yaml differs from {given}; "
            f"give the --exp that made the scores"
        )
    checkpointed = "checkpoint_digest" in scored  # scored with --checkpoint: that file, where it still is
    final = Path(scored.get("checkpoint", "")) if checkpointed else exp / "final.pt"
    digest = scored.get("checkpoint_digest" if checkpointed else "final_digest")
    if digest and final.is_file() and file_digest(final) != digest:
        raise ConfigError(f"{scores}: scored with another {final} than the one there now (trained again since, or "
                          f"another experiment's scores?); score it again")
    if digest and not checkpointed and not final.is_file():
        raise ConfigError(f"{scores}: scored with {final}, which is gone (training again? its curves would not be "
                          f"the scored model's); score it again once it is there")


def _set_file(scores: Path, name: str, file: str) -> Path:
    r"""``scores/name/file``, which the summary promises: an error naming it where it is gone."""
    path = scores / name / file
    if not path.exists():
        raise ConfigError(f"{path}: missing, though summary.json lists set '{name}'; run 'flowaccent score' again")
    return path


#: ``utt_scores.tsv``'s columns that may hold nan: a rating (``score``: not rated).
_MAY_BE_NAN = ("score",)


def read_set(scores: Path, name: str, facts: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    r"""Set ``name``'s ``latents.npy`` ``(N, D)`` and ``utt_scores.tsv`` table, checked against what
    ``summary.json`` says of them (``facts``: its ``num_utts``, ``num_frames``, ``num_latents``). A file cut
    short, damaged or edited since is a ConfigError naming it: a truncated ``latents.npy`` or a non-UTF-8
    byte was a traceback, and a table cut to its first rows was drawn as if it were the set."""
    again = "run 'flowaccent score' again"
    path = _set_file(scores, name, "latents.npy")
    try:
        latents = np.load(path)
    except (ValueError, EOFError, OSError) as error:
        if isinstance(error, OSError) and error.errno is not None:  # the system's (a permission): the CLI says it
            raise
        raise ConfigError(f"{path}: damaged ({error}); {again}") from None
    expected = facts.get("num_latents", len(latents))
    if latents.ndim != 2 or len(latents) != expected:
        raise ConfigError(f"{path}: shape {latents.shape}, but summary.json says {expected} latent frames; {again}")
    if not np.isfinite(latents).all():
        raise ConfigError(f"{path}: NaN or inf (first in latent frame {np.flatnonzero(~np.isfinite(latents).all(1))[0]}"
                          f"); {again}")
    path = _set_file(scores, name, "utt_scores.tsv")
    try:
        table = read_tsv(path, ("utt", "num_frames", "log_ll"))
    except ValueError as error:
        raise ConfigError(f"{error}; {again}") from None
    utts, frames = len(table["utt"]), int(np.sum(table["num_frames"]))
    if (utts, frames) != (facts.get("num_utts", utts), facts.get("num_frames", frames)):
        raise ConfigError(f"{path}: {utts} utterances of {frames} frames, but summary.json says "
                          f"{facts.get('num_utts', utts)} of {facts.get('num_frames', frames)} (cut short or edited "
                          f"since); {again}")
    for column, values in table.items():
        if column not in ("utt", "spk", *_MAY_BE_NAN) and not np.isfinite(values).all():
            row = int(np.flatnonzero(~np.isfinite(values))[0])
            raise ConfigError(f"{path}: line {row + 2}: {column} is {values[row]} (utterance {table['utt'][row]}); "
                              f"{again}")
    return latents, table


def checked_inputs(exp: str | Path, scores: str | Path) -> dict[str, Any]:
    r"""``scores``' summary, after checking that ``exp`` is the experiment dir that scored it."""
    exp, scores = Path(exp), Path(scores)
    if not exp.is_dir():
        raise ConfigError(f"{exp}: no such experiment dir (--exp: the dir of 'flowaccent train')")
    if not (exp / "config.yaml").is_file() and not (exp / "final.pt").is_file():  # a shared final.pt alone: scored
        raise ConfigError(f"{exp}: not an experiment dir of 'flowaccent train' (neither config.yaml nor final.pt); "
                          f"give the --exp that made the scores")
    if (exp / "summary.json").is_file() and not (exp / "final.pt").is_file() and not (exp / "checkpoints").is_dir():
        # scores (their config.yaml is score's copy): 'scored with EXP/final.pt, which is gone' named no such file
        try:
            made_by = json.loads((exp / "summary.json").read_text()).get("model", {}).get("exp")
        except (OSError, ValueError, AttributeError):  # named where it can be
            made_by = None
        raise ConfigError(f"{exp}: the --out of 'flowaccent score' or 'flowaccent blurmask', not an experiment dir of "
                          f"'flowaccent train'; give the --exp that made the scores" + (f" ({made_by})" if made_by
                                                                                         else ""))
    summary = load_summary(scores)
    _check_same_model(exp, scores, summary)
    return summary


def checkpoint_config(exp: Path) -> str:
    r"""The config ``exp/final.pt`` records, as YAML, for an experiment folder without ``config.yaml`` (a shared
    ``final.pt`` alone): the report said only "(no config.yaml)"."""
    from flowaccent.train.checkpoint import load_checkpoint
    from flowaccent.train.config import ExperimentConfig

    try:
        recorded = load_checkpoint(exp / "final.pt").get("config")
        text = ExperimentConfig.from_dict(recorded, str(exp / "final.pt")).to_yaml()
    except (ConfigError, TypeError, AttributeError):
        return "(no config.yaml, and final.pt records none)"
    return f"# no config.yaml: the config {exp / 'final.pt'} records\n{text}"


def trained_on(exp: Path) -> str:
    r"""The model's training data dirs as ``NAME=DIR`` (``exp/data.txt``), or "" where it has none."""
    data = exp / "data.txt"
    lines = data.read_text().splitlines() if data.is_file() else []
    return ", ".join(f"`{line.strip()}`" for line in lines if line.strip())
