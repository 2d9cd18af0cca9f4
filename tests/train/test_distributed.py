r"""``torchrun --nproc_per_node 2`` on CPU (gloo): both ranks end with the same model; the run records its
process count, and a resume with another count is refused within an epoch."""

from __future__ import annotations

import dataclasses
import fcntl
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from flowaccent.errors import ConfigError
from flowaccent.train.checkpoint import Progress
from flowaccent.train.distributed import DistEnv
from flowaccent.train.experiment import check_world
from flowaccent.train.trainer import LOCK

from .conftest import small_config


@pytest.mark.parametrize("norm", ["actnorm", "batchnorm"])
def test_two_ranks_agree(gaussian_dir, tmp_path, norm):
    r"""With BatchNorm the ranks' running statistics differed at the end (each updates its own after DDP hands
    out rank 0's), and so did their digests: every rank now ends with rank 0's, the ones it saved."""
    path, _ = gaussian_dir
    config = small_config(epochs=2, batch_size=1000).with_overrides({"model": {"norm": norm}})
    (tmp_path / "conf.yaml").write_text(config.to_yaml())
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "flowaccent",
        "train",
        "--config",
        str(tmp_path / "conf.yaml"),
        "--exp",
        str(tmp_path / "exp"),
        str(path),
        "--quiet",
        "--train.device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    digests = dict(re.findall(r"rank (\d)/2: parameter digest ([0-9a-f]{16})", result.stderr))  # lines may interleave
    assert set(digests) == {"0", "1"}, result.stderr[-3000:]
    assert digests["0"] == digests["1"]
    assert (tmp_path / "exp" / "final.pt").exists()
    assert "Traceback" not in result.stderr
    assert len(re.findall(r"^train: .*: 2 epochs", result.stderr, re.M)) == 1, "one summary line, from rank 0"
    if norm == "batchnorm":
        return
    assert torch.load(tmp_path / "exp" / "checkpoints" / "last.pt", weights_only=False)["progress"]["world"] == 2
    # one process goes on from the end of the 2-process run's last epoch, and says so
    resume = [sys.executable, "-m", "flowaccent", *cmd[cmd.index("train"):], "--resume", "--train.epochs", "3"]
    result = subprocess.run(resume, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train: resuming a run of 2 processes with 1 at the start of epoch 3" in result.stderr
    assert torch.load(tmp_path / "exp" / "checkpoints" / "last.pt", weights_only=False)["progress"]["world"] == 1


def test_a_resume_within_an_epoch_needs_the_same_process_count(tmp_path, capsys):
    last, exp = tmp_path / "checkpoints" / "last.pt", re.escape(str(tmp_path))
    with pytest.raises(ConfigError, match=r"trained with 2 processes, stopped within epoch 4; resume it with 2: "
                                          rf"torchrun --nproc_per_node 2 \$\(which flowaccent\) train --exp {exp}"
                                          r" --resume$"):
        check_world(Progress(epoch=3, step_in_epoch=5, world=2), DistEnv(0, 1, torch.device("cpu")), last)
    with pytest.raises(ConfigError, match=rf"trained with 1 process, .* resume it with 1: flowaccent train --exp "
                                          rf"{exp} --resume$"):  # was 'torchrun --nproc_per_node 1'
        check_world(Progress(epoch=3, step_in_epoch=5, world=1), DistEnv(0, 2, torch.device("cpu")), last)
    same = Progress(epoch=3, step_in_epoch=5, world=2)
    check_world(same, DistEnv(1, 2, torch.device("cpu")), last)
    assert same.world == 2 and capsys.readouterr().err == ""
    assert Progress().world == 1  # a checkpoint from before the count was recorded: one process


#: Runs ``flowaccent`` with each rank's own step means (loss, -LogP, -LogDet of its half of the batch, before the
#: step changes the weights) appended to ``$RANK_LOG.<rank>``, one JSON line per step.
RANK_LOGGING = '''
import json, os, sys, torch
from flowaccent.train import runner
step = runner.Runner._step
def logged(self, x, y, progress):
    with torch.no_grad():
        out = self.model(x, y)
    means = [out.nll.mean().item(), -out.log_p.mean().item(), -out.log_det.mean().item()]
    with open(f"{os.environ['RANK_LOG']}.{os.environ['RANK']}", "a") as f:
        f.write(json.dumps({"step": progress.global_step + 1, "means": means, "frames": len(x)}) + "\\n")
    return step(self, x, y, progress)
runner.Runner._step = logged
from flowaccent.cli.main import entry
sys.argv = ["flowaccent", *sys.argv[1:]]
entry()
'''


def test_train_records_are_over_every_ranks_batch(gaussian_dir, tmp_path):
    r"""The records gave rank 0's half of each batch (NLL 201.60 where rank 1's was 203.88, in an audit) and rank
    0's frames per second, half the run's: they are now the means over both ranks' frames, checked here against
    each rank's own means (a harness recomputes them before each step)."""
    import json

    import numpy as np

    path, _ = gaussian_dir
    config = small_config(epochs=1, batch_size=400, log_every_steps=5)
    (tmp_path / "conf.yaml").write_text(config.to_yaml())
    (tmp_path / "run.py").write_text(RANK_LOGGING)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(tmp_path / "run.py"), "train", "--config", str(tmp_path / "conf.yaml"), "--exp", str(tmp_path / "exp"),
           str(path), "--quiet", "--train.device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RANK_LOG": str(tmp_path / "means")}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [[json.loads(line) for line in (tmp_path / f"means.{r}").read_text().splitlines()] for r in (0, 1)]
    assert [s["frames"] for s in ranks[0]] == [s["frames"] for s in ranks[1]] == [200] * len(ranks[0])
    records = [json.loads(line) for line in (tmp_path / "exp" / "log" / "train.jsonl").read_text().splitlines()]
    records = [r for r in records if r["event"] == "train"]
    assert [r["step"] for r in records] == list(range(5, len(ranks[0]) + 1, 5)) and len(records) >= 3
    for record in records:
        window = [np.mean([s["means"] for s in rank[record["step"] - 5 : record["step"]]], axis=0) for rank in ranks]
        nll, neg_log_p, neg_log_det = np.mean(window, axis=0)
        assert record["nll"] == pytest.approx(nll, rel=1e-6) and record["log_p"] == pytest.approx(-neg_log_p, rel=1e-6)
        assert record["log_det"] == pytest.approx(-neg_log_det, rel=1e-6)
        assert abs(record["nll"] - nll) < 0.1 * abs(window[0][0] - nll)  # not rank 0's alone


