r"""The figure of ``flowaccent phones``: each phone's relative LogLL in a set minus the reference set's, with its
95% interval, a column per phone and a colour per set."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from flowaccent.plots import figure
from flowaccent.plots.colours import colours_of
from flowaccent.words import counted


def phone_differences(
    differences: Mapping[str, Sequence], reference: str, base: Path, cols: dict[str, str] | None = None
) -> Path:
    r"""Points with error bars: for each set of ``differences`` (``{set: [Difference, ...]}``, each with
    ``phone``, ``relative`` and ``relative_interval``), each ranked phone's relative LogLL minus ``reference``'s.
    The phones run along the x axis by their lowest value in any set (the phones some set finds least like the
    reference's on the left); a line marks 0 (as in the reference)."""
    lowest: dict[str, float] = {}
    for found in differences.values():
        for d in found:
            lowest[d.phone] = min(lowest.get(d.phone, np.inf), d.relative)
    order = sorted(lowest, key=lambda phone: (lowest[phone], phone))
    if not order:
        return figure.too_few(base, "Relative LogLL by phone minus the reference's",
                              "no phone has enough frames in a set and in the reference")
    x = {phone: i for i, phone in enumerate(order)}
    longest = max(map(len, order))  # Kaldi's position-dependent phones (AH0_B): upright, they ran into each other
    upright = longest <= 3
    fig, ax = figure.subplots(figsize=(max(6.0, 1.5 + 0.24 * len(order)), 4.2 + (0 if upright else 0.08 * longest)))
    cols = colours_of([*differences, reference], cols, "phone_differences")
    short = figure.short_names([*differences, reference])
    width = 0.6 / max(1, len(differences))
    for k, (name, found) in enumerate(differences.items()):
        offset = (k - (len(differences) - 1) / 2) * width
        at = np.array([x[d.phone] + offset for d in found])
        values = np.array([d.relative for d in found])
        low, high = (np.array([d.relative_interval[i] for d in found]) for i in (0, 1))
        known = np.isfinite(low) & np.isfinite(high)
        errors = np.vstack([np.where(known, values - low, 0), np.where(known, high - values, 0)])
        ax.errorbar(at, values, yerr=errors, fmt="o", markersize=3.5, capsize=1.5, linewidth=0.9,
                    color=cols[name], label=_label(short[name], found))
    ax.axhline(0, color=cols[reference], linewidth=1, linestyle="--")
    ax.set_xticks(range(len(order)), list(map(figure.literal, order)), fontsize=8, rotation=0 if upright else 90)
    ax.set_xlim(-0.7, len(order) - 0.3)
    ax.set(title=f"Relative LogLL by phone minus {short[reference]}'s (95% intervals over speakers)",
           ylabel=f"relative LogLL minus {short[reference]}'s (nats/frame)", xlabel="phone")
    labels = [_label(short[n], f) for n, f in differences.items()]
    figure.legend(ax, {"loc": "lower right"}, len(labels), max(map(len, labels)))
    return figure.save(fig, base)


def _label(name: str, found: Sequence) -> str:
    r"""A set's legend entry: its name and how many phones it ranks."""
    return f"{name} ({counted(len(found), 'phone')})"
