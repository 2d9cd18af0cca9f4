r"""Training: reaches a known Gaussian's entropy, stops on NaN, refuses bad configs early."""

from __future__ import annotations

import json
import math
import re
import shutil

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from flowaccent.cli.main import main
from flowaccent.errors import ConfigError
from flowaccent.prior import PriorConfig
from flowaccent.train.checkpoint import TrainingError, load_checkpoint, load_model
from flowaccent.train.trainer import parameter_digest, train

from .conftest import small_config, write_gaussian_dir


def test_reaches_the_true_entropy_of_a_gaussian(gaussian_dir, tmp_path):
    path, cov = gaussian_dir
    entropy = 0.5 * np.linalg.slogdet(2 * math.pi * math.e * cov)[1]
    summary = train(small_config(), tmp_path / "exp", [str(path)], quiet=True)
    print(f"held-out NLL {summary.best_valid_nll:.3f} vs true entropy {entropy:.3f} nats/frame")
    assert abs(summary.best_valid_nll - entropy) / entropy < 0.03
    model = load_model(tmp_path / "exp" / "final.pt")
    assert model.class_names == ("gauss",)
    records = [json.loads(line) for line in (tmp_path / "exp" / "log" / "train.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == list(range(1, 9))
    times = [r["time"] for r in records]
    assert times == sorted(times) and all(t > 1.7e9 for t in times)
    assert (tmp_path / "exp" / "config.yaml").exists() and list((tmp_path / "exp" / "tensorboard").iterdir())


def test_dimensions_constant_in_every_frame_train(tmp_path):
    r"""Four of 6 dims constant (as fbank's empty mel bins of upsampled audio are) stopped training at step 1 with
    a nan loss, whatever the normalisation of the features: ActNorm's start took the log of their spread, 0. Their
    spread then floored at 1e-5, the couplings' shifts put into them were magnified 1e5 times: a valid NLL of 7.1e13
    nats/frame on 40-d features of 5 constant dims, 129.7 without them; -223.0 here. Centred and not scaled: 7.2
    here, near the two other dims' entropy (3.53 nats) after two epochs of a small flow."""
    chol = np.diag([1.0, 0.0, 2.0, 0.0, 0.0, 0.0])
    data = write_gaussian_dir(tmp_path / "const", np.full(6, -15.94), chol, 40, 50, seed=0)
    summary = train(small_config(epochs=2), tmp_path / "exp", [str(data)], quiet=True)
    assert -10 < summary.best_valid_nll < 20, summary.best_valid_nll


def test_a_split_that_holds_every_utterance_out_says_how_to_train(gaussian_dir, tmp_path):
    r"""A one-utterance training set was refused without saying that --train.valid-fraction 0 trains on it."""
    from flowaccent.errors import DataDirError

    path, _ = gaussian_dir
    with pytest.raises(DataDirError, match=r"no training utterances left after the validation split \(train."
                                           r"valid_fraction=0.9999, valid_by utterance\); give more utterances, or "
                                           r"--train.valid-fraction 0 to hold none out"):
        train(small_config(epochs=1, valid_fraction=0.9999), tmp_path / "exp", [str(path)], quiet=True)


def test_a_batch_larger_than_the_training_frames_is_noted(gaussian_dir, tmp_path, capsys):
    r"""``--train.batch-size 1e12`` trained one step an epoch of all the frames, without a word."""
    path, _ = gaussian_dir
    summary = train(small_config(epochs=1, batch_size=10**12), tmp_path / "exp", [str(path)], quiet=True)
    assert summary.global_step == 1
    assert re.search(r"train: note: train.batch_size 1000000000000 is more than the \d+ training frames: each epoch "
                     r"is one step of all of them\n", capsys.readouterr().err)


def test_each_epochs_validation_is_said_beside_the_bar(gaussian_dir, tmp_path, capsys):
    r"""The held-out NLL of each epoch was in log/train.jsonl and TensorBoard only: the console showed a bar."""
    import re

    path, _ = gaussian_dir
    summary = train(small_config(epochs=2, max_steps_per_epoch=2), tmp_path / "exp", [str(path)], quiet=False)
    lines = re.findall(r"train: epoch (\d)/2: valid NLL (\S+) \(best (\S+), epoch (\d)\), \d+ s\n",
                       capsys.readouterr().err)
    assert [(e, b) for e, _, _, b in lines] in ([("1", "1"), ("2", "2")], [("1", "1"), ("2", "1")])
    assert float(lines[-1][2]) == pytest.approx(summary.best_valid_nll, abs=1e-3)
    train(small_config(epochs=1, max_steps_per_epoch=2), tmp_path / "quiet", [str(path)], quiet=True)
    assert "train: epoch" not in capsys.readouterr().err


def test_gradient_filter_trains(gaussian_dir, tmp_path, monkeypatch):
    r"""With the filter in every backward pass, training closes most of the gap between an untrained flow (ActNorm's
    start: the diagonal Gaussian, 15.62 nats here) and the entropy (14.80). The bound was 10% of the entropy, which
    the diagonal Gaussian meets (5.6%): a run at lr 1e-12 passed it (5.9%). The filter trains to 2.3-2.5%: it damps
    the frames of large gradients, the tails' (fp32 without it: 0.5%)."""
    from flowaccent.nn.gradient_filter import _GradientFilterFunction

    path, cov = gaussian_dir
    entropy = 0.5 * np.linalg.slogdet(2 * math.pi * math.e * cov)[1]
    diagonal = 0.5 * np.log(2 * math.pi * math.e * np.diag(cov)).sum()
    filtered, backward = [], _GradientFilterFunction.backward
    monkeypatch.setattr(_GradientFilterFunction, "backward",
                        staticmethod(lambda ctx, *grads: filtered.append(1) or backward(ctx, *grads)))
    config = small_config(epochs=3, gradient_filter=True, gradient_filter_threshold=3.0)
    summary = train(config, tmp_path / "exp", [str(path)], quiet=True)
    assert filtered and summary.best_valid_nll < diagonal - 0.4 * (diagonal - entropy), (
        len(filtered), summary.best_valid_nll, diagonal, entropy)


def test_early_stop_best_model_steps_and_lr_follow_the_validation_nll(gaussian_dir, tmp_path, monkeypatch, capsys):
    r"""With held-out NLLs scripted epoch by epoch (5, 4, 4.5, 3, 3.5, 3.6, ...) and patience 2: the run stops after
    epoch 6 (two epochs without a better NLL since epoch 4; a worse epoch between two better ones does not count),
    ``final.pt`` is epoch 4's model (best.pt, not last.pt), each epoch takes ``max_steps_per_epoch`` steps, and the
    exponential schedule's rate is ``lr * lr_decay ** epoch`` (epoch from 0). Off by one in the patience, a count
    not reset by a better epoch, ``final.pt`` from the last epoch, steps not cut and the decay's exponent off by
    one each passed every test before."""
    from flowaccent.train.runner import Runner

    scripted = iter([5.0, 4.0, 4.5, 3.0, 3.5, 3.6, 3.7, 3.8, 3.9, 4.0])
    monkeypatch.setattr(Runner, "_validate", lambda self, stream: {"nll": next(scripted), "log_p": 0.0,
                                                                     "log_det": 0.0, "frames": 1})
    config = small_config(epochs=10, patience=2, max_steps_per_epoch=2, lr_schedule="exponential", lr_decay=0.5,
                          warmup_steps=0, log_every_steps=1)
    summary = train(config, tmp_path / "exp", [str(gaussian_dir[0])], quiet=True)
    records = [json.loads(line) for line in (tmp_path / "exp" / "log" / "train.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == [1, 2, 3, 4, 5, 6]
    assert [(r["epoch"], r["best_epoch"]) for r in records if r["event"] == "early_stop"] == [(6, 4)]
    assert summary.epochs_run == 6 and summary.global_step == 12 and summary.best_valid_nll == 3.0
    assert summary.stopped_early_at_best == 4
    steps = [r for r in records if r["event"] == "train"]
    assert [r["step"] for r in steps] == list(range(1, 13))
    assert [r["lr"] for r in steps] == pytest.approx([3e-3 * 0.5 ** ((r["step"] - 1) // 2) for r in steps])
    checkpoints = tmp_path / "exp" / "checkpoints"
    digests = {name: parameter_digest(load_model(path)) for name, path in
               (("final", tmp_path / "exp" / "final.pt"), ("best", checkpoints / "best.pt"),
                ("last", checkpoints / "last.pt"))}
    assert digests["final"] == digests["best"] != digests["last"]
    assert load_checkpoint(checkpoints / "best.pt")["progress"]["epoch"] == 4
    capsys.readouterr()  # the summary line says it stopped early (said only in train.jsonl before)
    assert main(["train", "--exp", str(tmp_path / "exp"), "--resume", str(gaussian_dir[0]), "--quiet"]) == 0
    assert (f"train: {tmp_path / 'exp'}: 6 epochs (stopped early, of 10: no better valid NLL in the 2 epoch(s) after "
            f"epoch 4, --train.patience), 12 steps (resumed at step 12), best valid NLL 3.000"
            ) in capsys.readouterr().err


def test_dnf_classes_from_two_dirs_separate(tmp_path):
    chol = np.eye(4)
    a = write_gaussian_dir(tmp_path / "a", np.full(4, -2.0), chol, 40, 50, seed=1, prefix="a")
    b = write_gaussian_dir(tmp_path / "b", np.full(4, 2.0), chol, 40, 50, seed=2, prefix="b")
    config = small_config(epochs=4)
    config = config.with_overrides({"prior": {"cond_dim": 4}})
    train(config, tmp_path / "exp", [f"native={a}", f"zh={b}"], quiet=True)
    model = load_model(tmp_path / "exp" / "final.pt")
    assert model.class_names == ("native", "zh")
    with torch.no_grad():
        post = model.prior.class_posterior_log(model(torch.full((3, 4), -2.0)).z).exp()
    assert (post[:, 0] > 0.9).all()


def test_classes_a_prior_of_cond_dim_0_ignores_are_said_to_be(tmp_path, capsys):
    r"""Two classes with prior.cond_dim 0 trained a plain flow without a word, and score wrote an llr column of
    zeros as if it meant something."""
    chol = np.eye(4)
    a = write_gaussian_dir(tmp_path / "a", np.full(4, -2.0), chol, 20, 30, seed=1, prefix="a")
    b = write_gaussian_dir(tmp_path / "b", np.full(4, 2.0), chol, 20, 30, seed=2, prefix="b")
    train(small_config(epochs=1), tmp_path / "exp", [f"native={a}", f"zh={b}"], quiet=True)
    assert ("train: warning: 2 classes (native, zh) but prior.cond_dim 0: the prior ignores them (a plain flow; its "
            "llr is 0 for every frame); give prior.cond_dim > 0 for a DNF") in capsys.readouterr().err
    assert main(["score", "--exp", str(tmp_path / "exp"), "--out", str(tmp_path / "s"), str(b), "--quiet"]) == 0
    assert (f"score: warning: the model's prior ignores its classes (prior.cond_dim 0, {tmp_path / 'exp'}/config.yaml)"
            ": its llr is 0 for every frame") in capsys.readouterr().err
    # one class: nothing to say (valid_fraction 0: of 20 utterances, 0.1 holds none out, which is warned of)
    train(small_config(epochs=1, valid_fraction=0), tmp_path / "one", [str(a)], quiet=True)
    assert "warning" not in capsys.readouterr().err
    dnf = small_config(epochs=1, valid_fraction=0).replace(prior=PriorConfig(cond_dim=2))  # the reverse: unsaid
    train(dnf, tmp_path / "dnf", [f"native={a}"], quiet=True)
    assert capsys.readouterr().err.startswith(
        "train: warning: prior.cond_dim 2 but one class (native): the class-conditional prior has one mean to learn "
        "(no llr between classes); give each class its data as NAME=DATA_DIR (native=DIR zh=DIR) for a DNF, or "
        "prior.cond_dim 0 for a plain flow\n")


def test_a_dir_given_twice_is_refused_and_doubtful_pools_are_named(tmp_path, capsys):
    from flowaccent.train.classes import data_warnings, load_classes

    chol = np.eye(2)
    a = write_gaussian_dir(tmp_path / "a", np.zeros(2), chol, 8, 5, seed=1, prefix="a")
    (tmp_path / "alias").symlink_to(a)  # the same dir by another path
    with pytest.raises(ConfigError, match=rf"^data dir {tmp_path}/alias is given twice \(as 'native' and 'zh'\)"):
        train(small_config(), tmp_path / "exp", [f"native={a}", f"zh={tmp_path}/alias"], quiet=True)
    with pytest.raises(ConfigError, match="is given twice; its utterances would be trained on twice"):
        load_classes([(None, a), (None, a)], need_cmvn=False)
    assert not (tmp_path / "exp").exists()
    # two corpora's "train" dirs: one class by their folder name (legal, named); a copy shares its ids
    one = write_gaussian_dir(tmp_path / "c1" / "train", np.zeros(2), chol, 8, 5, seed=2, prefix="a")
    two = write_gaussian_dir(tmp_path / "c2" / "train", np.ones(2), chol, 8, 5, seed=3, prefix="b")
    specs = [(None, one), (None, two), (None, a)]
    dirs, names, _ = load_classes(specs, need_cmvn=False)
    assert names == ("train", "a")
    lines = data_warnings(specs, dirs)
    assert lines == [
        f"train: warning: data dirs {one} and {a} share 8 utterance id(s) (a copy of the same data?)",
        f"train: warning: class 'train' pools 2 data dirs named only by their folder ({one}, {two}); give each "
        "NAME=DATA_DIR to keep them apart",
    ]
    # named explicitly, a pool is meant: no warning
    named = [("native", one), ("native", two)]
    assert data_warnings(named, load_classes(named, need_cmvn=False)[0]) == []
    assert main(["train", "--exp", str(tmp_path / "exp2"), str(one), str(two), "--train.epochs", "1",
                 "--model.num-blocks", "1", "--model.hidden", "4", "--features.cmvn", "none", "--quiet"]) == 0
    assert "class 'train' pools 2 data dirs" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [7, 8])  # 8: the step before a checkpoint (the loss is read one step late)
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(gaussian_dir, tmp_path, monkeypatch, bad):
    from flowaccent.model import FlowModel, FlowOutput

    path, _ = gaussian_dir
    forward = FlowModel.forward
    calls = {"n": 0}

    def poisoned(self, x, *args):
        out = forward(self, x, *args)
        if self.training:
            calls["n"] += 1
            if calls["n"] == bad:
                return FlowOutput(out.z, out.log_p * float("nan"), out.log_det)
        return out

    monkeypatch.setattr(FlowModel, "forward", poisoned)
    config = small_config(epochs=3, checkpoint_every_steps=2)
    with pytest.raises(TrainingError, match=rf"non-finite loss \(nan\) at step {bad} \(epoch 1, batch {bad}\)"):
        train(config, tmp_path / "exp", [str(path)], quiet=True)
    state = load_checkpoint(tmp_path / "exp" / "checkpoints" / "last.pt")
    assert state["progress"]["global_step"] == 6
    assert all(torch.isfinite(v).all() for v in state["model"]["state_dict"].values() if v.is_floating_point())


def test_config_errors_before_any_work(gaussian_dir, tmp_path, capsys):
    path, _ = gaussian_dir
    (tmp_path / "bad.yaml").write_text("train:\n  lr: 0.01\n  epoch: 3\n")
    assert main(["train", "--config", str(tmp_path / "bad.yaml"), "--exp", str(tmp_path / "e"), str(path)]) == 1
    assert "bad.yaml: train: unknown key(s) epoch" in capsys.readouterr().err  # not "bad.yaml.train", a file name
    (tmp_path / "bad.yaml").write_text("model:\n  hidden: wide\n")
    assert main(["train", "--config", str(tmp_path / "bad.yaml"), "--exp", str(tmp_path / "e"), str(path)]) == 1
    assert "model.hidden: expected an integer" in capsys.readouterr().err
    args = ["train", "--exp", str(tmp_path / "e"), "--check", "--features.cmvn", "none", "--features.deltas", "1",
            "--features.splice", "2", "--model.num-blocks", "2", "--model.hidden", "16", str(path)]
    assert main(args) == 0  # the dim and the size were said nowhere
    assert capsys.readouterr().err.startswith("train: 80-d frames (8-d stored features, deltas to order 1 and 5 frames "
                                              "spliced), 4,896 parameters, 1 class(es) (gauss), prior.cond_dim 0\n")
    assert main([*args[:-1], "--features.splice", "50", str(path)]) == 0  # 101 frames' context, utterances of 100
    assert capsys.readouterr().err.startswith("train: warning: 200 of 200 utterance(s) shorter than the feature "
                                              "pipeline's context of 105 frames (deltas and splicing; e.g. 's")
    (tmp_path / "bad.yaml").write_text("train:\n  lr: .nan\n")  # out of range: the file was not named
    assert main(["train", "--config", str(tmp_path / "bad.yaml"), "--exp", str(tmp_path / "e"), str(path)]) == 1
    assert f"error: {tmp_path / 'bad.yaml'}: train: lr must be a finite number, got nan" in capsys.readouterr().err
    args = ["train", "--exp", str(tmp_path / "e"), str(path), "--features.cmvn", "none", "--prior.cond-dim", "99"]
    assert main(args) == 1
    assert "cond_dim 99 is larger than the input dim 24" in capsys.readouterr().err  # deltas on by default
    assert not (tmp_path / "e" / "checkpoints").exists()


def test_existing_run_needs_resume_and_the_same_config(gaussian_dir, tmp_path):
    path, _ = gaussian_dir
    train(small_config(epochs=1), tmp_path / "exp", [str(path)], quiet=True)
    with pytest.raises(ConfigError, match="holds a training run already; pass --resume"):
        train(small_config(epochs=1), tmp_path / "exp", [str(path)], quiet=True)
    with pytest.raises(ConfigError, match="config differs from the run being resumed"):
        train(small_config(epochs=1, lr=0.5), tmp_path / "exp", [str(path)], resume=True, quiet=True)
    # a change the model cannot be built with (cond_dim over the input dim) is named as a change first
    dim = load_model(tmp_path / "exp" / "final.pt").dim
    with pytest.raises(ConfigError, match="config differs from the run being resumed: prior.cond_dim: 0 there"):
        train(small_config(epochs=1).with_overrides({"prior": {"cond_dim": dim + 1}}), tmp_path / "exp", [str(path)],
              resume=True, quiet=True)


def test_a_class_with_whitespace_an_empty_exp_and_nothing_to_resume_are_refused(gaussian_dir, tmp_path, capsys,
                                                                                 monkeypatch):
    r"""'a b=DIR' trained, and score then read classes.txt's 'a b' as two classes ('not the model config.yaml
    describes'); --exp "$UNSET" trained into the current folder, over its config.yaml and data.txt; --resume of an
    --exp with no run (a typo) started the default 10 x 512 run from nothing."""
    path, _ = gaussian_dir
    with pytest.raises(ConfigError, match=r"class 'a b' \(its NAME\) holds whitespace"):
        train(small_config(epochs=1), tmp_path / "e1", [f"a b={path}"], quiet=True)
    spaced = tmp_path / "my data"
    shutil.copytree(path, spaced)
    with pytest.raises(ConfigError, match=r"class 'my data' \(its folder's name\) holds whitespace"):
        train(small_config(epochs=1), tmp_path / "e1", [str(spaced)], quiet=True)
    assert not (tmp_path / "e1").exists()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("# my notes\n")
    assert main(["train", "--exp", "", str(path)]) == 2
    assert capsys.readouterr().err == ("flowaccent train: error: --exp is empty (an unset shell variable?) (usage: "
                                       "flowaccent train --help)\n")
    assert (tmp_path / "config.yaml").read_text() == "# my notes\n" and not (tmp_path / "checkpoints").exists()
    assert main(["train", "--exp", str(tmp_path / "typo"), "--resume", str(path), "--quiet"]) == 1
    assert capsys.readouterr().err.endswith(f"holds no run to resume (neither {tmp_path / 'typo' / 'config.yaml'} nor "
                                            f"{tmp_path / 'typo' / 'checkpoints' / 'last.pt'} nor a finished run's "
                                            "final.pt); give the --exp of the "
                                            "run, or --config to start one there\n")
    assert not (tmp_path / "typo").exists()
    (tmp_path / "afile").write_text("")  # --exp a file: mkdir's 'File exists' said nothing of what was wrong
    assert main(["train", "--exp", str(tmp_path / "afile"), str(path), "--quiet"]) == 1
    assert capsys.readouterr().err == (f"flowaccent train: error: {tmp_path / 'afile'} is a file, not a folder; give "
                                       "the command a folder of its own\n")
    assert main(["train", "--exp", str(tmp_path / "afile"), "--resume", "--quiet"]) == 1  # --exp DIR/final.pt, say
    assert capsys.readouterr().err == (f"flowaccent train: error: --exp {tmp_path / 'afile'} is a file; give the run's "
                                       f"experiment dir ({tmp_path}?)\n")
    before = sorted(p.name for p in path.iterdir())  # --exp the data dir: the run went in among its tables (exit 0)
    for check in ([], ["--check"]):
        assert main(["train", "--exp", str(path), str(path), "--quiet", *check]) == 1
        assert capsys.readouterr().err == (f"flowaccent train: error: --exp {path} is a Kaldi data dir; give the run a "
                                           "folder of its own (exp/NAME)\n")
    assert sorted(p.name for p in path.iterdir()) == before


def test_a_config_yaml_no_run_wrote_is_not_overwritten(gaussian_dir, tmp_path, capsys):
    r"""A config edited in EXP_DIR and then not given with --config was overwritten by the run's own (the defaults),
    the edits lost. It is refused unless it is the --config, says the same, or a run wrote it (data.txt beside)."""
    path, _ = gaussian_dir
    exp = tmp_path / "exp"
    exp.mkdir()
    mine = small_config(epochs=1, lr=1e-3).to_yaml() + "# my edits\n"
    (exp / "config.yaml").write_text(mine)
    with pytest.raises(ConfigError, match=r"config.yaml: a config no run wrote, which a new run would overwrite with "
                       r"its own \(train.lr: 0.001 there, 0.003 in this run\); give --config .*config.yaml to train"):
        train(small_config(epochs=1), exp, [str(path)], quiet=True, check=True)
    (exp / "config.yaml").write_text("# notes\n- 1\n")
    with pytest.raises(ConfigError, match=r"overwrite with its own \(not a valid config\)"):
        train(small_config(epochs=1), exp, [str(path)], quiet=True)
    assert (exp / "config.yaml").read_text() == "# notes\n- 1\n" and not (exp / "checkpoints").exists()
    (exp / "config.yaml").write_text(mine)  # the --config itself, with an override: the run's record of it
    assert main(["train", "--config", str(exp / "config.yaml"), "--exp", str(exp), str(path), "--quiet",
                 "--train.lr", "0.002"]) == 0
    assert "lr: 0.002" in (exp / "config.yaml").read_text()
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.yaml").write_text(small_config(epochs=1).to_yaml() + "# the same config\n")
    assert train(small_config(epochs=1), other, [str(path)], quiet=True).epochs_run == 1
    crashed = tmp_path / "crashed"  # a run that wrote its files and stopped before its first checkpoint
    crashed.mkdir()
    (crashed / "config.yaml").write_text(mine)
    (crashed / "data.txt").write_text(f"{path}\n")
    assert train(small_config(epochs=1), crashed, [str(path)], quiet=True).epochs_run == 1


def test_resume_needs_the_same_classes_and_data_dirs(gaussian_dir, tmp_path):
    r"""A resume with a class dropped or renamed, or another data dir, is refused before any work (the model's
    classes are fixed; an exact resume replays the same frames), and classes.txt and data.txt stay as they were."""
    path, _ = gaussian_dir
    exp = tmp_path / "exp"
    train(small_config(epochs=1), exp, [f"a={path}"], quiet=True)
    other = tmp_path / "copy"
    shutil.copytree(path, other)
    before = [(exp / name).read_text() for name in ("classes.txt", "data.txt")]
    with pytest.raises(ConfigError, match="the classes differ from the run being resumed: a there, b given"):
        train(small_config(epochs=1), exp, [f"b={path}"], resume=True, quiet=True)
    with pytest.raises(ConfigError, match=r"the data dirs differ .*edit .*data.txt"):
        train(small_config(epochs=1), exp, [f"a={other}"], resume=True, quiet=True)
    assert [(exp / name).read_text() for name in ("classes.txt", "data.txt")] == before
    same = path.parent / ".." / path.parent.name / path.name  # the same dir, spelled another way: fine
    assert train(small_config(epochs=1), exp, [f"a={same}"], resume=True, quiet=True).epochs_run == 1
    # the same classes in another order: said so (the message read as if they were other classes)
    two = tmp_path / "two"
    train(small_config(epochs=1, max_steps_per_epoch=1), two, [f"a={path}", f"b={other}"], quiet=True)
    with pytest.raises(ConfigError, match=r"differ from the run being resumed: a, b there, b, a given \(the same, in "
                                          r"another order: give the dirs in the order the run began with"):
        train(small_config(epochs=1, max_steps_per_epoch=1), two, [f"b={other}", f"a={path}"], resume=True,
              quiet=True)


def test_an_epoch_takes_full_batches_only_and_logs_the_rate_it_used(gaussian_dir, tmp_path):
    r"""A last batch of one frame made BatchNorm's loss NaN (its variance over the batch) and stopped the run: the
    frames past the last full batch wait for the next epoch. The logged ``lr`` is the one the step used (it was the
    next step's: 0.0012 logged for a warm-up step at 0.0006)."""
    from flowaccent.data.datadir import load_data_dir
    from flowaccent.train.frames import held_out

    path, _ = gaussian_dir
    frames = sum(100 for u in load_data_dir(path).utts if not held_out(u, 0.1))  # 100 frames per utterance
    config = small_config(epochs=1, batch_size=frames - 1, warmup_steps=5, log_every_steps=1)
    summary = train(config.with_overrides({"model": {"norm": "batchnorm"}}), tmp_path / "exp", [str(path)],
                    quiet=True)
    assert summary.global_step == 1 and math.isfinite(summary.best_valid_nll)
    records = [json.loads(line) for line in (tmp_path / "exp" / "log" / "train.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in records if r["event"] == "train"] == [pytest.approx(3e-3 / 5)]


def test_resume_refuses_data_changed_under_the_same_dirs(gaussian_dir, tmp_path):
    r"""A new split or new features written into the training dirs (the same paths) are refused on ``--resume``,
    naming what changed (they were replayed as if they were the frames the run began with); the same data moved,
    its feats.scp rewritten to the new place and data.txt edited, resumes."""
    from flowaccent.data import subset_data_dir
    from flowaccent.data.datadir import load_data_dir

    path, _ = gaussian_dir
    exp, moved = tmp_path / "exp", tmp_path / "moved"
    train(small_config(epochs=1), exp, [str(path)], quiet=True)
    shutil.copytree(path, moved)
    scp = moved / "feats.scp"
    scp.write_text(scp.read_text().replace(str(path), str(moved)))
    (exp / "data.txt").write_text(f"gauss={moved}\n")
    assert train(small_config(epochs=1), exp, [f"gauss={moved}"], resume=True, quiet=True).epochs_run == 1
    with open(moved / "feats.ark", "ab") as ark:  # features written again under the old archive's name
        ark.write(b"\0")
    with pytest.raises(ConfigError, match=r"the training data changed since the run began \(.*moved: arks\)"):
        train(small_config(epochs=1), exp, [f"gauss={moved}"], resume=True, quiet=True)
    shutil.rmtree(moved)  # a new split of the same utterances
    subset_data_dir(path, moved, load_data_dir(path).utts[:150])
    with pytest.raises(ConfigError, match=r"moved: feats.scp, utt2spk\): an exact resume replays the frames it "
                                          r"began with; train afresh in another --exp, or remove this one"):
        train(small_config(epochs=1), exp, [f"gauss={moved}"], resume=True, quiet=True)


@pytest.mark.parametrize("option, value", [("warmup_steps", -3), ("grad_clip", -1), ("lr_decay", -1), ("lr_decay", 0),
                                           ("weight_decay", -1), ("log_every_steps", 0), ("patience", -1),
                                           ("max_steps_per_epoch", -1), ("checkpoint_every_steps", -1),
                                           ("gradient_filter_threshold", 0), ("buffer_frames", 0)])
def test_out_of_range_training_options_are_config_errors(option, value):
    r"""Values that would train the wrong way without a word (a negative warm-up, decay or clipping norm flips the
    step) or fail deep inside (a zero logging interval) are refused when the config is read."""
    with pytest.raises(ConfigError, match=f"train: {option} must be >=? [01], got {value}"):
        small_config(**{option: value})


def test_a_logging_interval_past_the_runs_steps_is_said(gaussian_dir, tmp_path, capsys):
    r"""A run of fewer steps than train.log_every_steps wrote no train record (no curves, an empty TensorBoard)
    without a word."""
    path, _ = gaussian_dir
    train(small_config(epochs=1, log_every_steps=1000, max_steps_per_epoch=3, warmup_steps=3), tmp_path / "e",
          [str(path)], quiet=True)
    assert capsys.readouterr().err == ("train: note: train.log_every_steps 1000 is more than the run's 3 steps: no "
                                       "train records (nor curves) will be written; give a smaller log_every_steps\n")
    records = [json.loads(line) for line in (tmp_path / "e" / "log" / "train.jsonl").read_text().splitlines()]
    assert not [r for r in records if r.get("event") == "train"]
    train(small_config(epochs=1, log_every_steps=3, max_steps_per_epoch=3, warmup_steps=3), tmp_path / "f",
          [str(path)], quiet=True)
    assert capsys.readouterr().err == ""
    assert '"event": "train"' in (tmp_path / "f" / "log" / "train.jsonl").read_text()


def test_a_warm_up_past_the_runs_steps_is_said(gaussian_dir, tmp_path, capsys):
    r"""A run of fewer steps than train.warmup_steps never reached train.lr (its learning rate rose all along)
    without a word."""
    path, _ = gaussian_dir
    train(small_config(epochs=2, log_every_steps=1, max_steps_per_epoch=3, warmup_steps=10), tmp_path / "e",
          [str(path)], quiet=True)
    assert capsys.readouterr().err == ("train: note: train.warmup_steps 10 is more than the run's 6 steps: the "
                                       "learning rate stays below train.lr 0.003 throughout (at most 60% of it); give "
                                       "a smaller warmup_steps\n")
    lrs = [r["lr"] for r in map(json.loads, (tmp_path / "e" / "log" / "train.jsonl").read_text().splitlines())
           if r.get("event") == "train"]
    assert len(lrs) == 6 and max(lrs) < 0.003
    train(small_config(epochs=2, log_every_steps=1, max_steps_per_epoch=3, warmup_steps=6), tmp_path / "f",
          [str(path)], quiet=True)
    assert capsys.readouterr().err == ""
    for warmup, share in ((10**5, "under 0.1%"), (600, "1%"), (7, "85.7%")):  # not '0%', nor 86% rounded up
        train(small_config(epochs=2, max_steps_per_epoch=3, warmup_steps=warmup), tmp_path / f"w{warmup}",
              [str(path)], quiet=True)
        assert f"(at most {share} of it)" in capsys.readouterr().err, warmup


def test_dirs_of_other_dims_are_named_before_any_work(tmp_path, capsys):
    r"""40-d and 13-d dirs failed on the first 13-d batch with 'dim 13, expected 40', naming neither dir."""
    a = write_gaussian_dir(tmp_path / "a", np.zeros(4), np.eye(4), 4, 10, seed=1, prefix="a")
    b = write_gaussian_dir(tmp_path / "b", np.zeros(3), np.eye(3), 4, 10, seed=2, prefix="b")
    assert main(["train", "--exp", str(tmp_path / "e"), "--features.cmvn", "none", f"x={a}", f"y={b}"]) == 1
    assert capsys.readouterr().err == (f"flowaccent train: error: the features of {b} are 3-d, those of {a} 4-d: one "
                                       "model takes features of one kind (compute them with the same options)\n")
    assert not (tmp_path / "e").exists()


def test_a_decay_that_grows_the_learning_rate_is_refused():
    with pytest.raises(ConfigError, match=r"train: lr_decay must be <= 1 \(a factor per epoch: above 1 the learning "
                                          r"rate grows\), got 1.5"):
        small_config(lr_decay=1.5)
    assert small_config(lr_decay=1.0).train.lr_decay == 1.0


def test_resume_adds_epochs_from_the_runs_own_config(gaussian_dir, tmp_path, capsys):
    r"""``--resume`` without ``--config`` reads EXP_DIR/config.yaml; ``--train.epochs`` may grow a finished run (and
    only it may change); a refusal names each field with both values."""
    path, _ = gaussian_dir
    conf, exp = tmp_path / "conf.yaml", tmp_path / "exp"
    conf.write_text(small_config(epochs=1, lr_schedule="cosine").to_yaml())
    base = ["train", "--exp", str(exp), str(path), "--quiet"]
    assert main([*base, "--config", str(conf)]) == 0
    capsys.readouterr()
    assert main([*base, "--resume", "--train.epochs", "2"]) == 0  # no --config: the run's own
    err = capsys.readouterr().err
    assert "train: resuming with train.epochs: 1 there, 2 given (the cosine schedule follows the new count" in err
    assert "2 epochs" in err
    records = [json.loads(line) for line in (exp / "log" / "train.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == [1, 2]
    assert load_checkpoint(exp / "checkpoints" / "last.pt")["config"]["train"]["epochs"] == 2
    assert "epochs: 2" in (exp / "config.yaml").read_text()
    assert main([*base, "--resume"]) == 0  # the run's config now says 2: a finished run, nothing to do
    assert "train.epochs" not in capsys.readouterr().err
    assert main([*base, "--resume", "--train.epochs", "3", "--train.lr", "0.5", "--model.hidden", "8"]) == 1
    assert ("the config differs from the run being resumed: model.hidden: 32 there, 8 given; train.lr: 0.003 there, "
            f"0.5 given (read from {exp / 'config.yaml'} and the command's options; of the config, only "
            "train.checkpoint_every_steps, train.device, train.epochs, train.log_every_steps, train.precision, "
            f"train.prefetch may change on --resume; to train with it, train afresh in another --exp, or remove {exp} "
            "first)") in capsys.readouterr().err
    assert main([*base, "--resume", "--train.epochs", "2"]) == 0  # as it was: nothing to do
    own = (exp / "config.yaml").read_text()
    (exp / "config.yaml").write_text(own.replace("lr: 0.003", "lr: 0.004"))  # edited: said to come from there
    assert main([*base, "--resume"]) == 1
    assert f"train.lr: 0.003 there, 0.004 given (read from {exp / 'config.yaml'} and the command's options;" in \
        capsys.readouterr().err
    (exp / "config.yaml").write_text(own)
    assert main([*base, "--resume", "--train.epochs", "1"]) == 1  # fewer than trained: the files would disagree
    assert "--train.epochs 1 on --resume: the run has trained 2 epoch(s) already; give more, or leave it as it " \
           "was (2)" in capsys.readouterr().err
    (exp / "config.yaml").unlink()  # gone: the config the checkpoint keeps, not the defaults
    assert main([*base, "--resume", "--train.prefetch", "0", "--train.device", "cpu"]) == 0
    # no DATA_DIR: --resume takes those of data.txt; a new run needs them
    assert main(["train", "--exp", str(exp), "--resume", "--quiet", "--train.epochs", "3"]) == 0
    assert [json.loads(line)["epoch"] for line in (exp / "log" / "train.jsonl").read_text().splitlines()
            if json.loads(line)["event"] == "epoch"] == [1, 2, 3]
    assert main(["train", "--exp", str(tmp_path / "new"), "--quiet"]) == 1
    assert "flowaccent train: error: give one or more DATA_DIR (NAME=DATA_DIR)" in capsys.readouterr().err


def test_a_run_from_before_an_option_existed_resumes(gaussian_dir, tmp_path):
    r"""A checkpoint written before ``train.precision`` existed (no such key in its config) resumes
    with the option's default, which is what that run did; another value is refused."""
    path, _ = gaussian_dir
    train(small_config(epochs=1), tmp_path / "exp", [str(path)], quiet=True)
    last = tmp_path / "exp" / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=False)
    del state["config"]["train"]["precision"]
    torch.save(state, last)
    summary = train(small_config(epochs=1), tmp_path / "exp", [str(path)], resume=True, quiet=True)
    assert summary.epochs_run == 1
    with pytest.raises(ConfigError, match=r"config differs from the run being resumed: train.lr: 0.003 there, "
                                          r"0.01 given \(of the config, only train.checkpoint_every_steps, "):
        train(small_config(epochs=1, lr=0.01), tmp_path / "exp", [str(path)], resume=True, quiet=True)


def test_a_run_trained_in_tf32_on_a_gpu_goes_on_on_a_cpu_in_fp32(gaussian_dir, tmp_path):
    r"""``--train.device cpu`` of a tf32 run was refused ('tf32 is a CUDA matmul mode; on cpu use fp32 or bf16'),
    and so was the advised --train.precision fp32 (precision could not change on --resume)."""
    import yaml

    path, _ = gaussian_dir
    train(small_config(epochs=1), tmp_path / "exp", [str(path)], quiet=True)
    last = tmp_path / "exp" / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=False)
    state["config"]["train"].update(device="cuda", precision="tf32")  # as a GPU run's
    torch.save(state, last)
    stored = yaml.safe_load((tmp_path / "exp" / "config.yaml").read_text())
    stored["train"].update(device="cuda", precision="tf32")
    (tmp_path / "exp" / "config.yaml").write_text(yaml.safe_dump(stored))
    summary = train(small_config(epochs=2), tmp_path / "exp", [str(path)], resume=True, quiet=True)
    assert summary.epochs_run == 2


def test_bf16_trains_and_tf32_needs_cuda(gaussian_dir, tmp_path, capsys, monkeypatch):
    r"""``train.precision=bf16`` (conditioner matmuls in bfloat16) still reaches the entropy (within float32's 3%;
    both reach 0.5%, and a flow that learns nothing, the diagonal Gaussian, 5.6%); the weights it saves are float32;
    on a CPU without bf16 units it says bf16 is emulated. tf32 on a CPU is refused before any work."""
    path, cov = gaussian_dir
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    entropy = 0.5 * np.linalg.slogdet(2 * math.pi * math.e * cov)[1]
    summary = train(small_config(precision="bf16"), tmp_path / "exp", [str(path)], quiet=True)
    emulated = "train: precision bf16 is emulated on this CPU (no AMX or AVX512-BF16) and slower than fp32"
    assert capsys.readouterr().err.count(emulated) == 1
    with capsys.disabled():
        print(f"bf16: held-out NLL {summary.best_valid_nll:.3f} vs true entropy {entropy:.3f} nats/frame")
    assert abs(summary.best_valid_nll - entropy) / entropy < 0.03
    capsys.readouterr()
    assert {p.dtype for p in load_model(tmp_path / "exp" / "final.pt").parameters()} == {torch.float32}
    args = ["train", "--exp", str(tmp_path / "e"), str(path), "--train.device", "cpu", "--train.precision", "tf32"]
    assert main(args) == 1
    assert "train.precision tf32 is a CUDA matmul mode" in capsys.readouterr().err
    assert not (tmp_path / "e" / "checkpoints").exists()
    assert main(["train", "--exp", str(tmp_path / "e"), "--check", *args[4:]]) == 1  # no data: the config alone
    assert "train.precision tf32 is a CUDA matmul mode; on cpu use fp32 or bf16" in capsys.readouterr().err


def test_compiled_training_matches_eager(gaussian_dir, tmp_path):
    r"""``--train.compile true`` through the command: the same run as eager to float32 rounding, compiled once
    (768 does not divide the frames: a shorter last batch compiled a second graph, before epochs took full batches
    only)."""
    path, _ = gaussian_dir
    (tmp_path / "conf.yaml").write_text(small_config(epochs=2, batch_size=768).to_yaml())
    nll = {}
    for compile_ in ("false", "true"):
        exp = tmp_path / f"exp_{compile_}"
        args = ["train", "--config", str(tmp_path / "conf.yaml"), "--exp", str(exp), str(path), "--quiet",
                "--train.compile", compile_]
        torch._dynamo.reset()
        counters.clear()
        assert main(args) == 0
        assert counters["stats"]["unique_graphs"] == (1 if compile_ == "true" else 0)
        nll[compile_] = load_checkpoint(exp / "final.pt")["progress"]["best_valid"]
    assert nll["true"] == pytest.approx(nll["false"], rel=1e-4)


def test_compile_mode_reaches_the_compiled_forward(gaussian_dir, tmp_path, monkeypatch, capsys):
    r"""``--train.compile-mode``: passed to torch.compile's ``mode`` (none for ``default``); refused
    without ``--train.compile true``."""
    from flowaccent.train import runner as runner_module

    path, _ = gaussian_dir
    seen = []

    def recorded(module, device, what, mode=None):
        seen.append(mode)
        return module

    monkeypatch.setattr(runner_module, "compiled", recorded)
    (tmp_path / "conf.yaml").write_text(small_config(epochs=1).to_yaml())
    args = ["train", "--config", str(tmp_path / "conf.yaml"), str(path), "--quiet"]
    for mode in ("default", "reduce-overhead"):
        compile_args = ["--train.compile", "true", "--train.compile-mode", mode]
        assert main([*args, "--exp", str(tmp_path / mode), *compile_args]) == 0
    assert seen == [None, "reduce-overhead"]
    assert main([*args, "--exp", str(tmp_path / "bad"), "--train.compile-mode", "reduce-overhead"]) == 1
    assert "flowaccent train: error: train: compile_mode reduce-overhead needs compile: true" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_prefetching_batches_trains_the_same_model(gaussian_dir, tmp_path, capsys):
    r"""``train.prefetch`` moves reading, features and shuffling into a thread, not the data:
    the same weights bit for bit as loading in the loop; the log says how long steps waited, and
    each epoch's record where its time went."""
    path, _ = gaussian_dir
    digests = {}
    for depth in (0, 2):
        exp = tmp_path / f"exp{depth}"
        train(small_config(epochs=2, prefetch=depth), exp, [str(path)], quiet=True)
        digests[depth] = parameter_digest(load_model(exp / "final.pt"))
        records = [json.loads(line) for line in (exp / "log" / "train.jsonl").read_text().splitlines()]
        waits = [r["data_wait_s"] for r in records if r["event"] == "train"]
        assert waits and all(w >= 0 for w in waits)
        epochs = [r for r in records if r["event"] == "epoch"]  # where each epoch's wall time went
        assert len(epochs) == 2 and all(r["train_s"] >= r["data_wait_s"] >= 0 for r in epochs)
        assert all(r["valid_s"] > 0 and r["save_s"] > 0 for r in epochs)
    assert digests[0] == digests[2]
    assert main(["train", "--exp", str(tmp_path / "e"), str(path), "--train.prefetch", "-2"]) == 1
    assert "flowaccent train: error: train: prefetch must be >= 0, or -1 for auto, got -2" in capsys.readouterr().err


def test_the_prefetching_thread_makes_the_next_epochs_batches_while_this_one_validates(gaussian_dir, tmp_path,
                                                                                      monkeypatch):
    r"""One prefetching iterator runs over all epochs (``FrameStream.epochs``): with a thread, the
    next epoch's stream starts while the current epoch is validated (its first filling no longer
    waited for by the next epoch's first steps); inline, only after. Validation reads through its
    own files meanwhile, and the weights are the same either way."""
    import threading

    from flowaccent.train import runner as runner_module
    from flowaccent.train.frames import FrameStream

    path, _ = gaussian_dir
    epoch, validate = FrameStream.epoch, runner_module.Runner._validate
    next_started, seen, digests = threading.Event(), {}, {}

    def recorded_epoch(stream, e):
        if e == 1 and stream.refs and stream.batch_size == 1000:
            next_started.set()
        return epoch(stream, e)

    def recorded_validate(runner, *args):
        if runner.cfg.prefetch and not seen:
            next_started.wait(timeout=10)  # the thread has no reason not to get there meanwhile
        result = validate(runner, *args)
        seen.setdefault("next epoch started before the first validation ended", next_started.is_set())
        return result

    monkeypatch.setattr(FrameStream, "epoch", recorded_epoch)
    monkeypatch.setattr(runner_module.Runner, "_validate", recorded_validate)
    for depth in (0, 40):
        next_started.clear()
        seen.clear()
        exp = tmp_path / f"exp{depth}"
        train(small_config(epochs=2, prefetch=depth), exp, [str(path)], quiet=True)
        digests[depth] = parameter_digest(load_model(exp / "final.pt"))
        assert seen == {"next epoch started before the first validation ended": bool(depth)}
    assert digests[0] == digests[40]


@pytest.mark.parametrize("by,fraction", [("utterance", 0.2), ("speaker", 0.6)])
def test_the_validation_nll_is_the_frame_weighted_mean_over_the_held_out_utterances(gaussian_dir, tmp_path, by,
                                                                                   fraction):
    r"""Validation joins the held-out utterances into batches of about ``train.batch_size`` frames:
    the logged NLL is still the per-frame mean of every held-out utterance's NLL under the model
    (here the final one, best at the last epoch), each computed alone. With ``train.valid_by speaker`` the
    held-out utterances are all those of the speakers drawn (here 1 of the 4), none of the others."""
    from flowaccent.data.datadir import load_data_dir
    from flowaccent.train.frames import FrameSource, FrameStream, split_valid, utterance_refs

    path, _ = gaussian_dir
    config = small_config(epochs=1, batch_size=700, valid_fraction=fraction, valid_by=by)
    exp = tmp_path / "exp"
    summary = train(config, exp, [str(path)], quiet=True)
    model = load_model(exp / "final.pt").eval()
    data = load_data_dir(path)
    train_refs, valid = split_valid(utterance_refs([data], [dict.fromkeys(data.utts, 0)]), fraction, by)
    if by == "speaker":
        held = {r.spk for r in valid}
        assert held == {"s1"} and not [r for r in train_refs if r.spk in held]
        assert len(valid) == sum(1 for u in data.utts if data.utt2spk[u] == "s1")
    source = FrameSource([data], 8)
    try:
        stream = FrameStream(source, valid, model.pipeline, 700, 5000, 0)
        with torch.no_grad():
            sums = [model(stream.frames_of(r), torch.zeros(r.num_frames, dtype=torch.long)).nll.double().sum()
                    for r in valid]
    finally:
        source.close()
    frames = sum(r.num_frames for r in valid)
    assert len(valid) > 20 and frames > 700 * 2  # several joined batches, each several utterances
    assert summary.best_valid_nll == pytest.approx(float(sum(sums)) / frames, rel=1e-5)


def test_an_improving_epoch_writes_one_checkpoint_named_best_and_last(gaussian_dir, tmp_path, monkeypatch):
    r"""When an epoch is the best so far, best.pt is written and last.pt made a second name of it;
    a later epoch that is not better rewrites last.pt alone and leaves best.pt as it was."""
    import os

    from flowaccent.train import runner as runner_module

    path, _ = gaussian_dir
    nlls = iter([5.0, 3.0, 4.0])
    monkeypatch.setattr(runner_module.Runner, "_validate",
                        lambda runner, stream: dict.fromkeys(("nll", "log_p", "log_det"), next(nlls)))
    saved = {}
    end_epoch = runner_module.Runner._end_epoch

    def recorded(runner, progress, valid, seconds):
        end_epoch(runner, progress, valid, seconds)
        checkpoints = runner.exp / "checkpoints"
        saved[progress.epoch] = os.path.samefile(checkpoints / "best.pt", checkpoints / "last.pt")

    monkeypatch.setattr(runner_module.Runner, "_end_epoch", recorded)
    exp = tmp_path / "exp"
    train(small_config(epochs=3), exp, [str(path)], quiet=True)
    assert saved == {1: True, 2: True, 3: False}
    best, last = (load_checkpoint(exp / "checkpoints" / name)["progress"] for name in ("best.pt", "last.pt"))
    assert (best["epoch"], best["best_epoch"], best["best_valid"]) == (2, 2, 3.0)
    assert (last["epoch"], last["best_epoch"], last["bad_epochs"]) == (3, 2, 1)


def test_interrupted_while_validating_then_resumed_equals_uninterrupted(gaussian_dir, tmp_path, monkeypatch):
    r"""Ctrl-C during an epoch's validation saves last.pt with the epoch's steps done; the resumed
    run validates that epoch without redoing its steps and ends where an uninterrupted run does."""
    from flowaccent.train import runner as runner_module

    path, _ = gaussian_dir
    config = small_config(epochs=3)
    train(config, tmp_path / "full", [str(path)], quiet=True)
    validate, calls = runner_module.Runner._validate, []

    def interrupted(runner, stream):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return validate(runner, stream)

    monkeypatch.setattr(runner_module.Runner, "_validate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "cut", [str(path)], quiet=True)
    at = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")["progress"]
    monkeypatch.setattr(runner_module.Runner, "_validate", validate)
    train(config, tmp_path / "cut", [str(path)], resume=True, quiet=True)
    full, cut = (load_checkpoint(tmp_path / d / "checkpoints" / "last.pt") for d in ("full", "cut"))
    assert at["epoch"] == 1 and at["step_in_epoch"] > 0 and at["global_step"] == 2 * at["step_in_epoch"]
    assert cut["progress"]["global_step"] == full["progress"]["global_step"]
    assert cut["progress"]["history"] == full["progress"]["history"]
    for name, value in full["model"]["state_dict"].items():
        assert torch.equal(value, cut["model"]["state_dict"][name]), name


def test_the_closing_line_says_when_nothing_was_held_out(gaussian_dir, tmp_path, capsys):
    path, _ = gaussian_dir
    for fraction, said in (("0.1", "best valid NLL "), ("0", "no validation NLL (no utterances held out)")):
        (tmp_path / "conf.yaml").write_text(small_config(epochs=1).to_yaml())
        exp = tmp_path / f"exp{fraction}"
        assert main(["train", "--config", str(tmp_path / "conf.yaml"), "--exp", str(exp), str(path), "--quiet",
                     "--train.valid-fraction", fraction]) == 0
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert line.startswith(f"train: {exp}: 1 epoch,") and said in line and " inf " not in line


def test_a_share_that_held_out_nothing_is_warned_of(gaussian_dir, tmp_path, capsys):
    r"""``valid_fraction 0.001`` by speaker held out none of the few speakers: the run said 'no validation' only at
    its end, and its patience did nothing, without a word."""
    from flowaccent.data import load_data_dir

    path, _ = gaussian_dir
    speakers = len(set(load_data_dir(path).utt2spk.values()))
    (tmp_path / "conf.yaml").write_text(small_config(epochs=1).to_yaml())
    run = ["train", "--config", str(tmp_path / "conf.yaml"), str(path), "--quiet", "--train.valid-by", "speaker",
           "--train.patience", "3"]
    assert main([*run, "--exp", str(tmp_path / "none"), "--train.valid-fraction", "0.001"]) == 0
    assert (f"train: warning: train.valid_fraction 0.001 held out none of the {speakers} speakers (a hash of each id "
            "picks them): no validation NLL, so no best checkpoint (final.pt is the last epoch's) and "
            "train.patience 3 has no effect; give more data, or a larger valid_fraction\n") in capsys.readouterr().err
    assert main([*run, "--exp", str(tmp_path / "some"), "--train.valid-fraction", "0.5", "--train.valid-by",
                 "utterance"]) == 0  # the last given wins
    assert "held out none" not in capsys.readouterr().err


def test_the_stream_yields_at_most_its_burst_per_filling_and_the_trainer_sizes_the_queue_by_it(
    tmp_path, monkeypatch
):
    r"""``FrameStream.burst`` bounds the batches one filling of the shuffling buffer yields at once
    (what the prefetching queue must hold to overlap the next filling), and the trainer passes it
    on when it resolves ``train.prefetch``."""
    from flowaccent.data.datadir import load_data_dir
    from flowaccent.features import FeaturePipeline, FeaturePipelineConfig
    from flowaccent.train import runner as runner_module
    from flowaccent.train.frames import FrameSource, FrameStream, utterance_refs

    path = write_gaussian_dir(tmp_path / "d", np.zeros(3), np.eye(3), utts=40, frames=37, seed=0)
    data = load_data_dir(path)
    source = FrameSource([data], 3)
    try:
        pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="none", deltas=0, standardize=False), 3)
        stream = FrameStream(source, utterance_refs([data], [dict.fromkeys(data.utts, 0)]), pipeline, 50, 300, 0)
        reads, runs = [0], []
        frames_of = stream.frames_of

        def counted(ref):
            reads[0] += 1
            return frames_of(ref)

        monkeypatch.setattr(stream, "frames_of", counted)
        last = None
        for _ in stream.epoch(0):  # batches in a row without a read between them: one filling's
            if reads[0] != last:
                runs.append(0)
                last = reads[0]
            runs[-1] += 1
        assert sum(runs) == math.ceil(40 * 37 / 50) and max(runs) <= stream.burst == 300 // 50 + 2
        assert max(runs) >= 300 // 50  # a filling does come out in one burst
    finally:
        source.close()

    seen = []

    def recorded(setting, device, burst=0):
        seen.append((setting, device.type, burst))
        return 0

    monkeypatch.setattr(runner_module, "resolve_depth", recorded)
    train(small_config(epochs=1, batch_size=64, buffer_frames=640), tmp_path / "exp", [str(path)], quiet=True)
    assert seen and seen[0] == (-1, "cpu", 640 // 64 + 2)


def test_resume_keeps_the_log_the_checkpoint_had_written(gaussian_dir, tmp_path):
    r"""A run killed after logging steps past its last checkpoint logged them twice after --resume, and a line
    cut short by the kill made the log unreadable; the log is trimmed to the checkpoint's records."""
    path, _ = gaussian_dir
    exp = tmp_path / "exp"
    train(small_config(epochs=1), exp, [str(path)], quiet=True)
    log = exp / "log" / "train.jsonl"
    steps = load_checkpoint(exp / "checkpoints" / "last.pt")["progress"]["global_step"]
    with open(log, "a") as f:  # what the killed run had logged past its checkpoint, the last line cut
        f.write(json.dumps({"event": "train", "epoch": 2, "step": steps + 5, "nll": 1.0}) + "\n")
        f.write(json.dumps({"event": "epoch", "epoch": 2, "step": steps + 9}) + "\n")
        f.write('{"event": "train", "epoch": 2, "st')
    train(small_config(epochs=2), exp, [str(path)], resume=True, quiet=True)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    train_steps = [r["step"] for r in records if r["event"] == "train"]
    assert train_steps == sorted(set(train_steps)) and [r["epoch"] for r in records if r["event"] == "epoch"] == [1, 2]
    assert all(r.get("nll") != 1.0 for r in records)


def test_train_leaves_torchs_generator_and_deterministic_mode_as_they_were(gaussian_dir, tmp_path):
    r"""train() from a notebook reseeded torch's generator (the user's own seed gone) and left deterministic
    algorithms on."""
    path, _ = gaussian_dir
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    train(small_config(epochs=1), tmp_path / "exp", [str(path)], quiet=True)
    assert torch.equal(torch.rand(3), expected)
    assert not torch.are_deterministic_algorithms_enabled()


def test_train_from_a_notebook_under_no_grad_with_paths_and_a_dir_alone(gaussian_dir, tmp_path):
    r"""Under a caller's ``torch.no_grad()`` (or inference mode) train() failed 10 frames deep in torch ('element 0
    of tensors does not require grad'); a Path among the data dirs was an AttributeError, and one dir given as a
    string alone was read character by character ('data dir / is given twice'); a dict config an AttributeError.
    Loading the model drew from the caller's generator (the layers' init, overwritten)."""
    from flowaccent.errors import ConfigError

    path, _ = gaussian_dir
    with torch.no_grad():
        train(small_config(epochs=1), tmp_path / "a", [path], quiet=True)
        assert not torch.is_grad_enabled()
    with torch.inference_mode():
        train(small_config(epochs=1), tmp_path / "b", str(path), quiet=True)
    assert (load_model(tmp_path / "a" / "final.pt").state_dict().keys()
            == load_model(tmp_path / "b" / "final.pt").state_dict().keys())
    assert (tmp_path / "b" / "data.txt").read_text() == f"{path.absolute()}\n"
    with pytest.raises(ConfigError, match="ExperimentConfig .*got dict"):
        train(small_config(epochs=1).to_dict(), tmp_path / "c", [path], quiet=True)
    with pytest.raises(ConfigError, match="data dirs are paths or 'NAME=DATA_DIR' strings, got int 3"):
        train(small_config(epochs=1), tmp_path / "c", [path, 3], quiet=True)
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    load_model(tmp_path / "a" / "final.pt")
    assert torch.equal(torch.rand(3), expected)


def test_stored_features_spliced_again_are_warned_about(tmp_path, capsys):
    r"""440-d arks (spliced already) under the lab's splice 5 trained a 4840-d flow without a word."""
    from flowaccent.train.classes import expanded_warning

    from .conftest import write_gaussian_dir

    wide = write_gaussian_dir(tmp_path / "wide", np.zeros(90), np.eye(90), 20, 20, seed=1)
    config = small_config(epochs=1).with_overrides({"features": {"splice": 1}})
    train(config, tmp_path / "exp", [str(wide)], quiet=True)
    assert "the stored features are 90-d and the feature pipeline makes 270-d frames" in capsys.readouterr().err
    assert expanded_warning(40, 440) is None and expanded_warning(440, 440) is None  # fbank spliced; no pipeline


def test_a_class_context_flow_trains_on_its_labels_and_score_refuses_it_in_one_line(tmp_path, capsys):
    r"""The class as the couplings' context: training feeds each frame's class, the two classes' flows differ,
    and score, which needs one flow per frame, stops with one line (a traceback from the couplings before)."""
    chol = np.eye(4)
    a = write_gaussian_dir(tmp_path / "a", np.full(4, -2.0), chol, 40, 50, seed=1, prefix="a")
    b = write_gaussian_dir(tmp_path / "b", np.full(4, 2.0), chol, 40, 50, seed=2, prefix="b")
    config = small_config(epochs=2).with_overrides({"model": {"context_dim": 2}, "prior": {"cond_dim": 4}})
    train(config, tmp_path / "exp", [f"native={a}", f"zh={b}"], quiet=True)
    assert "model.context_dim 2 the couplings take the class as context" in capsys.readouterr().err
    model = load_model(tmp_path / "exp" / "final.pt")
    x = torch.full((3, 4), -2.0)
    with torch.no_grad():
        native, zh = (model(x, torch.full((3,), y)).log_det for y in (0, 1))
    assert (native - zh).abs().min() > 1e-3
    assert main(["score", "--exp", str(tmp_path / "exp"), "--out", str(tmp_path / "scores"), str(a)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "context_dim = 2" in err and "Traceback" not in err
    assert not (tmp_path / "scores").exists()


def test_the_initial_batch_holds_every_class():
    r"""A class absent from the first batch had its DNF mean start at 0, not at its latents' mean: batches are
    added until every class has frames (a bounded number; the first batch alone where it has them all)."""
    from flowaccent.train.start import init_batch

    class Stream:
        def __init__(self, labels):
            self.labels = labels

        def epoch(self, epoch):
            for label in self.labels:
                yield torch.full((2, 3), float(label)), torch.full((2,), label)

    x, y = init_batch(Stream([0, 0, 1, 0, 2, 1]), 3)
    assert y.tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 2, 2] and x.shape == (10, 3)
    assert init_batch(Stream([1, 0, 2]), 2)[1].tolist() == [1, 1, 0, 0]
    assert init_batch(Stream([0] * 40), 2, most=3)[1].tolist() == [0] * 6


def test_a_finished_run_whose_checkpoints_are_gone_is_not_trained_over(gaussian_dir, tmp_path):
    r"""``checkpoints/`` removed to save space: a new run, or ``--resume`` (which said 'last.pt does not exist yet:
    starting from the beginning'), trained a new model over final.pt, config.yaml and the log."""
    path, _ = gaussian_dir
    exp = tmp_path / "exp"
    train(small_config(epochs=1), exp, [str(path)], quiet=True)
    shutil.rmtree(exp / "checkpoints")
    final = (exp / "final.pt").read_bytes()
    with pytest.raises(ConfigError, match=r"holds a finished run \(final.pt\) whose checkpoints/last.pt is gone, "
                                          r"so it cannot be resumed, and a new run would overwrite it"):
        train(small_config(epochs=2), exp, [str(path)], quiet=True)
    with pytest.raises(ConfigError, match=r"final.pt: the config differs from the finished run's: train.epochs: 1 "
                                          r"there, 2 given"):  # --resume: it cannot train on
        train(small_config(epochs=2), exp, [str(path)], resume=True, quiet=True)
    assert (exp / "final.pt").read_bytes() == final


def test_a_finished_run_whose_checkpoints_are_gone_is_checked_against_its_final_model(gaussian_dir, tmp_path,
                                                                                     capsys):
    r"""``--resume --check`` of such a run said it could not be resumed, and recipes counted it done without a
    check: a rerun with other --train-opts scored the old model under the new options. It is held against final.pt:
    the same config and data have nothing left to train; another model, seed, epoch count or data is refused."""
    from flowaccent.cli.main import main
    from flowaccent.data import write_table

    path, _ = gaussian_dir
    exp = tmp_path / "exp"
    train(small_config(epochs=1), exp, [str(path)], quiet=True)
    shutil.rmtree(exp / "checkpoints")
    final = (exp / "final.pt").read_bytes()
    capsys.readouterr()
    check = ["train", "--exp", str(exp), "--resume", "--check", "--quiet"]
    assert main([*check, "--train.device", "cpu"]) == 0  # where it would train does not shape the model
    assert capsys.readouterr().err == (f"train: {exp}: holds a finished run of this config and data (final.pt; its "
                                       "checkpoints/last.pt is gone): nothing left to train\n")
    assert main(check[:-2] + ["--quiet"]) == 0  # --resume itself agrees with its --check: nothing trains (was refused)
    assert f"train: {exp} holds a finished run of this config and data (final.pt; its checkpoints/last.pt is gone): " \
        "nothing to train; final.pt is kept\n" in capsys.readouterr().err
    kept = (exp / "config.yaml").read_bytes()
    (exp / "config.yaml").unlink()  # gone too: the config final.pt keeps ('holds no run to resume')
    try:
        assert main(check) == 0 and "nothing left to train" in capsys.readouterr().err
    finally:
        (exp / "config.yaml").write_bytes(kept)
    for option, said in ((["--model.hidden", "16"], "model.hidden: 32 there, 16 given"),
                         (["--train.seed", "7"], "train.seed: 0 there, 7 given"),
                         (["--train.epochs", "2"], "train.epochs: 1 there, 2 given")):
        assert main([*check, *option]) == 1
        assert f"error: {exp / 'final.pt'}: the config differs from the finished run's: {said} (read from " in \
            capsys.readouterr().err
    utts = sorted((path / "utt2spk").read_text().split()[::2])
    write_table(path / "utt2accent", dict.fromkeys(utts, "native"))  # the data's classes changed since
    try:
        assert main(check) == 1
        assert "the classes differ from the run being resumed: gauss there, native given" in capsys.readouterr().err
    finally:
        (path / "utt2accent").unlink()
    assert (exp / "final.pt").read_bytes() == final and not (exp / "checkpoints").exists()


def test_resume_refuses_classes_relabelled_in_utt2accent(gaussian_dir, tmp_path):
    r"""A dir whose ``utt2accent`` gives the classes, relabelled between a stop and ``--resume``: the run went on
    without a word, half of it trained on each labelling. A dir named by NAME= does not read it: no refusal."""
    from flowaccent.data import load_data_dir, write_table

    path, _ = gaussian_dir
    utts = load_data_dir(path).utts
    write_table(path / "utt2accent", {u: "native" if i % 2 else "zh" for i, u in enumerate(utts)})
    train(small_config(epochs=1), tmp_path / "exp", [str(path)], quiet=True)
    train(small_config(epochs=1), tmp_path / "named", [f"all={path}"], quiet=True)
    write_table(path / "utt2accent", {u: ("native" if i % 2 else "zh") if i < 2 else ("zh" if i % 2 else "native")
                                      for i, u in enumerate(utts)})  # the classes as they were first seen
    with pytest.raises(ConfigError, match=r"the training data changed since the run began \(.*gauss: utt2accent\)"):
        train(small_config(epochs=2), tmp_path / "exp", [str(path)], resume=True, quiet=True)
    assert train(small_config(epochs=2), tmp_path / "named", [f"all={path}"], resume=True, quiet=True).epochs_run == 2


def test_resume_names_a_changed_option_not_the_data(gaussian_dir, tmp_path, capsys):
    r"""``--resume --features.cmvn utt`` was 'the training data changed since the run began (...: arks)' (the digest
    counts cmvn.scp's archives under spk); dirs pooled under one name, given in another order, were pointed to
    data.txt as if the data had moved."""
    from flowaccent.data import ArkWriter, ScpReader, load_data_dir
    from flowaccent.features import compute_cmvn_stats

    path, _ = gaussian_dir
    other = write_gaussian_dir(tmp_path / "other", np.zeros(8), np.eye(8), 40, 100, seed=3)
    for folder in (path, other):  # each speaker's stats, as fbank writes them
        data, feats = load_data_dir(folder), dict(ScpReader(folder / "feats.scp"))
        with ArkWriter(folder / "cmvn.ark", folder / "cmvn.scp") as writer:
            for speaker, utts in sorted(data.spk2utt.items()):
                writer.write(speaker, compute_cmvn_stats(np.concatenate([feats[u] for u in utts])))
    exp = tmp_path / "exp"
    args = ["train", "--exp", str(exp), f"a={path}", f"a={other}", "--quiet", "--train.epochs", "1",
            "--features.cmvn", "spk", "--model.num-blocks", "2", "--model.hidden", "8"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["train", "--exp", str(exp), "--resume", "--check", "--features.cmvn", "utt"]) == 1
    assert "features.cmvn: spk there, utt given" in capsys.readouterr().err
    assert main(["train", "--exp", str(exp), "--resume", "--check", f"a={other}", f"a={path}"]) == 1
    assert "(the same, in another order: give the dirs in the order the run began with" in capsys.readouterr().err


def test_validation_is_in_eval_mode_and_leaves_the_batchnorm_statistics(gaussian_dir, tmp_path, monkeypatch):
    r"""Each epoch's held-out NLL is the model's in eval mode (BatchNorm on its running statistics), and validating
    does not move those statistics: in train mode it would normalise each batch by its own moments and fold the
    held-out frames into the model it then saves."""
    import copy

    from flowaccent.train.runner import Runner
    from flowaccent.train.validation import held_out_nll

    validate, seen = Runner._validate, []

    def checked(self, stream):
        before = copy.deepcopy(self.model).eval()
        valid = validate(self, stream)
        alone = held_out_nll(before, stream, self.cfg.batch_size, self.env.device, "fp32")
        buffers = [(a, b) for a, b in zip(before.buffers(), self.model.buffers()) if a.is_floating_point()]
        seen.append((valid, alone, all(torch.equal(a, b) for a, b in buffers), len(buffers)))
        return valid

    monkeypatch.setattr(Runner, "_validate", checked)
    config = small_config(epochs=2).with_overrides({"model": {"norm": "batchnorm"}})
    train(config, tmp_path / "exp", [str(gaussian_dir[0])], quiet=True)
    assert len(seen) == 2
    for valid, alone, unchanged, count in seen:
        assert count > 0 and unchanged  # the running means and variances
        assert valid["frames"] == alone["frames"] > 0
        assert valid["nll"] == pytest.approx(alone["nll"], rel=1e-7)
