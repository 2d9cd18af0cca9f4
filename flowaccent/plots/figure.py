r"""What every figure shares: a figure of its own (no pyplot), set names shortened for legends, the legend inside
the axes or beside them, the PNG and PDF written whole, a figure that says why it has no plot, and arguments given per
set checked against each other."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np


def subplots(*args, figsize: tuple[float, float], **kwargs):
    r"""``(figure, axes)`` as ``pyplot.subplots`` makes them, on a :class:`matplotlib.figure.Figure` of its own:
    no pyplot, so neither the caller's backend (a notebook's inline one) nor pyplot's open figures change."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


def literal(text: str) -> str:
    r"""``text`` drawn as it is written: each ``$`` escaped, as matplotlib reads a text between two as mathtext (a
    phone ``$s$`` was drawn as an italic s)."""
    return text.replace("$", r"\$")


def file(base: Path, suffix: str) -> Path:
    r"""``base`` (a path or a string) with ``suffix`` added (not ``with_suffix``: an utterance id may hold a dot,
    ``utt.v1``, and a blur mask's figure is named by its utterance's)."""
    base = Path(base)
    return base.parent / f"{base.name}{suffix}"


def check_per_set(where: str, given: Mapping, what: str, values: Mapping, of: str) -> None:
    r"""A ``ValueError`` naming the set unless ``given`` (``what``: 'weights') holds an array of each set of
    ``values`` (``of``: 'values') of its shape: a KeyError, or numpy's broadcast error, named neither set nor
    argument."""
    for name, v in values.items():
        if name not in given:
            named = ", ".join(map(repr, given)) or "none"
            raise ValueError(f"{where}: no {what} for set {name!r} (given for: {named})")
        if np.shape(given[name]) != np.shape(v):
            raise ValueError(f"{where}: set {name!r}: {np.size(given[name])} {what} for {np.size(v)} {of} (one per "
                             f"utterance each)")


def short_name(name: str, width: int = 28) -> str:
    r"""``name`` shortened in the middle to at most ``width`` characters (``l2arctic_man…tition_v2``)."""
    if len(name) <= width:
        return name
    head = (width - 1) // 2
    return f"{name[:head]}…{name[len(name) - (width - 1 - head):]}"


def short_names(names, width: int = 28) -> dict[str, str]:
    r""":func:`short_name` of each name, widened where two would read the same (``…_male_test…`` and
    ``…_female_test…`` both shortened to ``l2arctic_mand…t_partition_v2``) until each is told apart."""
    names = list(dict.fromkeys(names))
    widths = dict.fromkeys(names, width)
    while True:
        short = {n: short_name(n, widths[n]) for n in names}
        seen: dict[str, list[str]] = {}
        for n, s in short.items():
            seen.setdefault(s, []).append(n)
        clashing = [n for group in seen.values() if len(group) > 1 for n in group if len(short[n]) < len(n)]
        if not clashing:
            return short
        for n in clashing:
            widths[n] += 4


def fits_inside(entries: int, longest: int) -> bool:
    r"""Whether a legend of ``entries`` labels, the longest of ``longest`` characters, goes inside the axes."""
    return entries <= 6 and longest <= 40


def legend(ax, inside: dict, entries: int, longest: int, **kwargs) -> None:
    r"""The legend inside the axes (``inside``: its placement) for a few short entries, else beside them."""
    if fits_inside(entries, longest):
        ax.legend(fontsize=8, **inside, **kwargs)
        return
    ncol = 1 if entries <= 24 else 2
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, ncol=ncol, **kwargs)
    fig = ax.figure
    width, height = fig.get_size_inches()
    fig.set_size_inches(width + ncol * (0.9 + 0.055 * longest), max(height, 0.2 * entries / ncol + 1.2))


def save(fig, base: Path, rect: tuple[float, float, float, float] | None = None) -> Path:
    r"""``<base>.png`` and ``<base>.pdf``, each written under a temporary name and renamed (an interrupted figure
    leaves no half-written file); returns the PNG's path. ``rect``: the part of the figure the axes are laid out
    in (room for a legend below them)."""
    from flowaccent.data.atomic import atomic_path

    base = Path(base)
    if base.is_dir():  # 'figs' wrote figs.png and figs.pdf beside the folder, not in it
        raise ValueError(f"{base}: a folder; a figure's base is a file name without its suffix, FOLDER/NAME for "
                         "FOLDER/NAME.png and .pdf")
    base.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(rect=rect)
    # no creation date in the PDF: a figure drawn again from the same numbers is the same file
    for suffix, kwargs in ((".png", {"dpi": 110}), (".pdf", {"metadata": {"CreationDate": None}})):
        with atomic_path(file(base, suffix)) as tmp:  # bbox tight: a legend beside the axes included, nothing cut
            try:
                fig.savefig(tmp, format=suffix[1:], bbox_inches="tight", **kwargs)
            except Exception as error:  # noqa: BLE001 - the disk's error, where matplotlib's cleanup hid it
                raise _os_error(error, file(base, suffix)) from None
    return file(base, ".png")


def _os_error(error: BaseException, path: Path) -> BaseException:
    r"""The ``OSError`` (a full disk) that ``error`` arose from, naming ``path``: matplotlib's PDF writer, closing
    its stream after the disk filled, raised an AttributeError of its own, and a 60-line traceback of both came
    out instead of one line. ``error`` itself where no OSError is in its chain."""
    seen = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return OSError(seen.errno, seen.strerror, str(path))
        seen = seen.__cause__ or seen.__context__
    return error


def too_few(base: Path, title: str, what: str) -> Path:
    r"""A figure that says why it has no plot (``what``: too few latent frames, ...)."""
    fig, ax = subplots(figsize=(6, 2))
    ax.text(0.5, 0.5, what, ha="center", va="center", wrap=True)
    ax.set(title=title, xticks=[], yticks=[])
    return save(fig, base)
