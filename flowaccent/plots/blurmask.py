r"""The blur-mask figures: one utterance's mask and the cells it removes, and the deletion curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowaccent.plots import figure


def blurmask_utterance(
    feats: np.ndarray,
    m: np.ndarray,
    removed_low: np.ndarray,
    removed_high: np.ndarray,
    base: Path,
    title: str,
    m_label: str = "blur width m (bins)",
    symbol: str = "m",
    m_limits: tuple[float, float] | None = None,
) -> Path:
    r"""One utterance's blur mask: the log filterbank ``(T, K)``, the mask ``m`` ``(T, K)`` (``symbol``: its name
    in the titles, ``m`` or ``sigma``; ``m_limits``: its colour scale, the fit's range, so that a colour means one
    width in every utterance's figure; else the utterance's own range), and the spectrogram with the cells of
    two boolean ``(T, K)`` removal masks drawn in cyan (their share of the cells is in the titles; a blank
    would read as the colour map's pale top, the loudest cells). Arrays or tensors."""
    from matplotlib import colormaps
    from matplotlib.ticker import MaxNLocator

    feats, m, removed_low, removed_high = (np.asarray(a) for a in (feats, m, removed_low, removed_high))
    shapes = {"feats": feats.shape, symbol: m.shape, "removed_low": removed_low.shape,
              "removed_high": removed_high.shape}
    if feats.ndim != 2 or len(set(shapes.values())) > 1:  # mismatched panels were drawn without a word
        raise ValueError(f"blur-mask figure: feats, {symbol} and the removal masks are one (T, K) each, got "
                         + ", ".join(f"{k} {v}" for k, v in shapes.items()))
    fig, axes = figure.subplots(4, 1, figsize=(9, 9), sharex=True)
    low_share, high_share = f"{removed_low.mean():.0%}", f"{removed_high.mean():.0%}"
    panels = [
        (feats, "log filterbank", "magma", "log energy"),
        (m, m_label + ": small = matters", "viridis", m_label),
        (np.where(removed_low, np.nan, feats),
         f"the {low_share} lowest-{symbol} (most important) cells removed (cyan)", "magma", "log energy"),
        (np.where(removed_high, np.nan, feats),
         f"the {high_share} highest-{symbol} (least important) cells removed (cyan)", "magma", "log energy"),
    ]
    low, high = np.nanmin(feats), np.nanmax(feats)
    for ax, (values, name, cmap, unit) in zip(axes, panels):
        cmap = colormaps[cmap].with_extremes(bad="#00e5ff")
        limits = {"vmin": low, "vmax": high}
        if values is m:
            limits = dict(zip(("vmin", "vmax"), m_limits)) if m_limits else {}
        image = ax.imshow(values.T, origin="lower", aspect="auto", cmap=cmap, interpolation="nearest", **limits)
        ax.set(title=name, ylabel="mel bin")
        fig.colorbar(image, ax=ax, pad=0.01).set_label(unit, fontsize=8)
    axes[-1].set_xlabel("frame")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # whole frames, also for 1-3 frames
    fig.suptitle(figure.literal(title), fontsize=10)  # an utterance id holding '$'s
    return figure.save(fig, base)


def blurmask_deletion_curves(summaries: dict[str, dict], base: Path, title: str, symbol: str = "m") -> Path:
    r"""Mean normalised deletion curves (band: one standard deviation over utterances), one panel per
    baseline; ``summaries`` maps a baseline to :func:`flowaccent.blurmask.evaluate.summarise`'s output;
    ``symbol``: the mask's name (``m``, or ``sigma`` for a noise mask)."""
    names = [b for b, s in summaries.items() if "auc" in s]  # those with a defined curve
    width = max(4.8 * max(len(names), 1), 7.0)  # one panel: room for the title and the legend below it
    fig, axes = figure.subplots(1, max(len(names), 1), figsize=(width, 3.8), squeeze=False)
    if not names:
        axes[0][0].text(0.5, 0.5, "removing cells did not change the output of any utterance", ha="center",
                        va="center", wrap=True)
        axes[0][0].set(xticks=[], yticks=[])
    styles = {
        "low": ("#d62728", f"lowest {symbol} first"),
        "high": ("#1f5fbf", f"highest {symbol} first"),
        "random": ("#7f7f7f", "random"),
    }
    for ax, name in zip(axes[0], names):
        summary = summaries[name]
        fractions = 100 * np.asarray(summary["fractions"])
        for order, (colour, label) in styles.items():
            mean = np.asarray(summary["curves"][order]["mean"])
            std = np.asarray(summary["curves"][order]["std"])
            ax.plot(fractions, mean, color=colour, label=label)
            # a normalised change lies in [0, 1]: the band past it was no change any utterance had
            ax.fill_between(fractions, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1), color=colour, alpha=0.15,
                            linewidth=0)
        srg, auc = summary["srg"], summary["auc"]
        ax.set(
            title=f"baseline {name}: SRG {srg['mean']:.2f} ({srg['positive']}/{summary['num_defined']} > 0)\n"
                  f"AUC lowest {auc['low']['mean']:.2f}, highest {auc['high']['mean']:.2f}, "
                  f"random {auc['random']['mean']:.2f}",
            xlabel="cells removed (%)",
            ylabel="output change (normalised)",
            ylim=(-0.02, 1.05),
        )
    if names:  # below the panels: curves run through every corner of them
        handles, _ = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, [label for _, label in styles.values()], loc="lower center", ncol=3, fontsize=8,
                   title="order of removal (band: one standard deviation over utterances)", title_fontsize=8)
    if names and (undrawn := [b for b in summaries if b not in names]):  # dropped without a word on the figure
        title += (f"\n(no curve of baseline {', '.join(undrawn)}: no removal changed the output of any "
                  "utterance)")
    fig.suptitle(figure.literal(title), fontsize=10)  # an utterance id holding '$'s
    return figure.save(fig, base, rect=(0, 0.14 if names else 0, 1, 1))
