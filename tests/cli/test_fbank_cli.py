r"""``flowaccent fbank`` end to end: outputs equal the library, atomic, idempotent, parallel."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
from scipy.io import wavfile

from flowaccent.cli.main import main
from flowaccent.data import ScpReader, load_data_dir, read_table, read_wav, validate_data_dir
from flowaccent.features import compute_cmvn_stats, compute_fbank

from ..conftest import make_wav_data_dir


def snapshot(data_dir):
    r"""Bytes of every file in the data dir and its arks."""
    return {p.relative_to(data_dir): p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file()}


def test_outputs_match_the_library(wav_data_dir):
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0
    data = load_data_dir(wav_data_dir, require=("feats.scp", "cmvn.scp", "utt2num_frames"))
    wav_scp = data.table("wav.scp")
    per_spk = {}
    for utt, feats in ScpReader(wav_data_dir / "feats.scp", utt2num_frames=data.utt2num_frames()):
        samples, rate = read_wav(wav_scp[utt])
        np.testing.assert_array_equal(feats, compute_fbank(samples, rate))
        per_spk[data.utt2spk[utt]] = per_spk.get(data.utt2spk[utt], 0) + compute_cmvn_stats(feats)
    for spk, stats in ScpReader(wav_data_dir / "cmvn.scp"):
        np.testing.assert_allclose(stats, per_spk[spk])
    assert main(["validate", str(wav_data_dir), "--read-feats"]) == 0


def test_idempotent_and_parallel_equal_serial(wav_data_dir, tmp_path):
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0
    first = snapshot(wav_data_dir)
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0
    assert snapshot(wav_data_dir) == first
    other = tmp_path / "copy" / wav_data_dir.name
    shutil.copytree(wav_data_dir, other)
    shutil.rmtree(other / "data")
    assert main(["fbank", str(other), "--nj", "2", "--quiet"]) == 0
    feats = {k: m for k, m in ScpReader(other / "feats.scp")}
    for key, mat in ScpReader(wav_data_dir / "feats.scp"):
        np.testing.assert_array_equal(feats[key], mat)


def test_changed_options_replace_old_arks(wav_data_dir, capsys):
    r"""The earlier run's arks go, and it is said: a subset or copy made from the dir before pointed at them (its
    feats.scp pointed at nothing, without a word)."""
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0
    earlier = sorted((wav_data_dir / "data").glob("*.ark"))
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0  # the same options: the same arks, nothing said
    assert "removed" not in capsys.readouterr().err
    killed = wav_data_dir / "data" / f".raw_fbank_{wav_data_dir.name}.0123456789.ark.tmp.99999"
    killed.write_bytes(b"left by a killed run")
    # Kaldi's steps/make_fbank.sh writes its arks into the same folder; its subsets may still point at them
    kaldi = [wav_data_dir / "data" / f"{kind}_{wav_data_dir.name}.{job}.ark" for kind in ("raw_fbank", "cmvn")
             for job in ("1", "2")]
    for path in kaldi:
        path.write_bytes(b"Kaldi's")
    capsys.readouterr()
    assert main(["fbank", str(wav_data_dir), "--quiet", "--num-mel-bins", "23"]) == 0
    assert (f"fbank: removed the features of an earlier run ({', '.join(map(str, earlier))}); data dirs made from "
            f"{wav_data_dir} before (a subset, a copy) pointed at them: make them again") in capsys.readouterr().err
    assert len(list((wav_data_dir / "data").glob("raw_fbank_*.ark"))) == 1 + 2  # ours, and Kaldi's two
    assert not killed.exists() and all(path.read_bytes() == b"Kaldi's" for path in kaldi)
    (_, feats), *_ = ScpReader(wav_data_dir / "feats.scp")
    assert feats.shape[1] == 23


def test_any_spelling_of_the_dir_names_its_arks_after_it(wav_data_dir, monkeypatch):
    r"""``fbank .`` wrote ``raw_fbank_.TAG.ark`` and ``fbank ..`` ``raw_fbank_...TAG.ark``, beside the arks of
    ``fbank DIR``, and none removed the others'."""
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0
    before = sorted(p.name for p in (wav_data_dir / "data").iterdir())
    monkeypatch.chdir(wav_data_dir)
    assert main(["fbank", ".", "--quiet"]) == 0
    monkeypatch.chdir(wav_data_dir / "data")
    assert main(["fbank", "..", "--quiet"]) == 0
    assert sorted(p.name for p in (wav_data_dir / "data").iterdir()) == before
    values = [line.split()[1] for line in (wav_data_dir / "feats.scp").read_text().splitlines()]
    assert all(f"/data/raw_fbank_{wav_data_dir.name}." in v and "/../" not in v for v in values)


