r"""``flowaccent blurmask``: files, summary, and one-line errors that leave no summary behind."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from flowaccent.cli.main import main
from flowaccent.data import ArkWriter

from .conftest import write_fbank_dir

FAST = ["--steps", "5", "--random-seeds", "1", "--step", "0.25", "--quiet"]


def test_command_writes_masks_figures_and_summary(flow_exp, tmp_path):
    _, exp, native, zh = flow_exp
    out = tmp_path / "out"
    args = ["blurmask", "--exp", str(exp), "--data", str(native), "--data", f"accented={zh}", "--utts", "2"]
    assert main([*args, "--out", str(out), *FAST]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["sets"]) == {"native", "accented"} and summary["all"]["num_utts"] == 4
    assert summary["config"]["fit"]["steps"] == 5 and summary["config"]["run"]["target"] == "log_ll"
    floor = summary["all"]["baselines"]["floor"]
    assert set(floor["table"]) == {"50", "80"} and floor["fractions"] == [0, 0.25, 0.5, 0.75, 0.8, 1]
    assert summary["command"].startswith("flowaccent blurmask --exp")
    rows = (out / "utt_table.tsv").read_text().splitlines()
    assert len(rows) == 1 + 4 * 3 and rows[0].startswith("set\tutt\tnum_frames\tbaseline")
    # 2 of 4 utterances, spread over the dir: the first and the last
    assert sorted(p.name for p in (out / "native").glob("*.npz")) == ["n0-000.npz", "n1-001.npz"]
    saved = np.load(out / "accented" / "z0-000.npz")
    assert saved["m"].shape == saved["feats"].shape == (30, 8)
    assert saved["change_blur_low"].shape == (6,) and saved["loss"].shape == (5,)
    assert (out / "accented" / "figures" / "z0-000.png").stat().st_size > 0
    assert (out / "deletion_curves.png").exists() and (out / "deletion_curves.pdf").exists()
    assert "| baseline | removed |" in (out / "summary.md").read_text()
    assert "have no curve" not in (out / "summary.md").read_text()  # every curve defined: no note
    assert not list(out.rglob(".*.tmp.*"))


def test_the_bar_shows_where_the_work_on_an_utterance_is(flow_exp, tmp_path, capsys, monkeypatch):
    r"""The bar counts utterances; it stood still for minutes on a long recording."""
    # pytest-xdist's workers have COLUMNS=80, and tqdm 4.60.0 (the floor, make test-lower; 4.70.1 does not) takes the
    # width of a file that is no terminal from it: the longest phase lost its ']' at 79 columns
    monkeypatch.delenv("COLUMNS", raising=False)
    _, exp, native, _ = flow_exp
    args = ["blurmask", "--exp", str(exp), "--data", str(native), "--utts", "1", "--out", str(tmp_path / "o")]
    assert main([*args, *FAST[:-1]]) == 0  # not --quiet, into a file: each phase was a redraw, a line of the log
    assert "n0-000" not in capsys.readouterr().err
    monkeypatch.setattr("flowaccent.progress._is_terminal", lambda stream: True)
    assert main([*args, *FAST[:-1]]) == 0  # on a terminal
    err = capsys.readouterr().err
    shown = [re.search(r"n0-000: ([^\]\r\n]*)\]", part) for part in re.split(r"[\r\n]", err)]
    phases = [s.group(1) for s in shown if s]
    assert phases[0] == "fit step 1/5" and phases[-4:] == [f"deletion curves, baseline {b}" for b in
                                                           ("floor", "mean", "blur")] + ["figure"], phases
    assert "1/1" in err and "n0-000" not in err[err.rindex("1/1"):]  # the bar's last state shows no phase


def test_a_rerun_with_fewer_sets_names_the_others(flow_exp, tmp_path, capsys):
    _, exp, native, zh = flow_exp
    out = str(tmp_path / "out")
    base = ["blurmask", "--exp", str(exp), "--utts", "1", "--out", out, *FAST]
    assert main([*base, "--data", str(native), "--data", f"accented={zh}"]) == 0
    capsys.readouterr()
    assert main([*base, "--data", str(native)]) == 0
    assert f"blurmask: warning: {out} holds folders of sets this run does not make: accented (an earlier" in \
        capsys.readouterr().err
    assert list(json.loads((tmp_path / "out" / "summary.json").read_text())["sets"]) == ["native"]


def test_utterances_shorter_than_the_context_are_named_and_undefined_curves_left_out(flow_exp, tmp_path, capsys):
    _, exp, native, _ = flow_exp
    short = write_fbank_dir(tmp_path / "short", "n", seed=1, frames=1)
    out = tmp_path / "out"
    args = ["blurmask", "--exp", str(exp), "--data", str(native), "--data", f"short={short}", "--utts", "1"]
    assert main([*args, "--out", str(out), *FAST]) == 0
    err = capsys.readouterr().err
    # the model adds first-order deltas: a context of 5 frames
    assert "blurmask: warning: set short: utterance 'n0-000' has 1 frame(s), fewer than the model's context of 5" in err
    assert "set native" not in err
    assert "utterance 'n0-000' (1 frame(s)): no removal with the mean baseline changed the output" in err
    assert "blurmask: 1 of 2 utts, baseline mean: AUC" in err and "blurmask: 2 utts, baseline floor: AUC" in err
    summary = json.loads((out / "summary.json").read_text())
    mean = summary["sets"]["short"]["baselines"]["mean"]
    assert mean["num_utts"] == 1 and mean["num_defined"] == 0 and "auc" not in mean
    assert summary["all"]["baselines"]["mean"]["num_defined"] == 1
    markdown = (out / "summary.md").read_text()
    assert "| short | mean | 0 of 1 | - | - | - | - |" in markdown and "| **all** | mean | 1 of 2 |" in markdown
    assert re.search(r"\| \*\*all\*\* \| mean \| 1 of 2 \| .* \([01] of 1\) \|", markdown), markdown
    assert "Utterances whose output no removal changed have no curve" in markdown
    # with no defined curve at all, the command says so and still writes its figure
    assert main(["blurmask", "--exp", str(exp), "--data", f"short={short}", "--utts", "1", "--baselines", "mean",
                 "--out", str(tmp_path / "flat"), *FAST]) == 0
    assert "blurmask: 1 utt, baseline mean: no removal changed the output of any utterance" in capsys.readouterr().err
    assert (tmp_path / "flat" / "deletion_curves.png").stat().st_size > 0


def test_a_rerun_of_a_set_with_fewer_utterances_removes_the_others_files(flow_exp, tmp_path, capsys):
    _, exp, native, _ = flow_exp
    out = tmp_path / "out"
    base = ["blurmask", "--exp", str(exp), "--data", str(native), "--out", str(out), *FAST]
    assert main([*base, "--utts", "4"]) == 0
    assert len(list((out / "native").glob("*.npz"))) == 4
    (out / "native" / "notes.txt").write_text("mine")
    # the user's own: an npz of theirs, a copy of a mask under another name, a figure of theirs (all removed)
    np.savez(out / "native" / "mine.npz", x=np.zeros(3))
    (out / "native" / "broken.npz").write_bytes(b"PK\x03\x04 not a zip")  # np.load: BadZipFile
    shutil.copy(out / "native" / "n0-000.npz", out / "native" / "kept_copy.npz")
    (out / "native" / "figures" / "my_plot.png").write_bytes(b"png")
    capsys.readouterr()
    assert main([*base, "--utts", "2"]) == 0
    assert f"blurmask: removed 6 file(s) of an earlier run from {out / 'native'}" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "native").glob("*.npz")) == ["broken.npz", "kept_copy.npz", "mine.npz",
                                                                       "n0-000.npz", "n1-001.npz"]
    assert sorted(p.stem for p in (out / "native" / "figures").iterdir()) == ["my_plot"] + ["n0-000"] * 2 + [
        "n1-001"] * 2
    assert (out / "native" / "notes.txt").read_text() == "mine"


def test_a_folder_holding_files_of_the_names_blurmask_writes_is_not_an_output(flow_exp, tmp_path, capsys):
    r"""--out a project folder with its own config.yaml and summary.md: both were overwritten, exit 0."""
    _, exp, native, _ = flow_exp
    project = tmp_path / "project"
    project.mkdir()
    for name in ("config.yaml", "summary.md"):
        (project / name).write_text("mine\n")
    args = ["blurmask", "--exp", str(exp), "--data", str(native), "--out", str(project), "--utts", "1", *FAST]
    assert main(args) == 1
    assert capsys.readouterr().err == (f"flowaccent blurmask: error: --out {project} holds config.yaml, summary.md, "
                                       "which blurmask writes, but no summary.json of an earlier run; give a folder "
                                       "of its own\n")
    assert sorted(p.name for p in project.iterdir()) == ["config.yaml", "summary.md"]


def test_a_failing_utterance_is_named(flow_exp, tmp_path, capsys, monkeypatch):
    r"""Features far out of range made the fit fail with 'blur: the widths must be finite', naming no utterance."""
    import flowaccent.blurmask.utterance as utterance
    from flowaccent.errors import ConfigError

    _, exp, native, _ = flow_exp

    def fails(*args, **kwargs):
        raise ConfigError("blur: the widths must be finite, got max nan")

    monkeypatch.setattr(utterance, "fit_blur_mask", fails)
    args = ["blurmask", "--exp", str(exp), "--data", str(native), "--utts", "1", "--out", str(tmp_path / "o"), *FAST]
    assert main(args) == 1
    assert f"set native ({native / 'feats.scp'}): utterance 'n0-000': blur: the widths must be finite" in \
        capsys.readouterr().err


def test_a_run_that_fails_midway_leaves_no_set_folder_it_made(flow_exp, tmp_path, capsys, monkeypatch):
    r"""A failure at the second utterance left the first one's mask and figures in a set folder with no summary
    to say they were part of an unfinished run; a run now writes into OUT/.partial until it is done, and the rerun
    takes over the utterance done there."""
    import flowaccent.blurmask.run as run
    from flowaccent.errors import ConfigError

    _, exp, native, _ = flow_exp
    explain, calls = run.explain_utterance, []

    def fails_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise ConfigError("blur: the widths must be finite, got max nan")
        return explain(*args, **kwargs)

    monkeypatch.setattr(run, "explain_utterance", fails_second)
    out = tmp_path / "o"
    args = ["blurmask", "--exp", str(exp), "--data", str(native), "--utts", "2", "--out", str(out), *FAST]
    assert main(args) == 1 and len(calls) == 2
    assert sorted(p.name for p in out.iterdir() if p.name != ".out.lock") == [".partial"]  # no set folder
    assert [p.name for p in (out / ".partial" / "native").glob("*.npz")] == ["n0-000.npz"]
    from flowaccent.blurmask.evaluate import DeletionConfig

    assert run.done_before(out / ".partial" / "native", "n0-000", "another key", DeletionConfig()) is None
    capsys.readouterr()
    monkeypatch.setattr(run, "fit_warnings", lambda result, fit: [f"warned of {result.utt}"])
    assert main(args) == 0 and len(calls) == 3  # the second utterance only
    err = capsys.readouterr().err
    assert "blurmask: 1 utterance(s) taken as a stopped run with the same model, options and features had done " \
        "them" in err
    assert "warned of n0-000" in err  # the one taken over is warned about again: only the stopped run had said it
    assert sorted(p.name for p in out.iterdir()) == sorted([".out.lock", "native", *run.OUTPUT_FILES])


def test_options_reach_the_library(flow_exp, tmp_path, capsys):
    _, exp, native, _ = flow_exp
    out = tmp_path / "out"
    args = ["blurmask", "--exp", str(exp), "--data", str(native), "--utts", "1", "--out", str(out), *FAST]
    options = ["--target", "posterior", "--target-class", "zh", "--baselines", "blur", "--mode", "fold"]
    assert main([*args, *options, "--variant", "noise", "--floor", "kaldi"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["run"] == {"target": "posterior", "target_class": "zh", "utts": 1, "utt_list": ""}
    assert summary["config"]["fit"]["variant"] == "noise" and summary["config"]["fit"]["mode"] == "fold"
    assert list(summary["all"]["baselines"]) == ["blur"] and summary["config"]["deletion"]["floor"] == "kaldi"
    # a noise mask is sigma, not m, in the tables and on the command line
    assert "AUC lowest sigma first" in (out / "summary.md").read_text()
    assert "AUC lowest sigma first" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no_model", "missing: no such directory"),
        ("wrong_dim", "feats.scp: utterance 'w0-000': features have dim 6, expected 8: the model takes 8-d stored "
         "features and makes its 16-d frames of them itself"),
        ("expanded_dim", "features have dim 16, expected 8: the model takes 8-d stored features and makes its 16-d "
         "frames of them itself (already spliced or given deltas? give the features before splice-feats or "
         "add-deltas)"),
        ("bad_class", "class 'ja' is not one of the model's"),
        ("no_cmvn", "cmvn.scp: required but missing"),
        ("cmvn_dim", "set c: {data}/cmvn.scp: speaker 'c0': stats of shape (2, 4) for features of dim 8 (Kaldi's: "
         "(2, 9))"),
        ("reserved_name", "'summary.md' cannot name a set (a file the command writes)"),
        ("out_is_a_file", "--out {out} is a file; give a folder"),
        ("class_without_posterior", "target_class (--target-class) is for --target posterior, not log_ll"),
        ("m_max_huge", "blur mask: m_max (--m-max) must be <= 1000 bins (a width past the spectrum's bins blurs "
         "across all of them), got 1e+20"),  # it fitted NaN widths, said as the utterance's fault
        ("m_min_over_max", "need 1 <= m_min (--m-min) < m_max (--m-max), got 5.0, 4.0"),
    ],
)
def test_user_errors_are_one_line(flow_exp, tmp_path, capsys, case, expected):
    root, exp, native, _ = flow_exp
    data, extra = native, []
    if case == "no_model":
        exp = tmp_path / "missing"
    elif case in ("wrong_dim", "expanded_dim"):
        data = write_fbank_dir(tmp_path / "wide", "w", seed=3, bins=6 if case == "wrong_dim" else 16)
    elif case == "bad_class":
        extra = ["--target", "posterior", "--target-class", "ja"]
    elif case == "no_cmvn":
        data = write_fbank_dir(tmp_path / "nocmvn", "c", seed=4)
        (data / "cmvn.scp").unlink()
    elif case == "cmvn_dim":  # stats of other features: said before any work (when the speaker's turn came)
        data = write_fbank_dir(tmp_path / "c", "c", seed=4)
        (data / "cmvn.scp").unlink()
        with ArkWriter(data / "cmvn3.ark", data / "cmvn.scp") as writer:
            for spk in ("c0", "c1"):
                writer.write(spk, np.ones((2, 4)))
    elif case == "class_without_posterior":
        extra = ["--target-class", "zh"]
    elif case == "m_max_huge":
        extra = ["--m-max", "1e20"]
    elif case == "m_min_over_max":
        extra = ["--m-min", "5", "--m-max", "4"]
    elif case == "reserved_name":
        data = f"summary.md={native}"
    out = tmp_path / "out"
    if case == "out_is_a_file":
        out.write_text("")
    code = main(["blurmask", "--exp", str(exp), "--data", str(data), "--out", str(out), *extra, *FAST])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    assert err.startswith("flowaccent blurmask: error:") and expected.format(out=out, data=data) in err
    assert out.is_file() if case == "out_is_a_file" else not out.exists()  # nothing left behind
    if case in ("wrong_dim", "expanded_dim", "cmvn_dim"):  # score checks the sets before any work as blurmask does
        assert main(["score", "--exp", str(exp), "--out", str(out), f"n={native}", str(data), "--quiet"]) == 1
        assert capsys.readouterr().err == f"flowaccent score: error: {err.split(': error: ', 1)[1]}\n"
        assert not out.exists()


def test_utterance_ids_with_dots_keep_a_file_each(flow_exp, tmp_path):
    r"""Kaldi allows dots in ids: 'zh.f07-0004' and 'zh.f08-0029' were both written as 'zh.npz' (with_suffix)."""
    _, exp, _, _ = flow_exp
    dotted = write_fbank_dir(tmp_path / "dotted", "d.v", seed=3)
    out = tmp_path / "out"
    assert main(["blurmask", "--exp", str(exp), "--data", str(dotted), "--utts", "2", "--out", str(out), *FAST]) == 0
    assert sorted(p.name for p in (out / "dotted").glob("*.npz")) == ["d.v0-000.npz", "d.v1-001.npz"]
    assert sorted(p.name for p in (out / "dotted" / "figures").glob("*.png")) == ["d.v0-000.png", "d.v1-001.png"]


def test_an_interrupted_rerun_leaves_the_earlier_runs_results_as_they_were(flow_exp, tmp_path, monkeypatch, capsys):
    r"""Only summary.json went at the start of a rerun: after Ctrl-C, summary.md, config.yaml, utt_table.tsv and the
    curves still described the earlier run (its steps), beside the new run's first utterances. Then the summaries
    went at the start: a stopped rerun threw away the earlier complete results. Now nothing of the earlier run's
    changes until the rerun has written everything; and run again, the rerun resumes."""
    from flowaccent.blurmask import run as run_module

    _, exp, native, _ = flow_exp
    out = tmp_path / "out"
    args = ["blurmask", "--exp", str(exp), "--data", str(native), "--utts", "2", "--out", str(out), *FAST]
    assert main(args) == 0
    assert all((out / name).exists() for name in run_module.OUTPUT_FILES)
    explain, calls = run_module.explain_utterance, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return explain(*args, **kwargs)

    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and ".partial" not in p.parts}
    monkeypatch.setattr(run_module, "explain_utterance", interrupted)
    capsys.readouterr()
    assert main([*args, "--lam", "0.5"]) == 130
    assert capsys.readouterr().err.splitlines()[-2:] == [  # it said 'interrupted' alone
        f"blurmask: stopped after 1 of 2 utterance(s); their results are kept in {out / '.partial'}: the same command "
        "goes on from them", "flowaccent blurmask: interrupted"]
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and ".partial" not in p.parts} == before
    assert main([*args, "--lam", "0.5"]) == 0 and len(calls) == 3  # resumed: the second utterance only
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["fit"]["lam"] == 0.5 and summary["all"]["num_utts"] == 2
    assert not (out / ".partial").exists()
    calls[:] = [1]  # stopped in the first utterance of a new --out: nothing kept, no folder named (it was removed)
    fresh = ["blurmask", "--exp", str(exp), "--data", str(native), "--utts", "2", "--out", str(tmp_path / "new"), *FAST]
    capsys.readouterr()
    assert main(fresh) == 130 and not (tmp_path / "new").exists()
    assert capsys.readouterr().err.splitlines()[-2:] == ["blurmask: stopped after 0 of 2 utterance(s)",
                                                         "flowaccent blurmask: interrupted"]


def test_a_fit_that_does_not_keep_the_output_is_named():
    r"""``--m-max 1000`` on 40 bins fitted a mean m of 950 whose blur changed 145% of the output's variance, and the
    command said nothing (exit 0)."""
    from flowaccent.blurmask.fit import BlurMaskConfig
    from flowaccent.blurmask.utterance import UttResult
    from flowaccent.blurmask.warn import fit_warnings

    def result(error, mean):
        return UttResult("zh", "u1", 300, error, mean, {})

    assert fit_warnings(result(0.014, 4.2), BlurMaskConfig()) == []
    poor, saturated = fit_warnings(result(1.45, 950.0), BlurMaskConfig(m_max=1000.0))
    assert poor == ("blurmask: warning: set zh: utterance 'u1': its mask changes 145% of the output's variance "
                    "(invariance error): it does not keep the output as a mask should; try more --steps, a smaller "
                    "--lam (--lam-on entropy) or a smaller --m-max")  # lam weighs the widths: a larger one, larger m
    (poor,) = fit_warnings(result(1.45, 9.0), BlurMaskConfig(lam_on="invariance"))
    assert "try more --steps, a larger --lam (--lam-on invariance) or a smaller --m-max" in poor
    # not 'the output hardly depends on the input', which the warning before it belies
    assert saturated == ("blurmask: warning: set zh: utterance 'u1': mean m 950, nearly every cell at --m-max 1000: "
                         "though that changes the output (above): the widths' term outweighs keeping the output")
    (noise,) = fit_warnings(result(0.01, 2.9), BlurMaskConfig(variant="noise"))
    assert noise.endswith("mean sigma 2.9, nearly every cell at --sigma-max 3: the output hardly depends on the input "
                          "here, or the largest width blurs everything")


def test_a_mask_that_tells_no_cell_from_another_is_named(flow_exp, tmp_path, capsys):
    r"""``--optimizer sgd`` at Adam's ``--lr 0.1`` left every width within 0.06 of its start (each cell's gradient is
    about 1 / (T K)), and the run reported curves of that mask without a word; the noise variant's options were
    ignored without one by the blur variant."""
    from flowaccent.blurmask.fit import BlurMaskConfig
    from flowaccent.blurmask.utterance import UttResult
    from flowaccent.blurmask.warn import fit_warnings

    assert fit_warnings(UttResult("zh", "u1", 300, 0.01, 4.2, {}, 3.0), BlurMaskConfig()) == []
    (flat,) = fit_warnings(UttResult("zh", "u1", 300, 0.22, 1.45, {}, 0.056), BlurMaskConfig(optimizer="sgd"))
    assert flat == ("blurmask: warning: set zh: utterance 'u1': its m spans only 0.056 of [1, 10]: the mask tells no "
                    "cell from another, so its curves rank cells by chance; try more --steps or a larger --lr "
                    "(--optimizer sgd takes a far larger --lr than Adam's: each cell's gradient is about 1 / (frames "
                    "x bins))")
    _, exp, native, _ = flow_exp
    out = tmp_path / "out"
    args = ["blurmask", "--exp", str(exp), "--data", str(native), "--utts", "1", "--out", str(out), "--quiet",
            "--steps", "3", "--step", "0.5", "--random-seeds", "1", "--baselines", "floor"]
    assert main([*args, "--optimizer", "sgd", "--sigma-max", "2"]) == 0
    err = capsys.readouterr().err
    assert "blurmask: warning: --sigma-max is not of --variant blur, which ignores it" in err
    assert "the mask tells no cell from another" in err and "--optimizer sgd takes a far larger --lr" in err
    (npz,) = (out / native.name).glob("*.npz")
    with np.load(npz) as arrays:
        assert np.ptp(arrays["m"]) < 0.09


def test_m_max_under_the_noise_variant_is_said_ignored_only_where_no_blur_baseline_takes_it():
    r"""``--variant noise --m-max 1000`` was said to be ignored, and moved the blur baseline's curves (0.98 to
    2.87 at the first fraction): its removed cells take the width ``m_max``."""
    from flowaccent.blurmask.config import BlurMaskConfig, DeletionConfig
    from flowaccent.cli.blurmask import unused_options

    noise, given = BlurMaskConfig(variant="noise"), {"m_min": 2.0, "m_max": 1000.0}
    assert unused_options(noise, DeletionConfig(baselines=("floor", "blur")), given) == ["--m-min"]
    assert unused_options(noise, DeletionConfig(baselines=("floor",)), given) == ["--m-min", "--m-max"]
    assert unused_options(BlurMaskConfig(), DeletionConfig(), {"sigma_max": 2.0, "m_max": 5.0}) == ["--sigma-max"]


def test_numbers_never_print_as_negative_zero():
    r"""An SRG of -0.0001 printed as ``-0.000`` in summary.md and on the terminal."""
    from flowaccent.blurmask.tables import fixed

    assert [fixed(-0.0001, 3), fixed(-0.0006, 3), fixed(0.12345, 4), fixed(-0.0, 2)] == \
        ["0.000", "-0.001", "0.1235", "0.00"]


def test_an_utterance_list_picks_the_utterances(flow_exp, tmp_path, capsys):
    r"""``--utt-list FILE`` (Kaldi's utt lists: the first field): exactly those utterances, from the sets holding
    them; an id in no set, or a set with none of them, is one line naming it, before any work."""
    _, exp, native, zh = flow_exp
    out = tmp_path / "out"
    listed = tmp_path / "utts"
    listed.write_text("z1-001 extra fields\n\nn0-001\n")
    args = ["blurmask", "--exp", str(exp), "--data", str(native), "--data", f"accented={zh}", *FAST, "--out", str(out)]
    assert main([*args, "--utt-list", str(listed)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {n: s["num_utts"] for n, s in summary["sets"].items()} == {"native": 1, "accented": 1}
    assert [p.name for p in out.glob("*/*.npz")] in (["n0-001.npz", "z1-001.npz"], ["z1-001.npz", "n0-001.npz"])
    assert summary["config"]["run"]["utt_list"] == str(listed)
    capsys.readouterr()
    for text, message in (("n0-001\nn9-009\n", "1 utterance(s) in none of the data dirs' feats.scp, e.g. 'n9-009'"),
                          ("n0-000\n", "names no utterance of set accented; leave that --data out"),
                          ("\n", "no utterance ids in it")):
        listed.write_text(text)
        assert main([*args, "--utt-list", str(listed)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"flowaccent blurmask: error: --utt-list {listed}: {message}"], err
    assert main([*args, "--utt-list", str(listed), "--utts", "3"]) == 1  # --utts was ignored without a word
    assert capsys.readouterr().err == ("flowaccent blurmask: error: --utts and --utt-list: give one (--utt-list "
                                       "names the utterances, --utts picks that many of each data dir)\n")
    assert json.loads((out / "summary.json").read_text()) == summary  # the run before, as it was


def test_figures_are_taken_over_only_with_the_npz_they_were_drawn_for(flow_exp, tmp_path, monkeypatch):
    r"""The ``.npz`` (its key) was written before the figures: a run stopped between the two left its ``.npz`` beside
    a stopped earlier run's figures of other options, and the next run took them over (another --steps' figure
    beside this run's results, exit 0). The ``.npz`` now goes first and comes back last."""
    from flowaccent import plots
    from flowaccent.blurmask import run as run_module

    _, exp, native, _ = flow_exp
    out = tmp_path / "out"
    args = ["blurmask", "--exp", str(exp), "--data", str(native), "--utts", "1", "--out", str(out), "--random-seeds",
            "1", "--step", "0.25", "--quiet"]
    assert main([*args, "--steps", "5"]) == 0
    reference = {p.name: p.read_bytes() for p in (out / "native" / "figures").glob("*.png")}
    shutil.rmtree(out)
    assert main([*args, "--steps", "7"]) == 0
    shutil.copytree(out / "native", out / run_module.PARTIAL / "native")  # as a stopped run of --steps 7 left it

    def stopped(*a, **k):
        raise KeyboardInterrupt  # before drawing

    draw = plots.blurmask_utterance
    monkeypatch.setattr(plots, "blurmask_utterance", stopped)
    assert main([*args, "--steps", "5"]) == 130
    monkeypatch.setattr(plots, "blurmask_utterance", draw)
    assert main([*args, "--steps", "5"]) == 0
    assert {p.name: p.read_bytes() for p in (out / "native" / "figures").glob("*.png")} == reference


def test_a_damaged_npz_of_a_stopped_run_is_done_again(flow_exp, tmp_path, capsys):
    r"""An ``.npz`` cut short, empty or with a bad CRC in ``.partial/`` broke every rerun (``BadZipFile``,
    ``EOFError`` tracebacks) until it was removed by hand."""
    from flowaccent.blurmask.run import PARTIAL

    _, exp, native, _ = flow_exp
    out = tmp_path / "out"
    args = ["blurmask", "--exp", str(exp), "--data", str(native), "--utts", "2", "--out", str(out), *FAST]
    assert main(args) == 0
    made = sorted((out / "native").glob("*.npz"))
    stage = out / PARTIAL / "native"
    for damage in (lambda b: b[: len(b) // 2], lambda b: b"", lambda b: b[:200] + bytes([b[200] ^ 1]) + b[201:]):
        shutil.copytree(out / "native", stage, dirs_exist_ok=True)
        for npz in stage.glob("*.npz"):
            npz.write_bytes(damage(npz.read_bytes()))
        capsys.readouterr()
        assert main(args) == 0, capsys.readouterr().err
        assert "Traceback" not in capsys.readouterr().err
        assert sorted((out / "native").glob("*.npz")) == made and not (out / PARTIAL).exists()


def test_utterances_that_would_share_their_files_are_refused(flow_exp, tmp_path, capsys):
    r"""'a/b' and 'a_b' are both written 'a_b.npz': the second overwrote the first, the run failed moving them into
    place (after removing the earlier run's summary.json), and so did every rerun."""
    _, exp, native, _ = flow_exp
    odd = tmp_path / "odd"
    shutil.copytree(native, odd)
    rename = {"n0-000": "n0/x", "n0-001": "n0_x"}
    for name in ("feats.scp", "utt2spk", "utt2num_frames", "spk2utt"):
        text = (odd / name).read_text()
        for old, new in rename.items():
            text = text.replace(old, new)
        (odd / name).write_text(text)
    out = tmp_path / "out"
    assert main(["blurmask", "--exp", str(exp), "--data", str(odd), "--utts", "4", "--out", str(out), *FAST]) == 1
    assert capsys.readouterr().err == ("flowaccent blurmask: error: set odd: utterances 'n0/x' and 'n0_x' would share "
                                       "the files n0_x.npz and figures (a / in an id is written _): leave one out "
                                       "(--utt-list)\n")
    assert not out.exists()


def _renamed(source, target, rename: dict[str, str]):
    r"""A copy of the data dir ``source`` with utterance ids renamed (``rename``; its arks shared)."""
    shutil.copytree(source, target)
    for name in ("feats.scp", "utt2spk", "utt2num_frames", "spk2utt"):
        text = (target / name).read_text()
        for old, new in rename.items():
            text = text.replace(old, new)
        (target / name).write_text(text)
    return target


def test_an_utterance_list_is_read_as_kaldi_reads_one(flow_exp, tmp_path, capsys):
    r"""Lines at \n and fields at ASCII whitespace: an id with a no-break space was cut at it (str.split), and one
    with U+2028 split in two lines (str.splitlines); a byte-order mark made the first id match none, unseen."""
    _, exp, native, _ = flow_exp
    odd = _renamed(native, tmp_path / "odd", {"n1-001": "n1-001\u00a0x\u2028y"})
    listed = tmp_path / "utts"
    listed.write_text("n1-001\u00a0x\u2028y extra\r\n", encoding="utf-8")
    out = tmp_path / "out"
    args = ["blurmask", "--exp", str(exp), "--data", str(odd), *FAST, "--out", str(out), "--utt-list", str(listed)]
    assert main(args) == 0, capsys.readouterr().err
    assert [p.name for p in (out / "odd").glob("*.npz")] == ["n1-001\u00a0x\u2028y.npz"]
    capsys.readouterr()
    listed.write_text("\ufeffn0-000\n", encoding="utf-8")
    assert main(args) == 1
    assert capsys.readouterr().err == (f"flowaccent blurmask: error: --utt-list {listed}: starts with a UTF-8 "
                                       "byte-order mark (BOM); save the file without it\n")


def test_a_stopped_runs_npz_is_taken_only_for_its_own_utterance_and_key_format(flow_exp, tmp_path):
    r"""'a/b' and 'a_b' share a file name: a stopped run's result for one was taken for the other. And an .npz of
    the version that wrote it before its figures (its key without KEY_FORMAT) may sit beside another run's figures:
    it is not taken either."""
    import hashlib

    from flowaccent.blurmask.config import BlurMaskConfig, DeletionConfig, RunConfig
    from flowaccent.blurmask.utterance import done_before, utterance_key
    from flowaccent.data import load_data_dir
    from flowaccent.data.stream import load_cmvn_stats

    _, exp, native, _ = flow_exp
    out = tmp_path / "out"
    assert main(["blurmask", "--exp", str(exp), "--data", str(native), "--utts", "1", "--out", str(out), *FAST]) == 0
    folder = out / "native"
    (npz,) = folder.glob("*.npz")
    utt, key = npz.stem, str(np.load(npz)["key"])
    deletion = DeletionConfig.from_dict(json.loads((out / "summary.json").read_text())["config"]["deletion"])
    assert done_before(folder, utt, key, deletion) is not None
    other = utt.replace("-", "/", 1)  # its file name: utt's with _ for /, so copy the files under it
    shutil.copy(npz, folder / f"{other.replace('/', '_')}.npz")
    for suffix in ("png", "pdf"):
        shutil.copy(folder / "figures" / f"{utt}.{suffix}", folder / "figures" / f"{other.replace('/', '_')}.{suffix}")
    assert done_before(folder, other, key, deletion) is None
    report = json.loads((out / "summary.json").read_text())
    fit = BlurMaskConfig.from_dict(report["config"]["fit"])
    run = RunConfig.from_dict(report["config"]["run"])
    arrays = dict(np.load(npz))
    stats = load_cmvn_stats(load_data_dir(native))[utt.split("-")[0]]
    current = utterance_key(report["model"]["digest"], fit, deletion, run, arrays["feats"], stats)
    assert current == key  # the key of the run, made again
    old = hashlib.sha256(json.dumps([report["model"]["digest"], fit.to_dict(), deletion.to_dict(), run.target,
                                     run.target_class], sort_keys=True, default=str).encode())
    for array in (arrays["feats"], stats):  # as the version before KEY_FORMAT made it
        old.update(repr((array.shape, array.dtype.str)).encode())
        old.update(np.ascontiguousarray(array).tobytes())
    np.savez(npz, **(arrays | {"key": np.str_(old.hexdigest()[:32])}))
    assert done_before(folder, utt, current, deletion) is None


def test_stale_figures_go_before_their_npz(flow_exp, tmp_path, monkeypatch):
    r"""The .npz went first: a stop between it and its figures left them for ever (the .npz tells them apart)."""
    from pathlib import Path

    from flowaccent.blurmask.utterance import remove_stale_files

    _, exp, native, _ = flow_exp
    out = tmp_path / "out"
    assert main(["blurmask", "--exp", str(exp), "--data", str(native), "--utts", "2", "--out", str(out), *FAST]) == 0
    gone, unlink = [], Path.unlink
    monkeypatch.setattr(Path, "unlink", lambda self, *a, **k: (gone.append(self.suffix), unlink(self, *a, **k)))
    remove_stale_files(out / "native", [], quiet=True)
    assert sorted(gone[:4]) == [".pdf", ".pdf", ".png", ".png"] and gone[4:] == [".npz", ".npz"]


def test_the_reports_mask_figure_of_a_set_whose_first_id_starts_with_a_quote(tmp_path):
    r"""csv's quoting took the '"' for a quoted field and swallowed the rest of utt_table.tsv: no figure, no word."""
    from flowaccent.blurmask.report import _first_utterances

    table = tmp_path / "utt_table.tsv"
    table.write_text('set\tutt\tframes\nq\t"n0-000\t30\nq\tn0-001\t30\nr\tn1-000\t30\n')
    assert _first_utterances(table) == {"q": '"n0-000', "r": "n1-000"}


def test_a_noise_masks_report_names_noise_scales():
    r"""The report called a noise mask's sigma a learned width."""
    from flowaccent.blurmask.report import naming_paragraph

    assert "each time-frequency cell's learned blur width m, small where" in naming_paragraph("blur")
    noise = naming_paragraph("noise")
    assert "learned noise scale sigma, small where" in noise and "width" not in noise


def test_a_model_of_spliced_features_is_refused():
    r"""A model trained on arks spliced already (440-d, --features.splice 0) got masks blurred along 440 'bins',
    one frame's last bin into the next's first, without a word."""
    from flowaccent.blurmask.run import check_filterbank
    from flowaccent.errors import ConfigError

    check_filterbank(80)
    with pytest.raises(ConfigError, match=r"blurmask: the model's stored features are 440-d, more than a log "
                                          r"filterbank's bins \(at most 80\): spliced or given deltas already\?"):
        check_filterbank(440)
