r"""A run killed with SIGKILL and resumed ends with the same weights as an uninterrupted one."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from .conftest import small_config


def command(config_path, exp, data, resume=False):
    cmd = [
        sys.executable,
        "-m",
        "flowaccent",
        "train",
        "--config",
        str(config_path),
        "--exp",
        str(exp),
        str(data),
        "--quiet",
    ]
    return cmd + (["--resume"] if resume else [])


def environment():
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def weights(path):
    state = torch.load(path, map_location="cpu", weights_only=False)
    return state["model"]["state_dict"], state.get("optimizer")


def test_sigkill_then_resume_equals_uninterrupted(gaussian_dir, tmp_path):
    path, _ = gaussian_dir
    config = small_config(epochs=4, checkpoint_every_steps=3)
    config_path = tmp_path / "conf.yaml"
    config_path.write_text(config.to_yaml())
    env = environment()

    def start_until_last_pt(exp):
        proc = subprocess.Popen(command(config_path, exp, path), env=env)
        deadline = time.time() + 120
        while not (exp / "checkpoints" / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.01)
        return proc

    full_run = start_until_last_pt(tmp_path / "full")
    seen = time.time()
    assert full_run.wait(timeout=300) == 0
    after_first_checkpoint = time.time() - seen  # ~1 s here: a fixed 0.5 s wait assumed a machine no faster

    last = tmp_path / "killed" / "checkpoints" / "last.pt"
    proc = start_until_last_pt(tmp_path / "killed")
    time.sleep(random.uniform(0.0, after_first_checkpoint / 2))
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = torch.load(last, weights_only=False)["progress"]["global_step"]
    said = subprocess.run(command(config_path, tmp_path / "killed", path, resume=True), check=True, env=env,
                          timeout=300, capture_output=True, text=True).stderr
    assert f" steps (resumed at step {killed_at}), best valid NLL " in said, said  # said under --quiet too

    full, full_opt = weights(tmp_path / "full" / "checkpoints" / "last.pt")
    resumed, resumed_opt = weights(last)
    assert full.keys() == resumed.keys()
    for name in full:
        assert torch.equal(full[name], resumed[name]), f"{name} differs (killed after step {killed_at})"
    assert torch.equal(full_opt["state"][0]["exp_avg"], resumed_opt["state"][0]["exp_avg"])
    full_final, _ = weights(tmp_path / "full" / "final.pt")
    resumed_final, _ = weights(tmp_path / "killed" / "final.pt")
    assert all(torch.equal(full_final[k], resumed_final[k]) for k in full_final)


def test_resuming_an_early_stopped_run_changes_nothing(gaussian_dir, tmp_path):
    r"""--resume on a run that stopped early trained it further (a recipe that always resumes kept extending it)."""
    import json

    from flowaccent.train.trainer import train

    config = small_config(epochs=30, patience=1, lr=0.3)
    train(config, tmp_path / "exp", [str(gaussian_dir[0])], quiet=True)
    log = tmp_path / "exp" / "log" / "train.jsonl"
    events = [json.loads(line) for line in log.read_text().splitlines()]
    stops = [e for e in events if e.get("event") == "early_stop"]
    assert len(stops) == 1 and stops[0]["epoch"] < 30  # it did stop early
    final = (tmp_path / "exp" / "final.pt").read_bytes()
    epochs = sum(e.get("event") == "epoch" for e in events)
    train(config, tmp_path / "exp", [str(gaussian_dir[0])], resume=True, quiet=True)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert sum(e.get("event") == "epoch" for e in events) == epochs
    assert (tmp_path / "exp" / "final.pt").read_bytes() == final


def test_a_second_training_into_a_locked_exp_is_refused(gaussian_dir, tmp_path):
    r"""Two trainings into one --exp started within half a second both ran and mixed their files."""
    import fcntl

    import pytest

    from flowaccent.errors import ConfigError, DataDirError
    from flowaccent.train.trainer import LOCK, train

    exp = tmp_path / "exp"
    exp.mkdir()
    with open(exp / LOCK, "w") as held:  # as a running training holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ConfigError, match=f"^{exp} is being trained by another process now"):
            train(small_config(epochs=1), exp, [str(gaussian_dir[0])], quiet=True)
    assert sorted(p.name for p in exp.iterdir()) == [LOCK]  # nothing of its own written
    with pytest.raises(DataDirError, match="nowhere"):
        train(small_config(epochs=1), tmp_path / "new", [str(tmp_path / "nowhere")], quiet=True)
    assert not (tmp_path / "new").exists()  # a run that fails before writing leaves no folder
    train(small_config(epochs=1), exp, [str(gaussian_dir[0])], quiet=True)
    assert (exp / "final.pt").exists()


def test_ctrl_c_right_after_the_optimizer_step_still_resumes_exactly(gaussian_dir, tmp_path, capsys):
    r"""A Ctrl-C that landed between ``optimizer.step()`` and the step's count saved last.pt with the weights and
    Adam's moments one step ahead of its ``global_step``, and the resume took that step again (1 of 12 real
    interrupts in the interruption audit). The step and its count are now one section a signal waits for."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from flowaccent.train.checkpoint import load_checkpoint
    from flowaccent.train.trainer import train

    path, _ = gaussian_dir
    config = small_config(epochs=2, warmup_steps=1000)  # past the run: its note counts the run's steps
    train(config, tmp_path / "full", [str(path)], quiet=True)
    steps = []

    def interrupt(optimizer, args, kwargs):
        steps.append(1)
        if len(steps) == 3:
            signal.raise_signal(signal.SIGINT)  # its handler runs at the next bytecode: inside the optimizer's step

    handle = register_optimizer_step_post_hook(interrupt)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's, even where SIGINT came ignored
    try:
        with pytest.raises(KeyboardInterrupt):
            train(config, tmp_path / "cut", [str(path)], quiet=False)  # its bar closed first, not drawn after it
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the trainer gave Ctrl-C back
    finally:
        handle.remove()
        signal.signal(signal.SIGINT, before)
    cut = tmp_path / "cut"  # how to go on is said ('interrupted' alone did not say the run was kept)
    err = capsys.readouterr().err
    assert err.endswith(f"\ntrain: stopped in epoch 1 at step 3: {cut / 'checkpoints' / 'last.pt'} written; "
                        f"'flowaccent train --exp {cut} --resume' goes on from it\n")
    saved = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    adam_steps = {int(state["step"]) for state in saved["optimizer"]["state"].values()}
    assert saved["progress"]["global_step"] == 3 and adam_steps == {3}
    capsys.readouterr()
    train(config, tmp_path / "cut", [str(path)], resume=True, quiet=True)
    full, cut = (load_checkpoint(tmp_path / d / "checkpoints" / "last.pt") for d in ("full", "cut"))
    assert cut["progress"]["global_step"] == full["progress"]["global_step"]
    # the run's steps, those of the stopped epoch taken before its stop counted once (they were counted twice)
    assert f"more than the run's {full['progress']['global_step']} steps" in capsys.readouterr().err
    for name, value in full["model"]["state_dict"].items():
        assert torch.equal(value, cut["model"]["state_dict"][name]), name


