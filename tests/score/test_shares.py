r"""``score`` under ``torchrun``: each process scores a share of every set, rank 0 joins them into what one process
writes (the latent sample: another uniform one)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest

from flowaccent.cli.main import main
from flowaccent.data import load_data_dir, write_spk2utt, write_table
from flowaccent.score.config import ScoreConfig
from flowaccent.score.resume import MARKER
from flowaccent.score.scorer import Reservoir
from flowaccent.score.shares import _joined_sample, share_of
from flowaccent.score.tables import read_tsv


def _torchrun(*args: str, script: Path | None = None, device: str = "cpu") -> subprocess.CompletedProcess:
    launch = [str(script)] if script else ["-m", "flowaccent"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *launch,
           "score", *args, "--quiet", "--device", device]
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          timeout=300)


def test_shares_are_contiguous_runs_of_about_equal_frames(tmp_path):
    utts = [f"s-{i:02d}" for i in range(10)]
    frames = [100, 1, 1, 1, 1, 1, 1, 1, 1, 92]
    write_table(tmp_path / "utt2spk", {u: "s" for u in utts})
    write_spk2utt(tmp_path / "spk2utt", {u: "s" for u in utts})
    write_table(tmp_path / "feats.scp", {u: f"x.ark:{i}" for i, u in enumerate(utts)})
    write_table(tmp_path / "utt2num_frames", dict(zip(utts, map(str, frames))))
    write_table(tmp_path / "utt2score", {utts[0]: "3"})
    data = load_data_dir(tmp_path)
    parts = [share_of(data, rank, 2) for rank in range(2)]
    assert [p.utts for p in parts] == [utts[:1], utts[1:]]  # 100 frames against 100
    assert list(parts[1].tables["feats.scp"]) == utts[1:] and list(parts[1].tables["utt2num_frames"]) == utts[1:]
    assert parts[1].tables["utt2score"] == data.tables["utt2score"]  # read whole: the table's columns stay one
    thirds = [share_of(data, rank, 3).utts for rank in range(3)]
    assert sum(thirds, []) == utts and all(thirds)
    many = [share_of(data, rank, 12).utts for rank in range(12)]
    assert sum(many, []) == utts and sum(not m for m in many) >= 2  # more processes than utterances: some idle
    (tmp_path / "utt2num_frames").unlink()
    assert [len(share_of(load_data_dir(tmp_path), rank, 2).utts) for rank in range(2)] == [5, 5]  # by count


def test_the_joined_latent_sample_is_uniform(tmp_path):
    r"""Two shares of 300 and 700 frames, each with its own sample of 100, joined into one of 100: each frame is kept
    with probability 0.1, and how many come from the first share varies as a uniform sample's would
    (hypergeometric: variance 18.9; a split in proportion to the shares would always take 30)."""
    rows = np.arange(1000, dtype=np.float32)[:, None]
    counts, first = np.zeros(1000), []
    for seed in range(300):
        parts = []
        for rank, (start, stop) in enumerate(((0, 300), (300, 1000))):
            part = tmp_path / f"{seed}-{rank}"
            part.mkdir()
            sample = Reservoir(100, 1, seed * 2 + rank)
            sample.add(rows[start:stop], np.array([f"u{int(r)}" for r in rows[start:stop, 0]], dtype=object))
            kept, tags = sample.sample()
            np.save(part / "latents.npy", kept)
            (part / "latent_utts.txt").write_text("".join(f"{t}\n" for t in tags))
            parts.append(part)
        joined, utts = _joined_sample(parts, [300, 700], ScoreConfig(max_latents=100, seed=seed))
        assert len(joined) == 100 and len(set(joined[:, 0])) == 100
        assert utts == [f"u{int(r)}" for r in joined[:, 0]]
        counts[joined[:, 0].astype(int)] += 1
        first.append(int((joined[:, 0] < 300).sum()))
    deciles = counts.reshape(10, 100).sum(1) / 300  # expected 10 per decile
    assert np.all(np.abs(deciles - 10) < 1.0), deciles
    assert 27 < np.mean(first) < 33 and 12 < np.var(first) < 28, (np.mean(first), np.var(first))


@pytest.fixture(scope="module")
def one_and_two(trained, tmp_path_factory):
    r"""The three sets scored by one process and by two (torchrun), with a latent sample smaller than the sets."""
    root, exp = trained
    out = tmp_path_factory.mktemp("shares")
    specs = [f"{n}={root / n}" for n in ("native", "zh", "ja")]
    options = ["--baseline", "gmm", "--max-latents", "500"]
    assert main(["score", "--exp", str(exp), "--out", str(out / "one"), *specs, *options, "--quiet"]) == 0
    result = _torchrun("--exp", str(exp), "--out", str(out / "two"), *specs, *options)
    assert result.returncode == 0, result.stderr[-3000:]
    return out / "one", out / "two", exp, specs, options


def test_two_processes_write_what_one_does(one_and_two):
    one, two, *_ = one_and_two
    for name in ("native", "zh", "ja"):
        a, b = read_tsv(one / name / "utt_scores.tsv"), read_tsv(two / name / "utt_scores.tsv")
        assert a.keys() == b.keys() and a["utt"] == b["utt"] and a["spk"] == b["spk"]
        for column in set(a) - {"utt", "spk"}:
            np.testing.assert_allclose(a[column], b[column], rtol=1e-6, atol=1e-5, err_msg=f"{name} {column}")
        assert (one / name / "spk_scores.tsv").read_text().split("\n")[0] == \
            (two / name / "spk_scores.tsv").read_text().split("\n")[0]
        arks = [dict(kaldiio.load_scp(str(d / name / "frame_scores.scp"))) for d in (one, two)]
        assert list(arks[0]) == list(arks[1])
        for utt in arks[0]:
            np.testing.assert_allclose(arks[0][utt], arks[1][utt], rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(np.load(one / name / "utt_latent_means.npy"),
                                   np.load(two / name / "utt_latent_means.npy"), atol=1e-5)
        latents = np.load(two / name / "latents.npy")
        tags = (two / name / "latent_utts.txt").read_text().split("\n")[:-1]
        assert latents.shape == np.load(one / name / "latents.npy").shape == (500, 6)
        assert len(tags) == 500 and set(tags) <= set(a["utt"]) and len(np.unique(latents, axis=0)) == 500
        assert not list((two / name).glob(".share.*"))
        assert json.loads((two / name / MARKER).read_text())["options"]["processes"] == 2
    s1, s2 = (json.loads((d / "summary.json").read_text()) for d in (one, two))
    for name in ("native", "zh", "ja"):
        for key in ("num_utts", "num_frames", "log_ll", "log_p", "log_det", "gmm_log_ll"):
            assert s1["sets"][name][key] == pytest.approx(s2["sets"][name][key], rel=1e-6, abs=1e-5), (name, key)
    assert s1["detection"] == s2["detection"]  # ranks of the utterances' scores


def test_resume_keeps_a_set_scored_by_as_many_processes(one_and_two, capsys):
    one, two, exp, specs, options = one_and_two
    again = _torchrun("--exp", str(exp), "--out", str(two), *specs, *options, "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("(--resume: scored completely before") == 3
    assert main(["score", "--exp", str(exp), "--out", str(two), *specs, *options, "--quiet", "--resume"]) == 0
    assert capsys.readouterr().err.count("scoring it again: what it was scored from changed: options (processes)") == 3
    assert "processes" not in json.loads((two / "zh" / MARKER).read_text())["options"]


def test_an_error_in_another_ranks_share_is_one_line(trained, tmp_path):
    r"""A damaged utterance in the second half of a set (rank 1's share): one line naming it and the rank; no set
    folder left, no share folder, no traceback of flowaccent's."""
    root, exp = trained
    bad = tmp_path / "zh"
    bad.mkdir()
    for name in ("utt2spk", "spk2utt", "feats.scp"):  # feats.scp: the ark by its full path
        (bad / name).write_text((root / "zh" / name).read_text())
    frames = dict(line.split() for line in (root / "zh" / "utt2num_frames").read_text().splitlines())
    last = list(frames)[-1]
    frames[last] = "39"
    write_table(bad / "utt2num_frames", frames)
    result = _torchrun("--exp", str(exp), "--out", str(tmp_path / "out"), f"native={root / 'native'}", f"zh={bad}")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("flowaccent score:")]
    assert len(lines) == 1 and lines[0].startswith("flowaccent score: error: rank 1/2: ") and last in lines[0], \
        result.stderr[-3000:]
    assert result.stderr.count("Traceback") == 1 and "ChildFailedError" in result.stderr  # torchrun's own, alone
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != ".out.lock") == ["native"]
    assert not list(Path(tmp_path / "out").rglob(".share.*"))


