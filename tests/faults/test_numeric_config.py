r"""Numerical and configuration faults: a clear message before (or instead of) any damage."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from flowaccent.cli.main import main
from flowaccent.errors import DataDirError
from flowaccent.features import FeaturePipeline, FeaturePipelineConfig
from flowaccent.flows.realnvp import ModelConfig
from flowaccent.model import FlowModel
from flowaccent.prior import PriorConfig
from flowaccent.train.trainer import train

from ..train.conftest import small_config, write_gaussian_dir


def test_a_class_with_no_training_frames(tmp_path):
    a = write_gaussian_dir(tmp_path / "a", np.zeros(4), np.eye(4), 20, 20, seed=0, prefix="a")
    prefix = next(p for p in (f"z{i}" for i in range(1000)) if zlib.crc32(f"{p}0-0000".encode()) % 10_000 < 5000)
    b = write_gaussian_dir(tmp_path / "b", np.ones(4), np.eye(4), 1, 20, seed=1, prefix=prefix)
    config = small_config(valid_fraction=0.5, epochs=1).with_overrides({"prior": {"cond_dim": 4}})
    with pytest.raises(DataDirError, match="class 'b' has no training frames"):
        train(config, tmp_path / "exp", [str(a), str(b)], quiet=True)
    assert not (tmp_path / "exp" / "checkpoints").exists()


def test_an_exploding_coupling_scale_stays_finite():
    pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="none", deltas=0, standardize=False), 6)
    model = FlowModel(pipeline, ModelConfig(num_blocks=3, hidden=8, norm="none"), PriorConfig(), ("a",))
    with torch.no_grad():
        for p in model.transform.parameters():
            p.fill_(1e6)
    out = model(torch.randn(5, 6) * 100)
    assert torch.isfinite(out.log_det).all() and out.log_det.abs().max() <= 3 * 2.0 * 3 + 1e-3  # 3 blocks x clamp 2


def test_corrupt_and_mismatched_checkpoints(tmp_path, capsys):
    data = write_gaussian_dir(tmp_path / "d", np.zeros(6), np.eye(6), 6, 20, seed=0)
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    args = ["score", "--exp", str(tmp_path), "--out", str(tmp_path / "s"), str(data), "--quiet"]
    assert main(args + ["--checkpoint", str(tmp_path / "garbage.pt")]) == 1
    assert "garbage.pt: not a readable checkpoint" in capsys.readouterr().err
    train(small_config(epochs=1), tmp_path / "exp", [str(data)], quiet=True)
    state = torch.load(tmp_path / "exp" / "final.pt", weights_only=False)
    state["model"]["model_config"]["hidden"] = 64  # a config the weights were not trained with
    torch.save(state, tmp_path / "edited.pt")
    assert main(args + ["--checkpoint", str(tmp_path / "edited.pt")]) == 1
    assert "checkpoint does not match its config" in capsys.readouterr().err
    assert main(args + ["--checkpoint", str(tmp_path / "missing.pt")]) == 1
    assert "missing.pt: no such checkpoint" in capsys.readouterr().err
    # other tools' files: a pickled module (its code is not run: weights_only), a tensor, a bare state_dict
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    torch.save(state["model"]["state_dict"], tmp_path / "weights.pt")
    for name, expected in [("module.pt", "not a flowaccent checkpoint (it holds Python objects"),
                           ("tensor.pt", "not a flowaccent checkpoint (it holds a Tensor, not a dict)"),
                           ("weights.pt", "weights.pt: checkpoint does not match its config: 'pipeline'")]:
        assert main(args + ["--checkpoint", str(tmp_path / name)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{tmp_path / name}: " in err[0] and expected in err[0], err
    assert not (tmp_path / "s").exists()


def test_a_full_disk_while_saving_a_checkpoint_says_so(tmp_path, monkeypatch):
    r"""torch.save on a full disk raised only "unexpected pos 64 vs 0"; the command now says No space left."""
    import collections
    import errno

    import flowaccent.train.checkpoint as checkpoint

    model = torch.nn.Linear(2, 2)
    model.to_checkpoint = lambda: {"state_dict": model.state_dict()}

    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(checkpoint.torch, "save", full)
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda path: usage(100, 100, 0))
    with pytest.raises(OSError) as caught:
        checkpoint.save_checkpoint(tmp_path / "last.pt", model, None, checkpoint.Progress(), {})
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "last.pt")
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda path: usage(1 << 40, 0, 1 << 40))
    with pytest.raises(RuntimeError, match="unexpected pos"):  # not a full disk: torch's own error
        checkpoint.save_checkpoint(tmp_path / "last.pt", model, None, checkpoint.Progress(), {})
    assert not list(tmp_path.iterdir())