class _Killed(BaseException):
    r"""Stands for a SIGKILL: nothing of the trainer's own handling runs for it."""


def _records(exp):
    import json

    return [json.loads(line) for line in (exp / "log" / "train.jsonl").read_text().splitlines()]


def _killed_at(monkeypatch, event, epoch):
    r"""The trainer killed just before it logs ``event`` of ``epoch`` (after that epoch's checkpoint)."""
    from flowaccent.train import runner

    log = runner.Runner._log

    def dying(self, record):
        if record.get("event") == event and record.get("epoch") == epoch:
            raise _Killed
        log(self, record)

    monkeypatch.setattr(runner.Runner, "_log", dying)
    return lambda: monkeypatch.setattr(runner.Runner, "_log", log)


@pytest.mark.parametrize("event", ["epoch", "early_stop"])
def test_an_epochs_record_lost_with_its_checkpoint_saved_is_restored(gaussian_dir, tmp_path, monkeypatch, event):
    r"""Killed between an epoch's checkpoint and its record (a short window, but exactly "right after an epoch
    ends"), the log lost that epoch's row, its validation NLL and, at an early stop, the stop, for good: the resume
    went on from the checkpoint, past them. The checkpoint's history holds them; the resume writes them again."""
    from flowaccent.train.trainer import train

    config = small_config(epochs=30, patience=1, lr=0.3)
    train(config, tmp_path / "full", [str(gaussian_dir[0])], quiet=True)
    full = _records(tmp_path / "full")
    stop = next(r["epoch"] for r in full if r["event"] == "early_stop")
    at = 2 if event == "epoch" else stop
    restore = _killed_at(monkeypatch, event, at)
    with pytest.raises(_Killed):
        train(config, tmp_path / "killed", [str(gaussian_dir[0])], quiet=True)
    restore()
    train(config, tmp_path / "killed", [str(gaussian_dir[0])], resume=True, quiet=True)
    got = _records(tmp_path / "killed")

    def epochs(records):
        return [(r["event"], r["epoch"], r.get("valid")) for r in records if r["event"] != "train"]

    assert epochs(got) == epochs(full)
    restored = [r for r in got if r.get("restored")]
    assert [(r["event"], r["epoch"]) for r in restored] == [(event, at)]
    assert [r["step"] for r in got if r["event"] == "train"] == [r["step"] for r in full if r["event"] == "train"]


