r"""SIGKILL in the middle of fbank, score and report, then the same command again: the rerun
finishes and its outputs equal those of an uninterrupted run. (Training: tests/train/test_resume.py.)"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def flowaccent(*args: str) -> list[str]:
    return [sys.executable, "-m", "flowaccent", *args]


def sigint_default() -> None:
    r"""``preexec_fn``: SIGINT as a terminal's job gets it. A process started in the background of a shell
    without job control (a CI runner's ``cmd &``, ``nohup``) inherits it ignored, and so would the commands
    under test: a Ctrl-C test would then test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def kill_when(cmd: list[str], ready, timeout: float = 120) -> int:
    r"""Starts ``cmd``, SIGKILLs it once ``ready()`` holds; returns its exit status."""
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while proc.poll() is None and not ready() and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    return proc.wait()


def tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(s in p.name for s in skip)
    }


@pytest.mark.parametrize("resume", [False, True])
def test_fbank(tmp_path, resume):
    r"""With ``--resume`` the rerun takes over what the killed run wrote (its journal a line behind its ark)."""
    from flowaccent.features.fbank_journal import journal_of

    from ..conftest import make_wav_data_dir

    data = make_wav_data_dir(tmp_path / "a", utts_per_spk=100, pipe_last=False)
    reference = tmp_path / "ref" / data.name  # the same name: ark names carry it
    shutil.copytree(data, reference)
    subprocess.run(flowaccent("fbank", str(reference), "--quiet"), check=True, env=ENV)

    def lines() -> int:
        arks = list((data / "data").glob(".raw_fbank_*.part.*[0-9]")) if (data / "data").exists() else []
        try:
            return journal_of(arks[0]).read_text().count("\n") if arks else 0
        except FileNotFoundError:  # not yet
            return 0

    status = kill_when(flowaccent("fbank", str(data), "--quiet"), lambda: lines() >= (20 if resume else 1))
    assert status == -signal.SIGKILL
    assert not (data / "feats.scp").exists()  # nothing that looks complete
    rerun = subprocess.run(flowaccent("fbank", str(data), "--quiet", *["--resume"] * resume), env=ENV,
                           stderr=subprocess.PIPE, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert ("fbank: --resume: took over" in rerun.stderr) == resume, rerun.stderr
    got, want = tree(data, ("feats.scp", "cmvn.scp")), tree(reference, ("feats.scp", "cmvn.scp"))
    for record in (got, want):  # its digest of the tables written: they name the dir
        record["fbank.json"] = re.sub(rb'"written": "[0-9a-f]+"', b"", record["fbank.json"])
    assert got.keys() == want.keys() and all(got[k] == want[k] for k in got)  # arks, utt2num_frames, tables
    assert (data / "feats.scp").read_text() == (reference / "feats.scp").read_text().replace(str(reference), str(data))


@pytest.fixture(scope="module")
def scored_setup(tmp_path_factory):
    import numpy as np

    from flowaccent.train.trainer import train

    from ..train.conftest import small_config, write_gaussian_dir

    root = tmp_path_factory.mktemp("interrupt")
    data = write_gaussian_dir(root / "set", np.zeros(6), np.eye(6), 400, 50, seed=0)
    train(small_config(epochs=1, batch_size=256), root / "exp", [str(data)], quiet=True)
    return root, root / "exp", data


def test_score(scored_setup, tmp_path):
    root, exp, data = scored_setup
    args = ["score", "--exp", str(exp), str(data), "--quiet", "--batch-frames", "500"]
    subprocess.run(flowaccent(*args, "--out", str(tmp_path / "ref")), check=True, env=ENV)
    out = tmp_path / "out"
    status = kill_when(
        flowaccent(*args, "--out", str(out)),
        lambda: any((out / "set").glob(".frame_scores*")) if (out / "set").exists() else False,
    )
    assert status == -signal.SIGKILL and not (out / "summary.json").exists()
    assert [p for p in out.rglob("*") if ".tmp." in p.name]  # the file being written when it was killed
    subprocess.run(flowaccent(*args, "--out", str(out)), check=True, env=ENV)
    assert not [p for p in out.rglob("*") if ".tmp." in p.name]  # the rerun removed it (it stayed for ever)
    for name in ("set/utt_scores.tsv", "set/latents.npy", "set/frame_scores.ark"):
        assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name
    strip = lambda p: p.read_text().replace(str(tmp_path / "ref"), "OUT").replace(str(out), "OUT")  # noqa: E731
    assert strip(out / "summary.json") == strip(tmp_path / "ref" / "summary.json")


def test_report(scored_setup, tmp_path):
    root, exp, data = scored_setup
    scores = tmp_path / "scores"
    subprocess.run(
        flowaccent("score", "--exp", str(exp), "--out", str(scores), str(data), "--quiet"), check=True, env=ENV
    )
    subprocess.run(
        flowaccent(
            "report", "--exp", str(exp), "--scores", str(scores), "--out", str(tmp_path / "ref" / "report.html")
        ),
        check=True,
        env=ENV,
    )
    out = tmp_path / "out" / "report.html"
    status = kill_when(
        flowaccent("report", "--exp", str(exp), "--scores", str(scores), "--out", str(out)),
        lambda: (out.parent / "figures").exists(),
    )
    assert status == -signal.SIGKILL and not out.exists()
    subprocess.run(
        flowaccent("report", "--exp", str(exp), "--scores", str(scores), "--out", str(out)), check=True, env=ENV
    )
    strip = lambda p: p.read_text().replace(str(tmp_path / "ref"), "X").replace(str(tmp_path / "out"), "X")  # noqa
    assert strip(out.with_suffix(".md")) == strip(tmp_path / "ref" / "report.md")
    for png in (tmp_path / "ref" / "figures").glob("*.png"):
        assert (out.parent / "figures" / png.name).read_bytes() == png.read_bytes(), png.name


def slow_data_dir(tmp_path: Path) -> Path:
    r"""A data dir whose every wav.scp entry is a pipe taking a second."""
    from ..conftest import make_wav_data_dir

    data = make_wav_data_dir(tmp_path / "slow", utts_per_spk=12, pipe_last=False)
    lines = (data / "wav.scp").read_text().splitlines()
    entries = (line.split(" ", 1) for line in lines)
    (data / "wav.scp").write_text("".join(f"{u} sleep 1; cat {w} |\n" for u, w in entries))
    return data


def workers_of(pid: int) -> list[int]:
    r"""Processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and PR_SET_PDEATHSIG")
def test_ctrl_c_twice_stops_at_once_and_kill_leaves_no_worker(tmp_path):
    r"""Ctrl-C says the workers finish their jobs; a second one kills them and the command exits at once (it
    hung for ever). ``kill PID`` of the command ends its workers too (they lived on, holding its pipes)."""
    data = slow_data_dir(tmp_path)
    cmd = flowaccent("fbank", str(data), "--nj", "2", "--quiet")
    proc = subprocess.Popen(cmd, env=ENV, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 60
    while len(workers_of(proc.pid)) < 2 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)
    start = time.time()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGINT and time.time() - start < 5, err
    assert "stopping: the workers finish the jobs they are on (Ctrl-C again: kill them now)" in err
    assert "flowaccent fbank: interrupted" in err and not (data / "feats.scp").exists()

    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while len(workers := workers_of(proc.pid)) < 2 and time.time() < deadline + 30:
        time.sleep(0.05)
    proc.terminate()
    proc.wait(timeout=30)
    time.sleep(1.0)
    assert workers and not [w for w in workers if alive(w)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_ctrl_c_stops_a_shell_loop_over_commands(tmp_path):
    r"""A command Ctrl-C stopped exited with status 130, which a shell takes for a command that handled the signal
    and chose to go on: ``for d in ...; do flowaccent fbank $d; done`` went on to the next folder. It now cleans up
    and then dies by SIGINT, and the shell stops too."""
    data = slow_data_dir(tmp_path)
    loop = f"for i in 1 2; do {' '.join(flowaccent('fbank', str(data), '--quiet'))}; echo next; done"
    shell = subprocess.Popen(["bash", "-c", loop], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True, preexec_fn=sigint_default)
    deadline = time.time() + 60
    while not running_a_pipe(shell.pid):
        assert time.time() < deadline, "fbank never ran a wav.scp pipe"
        time.sleep(0.05)
    os.killpg(shell.pid, signal.SIGINT)  # what the terminal's Ctrl-C does: the whole foreground group
    out, err = shell.communicate(timeout=60)
    assert "flowaccent fbank: interrupted" in err and "next" not in out, (out, err)
    assert shell.returncode == -signal.SIGINT, err


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_while_exiting_after_the_command_is_said_and_died_by(number):
    r"""A walkthrough's Ctrl-C in the half second after ``train``'s last line, while Python ran torch's and tqdm's exit
    handlers: a ``KeyboardInterrupt`` traceback from an exit handler, then status 0 (a shell loop went on); a SIGTERM
    there ended it without a word. The command here returns at once and an exit handler of its own (as torch's,
    registered while it ran) gets the signal."""
    script = f"""
import atexit, os, sys, time
from flowaccent.cli import main as cli

def command(argv=None):
    def handler_of_the_command():
        os.kill(os.getpid(), {int(number)})
        time.sleep(0.3)
        print("its exit handler went on", file=sys.stderr)
    atexit.register(handler_of_the_command)
    return 0

cli.main = command
cli.entry()
"""
    done = subprocess.run([sys.executable, "-c", script], env=ENV, stderr=subprocess.PIPE, text=True, timeout=60,
                          preexec_fn=sigint_default)
    said = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}[number]
    assert done.stderr == (f"its exit handler went on\nflowaccent: {said} while exiting, after the command had "
                           f"finished\n"), done.stderr
    assert done.returncode == -number


def running_a_pipe(pid: int) -> list[int]:
    r"""The children of ``pid`` running one of :func:`slow_data_dir`'s wav.scp pipes: the fbank once it reads
    audio. (Not any child with a child: ``ldconfig -p``, run once at start-up, fooled that into a Ctrl-C
    while the command still parsed its arguments.)"""

    def cmdline(p: int) -> bytes:
        try:
            return Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:  # gone
            return b""

    return [c for c in workers_of(pid) if any(b"sleep 1; cat" in cmdline(g) for g in workers_of(c))]


def alive(pid: int) -> bool:
    r"""Running (not a zombie: with its parent gone, an init that does not reap leaves those)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigterm_stops_as_ctrl_c_does(scored_setup, tmp_path):
    r"""SIGTERM (``kill PID``, Slurm) left the temporary files of the moment behind (a score's
    ``.frame_scores.ark.tmp.PID``); it now unwinds as Ctrl-C does, then dies by SIGTERM (``$?`` 143)."""
    root, exp, data = scored_setup
    out = tmp_path / "out"
    cmd = flowaccent("score", "--exp", str(exp), str(data), "--quiet", "--batch-frames", "500", "--out", str(out))
    proc = subprocess.Popen(cmd, env=ENV, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (any((out / "set").glob(".frame_scores*")) if (out / "set").exists() else False):
        assert proc.poll() is None and time.time() < deadline, "scoring ended before it could be stopped"
        time.sleep(0.005)
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM and "flowaccent score: terminated" in err, err
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]
    assert not (out / "summary.json").exists()


def test_an_interrupted_score_rerun_leaves_no_summary_or_config_of_the_earlier_run(scored_setup, tmp_path,
                                                                                   monkeypatch):
    r"""config.yaml (the scored model's configuration) stayed from the earlier run beside the new run's sets."""
    from flowaccent.cli.main import main
    from flowaccent.score import run as run_module

    root, exp, data = scored_setup
    out = tmp_path / "out"
    args = ["score", "--exp", str(exp), str(data), "--quiet", "--out", str(out)]
    assert main(args) == 0 and (out / "config.yaml").exists()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "score_dir", interrupted)
    assert main(args) == 130
    assert not (out / "summary.json").exists() and not (out / "config.yaml").exists()


