r"""Every figure of the toolkit (the only module that imports matplotlib).

Each function draws one figure and saves it as ``<base>.png`` and ``<base>.pdf``; it returns
the PNG path. Sets are coloured by accent: native blue, zh red, ja pink, others from a palette
(then evenly spread hues); an accent's sets, in name order, take its colour and then darker and
lighter shades of it (``dev_native`` the colour, ``test_native`` a darker blue), none near another
accent's colour, so no two sets share one and a set keeps its colour in every report. The
figures of one report take one mapping (``cols``), so a set keeps its colour in every figure.
Legends with many entries or long names go beside the axes, names shortened in the middle.
"""

from __future__ import annotations

import colorsys
import itertools
import json
from pathlib import Path

import numpy as np

from flowaccent.errors import ConfigError

ACCENT_COLOURS = {"native": "#1f5fbf", "zh": "#d62728", "ja": "#e377c2"}
PALETTE = ["#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f", "#bcbd22"]


def _subplots(*args, figsize: tuple[float, float], **kwargs):
    r"""``(figure, axes)`` as ``pyplot.subplots`` makes them, on a :class:`matplotlib.figure.Figure` of its own:
    no pyplot, so neither the caller's backend (a notebook's inline one) nor pyplot's open figures change."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


def _file(base: Path, suffix: str) -> Path:
    r"""``base`` with ``suffix`` added (not ``with_suffix``: an utterance id may hold a dot, ``utt.v1``)."""
    return base.parent / f"{base.name}{suffix}"


#: Mixes of an accent's colour for its 2nd, 3rd, ... set: > 0 towards black, < 0 towards white.
SHADES = (0.45, -0.45, 0.7, -0.7, 0.25, -0.25)


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
    from each of ``own``; where none is, the one whose nearest colour is farthest, each distance taken relative to its
    bound: a near copy of a colour drawn already only where nothing else is left."""
    free = [c for c in candidates if c not in used]
    others = [*others, "#ffffff"]  # the page: a shade near white hid a set's ticks and legend box
    rgb = np.array([_rgb(c) for c in free], dtype=float)
    bounds = [(others, 80.0), (own, 60.0)]
    closest = np.min([np.linalg.norm(rgb[:, None] - np.array([_rgb(c) for c in group], float)[None], axis=2).min(1)
                      / bound for group, bound in bounds if group], axis=0)  # (len(free),): 1 = at the bound
    far = np.flatnonzero(closest >= 1.0)
    return free[far[0] if len(far) else int(np.argmax(closest))]


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


def _fits_inside(entries: int, longest: int) -> bool:
    r"""Whether a legend of ``entries`` labels, the longest of ``longest`` characters, goes inside the axes."""
    return entries <= 6 and longest <= 40


def _legend(ax, inside: dict, entries: int, longest: int, **kwargs) -> None:
    r"""The legend inside the axes (``inside``: its placement) for a few short entries, else beside them."""
    if _fits_inside(entries, longest):
        ax.legend(fontsize=8, **inside, **kwargs)
        return
    ncol = 1 if entries <= 24 else 2
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, ncol=ncol, **kwargs)
    fig = ax.figure
    width, height = fig.get_size_inches()
    fig.set_size_inches(width + ncol * (0.9 + 0.055 * longest), max(height, 0.2 * entries / ncol + 1.2))


def _shade(colour: str, amount: float) -> str:
    r"""``#rrggbb`` mixed ``|amount|`` of the way to black (``amount > 0``) or to white (``< 0``)."""
    target = 0 if amount > 0 else 255
    return "#" + "".join(f"{round(c + abs(amount) * (target - c)):02x}" for c in _rgb(colour))


def _save(fig, base: Path) -> Path:
    base = Path(base)
    base.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(_file(base, ".png"), dpi=110, bbox_inches="tight")  # a legend beside the axes included
    fig.savefig(_file(base, ".pdf"), bbox_inches="tight")
    return _file(base, ".png")


