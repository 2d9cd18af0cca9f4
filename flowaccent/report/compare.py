r"""``flowaccent compare``: the scores of several models side by side, one table per value (rows: models,
columns: sets), from each ``flowaccent score --out`` folder's ``summary.json``, with notes where the columns do not
compare like with like (a set of one name scored on other utterances or other features, AUCs against other
reference sets, another precision)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from flowaccent.errors import ConfigError
from flowaccent.report.inputs import load_summary
from flowaccent.report.pages import markdown_table
from flowaccent.report.tables import fmt, with_interval
from flowaccent.score.resume import MARKER

#: The values of a set that :func:`value_tables` compares: ``(metric, title)``; ``metric`` names the value in the
#: TSV (:func:`tsv_text`) and, for these, its key in ``summary.json``'s ``sets``.
SET_VALUES = (
    ("num_utts", "Utterances scored"),
    ("log_ll", "LogLL (log p(x), mean per frame)"),
    ("log_ll_per_dim", "LogLL per dimension (LogLL / the model's input dim)"),
    ("log_p", "LogP (log p(z) under the prior, mean per frame)"),
    ("log_det", "LogDet (mean per frame)"),
    ("gmm_log_ll", "LogLL of the GMM baseline (mean per frame)"),
    ("skew", "Skew of the latents"),
    ("kurtosis", "Kurtosis of the latents (excess)"),
)

#: The utterance scores whose AUC and correlation with the rating are compared, in this order.
SCORES = ("log_ll", "llr", "gmm_log_ll")

#: What the Markdown says under its title.
LEGEND = ("One table per value: a row per model, a column per set (the names as each model's scores name them). "
          "Empty: not scored by that model (a set it was not given; an llr of a flow without classes); –: not "
          "defined (a correlation of fewer than 3 utterances, scores or ratings without spread). Per frame: means "
          "over the set's frames. The LogLLs of models of other input dims (120, 440) are densities of different "
          "feature spaces and do not compare directly: read them per dimension, or against each model's reference "
          "set. docs/scoring.md says what each value is.")

#: A model's name: shown in tables and the TSV's first column (no whitespace, no '|' or '=').
_NAME = re.compile(r"[^\s|=]+")


@dataclasses.dataclass(frozen=True)
class Scored:
    r"""One model's scores: its ``name`` in the tables, the ``folder`` (``flowaccent score --out``), its
    ``summary.json`` and each set's stamp (``.scored.json``: the data it was scored from; ``{}`` where missing)."""

    name: str
    folder: Path
    summary: dict[str, Any]
    stamps: dict[str, dict[str, Any]]


def default_name(folder: Path) -> str:
    r"""A scores folder's name in the tables: its last part, or its parent's where that is ``scores``
    (``exp/dnf_120/scores``: ``dnf_120``; ``exp/dnf_120/scores_rated``: ``scores_rated``)."""
    folder = Path(folder).resolve()
    return folder.parent.name if folder.name == "scores" else folder.name


def load_scored(specs: Sequence[str]) -> list[Scored]:
    r"""The scores of each ``SCORES`` or ``NAME=SCORES`` in ``specs``, checked: a folder that is not the output of
    ``flowaccent score``, a name given twice or one that tables cannot hold is a ConfigError naming it."""
    if not specs:
        raise ConfigError("give the --out folders of 'flowaccent score' to compare (SCORES or NAME=SCORES)")
    out, names = [], {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep:
            name, folder = default_name(Path(spec)), spec
        if not folder:
            raise ConfigError(f"'{spec}': no folder after '{name}=' (NAME=SCORES)")
        if not _NAME.fullmatch(name):
            said = "given" if sep else f"taken from {folder}"
            raise ConfigError(f"'{spec}': the name '{name}' ({said}) holds whitespace, '|' or '=' or is "
                              f"empty; give it another: NAME=SCORES")
        if name in names:
            raise ConfigError(f"two scores named '{name}' ({names[name]} and {folder}); name each: "
                              f"NAME=SCORES")
        names[name] = folder
        inside = Path(folder) / "scores"
        if not (Path(folder) / "summary.json").exists() and (inside / "summary.json").exists():
            raise ConfigError(f"{folder}: an experiment dir, not scores; its scores are {inside} (SCORES: the --out "
                              f"of 'flowaccent score')")
        summary = load_summary(Path(folder), "SCORES")
        if not isinstance(summary, dict) or not all(isinstance(summary.get(k), dict) for k in ("sets", "model")):
            raise ConfigError(f"{Path(folder) / 'summary.json'}: not the summary of 'flowaccent score' (no sets or "
                              f"model); give the --out folder of 'flowaccent score'")
        out.append(Scored(name, Path(folder), summary, {s: _stamp(Path(folder) / s) for s in summary["sets"]}))
    return out


def _stamp(folder: Path) -> dict[str, Any]:
    try:
        stamp = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):  # gone or damaged: the set cannot be checked against the others', only shown
        return {}
    return stamp if isinstance(stamp, dict) else {}


