r"""``flowaccent compare``: the scores of several models side by side, one table per value (rows: models,
columns: sets), from each ``flowaccent score --out`` folder's ``summary.json``, with notes where the columns do not
compare like with like (a set of one name scored on other utterances or other features, AUCs against other
reference sets, another precision, one folder under two names, a model trained again since it was scored)."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flowaccent.data.atomic import file_digest
from flowaccent.data.specs import split_named
from flowaccent.errors import ConfigError
from flowaccent.report.inputs import load_summary
from flowaccent.report.pages import markdown_escaped, markdown_table
from flowaccent.report.tables import fmt, with_bounds, with_interval
from flowaccent.score.metrics import paired_auc_difference
from flowaccent.score.resume import MARKER, read_stamp
from flowaccent.score.tables import read_tsv

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
LEGEND = ("One table per value: {layout} (the names as each model's scores name them). "
          "Empty: not scored by that model (a set it was not given; an llr of a flow without classes); –: not "
          "defined (a correlation of fewer than 3 utterances, scores or ratings without spread). Per frame: means "
          "over the set's frames. The LogLLs of models of other input dims (such as 120 and 440) are densities of "
          "different feature spaces and do not compare directly: read them per dimension, or against each model's "
          "reference set. With models of one reference set, each AUC table is followed by each model's AUC minus "
          "the first model's, with the p-value of DeLong's paired test on the utterances both scored, its variance "
          "over their speakers (empty where they scored other utterances). docs/scoring.md of flowaccent's source "
          "says what each value is.")

#: A model's name: shown in tables and the TSV's first column (no whitespace, no '|' or '=').
_NAME = re.compile(r'[^\s|="]+')  # '"': a TSV reader (csv's) takes it as quoting ('"q"' read back as q)


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
        name, folder = split_named(spec)  # a folder whose name holds '=' is a path, as for NAME=DATA_DIR
        sep = name is not None
        name = name if sep else default_name(Path(spec))
        if not folder:
            raise ConfigError(f"'{spec}': no folder after '{name}=' (NAME=SCORES)")
        if not _NAME.fullmatch(name):
            said = "given" if sep else f"taken from {folder}"
            raise ConfigError(f"'{spec}': the name '{name}' ({said}) holds whitespace, '|', '=' or '\"' or is "
                              f"empty; give it another: NAME=SCORES")
        if name in names:
            raise ConfigError(f"two scores named '{name}' ({names[name]} and {folder}); name each: "
                              f"NAME=SCORES")
        names[name] = folder
        summary = load_summary(Path(folder), "SCORES")
        out.append(Scored(name, Path(folder), summary, {s: read_stamp(Path(folder) / s) for s in summary["sets"]}))
    return out


def _part(stamp: dict[str, Any], key: str) -> dict[str, Any]:
    r"""``stamp[key]`` where it is a dict (a stamp edited or of another format: {})."""
    part = stamp.get(key)
    return part if isinstance(part, dict) else {}


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


def values(scored: Sequence[Scored], reading: list[str] | None = None) -> Iterator[Compared]:
    r"""Every compared value that any model has (:class:`Compared`), in the order of the tables. ``reading``
    gets a line for each set's ``utt_scores.tsv`` that could not be read for the paired tests (:func:`_paired`)."""
    reading = [] if reading is None else reading

    def table(metric: str, title: str, get, cell=None, shown: bool = True) -> Compared:
        found, cells = {}, {}
        for m in scored:
            for s in m.summary["sets"]:
                try:
                    found[m.name, s] = get(m.summary, s)
                except (KeyError, TypeError, IndexError):
                    continue
                cells[m.name, s] = cell(m.summary, s) if cell else fmt(found[m.name, s])
        return Compared(metric, title, having(found), found, cells if shown else None)

    every = _sets(scored, lambda m, s: True)  # one order for every table (a table's own took the first model's)

    def having(found: dict) -> list[str]:
        r"""The sets, in that one order, of which any model has a value in ``found``."""
        return [s for s in every if any((m.name, s) in found for m in scored)]

    reference = _references(scored)
    for metric, title in SET_VALUES:
        yield table(metric, title, lambda summary, s, k=metric: summary["sets"][s][k])
        if metric == "log_ll_per_dim":
            yield table("log_ll_minus_reference", f"LogLL minus that of {reference} (per frame)",
                        lambda summary, s: _minus_reference(summary["sets"], s, summary["reference"]))
    paired = _paired(scored, reading)
    for score in SCORES:
        yield table(f"auc_{score}", f"AUC of {score} against {reference} (0.5: no separation; [95% interval])",
                    lambda summary, s, k=score: summary["detection"][s]["by_score"][k],
                    lambda summary, s, k=score: with_interval(summary["detection"][s], k))
        for side, bound in enumerate(("low", "high")):
            yield table(f"auc_{score}_ci95_{bound}", "", lambda summary, s, k=score, i=side:
                        summary["detection"][s]["ci95"][k][i], shown=False)
        if found := paired.get(score):
            first = scored[0].name
            sets = having(found)
            cells = {key: f"{diff:+.3f} ({_p_value(p)})" for key, (diff, p) in found.items()}
            yield Compared(f"auc_{score}_minus_first", f"AUC of {score}: each model's minus {first}'s (p of "
                           f"DeLong's paired test over speakers, on the same utterances)", sets,
                           {key: diff for key, (diff, _) in found.items()}, cells)
            yield Compared(f"auc_{score}_p_vs_first", "", sets, {key: p for key, (_, p) in found.items()}, None)
    for score in SCORES:
        yield table(f"pearson_{score}", f"Pearson r of {score} with the rating (utt2score; [95% interval])",
                    lambda summary, s, k=score: summary["rating"][s][k]["pearson"],
                    lambda summary, s, k=score: with_bounds((r := summary["rating"][s][k])["pearson"],
                                                            r.get("pearson_ci95")))
        for side, bound in enumerate(("low", "high")):
            yield table(f"pearson_{score}_ci95_{bound}", "", lambda summary, s, k=score, i=side:
                        summary["rating"][s][k]["pearson_ci95"][i], shown=False)
    yield table("pearson_svr_cv", "Pearson r of the rating predicted from mean latents (SVR, cross-validated; [95% "
                "interval])", lambda summary, s: summary["regression"][s]["svr_cv"]["pearson"],
                lambda summary, s: with_bounds((r := summary["regression"][s]["svr_cv"])["pearson"],
                                               r.get("pearson_ci95")))
    for side, bound in enumerate(("low", "high")):
        yield table(f"pearson_svr_cv_ci95_{bound}", "", lambda summary, s, i=side:
                    summary["regression"][s]["svr_cv"]["pearson_ci95"][i], shown=False)
    yield table("pearson_svr_cv_shuffled", "Pearson r of the rating predicted from mean latents (SVR, ratings "
                "shuffled: its chance level)",
                lambda summary, s: summary["regression"][s]["svr_cv_shuffled"]["pearson"])