def test_too_few_utterances_for_the_processes_says_so(tmp_path):
    r"""A dir of one utterance under 2 processes: rank 1's share is empty, yet both said 'train.batch_size 128 is
    larger than the training frames (286)' (rank 0's count, larger than 128) or '(0)'; then, once, to lower
    train.batch_size, which could not help."""
    import numpy as np

    from .conftest import write_gaussian_dir

    path = write_gaussian_dir(tmp_path / "one", np.zeros(4), np.eye(4), 1, 300, seed=0, prefix="u")
    config = small_config(epochs=1, batch_size=128, valid_fraction=0.0)
    (tmp_path / "conf.yaml").write_text(config.to_yaml())
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "flowaccent",
           "train", "--config", str(tmp_path / "conf.yaml"), "--exp", str(tmp_path / "exp"), str(path), "--quiet",
           "--train.device", "cpu"]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            timeout=300)
    assert result.returncode != 0
    assert ("flowaccent train: error: 1 training utterance for 2 processes, each of which streams its own share of "
            "them: a process has none; use at most 1 process\n") in result.stderr, result.stderr[-3000:]
    assert result.stderr.count("flowaccent train: error:") == 1, "said by rank 0 alone (each rank said it)"
    assert result.stderr.count("Traceback") == 1 and "ChildFailedError" in result.stderr  # torchrun's own, alone


#: Runs ``flowaccent`` with the process of rank ``$DIE_RANK`` gone (``os._exit``, as a SIGKILL or an OOM kill
#: leaves it) at the start of step 6; with ``$DIE_BY`` SIGTERM, sent a SIGTERM of its own there (a ``kill``).
DYING = '''
import os, signal, sys
from flowaccent.train import runner
step = runner.Runner._step
def dying(self, x, y, progress):
    if progress.global_step == 5 and os.environ["RANK"] == os.environ["DIE_RANK"]:
        if os.environ.get("DIE_BY") != "SIGTERM":
            os._exit(9)
        os.kill(os.getpid(), signal.SIGTERM)  # held back till the step is counted: it stops after step 6
    return step(self, x, y, progress)
runner.Runner._step = dying
from flowaccent.cli.main import entry
sys.argv = ["flowaccent", *sys.argv[1:]]
entry()
'''


