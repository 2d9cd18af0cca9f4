r"""``report.html`` (self-contained: images embedded) and ``report.md`` from an experiment and its scores."""

from __future__ import annotations

import base64
import html
import json
import numbers
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from flowaccent import plots
from flowaccent.data.atomic import atomic_write_text, file_digest
from flowaccent.errors import ConfigError
from flowaccent.score.tables import read_tsv

#: What the report's names mean; the sentences on ``_c``/``_r`` and ``llr`` only where the scores have them.
NAMING = (
    "Natural log, per frame, summed over dimensions. <b>LogLL</b> here is the log-likelihood "
    "log p(x) = LogP + LogDet; the lab's tables printed the training loss, i.e. NLL = -LogLL, "
    "under the name 'LogLL'. <b>LogP</b> is log p(z) under the prior (a unit-Gaussian latent of "
    "dimension D has a mean of -1.4189 D, shown as the reference); <b>LogDet</b> is log|det dz/dx|, "
    "including the feature standardisation. Skew and kurtosis (Fisher, excess: 0 for a Gaussian) "
    "are over all values of a random sample of latents (its frames: 'latent frames'; small samples "
    "give unsteady values)[_c]. AUC: the chance that an utterance of the reference set scores "
    "higher than one of the other set (0.5: no separation). Utterance scores: <b>log_ll</b> (LogLL)"
    "[llr][gmm]. Set means are over the set's frames. Ratings from averaged latents: an SVR from each "
    "utterance's mean latent to its rating; <b>svr_cv</b> cross-validated within the set over 5 folds of its "
    "speakers (one per speaker with fewer), <b>svr_cv_shuffled</b> the same with the ratings shuffled (its "
    "chance level, negative on small sets), <b>a-&gt;b</b> fitted on set a, applied to set b. Sets with "
    "ratings that do not vary have no correlation rows. <b>–</b>: not defined (correlations of fewer than 3 "
    "utterances, or scores or ratings without spread). An AUC or correlation of few utterances (n) can take "
    "any value by chance."
)
NAMING_PARTS = {
    "[_c]": "; _c and _r are the class-conditional and residual parts of a DNF model",
    "[llr]": ", <b>llr</b> (log p(x | {llr_class} class) - log p(x | the other classes), DNF models)",
    "[gmm]": ", <b>gmm_log_ll</b> (a 32-component diagonal GMM fitted on the model's training frames, the baseline)",
}


def naming(summary: dict[str, Any]) -> str:
    r""":data:`NAMING` with the parts on ``_c``/``_r`` and ``llr`` where the summary has them."""
    has = {"[_c]": any("skew_c" in s for s in summary["sets"].values()),
           "[llr]": any("llr" in d["by_score"] for d in summary.get("detection", {}).values()),
           "[gmm]": any("gmm_log_ll" in s for s in summary["sets"].values())}
    text = NAMING
    for key, part in NAMING_PARTS.items():
        text = text.replace(key, part if has[key] else "")
    return text.replace("{llr_class}", html.escape(summary.get("model", {}).get("llr_class", "native")))


#: The names' start of the blur-mask figures a report copies into its ``figures/``
#: (:func:`flowaccent.blurmask.report.blurmask_part`); an earlier report's are removed by the next.
BLURMASK_FIGURES = "blurmask_"

#: Frames per set in the t-SNE by default (the slowest figure: its time grows faster than its points).
TSNE_FRAMES = 500

#: The files :func:`make_figures` writes (``fig_dir/NAME.png`` and ``.pdf``), and no others.
FIGURE_FILES = re.compile(r"(training_curves|latents_dims01|latents_pca|latents_tsne|hist_log_ll|"
                          r"roc_(log_ll|llr|gmm_log_ll)|rating_log_ll)\.(png|pdf)")