def test_a_share_rank_0_cannot_see_is_said(tmp_path):
    r"""Processes on machines that do not share ``--out``: rank 1's share is not where rank 0 looks for it."""
    from flowaccent.errors import FlowAccentError
    from flowaccent.score.shares import join, share_folder

    (share_folder(tmp_path, 0)).mkdir()
    (share_folder(tmp_path, 0) / "utt_scores.tsv").write_text("utt\n")
    with pytest.raises(FlowAccentError, match=r"\.share\.1: a share scored by another process is not there: --out "
                                              "must be a folder every process sees"):
        join(tmp_path, [10, 10], ScoreConfig())


#: Runs ``flowaccent`` with rank 0 stopped (a Ctrl-C) once it has scored its share of the first set.
STOPPED_AFTER_ITS_SHARE = """
import os, sys
from flowaccent.score import shares
score_share = shares._score_share
def stopped(*args, **kwargs):
    outcome = score_share(*args, **kwargs)
    if os.environ["RANK"] == "0":
        raise KeyboardInterrupt
    return outcome
shares._score_share = stopped
from flowaccent.cli.main import entry
sys.argv = ["flowaccent", *sys.argv[1:]]
entry()
"""


def test_no_share_is_left_by_a_stopped_run_or_beside_a_one_process_runs_set(trained, tmp_path):
    r"""A run stopped during the shares left ``.share.*`` in a set folder that was there before (only a new one was
    removed), and a one-process rerun stamped the folder complete with them inside."""
    root, exp = trained
    out, spec = tmp_path / "out", f"native={root / 'native'}"
    assert main(["score", "--exp", str(exp), "--out", str(out), spec, "--quiet"]) == 0
    (tmp_path / "run.py").write_text(STOPPED_AFTER_ITS_SHARE)
    stopped = _torchrun("--exp", str(exp), "--out", str(out), spec, script=tmp_path / "run.py")
    assert stopped.returncode != 0 and "flowaccent score: interrupted" in stopped.stderr, stopped.stderr[-3000:]
    assert (out / "native").is_dir() and not list(out.rglob(".share.*"))
    (out / "native" / ".share.1").mkdir()  # as a SIGKILLed rank 0 leaves them
    (out / "native" / ".share.1" / "frame_scores.ark").write_bytes(b"x")
    assert main(["score", "--exp", str(exp), "--out", str(out), spec, "--quiet"]) == 0
    assert not list(out.rglob(".share.*"))


