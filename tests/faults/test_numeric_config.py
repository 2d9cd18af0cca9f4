r"""Numerical and configuration faults: a clear message before (or instead of) any damage."""

from __future__ import annotations

import json
import shutil
import zlib

import numpy as np
import pytest
import torch

from flowaccent.cli.main import main
from flowaccent.errors import ConfigError, DataDirError
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
    # a text file ('KeyError: 101'), a plain pickle (torch's two warning lines first): one line each
    import pickle

    (tmp_path / "text.pt").write_text("epoch 3\n")
    (tmp_path / "pickled.pt").write_bytes(pickle.dumps({"a": 1}, protocol=4))
    for name in ("text.pt", "pickled.pt"):
        assert main(args + ["--checkpoint", str(tmp_path / name)]) == 1
        assert capsys.readouterr().err == (f"flowaccent score: error: {tmp_path / name}: not a readable checkpoint "
                                           "(not a torch file, or a damaged one)\n")
    from flowaccent.train import checkpoint

    def denied(path, *args, **kwargs):  # a good model that cannot be read (root reads a chmod 000 file)
        raise PermissionError(13, "Permission denied", str(path))

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(checkpoint.torch, "load", denied)
        with pytest.raises(ConfigError, match=r"text.pt: not a readable checkpoint \(PermissionError: \[Errno 13\] "
                                              r"Permission denied"):  # not 'not a torch file': a good model, deleted
            checkpoint.load_checkpoint(tmp_path / "text.pt")
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
    np.savez(tmp_path / "gmm.npz", means=np.zeros(3))  # said '[enforce fail at inline_container.cc:180] . file in...'
    for name, expected in [("module.pt", "not a flowaccent checkpoint (it holds Python objects"),
                           ("tensor.pt", "not a flowaccent checkpoint (it holds a Tensor, not a dict)"),
                           ("weights.pt", "weights.pt: not a flowaccent model (no pipeline, model_config, "
                                          "prior_config, class_names, state_dict)"),
                           ("empty.pt", "empty.pt: an empty file, not a checkpoint"),  # 'EOFError: '
                           ("gmm.npz", "a zip archive but not a torch file (numpy's .npz, such as score's "
                                       "baseline_gmm.npz?)"),
                           ("exp", "exp: a folder, not a checkpoint file (e.g. ")]:  # 'no such checkpoint'
        (tmp_path / "empty.pt").write_bytes(b"")
        assert main(args + ["--checkpoint", str(tmp_path / name)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{tmp_path / name}: " in err[0] and expected in err[0], err
    unfinished = tmp_path / "unfinished"  # a run still training (or stopped): no final.pt yet
    shutil.copytree(tmp_path / "exp", unfinished)
    (unfinished / "final.pt").unlink()
    assert main(["score", "--exp", str(unfinished), "--out", str(tmp_path / "s"), str(data), "--quiet"]) == 1
    best = unfinished / "checkpoints" / "best.pt"
    assert capsys.readouterr().err == (f"flowaccent score: error: {unfinished / 'final.pt'}: no such checkpoint: the "
                                       f"run has not finished ('flowaccent train --exp {unfinished} --resume' "
                                       f"finishes it), or give --checkpoint {best}\n")
    wrong = ["score", "--exp", str(tmp_path / "exp" / "final.pt"), "--out", str(tmp_path / "s"), str(data), "--quiet"]
    assert main(wrong) == 1  # said '.../final.pt/final.pt: no such checkpoint'
    assert capsys.readouterr().err == (f"flowaccent score: error: --exp {tmp_path / 'exp' / 'final.pt'} is a file; "
                                       f"give the experiment dir ({tmp_path / 'exp'})\n")
    (tmp_path / "notes.txt").write_text("")  # not a model's file: its folder is no experiment dir to suggest
    assert main(["score", "--exp", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "s"), str(data)]) == 1
    assert capsys.readouterr().err == (f"flowaccent score: error: --exp {tmp_path / 'notes.txt'} is a file; give the "
                                       "experiment dir\n")
    # a scores folder, a data dir or no folder as --exp: each said '<exp>/final.pt: no such checkpoint'
    scores = tmp_path / "scores"
    scores.mkdir()
    (scores / "summary.json").write_text(json.dumps({"model": {"exp": str(tmp_path / "exp")}}))
    for exp, said in ((scores, f"holds scores ('flowaccent score --out'), not a model; give the experiment dir they "
                               f"came from ({tmp_path / 'exp'}, its summary.json says)"),
                      (data, "is a data dir, not an experiment dir; give the dir 'flowaccent train --exp' wrote"),
                      (tmp_path / "none", "no such directory")):
        assert main(["score", "--exp", str(exp), "--out", str(tmp_path / "s"), str(data), "--quiet"]) == 1
        assert capsys.readouterr().err == f"flowaccent score: error: --exp {exp}{':' * (exp.name == 'none')} {said}\n"
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


def test_a_checkpoint_that_cannot_be_written_names_it(tmp_path):
    r"""No permission to write a checkpoint was torch's 39-line traceback ("enforce fail at inline_container.cc:
    747 ... Permission denied"): torch.save given a path turns every OS error into a RuntimeError. Now an OSError
    naming the checkpoint, which the commands print as one line; the cleanup's own error (here: the temporary
    name is a folder, as on a read-only file system unlink fails too) does not hide it."""
    import errno

    import flowaccent.train.checkpoint as checkpoint
    from flowaccent.data.atomic import temporary_name

    model = torch.nn.Linear(2, 2)
    model.to_checkpoint = lambda: {"state_dict": model.state_dict()}
    path = tmp_path / "last.pt"
    temporary_name(path).mkdir()
    with pytest.raises(OSError) as caught:
        checkpoint.save_checkpoint(path, model, None, checkpoint.Progress(), {})
    assert caught.value.errno == errno.EISDIR and caught.value.filename == str(path)
    assert not path.exists()


def test_no_permission_for_a_checkpoint_is_one_line(tmp_path):
    r"""The same in a folder without write permission, as a user meets it (as root: with the capability that
    passes over permissions dropped, by setpriv)."""
    import os
    import shutil
    import subprocess
    import sys

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    folder.chmod(0o555)
    code = ("import sys, torch; from flowaccent.cli.main import main; from flowaccent.train import checkpoint as c\n"
            "m = torch.nn.Linear(2, 2); m.to_checkpoint = lambda: {'state_dict': m.state_dict()}\n"
            "try:\n    c.save_checkpoint(c.Path(sys.argv[1]), m, None, c.Progress(), {})\n"
            "except OSError as e:\n    print(f'{e.filename}: {e.strerror}'); sys.exit(1)\n")
    command = [sys.executable, "-c", code, str(folder / "last.pt")]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root without setpriv: permissions do not apply")
        command = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", *command]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    finally:
        folder.chmod(0o755)
    assert result.returncode == 1, result.stderr
    assert result.stdout == f"{folder / 'last.pt'}: Permission denied\n" and "Traceback" not in result.stderr


def test_a_full_disk_under_the_training_log_names_it(tmp_path, monkeypatch, capsys):
    r"""A full disk met by the write of log/train.jsonl said only "error: No space left on device"."""
    import builtins

    from flowaccent.train import runner

    data = write_gaussian_dir(tmp_path / "d", np.zeros(4), np.eye(4), 40, 50, seed=0)
    real = builtins.open

    def full(path, mode="r", *args, **kwargs):  # the log's appends go to a full device
        return real("/dev/full" if str(path).endswith("train.jsonl") and mode == "a" else path, mode, *args, **kwargs)

    monkeypatch.setattr(runner, "open", full, raising=False)
    config = tmp_path / "c.yaml"
    config.write_text(small_config(epochs=1, log_every_steps=1, warmup_steps=1).to_yaml())  # one step, logged
    assert main(["train", "--config", str(config), "--exp", str(tmp_path / "e"), str(data), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err == f"flowaccent train: error: {tmp_path / 'e' / 'log' / 'train.jsonl'}: No space left on device\n"