def make_figures(
    exp: Path, scores: Path, fig_dir: Path, summary: dict[str, Any] | None = None, tsne_frames: int = TSNE_FRAMES
) -> dict[str, Path]:
    r"""Draws every figure for ``scores`` into ``fig_dir``; returns ``{title: png}``. ``summary``: the scores'
    summary where the caller has read and checked it already (:func:`_checked_inputs`). ``tsne_frames``: the
    frames per set in the t-SNE (a random sample of its latents), 0 for no t-SNE. The figures are drawn in
    ``fig_dir/.partial`` and moved into place when all are drawn, and only then are the figures of these names
    an earlier run left and this one did not draw removed (one of scores with a baseline or sets these have not,
    ``roc_gmm_log_ll``, would be taken for one of these): a Ctrl-C left 6 of 18 earlier figures. Other files in
    ``fig_dir`` are left alone (any ``roc_*`` and ``blurmask_*`` went: the user's, and a report's blur masks)."""
    _check_tsne_frames(tsne_frames)
    summary = summary or _checked_inputs(exp, scores)
    fig_dir = Path(fig_dir)
    if fig_dir.exists() and not fig_dir.is_dir():  # it said '.../.partial: Not a directory'
        raise ConfigError(f"--out {fig_dir} is a file; give the figures a folder")
    stage = fig_dir / ".partial"
    shutil.rmtree(stage, ignore_errors=True)  # a killed run's
    try:
        drawn = _draw_figures(exp, scores, stage, summary, tsne_frames)
        fig_dir.mkdir(parents=True, exist_ok=True)
        for old in fig_dir.iterdir():
            if FIGURE_FILES.fullmatch(old.name):
                old.unlink()
        for new in stage.iterdir() if stage.is_dir() else ():
            os.replace(new, fig_dir / new.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return {title: fig_dir / png.name for title, png in drawn.items()}


#: What ``report`` and ``plot`` draw into a scores folder (``plot``'s default ``--out``, ``report --out SCORES``).
DRAWN = ("report.html", "report.md", "figures")


def remove_drawn(scores: Path) -> int:
    r"""Removes the report and figures drawn from ``scores``' earlier contents (:data:`DRAWN`: in ``figures/``,
    the files of :data:`FIGURE_FILES` and a report's blur masks; others are the user's), as ``flowaccent score``
    replaces them: they showed the old scores beside the new ``summary.json``. Returns how many files went."""
    figures = scores / "figures"
    old = [scores / name for name in DRAWN[:2] if (scores / name).is_file()]
    if figures.is_dir():
        old += [p for p in figures.iterdir() if FIGURE_FILES.fullmatch(p.name) or
                (p.name.startswith(BLURMASK_FIGURES) and p.suffix in (".png", ".pdf"))]
    for path in old:
        path.unlink()
    if figures.is_dir() and not any(figures.iterdir()):
        figures.rmdir()
    return len(old)


def _check_tsne_frames(tsne_frames: int) -> None:
    if isinstance(tsne_frames, bool) or not isinstance(tsne_frames, numbers.Integral) or tsne_frames < 0:
        raise ConfigError(f"report: tsne_frames (--tsne-frames) is a whole number >= 0 (0: no t-SNE), got "
                          f"{tsne_frames!r}")


def _draw_figures(
    exp: Path, scores: Path, fig_dir: Path, summary: dict[str, Any], tsne_frames: int
) -> dict[str, Path]:
    names = list(summary["sets"])
    latents, tables = {}, {}
    for name in names:
        latents[name], tables[name] = _read_set(scores, name, summary["sets"][name])
    ref = summary["reference"]
    cols = plots.colours(names, {n: s.get("accent") for n, s in summary["sets"].items()})  # one per set, every figure
    figures: dict[str, Path] = {}
    log = exp / "log" / "train.jsonl"
    curves = plots.training_curves(log, fig_dir / "training_curves")
    if curves:
        figures["Training curves"] = curves
    else:  # the figure was left out without a word
        print(f"note: no training curves: {log} {'has no records' if log.exists() else 'is missing'}",
              file=sys.stderr)
    figures["Latents, first two dimensions"] = plots.latents_first_dims(latents, fig_dir / "latents_dims01", cols=cols)
    figures["Latents, PCA"] = plots.latents_pca(latents, fig_dir / "latents_pca", cols=cols)
    if tsne_frames:
        tsne = "Latents, t-SNE (each point a frame: frames of one utterance lie together)"
        figures[tsne] = plots.latents_tsne(latents, fig_dir / "latents_tsne", per_set=int(tsne_frames), cols=cols)
    figures["LogLL per utterance"] = plots.histograms(
        {n: t["log_ll"] for n, t in tables.items()},
        fig_dir / "hist_log_ll",
        "mean log-likelihood per frame (nats)",
        "Utterance LogLL by set",
        cols,
        weights={n: t["num_frames"] for n, t in tables.items()},
    )
    others = [n for n in names if n != ref]
    for score in ("log_ll", "llr", "gmm_log_ll"):
        if others and all(score in tables[n] for n in names):
            figures[f"ROC by {score}"] = plots.roc_curves(
                tables[ref][score], {n: tables[n][score] for n in others}, fig_dir / f"roc_{score}", score, ref, cols
            )
    rating = summary.get("rating", {})  # the sets whose ratings vary: those with correlation rows
    rated = [n for n in names if n in rating]
    if rated:
        kinds = [k for k in ("log_ll", "llr", "gmm_log_ll") if all(k in rating[n] for n in rated)]
        known = {n: np.isfinite(tables[n]["score"]) for n in rated}
        figures["Utterance scores against rating"] = plots.rating_scatter(
            {k: {n: tables[n][k][known[n]] for n in rated} for k in kinds},
            {n: tables[n]["score"][known[n]] for n in rated},
            fig_dir / "rating_log_ll",
            cols,
        )
    return figures


def load_summary(scores: Path) -> dict[str, Any]:
    r"""The ``summary.json`` of a ``flowaccent score --out`` folder."""
    path = scores / "summary.json"
    if not scores.is_dir():
        raise ConfigError(f"{scores}: no such folder (--scores: the --out of 'flowaccent score')")
    if not path.exists():
        raise ConfigError(f"{path}: missing; run 'flowaccent score' first (or it did not finish)")
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON ({error}); run 'flowaccent score' again") from None
    if isinstance(summary, dict) and "all" in summary and "reference" not in summary:
        raise ConfigError(f"{path}: the summary of 'flowaccent blurmask', not of 'flowaccent score' (--scores: the "
                          f"--out of 'flowaccent score'; report --blurmask shows blur masks)")
    return summary


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


def _read_set(scores: Path, name: str, facts: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
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
        table = read_tsv(path)
    except ValueError as error:
        raise ConfigError(f"{error}; {again}") from None
    missing = [c for c in ("utt", "num_frames", "log_ll") if c not in table]
    if missing:
        raise ConfigError(f"{path}: no column {', '.join(missing)}; {again}")
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


def _checked_inputs(exp: Path, scores: Path) -> dict[str, Any]:
    r"""``scores``' summary, after checking that ``exp`` is the experiment dir that scored it."""
    if not exp.is_dir():
        raise ConfigError(f"{exp}: no such experiment dir (--exp: the dir of 'flowaccent train')")
    if not (exp / "config.yaml").is_file() and not (exp / "final.pt").is_file():  # a shared final.pt alone: scored
        raise ConfigError(f"{exp}: not an experiment dir of 'flowaccent train' (neither config.yaml nor final.pt); "
                          f"give the --exp that made the scores")
    summary = load_summary(scores)
    _check_same_model(exp, scores, summary)
    return summary


def _checkpoint_config(exp: Path) -> str:
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


def write_report(
    exp: str | Path, scores: str | Path, out: str | Path | None = None, command: str = "",
    blurmask: str | Path | None = None, tsne_frames: int = TSNE_FRAMES,
) -> Path:
    r"""Writes ``report.html`` and ``report.md`` (default: into ``exp``; ``out`` a folder, or any name not ending in
    ``.html``: into it); returns the HTML path. ``blurmask``: the ``--out`` folder of a ``flowaccent blurmask`` run
    on the scored model, whose tables and figures the report shows too
    (:func:`flowaccent.blurmask.report.blurmask_part`). ``tsne_frames``: as :func:`make_figures`'s. An
    earlier report at ``out`` is removed before the figures are drawn, so an interrupted run leaves no report
    beside figures it did not draw."""
    exp, scores = Path(exp), Path(scores)
    _check_tsne_frames(tsne_frames)
    given = str(out) if out else ""
    out = Path(out) if out else exp / "report.html"
    if out.is_dir() or given.endswith(("/", os.sep)) or out.suffix.lower() not in (".html", ".htm"):
        out = out / "report.html"  # --out r1 wrote an HTML file r1, r1.md beside it, and figures/ into r1's folder
    if (out.parent / "utt_scores.tsv").exists():  # figures/ went in among a set's scores
        raise ConfigError(f"report: --out {out.parent} is a scored set's folder; give the report a folder of its own")
    summary = _checked_inputs(exp, scores)  # wrong inputs leave an earlier report as it was
    masks = None
    if blurmask is not None:
        from flowaccent.blurmask.report import blurmask_part, check_same_model, load_blurmask

        masks = load_blurmask(Path(blurmask))
        check_same_model(Path(blurmask), masks, summary)  # before anything is removed
    for old in (out, out.with_suffix(".md")):
        old.unlink(missing_ok=True)
    figures = make_figures(exp, scores, out.parent / "figures", summary, tsne_frames)
    for old in (out.parent / "figures").glob(f"{BLURMASK_FIGURES}*.png"):  # an earlier report's blur masks
        old.unlink()
    config = (exp / "config.yaml").read_text() if (exp / "config.yaml").exists() else _checkpoint_config(exp)
    sections = _sections(summary)
    notes, made = [naming(summary)], [f"scored: {summary.get('command', '(command not recorded)')}"]
    if masks is not None:
        tables, mask_figures, note, blurmask_command = blurmask_part(blurmask, masks, out.parent / "figures")
        sections, figures = sections + tables, figures | mask_figures
        notes.append(note)
        made.append(f"blur masks: {blurmask_command}")
    if command:
        made.append(f"report: {command}")
    trained = _trained_on(exp)
    atomic_write_text(out, _html(summary, sections, figures, config, notes, made, trained))
    atomic_write_text(out.with_suffix(".md"), _markdown(summary, sections, figures, config, notes, made, out.parent,
                                                        trained))
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _sections(summary: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    r"""``(title, header, rows)`` of every table."""
    sets = summary["sets"]
    means = {"num_utts": "utts", "num_frames": "frames", "log_ll": "LogLL", "log_p": "LogP", "log_det": "LogDet",
             "nll": "NLL (lab 'LogLL')", "log_p_reference": "LogP of N(0,I)", "gmm_log_ll": "gmm_log_ll"}
    shape = {"num_latents": "latent frames", "skew": "skew", "kurtosis": "kurtosis", "skew_c": "skew_c",
             "kurtosis_c": "kurtosis_c", "skew_r": "skew_r", "kurtosis_r": "kurtosis_r"}
    out = []
    for title, columns in (("Scores per set (means over frames)", means), ("Gaussianity of the latents", shape)):
        keys = [k for k in columns if any(k in s for s in sets.values())]
        rows = [[n] + [_fmt(s.get(k)) for k in keys] for n, s in sets.items()]
        out.append((title, ["set"] + [columns[k] for k in keys], rows))
    detection = summary.get("detection", {})
    if detection:
        scores = list(dict.fromkeys(k for d in detection.values() for k in d["by_score"]))  # as scored
        rows = [[n, str(sets[n]["num_utts"])] + [_fmt(d["by_score"].get(k)) for k in scores]
                for n, d in detection.items()]
        ref = summary["reference"]
        out.append((f"Detection AUC against '{ref}' ({sets[ref]['num_utts']} utts)", ["set", "utts"] + scores, rows))
    rating = summary.get("rating", {})
    if rating:
        rows = [
            [n, k, _fmt(c["pearson"]), _fmt(c["spearman"]), str(c["n"])]
            for n, r in rating.items()
            for k, c in r.items()
        ]
        out.append(("Correlation with ratings (utt2score)", ["set", "score", "Pearson", "Spearman", "utts"], rows))
    regression = summary.get("regression", {})
    across = {n: r["svr"] for n, r in regression.items() if "->" in n}  # "a->b": fitted on a, applied to b
    matrix = len(across) > 2  # every ordered pair a row: 56 rows for 8 rated sets, 240 for 16; a table of them
    if regression:
        rows = [
            [n, k + _shared(c), _fmt(c["pearson"]), _fmt(c["spearman"]),
             str(c["n"]) + (f" of {c['sample_of']}" if "sample_of" in c else "")]  # a sample of a large set
            for n, r in regression.items() if not (matrix and n in across)
            for k, c in r.items()
        ]
        out.append(("Ratings from averaged latents (SVR)", ["set", "how", "Pearson", "Spearman", "utts"], rows))
    if matrix:
        pairs = {tuple(n.split(">")): c for n, c in across.items()}  # set names hold no '>'
        fitted = {(a[:-1], b): c for (a, b), c in pairs.items()}  # a ends in the '-' of '->'
        names = list(dict.fromkeys(n for pair in fitted for n in pair))
        rows = [[a] + [_fmt(fitted[a, b]["pearson"]) + _shared(fitted[a, b], short=True) if (a, b) in fitted else ""
                       for b in names] for a in names]
        out.append(("SVR fitted on one set (row), applied to another (column): Pearson (Spearman and utts: "
                    "summary.json)", ["fitted on", *names], rows))
    return out


def _shared(result: dict, short: bool = False) -> str:
    r"""The note on a fitted-on/applied-to pair of sets that share utterances (their ids), else nothing."""
    if not result.get("shared_utts"):
        return ""
    return f" ({result['shared_utts']} shared)" if short else f" ({result['shared_utts']} utts in both sets)"


def _html(summary, sections, figures: dict[str, Path], config: str, notes: list[str], made: list[str],
          trained: str = "") -> str:
    r"""The report page; ``notes``: paragraphs on the names (HTML), ``made``: the lines of "How this was made"."""
    e = html.escape

    def t(text: str) -> str:  # element text: quotes need no escaping
        return html.escape(text, quote=False)

    heading = f"flowaccent report: {_experiment_name(summary)}"
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{t(heading)}</title><style>",
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;break-inside:avoid}.scroll{overflow-x:auto}"
        "td,th{border:1px solid #bbb;padding:3px 8px;"
        "text-align:right}th{background:#eef}td:first-child,th:first-child{text-align:left}"
        "figure{display:inline-block;width:47%;margin:1%;vertical-align:top}figure.wide{width:98%}"
        "img{width:100%;border:1px solid #ddd}figcaption{font-size:90%;color:#444}"
        "pre{background:#f6f6f6;padding:1em;white-space:pre-wrap;overflow-wrap:anywhere}"
        "h2{break-after:avoid}figure,tr{break-inside:avoid}"
        "@media (max-width:800px){figure{width:98%}}"
        # on paper nothing scrolls: a wide table (long set names) is set smaller and its names wrap, not cut
        "@media print{.scroll{overflow:visible}table{font-size:8pt}td,th{padding:2px 4px}td{white-space:nowrap}"
        "td:first-child{white-space:normal;overflow-wrap:anywhere}}",
        "</style></head><body>",
        f"<h1>{t(heading)}</h1>",
        "<p>" + re.sub(r"`([^`]*)`", r"<code>\1</code>", e(_model_line(summary, trained))) + "</p>",
    ]
    parts += [f"<p class='naming'>{note}</p>" for note in notes]
    for title, header, rows in sections:
        parts.append(f"<h2>{t(title)}</h2><div class='scroll'><table><thead><tr>"
                     + "".join(f"<th>{t(h)}</th>" for h in header) + "</tr></thead><tbody>")
        parts += ["<tr>" + "".join(f"<td>{t(c)}</td>" for c in row) + "</tr>" for row in rows]
        parts.append("</tbody></table></div>")
    parts.append("<h2>Figures</h2>")
    for number, (title, png) in enumerate(figures.items(), 1):
        raw = png.read_bytes()
        data = base64.b64encode(raw).decode()
        wide = " class='wide'" if _aspect(raw) > 2.0 else ""  # panels side by side: the page's width
        parts.append(f"<figure{wide}><img alt='{e(title)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>Figure {number}: {t(title)}</figcaption></figure>")
    parts.append(f"<h2>Configuration</h2><pre>{t(config)}</pre>")
    parts.append(f"<h2>How this was made</h2><pre>{t(chr(10).join(made))}</pre></body></html>")
    return "\n".join(parts) + "\n"


def _markdown(
    summary, sections, figures: dict[str, Path], config: str, notes: list[str], made: list[str], root: Path,
    trained: str = "",
) -> str:
    lines = [f"# flowaccent report: {_experiment_name(summary)}", "", _model_line(summary, trained), ""]
    for note in notes:
        lines += [note.replace("<b>", "**").replace("</b>", "**").replace("&gt;", ">"), ""]
    for title, header, rows in sections:
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    lines += ["## Figures", ""]
    for number, (title, png) in enumerate(figures.items(), 1):
        lines += [f"![{title}]({png.relative_to(root)})", "", f"*Figure {number}: {title}*", ""]
    lines += [
        "",
        "## Configuration",
        "",
        "```yaml",
        config.rstrip(),
        "```",
        "",
        "## How this was made",
        "",
        "```",
        *made,
        "```",
        "",
    ]
    return "\n".join(lines)


def _experiment_name(summary: dict[str, Any]) -> str:
    r"""The scored model's experiment dir as ``score`` was given it (``exp/quick/dnf``)."""
    return str(summary.get("model", {}).get("exp", "")) or "(experiment not recorded)"


def _aspect(png: bytes) -> float:
    r"""Width / height of a PNG's bytes, from its IHDR chunk."""
    head = png[16:24]
    return int.from_bytes(head[:4], "big") / max(1, int.from_bytes(head[4:], "big"))


def _model_line(summary: dict[str, Any], trained: str = "") -> str:
    model = summary["model"]
    line = (f"Model: `{model['checkpoint']}`, input dim {model['dim']}, cond_dim {model['cond_dim']}, "
            f"classes {', '.join(model['classes'])}.")
    gmm = "; the GMM baseline too" if "baseline" in summary else ""
    return line + (f" Trained on {trained} (`data.txt`{gmm})." if trained else "")


def _trained_on(exp: Path) -> str:
    r"""The model's training data dirs as ``NAME=DIR`` (``exp/data.txt``), or "" where it has none."""
    data = exp / "data.txt"
    lines = data.read_text().splitlines() if data.is_file() else []
    return ", ".join(f"`{line.strip()}`" for line in lines if line.strip())