def test_tensorboard_holds_each_step_once_after_a_resume(gaussian_dir, tmp_path, monkeypatch):
    r"""A resumed run's TensorBoard scalars past its checkpoint stood there twice (step 30 with two NLLs), one
    events file more per resume; the events are now written from the trimmed log, so they are the log's."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from flowaccent.train.trainer import train

    config = small_config(epochs=3, checkpoint_every_steps=4, log_every_steps=1)
    restore = _killed_at(monkeypatch, "epoch", 2)  # steps logged past the last checkpoint, then killed
    with pytest.raises(_Killed):
        train(config, tmp_path / "exp", [str(gaussian_dir[0])], quiet=True)
    restore()
    train(config, tmp_path / "exp", [str(gaussian_dir[0])], resume=True, quiet=True)
    train(config, tmp_path / "exp", [str(gaussian_dir[0])], resume=True, quiet=True)  # a resume that trains nothing
    assert len(list((tmp_path / "exp" / "tensorboard").glob("events.out.tfevents.*"))) == 1
    events = EventAccumulator(str(tmp_path / "exp" / "tensorboard")).Reload()
    records = _records(tmp_path / "exp")
    for tag, event, values in [("train/LogLL", "train", lambda r: r), ("valid/LogLL", "epoch", lambda r: r["valid"])]:
        got = [(e.step, e.value) for e in events.Scalars(tag)]
        logged = [(r["step"], values(r)["nll"]) for r in records if r["event"] == event]
        assert [s for s, _ in got] == [s for s, _ in logged]  # each step once, in order
        assert [v for _, v in got] == pytest.approx([v for _, v in logged], rel=1e-6)


def test_more_epochs_for_a_run_that_stopped_early_is_refused(gaussian_dir, tmp_path, capsys):
    r"""``--train.epochs 60`` on an early-stopped run said "resuming with train.epochs: 40 there, 60 given", trained
    nothing and wrote epochs: 60 into config.yaml."""
    from flowaccent.errors import ConfigError
    from flowaccent.train.trainer import train

    config = small_config(epochs=30, patience=1, lr=0.3)
    train(config, tmp_path / "exp", [str(gaussian_dir[0])], quiet=True)
    before = (tmp_path / "exp" / "config.yaml").read_text()
    more = small_config(epochs=60, patience=1, lr=0.3)
    with pytest.raises(ConfigError, match="stopped early at epoch .* more epochs would train none"):
        train(more, tmp_path / "exp", [str(gaussian_dir[0])], resume=True, quiet=True)
    assert (tmp_path / "exp" / "config.yaml").read_text() == before
    capsys.readouterr()
    train(config, tmp_path / "exp", [str(gaussian_dir[0])], resume=True)
    assert "stopped early at epoch" in capsys.readouterr().err


def test_the_first_log_record_after_a_resume_within_an_epoch_is_the_uninterrupted_runs(gaussian_dir, tmp_path,
                                                                                        monkeypatch):
    r"""Resumed from a checkpoint inside a log window, the first train record averaged only the steps since the
    checkpoint (step 60: 118.99 against 119.70 in the audit's run); the checkpoint now carries the open window."""
    from flowaccent.train.trainer import train

    config = small_config(epochs=2, checkpoint_every_steps=3, log_every_steps=5)  # steps 6-9 of step 10's window
    train(config, tmp_path / "full", [str(gaussian_dir[0])], quiet=True)
    from flowaccent.train import runner

    log = runner.Runner._log

    def dying(self, record):  # killed as it logs step 10, after the checkpoint of step 9
        if record.get("event") == "train" and record["step"] == 10:
            raise _Killed
        log(self, record)

    monkeypatch.setattr(runner.Runner, "_log", dying)
    with pytest.raises(_Killed):
        train(config, tmp_path / "killed", [str(gaussian_dir[0])], quiet=True)
    monkeypatch.setattr(runner.Runner, "_log", log)
    train(config, tmp_path / "killed", [str(gaussian_dir[0])], resume=True, quiet=True)

    def means(exp):
        return [(r["step"], r["nll"], r["log_p"], r["log_det"]) for r in _records(exp) if r["event"] == "train"]

    assert 10 in [step for step, *_ in means(tmp_path / "full")]
    assert means(tmp_path / "killed") == means(tmp_path / "full")


def _clean(records):
    r"""Train and epoch records without what varies between runs (times, rates)."""
    drop = {"time", "frames_per_s", "data_wait_s", "train_s", "valid_s", "save_s", "restored"}
    return [{k: v for k, v in r.items() if k not in drop} for r in records]


def _close(a, b) -> bool:
    r"""Equal records, their floats to 1e-9 (a resumed run sums its open window in another order)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return isinstance(b, float) and b == pytest.approx(a, rel=1e-9)
    return a == b


def test_a_ctrl_c_at_a_logged_step_keeps_its_record(gaussian_dir, tmp_path):
    r"""A Ctrl-C held through step 10 (``log_every_steps`` 10) was delivered after the step's count but before its
    record: last.pt carried the step in the open window, the record of step 10 was never written, and the resumed
    run's step-20 record averaged steps 11-20 with 1-10 (a multi-process audit, also with one process)."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from flowaccent.train.trainer import train

    path, _ = gaussian_dir
    config = small_config(epochs=2, log_every_steps=10)
    train(config, tmp_path / "full", [str(path)], quiet=True)
    steps = []

    def interrupt(optimizer, args, kwargs):
        steps.append(1)
        if len(steps) == 10:
            signal.raise_signal(signal.SIGINT)

    handle = register_optimizer_step_post_hook(interrupt)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            train(config, tmp_path / "cut", [str(path)], quiet=True)
    finally:
        handle.remove()
        signal.signal(signal.SIGINT, before)
    assert [r["step"] for r in _records(tmp_path / "cut")] == [10]
    train(config, tmp_path / "cut", [str(path)], resume=True, quiet=True)
    full, cut = (_clean(_records(tmp_path / d)) for d in ("full", "cut"))
    assert [r["step"] for r in cut] == [r["step"] for r in full] and len(full) > 4
    for a, b in zip(full, cut):
        assert _close(a, b), (a, b)


def test_a_ctrl_c_inside_a_checkpoints_write_waits_for_it(gaussian_dir, tmp_path, monkeypatch):
    r"""A signal that landed inside ``torch.save`` (its file's writes) ended the run with 'RuntimeError: [enforce fail
    at inline_container.cc] unexpected pos' instead of as interrupted; the write now finishes first."""
    from flowaccent.train.checkpoint import load_checkpoint
    from flowaccent.train.trainer import train

    path, _ = gaussian_dir
    config = small_config(epochs=2, checkpoint_every_steps=5)
    train(config, tmp_path / "full", [str(path)], quiet=True)
    real_save, saves = torch.save, []

    class Writes:
        def __init__(self, f):
            self.f, self.writes = f, 0

        def write(self, data):
            self.writes += 1
            if len(saves) == 2 and self.writes == 5:
                signal.raise_signal(signal.SIGINT)  # its handler runs at the next bytecode: inside this write
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

    def save(obj, f, *args, **kwargs):
        saves.append(1)
        return real_save(obj, Writes(f), *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            train(config, tmp_path / "cut", [str(path)], quiet=True)
    finally:
        signal.signal(signal.SIGINT, before)
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")["progress"]["global_step"] == 10
    train(config, tmp_path / "cut", [str(path)], resume=True, quiet=True)
    full, cut = (load_checkpoint(tmp_path / d / "checkpoints" / "last.pt") for d in ("full", "cut"))
    for name, value in full["model"]["state_dict"].items():
        assert torch.equal(value, cut["model"]["state_dict"][name]), name


def test_resuming_a_finished_run_says_there_is_nothing_to_train(gaussian_dir, tmp_path, capsys):
    from flowaccent.train.trainer import train

    path, _ = gaussian_dir
    train(small_config(epochs=1), tmp_path / "exp", [str(path)], quiet=True)
    capsys.readouterr()
    summary = train(small_config(epochs=1), tmp_path / "exp", [str(path)], resume=True, quiet=True)
    assert summary.epochs_run == 1
    assert "train: the run has trained its 1 epoch(s): nothing to train; final.pt is written again" in \
        capsys.readouterr().err
    # --check writes nothing, and said it would write final.pt again and 'would go on after 1 finished epoch(s)'
    from flowaccent.cli.main import main

    assert main(["train", "--exp", str(tmp_path / "exp"), "--resume", "--check", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "nothing to train\n" in err and "written again" not in err and "would go on" not in err
    assert f"train: {tmp_path / 'exp'}: has nothing left to train (1 epoch(s) done)" in err
    (tmp_path / "conf.yaml").write_text(small_config(epochs=1).to_yaml())
    assert main(["train", "--config", str(tmp_path / "conf.yaml"), "--exp", str(tmp_path / "none"), "--resume",
                 "--check", str(path), "--quiet"]) == 0
    err = capsys.readouterr().err  # it said 'would go on after 0 finished epoch(s) (step 0)'
    assert "last.pt does not exist yet: a run would start from the beginning" in err
    assert f"train: {tmp_path / 'none'}: would start a new run" in err


def test_a_second_slurm_task_is_pointed_to_torchrun(gaussian_dir, tmp_path, monkeypatch):
    r"""``srun -n 2 flowaccent train`` starts two whole trainings: the second was refused as 'being trained by
    another process now', with nothing said of torchrun."""
    import fcntl

    from flowaccent.errors import ConfigError
    from flowaccent.train.trainer import LOCK, train

    exp = tmp_path / "exp"
    exp.mkdir()
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with open(exp / LOCK, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ConfigError, match=r"being trained by another process now; .* \(this is one of 2 Slurm "
                                              r"tasks, each a whole training: for one run on several processes start "
                                              r"torchrun with srun, one task per node\)"):
            train(small_config(epochs=1), exp, [str(gaussian_dir[0])], quiet=True)


def test_the_deterministic_mode_is_set_without_importing_inductor():
    r"""``torch.use_deterministic_algorithms`` imports Inductor and sympy (0.86 s of every ``flowaccent train``); a
    SIGTERM inside that import left sympy half-imported and the restore on the way out raised 'module sympy has no
    attribute core' (torchrun stopping a rank, in CI). Without ``train.compile`` the flag alone is set."""
    code = (
        "import sys, torch\n"
        "from flowaccent.train.trainer import set_deterministic\n"
        "before = set(sys.modules)  # torch 2.5 imports the package torch._inductor itself\n"
        "set_deterministic(True, True)\n"
        "assert torch.are_deterministic_algorithms_enabled()\n"
        "assert torch.is_deterministic_algorithms_warn_only_enabled()\n"
        "loaded = sorted(m for m in set(sys.modules) - before if m.startswith(('torch._inductor', 'sympy')))\n"
        "assert not loaded, loaded[:5]\n"
        "set_deterministic(False, False)\n"
        "assert not torch.are_deterministic_algorithms_enabled()\n"
        "set_deterministic(True, False, compile=True)\n"
        "import torch._inductor.config as inductor\n"
        "has = hasattr(inductor, 'deterministic')  # Inductor's own option: not in torch 2.9\n"
        "assert (not has or inductor.deterministic) and not torch.is_deterministic_algorithms_warn_only_enabled()\n"
        "set_deterministic(False, False)\n"
        "assert not (has and inductor.deterministic)  # loaded: set with the flag\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


def test_check_says_whether_a_run_would_go_on_and_writes_nothing(gaussian_dir, tmp_path, capsys):
    from flowaccent.cli.main import main
    from flowaccent.train.trainer import train

    path, _ = gaussian_dir
    config = small_config(epochs=2)
    (tmp_path / "conf.yaml").write_text(config.to_yaml())
    train(config.with_overrides({"train": {"epochs": 1}}), tmp_path / "exp", [str(path)], quiet=True)
    before = {p: p.read_bytes() for p in (tmp_path / "exp").rglob("*") if p.is_file()}
    args = ["train", "--config", str(tmp_path / "conf.yaml"), "--exp", str(tmp_path / "exp"), str(path), "--quiet"]
    capsys.readouterr()
    assert main([*args, "--resume", "--check", "--train.epochs", "2"]) == 0
    # finished epochs, not the one it goes on in (it said 'from epoch 1' for a run going on in epoch 2)
    assert f"train: {tmp_path / 'exp'}: would go on after 1 finished epoch(s) (step " in capsys.readouterr().err
    assert {p: p.read_bytes() for p in (tmp_path / "exp").rglob("*") if p.is_file()} == before
    assert main([*args, "--resume", "--check", "--model.hidden", "64"]) == 1
    assert "model.hidden" in capsys.readouterr().err
    assert main([*args, "--check"]) == 1  # a new run into it: refused, as the run itself would be
    assert "holds a training run already; pass --resume" in capsys.readouterr().err
    fresh = ["train", "--config", str(tmp_path / "conf.yaml"), "--exp", str(tmp_path / "new"), "--quiet", "--check"]
    assert main([*fresh, str(path)]) == 0
    assert f"train: {tmp_path / 'new'}: would start a new run" in capsys.readouterr().err
    assert main([*fresh, str(tmp_path / "missing")]) == 1
    assert "missing" in capsys.readouterr().err
    assert main(fresh) == 0  # no data yet (a recipe's start): the config and options alone
    assert "and the options given are valid (no DATA_DIR given" in capsys.readouterr().err
    assert main([*fresh, "--train.epochs", "-1"]) == 1
    assert "epochs must be >= 1, got -1" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    assert {p: p.read_bytes() for p in (tmp_path / "exp").rglob("*") if p.is_file()} == before


def sighup_default() -> None:
    r"""SIGHUP as a terminal's job has it: under ``nohup`` (a CI run) it is ignored, and so the command leaves it."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGHUP")
def test_a_closed_terminal_stops_training_as_ctrl_c_does(gaussian_dir, tmp_path):
    r"""SIGHUP (a dropped ssh session, sent to the whole job) killed train at once: the progress since its last
    checkpoint was lost, and the log said nothing. It now stops as Ctrl-C does: last.pt written at the step it
    reached, then it dies by SIGHUP (``$?`` 129); ``--resume`` goes on from there."""
    path, _ = gaussian_dir
    config_path = tmp_path / "conf.yaml"
    config_path.write_text(small_config(epochs=200, checkpoint_every_steps=0).to_yaml())
    exp = tmp_path / "exp"
    proc = subprocess.Popen(command(config_path, exp, path), env=environment(), stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=sighup_default)
    log = exp / "log" / "train.jsonl"
    deadline = time.time() + 120
    while not (log.exists() and '"event": "train"' in log.read_text()) and time.time() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGHUP)  # as the terminal's session leader sends it to the job
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGHUP, err
    assert "flowaccent train: hung up (SIGHUP)" in err and "train: stopped in epoch" in err, err
    step = torch.load(exp / "checkpoints" / "last.pt", weights_only=False)["progress"]["global_step"]
    assert step >= 10  # the step it reached (checkpoint_every_steps 0: no checkpoint before the epoch's end)
    ignored = subprocess.run([sys.executable, "-c", "import signal, flowaccent.cli.main as m; m._main = lambda argv: "
                              "print(signal.getsignal(signal.SIGHUP) == signal.SIG_IGN) or 0; m.main([])"],
                             preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN), capture_output=True,
                             text=True, timeout=60)
    assert ignored.stdout.strip() == "True"  # under nohup it stays ignored: the command does not take it over


def test_a_checkpoint_of_another_training_format_says_its_resume_is_not_exact(gaussian_dir, tmp_path, capsys):
    r"""A ``last.pt`` written before checkpoints recorded their training's format (an upgrade audit resumed
    4ac5b53's and d6db35c's runs, whose streams took other batches, without a word), or of another format: the
    resume goes on and says it is not the uninterrupted run; one of this format says nothing."""
    from flowaccent.train.checkpoint import TRAINING_FORMAT
    from flowaccent.train.trainer import train

    path, _ = gaussian_dir
    exp = tmp_path / "exp"
    train(small_config(epochs=1), exp, [str(path)], quiet=True)
    last = exp / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    assert state["training_format"] == TRAINING_FORMAT
    capsys.readouterr()
    train(small_config(epochs=2), exp, [str(path)], resume=True, quiet=True)
    assert "note:" not in capsys.readouterr().err
    for written, by in [(None, "an older flowaccent (before checkpoints recorded their training's format)"),
                        (TRAINING_FORMAT + 1, f"a flowaccent of training format {TRAINING_FORMAT + 1} (this one's: "
                                              f"{TRAINING_FORMAT})")]:
        if written is None:
            del state["training_format"]
        else:
            state["training_format"] = written
        torch.save(state, last)
        summary = train(small_config(epochs=2), exp, [str(path)], resume=True, quiet=True)
        assert summary.epochs_run == 2
        assert (f"train: note: {last} was written by {by}: the run goes on with this version's training, whose "
                "batches and steps may differ") in capsys.readouterr().err
    train(small_config(epochs=2), exp, [str(path)], resume=True, quiet=True)  # nothing to train: no note
    assert "note:" not in capsys.readouterr().err


def test_a_resume_whose_data_moved_or_whose_last_checkpoint_is_damaged_says_what_to_do(gaussian_dir, tmp_path, capsys):
    r"""A walkthrough's resume of a run whose data dir had moved said only 'DIR: no such directory'; one of a damaged
    last.pt did not say that best.pt may be whole."""
    import shutil

    from flowaccent.cli.main import main
    from flowaccent.train.trainer import train

    data, exp = shutil.copytree(gaussian_dir[0], tmp_path / "data"), tmp_path / "exp"
    train(small_config(epochs=1), exp, [str(data)], quiet=True)
    data.rename(tmp_path / "moved")
    capsys.readouterr()
    assert main(["train", "--exp", str(exp), "--resume", "--quiet"]) == 1
    assert capsys.readouterr().err == (
        f"flowaccent train: error: {data}: no such directory (a data dir the run began with, as {exp / 'data.txt'} "
        f"records it; moved since? edit {exp / 'data.txt'} to say where it is now)\n")
    (tmp_path / "moved").rename(data)
    last, best = exp / "checkpoints" / "last.pt", exp / "checkpoints" / "best.pt"
    assert last.samefile(best)  # the best epoch's, linked: damaged with it
    last.unlink()
    last.write_bytes(b"not a checkpoint")
    assert main(["train", "--exp", str(exp), "--resume", "--quiet"]) == 1
    assert capsys.readouterr().err.endswith(f"; {best}, the best epoch's, may be whole: copy it to {last} to go on "
                                            f"from that epoch; or train afresh in another --exp\n")
    shutil.copy(best, last)
    assert main(["train", "--exp", str(exp), "--resume", "--quiet"]) == 0
