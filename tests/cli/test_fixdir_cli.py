r"""``flowaccent fixdir``: the mend of a failed ``fbank`` run, end to end, and what it says."""

from __future__ import annotations

import json
import shutil

from flowaccent.cli.main import main
from flowaccent.data import read_table


def test_failed_utterances_left_out_then_fbank_resume_computes_nothing_again(wav_data_dir, tmp_path, capsys):
    r"""fbank fails on two unreadable WAVs and lists them; ``fixdir --exclude`` that list, and ``fbank --resume``
    takes over all the others: the same files as a fresh run on the mended lists."""
    wav_scp = read_table(wav_data_dir / "wav.scp")
    for utt in ("spkA-001", "spkB-000"):
        open(wav_scp[utt], "w").write("not a wav file")
    assert main(["fbank", str(wav_data_dir), "--quiet", "--nj", "2"]) == 1
    failed = wav_data_dir / "data" / "fbank_failed.txt"
    assert f"'flowaccent fixdir --exclude {failed} {wav_data_dir}'" in capsys.readouterr().err
    assert main(["fixdir", "--exclude", str(failed), str(wav_data_dir)]) == 0
    out, err = capsys.readouterr()
    assert err == (f"fixdir: {wav_data_dir}: kept 4 of 6 utterance(s) (2 listed by --exclude); wrote wav.scp, "
                   f"utt2spk, spk2utt (the tables they replaced: {wav_data_dir / '.backup'})\n")
    assert out == f"{wav_data_dir}: OK\n"
    assert list(read_table(wav_data_dir / "utt2spk")) == ["spkA-000", "spkA-002", "spkB-001", "spkB-002"]
    reference = tmp_path / "reference" / wav_data_dir.name  # the mended lists, computed in one run
    shutil.copytree(wav_data_dir, reference, ignore=shutil.ignore_patterns("data", ".*"))
    assert main(["fbank", str(wav_data_dir), "--quiet", "--resume"]) == 0
    assert "took over 4 utterance(s) of 4 recording(s)" in capsys.readouterr().err
    assert main(["fbank", str(reference), "--quiet"]) == 0
    for name in ("feats.scp", "cmvn.scp", "utt2num_frames"):
        ours, theirs = (d / name for d in (wav_data_dir, reference))
        assert ours.read_text().replace(str(wav_data_dir), "X") == theirs.read_text().replace(str(reference), "X")
    arks = sorted(p.name for p in (wav_data_dir / "data").iterdir())
    assert arks == sorted(p.name for p in (reference / "data").iterdir())
    assert all((wav_data_dir / "data" / a).read_bytes() == (reference / "data" / a).read_bytes() for a in arks)


def test_what_it_cannot_mend_is_listed_and_fails(wav_data_dir, capsys):
    (wav_data_dir / "text").write_text("spkA-000 HI\n")  # the others lack a transcript: left out
    (wav_data_dir / "utt2num_frames").write_text("spkA-000 x\n")
    assert main(["fixdir", str(wav_data_dir)]) == 1
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[0].startswith(f"fixdir: {wav_data_dir}: kept 1 of 6 utterance(s) (5 not in text); wrote ")
    bad = f"flowaccent fixdir: error: {wav_data_dir}/utt2num_frames: utterance 'spkA-000': bad frame count 'x'"
    assert lines[1:] == [bad]  # not a missing line: kept as it was
    assert out == ""
    assert main(["fixdir", str(wav_data_dir)]) == 1  # nothing more to change
    assert capsys.readouterr().err.splitlines() == [f"fixdir: {wav_data_dir}: kept all 1 utterance(s); nothing to "
                                                    "change", bad]