def _torchrun(tmp_path, script: str | None, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    launch = [str(tmp_path / "run.py")] if script else ["-m", "flowaccent"]
    if script:
        (tmp_path / "run.py").write_text(script)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *launch, "train",
           *args, "--quiet", "--train.device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_a_process_gone_mid_run_is_one_line_and_the_run_resumes(gaussian_dir, tmp_path):
    r"""One process killed mid-epoch: the other printed gloo's 50-line 'Connection reset by peer' traceback and
    kept nothing of the epoch. It now says so in one line and saves last.pt (its step is whole: the collective
    that failed came before the optimizer's step), and the resumed run ends as an uninterrupted one."""
    import time

    path, _ = gaussian_dir
    (tmp_path / "conf.yaml").write_text(small_config(epochs=1, batch_size=400).to_yaml())
    run = ["--config", str(tmp_path / "conf.yaml"), str(path)]
    full = _torchrun(tmp_path, None, "--exp", str(tmp_path / "full"), *run)
    assert full.returncode == 0, full.stderr[-3000:]
    cut = _torchrun(tmp_path, DYING, "--exp", str(tmp_path / "cut"), *run, env={"DIE_RANK": "1"})
    assert cut.returncode != 0
    lines = [line for line in cut.stderr.splitlines() if line.startswith("flowaccent train")]
    # torchrun may stop rank 0 (SIGTERM) before its collective fails: then it ends as terminated, saving all the same
    assert lines == [lines[0]] and (lines[0] == "flowaccent train: terminated" or re.fullmatch(
        r"flowaccent train: error: rank 0/2: another process of this run is gone \(.*(reset|closed) by peer.*\); "
        r"its own output says why", lines[0])), cut.stderr[-3000:]
    assert "[rank0]: Traceback" not in cut.stderr
    assert torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=False)["progress"]["global_step"] == 5
    resumed = _torchrun(tmp_path, None, "--exp", str(tmp_path / "cut"), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    digest = re.compile(r"rank 0/2: parameter digest ([0-9a-f]{16})\n")
    assert digest.search(resumed.stderr).group(1) == digest.search(full.stderr).group(1)
    # the main process refused (a busy exp dir) after the others joined: they leave at once, not after 30 s
    with open(tmp_path / "full" / LOCK, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        start = time.time()
        busy = _torchrun(tmp_path, None, "--exp", str(tmp_path / "full"), *run)
    assert busy.returncode != 0 and time.time() - start < 20
    assert "is being trained by another process now" in busy.stderr and "[rank1]: Traceback" not in busy.stderr


@pytest.mark.parametrize("rank", [1, 0])
def test_a_signal_to_one_rank_alone_is_said_once_by_it(rank, gaussian_dir, tmp_path):
    r"""A SIGTERM to one process alone (a ``kill``, one machine's terminal). To rank 1: it said nothing (the signals a
    terminal or torchrun sends reach rank 0 too, which says them), and rank 0's 'another process of this run is gone;
    its own output says why' pointed at nothing; rank 1 now says it, with its rank, as rank 0 left no line of its
    own. To rank 0: it says it (and saves ``last.pt``), and rank 1, whose collective broke as rank 0 left, added
    'another process of this run is gone' after it; rank 1 now says that only where rank 0 left no line (a SIGKILL)."""
    path, _ = gaussian_dir
    (tmp_path / "conf.yaml").write_text(small_config(epochs=1, batch_size=400).to_yaml())
    cut = _torchrun(tmp_path, DYING, "--exp", str(tmp_path / "cut"), "--config", str(tmp_path / "conf.yaml"),
                    str(path), env={"DIE_RANK": str(rank), "DIE_BY": "SIGTERM"})
    assert cut.returncode != 0
    lines = [line for line in cut.stderr.splitlines() if line.startswith("flowaccent train")]
    if rank == 0:
        assert lines == ["flowaccent train: terminated"], cut.stderr[-3000:]
        assert (tmp_path / "cut" / "checkpoints" / "last.pt").exists()
        assert (f"'torchrun --nproc_per_node 2 $(which flowaccent) train --exp {tmp_path / 'cut'} --resume' goes on "
                "from it\n") in cut.stderr  # it said the plain command, which refuses to go on with 1 process
        return
    assert "flowaccent train: rank 1/2: terminated" in lines, cut.stderr[-3000:]
    # rank 0: the peer gone, or torchrun's SIGTERM once rank 1 has exited; said once
    assert len(lines) == 2 and (lines[lines[0].endswith("rank 1/2: terminated")] == "flowaccent train: terminated" or
                                "rank 0/2: another process of this run is gone" in cut.stderr), cut.stderr[-3000:]


#: Runs ``flowaccent`` with the process of rank ``$DIE_RANK`` gone at the start of epoch 2's validation.
DYING_IN_VALIDATION = '''
import os, sys
from flowaccent.train import runner
validate, calls = runner.Runner._validate, []
def dying(self, stream):
    calls.append(1)
    if len(calls) == 2 and os.environ["RANK"] == os.environ["DIE_RANK"]:
        os._exit(9)
    return validate(self, stream)
runner.Runner._validate = dying
from flowaccent.cli.main import entry
sys.argv = ["flowaccent", *sys.argv[1:]]
entry()
'''


def test_a_process_gone_in_validation_leaves_the_epochs_steps_saved(gaussian_dir, tmp_path):
    r"""Validation's collectives (BatchNorm's statistics handed out, the NLL's sums) met a process gone: rank 0 said
    so and saved nothing, and the epoch's steps were lost (all of them with no checkpoint within epochs). Now
    ``last.pt`` holds the epoch's steps, and ``--resume`` validates it and ends as an uninterrupted run."""
    path, _ = gaussian_dir
    (tmp_path / "conf.yaml").write_text(small_config(epochs=2, batch_size=400).to_yaml())
    run = ["--config", str(tmp_path / "conf.yaml"), str(path)]
    full = _torchrun(tmp_path, None, "--exp", str(tmp_path / "full"), *run)
    assert full.returncode == 0, full.stderr[-3000:]
    steps = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=False)["progress"]["global_step"]
    cut = _torchrun(tmp_path, DYING_IN_VALIDATION, "--exp", str(tmp_path / "cut"), *run, env={"DIE_RANK": "1"})
    assert cut.returncode != 0
    saved = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=False)["progress"]
    assert saved["global_step"] == steps and saved["epoch"] == 1, f"{saved}\n{cut.stderr[-3000:]}"  # said whole
    resumed = _torchrun(tmp_path, None, "--exp", str(tmp_path / "cut"), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    digest = re.compile(r"rank 0/2: parameter digest ([0-9a-f]{16})\n")
    assert digest.search(resumed.stderr).group(1) == digest.search(full.stderr).group(1)


def test_a_batch_of_less_than_a_frame_per_process_is_refused_and_a_rounded_one_said(capsys, monkeypatch, tmp_path,
                                                                                     gaussian_dir):
    r"""``train.batch_size 1`` under 2 processes divided by zero on every rank (a traceback each, after rank 0 had
    written config.yaml); 513 trained steps of 512 frames without a word. And ``--check`` with no data dir said
    its line once per rank."""
    from flowaccent.cli.main import main
    from flowaccent.train.trainer import _check_batch

    two = DistEnv(0, 2, torch.device("cpu"))
    with pytest.raises(ConfigError, match=r"^train.batch_size 1 is less than a frame for each of the 2 processes; "):
        _check_batch(1, two)
    _check_batch(512, two)
    assert capsys.readouterr().err == ""
    _check_batch(513, two)
    assert capsys.readouterr().err == ("train: note: train.batch_size 513 is 256 frames for each of the 2 processes: "
                                       "steps of 512 frames\n")
    _check_batch(513, DistEnv(1, 2, torch.device("cpu")))
    assert capsys.readouterr().err == ""  # rank 0 says it
    _as_torchrun(monkeypatch, 1)
    assert main(["train", "--check", "--exp", str(tmp_path / "exp")]) == 0
    assert capsys.readouterr().err == ""
    (tmp_path / "conf.yaml").write_text(small_config(epochs=1).to_yaml())
    run = _torchrun(tmp_path, None, "--config", str(tmp_path / "conf.yaml"), "--exp", str(tmp_path / "one"),
                    "--train.batch-size", "1", str(gaussian_dir[0]))  # through train, before it writes anything
    lines = [line for line in run.stderr.splitlines() if line.startswith("flowaccent train")]
    assert lines == ["flowaccent train: error: train.batch_size 1 is less than a frame for each of the 2 processes; "
                     "raise it, or use fewer processes"], run.stderr[-3000:]
    assert not (tmp_path / "one").exists()


def test_scoring_a_run_stopped_within_an_epoch_names_the_processes_to_finish_it(tmp_path):
    r"""``score`` of an unfinished 2-process run said 'flowaccent train --exp EXP --resume' finishes it: refused."""
    from flowaccent.train.checkpoint import load_experiment_model

    (tmp_path / "checkpoints").mkdir()
    for step, said in ((5, "torchrun --nproc_per_node 2 $(which flowaccent) train"), (0, "flowaccent train")):
        progress = dataclasses.asdict(Progress(epoch=1, step_in_epoch=step, world=2))
        torch.save({"progress": progress}, tmp_path / "checkpoints" / "last.pt")  # at an epoch's end: any count
        with pytest.raises(ConfigError, match=re.escape(f"the run has not finished ('{said} --exp {tmp_path} "
                                                        "--resume' finishes it)")):
            load_experiment_model(tmp_path, None, "score")


def test_a_finished_run_under_another_count_is_not_said_to_resume(capsys):
    r"""A finished 40-epoch run resumed with 2 processes said 'resuming ... at the start of epoch 41'."""
    done = Progress(epoch=40, step_in_epoch=0, world=1)
    check_world(done, DistEnv(0, 2, torch.device("cpu")), Path("last.pt"), note=False)
    assert done.world == 2 and capsys.readouterr().err == ""
    check_world(Progress(epoch=3, world=1), DistEnv(0, 2, torch.device("cpu")), Path("last.pt"))
    assert "resuming a run of 1 process with 2 at the start of epoch 4" in capsys.readouterr().err


#: Runs ``flowaccent`` with each rank's validation results, and the frames its validation read, appended to
#: ``$RANK_LOG.<rank>``, one JSON line per epoch; rank 0 adds the held-out NLL of its model (the one it saves)
#: over the whole set, computed by itself alone after the shared validation.
VALIDATION_LOGGING = '''
import json, os, sys
from flowaccent.train import runner, validation
validate, joined, read = runner.Runner._validate, runner.FrameStream.joined, []
def counted(self, *args, **kwargs):
    for x, y in joined(self, *args, **kwargs):
        read.append(len(x))
        yield x, y
def logged(self, stream):
    read.clear()
    valid = validate(self, stream)
    record = {"valid": valid, "read": sum(read)}
    if os.environ["RANK"] == "0":
        record["alone"] = validation.held_out_nll(self.model, stream, self.cfg.batch_size, self.env.device, "fp32")
    with open(f"{os.environ['RANK_LOG']}.{os.environ['RANK']}", "a") as f:
        f.write(json.dumps(record) + "\\n")
    return valid
runner.Runner._validate, runner.FrameStream.joined = logged, counted
from flowaccent.cli.main import entry
sys.argv = ["flowaccent", *sys.argv[1:]]
entry()
'''


def test_the_ranks_validate_one_model_on_their_shares_and_agree(gaussian_dir, tmp_path):
    r"""Each rank computed the validation NLL of the whole held-out set itself, with its own BatchNorm running
    statistics (updated from its own shard after DDP handed out rank 0's): the ranks' NLLs differed, and so could
    their best epoch and their early stop (one rank then waited for the other's gradients until the 30-minute
    timeout). Now every rank validates rank 0's model on its share of the utterances, the sums added over ranks:
    every rank holds the same result, over the whole set, in half the work."""
    import json

    path, _ = gaussian_dir
    config = small_config(epochs=2, batch_size=400).with_overrides({"model": {"norm": "batchnorm"}})
    (tmp_path / "conf.yaml").write_text(config.to_yaml())
    run = ["--config", str(tmp_path / "conf.yaml"), "--exp", str(tmp_path / "exp"), str(path)]
    result = _torchrun(tmp_path, VALIDATION_LOGGING, *run, env={"RANK_LOG": str(tmp_path / "valid")})
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [[json.loads(line) for line in (tmp_path / f"valid.{r}").read_text().splitlines()] for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 2
    records = [json.loads(line) for line in (tmp_path / "exp" / "log" / "train.jsonl").read_text().splitlines()]
    logged = [r["valid"] for r in records if r["event"] == "epoch"]
    for epoch, (zero, one) in enumerate(zip(*ranks)):
        assert zero["valid"] == one["valid"] == logged[epoch]
        total = zero["valid"]["frames"]  # the held-out utterances' frames
        assert zero["read"] + one["read"] == total and 0 < zero["read"] < total  # each rank its share
        # of rank 0's model: without rank 0's BatchNorm statistics handed out first, rank 1 validated its own
        alone = zero["alone"]
        assert alone["frames"] == total
        assert alone["nll"] == pytest.approx(zero["valid"]["nll"], rel=1e-7)
        assert alone["log_det"] == pytest.approx(zero["valid"]["log_det"], rel=1e-7)


#: Runs ``flowaccent`` with rank 1 alone failing on its own, before its data is read.
OWN_ERROR = '''
import os, sys
from flowaccent.errors import DataDirError
from flowaccent.train import trainer
train = trainer._train
def failing(*args, **kwargs):
    if os.environ["RANK"] == "1":
        raise DataDirError("rank 1's own trouble")
    return train(*args, **kwargs)
trainer._train = failing
from flowaccent.cli.main import entry
sys.argv = ["flowaccent", *sys.argv[1:]]
entry()
'''


def test_an_error_every_rank_hits_is_said_once_and_one_of_its_own_with_its_rank(tmp_path, gaussian_dir):
    r"""A missing data dir under 2 processes printed 'flowaccent train: error: ...: no such directory' twice, once
    per rank (8 times under 8). Rank 0 says it now, and the others where theirs differs, naming their rank."""
    result = _torchrun(tmp_path, None, "--exp", str(tmp_path / "exp"), str(tmp_path / "missing"))
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("flowaccent train: error:")]
    assert errors == [f"flowaccent train: error: {tmp_path / 'missing'}: no such directory"], result.stderr[-3000:]
    own = _torchrun(tmp_path, OWN_ERROR, "--exp", str(tmp_path / "exp"), str(tmp_path / "missing"))
    errors = [line for line in own.stderr.splitlines() if line.startswith("flowaccent train: error:")]
    assert sorted(errors) == [f"flowaccent train: error: {tmp_path / 'missing'}: no such directory",
                              "flowaccent train: error: rank 1/2: rank 1's own trouble"], own.stderr[-3000:]
    (tmp_path / "conf.yaml").write_text(small_config(epochs=1).to_yaml())
    alone = _torchrun(tmp_path, OWN_ERROR, "--config", str(tmp_path / "conf.yaml"), "--exp", str(tmp_path / "alone"),
                      str(gaussian_dir[0]))  # rank 0 has no error of its own to say
    assert "flowaccent train: error: rank 1/2: rank 1's own trouble" in alone.stderr, alone.stderr[-3000:]
    assert "waitForInput" not in alone.stderr, alone.stderr[-3000:]  # two c10d socket warnings came before its line


#: A command line of each command but train, with paths under a folder that does not exist.
OTHERS = {
    "synth": ["synth", "OUT"], "fbank": ["fbank", "DATA"], "validate": ["validate", "DATA"],
    "fixdir": ["fixdir", "DATA"], "cmvn": ["cmvn", "DATA"],
    "plot": ["plot", "--exp", "EXP", "--scores", "OUT"],
    "report": ["report", "--exp", "EXP", "--scores", "OUT"], "compare": ["compare", "OUT"],
    "phones": ["phones", "--scores", "OUT", "CTM"],
    "blurmask": ["blurmask", "--exp", "EXP", "--data", "DATA", "--out", "OUT"],
}


def _as_torchrun(monkeypatch, rank: int, world: int = 2) -> None:
    r"""This process's environment as torchrun makes it for process ``rank`` of ``world``."""
    for name, value in (("WORLD_SIZE", world), ("RANK", rank), ("LOCAL_RANK", rank), ("MASTER_ADDR", "127.0.0.1"),
                        ("MASTER_PORT", "29500")):
        monkeypatch.setenv(name, str(value))


def test_another_ranks_line_starts_a_line_of_its_own(monkeypatch, capsys):
    r"""Rank 1's error was printed on the end of rank 0's progress bar line ('0/37 [00:00<?, ?step/s]flowaccent
    train: error: rank 1/2: ...'), which the bar's next redraw wiped on a terminal."""
    from flowaccent.cli import _group
    from flowaccent.torchrun import own_line, with_rank
    from flowaccent.train import distributed

    assert own_line("x") == "x"  # outside torchrun
    monkeypatch.setattr(_group.torchrun, "joined", lambda: True)
    monkeypatch.setattr(distributed, "mark_said", lambda line: None)
    for rank, said in ((1, "\nflowaccent train: error: rank 1/2: bad\n"), (0, "flowaccent train: error: bad\n")):
        _as_torchrun(monkeypatch, rank)
        monkeypatch.setattr(distributed, "said_once", lambda line, r=rank: with_rank(line, r, 2) if r else line)
        _group.say_error("flowaccent train: error: bad")
        assert capsys.readouterr().err == said


def _stopped_by_torchrun(seconds):
    r"""``time.sleep`` as torchrun's SIGTERM breaks into it (the command line's handler: recorded, then Ctrl-C's
    KeyboardInterrupt), once rank 0 has exited."""
    from flowaccent.cli import _stops

    _stops.TERMINATED.append(signal.SIGTERM)
    raise KeyboardInterrupt


@pytest.mark.parametrize("command", sorted(OTHERS))
def test_only_train_and_score_run_as_several_torchrun_processes(command, tmp_path, monkeypatch, capsys):
    r"""Under torchrun, each copy of another command would do the whole work (two of ``score``, before it shared its
    sets, into one ``--out``: one refused as busy). Rank 0 says so in one line, every rank exits with 2 and touches
    nothing; one process runs, also where a WORLD_SIZE is left in the shell."""
    from flowaccent.cli._group import SHARED
    from flowaccent.cli.main import COMMANDS, main

    assert set(OTHERS) == set(COMMANDS) - set(SHARED), "a command added: add it here"
    argv = [str(tmp_path / a) if a.isupper() else a for a in OTHERS[command]]
    monkeypatch.setattr("time.sleep", _stopped_by_torchrun)
    for rank, said in ((0, 1), (1, 0)):
        _as_torchrun(monkeypatch, rank)
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count(f"flowaccent {command}: error: started by torchrun as 2 processes") == said, err
        assert err.count("\n") == said
    assert not any(tmp_path.iterdir())
    _as_torchrun(monkeypatch, 0, world=1)  # torchrun --nproc_per_node 1: the command itself runs (and fails here)
    main(argv)  # returns: no os._exit (distributed.finish) without a process group
    assert "started by torchrun" not in capsys.readouterr().err
    for name in ("LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "RANK"):  # WORLD_SIZE=2 (and RANK) left in the shell
        _as_torchrun(monkeypatch, 0)
        monkeypatch.delenv(name)
        main(argv)
        assert "started by torchrun" not in capsys.readouterr().err, name


def test_an_error_of_the_command_line_is_said_by_rank_0_alone(tmp_path, monkeypatch, capsys):
    r"""Errors met before the processes join (options, a config) are every rank's alike: each said it, once per
    rank. Rank 0 says it; another waits for torchrun to stop it, and says it with its rank where that does not
    come (rank 0 did not meet it) or where a Ctrl-C breaks into its wait (it said nothing, and rank 0 sat in the
    rendezvous till torchrun killed it)."""
    from flowaccent.cli.main import main

    bad = [(["score", "--exp", "E", "--out", "O", "D", "--batch-frames", "0"], 1,
            "flowaccent score: error: batch_frames (--batch-frames) must be >= 1, got 0"),
           (["score", "--bogus"], 2, "flowaccent score: error: "),
           (["train", "--exp", "E", "--train.epochs", "0"], 1, "flowaccent train: error: train: epochs must be >= 1")]
    slept = []

    def stopped(seconds):
        slept.append(seconds)
        _stopped_by_torchrun(seconds)

    def ctrl_c(seconds):
        raise KeyboardInterrupt

    def status(argv) -> int:
        try:
            return main(argv)
        except SystemExit as usage:  # argparse's
            return usage.code

    for argv, code, said in bad:
        _as_torchrun(monkeypatch, 0)
        assert status(argv) == code
        err = capsys.readouterr().err
        assert err.startswith(said) and err.count("\n") == 1, err
        _as_torchrun(monkeypatch, 1)
        slept.clear()
        monkeypatch.setattr("time.sleep", stopped)
        assert status(argv) == code and capsys.readouterr().err == "" and slept == [10.0]
        for waited in (lambda seconds: None, ctrl_c):  # not stopped (rank 0 did not meet it), or a Ctrl-C
            monkeypatch.setattr("time.sleep", waited)
            assert status(argv) == code
            assert capsys.readouterr().err.startswith(said.replace(": error: ", ": error: rank 1/2: ", 1))


def test_rank_left_in_the_shell_is_not_a_run(gaussian_dir, tmp_path, monkeypatch, capsys):
    r"""``RANK=1`` alone (no torchrun): train took itself for rank 1 of one process, trained, saved nothing and
    exited 0 without a word."""
    from flowaccent.cli.main import main

    (tmp_path / "conf.yaml").write_text(small_config(epochs=1).to_yaml())
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    argv = ["train", "--config", str(tmp_path / "conf.yaml"), "--exp", str(tmp_path / "exp"), str(gaussian_dir[0]),
            "--quiet", "--train.device", "cpu"]
    assert main(argv) == 0
    assert (tmp_path / "exp" / "final.pt").is_file() and "train: " in capsys.readouterr().err
    with open(tmp_path / "exp" / LOCK, "w") as held:  # the run is the main process's: it takes the lock
        fcntl.flock(held, fcntl.LOCK_EX)
        assert main([*argv[:5], "--resume", *argv[5:]]) == 1
    assert "is being trained by another process now" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["train", "--help"], ["score", "--help"]])
