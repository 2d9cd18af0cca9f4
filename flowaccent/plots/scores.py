r"""Figures of the utterances' scores: histograms per set, ROC curves against a reference set, scores against
ratings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from flowaccent.plots import figure
from flowaccent.plots.colours import colours, colours_of, readable

#: Fewest utterances of a set drawn as a histogram; fewer: only its row of ticks.
MIN_HISTOGRAM = 5


def histograms(
    values: dict[str, np.ndarray],
    base: Path,
    xlabel: str,
    title: str,
    cols: dict[str, str] | None = None,
    weights: dict[str, np.ndarray] | None = None,
) -> Path:
    r"""Overlaid density histograms of a per-utterance value per set, and below them one row of ticks per set,
    one tick per utterance (equal bars of two sets hide each other; a set of fewer than :data:`MIN_HISTOGRAM`
    utterances has its ticks only). The legend gives each set's mean: over its frames with ``weights`` (the
    utterances' frame counts: the mean the score tables give), else over its utterances."""
    values = {n: np.asarray(v, dtype=float) for n, v in values.items()}
    if not values:  # was 'max() arg is an empty sequence'
        raise ValueError("histograms: no set to draw (values is empty)")
    if weights is not None:
        figure.check_per_set("histograms", weights, "weights", values, "values")
    finite = {n: np.isfinite(v) for n, v in values.items()}  # nan or inf: left out, and counted in the legend
    left_out = {n: f", {(~f).sum()} not finite left out" if not f.all() else "" for n, f in finite.items()}
    if weights is not None:
        weights = {n: np.asarray(weights[n], dtype=float)[finite[n]] for n in values}
    values = {n: v[finite[n]] for n, v in values.items()}
    # taller with the rows of ticks (each about 8 pt): at 40 sets in 4 inches their 6 pt names ran together
    fig, ax = figure.subplots(figsize=(6, max(4.0, 2.2 + 0.16 * len(values))))
    cols = colours_of(values, cols, "histograms")
    short = figure.short_names(values)
    if weights is not None:
        means = {n: np.average(v, weights=weights[n]) if weights[n].sum() > 0 else np.nan for n, v in values.items()}
        title += " (legend: mean over frames; n utterances)"
    else:
        means = {n: v.mean() if len(v) else np.nan for n, v in values.items()}
    mean_of = "" if weights is not None else "mean of utts "
    labels = {n: f"{short[n]} ({mean_of}{means[n]:.2f}; n={len(v)}{left_out[n]})" for n, v in values.items()}
    both = np.concatenate([np.zeros(0), *values.values()])
    bins = np.linspace(both.min(), both.max(), 40) if len(both) and np.ptp(both) > 0 else 10
    for name, v in values.items():  # a light fill and an outline: overlaps stay readable as each set's colour
        if len(v) < MIN_HISTOGRAM:  # one or two bars of density 1/width: the tallest, and no shape; ticks only
            ax.plot([], [], "|", color=cols[name], markersize=8, label=f"{labels[name]}: ticks only")
            continue
        ax.hist(v, bins=bins, density=True, histtype="stepfilled", alpha=0.2, color=cols[name])
        ax.hist(v, bins=bins, density=True, histtype="step", linewidth=1.4, color=cols[name], label=labels[name])
    ax.set(title=title, xlabel=xlabel, ylabel="density")
    longest = max(map(len, labels.values()))
    top = ax.get_ylim()[1] * (1.35 if figure.fits_inside(len(values), longest) else 1.0)  # headroom for the legend
    row = 0.06 * top
    for i, (name, v) in enumerate(values.items()):
        ax.plot(v, np.full(len(v), -(i + 1) * row), "|", color=cols[name], markersize=6, alpha=0.8)
    ax.set_ylim(-(len(values) + 0.7) * row, top)
    density = [t for t in ax.get_yticks() if 0 <= t <= top]  # below 0: the rows of ticks, each named, no density
    said = ax.yaxis.get_major_formatter().format_ticks(density)
    ax.set_yticks(density + [-(i + 1) * row for i in range(len(values))], said + [short[n] for n in values])
    for label, name in zip(ax.get_yticklabels()[len(density):], values):
        label.set(color=readable(cols[name]), fontsize=6)  # a light shade's name was nearly invisible
    ax.yaxis.set_label_coords(-0.12, (len(values) + 0.7 + top / row / 2) / (len(values) + 0.7 + top / row))
    ax.axhline(0, color="grey", linewidth=0.5)
    figure.legend(ax, {"loc": "upper left", "ncol": 2 if longest <= 30 else 1}, len(values), longest)
    return figure.save(fig, base)


