r"""The report's tables (``(title, header, rows)``, for HTML and Markdown alike) and the words on what their names
mean."""

from __future__ import annotations

import html
import math
from typing import Any

from flowaccent.words import counted

#: What the report's names mean; the sentences on ``_c``/``_r`` and ``llr`` only where the scores have them.
NAMING = (
    "Natural log, per frame, summed over dimensions. <b>LogLL</b> here is the log-likelihood "
    "log p(x) = LogP + LogDet; the lab's tables printed the training loss, i.e. NLL = -LogLL, "
    "under the name 'LogLL'. <b>LogP</b> is log p(z) under the prior (a unit-Gaussian latent of "
    "dimension D has a mean of -1.4189 D, shown as the reference); <b>LogDet</b> is log|det dz/dx|, "
    "including the feature standardisation. Skew and kurtosis (Fisher, excess: 0 for a Gaussian) "
    "are over all values of a random sample of latents (its frames: 'latent frames'; small samples "
    "give unsteady values)[_c]. AUC: the chance that an utterance of the reference set scores "
    "higher than one of the other set (0.5: no separation); in brackets its 95% confidence interval, "
    "its variance DeLong's taken over the speakers (Obuchowski's: utterances of one voice are not independent; "
    "none where a set has a single speaker, and 0 wide where every pair of utterances is one way); a Pearson r's by "
    "a bootstrap of the set's speakers (Fisher's where the speakers are not known). Utterance scores: "
    "<b>log_ll</b> (LogLL)"
    "[llr][gmm]. Set means are over the set's frames. Ratings from averaged latents: an SVR from each "
    "utterance's mean latent to its rating; <b>svr_cv</b> cross-validated within the set over 5 folds of its "
    "speakers (one per speaker with fewer), <b>svr_cv_shuffled</b> the same with the ratings shuffled (its "
    "chance level, negative on small sets), <b>a-&gt;b</b> fitted on set a, applied to set b; an SVR's "
    "interval is of its predictions' r, the fit held fixed. Sets with "
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


def fmt(value: Any) -> str:
    r"""A table cell: a float to 3 decimals, None (not defined) as '–'."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def sections(summary: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    r"""``(title, header, rows)`` of every table."""
    sets = summary["sets"]
    means = {"num_utts": "utts", "num_frames": "frames", "log_ll": "LogLL", "log_p": "LogP", "log_det": "LogDet",
             "nll": "NLL (lab 'LogLL')", "log_p_reference": "LogP of N(0,I)", "gmm_log_ll": "gmm_log_ll"}
    shape = {"num_latents": "latent frames", "skew": "skew", "kurtosis": "kurtosis", "skew_c": "skew_c",
             "kurtosis_c": "kurtosis_c", "skew_r": "skew_r", "kurtosis_r": "kurtosis_r"}
    out = []
    for title, columns in (("Scores per set (means over frames)", means), ("Gaussianity of the latents", shape)):
        keys = [k for k in columns if any(k in s for s in sets.values())]
        rows = [[n] + [fmt(s.get(k)) for k in keys] for n, s in sets.items()]
        out.append((title, ["set"] + [columns[k] for k in keys], rows))
    detection = summary.get("detection", {})
    if detection:
        scores = list(dict.fromkeys(k for d in detection.values() for k in d["by_score"]))  # as scored
        rows = [[n, str(sets[n]["num_utts"])] + [with_interval(d, k) for k in scores] for n, d in detection.items()]
        ref = summary["reference"]
        title = f"Detection AUC against '{ref}' ({counted(sets[ref]['num_utts'], 'utt')})"
        out.append((title, ["set", "utts"] + scores, rows))
    rating = summary.get("rating", {})
    if rating:
        rows = [
            [n, k, with_bounds(c["pearson"], c.get("pearson_ci95")), fmt(c["spearman"]), str(c["n"])]
            for n, r in rating.items()
            for k, c in r.items()
        ]
        out.append(("Correlation with ratings (utt2score)", ["set", "score", "Pearson", "Spearman", "utts"], rows))
    regression = summary.get("regression", {})
    across = {n: r["svr"] for n, r in regression.items() if "->" in n}  # "a->b": fitted on a, applied to b
    matrix = len(across) > 2  # every ordered pair a row: 56 rows for 8 rated sets, 240 for 16; a table of them
    if regression:
        rows = [
            [n, k + _shared(c), with_bounds(c["pearson"], c.get("pearson_ci95")), fmt(c["spearman"]),
             str(c["n"]) + (f" of {c['sample_of']}" if "sample_of" in c else "")]  # a sample of a large set
            for n, r in regression.items() if not (matrix and n in across)
            for k, c in r.items()
        ]
        out.append(("Ratings from averaged latents (SVR)", ["set", "how", "Pearson", "Spearman", "utts"], rows))
    if matrix:
        pairs = {tuple(n.split(">")): c for n, c in across.items()}  # set names hold no '>'
        fitted = {(a[:-1], b): c for (a, b), c in pairs.items()}  # a ends in the '-' of '->'
        names = list(dict.fromkeys(n for pair in fitted for n in pair))
        rows = [[a] + [fmt(fitted[a, b]["pearson"]) + _shared(fitted[a, b], short=True) if (a, b) in fitted else ""
                       for b in names] for a in names]
        out.append(("SVR fitted on one set (row), applied to another (column): Pearson (Spearman and utts: "
                    "summary.json)", ["fitted on", *names], rows))
    return out


def with_interval(detection: dict[str, Any], score: str) -> str:
    r"""The cell of ``score``'s AUC in a set's ``detection`` entry: the AUC, and where the summary has it (since
    scores of 2026-12-06) its 95% interval, ``0.734 [0.63, 0.83]``; '–' where the set has no such score."""
    if score not in detection["by_score"]:
        return fmt(None)
    return with_bounds(detection["by_score"][score], detection.get("ci95", {}).get(score))


def with_bounds(value: Any, bounds: list | None) -> str:
    r"""``value`` (:func:`fmt`) and, where ``bounds`` is a defined ``[low, high]``, `` [low, high]`` to 2 places."""
    low, high = bounds or (None, None)
    defined = all(isinstance(v, (int, float)) and math.isfinite(v) for v in (low, high))  # None in summary.json
    return fmt(value) + (f" [{low:.2f}, {high:.2f}]" if defined else "")


def _shared(result: dict, short: bool = False) -> str:
    r"""The note on a fitted-on/applied-to pair of sets that share utterances (their ids), else nothing."""
    if not result.get("shared_utts"):
        return ""
    return f" ({result['shared_utts']} shared)" if short else f" ({result['shared_utts']} utts in both sets)"