def test_help_and_version_under_torchrun_are_printed_once(argv, monkeypatch, capsys):
    r"""``torchrun --nproc_per_node 8 -m flowaccent train --help`` printed the help 8 times, once per rank."""
    from flowaccent.cli.main import main

    for rank in (1, 0):
        _as_torchrun(monkeypatch, rank)
        with pytest.raises(SystemExit) as ended:
            main(argv)
        assert ended.value.code == 0
        out = capsys.readouterr().out
        assert ("flowaccent" in out) == (rank == 0), (rank, out[:200])


def test_a_signal_in_the_last_waits_of_a_rank_ends_it_without_a_traceback(monkeypatch):
    r"""A Ctrl-C or torchrun's SIGTERM while a rank waited for rank 0's line (said_once) or at the last barrier
    (finish) gave a KeyboardInterrupt traceback. said_once then says the rank's line; finish ends the process."""
    import torch.distributed as dist

    from flowaccent.train import distributed

    def signal_comes(*args, **kwargs):
        raise KeyboardInterrupt

    class Store:
        check = staticmethod(signal_comes)

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist.distributed_c10d, "_get_default_store", lambda: Store())
    try:  # a KeyboardInterrupt out of a test ends pytest's session as if it were passing
        said = distributed.said_once("flowaccent train: error: x")
    except KeyboardInterrupt:
        pytest.fail("the signal came through said_once")
    assert said == "flowaccent train: error: rank 1/2: x"
    monkeypatch.setattr(dist, "barrier", signal_comes)
    monkeypatch.setattr(dist, "destroy_process_group", lambda: None)

    def exit_(code):
        raise SystemExit(code)

    monkeypatch.setattr(distributed.os, "_exit", exit_)
    monkeypatch.setattr(distributed, "ignore_stops", lambda: None)  # not in pytest's process
    with pytest.raises(SystemExit) as ended:
        try:
            distributed.finish(0)
        except KeyboardInterrupt:
            pytest.fail("the signal came through finish")
    assert ended.value.code == 0