def test_a_missing_list_or_dir_is_one_line(wav_data_dir, tmp_path, capsys):
    assert main(["fixdir", "--exclude", str(tmp_path / "none.txt"), str(wav_data_dir)]) == 1
    assert capsys.readouterr().err == (f"flowaccent fixdir: error: {tmp_path / 'none.txt'}: cannot read the --exclude "
                                       "list: No such file or directory\n")
    assert main(["fixdir", str(tmp_path / "nothing")]) == 1
    assert capsys.readouterr().err == f"flowaccent fixdir: error: {tmp_path / 'nothing'}: no such directory\n"
    listed = tmp_path / "ids.txt"
    listed.write_text("\nspkA-000\n  \nspkZ-9 gone\n")  # blank lines skipped; an id not there is counted
    assert main(["fixdir", "--exclude", str(listed), str(wav_data_dir)]) == 0
    assert "kept 5 of 6 utterance(s) (1 listed by --exclude); 1 utterance(s) --exclude lists are not in it" in \
        capsys.readouterr().err


def test_validate_names_fixdir_where_it_mends_the_dir(wav_data_dir, capsys):
    r"""The coverage problems fixdir mends (lines missing from a table it keeps utterances by, lines of no utterance,
    a stale spk2utt) name it; one it does not mend (utt2num_frames short of lines, with no feats.scp to count them in)
    does not."""
    (wav_data_dir / "text").write_text("spkA-000 HI\nspkA-001 HO\nspkZ-000 HU\n")
    (wav_data_dir / "spk2utt").write_text("spkA spkA-000\nspkB spkB-000 spkB-001 spkB-002\n")
    (wav_data_dir / "utt2num_frames").write_text("spkA-000 5\n")
    assert main(["validate", str(wav_data_dir)]) == 1
    err = capsys.readouterr().err.splitlines()
    fix = f"'flowaccent fixdir {wav_data_dir}'"
    assert [line for line in err if "'flowaccent fixdir" in line] == [
        f"flowaccent validate: error: {wav_data_dir}/spk2utt: speaker 'spkA' does not match utt2spk (regenerate it "
        f"with utt2spk_to_spk2utt.pl, or {fix})",
        f"flowaccent validate: error: {wav_data_dir}/text: 4 utterance(s) of utt2spk missing, e.g. 'spkA-002' ({fix} "
        "leaves them out)",
        f"flowaccent validate: error: {wav_data_dir}/text: 1 utterance(s) not in utt2spk, e.g. 'spkZ-000' ({fix} "
        "removes them)",
    ]
    assert err[-1].endswith("utt2num_frames: 5 utterance(s) of utt2spk missing, e.g. 'spkA-001'")


def test_features_of_a_run_before_a_failed_one_do_not_leave_new_utterances_out(wav_data_dir, tmp_path, capsys):
    r"""A recording added to a dir with features, and fbank then failing on another: the old feats.scp lacks the new
    one, and Kaldi's rule (keep what feats.scp lists) left it out with the failed one; it is kept for fbank."""
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0
    wav_scp = read_table(wav_data_dir / "wav.scp")
    new = tmp_path / "new.wav"
    shutil.copy(wav_scp["spkB-000"], new)
    for table, line in (("wav.scp", f"spkB-003 {new}\n"), ("utt2spk", "spkB-003 spkB\n")):
        with open(wav_data_dir / table, "a") as f:
            f.write(line)
    (wav_data_dir / "spk2utt").write_text("spkA spkA-000 spkA-001 spkA-002\nspkB spkB-000 spkB-001 spkB-002 spkB-003\n")
    open(wav_scp["spkA-001"], "w").write("not a wav file")
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 1
    assert main(["validate", str(wav_data_dir)]) == 1  # its hint: not fixdir, which keeps the new one
    assert f"{wav_data_dir}/feats.scp: 1 utterance(s) of utt2spk missing, e.g. 'spkB-003' (feats.scp is of an fbank " \
        "run before the one that failed (data/fbank_failed.txt): 'flowaccent fbank' computes them)" \
        in capsys.readouterr().err
    failed = wav_data_dir / "data" / "fbank_failed.txt"
    assert main(["fixdir", "--exclude", str(failed), str(wav_data_dir)]) == 0
    out, err = capsys.readouterr()
    assert err.startswith(f"fixdir: {wav_data_dir}: kept 6 of 7 utterance(s) (1 listed by --exclude); feats.scp is "
                          "of an fbank run before the one that failed (data/fbank_failed.txt): it leaves no utterance "
                          "out (1 kept that it lacks), and feats.scp, cmvn.scp, utt2num_frames are not "
                          "checked ('flowaccent fbank' replaces them)")
    assert out == f"{wav_data_dir}: OK\n"  # the tables fbank replaces not checked
    assert "spkB-003" in read_table(wav_data_dir / "utt2spk")
    assert main(["fbank", str(wav_data_dir), "--quiet", "--resume"]) == 0
    assert main(["validate", str(wav_data_dir), "--read-feats"]) == 0
    assert "spkB-003" in read_table(wav_data_dir / "feats.scp")
    capsys.readouterr()
    assert not failed.exists()  # the run that completed removed it: Kaldi's rule again
    lines = (wav_data_dir / "feats.scp").read_text().splitlines()
    (wav_data_dir / "feats.scp").write_text("\n".join(lines[1:]) + "\n")
    assert main(["fixdir", str(wav_data_dir)]) == 0
    assert "kept 5 of 6 utterance(s) (1 not in feats.scp)" in capsys.readouterr().err


