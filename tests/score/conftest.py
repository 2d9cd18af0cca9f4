r"""A tiny trained DNF flow and three scored sets, made once per test module; the t-SNE on a small sample."""

from __future__ import annotations

import numpy as np
import pytest

from flowaccent.data import write_table
from flowaccent.train.trainer import train

from ..train.conftest import small_config, write_gaussian_dir

#: The t-SNE's frames per set at most in these tests. At the default 500 its fits took 100 of test_report.py's 240 s
#: under a profiler (one thread; the file took 177 s without it, 88 s with this cap); the same code on fewer points.
#: A test that passes fewer (``--tsne-frames 7``) gets its own.
TSNE_CAP = 60


@pytest.fixture(autouse=True)
def small_tsne(monkeypatch):
    import functools

    from flowaccent import plots

    real = plots.latents_tsne

    @functools.wraps(real)
    def capped(latents, base, per_set=500, seed=0, cols=None, reuse=(), before_fit=None):
        return real(latents, base, per_set=min(per_set, TSNE_CAP), seed=seed, cols=cols, reuse=reuse,
                    before_fit=before_fit)

    monkeypatch.setattr(plots, "latents_tsne", capped)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    r"""``(root, exp)``: classes native (mean -1) and zh (mean +1) in 6-d; a 'ja' set (mean +2, rated, and its
    utt2accent says 'japanese')."""
    root = tmp_path_factory.mktemp("scoring")
    chol = np.eye(6)
    native = write_gaussian_dir(root / "native", np.full(6, -1.0), chol, 40, 40, seed=1, prefix="n")
    zh = write_gaussian_dir(root / "zh", np.full(6, 1.0), chol, 40, 40, seed=2, prefix="z")
    ja = write_gaussian_dir(root / "ja", np.full(6, 2.0), chol * 1.5, 30, 30, seed=3, prefix="j")
    rng = np.random.default_rng(0)
    write_table(ja / "utt2score", {u: f"{rng.uniform(1, 5):.2f}" for u in (ja / "utt2spk").read_text().split()[::2]})
    write_table(ja / "utt2accent", {u: "japanese" for u in (ja / "utt2spk").read_text().split()[::2]})
    config = small_config(epochs=3).with_overrides({"prior": {"cond_dim": 4}})
    train(config, root / "exp", [str(native), str(zh)], quiet=True)
    return root, root / "exp"


@pytest.fixture(scope="module")
def scored_dir_and_exp(trained):
    r"""Scores of the three sets by the command line: ``(scores_dir, exp)``."""
    from flowaccent.cli.main import main

    root, exp = trained
    out = root / "cli_scores"
    sets = [str(root / n) for n in ("native", "zh", "ja")]
    assert main(["score", "--exp", str(exp), "--out", str(out), *sets, "--baseline", "gmm", "--quiet"]) == 0
    return out, exp