def test_a_signal_while_a_worker_ends_does_not_unwind_past_its_exit(tmp_path):
    r"""torchrun's SIGTERM, sent once another process has exited, landed in ``finish``'s flush after the group's end:
    its KeyboardInterrupt unwound past ``os._exit`` (a traceback, and the interpreter's own exit, which torch 2.13 with
    gloo may abort). The stop signals are ignored there now (blocked in the main thread, one that reached another of
    the process's threads still raised there, in 3 of 5 runs under load); the process exits with its own status."""
    script = tmp_path / "ending.py"
    script.write_text(
        "import os, signal, sys, threading, time\n"
        "from flowaccent.train.distributed import finish\n"
        "def stop(*args):\n"
        "    raise KeyboardInterrupt\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "other = threading.Thread(target=time.sleep, args=(30,), daemon=True)  # as torch's threads\n"
        "other.start()\n"
        "class Out:\n"
        "    def write(self, text):\n"
        "        return len(text)\n"
        "    def flush(self):  # torchrun's SIGTERM, as it lands in the flush: in this thread, then in another\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        signal.pthread_kill(other.ident, signal.SIGTERM)\n"
        "        time.sleep(0.2)\n"
        "sys.stdout = Out()\n"
        "finish(7)\n")
    ended = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert (ended.returncode, ended.stderr) == (7, "")