def test_a_score_interrupted_while_summarising_keeps_its_stamped_sets_and_no_summary(scored_setup, tmp_path,
                                                                                     monkeypatch, capsys):
    r"""A Ctrl-C while the summary was computed left the run's set dirs behind with nothing to say whose they were
    (their removal covered the scoring only); they were then removed too. Now each complete set is stamped with
    what made it (``.scored.json``: score --resume), stays, and is said to; no ``summary.json`` nor ``config.yaml``
    claims the folder complete, and ``--resume`` writes them without scoring again."""
    from flowaccent.cli.main import main
    from flowaccent.score import run as run_module
    from flowaccent.score.resume import MARKER

    root, exp, data = scored_setup
    out = tmp_path / "out"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    for where in ("_summarise", "atomic_write_json", "atomic_write_text"):  # the last: summary.json made already
        monkeypatch.setattr(run_module, where, interrupted)
        assert main(["score", "--exp", str(exp), str(data), "--quiet", "--out", str(out)]) == 130
        assert f"score: 1 set(s) scored completely stay in {out} ({data.name})" in capsys.readouterr().err
        assert sorted(p.name for p in out.iterdir()) == [".out.lock", data.name]
        assert (out / data.name / MARKER).is_file()
        monkeypatch.undo()
    monkeypatch.setattr(run_module, "score_dir", interrupted)  # nothing scored again
    assert main(["score", "--exp", str(exp), str(data), "--quiet", "--out", str(out), "--resume"]) == 0
    assert (out / "summary.json").is_file() and (out / "config.yaml").is_file()
    # a SIGKILL between the two writes (or between their removals at the start) left config.yaml alone, and the
    # folder was refused as another's ('holds config.yaml, which score writes, but no summary.json')
    (out / "summary.json").unlink()
    assert main(["score", "--exp", str(exp), str(data), "--quiet", "--out", str(out), "--resume"]) == 0
    assert (out / "summary.json").is_file()