def test_utterances_added_after_fbank_are_kept_for_the_next(wav_data_dir, tmp_path, capsys):
    r"""An utterance added to a dir whose features fbank computed, spk2utt not made again: fbank's error names fixdir,
    and fixdir kept what feats.scp lists, so the new utterance was gone (in .backup only). feats.scp is as fbank wrote
    it (fbank.json's digest), which took every utterance: the new one is kept, and fbank computes it. A fix's own
    feats.scp (--exclude) is followed; one filtered by hand is Kaldi's rule."""
    from flowaccent.data.rules import utterances_digest

    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0
    capsys.readouterr()
    listed = tmp_path / "out.txt"
    listed.write_text("spkA-002\n")
    assert main(["fixdir", "--exclude", str(listed), str(wav_data_dir)]) == 0  # feats.scp rewritten: digest follows
    record = json.loads((wav_data_dir / "fbank.json").read_text())
    assert record["feats_scp"] == utterances_digest(read_table(wav_data_dir / "feats.scp"))
    new = tmp_path / "new.wav"
    shutil.copy(read_table(wav_data_dir / "wav.scp")["spkB-000"], new)
    for table, line in (("wav.scp", f"spkB-003 {new}\n"), ("utt2spk", "spkB-003 spkB\n")):
        with open(wav_data_dir / table, "a") as f:
            f.write(line)
    capsys.readouterr()
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 1
    assert f"speaker 'spkB' does not match utt2spk (regenerate it with utt2spk_to_spk2utt.pl, or 'flowaccent fixdir " \
        f"{wav_data_dir}')" in capsys.readouterr().err
    assert main(["validate", str(wav_data_dir)]) == 1
    assert f"{wav_data_dir}/feats.scp: 1 utterance(s) of utt2spk missing, e.g. 'spkB-003' (feats.scp is as " \
        "'flowaccent fbank' wrote it, before the utterances it lacks were added: 'flowaccent fbank' computes them)" \
        in capsys.readouterr().err
    assert main(["fixdir", str(wav_data_dir)]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"fixdir: {wav_data_dir}: kept all 6 utterance(s); feats.scp is as 'flowaccent fbank' wrote "
                          "it, before the utterances it lacks were added: it leaves no utterance out (1 kept that it "
                          "lacks)"), err
    assert read_table(wav_data_dir / "spk2utt")["spkB"] == "spkB-000 spkB-001 spkB-002 spkB-003"
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0
    assert "spkB-003" in read_table(wav_data_dir / "feats.scp")
    lines = (wav_data_dir / "feats.scp").read_text().splitlines()
    (wav_data_dir / "feats.scp").write_text("\n".join(lines[1:]) + "\n")  # filtered by hand: Kaldi's rule
    capsys.readouterr()
    assert main(["fixdir", str(wav_data_dir)]) == 0
    assert "kept 5 of 6 utterance(s) (1 not in feats.scp)" in capsys.readouterr().err