def test_bad_audio_fails_cleanly_and_keeps_previous_outputs(wav_data_dir, capsys):
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0
    capsys.readouterr()
    before = snapshot(wav_data_dir)
    wav_scp = read_table(wav_data_dir / "wav.scp")
    broken = wav_scp["spkB-001"]
    open(broken, "w").write("not a wav file")
    assert main(["fbank", str(wav_data_dir), "--quiet", "--num-mel-bins", "30"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "wav.scp: utterance 'spkB-001'" in err[0] and "not a readable WAV" in err[0]
    # nothing half-written, old features intact; the 5 other recordings stay for a --resume, hidden
    assert "; the features of 5 utterance(s) (5 recording(s)) stay in" in err[0]
    after = snapshot(wav_data_dir)
    assert {path: after[path] for path in before} == before
    new = sorted(after.keys() - before.keys())
    listed = wav_data_dir / "data" / "fbank_failed.txt"  # one failed: listed too, for 'fixdir --exclude'
    assert sorted(".part." in path.name for path in new if path.name != listed.name) == [True, True]
    assert listed.read_text().split() == ["spkB-001", *err[0].split(f"{wav_data_dir}: ")[1].split("; ")[0].split()]
    assert f"('flowaccent fixdir --exclude {listed} {wav_data_dir}')" in err[0]


def test_bad_job_count_or_channel_is_one_line(wav_data_dir, capsys):
    for args, message in ((["--nj", "0"], "error: nj must be >= 1, got 0"),  # named channel too
                          (["--channel", "-2"], "error: channel must be >= -1 (-1: mono), got -2"),
                          (["--preemph-coeff", "1.5"], "preemph_coeff must be in [0, 1] (Kaldi's: 0.97), got 1.5"),
                          (["--channel", "3"], "channel 3 requested, but the audio has 1 channel (channels count "
                                                              "from 0; -1: the one of mono audio)"),
                          # nan passed every check (then a traceback: "mel energy is nan"), inf overflowed int()
                          (["--dither", "nan"], "dither (--dither) must be a finite number, got nan"),
                          (["--frame-shift-ms", "nan"], "frame_shift_ms (--frame-shift-ms) must be a finite number"),
                          (["--frame-length-ms", "inf"], "frame_length_ms (--frame-length-ms) must be a finite")):
        assert main(["fbank", str(wav_data_dir), "--quiet", *args]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not (wav_data_dir / "feats.scp").exists()


def test_an_ark_folder_that_is_a_file_or_a_broken_link_is_said_as_such(wav_data_dir, tmp_path, capsys):
    r"""``DATA_DIR/data`` a link to a scratch disk not mounted, or a file: 'File exists', naming neither."""
    arks = wav_data_dir / "data"
    arks.symlink_to(tmp_path / "not_mounted")
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 1
    assert capsys.readouterr().err == (f"flowaccent fbank: error: {arks} is a link to {tmp_path / 'not_mounted'}, "
                                       "which is not there (a disk not mounted?); the arks go into it\n")
    arks.unlink()
    arks.write_text("")
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 1
    assert capsys.readouterr().err == (f"flowaccent fbank: error: {arks} is a file; the arks go into a folder of that "
                                       "name: move the file\n")
    arks.unlink()
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0


def test_failing_pipe_and_too_short_audio(wav_data_dir, capsys):
    lines = (wav_data_dir / "wav.scp").read_text().splitlines()
    lines[2] = "spkA-002 cat /nonexistent.wav |"
    (wav_data_dir / "wav.scp").write_text("\n".join(lines) + "\n")
    assert main(["fbank", str(wav_data_dir), "--quiet", "--nj", "2"]) == 1
    err = capsys.readouterr().err
    assert f"{wav_data_dir}: wav.scp: utterance 'spkA-002': pipe 'cat /nonexistent.wav' failed" in err
    assert not (wav_data_dir / "feats.scp").exists()
    # the 2 before it, for a --resume; and the failed one listed
    assert sorted(".part." in p.name for p in (wav_data_dir / "data").iterdir() if p.name != "fbank_failed.txt") \
        == [True, True]
    short = wav_data_dir.parent / "short.wav"
    wavfile.write(short, 16000, np.ones(300, np.int16))  # also: peak 1 at int16 scale is not [-1, 1]
    lines[2] = f"spkA-002 {short}"
    (wav_data_dir / "wav.scp").write_text("\n".join(lines) + "\n")
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 1
    assert "too short for one frame (300 samples" in capsys.readouterr().err
    lines[4] = "spkB-001 /nonexistent.wav"  # more than one: all found in one run, listed
    (wav_data_dir / "wav.scp").write_text("\n".join(lines) + "\n")
    assert main(["fbank", str(wav_data_dir), "--quiet", "--nj", "2"]) == 1
    listed = wav_data_dir / "data" / "fbank_failed.txt"
    assert f"too short for one frame (300 samples at 16000 Hz) (and 1 more utterance(s) failed; all in {listed})" in \
        capsys.readouterr().err
    assert [line.split()[0] for line in listed.read_text().splitlines()] == ["spkA-002", "spkB-001"]
    assert not (wav_data_dir / "feats.scp").exists()


def test_subprocess_error_is_one_line_without_traceback(wav_data_dir):
    (wav_data_dir / "utt2spk").write_text("spkB-000 spkB\nspkA-000 spkA\n")
    result = subprocess.run(
        [sys.executable, "-m", "flowaccent", "fbank", str(wav_data_dir)], capture_output=True, text=True
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert f"{wav_data_dir}/utt2spk:2: not sorted in C order" in lines[0]


def test_tables_fbank_does_not_use_do_not_stop_it(wav_data_dir, capsys):
    r"""A transcript missing an utterance, or a bad rating, stopped fbank (Kaldi's make_fbank.sh validates with
    --no-text); validate still reports them."""
    utts = (wav_data_dir / "utt2spk").read_text().split()[::2]
    (wav_data_dir / "text").write_text("".join(f"{u} HELLO\n" for u in utts[1:]))
    (wav_data_dir / "utt2score").write_text("".join(f"{u} good\n" for u in utts))
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0
    assert main(["validate", str(wav_data_dir)]) == 1
    err = capsys.readouterr().err
    assert "text: 1 utterance(s) of utt2spk missing" in err and "not a number 'good'" in err


def test_features_and_stats_of_two_runs_are_refused(wav_data_dir):
    r"""fbank replaces feats.scp, then cmvn.scp: killed between them, the old stats stood beside new features."""
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0
    old_cmvn = (wav_data_dir / "cmvn.scp").read_text()
    old_arks = {p.name: p.read_bytes() for p in (wav_data_dir / "data").iterdir()}
    assert main(["fbank", str(wav_data_dir), "--quiet", "--frame-shift-ms", "5"]) == 0
    for name, data in old_arks.items():  # as if the second run had stopped before its cmvn.scp
        (wav_data_dir / "data" / name).write_bytes(data)
    (wav_data_dir / "cmvn.scp").write_text(old_cmvn)
    problems = validate_data_dir(wav_data_dir)
    assert problems == [f"{wav_data_dir / 'cmvn.scp'}: from another 'flowaccent fbank' run than feats.scp (one was "
                        f"interrupted?); run 'flowaccent fbank {wav_data_dir}' again"]
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0 and validate_data_dir(wav_data_dir) == []


def test_a_kaldi_config_file_and_kaldis_option_names(wav_data_dir, tmp_path, capsys):
    r"""Kaldi recipes keep their feature options in conf/fbank.conf: 'fbank --config' was argparse's usage."""
    import json

    conf = tmp_path / "fbank.conf"
    conf.write_text("# from egs/x/s5/conf\n--num_mel_bins=23  # bins\n--frame-shift=10\n--Snip-Edges=f\n"
                    "--sample-frequency=16000.0\n"
                    "--dither=1\n--htk-compat\n--channel=0\n--verbose=2\n")
    assert main(["fbank", str(wav_data_dir), "--quiet", "--config", str(conf), "--preemphasis-coefficient", "0.5"]) == 0
    record = json.loads((wav_data_dir / "fbank.json").read_text())
    assert record["channel"] == 0 and record["fbank"]["snip_edges"] is False and record["fbank"]["dither"] == 1.0
    assert record["fbank"]["htk_compat"] is True  # a bare --name: true
    assert record["fbank"]["num_mel_bins"] == 23 and record["fbank"]["preemph_coeff"] == 0.5
    assert main(["fbank", str(wav_data_dir), "--quiet", "--config", str(conf), "--num-mel-bins", "30"]) == 0
    assert json.loads((wav_data_dir / "fbank.json").read_text())["fbank"]["num_mel_bins"] == 30  # the command line wins
    capsys.readouterr()
    for line, message in (("--vtln-warp=0.9", f"{conf}:1: --vtln-warp is not an option flowaccent fbank implements"),
                          ("--snip-edges=maybe", f"{conf}:1: --snip-edges: bad value 'maybe'"),
                          ("num-mel-bins=23", f"{conf}:1: expected '--name=value'")):
        conf.write_text(line + "\n")
        assert main(["fbank", str(wav_data_dir), "--quiet", "--config", str(conf)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    (tmp_path / "other.conf").write_text("--num-mel-bins=30\n")
    conf.write_text(f"--config={tmp_path / 'other.conf'}\n--num-mel-bins=23\n")  # Kaldi does not read the other file
    assert main(["fbank", str(wav_data_dir), "--quiet", "--config", str(conf)]) == 0
    assert json.loads((wav_data_dir / "fbank.json").read_text())["fbank"]["num_mel_bins"] == 23
    assert f"{conf}:1: --config={tmp_path / 'other.conf'} is not read" in capsys.readouterr().err


def test_a_second_fbank_on_a_dir_being_written_is_refused(wav_data_dir, capsys):
    r"""Two ``fbank`` runs on one data dir: the second crashed with a traceback (FileNotFoundError, removing
    the first one's arks as stale). It is now refused in one line while the first runs, and the first finishes
    with outputs equal to a run alone."""
    import os
    import time

    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0
    alone = dict(ScpReader(wav_data_dir / "feats.scp"))
    capsys.readouterr()
    lines = (wav_data_dir / "wav.scp").read_text().splitlines()
    entries = (line.split(" ", 1) for line in lines)
    slow = "".join(f"{u} sleep 0.5; {w if w.endswith('|') else f'cat {w} |'}\n" for u, w in entries)
    (wav_data_dir / "wav.scp").write_text(slow)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "-m", "flowaccent", "fbank", str(wav_data_dir), "--quiet"], env=env,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not list((wav_data_dir / "data").glob(".raw_fbank_*.part.*")) and time.time() < deadline:
        assert first.poll() is None, first.stderr.read()
        time.sleep(0.01)
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"flowaccent fbank: error: {wav_data_dir} is being written by another flowaccent fbank, "
                   f"fixdir or cmvn now; wait for it"], err
    assert first.wait(timeout=120) == 0, first.stderr.read()
    assert main(["validate", str(wav_data_dir), "--read-feats"]) == 0
    after = dict(ScpReader(wav_data_dir / "feats.scp"))
    assert after.keys() == alone.keys() and all(np.array_equal(after[k], alone[k]) for k in alone)
    assert len(list((wav_data_dir / "data").glob("raw_fbank_*.ark"))) == 1  # the earlier run's removed, no other


def test_data_dirs_sharing_a_storage_folder_keep_their_own_arks(tmp_path, capsys):
    r"""Two data dirs of one name (``a/data``, ``b/data``) whose ``data/`` links to one storage folder, as Kaldi
    recipes keep features: fbank of the second removed the first's ark as its own stale one (same name, same
    tag pattern), leaving ``a/data/feats.scp`` pointing at nothing; and the lock, then kept in the storage
    folder, refused a run on one dir while the other ran. Each now keeps its arks and its own lock."""
    import fcntl
    import os

    from ..conftest import make_wav_data_dir

    shared = tmp_path / "storage"
    shared.mkdir()
    dirs = []
    for name, seed in (("a", 0), ("b", 1)):
        data = make_wav_data_dir(tmp_path / name, seed=seed)
        (data / "data").symlink_to(shared)
        dirs.append(data)
    held = os.open(dirs[0] / ".fbank.lock", os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)  # a run on a/data under way
        assert main(["fbank", str(dirs[1]), "--quiet"]) == 0
    finally:
        os.close(held)
    assert main(["fbank", str(dirs[0]), "--quiet"]) == 0
    assert main(["fbank", str(dirs[1]), "--quiet", "--num-mel-bins", "23"]) == 0  # b's earlier ark replaced
    capsys.readouterr()
    assert main(["validate", str(dirs[0]), "--read-feats"]) == 0
    arks = sorted(p.name for p in shared.glob("raw_fbank_*.ark"))
    assert len(arks) == 2, arks  # a's, and b's of 23 bins; b's first one removed


def test_a_file_system_without_locks_warns_and_runs(wav_data_dir, monkeypatch, capsys):
    r"""Where flock is not supported (Lustre without -o flock, some NFS and FUSE mounts) every run was refused
    as if another held the lock."""
    import errno
    import fcntl

    def unsupported(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", unsupported)
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0
    assert f"warning: cannot lock {wav_data_dir / '.fbank.lock'} (No locks available)" in capsys.readouterr().err


def test_a_flac_wav_scp_gives_the_wav_features(tmp_path):
    r"""An ESPnet-style wav.scp of FLAC files (one by path, one through a pipe): the features of the same audio
    as WAV, bit for bit (FLAC is lossless). ``not a readable WAV file`` before."""
    import soundfile

    wav_dir = make_wav_data_dir(tmp_path / "w", pipe_last=False)
    flac_dir = tmp_path / "f" / "data"
    shutil.copytree(wav_dir, flac_dir)
    lines = []
    for i, (utt, path) in enumerate(read_table(wav_dir / "wav.scp").items()):
        flac = tmp_path / "f" / f"{utt}.flac"
        soundfile.write(flac, soundfile.read(path, dtype="int16")[0], 16000, subtype="PCM_16")
        lines.append(f"{utt} {flac}" if i % 2 else f"{utt} cat {flac} |")
    (flac_dir / "wav.scp").write_text("\n".join(lines) + "\n")
    for data_dir in (wav_dir, flac_dir):
        assert main(["fbank", str(data_dir), "--quiet"]) == 0
    flac_feats = dict(ScpReader(flac_dir / "feats.scp"))
    wav_feats = dict(ScpReader(wav_dir / "feats.scp"))
    assert flac_feats.keys() == wav_feats.keys() and len(flac_feats) == 6
    for utt, feats in wav_feats.items():
        np.testing.assert_array_equal(flac_feats[utt], feats)
