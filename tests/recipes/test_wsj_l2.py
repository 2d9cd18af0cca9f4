r"""recipes/wsj_l2/run.sh end to end on a tiny stand-in of WSJ and two L2 corpora."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy.io import wavfile

from flowaccent.data import read_table, write_table

from ..conftest import make_wav_data_dir, recipe_env

RECIPE = Path(__file__).parents[2] / "recipes" / "wsj_l2" / "run.sh"
TINY = (
    "--model.num-blocks 2 --model.hidden 16 --train.epochs 1 --train.batch-size 256 "
    "--train.valid-fraction 0.3 --train.warmup-steps 1"
)


def stand_in(
    root: Path, name: str, speakers: tuple[str, ...], seed: int, rated: bool = False, segments: bool = False
) -> Path:
    r"""A data dir of WAVs; with ``segments``, two utterances per recording (the WAVs joined in pairs)."""
    made = make_wav_data_dir(root / name, speakers=speakers, utts_per_spk=4, seed=seed, pipe_last=False)
    if rated:
        utts = (made / "utt2spk").read_text().split()[::2]
        write_table(made / "utt2score", {u: 1 + i % 5 for i, u in enumerate(utts)})
    if segments:
        wavs = read_table(made / "wav.scp")
        recordings, spans = {}, {}
        for first, second in zip(list(wavs)[::2], list(wavs)[1::2]):
            audio = [wavfile.read(wavs[u])[1] for u in (first, second)]
            recordings[f"rec_{first}"] = path = made.parent / "wav" / f"rec_{first}.wav"
            wavfile.write(path, 16000, np.concatenate(audio))
            spans[first] = f"rec_{first} 0 {len(audio[0]) / 16000}"
            spans[second] = f"rec_{first} {len(audio[0]) / 16000} -1"
        write_table(made / "wav.scp", recordings)
        write_table(made / "segments", spans)
    target = root / "corpora" / name
    target.parent.mkdir(exist_ok=True)
    made.rename(target)
    return target


def write_ctm(path: Path, *data_dirs: Path, phones: str = "abcd") -> Path:
    r"""A CTM of 8 phones of 50 ms from the start of each utterance of ``data_dirs`` (each lasts 0.5 s or more)."""
    lines = [f"{utt} 1 {0.05 * i:.2f} 0.05 {phones[i % 4]}\n" for d in data_dirs for utt in read_table(d / "utt2spk")
             for i in range(8)]
    path.write_text("".join(lines))
    return path


def test_runs_every_stage_and_reruns_nothing(tmp_path):
    wsj = stand_in(tmp_path, "train_si284", ("011", "012", "013"), 1)
    test = stand_in(tmp_path, "test_eval92", ("440", "441"), 2)
    zh = stand_in(tmp_path, "zh", ("zh01", "zh02"), 3, rated=True)
    ja = stand_in(tmp_path, "ja", ("ja01", "ja02"), 4, rated=True, segments=True)  # recordings cut by segments
    # integer phones, named by a table given relative to the caller's folder (stage 6 read it from the recipe's)
    ctms = [write_ctm(tmp_path / "native.ctm", test, phones="1234"), write_ctm(tmp_path / "l2.ctm", zh, ja,
                                                                               phones="1234")]
    (tmp_path / "phones.txt").write_text("<eps> 0\na 1\nb 2\nc 3\nd 4\n")
    env = recipe_env()
    cmd = [
        "bash",
        str(RECIPE),
        "--wsj-train",
        str(wsj),
        "--wsj-test",
        str(test),
        "--l2",
        f"zh={zh} ja={ja}",
        "--l2-train",
        f"zh_train={zh}/",  # the same dir as --l2 zh, spelt otherwise: still named in the warning
        "--nj",
        "2",
        "--data",
        str(tmp_path / "data"),
        "--exp",
        str(tmp_path / "exp"),
        "--train-opts",
        TINY,
        "--report-opts",
        "--tsne-frames 0",  # the reports' slowest figure (25 s of this test's 120): stage 6 passes it on
        "--ctms",
        " ".join(map(str, ctms)),
        "--phones-opts",
        "--min-frames 10 --phones phones.txt",
        "--configs",
        "dnf_120 dnf_440_c400 nf_120",  # dnf_440_c440 added below
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    for conf in ("dnf_120", "dnf_440_c400", "nf_120"):
        summary = json.loads((tmp_path / "exp" / conf / "scores" / "summary.json").read_text())
        assert set(summary["sets"]) == {"native_heldout", "native_test", "zh", "ja"}
        assert summary["baseline"]["kind"] == "gmm"
        rated = json.loads((tmp_path / "exp" / conf / "scores_rated" / "summary.json").read_text())
        assert {"zh_rated", "ja_rated"} <= set(rated["sets"]) and rated["baseline"]["loaded"]  # stage 4's GMM
        assert "Latents, PCA" in (report := (tmp_path / "exp" / conf / "report.html").read_text())
        assert "t-SNE" not in report and "t-SNE" not in (tmp_path / "exp" / conf / "rated" / "report.html").read_text()
        assert "zh_rated" in (tmp_path / "exp" / conf / "rated" / "report.md").read_text()
        phones = (tmp_path / "exp" / conf / "phones" / "phones.md").read_text()  # stage 6, with --ctms
        assert "| native_test (reference) | 8 of 8 |" in phones and "| ja | 8 of 8 |" in phones
        assert "| native_heldout" not in phones  # WSJ's held-out part has no CTM: left out, and said so
        assert "- Set 'native_heldout' left out: the CTMs hold none of its 1 utterances." in phones
        assert "<h2>Phones: zh's lowest relative LogLL minus native_test's (4 of 4 ranked; " in report
        # the training dirs are subsets of wsj_all: their fbank record came along, so scoring checks sets against it
        assert json.loads((tmp_path / "exp" / conf / "fbank.json").read_text())["fbank"]["num_mel_bins"] == 40
    dims = {
        c: json.loads((tmp_path / "exp" / c / "scores" / "summary.json").read_text())["model"]["dim"]
        for c in ("dnf_120", "dnf_440_c400")
    }
    assert dims == {"dnf_120": 120, "dnf_440_c400": 440}
    compared = (tmp_path / "exp" / "compare.md").read_text()  # stage 6: the models side by side
    assert "| model | native_heldout | native_test | zh | ja |" in compared and "## Notes" not in compared
    assert all(f"\n| {conf} | " in compared for conf in ("dnf_120", "dnf_440_c400", "nf_120"))
    assert "| model | native_test | zh_rated | ja_rated |" in (tmp_path / "exp" / "compare_rated.md").read_text()
    assert len(read_table(tmp_path / "data" / "ja" / "feats.scp")) == 8  # from 4 recordings
    rated_spans = read_table(tmp_path / "data" / "ja_rated" / "segments")  # wav.scp: their recordings only
    assert set(read_table(tmp_path / "data" / "ja_rated" / "wav.scp")) == {v.split()[0] for v in rated_spans.values()}
    assert 0 < len(rated_spans) < 8
    held = (tmp_path / "data" / "wsj_heldout" / "utt2spk").read_text().splitlines()
    assert len(held) == 1  # 1/10 of 12 utterances
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert again.returncode == 0 and "Stage" not in again.stderr  # .done markers: nothing reruns
    # the plain flow on native English only; AUCs against the unseen WSJ speakers; zh scored and trained on
    assert (tmp_path / "exp" / "nf_120" / "classes.txt").read_text() == "native\n"
    assert (tmp_path / "exp" / "dnf_120" / "classes.txt").read_text() == "native\nzh_train\n"
    assert summary["reference"] == "native_test" and rated["reference"] == "native_test"
    assert "--l2 zh is also an --l2-train set" in result.stderr
    # stage 5 again with nothing in range: the earlier rated scores and reports go (stage 6 reported them)
    none = subprocess.run([*cmd, "--stage", "5", "--stop-stage", "5", "--rated-min", "10", "--rated-max", "11"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert none.returncode == 0, none.stderr[-2000:]
    assert not (tmp_path / "exp" / "nf_120" / "scores_rated").exists()
    assert not (tmp_path / "exp" / "nf_120" / "rated").exists()
    assert not (tmp_path / "exp" / "compare_rated.md").exists()  # stage 6 made it from them
    changed = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)  # rated range
    assert changed.returncode == 1 and "made with other options (rated_min rated_max)" in changed.stderr
    # --stage 5 with another --wsj-test: stage 0 made the sets from the old one and is not redone (it was taken,
    # and recorded as if it had made them)
    other = subprocess.run([*cmd, "--stage", "5", "--stop-stage", "5", "--wsj-test", str(wsj)], capture_output=True,
                           text=True, env=env, timeout=60)
    assert other.returncode == 1 and f"--stage 5 does not redo stage 0, whose results came from --wsj-test '{test}'" \
        in other.stderr, other.stderr[-2000:]
    # another experiment on the same data dir with one wrong input: refused before any set is replaced (the
    # sets before it were, and the finished experiment's features were gone)
    wrong = subprocess.run([*cmd, "--exp", str(tmp_path / "exp2"), "--l2", f"zh={zh} ja={tmp_path / 'nowhere'}"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert wrong.returncode == 1 and f"{tmp_path / 'nowhere'}: no such data dir or wav.scp list" in wrong.stderr
    assert len(read_table(tmp_path / "data" / "wsj_all" / "feats.scp")) == 12
    # a configuration added: stage 3 finished without it, and was skipped (nothing trained, and "Done")
    four = "dnf_120 dnf_440_c400 nf_120 dnf_440_c440"
    added = subprocess.run([*cmd, "--configs", four, "--rated-min", "10", "--rated-max", "11"], capture_output=True,
                           text=True, env=env, timeout=60, cwd=tmp_path)  # the rating range stage 5 ran last
    assert added.returncode == 1 and "Stage" not in added.stderr, added.stderr[-2000:]
    assert (f"--configs: dnf_440_c440 has no {tmp_path / 'exp' / 'dnf_440_c440' / 'final.pt'} though stage 3 "
            f"finished in {tmp_path / 'exp'} (a run of other --configs made it): give --stage 3") in added.stderr
    scored = subprocess.run([*cmd, "--configs", "dnf_440_c440", "--stage", "4"], capture_output=True, text=True,
                            env=env, timeout=60, cwd=tmp_path)
    assert scored.returncode == 1 and "give --stage 3" in scored.stderr, scored.stderr[-2000:]
    trained = subprocess.run([*cmd, "--configs", four, "--stage", "3", "--stop-stage", "3"], capture_output=True,
                             text=True, env=env, timeout=300, cwd=tmp_path)
    assert trained.returncode == 0 and "  dnf_120: done already\n" in trained.stderr, trained.stderr[-2000:]
    assert "nothing left to train" not in trained.stderr and "written again" not in trained.stderr  # said in 4 lines
    assert (tmp_path / "exp" / "dnf_440_c440" / "final.pt").exists()
    # stage 3 again: a finished model is resumed, trains nothing; after a new split it is refused, not kept
    final = tmp_path / "exp" / "dnf_120" / "final.pt"
    before = final.read_bytes()
    kept = subprocess.run([*cmd, "--stage", "3", "--stop-stage", "3", "--configs", "dnf_120"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert kept.returncode == 0 and final.read_bytes() == before, kept.stderr[-2000:]
    # nf_120's checkpoints/ removed to save space: --stage 3 with other --train-opts counted it 'done already' and
    # scored the old model under the new options; it is held against its final.pt, and refused before the markers
    # of the stages it would redo go (a refusal in stage 3 left them gone: a plain rerun redid stages 3 to 6)
    import shutil

    shutil.rmtree(tmp_path / "exp" / "nf_120" / "checkpoints")
    nf = (tmp_path / "exp" / "nf_120" / "final.pt").read_bytes()
    markers = sorted(p.name for p in (tmp_path / "exp" / ".done").iterdir())
    wider = subprocess.run([*cmd, "--stage", "3", "--stop-stage", "4", "--configs", "nf_120", "--train-opts",
                            TINY.replace("hidden 16", "hidden 24")], capture_output=True, text=True, env=env,
                           timeout=300, cwd=tmp_path)
    assert wider.returncode == 1 and "Stage" not in wider.stderr, wider.stderr[-2000:]
    assert "final.pt: the config differs from the finished run's: model.hidden: 16 there, 24 given" in wider.stderr
    assert sorted(p.name for p in (tmp_path / "exp" / ".done").iterdir()) == markers
    assert (tmp_path / "exp" / "nf_120" / "final.pt").read_bytes() == nf
    same = subprocess.run([*cmd, "--stage", "3", "--stop-stage", "3", "--configs", "nf_120"], capture_output=True,
                          text=True, env=env, timeout=300, cwd=tmp_path)
    assert same.returncode == 0 and "  nf_120: done already\n" in same.stderr, same.stderr[-2000:]
    split = subprocess.run([*cmd, "--stage", "2", "--stop-stage", "3", "--configs", "dnf_120", "--heldout-fraction",
                            "0.3"], capture_output=True, text=True, env=env, timeout=300)
    assert split.returncode == 1 and "the training data changed since the run began" in split.stderr
    assert "wsj_train: feats.scp, utt2spk" in split.stderr and final.read_bytes() == before
    # as the message says, dnf_120's folder removed: every run to resume is checked before any trains (dnf_120
    # trained anew first, then dnf_440_c400 was refused: hours per config with the lab's settings)
    shutil.rmtree(tmp_path / "exp" / "dnf_120")
    again = subprocess.run([*cmd, "--stage", "3", "--stop-stage", "3", "--heldout-fraction", "0.3"],
                           capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 1 and "the training data changed since the run began" in again.stderr
    assert "dnf_440_c400" in again.stderr and not final.exists(), again.stderr[-2000:]


def test_inputs_from_the_callers_folder_fresh_dirs_and_no_name_twice(tmp_path):
    r"""Stages 0 and 1 alone, called from another folder with relative inputs: they are read from there, the
    relative paths inside a corpus's wav.scp too (as Kaldi reads them: from egs/*/s5), and each set's dir is made
    afresh (an old one's features go). An --l2 DIR without NAME= is named by its last part (it was refused at
    stage 4, after training). A name used by --l2 and --l2-train both is refused first."""
    env = recipe_env()
    wsj = stand_in(tmp_path, "train_si284", ("011",), 1)
    test = stand_in(tmp_path, "test_eval92", ("440",), 2)
    zh = stand_in(tmp_path, "zh", ("zh01",), 3, rated=True)
    wavs = {u: os.path.relpath(p.removeprefix("cat ").removesuffix(" |"), tmp_path)
            for u, p in read_table(zh / "wav.scp").items()}
    first = next(iter(wavs))
    write_table(zh / "wav.scp", {u: f"cat {p} |" if u == first else p for u, p in wavs.items()})
    data, exp = tmp_path / "data", tmp_path / "exp"
    (data / "wsj_test").mkdir(parents=True)
    (data / "wsj_test" / "feats.scp").write_text("stale\n")
    rel = {p: str(p.relative_to(tmp_path)) for p in (wsj, test, zh)}
    cmd = ["bash", str(RECIPE), "--wsj-train", rel[wsj], "--wsj-test", rel[test], "--l2", rel[zh],
           "--data", str(data), "--exp", str(exp), "--nj", "1"]
    done = subprocess.run([*cmd, "--stop-stage", "0"], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in data.iterdir()) == ["wsj_all", "wsj_test", "zh"]
    assert not (data / "wsj_test" / "feats.scp").exists() and (data / "zh" / "utt2score").exists()
    assert "warning: no --l2-train: the DNF configurations train on one class (native)" in done.stderr
    done = subprocess.run([*cmd, "--stage", "1", "--stop-stage", "1", "--fbank-opts", "--preemph-coeff 0.9"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(read_table(data / "zh" / "feats.scp")) == len(wavs)
    # fbank's options reach it (its errors name them: --allow-upsample true, --channel 0)
    assert json.loads((data / "zh" / "fbank.json").read_text())["fbank"]["preemph_coeff"] == 0.9
    # names flowaccent score refuses, or the recipe's own sets', were refused at stage 4 (after training) or
    # overwritten by stage 5
    for option, spec, message in (("--l2-train", "x/=b", "--l2-train 'x/=b': 'x/' cannot name a set"),
                                  ("--l2-train", "figures=b", "'figures' cannot name a set"),
                                  ("--l2-train", "zh(1)=b", "'zh(1)' cannot name a set"),
                                  ("--l2-train", "native_test=b", "set name 'native_test' is used twice"),
                                  ("--l2-train", "zh_rated=b", "set name 'zh_rated' is used twice"),
                                  ("--l2-train", "zh2=", "--l2-train 'zh2=': no DIR after 'zh2=' (NAME=DIR)")):
        bad = subprocess.run([*cmd, option, spec], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
        assert bad.returncode == 1 and message in bad.stderr, (spec, bad.stderr)
    # numbers stages 2 and 5 use, after training (a fraction 0 held out one utterance all the same)
    for option, value, message in (("--heldout-fraction", "0", "takes a fraction between 0 and 1 (both excluded)"),
                                   ("--heldout-fraction", "1", "takes a fraction between 0 and 1 (both excluded)"),
                                   ("--heldout-fraction", "0x5", "--heldout-fraction takes a number, not '0x5'"),
                                   ("--rated-max", "two", "--rated-max takes a number, not 'two'"),
                                   ("--rated-min", "4", "--rated-min 4 is above --rated-max 2: no rating is in that"),
                                   # stage 3's (a typo was found after fbank, hours on WSJ)
                                   ("--train-opts", "--train.epoch 3", "unrecognized arguments: --train.epoch"),
                                   ("--train-opts", "--train.valid_fraction 2", "valid_fraction must be in [0, 1)"),
                                   ("--configs", " ", "--configs: no configuration given (conf/: dnf_120 "),
                                   ("--configs", "nf_120 nf_120", "--configs: 'nf_120' is given twice"),
                                   ("--nj", "abc", "--nj takes a number of jobs >= 1, not 'abc'")):
        bad = subprocess.run([*cmd, option, value, "--exp", str(tmp_path / "exp_bad")], capture_output=True,
                             text=True, cwd=tmp_path, env=env, timeout=60)
        assert bad.returncode == 1 and message in bad.stderr, (value, bad.stderr)
        assert not (tmp_path / "exp_bad").exists()
    same = subprocess.run([*cmd[:4], "--wsj-test", rel[wsj], "--l2", f"{rel[wsj]}/", "--data", str(data), "--exp",
                           str(exp), "--stage", "9"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert "--wsj-test is the --wsj-train data: native_test, the AUCs' reference, is of speakers" in same.stderr
    assert f"--l2 train_si284 is WSJ's data ({wsj}): an accented set of native speech" in same.stderr
    clash = subprocess.run([*cmd, "--l2-train", f"zh={rel[zh]}"], capture_output=True, text=True, cwd=tmp_path, env=env,
                           timeout=60)
    assert clash.returncode == 1 and "set name 'zh' is used twice" in clash.stderr
    # bare wav.scp lists without NAME=: named by their folder, or their name less .scp (both were 'wav.scp' and
    # 'ja.scp')
    (tmp_path / "lists").mkdir()
    shutil.copy(zh / "wav.scp", tmp_path / "lists" / "ja.scp")
    bare = subprocess.run([*cmd[:6], "--nj", "1", "--l2", f"{rel[zh]}/wav.scp", "--l2-train", "lists/ja.scp", "--data",
                           str(tmp_path / "data2"), "--exp", str(tmp_path / "exp2"), "--stop-stage", "0"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert bare.returncode == 0, bare.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "data2").iterdir()) == ["ja", "wsj_all", "wsj_test", "zh"]
    nospk = shutil.copytree(zh, tmp_path / "nospk")  # a dir of no speakers: its wav.scp, given as a bare list, takes
    for name in ("utt2spk", "spk2utt"):  # one a line (a walkthrough was told only 'required but missing')
        (nospk / name).unlink()
    bad = subprocess.run([*cmd[:6], "--nj", "1", "--l2", "nospk", "--data", str(tmp_path / "data3"), "--exp",
                          str(tmp_path / "exp3"), "--stop-stage", "0"], capture_output=True, text=True, cwd=tmp_path,
                         env=env, timeout=120)
    assert bad.returncode == 1 and (f"{nospk}/utt2spk: required but missing (speakers not known: give {nospk}/wav.scp "
                                    "itself, a bare list, for one speaker per utterance)") in bad.stderr, bad.stderr


def test_rating_subset_leaves_out_a_set_with_nothing_in_range(tmp_path):
    zh = stand_in(tmp_path, "zh", ("zh01",), 3, rated=True)
    script = RECIPE.parent / "local" / "rating_subset.py"
    target = tmp_path / "zh_rated"
    target.mkdir()  # from an earlier run
    args = [sys.executable, str(script), str(zh), str(target), "--min", "6", "--max", "7"]
    strict = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert strict.returncode == 1 and "no utterance rated in [6.0, 7.0]" in strict.stderr
    skipped = subprocess.run([*args, "--skip-empty"], capture_output=True, text=True, timeout=60)
    assert skipped.returncode == 0 and "no subset" in skipped.stderr and not target.exists()


def test_help_lists_every_option_and_nothing_else():
    r"""Names with digits (--l2, --l2-train) were left out of --help, and the internal CALLER was listed."""
    shown = subprocess.run(["bash", str(RECIPE), "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0
    listed = shown.stderr.split("\noptions:\n", 1)[1].splitlines()  # after what the recipe does
    options = [line.split()[0] for line in listed]
    assert options == ["--stage", "--stop-stage", "--wsj-train", "--wsj-test", "--l2", "--l2-train", "--configs",
                       "--train-opts", "--fbank-opts", "--report-opts", "--ctms", "--phones-opts", "--nj", "--data",
                       "--exp", "--heldout-fraction", "--rated-min", "--rated-max", "--train-cmd",
                       "--score-cmd"]  # cmd.sh's: taken
    assert "--train-cmd (default: flowaccent)  how stage 3" in shown.stderr  # not cmd.sh's ${train_cmd:-flowaccent}
    # what each option is for: its note, or the opening comment's (--configs and --nj were described nowhere)
    assert "--configs (default: \"dnf_120 dnf_440_c400 dnf_440_c440 nf_120\")  the models to train" in shown.stderr
    assert "\n  --ctms       optional phone alignments" in shown.stderr
    assert all(")  " in line for line in listed)  # each with a note


def test_stage_1_stopped_by_unreadable_audio_goes_on_once_fixdir_leaves_it_out(tmp_path):
    r"""recipes.md's mend: stage 1 stops on an unreadable WAV, naming the ``fixdir`` that leaves it out; after it,
    ``--stage 1`` completes, taking over what the failed run computed."""
    wsj = stand_in(tmp_path, "train_si284", ("011", "012"), 1)
    test = stand_in(tmp_path, "test_eval92", ("440",), 2)
    zh = stand_in(tmp_path, "zh", ("zh01", "zh02"), 3)
    Path(read_table(zh / "wav.scp")["zh01-001"]).write_bytes(b"not a wav file")
    data = tmp_path / "data"
    cmd = ["bash", str(RECIPE), "--wsj-train", str(wsj), "--wsj-test", str(test), "--l2", f"zh={zh}", "--data",
           str(data), "--exp", str(tmp_path / "exp"), "--stop-stage", "1"]
    env = recipe_env()
    failed = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert failed.returncode == 1 and "utterance 'zh01-001'" in failed.stderr
    fix = f"flowaccent fixdir --exclude {data / 'zh' / 'data' / 'fbank_failed.txt'} {data / 'zh'}"
    assert f"('{fix}')" in failed.stderr, failed.stderr[-2000:]
    assert subprocess.run(fix.split(), capture_output=True, env=env).returncode == 0
    mended = subprocess.run([*cmd, "--stage", "1"], capture_output=True, text=True, env=env, timeout=300)
    assert mended.returncode == 0, mended.stderr[-2000:]
    assert "took over 7 utterance(s) of 7 recording(s)" in mended.stderr
    assert len(read_table(data / "zh" / "feats.scp")) == 7 and "zh01-001" not in read_table(data / "zh" / "utt2spk")