def test_a_sigterm_sent_twice_does_not_break_into_the_cleanup_of_the_first(scored_setup, tmp_path, monkeypatch,
                                                                            capsys):
    r"""Under Slurm a job's processes all get its SIGTERM and a recipe passes its own on to the command: ``score``
    got two, milliseconds apart, and the second, raised while the first's cleanup removed the set being written,
    left that set half made (and, earlier still, a lone ``.out.lock`` in a folder the run had made). The second is
    the same stop: dropped."""
    from flowaccent import signals
    from flowaccent.cli.main import main
    from flowaccent.data import specs
    from flowaccent.score import run as run_module

    root, exp, data = scored_setup
    second = tmp_path / "second"
    shutil.copytree(data, second)
    real_score, real_rmtree, removed = run_module.score_dir, specs.shutil.rmtree, []

    def scored(model, data, name, *args, **kwargs):
        result = real_score(model, data, name, *args, **kwargs)
        if name == "second":
            signal.raise_signal(signal.SIGTERM)  # the scheduler's, once the set's files are written
        return result

    def rmtree(path, *args, **kwargs):
        signal.raise_signal(signal.SIGTERM)  # the recipe's, passed on, during the first one's cleanup
        removed.append(path)
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(run_module, "score_dir", scored)
    monkeypatch.setattr(specs.shutil, "rmtree", rmtree)
    out = tmp_path / "out"
    with signals.owned([signal.SIGTERM]):
        signals.repeated(signal.SIGTERM)  # an earlier command's stop, just now: not one this command's repeats
    assert main(["score", "--exp", str(exp), str(data), f"second={second}", "--quiet", "--out", str(out)]) == 143
    assert removed == [out / "second"] and not (out / "second").exists()
    assert sorted(p.name for p in out.iterdir()) == [".out.lock", data.name]
    assert f"score: 1 set(s) scored completely stay in {out} ({data.name})" in capsys.readouterr().err