def test_frame_counts_utt2num_frames_lacks_are_counted(wav_data_dir, tmp_path, capsys):
    r"""Features of Kaldi's scripts may come without utt2num_frames, which train needs: its error names fixdir, which
    counts them in feats.scp, as fbank wrote them."""
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0
    frames = wav_data_dir / "utt2num_frames"
    written = frames.read_bytes()
    frames.unlink()
    capsys.readouterr()
    assert main(["train", str(wav_data_dir), "--exp", str(tmp_path / "exp"), "--check"]) == 1
    assert capsys.readouterr().err == (
        f"flowaccent train: error: {frames}: required but missing (make it from feats.scp with 'flowaccent fixdir "
        f"{wav_data_dir}' or Kaldi's utils/data/get_utt2num_frames.sh; or run 'flowaccent fbank {wav_data_dir}' for "
        "new features)\n")
    frames.write_bytes(written.split(b"\n", 1)[1])
    assert main(["validate", str(wav_data_dir)]) == 1
    assert capsys.readouterr().err == (f"flowaccent validate: error: {frames}: 1 utterance(s) of utt2spk missing, e.g. "
                                       f"'spkA-000' ('flowaccent fixdir {wav_data_dir}' counts their frames in "
                                       "feats.scp)\n")
    assert main(["fixdir", str(wav_data_dir)]) == 0
    assert capsys.readouterr() == (f"{wav_data_dir}: OK\n", f"fixdir: {wav_data_dir}: kept all 6 utterance(s); "
                                   "counted the frames of 1 utterance(s) in feats.scp for utt2num_frames; wrote "
                                   f"utt2num_frames (the tables they replaced: {wav_data_dir / '.backup'})\n")
    assert frames.read_bytes() == written
    frames.unlink()
    assert main(["fixdir", str(wav_data_dir)]) == 0
    assert capsys.readouterr().err == (f"fixdir: {wav_data_dir}: kept all 6 utterance(s); counted the frames of 6 "
                                       "utterance(s) in feats.scp for utt2num_frames; made utt2num_frames\n")
    assert frames.read_bytes() == written
    assert main(["validate", str(wav_data_dir), "--read-feats"]) == 0


def test_kaldis_rules_for_the_tables_commands_do_not_read(wav_data_dir, capsys):
    r"""fixdir removes spk2gender's and utt2dur's lines of no speaker or utterance, refuses a key on two lines (both
    were kept, and validate said OK), and says what it cannot mend, as validate does; validate takes Kaldi's
    --no-text, --no-wav and --no-feats, which check the tables that are there, as Kaldi's do."""
    (wav_data_dir / "spk2gender").write_text("spkA f\nspkA m\nspkB m\n")
    before = (wav_data_dir / "spk2gender").read_bytes()
    assert main(["fixdir", str(wav_data_dir)]) == 1 and (wav_data_dir / "spk2gender").read_bytes() == before
    assert capsys.readouterr().err == (f"flowaccent fixdir: error: {wav_data_dir}/spk2gender:2: duplicate key 'spkA' "
                                       "(line 1 too): keep one of the two lines\n")
    (wav_data_dir / "spk2gender").write_text("spkA f\nspkB m\nspkZ m\n")
    (wav_data_dir / "text").write_bytes(b"".join(b"%s HI\r\n" % utt.encode() for utt in
                                                 (wav_data_dir / "utt2spk").read_text().split()[::2]))
    assert main(["fixdir", str(wav_data_dir)]) == 1
    assert (wav_data_dir / "spk2gender").read_text() == "spkA f\nspkB m\n"
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[1].startswith(f"flowaccent fixdir: error: {wav_data_dir}/text:1: a Windows line end")
    # Kaldi's --no-text says text is not required, not that a text there goes unchecked
    assert main(["validate", str(wav_data_dir)]) == 1 and main(["validate", "--no-text", str(wav_data_dir)]) == 1
    utt2spk = (wav_data_dir / "utt2spk").read_text()
    (wav_data_dir / "utt2spk").write_text(utt2spk.replace(" spkA\n", " spkA extra\n", 1))
    capsys.readouterr()
    assert main(["fixdir", str(wav_data_dir)]) == 1  # it was said as a bad key of spk2utt, which fixdir makes
    assert capsys.readouterr().err == (f"flowaccent fixdir: error: {wav_data_dir}/utt2spk: utterance 'spkA-000': "
                                       "'spkA extra' is not one speaker id (a line is 'utterance speaker')\n")