def _sets(scored: Sequence[Scored], has) -> list[str]:
    r"""The sets for which ``has(model, set)`` holds in any model, in the order the models list them."""
    return list(dict.fromkeys(s for m in scored for s in m.summary["sets"] if has(m, s)))


@dataclasses.dataclass(frozen=True)
class Compared:
    r"""One compared value: its ``metric`` name (the TSV's), ``title``, the ``sets`` any model has it for, and
    ``found``: ``{(model, set): value}`` (a value a model lacks is not there: its summary has no such set or
    score; one that is not defined is None) with each one's table cell in ``cells``, None for a value in the
    TSV only (an AUC's interval, shown in the AUC's cell)."""

    metric: str
    title: str
    sets: list[str]
    found: dict[tuple[str, str], Any]
    cells: dict[tuple[str, str], str] | None


def values(scored: Sequence[Scored]) -> Iterator[Compared]:
    r"""Every compared value that any model has (:class:`Compared`), in the order of the tables."""

    def table(metric: str, title: str, get, cell=None, shown: bool = True) -> Compared:
        found, cells = {}, {}
        for m in scored:
            for s in m.summary["sets"]:
                try:
                    found[m.name, s] = get(m.summary, s)
                except (KeyError, TypeError, IndexError):
                    continue
                cells[m.name, s] = cell(m.summary, s) if cell else fmt(found[m.name, s])
        sets = _sets(scored, lambda m, s: (m.name, s) in found)
        return Compared(metric, title, sets, found, cells if shown else None)

    reference = _references(scored)
    for metric, title in SET_VALUES:
        yield table(metric, title, lambda summary, s, k=metric: summary["sets"][s][k])
        if metric == "log_ll_per_dim":
            yield table("log_ll_minus_reference", f"LogLL minus that of {reference} (per frame)",
                        lambda summary, s: _minus_reference(summary["sets"], s, summary["reference"]))
    for score in SCORES:
        yield table(f"auc_{score}", f"AUC of {score} against {reference} (0.5: no separation; [95% interval])",
                    lambda summary, s, k=score: summary["detection"][s]["by_score"][k],
                    lambda summary, s, k=score: with_interval(summary["detection"][s], k))
        for side, bound in enumerate(("low", "high")):
            yield table(f"auc_{score}_ci95_{bound}", "", lambda summary, s, k=score, i=side:
                        summary["detection"][s]["ci95"][k][i], shown=False)
    for score in SCORES:
        yield table(f"pearson_{score}", f"Pearson r of {score} with the rating (utt2score)",
                    lambda summary, s, k=score: summary["rating"][s][k]["pearson"])
    for how, words in (("svr_cv", "cross-validated"), ("svr_cv_shuffled", "ratings shuffled: its chance level")):
        yield table(f"pearson_{how}", f"Pearson r of the rating predicted from mean latents (SVR, {words})",
                    lambda summary, s, k=how: summary["regression"][s][k]["pearson"])


def _minus_reference(sets: dict[str, Any], name: str, reference: str) -> float:
    return sets[name]["log_ll"] - sets[reference]["log_ll"]


def _references(scored: Sequence[Scored]) -> str:
    refs = {m.summary.get("reference") for m in scored}
    return f"'{refs.pop()}'" if len(refs) == 1 else "each model's reference set (notes)"


