r"""``flowaccent fbank --resume``: a stopped run's features taken over, and only where they are still right."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from flowaccent.data import read_table, write_spk2utt
from flowaccent.features import make_fbank as make_fbank_module
from flowaccent.features.fbank import FbankConfig
from flowaccent.features.fbank_resume import FAILED, HEADER, audio_stamp, journal_of
from flowaccent.features.make_fbank import make_fbank

from ..conftest import make_wav_data_dir

#: What a run writes into a data dir: compared to the byte (feats.scp and cmvn.scp name the dir's own path).
OUTPUTS = ("utt2num_frames", "fbank.json", "feats.scp", "cmvn.scp")


def outputs(data: Path) -> dict[str, bytes]:
    files = {name: (data / name).read_bytes().replace(str(data).encode(), b"DIR") for name in OUTPUTS}
    return files | {f"data/{p.name}": p.read_bytes() for p in sorted((data / "data").iterdir())}


@pytest.fixture
def dirs(tmp_path):
    r"""A data dir of 2 x 6 utterances (the last of each speaker a ``cat FILE |``), and the outputs of one
    uninterrupted run on a copy of it (the same name: the ark names carry it)."""
    data = make_wav_data_dir(tmp_path / "a", utts_per_spk=6)
    reference = tmp_path / "ref" / data.name
    shutil.copytree(data, reference)
    make_fbank(reference, quiet=True)
    return data, outputs(reference)


def stop_at(monkeypatch, job: int, error: BaseException = KeyboardInterrupt()) -> None:
    r"""The next run raises ``error`` when it comes to its ``job``-th recording (0-based), as a Ctrl-C there."""
    compute, count = make_fbank_module._compute_one, [0]

    def stopping(*args):
        count[0] += 1
        if count[0] > job:
            raise error
        return compute(*args)

    monkeypatch.setattr(make_fbank_module, "_compute_one", stopping)


def left(data: Path) -> list[str]:
    return sorted(p.name for p in (data / "data").glob(".*.part.*"))


def test_a_stopped_run_is_gone_on_with_to_the_same_bytes(dirs, monkeypatch, capsys):
    data, want = dirs
    stop_at(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        make_fbank(data, quiet=True)
    assert "the features of 5 utterance(s) (5 recording(s)) stay in" in capsys.readouterr().err
    assert not (data / "feats.scp").exists() and len(left(data)) == 2  # the ark and its journal
    monkeypatch.undo()
    summary = make_fbank(data, quiet=True, resume=True)
    err = capsys.readouterr().err
    assert "took over 5 utterance(s) of 5 recording(s) of a stopped run" in err and "the other 7 recording(s)" in err
    assert outputs(data) == want and not left(data)
    frames = read_table(data / "utt2num_frames")
    assert summary.taken_frames == sum(int(frames[f"spkA-{i:03d}"]) for i in range(5))
    assert summary.num_frames == sum(map(int, frames.values())) and summary.num_utts == 12


def test_stopped_twice_and_in_parallel(dirs, monkeypatch, capsys):
    r"""A resumed run stopped again leaves what it took over and what it did after it; ``--nj 2`` writes the same."""
    data, want = dirs
    stop_at(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        make_fbank(data, quiet=True)
    monkeypatch.undo()
    stop_at(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        make_fbank(data, quiet=True, resume=True)
    assert "the features of 7 utterance(s) (7 recording(s)) stay in" in capsys.readouterr().err
    monkeypatch.undo()
    make_fbank(data, quiet=True, resume=True, nj=2)
    assert "took over 7 utterance(s)" in capsys.readouterr().err
    assert outputs(data) == want and not left(data)


def test_without_resume_all_is_computed_and_the_stopped_runs_files_removed_at_the_end(dirs, monkeypatch, capsys):
    data, want = dirs
    stop_at(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        make_fbank(data, quiet=True)
    stopped = left(data)
    monkeypatch.undo()
    summary = make_fbank(data, quiet=True)
    assert "took over" not in capsys.readouterr().err and summary.taken_frames == 0
    assert outputs(data) == want and not left(data) and stopped


def test_other_options_or_lists_take_nothing_over(dirs, monkeypatch, capsys):
    data, _ = dirs
    stop_at(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        make_fbank(data, quiet=True)
    monkeypatch.undo()
    capsys.readouterr()
    summary = make_fbank(data, FbankConfig(num_mel_bins=23), quiet=True, resume=True)
    assert "--resume: no stopped run of these options and audio lists" in capsys.readouterr().err
    assert summary.taken_frames == 0 and not left(data)  # the other options' files removed once it completed
    stop_at(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        make_fbank(data, quiet=True)
    monkeypatch.undo()
    with open(data / "wav.scp", "a") as f:  # one more recording: another wav.scp, another run
        f.write(f"spkB-999 {read_table(data / 'wav.scp')['spkB-000']}\n")
    with open(data / "utt2spk", "a") as f:
        f.write("spkB-999 spkB\n")
    (data / "spk2utt").write_text((data / "spk2utt").read_text().replace("spkB-005", "spkB-005 spkB-999"))
    assert make_fbank(data, quiet=True, resume=True).taken_frames == 0


def test_audio_changed_since_is_read_again(dirs, monkeypatch, tmp_path):
    r"""A file written again after the stop (here the third recording's, at the same size): it and all after it are
    computed again, and the outputs are those of the audio as it is now."""
    data, _ = dirs
    stop_at(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        make_fbank(data, quiet=True)
    monkeypatch.undo()
    path = read_table(data / "wav.scp")["spkA-002"]
    rate, samples = wavfile.read(path)
    wavfile.write(path, rate, samples[::-1].copy())
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 1_000_000_000))
    summary = make_fbank(data, quiet=True, resume=True)
    frames = read_table(data / "utt2num_frames")
    assert summary.taken_frames == sum(int(frames[f"spkA-{i:03d}"]) for i in range(2))
    fresh = tmp_path / "fresh" / data.name
    shutil.copytree(data, fresh, ignore=shutil.ignore_patterns("data", *OUTPUTS))
    make_fbank(fresh, quiet=True)
    assert outputs(data) == outputs(fresh)


@pytest.mark.parametrize("cut", ["inside an utterance", "inside a journal line", "a failed recording", "another key"])
def test_what_a_kill_left_half_written_is_computed_again(dirs, monkeypatch, capsys, cut):
    r"""SIGKILL leaves the ark cut inside an object or the journal inside a line: the recordings before stay; a
    recording the journal says failed, or whose utterance is not the one expected, is computed again, with all after
    it. Both files are cut back to what was kept: a run going on from them, stopped again, is gone on with."""
    data, want = dirs
    stop_at(monkeypatch, 6)
    with pytest.raises(KeyboardInterrupt):
        make_fbank(data, quiet=True)
    monkeypatch.undo()
    ark = next(p for p in (data / "data").glob(".*.part.*") if not p.name.endswith(".jobs"))
    journal = journal_of(ark)
    lines = journal.read_text().splitlines(keepends=True)
    assert lines[0] == HEADER and len(lines) == 7
    if cut == "inside an utterance":
        os.truncate(ark, ark.stat().st_size - 100)
    elif cut == "inside a journal line":
        journal.write_text("".join(lines[:-1]) + lines[-1][:5])
    elif cut == "a failed recording":
        journal.write_text("".join(lines[:4]) + f"{FAILED}\n" + "".join(lines[5:]))
    else:
        ark.write_bytes(ark.read_bytes().replace(b"spkA-004 ", b"spkA-00x "))
    kept = {"a failed recording": 3, "another key": 4}.get(cut, 5)
    stop_at(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        make_fbank(data, quiet=True, resume=True)
    monkeypatch.undo()
    assert f"took over {kept} utterance(s) of {kept} recording(s)" in capsys.readouterr().err
    make_fbank(data, quiet=True, resume=True)
    assert f"took over {kept + 2} utterance(s) of {kept + 2} recording(s)" in capsys.readouterr().err
    assert outputs(data) == want and not left(data)


def test_of_two_stopped_runs_the_one_further_on_is_taken(dirs, monkeypatch, capsys):
    data, want = dirs
    stop_at(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        make_fbank(data, quiet=True)
    monkeypatch.undo()
    ark = next(p for p in (data / "data").glob(".*.part.*") if not p.name.endswith(".jobs"))
    # two runs killed (PIDs above Linux's largest), each with the whole ark: their journals say how far to keep
    dead = [ark.with_name(f"{ark.name.rsplit('.', 1)[0]}.{pid}") for pid in (2**22 + 11, 2**22 + 12)]
    for path, recordings in zip(dead, (2, 5)):
        shutil.copy(ark, path)
        lines = journal_of(ark).read_text().splitlines(keepends=True)
        journal_of(path).write_text("".join(lines[:1 + recordings]))
    ark.unlink()
    journal_of(ark).unlink()
    capsys.readouterr()
    make_fbank(data, quiet=True, resume=True)
    assert f"took over 5 utterance(s) of 5 recording(s) of a stopped run ({dead[1]})" in capsys.readouterr().err
    assert outputs(data) == want and not left(data)  # the other removed once the run completed


def test_segments_are_gone_on_with_by_recording(tmp_path, monkeypatch, capsys):
    def segmented(root: Path) -> Path:
        data = make_wav_data_dir(root, utts_per_spk=4, pipe_last=False)
        wav = read_table(data / "wav.scp")
        (data / "wav.scp").write_text("".join(f"rec{i} {wav[utt]}\n" for i, utt in enumerate(wav)))
        (data / "segments").write_text("".join(f"{utt} rec{i} 0 0.2\n{utt}-b rec{i} 0.2 0.45\n"
                                               for i, utt in enumerate(wav)))
        utt2spk = {u: s for utt, s in read_table(data / "utt2spk").items() for u in (utt, f"{utt}-b")}
        (data / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in sorted(utt2spk.items())))
        write_spk2utt(data / "spk2utt", utt2spk)
        return data

    data = segmented(tmp_path / "a")
    reference = tmp_path / "ref" / data.name
    shutil.copytree(data, reference)
    make_fbank(reference, quiet=True)
    stop_at(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        make_fbank(data, quiet=True)
    monkeypatch.undo()
    capsys.readouterr()
    make_fbank(data, quiet=True, resume=True)
    assert "took over 6 utterance(s) of 3 recording(s)" in capsys.readouterr().err
    assert outputs(data) == outputs(reference)


def test_an_error_keeps_the_recordings_done_but_failed_utterances_keep_nothing(dirs, monkeypatch, capsys):
    data, want = dirs
    stop_at(monkeypatch, 2, OSError(28, "No space left on device"))
    with pytest.raises(OSError):
        make_fbank(data, quiet=True)
    assert "the features of 2 utterance(s)" in capsys.readouterr().err and len(left(data)) == 2
    monkeypatch.undo()
    path = read_table(data / "wav.scp")["spkB-001"]
    good = Path(path).read_bytes()
    Path(path).write_bytes(b"not a wav file")
    with pytest.raises(Exception, match="not a readable WAV"):
        make_fbank(data, quiet=True, resume=True)
    assert "stay in" not in capsys.readouterr().err and not left(data)  # nothing half-written kept
    Path(path).write_bytes(good)
    make_fbank(data, quiet=True, resume=True)
    assert outputs(data) == want


def test_audio_stamp_covers_the_files_an_entry_reads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    audio, archive = tmp_path / "a.sph", tmp_path / "wavs.ark"
    audio.write_bytes(b"1234")
    archive.write_bytes(b"5678")
    entries = [str(audio), f"sph2pipe -f wav '{audio}' |", f"{archive}:42", "a.sph", f"cat {audio} {tmp_path} |"]
    before = [audio_stamp(entry) for entry in entries]
    assert before[0] == before[1] == before[3] == before[4]  # the one file, however named; a folder is no file
    assert audio_stamp("sox gone.wav -t wav - |") == audio_stamp("") != before[0]
    os.utime(audio, ns=(0, 10**18))
    after = [audio_stamp(entry) for entry in entries]
    assert [b != a for b, a in zip(before, after)] == [True, True, False, True, True]
    archive.write_bytes(b"56789")
    assert audio_stamp(entries[2]) != before[2]


def test_the_cli_passes_resume(dirs, monkeypatch, capsys):
    from flowaccent.cli.main import main

    data, want = dirs
    stop_at(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        make_fbank(data, quiet=True)
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["fbank", str(data), "--quiet", "--resume"]) == 0
    err = capsys.readouterr().err
    frames = sum(map(int, read_table(data / "utt2num_frames").values()))
    taken = sum(int(n) for utt, n in read_table(data / "utt2num_frames").items() if utt < "spkA-005")
    assert f"12 utterances, {frames} frames ({taken} taken over) in" in err and outputs(data) == want
    assert np.isfinite(taken) and taken > 0
