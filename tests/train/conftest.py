r"""Fixtures for training tests: Kaldi data dirs of frames drawn from known Gaussians."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flowaccent.data import ArkWriter, write_spk2utt, write_table


def write_gaussian_dir(
    path: Path, mean: np.ndarray, chol: np.ndarray, utts: int, frames: int, seed: int, prefix: str = "s"
) -> Path:
    r"""A data dir (feats.scp, utt2num_frames, utt2spk, spk2utt) of frames ``mean + chol @ N(0, I)``."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    utt2spk = {}
    with ArkWriter(path / "feats.ark", path / "feats.scp") as writer:
        for i in range(utts):
            spk = f"{prefix}{i % 4}"
            utt = f"{spk}-{i:04d}"
            x = mean + rng.standard_normal((frames, len(mean))) @ chol.T
            writer.write(utt, x.astype(np.float32))
            utt2spk[utt] = spk
    # ArkWriter writes in the order given; Kaldi wants C-sorted tables.
    lines = (path / "feats.scp").read_text(encoding="utf-8").removesuffix("\n").split("\n")  # ids may hold U+2028
    write_table(path / "feats.scp", dict(line.split(" ", 1) for line in lines))
    write_table(path / "utt2spk", utt2spk)
    write_spk2utt(path / "spk2utt", utt2spk)
    write_table(path / "utt2num_frames", {u: frames for u in utt2spk})
    return path


def random_chol(dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q @ np.diag(rng.uniform(0.7, 2.5, dim))


@pytest.fixture
def gaussian_dir(tmp_path) -> tuple[Path, np.ndarray]:
    r"""200 utterances x 100 frames of an 8-d correlated Gaussian; returns (dir, covariance)."""
    chol = random_chol(8, 0)
    mean = np.linspace(-3, 3, 8)
    return write_gaussian_dir(tmp_path / "gauss", mean, chol, 200, 100, seed=1), chol @ chol.T


def small_config(**train):
    from flowaccent.features import FeaturePipelineConfig
    from flowaccent.flows.realnvp import ModelConfig
    from flowaccent.prior import PriorConfig
    from flowaccent.train.config import ExperimentConfig, TrainConfig

    base = dict(
        batch_size=1000,
        epochs=8,
        lr=3e-3,
        warmup_steps=5,
        valid_fraction=0.1,
        patience=0,
        buffer_frames=5000,
        checkpoint_every_steps=0,
        log_every_steps=10,
    )
    base.update(train)
    return ExperimentConfig(
        features=FeaturePipelineConfig(cmvn="none", deltas=0, splice=0, standardize=True),
        model=ModelConfig(num_blocks=4, hidden=32, num_layers=2),
        prior=PriorConfig(cond_dim=0),
        train=TrainConfig(**base),
    )
