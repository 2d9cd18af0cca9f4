r"""Each set's colour: one hue per accent (native blue, zh red, ja pink, others from a palette, then evenly
spread hues), an accent's further sets darker and lighter shades of it, none near another accent's colour."""

from __future__ import annotations

import colorsys
import itertools

import numpy as np

ACCENT_COLOURS = {"native": "#1f5fbf", "zh": "#d62728", "ja": "#e377c2"}
PALETTE = ["#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f", "#bcbd22"]

#: Mixes of an accent's colour for its 2nd, 3rd, ... set: > 0 towards black, < 0 towards white.
SHADES = (0.45, -0.45, 0.7, -0.7, 0.25, -0.25)


def colours_of(names, cols: dict[str, str] | None, where: str) -> dict[str, str]:
    r"""``cols`` where given, with a colour for each of ``names`` (else a ValueError naming the set and ``where``:
    a KeyError named neither), or :func:`colours` of ``names``."""
    if not cols:
        return colours(list(names))
    if missing := [name for name in names if name not in cols]:
        given = ", ".join(map(repr, cols))
        raise ValueError(f"{where}: cols has no colour for set {missing[0]!r} (given for: {given})")
    return cols


def colours(names: list[str], accents: dict[str, str | None] | None = None) -> dict[str, str]:
    r"""A distinct colour per set name, for any number of names, one hue per accent: a set's accent is
    ``accents[name]`` (its ``utt2accent``, see :func:`flowaccent.score.summary.set_accent`), else the
    accent word its name contains (``native``, ``zh``, ``ja``); an accent's first set in name order takes its
    colour (:data:`ACCENT_COLOURS`, or for another accent the first palette colour far from those taken) and its
    further sets shades of it, each at least 80 (RGB) from the other accents' colours and from those their sets
    took, and 60 from its own accent's sets'. Where no shade among the first 400 is that far (many sets of many
    accents), the shade farthest from all those (relative to 80 and 60) is taken, never a near copy of one. A
    set's colour does not depend on the order the sets are listed in; its shade depends on which other sets are
    drawn. Sets of no known accent take the palette, then evenly spread hues, each the first one 80 from every
    colour taken and from the accents' (or the farthest)."""
    accents = accents or {}
    out: dict[str, str] = {}
    spare = list(itertools.islice(_spare_colours(), 400))
    families = {a: list(itertools.islice(_shades(c), 400)) for a, c in ACCENT_COLOURS.items()}
    used: dict[str, str | None] = {}  # colour -> the accent that took it
    for name in sorted(names):  # in name order: a set keeps its colour whatever order the command listed it in
        words = name.lower().replace("-", "_").split("_")
        accent = (accents.get(name) or "").lower() or next((a for a in ACCENT_COLOURS if a in words), None)
        taken = [*ACCENT_COLOURS.values(), *used]
        if accent is not None and accent not in families:
            families[accent] = list(itertools.islice(_shades(_pick(spare, used, taken, [])), 400))
        if accent is None:
            colour = _pick(spare, used, taken, [])
        elif families[accent][0] not in used:  # the accent's own colour, for its first set
            colour = families[accent][0]
        else:  # a shade far from the other accents' colours (a light red is nearly ja's pink) and its own sets'
            others = [c for a, c in ACCENT_COLOURS.items() if a != accent] + [c for c, a in used.items() if a != accent]
            colour = _pick(families[accent], used, others, [c for c, a in used.items() if a == accent])
        out[name] = colour
        used[colour] = accent
    return {name: out[name] for name in names}


def _pick(candidates: list[str], used, others: list[str], own: list[str]) -> str:
    r"""The first of ``candidates`` (not in ``used``) at least 80 (RGB) from each of ``others`` and white and 60
    from each of ``own``; where none is, the one 80 from white whose nearest colour is farthest, each distance taken
    relative to its bound: a near copy of a colour drawn already only where nothing else is left, and never one near
    the page's white (40 sets took #f7d6ed, 45 from it, where the bounds were traded against each other)."""
    free = [c for c in candidates if c not in used]
    others = [*others, "#ffffff"]  # the page: a shade near white hid a set's ticks and legend box
    rgb = np.array([_rgb(c) for c in free], dtype=float)
    bounds = [(others, 80.0), (own, 60.0)]
    closest = np.min([np.linalg.norm(rgb[:, None] - np.array([_rgb(c) for c in group], float)[None], axis=2).min(1)
                      / bound for group, bound in bounds if group], axis=0)  # (len(free),): 1 = at the bound
    far = np.flatnonzero(closest >= 1.0)
    if len(far):
        return free[far[0]]
    on_white = np.linalg.norm(rgb - 255.0, axis=1) >= 80.0
    pool = np.flatnonzero(on_white) if on_white.any() else np.arange(len(free))
    return free[pool[int(np.argmax(closest[pool]))]]


#: The contrast a set's name, written in its colour, has on the page at least (WCAG's for text, 4.5:1).
TEXT_CONTRAST = 4.5


def readable(colour: str) -> str:
    r"""``colour`` (``#rrggbb``), or its first shade towards black whose contrast on white is at least
    :data:`TEXT_CONTRAST`: for a set's name written in its colour (a light shade's name, 6 pt at 1.6:1, was nearly
    invisible beside its row of ticks).

    Any colour matplotlib reads is taken (``"red"``, ``"C1"``, an RGB tuple: the figures' ``cols`` may hold them).

    Example:
        >>> readable("#1f5fbf"), readable("#bccfec")
        ('#1f5fbf', '#677282')
    """
    from matplotlib.colors import to_hex

    colour = to_hex(colour)
    for step in range(21):
        shade = _shade(colour, step / 20) if step else colour
        if 1.05 / (_luminance(shade) + 0.05) >= TEXT_CONTRAST:
            return shade
    return "#000000"


def _luminance(colour: str) -> float:
    r"""WCAG's relative luminance of ``#rrggbb``: 0 black, 1 white."""
    c = _rgb(colour) / 255.0
    linear = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(linear @ np.array([0.2126, 0.7152, 0.0722]))


def _rgb(colour: str) -> np.ndarray:
    r"""``#rrggbb`` as ``(3,)`` 0-255 values."""
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])


def _shades(colour: str):
    r"""The accent's colour, then :data:`SHADES` of it, then finer mixes towards black and white."""
    yield colour
    yield from (_shade(colour, a) for a in SHADES)
    for k in range(1, 1 << 20):  # van der Corput points in (0, 0.85) towards black, (0, 0.6) towards white
        amount, base, n = 0.0, 0.5, k
        while n:
            amount, n, base = amount + base * (n & 1), n >> 1, base / 2
        yield _shade(colour, 0.85 * amount)
        yield _shade(colour, -0.6 * amount)  # lighter ones hid on the page (#fbeaf5)


def _spare_colours():
    r""":data:`PALETTE`, then hues spread by the golden angle at three lightnesses."""
    yield from PALETTE
    for k in range(1 << 20):
        r, g, b = colorsys.hls_to_rgb((0.11 + 0.618034 * k) % 1.0, (0.35, 0.5, 0.65)[k % 3], 0.65)
        yield f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def _shade(colour: str, amount: float) -> str:
    r"""``#rrggbb`` mixed ``|amount|`` of the way to black (``amount > 0``) or to white (``< 0``)."""
    target = 0 if amount > 0 else 255
    return "#" + "".join(f"{round(c + abs(amount) * (target - c)):02x}" for c in _rgb(colour))
