r"""Figures of the latents: their first two dimensions, PCA and t-SNE of a sample of each set's frames."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from flowaccent.plots import figure
from flowaccent.plots.colours import colours_of, readable
from flowaccent.plots.scores import MARKERS
from flowaccent.words import counted

#: Each set's ellipse in the latent scatters, one line style per set in turn (its mean's marker: :data:`MARKERS`):
#: the points' colours alone told the sets apart, and a dense cloud hid where each lay.
LINESTYLES = ("-", "--", ":", "-.")

#: The ellipse holds this share of a 2-D Gaussian of a set's mean and covariance: radius sqrt(-2 ln(1 - share)).
ELLIPSE_SHARE = 0.9


def ellipse(xy: np.ndarray, share: float = ELLIPSE_SHARE, points: int = 121) -> tuple[np.ndarray, np.ndarray] | None:
    r"""``(mean (2,), curve (points, 2))``: the mean of ``xy``'s ``(N, 2)`` finite points and the closed curve holding
    ``share`` of a Gaussian of their mean and covariance (its Mahalanobis radius ``sqrt(-2 ln(1 - share))``), or
    None for fewer than 3 finite points."""
    xy = np.asarray(xy, float).reshape(-1, 2)
    xy = xy[np.isfinite(xy).all(axis=1)]
    if len(xy) < 3:
        return None
    values, vectors = np.linalg.eigh(np.cov(xy.T))
    angle = np.linspace(0, 2 * np.pi, points)
    circle = np.stack([np.cos(angle), np.sin(angle)], axis=1) * np.sqrt(-2 * np.log1p(-share))
    return xy.mean(axis=0), xy.mean(axis=0) + (circle * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def _scatter(
    points: dict[str, np.ndarray], base: Path, title: str, xlabel: str, ylabel: str, cols: dict[str, str] | None,
    ellipses: bool = True, where: str = "latents",
) -> Path:
    r"""Each set's points in its colour, interleaved; over them (``ellipses``) each set's mean (a marker of its own)
    and the ellipse holding 90% of a Gaussian of its mean and covariance (a line style of its own), on a white edge:
    not in a t-SNE, whose distances and spreads mean nothing (its ellipses were one disc, all sets')."""
    from matplotlib import patheffects

    fig, ax = figure.subplots(figsize=(6, 5))
    cols = colours_of(points, cols, where)
    short = figure.short_names(points)
    labels = {name: f"{short[name]} ({len(xy)})" for name, xy in points.items()}
    xy = np.concatenate([np.asarray(v, float).reshape(-1, 2) for v in points.values()])
    colour = np.concatenate([[cols[name]] * len(v) for name, v in points.items()])
    order = np.random.default_rng(0).permutation(len(xy))  # interleaved: no set hidden under the one drawn last
    ax.scatter(xy[order, 0], xy[order, 1], s=4, alpha=0.5, c=colour[order])
    edge = [patheffects.withStroke(linewidth=3.5, foreground="white")]
    for number, (name, v) in enumerate(points.items()):
        if not ellipses:
            ax.scatter([], [], s=4, alpha=0.5, color=cols[name], label=labels[name])  # the legend's entry
            continue
        line = readable(cols[name])
        marker, style = MARKERS[number % len(MARKERS)], LINESTYLES[number % len(LINESTYLES)]
        if (drawn := ellipse(v)) is not None:
            mean, curve = drawn
            ax.plot(curve[:, 0], curve[:, 1], color=line, linestyle=style, linewidth=1.5, path_effects=edge)
            ax.plot(*mean, marker=marker, markersize=8, color=cols[name], markeredgecolor="white",
                    markeredgewidth=1.2)
        ax.plot([], [], color=line, linestyle=style, marker=marker, markersize=6, markerfacecolor=cols[name],
                markeredgecolor="white", label=labels[name])  # the legend's entry
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    figure.legend(ax, {}, len(points), max(map(len, labels.values())), **(
        {"handlelength": 3} if ellipses else {"markerscale": 3}))
    return figure.save(fig, base)


def _checked(latents: dict[str, np.ndarray], where: str, least: int = 1) -> dict[str, np.ndarray]:
    r"""``latents`` as ``{set: (N, D) float array}`` (lists and CPU tensors taken), every set of one ``D >=
    least``; else a ValueError naming the set (a 1-D array, a set of another dimension: numpy's errors named
    neither, and the first two dimensions drew 120-d and 40-d latents on one pair of axes)."""
    if not latents:
        raise ValueError(f"{where}: no set of latents given")
    arrays = {name: np.asarray(z, dtype=float) for name, z in latents.items()}
    if bad := next((name for name, z in arrays.items() if z.ndim != 2 or z.shape[1] < least), None):
        # (N, 1) was drawn as pairs of consecutive frames under the labels z[0], z[1]
        raise ValueError(f"{where}: latents (N, D) with D >= {least}, got {arrays[bad].shape} for {bad!r}")
    dims = {name: z.shape[1] for name, z in arrays.items()}
    if len(set(dims.values())) > 1:
        raise ValueError(f"{where}: every set's latents of one dimension, got "
                         + ", ".join(f"{d} for {name!r}" for name, d in dims.items()))
    return arrays


def _subsample(latents: dict[str, np.ndarray], per_set: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: v[rng.permutation(len(v))[:per_set]] for k, v in latents.items()}


def latents_first_dims(
    latents: dict[str, np.ndarray], base: Path, per_set: int = 3000, cols: dict[str, str] | None = None
) -> Path:
    r"""The first two latent dimensions per set (as the lab drew them); latents ``(N, D)``, ``D >= 2``."""
    latents = _checked(latents, "latents_first_dims", least=2)
    points = {k: v[:, :2] for k, v in _subsample(latents, per_set, 0).items()}
    title = f"Latents: first two dimensions ({counted(per_set, 'frame')} per set at most)"
    return _scatter(points, base, title, "z[0]", "z[1]", cols, where="latents_first_dims")


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
    if stacked.shape[1] < 2:  # scikit-learn's 'n_components=2 must be between 0 and min(n_samples, n_features)=1'
        return f"latents of {stacked.shape[1]} dimension(s): nothing to project onto two"
    return None


def latents_pca(
    latents: dict[str, np.ndarray], base: Path, per_set: int = 3000, cols: dict[str, str] | None = None
) -> Path:
    r"""Latents projected on the two principal components of all sets together."""
    from sklearn.decomposition import PCA

    sample = _subsample(_checked(latents, "latents_pca"), per_set, 0)
    stacked = np.concatenate(list(sample.values()))
    title = f"Latents: PCA ({counted(per_set, 'frame')} per set at most)"
    if why := _not_projectable(stacked, "PCA"):
        return figure.too_few(base, title, why)
    pca = PCA(2, random_state=0).fit(stacked)
    ratio = pca.explained_variance_ratio_
    points = {k: pca.transform(v) if len(v) else np.empty((0, 2)) for k, v in sample.items()}  # a set of no frames
    return _scatter(points, base, title, f"PC1 ({ratio[0]:.1%})", f"PC2 ({ratio[1]:.1%})", cols, where="latents_pca")


def latents_tsne(
    latents: dict[str, np.ndarray], base: Path, per_set: int = 500, seed: int = 0, cols: dict[str, str] | None = None,
    reuse: Sequence[Path] = (),
    before_fit: Callable[[int], None] | None = None,
) -> Path:
    r"""t-SNE (scikit-learn, fixed seed) of a subsample of each set's latents; the points drawn go to
    ``<base>.npz`` too (:func:`tsne_points`). ``reuse``: such files of earlier runs; the first of the same frames
    and settings has its points drawn again (a report after ``plot``: the t-SNE is most of its time). ``before_fit``:
    called with the number of frames before a t-SNE is fitted (not where one is drawn again)."""
    sample = _subsample(_checked(latents, "latents_tsne"), per_set, seed)
    stacked = np.concatenate(list(sample.values()))
    title = f"Latents: t-SNE ({counted(per_set, 'frame')} per set at most)"
    if why := _not_projectable(stacked, "t-SNE"):  # an earlier run's points go: tsne_points returned them as these
        figure.file(base, ".npz").unlink(missing_ok=True)
        return figure.too_few(base, title, why)
    perplexity = float(min(30, max(2, (len(stacked) - 1) // 3)))
    title = f"Latents: t-SNE of frames ({per_set} per set at most;\nperplexity {perplexity:g}, PCA init, seed {seed})"
    key = _tsne_key(sample, perplexity, seed)
    embedded = next((e for path in reuse if (e := _earlier_tsne(path, key, len(stacked))) is not None), None)
    if embedded is None:
        from sklearn.manifold import TSNE

        if before_fit is not None:
            before_fit(len(stacked))

        embedded = TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(stacked)
    points, start = {}, 0
    for name, v in sample.items():
        points[name], start = embedded[start : start + len(v)], start + len(v)
    from flowaccent.data.atomic import atomic_path

    Path(base).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(figure.file(base, ".npz")) as tmp, open(tmp, "wb") as f:
        np.savez(f, key=np.array(key), names=np.array(list(points)), sizes=np.array([len(v) for v in points.values()]),
                 points=embedded)
    return _scatter(points, base, title, "t-SNE 1", "t-SNE 2", cols, ellipses=False, where="latents_tsne")


def tsne_points(path: Path) -> dict[str, np.ndarray]:
    r"""The points a t-SNE figure drew (its ``.npz``): ``{set: (n, 2)}``, the frames a random sample of the set's
    latent frames. A file that is missing, damaged or not such a figure's is a :class:`ConfigError` naming it (numpy's
    and zipfile's errors named neither the file nor what it should be)."""
    import zipfile

    from flowaccent.errors import ConfigError

    try:
        with np.load(path, allow_pickle=False) as saved:
            names, sizes, points = saved["names"], saved["sizes"], saved["points"]
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (the .npz beside a t-SNE figure of 'flowaccent plot')") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise ConfigError(f"{path}: not the points of a t-SNE figure of 'flowaccent plot' ({error})") from None
    bounds = np.cumsum([0, *sizes])
    if len(names) != len(sizes) or bounds[-1] != len(points) or points.ndim != 2 or points.shape[1] != 2:
        raise ConfigError(f"{path}: damaged: {len(names)} set names, {len(sizes)} sizes summing to {bounds[-1]}, "
                          f"points of shape {points.shape}")
    return {str(name): points[a:b] for name, a, b in zip(names, bounds[:-1], bounds[1:])}


def _tsne_key(sample: dict[str, np.ndarray], perplexity: float, seed: int) -> str:
    r"""What a t-SNE's points depend on: the frames of each set, in order, and the settings (scikit-learn's
    version too: its optimiser has changed between versions)."""
    import hashlib

    import sklearn

    digest = hashlib.sha256(f"{sklearn.__version__} {perplexity!r} {seed} pca".encode())
    for name, frames in sample.items():
        frames = np.ascontiguousarray(frames)
        digest.update(f"\n{name} {frames.dtype.str} {frames.shape}\n".encode())
        digest.update(frames.tobytes())
    return digest.hexdigest()


def _earlier_tsne(path: Path, key: str, count: int) -> np.ndarray | None:
    r"""The ``(count, 2)`` points of an earlier t-SNE's ``.npz`` at ``path`` made with ``key``; None where there is
    none, it is of other frames or settings, or it does not read."""
    import zipfile

    if not Path(path).is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            if str(saved["key"]) != key:
                return None
            points = saved["points"]  # float32 as t-SNE gave them: as float64 the .npz drawn again was twice the size
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # damaged, or not ours: drawn anew
        return None
    floating = np.issubdtype(points.dtype, np.floating)
    return points if floating and points.shape == (count, 2) and np.isfinite(points).all() else None