def test_a_signal_during_a_shares_removal_does_not_cut_it_short(tmp_path, monkeypatch, python_sigint):
    r"""torchrun's SIGTERM follows a process's end by milliseconds, as the others remove their shares: one that came
    inside the removal cut it short, and part of the share stayed. The removal now ends first, then the signal."""
    import shutil
    import signal

    from flowaccent.score import shares

    folder = tmp_path / "set"
    for rank in (0, 1):
        (shares.share_folder(folder, rank)).mkdir(parents=True)
        for name in ("frame_scores.ark", "utt_scores.tsv"):
            (shares.share_folder(folder, rank) / name).write_text("x")
    rmtree, signalled = shutil.rmtree, []

    def cut_short(path, *args, **kwargs):  # the signal comes after the first file is gone
        if not signalled:
            signalled.append(path)
            next(Path(path).iterdir()).unlink()
            os.kill(os.getpid(), signal.SIGINT)
        rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", cut_short)
    with pytest.raises(KeyboardInterrupt):
        shares.remove_shares(folder)
    assert signalled and not list(folder.iterdir())  # both shares gone, the one the signal cut into and the next


#: Runs ``flowaccent`` with rank 0 gone (``os._exit``, as a SIGKILL or an OOM kill leaves it) once rank 1 has scored
#: its share of the first set, and before rank 0 has joined the shares.
RANK_0_GONE = """
import os, sys, time
from pathlib import Path
from flowaccent.score import shares
score_share = shares._score_share
def scored_or_gone(model, data, name, folder, config, team, quiet):
    done = Path(folder).parent.parent / "rank_1_scored"
    if team.rank == 0:
        deadline = time.monotonic() + 120
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        os._exit(9)
    outcome = score_share(model, data, name, folder, config, team, quiet)
    done.touch()
    return outcome
shares._score_share = scored_or_gone
from flowaccent.cli.main import entry
sys.argv = ["flowaccent", *sys.argv[1:]]
entry()
"""


def test_a_process_removes_its_share_when_rank_0_is_gone(trained, tmp_path):
    r"""Rank 0 killed before joining the shares: it cannot remove the others' shares (it does when it stops), so each
    process removes its own (rank 0's stays, as a SIGKILL leaves it: the next run into ``--out`` removes it)."""
    root, exp = trained
    (tmp_path / "run.py").write_text(RANK_0_GONE)
    out = tmp_path / "out"
    result = _torchrun("--exp", str(exp), "--out", str(out), f"native={root / 'native'}", script=tmp_path / "run.py")
    assert result.returncode != 0 and (tmp_path / "rank_1_scored").exists(), result.stderr[-3000:]
    assert (out / "native").is_dir() and not (out / "native" / ".share.1").exists(), result.stderr[-3000:]