def test_torchruns_sigterm_once_rank_0_said_the_error_says_nothing_more(tmp_path, monkeypatch):
    r"""CI, under load: rank 0 said its error and exited, and torchrun's SIGTERM reached rank 1 while it waited for
    rank 0's line (said_once: it said the line again, with its rank) or just after, before the group's end (a
    KeyboardInterrupt traceback). said_once now asks the store once more; a signal after it ends the process."""
    import torch.distributed as dist

    from flowaccent import torchrun
    from flowaccent.cli import _group, main
    from flowaccent.train import distributed

    line = "flowaccent train: error: x"

    class Store:  # rank 0's line arrives with torchrun's SIGTERM
        checks = 0

        def check(self, keys):
            Store.checks += 1
            if Store.checks == 1:
                _stopped_by_torchrun(0)
            return True

        def get(self, key):
            return line.encode()

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist.distributed_c10d, "_get_default_store", lambda: Store())
    try:
        assert distributed.said_once(line) is None and Store.checks == 2
    except KeyboardInterrupt:
        pytest.fail("the signal came through said_once")

    def ended(code):
        raise SystemExit(code)

    monkeypatch.setattr(torchrun, "joined", lambda: True)
    monkeypatch.setattr(_group, "say_error", _stopped_by_torchrun)
    monkeypatch.setattr(distributed, "finish", ended)
    with pytest.raises(SystemExit) as stopped:
        try:
            main.main(["report", "--exp", str(tmp_path / "exp"), "--scores", str(tmp_path / "scores")])
        except KeyboardInterrupt:
            pytest.fail("the signal came through main")
    assert stopped.value.code == 143