def value_tables(scored: Sequence[Scored]) -> list[tuple[str, list[str], list[list[str]]]]:
    r"""``(title, header, rows)`` of every value any model has: rows the models, columns the sets ("–": not
    defined; empty: not scored)."""
    out = []
    for value in values(scored):
        if value.sets and value.cells is not None:
            rows = [[m.name] + [value.cells.get((m.name, s), "") for s in value.sets] for m in scored]
            out.append((value.title, ["model", *value.sets], rows))
    return out


def models_table(scored: Sequence[Scored]) -> tuple[str, list[str], list[list[str]]]:
    r"""Each model's classes, input dimension, conditioning dimension, reference set and scores folder."""
    rows = []
    for m in scored:
        model = m.summary["model"]
        rows.append([m.name, ", ".join(model.get("classes", [])), fmt(model.get("dim")), fmt(model.get("cond_dim")),
                     fmt(m.summary.get("reference")), str(m.folder)])
    return "Models", ["model", "classes", "input dim", "cond_dim", "reference", "scores"], rows


def notes(scored: Sequence[Scored]) -> list[str]:
    r"""Where the columns do not compare like with like: a set of one name scored from other utterances or other
    features by some models (the stamps' digests of ``utt2spk`` and ``feats.scp``), AUCs against other reference
    sets, scores of another precision; and sets whose stamp is missing, which could not be checked."""
    out = []
    refs = {m.name: m.summary.get("reference") for m in scored}
    if len(set(refs.values())) > 1:
        out.append("The AUCs are against each model's reference set: "
                   + "; ".join(f"{name}: {ref}" for name, ref in refs.items()) + ".")
    for s in _sets(scored, lambda m, s: True):
        having = [m for m in scored if s in m.summary["sets"]]
        for table, what in (("utt2spk", "other utterances"), ("feats.scp", "other features")):
            groups: dict[str, list[str]] = {}
            for m in having:
                digest = m.stamps[s].get("data", {}).get(table)
                if digest:
                    groups.setdefault(digest, []).append(m.name)
            if len(groups) > 1:
                out.append(f"Set '{s}' was scored from {what} by some models ({table} differs: "
                           + " | ".join(", ".join(names) for names in groups.values())
                           + "): its columns compare different data.")
        unchecked = [m.name for m in having if not m.stamps[s]] if len(having) > 1 else []
        if unchecked:
            out.append(f"Set '{s}' of {', '.join(unchecked)}: no {MARKER} (scored before flowaccent wrote one, or "
                       f"removed): not checked to be the same data as the other models'.")
    precisions = {m.name: ", ".join(sorted({str(p) for s in m.stamps if (p := m.stamps[s].get("options", {})
                                                                      .get("precision"))})) for m in scored}
    if len({p for p in precisions.values() if p}) > 1:
        out.append("Scored in other precisions: " + "; ".join(f"{n}: {p}" for n, p in precisions.items() if p)
                   + " (score in fp32 for numbers you report).")
    return out


def markdown_text(scored: Sequence[Scored], command: str = "") -> str:
    r"""The comparison as Markdown: the models, every value's table, the notes and how each was made."""
    lines = [f"# flowaccent: {len(scored)} model(s) side by side", "", LEGEND, ""]
    for title, header, rows in [models_table(scored), *value_tables(scored)]:
        lines += markdown_table(title, header, rows)
    if found := notes(scored):
        lines += ["## Notes", "", *(f"- {note}" for note in found), ""]
    made = [f"{m.name}: {m.summary.get('command', '(command not recorded)')}" for m in scored]
    lines += ["## How these were made", "", "```", *made, *([f"compare: {command}"] if command else []), "```", ""]
    return "\n".join(lines)


def tsv_text(scored: Sequence[Scored]) -> str:
    r"""The comparison as one long TSV, ``model metric set value`` with a header line: every value any model
    has (``nan``: not defined), as stored in ``summary.json``, for a spreadsheet or ``pandas.read_csv(sep='\t')``."""
    lines = ["model\tmetric\tset\tvalue"]
    for value in values(scored):
        found = value.found
        for m in scored:
            lines += [f"{m.name}\t{value.metric}\t{s}\t{'nan' if found[m.name, s] is None else found[m.name, s]}"
                      for s in value.sets if (m.name, s) in found]
    return "\n".join(lines) + "\n"