def _p_value(p: float | None) -> str:
    if p is None or math.isnan(p):
        return "p –"
    return "p < 0.001" if p < 0.001 else f"p {p:.3f}"


def _paired(scored: Sequence[Scored], reading: list[str]) -> dict[str, dict[tuple[str, str], tuple[float, float]]]:
    r"""``{score: {(model, set): (AUC difference, p)}}``: each model's AUC of each set against the reference minus
    the first model's, and the p-value of DeLong's paired test with its variance over the utterances' speakers
    (:func:`~flowaccent.score.metrics.paired_auc_difference`), from the sets' ``utt_scores.tsv``, matched by
    utterance. Only where the models share one reference set, and for a set whose utterances and the
    reference's are the same in both models (the paired test needs each utterance's two scores): {} otherwise."""
    if len(scored) < 2 or len({m.summary.get("reference") for m in scored}) > 1:
        return {}
    tables: dict[tuple[str, str], dict | None] = {}

    def utterances(m: Scored, s: str) -> dict | None:
        if (m.name, s) not in tables:
            path = m.folder / s / "utt_scores.tsv"
            try:
                table = read_tsv(path, ("utt", "spk"))
            except (OSError, ValueError) as error:  # said as '[Errno 2] No such file or directory: ...'
                why = f"{path}: {error.strerror}" if isinstance(error, OSError) and error.strerror else str(error)
                reading.append(f"Set '{s}' of {m.name}: {why}: not in the paired tests.")
                table = None
            tables[m.name, s] = table
        return tables[m.name, s]

    first, reference, out = scored[0], scored[0].summary["reference"], {}
    for m in scored[1:]:
        for s in m.summary.get("detection", {}):
            if s not in first.summary.get("detection", {}):
                continue
            sides = [[utterances(x, name) for name in (reference, s)] for x in (m, first)]
            if any(t is None for side in sides for t in side):
                continue
            orders = [[np.argsort(t["utt"], kind="stable") for t in side] for side in sides]
            if not all(np.array_equal(np.asarray(sides[0][i]["utt"])[orders[0][i]], np.asarray(sides[1][i]["utt"])[
                    orders[1][i]]) for i in (0, 1)):
                continue  # other utterances: not paired (notes() says so from the stamps)
            speakers = [np.asarray(t["spk"])[o] for t, o in zip(sides[0], orders[0])]
            for score in SCORES:
                if all(score in t for side in sides for t in side):
                    a, b = ([t[score][o] for t, o in zip(side, order)] for side, order in zip(sides, orders))
                    out.setdefault(score, {})[m.name, s] = paired_auc_difference(*a, *b, *speakers)
    return out