def test_another_command_under_torchrun_is_one_line(tmp_path):
    r"""The real thing: ``torchrun --nproc_per_node 2 flowaccent report``, one line of flowaccent's and nothing made
    (where rank 1 exited first, torchrun stopped rank 0 before it said why)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "flowaccent",
           "report", "--exp", str(tmp_path / "exp"), "--scores", str(tmp_path / "scores")]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            timeout=300)
    assert result.returncode != 0
    assert result.stderr.count("flowaccent report: error:") == 1, result.stderr[-3000:]
    assert "started by torchrun as 2 processes (WORLD_SIZE=2)" in result.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("where", ["build_parser", "run"])
def test_a_signal_is_said_by_rank_0_alone(where, signum, tmp_path, monkeypatch, capsys):
    r"""A terminal's Ctrl-C reaches every torchrun worker, and torchrun's SIGTERM every one still running once one
    has ended: each rank said 'interrupted' (two lines), and under load a rank still importing torch, or behind rank 0
    when rank 0 said an error and exited, added 'flowaccent: terminated' to rank 0's error. Rank 0 says it alone:
    torchrun's SIGTERM comes once another process has ended, which says why."""
    from flowaccent.cli import _stops, main, score

    def signal_comes(*args, **kwargs):
        if signum != signal.SIGINT:  # as the command's handler records it
            _stops.TERMINATED.append(signum)
        raise KeyboardInterrupt

    monkeypatch.setattr(main if where == "build_parser" else score, where, signal_comes)
    for rank in (0, 1):
        _as_torchrun(monkeypatch, rank)
        try:
            code = main.main(["score", "--exp", str(tmp_path / "exp"), "--out", str(tmp_path / "out"),
                              f"native={tmp_path}"])
        except KeyboardInterrupt:
            pytest.fail("the signal came through main")
        said = capsys.readouterr().err
        assert code == 128 + signum
        assert said == ("" if rank else f"flowaccent{'' if where == 'build_parser' else ' score'}: "
                        f"{'interrupted' if signum == signal.SIGINT else 'terminated'}\n"), (rank, said)