def roc_curves(
    reference: np.ndarray,
    others: dict[str, np.ndarray],
    base: Path,
    score: str,
    ref_name: str,
    cols: dict[str, str] | None = None,
    speakers: dict[str, Sequence[str]] | None = None,
) -> Path:
    r"""ROC of telling each set from the reference set by an utterance score; each set's legend gives its AUC and
    95% interval (:func:`~flowaccent.score.metrics.auc_interval`: over the utterances' ``speakers``, by set name,
    ``ref_name`` too, where given), as the report's table does; a set where a score is NaN (of it or the reference)
    has no curve, and its legend says so."""
    from sklearn.metrics import roc_curve

    from flowaccent.score.metrics import auc_interval, detection_auc

    if speakers is not None:  # the reference's too
        figure.check_per_set("roc_curves", speakers, "speakers", {ref_name: reference, **others}, "scores")
    fig, ax = figure.subplots(figsize=(5, 5))
    # the reference's colour its own, not the first other's; given, only the others' are drawn with
    cols = colours_of(others, cols, "roc_curves") if cols else colours([ref_name, *others])
    labels, short = {}, figure.short_names([ref_name, *others])
    for number, (name, v) in enumerate(others.items()):
        # curves along one segment stay told apart; a marker too: shades of one accent's colour, on 4 styles alone,
        # drew three curves of 14 sets as one solid red
        style = {"linestyle": ("-", "--", "-.", ":")[number % 4], "marker": MARKERS[number % len(MARKERS)],
                 "markevery": 0.12, "markersize": 4}
        if np.isnan(reference).any() or np.isnan(v).any():  # scikit-learn's 'Input contains NaN'; no AUC either
            labels[name] = f"{short[name]}: no curve, a score is NaN (n={len(v)})"
            ax.plot([], [], **style, color=cols[name], label=labels[name], linewidth=1.6)
            continue
        y = np.r_[np.ones(len(reference)), np.zeros(len(v))]
        s = np.r_[reference, v]
        fpr, tpr, _ = roc_curve(y, s)
        groups = (speakers[ref_name], speakers[name]) if speakers else (None, None)
        low, high = auc_interval(reference, v, *groups)
        interval = f" [{low:.2f}, {high:.2f}]" if np.isfinite([low, high]).all() else ""
        labels[name] = f"{short[name]}: AUC {detection_auc(reference, v):.3f}{interval} (n={len(v)})"
        ax.plot(fpr, tpr, **style, color=cols[name], label=labels[name], linewidth=1.6)
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(
        title=f"Detection by {score}, against {short[ref_name]} (n={len(reference)})",
        xlabel="other set's utterances above threshold (false positive rate)",
        ylabel=f"{short[ref_name]} utterances above threshold (true positive rate)",
    )
    figure.legend(ax, {"loc": "lower right"}, len(others), max(map(len, labels.values()), default=0))
    return figure.save(fig, base)


#: The rating figure's markers, one per set in turn: a shape tells sets apart where colours are near.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")


def rating_scatter(
    scores: dict[str, dict[str, np.ndarray]],
    ratings: dict[str, np.ndarray],
    base: Path,
    cols: dict[str, str] | None = None,
) -> Path:
    r"""Utterance scores against their ratings (``utt2score``): one panel per score (``scores[score][set]``, mean
    per frame in nats), one colour and marker per rated set (red and pink points told apart by shape too); below each
    panel its legend, which gives each set's number of
    rated utterances and its Pearson r with that panel's score (the report's correlation table gives it with
    Spearman's; ``-``: not defined). The r values stood in the panels' corner, over the points (with 16 sets down
    the whole panel)."""
    from flowaccent.score.metrics import correlations

    names = list(ratings)
    for score, by_set in scores.items():
        figure.check_per_set("rating_scatter", by_set, f"{score} scores", ratings, "ratings")
    short = figure.short_names(names)
    ncol = 2 if len(names) > 4 and max(map(len, short.values())) <= 16 else 1  # two columns fit under a panel
    rows = -(-len(names) // ncol)
    fig, axes = figure.subplots(1, len(scores), figsize=(4.6 * len(scores), 4 + 0.17 * rows), squeeze=False)
    cols = colours_of(names, cols, "rating_scatter")
    markers = {name: MARKERS[number % len(MARKERS)] for number, name in enumerate(names)}
    # the 11th set's marker: the 1st's shape, hollow (zh_02 and zh_12 were two light-pink triangles)
    hollow = {name: number // len(MARKERS) % 2 == 1 for number, name in enumerate(names)}
    for ax, (score, by_set) in zip(axes[0], scores.items()):
        for name in names:
            r = correlations(by_set[name], ratings[name])["pearson"]
            said = f"{r:.2f}" if np.isfinite(r) else "-"
            ax.scatter(ratings[name], by_set[name], s=14, alpha=0.6, marker=markers[name],
                       facecolors="none" if hollow[name] else cols[name],
                       edgecolors=readable(cols[name]), linewidths=1.0 if hollow[name] else 0.5,  # light: outlined
                       label=f"{short[name]} (n={len(ratings[name])}): r = {said}")
        ax.set(title=f"{score} against rating", xlabel="rating (utt2score, higher = more native-like)",
               ylabel=f"{score} (nats per frame)")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=ncol, borderaxespad=0,
                  frameon=False, markerscale=1.5, handletextpad=0.2, columnspacing=0.8)
    return figure.save(fig, base)