def _minus_reference(sets: dict[str, Any], name: str, reference: str) -> float:
    return sets[name]["log_ll"] - sets[reference]["log_ll"]


def _references(scored: Sequence[Scored]) -> str:
    refs = {m.summary.get("reference") for m in scored}
    # the notes name each ('... reference set (notes) (per frame)' was a title)
    return f"'{refs.pop()}'" if len(refs) == 1 else "each model's own reference set"


@dataclasses.dataclass(frozen=True)
class Comparison:
    r"""What :func:`compare` found: the ``scored`` models, every compared value (:class:`Compared`) and the
    ``notes`` (:func:`notes`, and the score tables the paired tests could not read)."""

    scored: list[Scored]
    values: list[Compared]
    notes: list[str]


def compare(scored: Sequence[Scored]) -> Comparison:
    r"""The values and notes of ``scored`` (:func:`load_scored`), each computed once."""
    reading: list[str] = []
    found = list(values(scored, reading))
    return Comparison(list(scored), found, notes(scored) + reading)


def value_tables(comparison: Comparison) -> list[tuple[str, list[str], list[list[str]]]]:
    r"""``(title, header, rows)`` of every value any model has: rows the models, columns the sets ("–": not
    defined; empty: not scored). A paired table has no row for the model the others are paired with."""
    out = []
    for value in comparison.values:
        if value.sets and value.cells is not None:
            models = [m.name for m in comparison.scored]
            if value.metric.endswith("_minus_first"):
                models = models[1:]
            rows = [[m] + [value.cells.get((m, s), "") for s in value.sets] for m in models]
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
    sets, scores of another precision, one folder under two names, a model trained again since its scores
    (:func:`_model_changed`); and sets whose stamp is missing, which could not be checked."""
    out = []
    folders: dict[Path, list[str]] = {}
    for m in scored:
        folders.setdefault(m.folder.resolve(), []).append(m.name)
    out += [f"{', '.join(names)} are one folder ({folder}): the same scores, each column of theirs alike."
            for folder, names in folders.items() if len(names) > 1]
    refs = {m.name: m.summary.get("reference") for m in scored}
    if len(set(refs.values())) > 1:
        out.append("The AUCs are against each model's reference set: "
                   + "; ".join(f"{name}: {ref}" for name, ref in refs.items())
                   + "; so no table pairs them (each model's AUC minus the first's, DeLong's test): that needs one "
                   "reference set.")
    for s in _sets(scored, lambda m, s: True):
        having = [m for m in scored if s in m.summary["sets"]]
        for table, what in (("utt2spk", "other utterances"), ("feats.scp", "other features")):
            groups: dict[str, list[str]] = {}
            for m in having:
                digest = _part(m.stamps[s], "data").get(table)
                if digest:
                    groups.setdefault(digest, []).append(m.name)
            if len(groups) > 1:
                reference = len(set(refs.values())) == 1 and s in refs.values()  # every AUC's other side
                out.append(f"Set '{s}' was scored from {what} by some models ({table} differs: "
                           + " | ".join(", ".join(names) for names in groups.values())
                           + "): its columns compare different data"
                           + (", and so does every AUC and LogLL-minus-reference column: it is their reference."
                              if reference else "."))
        unchecked = [m.name for m in having if not _part(m.stamps[s], "data")] if len(having) > 1 else []
        if unchecked:
            out.append(f"Set '{s}' of {', '.join(unchecked)}: no {MARKER} that says its data (scored before flowaccent "
                       f"wrote one, or removed or edited since): not checked to be the same data as the other models'.")
    out += [changed for m in scored if (changed := _model_changed(m))]
    precisions = {m.name: ", ".join(sorted({str(p) for s in m.stamps if (p := _part(m.stamps[s], "options")
                                                                      .get("precision"))})) for m in scored}
    if len({p for p in precisions.values() if p}) > 1:
        out.append("Scored in other precisions: " + "; ".join(f"{n}: {p}" for n, p in precisions.items() if p)
                   + " (score in fp32 for numbers you report).")
    return out


def _model_changed(m: Scored) -> str:
    r"""A note where the checkpoint ``m`` was scored with is there still but is another file now (trained again:
    ``report`` refuses such scores, and the table showed them as the model's), else ""."""
    model = m.summary.get("model", {})
    path, digest = model.get("checkpoint"), model.get("checkpoint_digest") or model.get("final_digest")
    try:
        if not (digest and isinstance(path, str) and Path(path).is_file()) or file_digest(Path(path)) == digest:
            return ""
    except OSError:  # not readable: not checked, as a checkpoint gone is not
        return ""
    return (f"{m.name}: scored with {path}, which is another file now (trained again since?): its columns are of "
            f"the model as it was then; score it again for the model's now.")


#: More sets than this (and than models): the Markdown's value tables have a row per set, not a column (20 sets made
#: rows of 900 characters).
WIDE = 8


def _turned(table: tuple[str, list[str], list[list[str]]]) -> tuple[str, list[str], list[list[str]]]:
    r"""A value table of :func:`value_tables` with a row per set and a column per model."""
    title, header, rows = table
    return title, ["set", *(row[0] for row in rows)], [[s, *(row[i] for row in rows)] for i, s in enumerate(header)
                                                       if i > 0]


def markdown_text(comparison: Comparison, command: str = "") -> str:
    r"""The comparison as Markdown: the models, every value's table (a row per set, where there are more than
    :data:`WIDE` sets and more sets than models), the notes and how each was made."""
    scored = comparison.scored
    tables = value_tables(comparison)
    sets = max((len(header) - 1 for _, header, _ in tables), default=0)
    turned = sets > WIDE and sets > len(scored)
    layout = "a row per set, a column per model" if turned else "a row per model, a column per set"
    lines = [f"# flowaccent: {len(scored)} model(s) side by side", "", LEGEND.format(layout=layout), ""]
    for title, header, rows in [models_table(scored), *(map(_turned, tables) if turned else tables)]:
        lines += markdown_table(title, header, rows)
    if comparison.notes:
        lines += ["## Notes", "", *(f"- {markdown_escaped(note)}" for note in comparison.notes), ""]
    made = [f"{m.name}: {m.summary.get('command', '(command not recorded)')}" for m in scored]
    lines += ["## How these were made", "", "```", *made, *([f"compare: {command}"] if command else []), "```", ""]
    return "\n".join(lines)


def tsv_text(comparison: Comparison) -> str:
    r"""The comparison as one long TSV, ``model metric set value`` with a header line: every value any model
    has (``nan``: not defined), as stored in ``summary.json``, for a spreadsheet or ``pandas.read_csv(sep='\t')``;
    first a row per model of metric ``reference`` whose set is the one its AUCs are against (value 1: the column
    stays numeric; the Markdown's note alone said it, where the models' references differ)."""
    lines = ["model\tmetric\tset\tvalue"]
    lines += [f"{m.name}\treference\t{m.summary['reference']}\t1" for m in comparison.scored
              if m.summary.get("reference")]
    for value in comparison.values:
        found = value.found
        for m in comparison.scored:
            lines += [f"{m.name}\t{value.metric}\t{s}\t{'nan' if found[m.name, s] is None else found[m.name, s]}"
                      for s in value.sets if (m.name, s) in found]
    return "\n".join(lines) + "\n"