#: Runs ``flowaccent`` with an option only rank 1 is given: an error of its command line that rank 0 does not meet.
RANK_1_ALONE_ERRS = '''
import os, sys
from flowaccent.cli.main import entry
sys.argv = ["flowaccent", *sys.argv[1:], *(["--train.epochs", "0"] if os.environ["RANK"] == "1" else [])]
entry()
'''


def test_an_error_of_rank_1_alone_before_the_group_ends_the_run_without_torchruns_grace(tmp_path, gaussian_dir):
    r"""Rank 1 said its error (after waiting for rank 0 to say it) and exited; rank 0 sat in the rendezvous, a C++ wait
    that runs no Python handler, deaf to torchrun's SIGTERM until torchrun killed it 30 s later (41.6 s in all). A
    stop signal now ends a process in the rendezvous at once."""
    import time

    path, _ = gaussian_dir
    (tmp_path / "conf.yaml").write_text(small_config(epochs=1).to_yaml())
    start = time.monotonic()
    result = _torchrun(tmp_path, RANK_1_ALONE_ERRS, "--config", str(tmp_path / "conf.yaml"), "--exp",
                       str(tmp_path / "exp"), str(path))
    took = time.monotonic() - start
    lines = [line for line in result.stderr.splitlines() if line.startswith("flowaccent train")]
    assert lines == ["flowaccent train: error: rank 1/2: train: epochs must be >= 1, got 0"], result.stderr[-3000:]
    assert result.returncode != 0 and took < 30, (took, result.stderr[-3000:])


def test_a_stop_signal_ends_a_rendezvous_at_once_and_the_handlers_come_back():
    from flowaccent.signals import ending_at_once, owned

    def callers(signum, frame):
        pass

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, callers)  # the command line's (owned)
        signal.signal(signal.SIGHUP, callers)  # a library caller's: left as it is
        with owned([signal.SIGTERM]), ending_at_once():
            assert signal.getsignal(signal.SIGINT) == signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
            assert signal.getsignal(signal.SIGHUP) is callers
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.getsignal(signal.SIGTERM) is callers and signal.getsignal(signal.SIGHUP) is callers
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def test_the_resume_command_is_pasted_as_it_reads():
    r"""A path with a space ran ``--exp runs/my``; a progress of another shape (an infinite world, a tensor) was a
    traceback, or a count of 10^30 processes."""
    from flowaccent.train.checkpoint import resume_command

    assert resume_command("runs/my exp", 1) == "flowaccent train --exp 'runs/my exp' --resume"
    assert resume_command("exp/a", 2) == "torchrun --nproc_per_node 2 $(which flowaccent) train --exp exp/a --resume"


@pytest.mark.parametrize("progress", [{"step_in_epoch": 5, "world": float("inf")}, {"step_in_epoch": 5, "world": 1e30},
                                      {"step_in_epoch": torch.ones(2), "world": 2}, [1, 2], {"world": 2}])
def test_a_checkpoint_of_another_shape_is_told_the_plain_command(progress, tmp_path):
    from flowaccent.train.checkpoint import kept_world

    torch.save({"progress": progress}, tmp_path / "last.pt")
    assert kept_world(tmp_path / "last.pt") == 1