def _scatter(
    points: dict[str, np.ndarray], base: Path, title: str, xlabel: str, ylabel: str, cols: dict[str, str] | None
) -> Path:
    fig, ax = _subplots(figsize=(6, 5))
    cols = cols or colours(list(points))
    short = short_names(points)
    labels = {name: f"{short[name]} ({len(xy)})" for name, xy in points.items()}
    for name in points:  # the legend's entries; the points go in one call, below
        ax.scatter([], [], s=4, alpha=0.5, color=cols[name], label=labels[name])
    xy = np.concatenate([np.asarray(v, float).reshape(-1, 2) for v in points.values()])
    colour = np.concatenate([[cols[name]] * len(v) for name, v in points.items()])
    order = np.random.default_rng(0).permutation(len(xy))  # interleaved: no set hidden under the one drawn last
    ax.scatter(xy[order, 0], xy[order, 1], s=4, alpha=0.5, c=colour[order])
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    _legend(ax, {}, len(points), max(map(len, labels.values())), markerscale=3)
    return _save(fig, base)


def _too_few(base: Path, title: str, what: str) -> Path:
    r"""A figure that says why it has no plot (``what``: too few latent frames, ...)."""
    fig, ax = _subplots(figsize=(6, 2))
    ax.text(0.5, 0.5, what, ha="center", va="center", wrap=True)
    ax.set(title=title, xticks=[], yticks=[])
    return _save(fig, base)


def _subsample(latents: dict[str, np.ndarray], per_set: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: v[rng.permutation(len(v))[:per_set]] for k, v in latents.items()}


def latents_first_dims(
    latents: dict[str, np.ndarray], base: Path, per_set: int = 3000, cols: dict[str, str] | None = None
) -> Path:
    r"""The first two latent dimensions per set (as the lab drew them)."""
    points = {k: v[:, :2] for k, v in _subsample(latents, per_set, 0).items()}
    title = f"Latents: first two dimensions ({per_set} frames per set at most)"
    return _scatter(points, base, title, "z[0]", "z[1]", cols)


#: Fewest latent frames (all sets together) drawn by PCA and by t-SNE; fewer: a figure saying so.
MIN_FRAMES = {"PCA": 3, "t-SNE": 10}


def _not_projectable(stacked: np.ndarray, method: str) -> str | None:
    r"""Why the frames ``stacked`` (N, D) cannot be projected by ``method`` (a key of :data:`MIN_FRAMES`), or
    None: too few, not all finite, or all one point (scikit-learn's t-SNE crashed the process on that: a
    segmentation fault, its PCA start divided by a zero spread; its PCA gave 'PC1 (nan%)')."""
    if len(stacked) < MIN_FRAMES[method]:
        return f"{len(stacked)} latent frame(s) in all: too few for {'a ' * (method == 'PCA')}{method}"
    bad = int((~np.isfinite(stacked).all(axis=1)).sum())
    if bad:
        return f"{bad} of {len(stacked)} latent frames are not finite (NaN or inf): no {method}"
    if not np.ptp(stacked, axis=0).any():
        return f"all {len(stacked)} latent frames are the same point: nothing for {'a ' * (method == 'PCA')}{method}"
    return None


def latents_pca(
    latents: dict[str, np.ndarray], base: Path, per_set: int = 3000, cols: dict[str, str] | None = None
) -> Path:
    r"""Latents projected on the two principal components of all sets together."""
    from sklearn.decomposition import PCA

    sample = _subsample(latents, per_set, 0)
    stacked = np.concatenate(list(sample.values()))
    title = f"Latents: PCA ({per_set} frames per set at most)"
    if why := _not_projectable(stacked, "PCA"):
        return _too_few(base, title, why)
    pca = PCA(2, random_state=0).fit(stacked)
    ratio = pca.explained_variance_ratio_
    points = {k: pca.transform(v) for k, v in sample.items()}
    return _scatter(points, base, title, f"PC1 ({ratio[0]:.1%})", f"PC2 ({ratio[1]:.1%})", cols)


