r"""A tiny trained model on 6-d features and a clean data dir to damage, once per module."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from flowaccent.train.trainer import train

from ..train.conftest import small_config, write_gaussian_dir


@pytest.fixture(scope="module")
def model_and_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    data = write_gaussian_dir(root / "clean", np.zeros(6), np.eye(6), 12, 20, seed=0)
    train(small_config(epochs=1, batch_size=64), root / "exp", [str(data)], quiet=True)
    return root / "exp", data


@pytest.fixture
def damaged(model_and_data, tmp_path):
    r"""A fresh copy of the clean data dir (with its own ark) to damage: ``(exp, copy)``."""
    exp, clean = model_and_data
    copy = tmp_path / "corpus"
    shutil.copytree(clean, copy)
    scp = (copy / "feats.scp").read_text().replace(str(clean), str(copy))
    (copy / "feats.scp").write_text(scp)
    return exp, copy
