r"""The report's figures, drawn from the scores into ``figures/`` (``flowaccent plot`` draws them alone), and the
removal of what a report drew from scores that changed."""

from __future__ import annotations

import contextlib
import numbers
import os
import re
import shutil
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from flowaccent import plots
from flowaccent.data.specs import check_not_inputs
from flowaccent.errors import ConfigError
from flowaccent.report.inputs import checked_inputs, read_set

#: The names' start of the blur-mask figures a report copies into its ``figures/``
#: (:func:`flowaccent.blurmask.report.blurmask_part`); an earlier report's are removed by the next.
BLURMASK_FIGURES = "blurmask_"

#: The name's start of the figure of a ``flowaccent phones`` run a report copies into its ``figures/``
#: (:func:`flowaccent.report.phones.phones_part`).
PHONES_FIGURES = "phones_"

#: Frames per set in the t-SNE by default (the slowest figure: its time grows faster than its points).
TSNE_FRAMES = 500

#: The files :func:`make_figures` writes (``fig_dir/NAME.png`` and ``.pdf``; the t-SNE's points, ``.npz``), and no
#: others.
FIGURE_FILES = re.compile(r"(training_curves|latents_dims01|latents_pca|latents_tsne|hist_log_ll|speakers_log_ll|"
                          r"roc_(log_ll|llr|gmm_log_ll)|rating_log_ll)\.(png|pdf)|latents_tsne\.npz")


def make_figures(
    exp: str | Path, scores: str | Path, fig_dir: str | Path, summary: dict[str, Any] | None = None,
    tsne_frames: int = TSNE_FRAMES,
) -> dict[str, Path]:
    r"""Draws every figure for ``scores`` into ``fig_dir``; returns ``{title: png}``. ``summary``: the scores'
    summary where the caller has read and checked it already (:func:`checked_inputs`). ``tsne_frames``: the
    frames per set in the t-SNE (a random sample of its latents), 0 for no t-SNE. The figures are drawn in
    ``fig_dir/.partial`` and moved into place when all are drawn, and only then are the figures of these names
    an earlier run left and this one did not draw removed (one of scores with a baseline or sets these have not,
    ``roc_gmm_log_ll``, would be taken for one of these): a Ctrl-C left 6 of 18 earlier figures. Other files in
    ``fig_dir`` are left alone (any ``roc_*`` and ``blurmask_*`` went: the user's, and a report's blur masks). The
    t-SNE's points (``latents_tsne.npz``) of an earlier run on the same frames and settings, in ``fig_dir`` or where
    ``plot`` and ``report`` draw by default (``scores/figures``, ``exp/figures``), are drawn again, not
    recomputed. ``scores`` is held (:func:`~flowaccent.data.lock.reading_lock`) while it is read and drawn: a
    ``score`` into it meanwhile is refused."""
    from flowaccent.data.lock import reading_lock

    check_tsne_frames(tsne_frames)
    exp, scores, fig_dir = Path(exp), Path(scores), Path(fig_dir)  # a notebook's strings: 'str' has no 'is_dir'
    with reading_lock(scores, f"--scores {scores}"):  # no score into them meanwhile (nor the reverse)
        summary = summary or checked_inputs(exp, scores)
        with figures_lock(fig_dir):
            return draw_figures_locked(exp, scores, fig_dir, summary, tsne_frames)


@contextlib.contextmanager
def figures_lock(fig_dir: Path) -> Iterator[None]:
    r"""An exclusive lock on ``fig_dir`` (``.figures.lock``) while a report or plot draws into it: two runs into
    one folder removed each other's staged figures, and one of them ended with exit 0 and a report whose figures
    were gone. The lock file goes at the end, still held: it is not left among the figures."""
    from flowaccent.data.lock import locked_folder

    if fig_dir.exists() and not fig_dir.is_dir():  # it said '.../.partial: Not a directory'
        raise ConfigError(f"--out {fig_dir} is a file; give the figures a folder")
    check_not_inputs(fig_dir, "the figures")
    busy = f"{fig_dir} is being drawn into by another flowaccent report or plot now; wait for it or give another --out"
    with locked_folder(fig_dir, FIGURES_LOCK, busy):
        try:
            yield
        finally:
            (fig_dir / FIGURES_LOCK).unlink(missing_ok=True)


