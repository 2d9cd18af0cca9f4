r"""A figure of an utterance score by speaker: how far the speakers of a set lie apart, against how far the sets do
(a voice can move a flow's LogLL as much as an accent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowaccent.plots import figure
from flowaccent.plots.colours import colours_of
from flowaccent.words import counted

#: Speakers of a set past which their means are a line, not diamonds (1,240 speakers' diamonds merged into one black
#: streak that hid the set's colour and its utterances).
MANY_SPEAKERS = 100

#: Sets in a row of the speaker figure: past it, more rows (one row of 20 sets was a 3056 px strip, its labels 3 px
#: high in the report's page).
PER_ROW = 8


def speaker_means(
    values: np.ndarray, frames: np.ndarray, speakers: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Each speaker's mean of the per-utterance ``values`` (n,) over its frames (``frames`` (n,): the utterances'
    frame counts; a speaker of no frames: the mean of its utterances), sorted by it: ``(speakers (k,), means (k,),
    position (n,))``, ``position`` each utterance's speaker's index in that order. Values that are not finite are
    the caller's to leave out."""
    names, index = np.unique(np.asarray(speakers).astype(str), return_inverse=True)
    weights = np.asarray(frames, dtype=float)
    totals = np.bincount(index, weights=weights * values, minlength=len(names))
    counts = np.bincount(index, weights=weights, minlength=len(names))
    plain = np.bincount(index, weights=values, minlength=len(names)) / np.bincount(index, minlength=len(names))
    means = np.where(counts > 0, totals / np.where(counts > 0, counts, 1), plain)
    order = np.argsort(means, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return names[order], means[order], rank[index]


def speaker_scores(
    values: dict[str, np.ndarray],
    frames: dict[str, np.ndarray],
    speakers: dict[str, np.ndarray],
    base: Path,
    ylabel: str,
    title: str,
    reference: str | None = None,
    cols: dict[str, str] | None = None,
) -> Path:
    r"""One group of columns per set, one column per speaker, sorted by the speaker's mean over its frames (a
    diamond, :func:`speaker_means`; a black line through them past :data:`MANY_SPEAKERS` speakers) with its
    utterances' ``values`` as dots. Below each group: the set, its number of speakers and the standard deviation of
    their means. A dashed line: ``reference``'s mean over frames.
    ``values``, ``frames``, ``speakers``: ``{set: (n,)}`` per utterance; values that are not finite are left out
    and counted below their set. Sets past :data:`PER_ROW` go into further rows, of one y axis."""
    for what, given in (("frame counts", frames), ("speakers", speakers)):  # an IndexError, a KeyError named neither
        figure.check_per_set("speaker_scores", given, what, values, "values")
    cols = colours_of(values, cols, "speaker_scores")
    short = figure.short_names(values)
    names = list(values)
    rows = [names[i : i + PER_ROW] for i in range(0, len(names), PER_ROW)] or [[]]
    fig, axes = figure.subplots(len(rows), 1, figsize=(max(6.0, 1.3 * len(rows[0]) + 2.0), 4.5 * len(rows)),
                                sharey=True, squeeze=False)
    level = _mean_over_frames(values[reference], frames[reference]) if reference in values else None
    for row, ax in zip(rows, axes[:, 0]):
        _draw_row(ax, row, len(rows[0]), values, frames, speakers, short, cols, ylabel)
        if level is not None:  # each row's, across it; named in the first row's legend
            ax.axhline(level, color="grey", linestyle="--", linewidth=1, label=f"{short[reference]}'s mean over frames",
                       zorder=1)
            if row is rows[0]:
                ax.legend(fontsize=8, loc="best")
    axes[0, 0].set_title(title)
    return figure.save(fig, base)


def _draw_row(ax, row: list[str], width: int, values, frames, speakers, short, cols, ylabel: str) -> None:
    r"""The sets ``row`` on ``ax``, each a group of columns, in a row of room for ``width`` sets."""
    ticks = []
    for i, name in enumerate(row):
        v = np.asarray(values[name], dtype=float)
        finite = np.isfinite(v)
        dropped = f"\n{(~finite).sum()} not finite" if not finite.all() else ""
        if not finite.any():
            ticks.append(f"{short[name]}\nno values{dropped}")
            continue
        who, means, position = speaker_means(v[finite], np.asarray(frames[name])[finite],
                                             np.asarray(speakers[name])[finite])
        x = i - 0.4 + 0.8 * (np.arange(len(who)) + 0.5) / len(who)
        ax.scatter(x[position], v[finite], s=6, alpha=0.35, color=cols[name], linewidths=0)
        if len(who) > MANY_SPEAKERS:
            ax.plot(x, means, color="black", linewidth=1, zorder=3)
        else:
            ax.scatter(x, means, marker="D", s=24, color=cols[name], edgecolors="black", linewidths=0.5, zorder=3)
        spread = f", sd {means.std(ddof=1):.2f}" if len(who) > 1 else ""
        ticks.append(f"{short[name]}\n{counted(len(who), 'speaker')}{spread}{dropped}")
    ax.set_xticks(range(len(row)), ticks, fontsize=7, rotation=20 if len(row) > 6 else 0)
    ax.set_xlim(-0.6, width - 0.4)  # a shorter last row: its groups as wide as the others'
    ax.set(ylabel=ylabel)


def _mean_over_frames(values: np.ndarray, frames: np.ndarray) -> float | None:
    r"""The mean of the finite utterance ``values`` over their ``frames``; None where there is none."""
    v, w = np.asarray(values, dtype=float), np.asarray(frames, dtype=float)
    keep = np.isfinite(v)
    return float(np.average(v[keep], weights=w[keep])) if keep.any() and w[keep].sum() > 0 else None