#: Runs ``flowaccent`` with each rank's process id in ``--out``'s parent once it has scored its share of the first set,
#: and rank 1 then sleeping (rank 0 waits for it in the join: a collective, deaf to signals) with the process group
#: among its locals, as torch's own collectives hold it (a signal in one left the group alive in its traceback).
RANK_1_SLOW = """
import os, sys, time
from pathlib import Path
import torch.distributed as dist
from flowaccent.score import shares
score_share = shares._score_share
def slow(model, data, name, folder, config, team, quiet):
    outcome = score_share(model, data, name, folder, config, team, quiet)
    (Path(folder).parent.parent / f"pid.{team.rank}").write_text(str(os.getpid()))
    group = dist.distributed_c10d._get_default_group()
    if team.rank == 1:
        time.sleep(120)
    return outcome
shares._score_share = slow
from flowaccent.cli.main import entry
sys.argv = ["flowaccent", *sys.argv[1:]]
entry()
"""


def test_a_ctrl_c_while_rank_0_waits_in_a_collective_is_said_once(trained, tmp_path):
    r"""A terminal's Ctrl-C reaches every process; rank 0, waiting for rank 1 in a collective, hears it only once
    rank 1 has gone. Rank 1 waits for rank 0 to say it (and says it, with its rank, where rank 0 does not: a signal
    to rank 1 alone), but rank 0 could not until rank 1 had left: each said 'interrupted' (2 s apart). Rank 1 now
    leaves the group first."""
    import signal
    import time

    root, exp = trained
    (tmp_path / "run.py").write_text(RANK_1_SLOW)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(tmp_path / "run.py"), "score", "--exp", str(exp), "--out", str(tmp_path / "out"),
           f"native={root / 'native'}", "--quiet"]
    run = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        pids = [tmp_path / f"pid.{rank}" for rank in (0, 1)]
        deadline = time.monotonic() + 120
        while not all(p.exists() for p in pids) and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1)  # rank 0 in the join
        for pid in pids:
            os.kill(int(pid.read_text()), signal.SIGINT)
        err = run.communicate(timeout=120)[1]
    finally:
        run.kill()
    assert [line for line in err.splitlines() if line.startswith("flowaccent")] == ["flowaccent score: interrupted"], (
        err[-3000:])


def test_an_error_every_rank_hits_before_any_set_is_one_line(tmp_path):
    r"""The other ranks loaded the model before rank 0 sent a set: each said 'no such checkpoint', 2 s late."""
    result = _torchrun("--exp", str(tmp_path / "nope"), "--out", str(tmp_path / "out"), str(tmp_path))
    lines = [line for line in result.stderr.splitlines() if line.startswith("flowaccent score:")]
    assert lines == [f"flowaccent score: error: --exp {tmp_path / 'nope'}: no such directory"], result.stderr[-3000:]


#: Runs ``flowaccent`` as on a machine with one GPU (none is used: the command stops before).
ONE_GPU = """
import sys, torch
torch.cuda.is_available = lambda: True
torch.cuda.device_count = lambda: 1
from flowaccent.cli.main import entry
sys.argv = ["flowaccent", *sys.argv[1:]]
entry()
"""


@pytest.mark.parametrize("device", ["auto", "cuda"])
def test_more_processes_than_gpus_is_one_line_before_any_work(trained, tmp_path, device):
    r"""Two processes on a machine with one GPU: rank 1 said so only after rank 0 had scored its share of the first
    set (on a real corpus, minutes of work lost)."""
    root, exp = trained
    (tmp_path / "run.py").write_text(ONE_GPU)
    result = _torchrun("--exp", str(exp), "--out", str(tmp_path / "out"), f"native={root / 'native'}",
                       script=tmp_path / "run.py", device=device)
    lines = [line for line in result.stderr.splitlines() if line.startswith("flowaccent score")]
    assert lines == ["flowaccent score: error: score.device (--device): 2 processes on this machine, but 1 GPU(s) "
                     "visible: start at most that many processes on it, one per GPU"], result.stderr[-3000:]
    assert result.returncode != 0 and not (tmp_path / "out").exists()


#: Runs ``flowaccent`` with an option only rank 1 is given: an error of its command line that rank 0 does not meet.
RANK_1_ALONE_ERRS = """
import os, sys
from flowaccent.cli.main import entry
sys.argv = ["flowaccent", *sys.argv[1:], *(["--batch-frames", "0"] if os.environ["RANK"] == "1" else [])]
entry()
"""