#: The lock file of :func:`figures_lock`.
FIGURES_LOCK = ".figures.lock"


def draw_figures_locked(exp: Path, scores: Path, fig_dir: Path, summary: dict[str, Any], tsne_frames: int
                        ) -> dict[str, Path]:
    r""":func:`make_figures` within :func:`figures_lock`, which the caller holds."""
    stage = fig_dir / ".partial"
    shutil.rmtree(stage, ignore_errors=True)  # a killed run's
    try:
        earlier = [folder / "latents_tsne.npz" for folder in (fig_dir, scores / "figures", exp / "figures")]
        drawn = _draw_figures(exp, scores, stage, summary, tsne_frames, earlier)
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
    the files of :data:`FIGURE_FILES` and a report's blur masks and phones; others are the user's), as
    ``flowaccent score`` replaces them: they showed the old scores beside the new ``summary.json``. Returns how many
    files went."""
    figures = scores / "figures"
    old = [scores / name for name in DRAWN[:2] if (scores / name).is_file()]
    if figures.is_dir():
        old += [p for p in figures.iterdir() if FIGURE_FILES.fullmatch(p.name) or
                (p.name.startswith((BLURMASK_FIGURES, PHONES_FIGURES)) and p.suffix in (".png", ".pdf"))]
    for path in old:
        path.unlink()
    if figures.is_dir() and not any(figures.iterdir()):
        figures.rmdir()
    return len(old)


#: A t-SNE of more frames than this is said before it starts: minutes without a word (20 sets of 500 frames: 2 min 20 s
#: of a report's 2 min 40 s on two cores).
TSNE_SAID = 4000


def _say_tsne(sets: int, per_set: int, frames: int) -> None:
    if frames > TSNE_SAID:
        print(f"note: t-SNE of {frames:,} latent frames ({sets} sets, {per_set} per set at most): minutes on a CPU; "
              "--tsne-frames N draws fewer per set (0: none)", file=sys.stderr, flush=True)


def check_tsne_frames(tsne_frames: int) -> None:
    if isinstance(tsne_frames, bool) or not isinstance(tsne_frames, numbers.Integral) or tsne_frames < 0:
        raise ConfigError(f"report: tsne_frames (--tsne-frames) is a whole number >= 0 (0: no t-SNE), got "
                          f"{tsne_frames!r}")


def _draw_figures(
    exp: Path, scores: Path, fig_dir: Path, summary: dict[str, Any], tsne_frames: int, earlier_tsne: list[Path]
) -> dict[str, Path]:
    names = list(summary["sets"])
    latents, tables = {}, {}
    for name in names:
        latents[name], tables[name] = read_set(scores, name, summary["sets"][name])
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
        figures[tsne] = plots.latents_tsne(latents, fig_dir / "latents_tsne", per_set=int(tsne_frames), cols=cols,
                                           reuse=earlier_tsne, before_fit=partial(_say_tsne, len(names), tsne_frames))
    log_ll, frames = {n: t["log_ll"] for n, t in tables.items()}, {n: t["num_frames"] for n, t in tables.items()}
    figures["LogLL per utterance"] = plots.histograms(
        log_ll, fig_dir / "hist_log_ll", "mean log-likelihood per frame (nats)", "Utterance LogLL by set", cols,
        weights=frames,
    )
    figures["LogLL by speaker"] = plots.speaker_scores(
        log_ll,
        frames,
        {n: t["spk"] for n, t in tables.items()},
        fig_dir / "speakers_log_ll",
        "mean log-likelihood per frame (nats)",
        "Utterance LogLL by speaker (diamond: the speaker's mean over its frames)",
        ref,
        cols,
    )
    others = [n for n in names if n != ref]
    for score in ("log_ll", "llr", "gmm_log_ll"):
        if others and all(score in tables[n] for n in names):
            figures[f"ROC by {score}"] = plots.roc_curves(
                tables[ref][score], {n: tables[n][score] for n in others}, fig_dir / f"roc_{score}", score, ref, cols,
                speakers={n: tables[n]["spk"] for n in names},
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