def latents_tsne(
    latents: dict[str, np.ndarray], base: Path, per_set: int = 500, seed: int = 0, cols: dict[str, str] | None = None
) -> Path:
    r"""t-SNE (scikit-learn, fixed seed) of a subsample of each set's latents."""
    from sklearn.manifold import TSNE

    sample = _subsample(latents, per_set, seed)
    stacked = np.concatenate(list(sample.values()))
    title = f"Latents: t-SNE ({per_set} frames per set at most)"
    if why := _not_projectable(stacked, "t-SNE"):
        return _too_few(base, title, why)
    perplexity = float(min(30, max(2, (len(stacked) - 1) // 3)))
    title = f"Latents: t-SNE of frames ({per_set} per set at most;\nperplexity {perplexity:g}, PCA init, seed {seed})"
    embedded = TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(stacked)
    points, start = {}, 0
    for name, v in sample.items():
        points[name], start = embedded[start : start + len(v)], start + len(v)
    return _scatter(points, base, title, "t-SNE 1", "t-SNE 2", cols)


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
    finite = {n: np.isfinite(v) for n, v in values.items()}  # nan or inf: left out, and counted in the legend
    left_out = {n: f", {(~f).sum()} not finite left out" if not f.all() else "" for n, f in finite.items()}
    if weights is not None:
        weights = {n: np.asarray(weights[n], dtype=float)[finite[n]] for n in values}
    values = {n: v[finite[n]] for n, v in values.items()}
    fig, ax = _subplots(figsize=(6, 4))
    cols = cols or colours(list(values))
    short = short_names(values)
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
    top = ax.get_ylim()[1] * (1.35 if _fits_inside(len(values), longest) else 1.0)  # headroom for the legend
    row = 0.06 * top
    for i, (name, v) in enumerate(values.items()):
        ax.plot(v, np.full(len(v), -(i + 1) * row), "|", color=cols[name], markersize=6, alpha=0.8)
    ax.set_ylim(-(len(values) + 0.7) * row, top)
    density = [t for t in ax.get_yticks() if 0 <= t <= top]  # below 0: the rows of ticks, each named, no density
    said = ax.yaxis.get_major_formatter().format_ticks(density)
    ax.set_yticks(density + [-(i + 1) * row for i in range(len(values))], said + [short[n] for n in values])
    for label, name in zip(ax.get_yticklabels()[len(density):], values):
        label.set(color=cols[name], fontsize=6)
    ax.yaxis.set_label_coords(-0.12, (len(values) + 0.7 + top / row / 2) / (len(values) + 0.7 + top / row))
    ax.axhline(0, color="grey", linewidth=0.5)
    _legend(ax, {"loc": "upper left", "ncol": 2 if longest <= 30 else 1}, len(values), longest)
    return _save(fig, base)


def roc_curves(
    reference: np.ndarray,
    others: dict[str, np.ndarray],
    base: Path,
    score: str,
    ref_name: str,
    cols: dict[str, str] | None = None,
) -> Path:
    r"""ROC of telling each set from the reference set by an utterance score."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = _subplots(figsize=(5, 5))
    cols = cols or colours([ref_name, *others])  # the reference's colour stays its own, not the first other's
    labels, short = {}, short_names([ref_name, *others])
    for number, (name, v) in enumerate(others.items()):
        y = np.r_[np.ones(len(reference)), np.zeros(len(v))]
        s = np.r_[reference, v]
        fpr, tpr, _ = roc_curve(y, s)
        labels[name] = f"{short[name]}: AUC {roc_auc_score(y, s):.3f} (n={len(v)})"
        style = ("-", "--", "-.", ":")[number % 4]  # curves along one segment stay told apart
        ax.plot(fpr, tpr, style, color=cols[name], label=labels[name], linewidth=1.6)
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(
        title=f"Detection by {score}, against {short[ref_name]} (n={len(reference)})",
        xlabel="other set's utterances above threshold (false positive rate)",
        ylabel=f"{short[ref_name]} utterances above threshold (true positive rate)",
    )
    _legend(ax, {"loc": "lower right"}, len(others), max(map(len, labels.values()), default=0))
    return _save(fig, base)


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
    short = short_names(names)
    ncol = 2 if len(names) > 4 and max(map(len, short.values())) <= 16 else 1  # two columns fit under a panel
    rows = -(-len(names) // ncol)
    fig, axes = _subplots(1, len(scores), figsize=(4.6 * len(scores), 4 + 0.17 * rows), squeeze=False)
    cols = cols or colours(names)
    markers = {name: MARKERS[number % len(MARKERS)] for number, name in enumerate(names)}
    for ax, (score, by_set) in zip(axes[0], scores.items()):
        for name in names:
            r = correlations(by_set[name], ratings[name])["pearson"]
            said = f"{r:.2f}" if np.isfinite(r) else "-"
            ax.scatter(ratings[name], by_set[name], s=14, alpha=0.6, color=cols[name], marker=markers[name],
                       label=f"{short[name]} (n={len(ratings[name])}): r = {said}")
        ax.set(title=f"{score} against rating", xlabel="rating (utt2score, higher = more native-like)",
               ylabel=f"{score} (nats per frame)")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=ncol, borderaxespad=0,
                  frameon=False, markerscale=1.5, handletextpad=0.2, columnspacing=0.8)
    return _save(fig, base)


def training_curves(log: Path, base: Path) -> Path | None:
    r"""Train and validation NLL ("LogLL" in the lab's tables) over steps, from ``log/train.jsonl``.

    A last line cut short (a run killed while writing it) is left out; it broke the figure. A damaged line
    before it is a ConfigError naming it."""
    log = Path(log)
    if not log.exists():
        return None
    lines = [(n, line) for n, line in enumerate(log.read_bytes().decode(errors="replace").splitlines(), 1)
             if line.strip()]
    records = []
    for number, line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == lines[-1][0]:
                break
            raise ConfigError(f"{log}: line {number} is not a JSON record ({error})") from None
    records = [r for r in records if isinstance(r, dict) and isinstance(r.get("step"), int)]
    train = [(r["step"], r["nll"]) for r in records if r.get("event") == "train" and _number(r.get("nll"))]
    valid = [(r["step"], r["valid"]["nll"]) for r in records
             if r.get("event") == "epoch" and isinstance(r.get("valid"), dict) and _number(r["valid"].get("nll"))]
    if not train and not valid:
        return None
    fig, ax = _subplots(figsize=(6, 4))
    if train:
        ax.plot(*zip(*train), ".-", label="train", color="#1f5fbf")
    if valid:
        ax.plot(*zip(*valid), "o-", label="valid", color="#d62728")
    ax.set(title="Training: NLL per frame (the lab's 'LogLL')", xlabel="step", ylabel="NLL (nats/frame)")
    ax.legend()
    return _save(fig, base)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _save_atomic(fig, base: Path, rect: tuple[float, float, float, float] | None = None) -> Path:
    r"""Like :func:`_save`, each file written under a temporary name and renamed; ``rect``: the part of the
    figure the axes are laid out in (room for a legend below them)."""
    from flowaccent.data.atomic import atomic_path

    base = Path(base)
    base.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(rect=rect)
    for suffix, kwargs in ((".png", {"dpi": 110}), (".pdf", {})):
        with atomic_path(_file(base, suffix)) as tmp:
            fig.savefig(tmp, format=suffix[1:], bbox_inches="tight", **kwargs)  # nothing cut at the edges
    return _file(base, ".png")


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
    fig, axes = _subplots(4, 1, figsize=(9, 9), sharex=True)
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
    fig.suptitle(title, fontsize=10)
    return _save_atomic(fig, base)


def blurmask_deletion_curves(summaries: dict[str, dict], base: Path, title: str, symbol: str = "m") -> Path:
    r"""Mean normalised deletion curves (band: one standard deviation over utterances), one panel per
    baseline; ``summaries`` maps a baseline to :func:`flowaccent.blurmask.evaluate.summarise`'s output;
    ``symbol``: the mask's name (``m``, or ``sigma`` for a noise mask)."""
    names = [b for b, s in summaries.items() if "auc" in s]  # those with a defined curve
    width = max(4.2 * max(len(names), 1), 7.0)  # one panel: room for the title and the legend below it
    fig, axes = _subplots(1, max(len(names), 1), figsize=(width, 3.8), squeeze=False)
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
            ax.fill_between(fractions, mean - std, mean + std, color=colour, alpha=0.15, linewidth=0)
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
    fig.suptitle(title, fontsize=10)
    return _save_atomic(fig, base, rect=(0, 0.14 if names else 0, 1, 1))