def test_an_error_of_rank_1_alone_ends_the_run_without_torchruns_grace(trained, tmp_path):
    r"""Rank 0 sat in the rendezvous, deaf to torchrun's SIGTERM, until torchrun killed it 30 s later (as ``train``'s,
    ``tests/train/test_distributed.py``)."""
    import time

    root, exp = trained
    (tmp_path / "run.py").write_text(RANK_1_ALONE_ERRS)
    start = time.monotonic()
    result = _torchrun("--exp", str(exp), "--out", str(tmp_path / "out"), f"native={root / 'native'}",
                       script=tmp_path / "run.py")
    took = time.monotonic() - start
    lines = [line for line in result.stderr.splitlines() if line.startswith("flowaccent score")]
    assert lines == ["flowaccent score: error: rank 1/2: batch_frames (--batch-frames) must be >= 1, got 0"], \
        result.stderr[-3000:]
    assert result.returncode != 0 and took < 30 and not (tmp_path / "out").exists(), (took, result.stderr[-3000:])


def test_ids_holding_line_separators_of_unicode_are_joined(trained, tmp_path):
    r"""Ids may hold U+2028 or U+0085 (data dirs split lines at \n only): the join split the shares' scps at them
    with str.splitlines, and rank 0 crashed (ValueError, a traceback)."""
    root, exp = trained
    odd = tmp_path / "odd"
    odd.mkdir()
    for name in ("utt2spk", "spk2utt", "feats.scp", "utt2num_frames"):
        text = (root / "native" / name).read_text(encoding="utf-8")
        (odd / name).write_text(re.sub(r"(n[0-9]+-[0-9]+)", "\\1\u2028\u0085", text), encoding="utf-8")
    result = _torchrun("--exp", str(exp), "--out", str(tmp_path / "out"), str(odd))
    assert result.returncode == 0, result.stderr[-3000:]
    keys = (tmp_path / "out" / "odd" / "frame_scores.scp").read_text(encoding="utf-8").split("\n")[:-1]
    utts = [line.split(" ")[0] for line in (odd / "utt2spk").read_text(encoding="utf-8").split("\n")[:-1]]
    assert [key.split(" ")[0] for key in keys] == utts and "\u2028\x85" in utts[0]


def test_the_joined_sample_of_a_billion_frames_and_more(tmp_path):
    r"""numpy's multivariate_hypergeometric refused a total of 10**9 frames (sets of ~2800 h), after every share."""
    parts = []
    for rank in range(2):
        part = tmp_path / f"{rank}"
        part.mkdir()
        np.save(part / "latents.npy", np.full((100, 1), rank, np.float32))
        (part / "latent_utts.txt").write_text(f"u{rank}\n" * 100)
        parts.append(part)
    joined, utts = _joined_sample(parts, [600_000_000, 1_800_000_000], ScoreConfig(max_latents=100))
    assert len(joined) == 100 and 10 < int((joined[:, 0] == 0).sum()) < 40  # a quarter of the frames: 25 expected


def test_a_worker_does_not_make_a_set_folder_rank_0_removed(trained, tmp_path):
    r"""A worker that reached its share after rank 0 had stopped and removed the set's folder (and a fresh --out)
    made them again through its share's parents, and they stayed, empty."""
    from flowaccent.data import load_data_dir
    from flowaccent.score.shares import Team, _score_share
    from flowaccent.train.checkpoint import load_experiment_model

    root, exp = trained
    model = load_experiment_model(exp, None, "score")
    data = load_data_dir(root / "native")
    outcome = _score_share(model, data, "native", tmp_path / "out" / "native", ScoreConfig(), Team(1, 2), True)
    assert "No such file or directory" in outcome["error"] and not (tmp_path / "out").exists()


def test_a_world_size_left_in_the_shell_is_one_line(trained, tmp_path, monkeypatch, capsys):
    r"""``WORLD_SIZE=2`` without torchrun: score's process group gave a 30-line traceback ('environment variable RANK
    expected, but not set'); the other commands said they were started by torchrun."""
    root, exp = trained
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert main(["score", "--exp", str(exp), "--out", str(tmp_path / "out"), str(root / "native"), "--quiet"]) == 1
    assert capsys.readouterr().err == ("flowaccent score: error: WORLD_SIZE=2 is set, but not RANK, LOCAL_RANK, "
                                       "MASTER_ADDR, MASTER_PORT: this process was not started by torchrun; unset "
                                       "WORLD_SIZE, or start the command with torchrun\n")
    assert main(["validate", str(root / "native")]) == 0  # the others run as one process
