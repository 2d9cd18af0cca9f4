r"""``flowaccent fbank --resume``: a stopped run's features taken over, and only where they are still right."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from flowaccent.data import read_table, write_spk2utt
from flowaccent.features import fbank_jobs
from flowaccent.features.fbank import FbankConfig
from flowaccent.features.fbank_journal import FAILED, MAGIC, UNCHECKED, audio_stamp, journal_of
from flowaccent.features.make_fbank import make_fbank

from ..conftest import make_wav_data_dir

#: What a run writes into a data dir: compared to the byte (feats.scp and cmvn.scp name the dir's own path).
OUTPUTS = ("utt2num_frames", "fbank.json", "feats.scp", "cmvn.scp")


def outputs(data: Path) -> dict[str, bytes]:
    r"""The run's outputs, to the byte, but for the digest of the audio files' places and times in ``fbank.json``
    and of the tables and arks it wrote (``inputs``, ``written``: a copy's, or audio written again, differ)."""
    files = {name: re.sub(rb'"(inputs|written)": "[0-9a-f]+"', rb'"\1": "X"',
                          (data / name).read_bytes().replace(str(data).encode(), b"DIR")) for name in OUTPUTS}
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
    compute, count = fbank_jobs.compute_one, [0]

    def stopping(*args):
        count[0] += 1
        if count[0] > job:
            raise error
        return compute(*args)

    monkeypatch.setattr(fbank_jobs, "compute_one", stopping)


def stopped(monkeypatch, job: int, data: Path, *args, **kwargs) -> None:
    r"""A run of ``make_fbank(data, *args, **kwargs)`` stopped by a Ctrl-C at its ``job``-th recording."""
    stop_at(monkeypatch, job)
    with pytest.raises(KeyboardInterrupt):
        make_fbank(data, *args, quiet=True, **kwargs)
    monkeypatch.undo()


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
    stopped(monkeypatch, 3, data)
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


def test_a_full_disk_among_the_tables_leaves_none_of_them_or_the_earlier_runs(dirs, monkeypatch):
    r"""The tables were written one after the other: a full disk at cmvn.scp left feats.scp (and no record), which
    validate passed and score took; over an earlier run, the new feats.scp beside its cmvn.scp."""
    import errno

    from flowaccent.features import make_fbank as module

    data, want = dirs
    table_text = module.table_text

    def full(mapping, where):
        if where.endswith("cmvn.scp"):
            raise OSError(errno.ENOSPC, "No space left on device", where)
        return table_text(mapping, where)

    monkeypatch.setattr(module, "table_text", full)
    with pytest.raises(OSError, match="No space left"):
        make_fbank(data, quiet=True)
    assert not [name for name in OUTPUTS if (data / name).exists()]  # nothing that looks complete
    assert not list(data.glob(".*.tmp.*"))
    monkeypatch.undo()
    make_fbank(data, FbankConfig(num_mel_bins=23), quiet=True)  # an earlier run, complete
    before = {name: (data / name).read_bytes() for name in OUTPUTS}
    monkeypatch.setattr(module, "table_text", full)
    with pytest.raises(OSError, match="No space left"):
        make_fbank(data, quiet=True)
    assert {name: (data / name).read_bytes() for name in OUTPUTS} == before  # its tables and record, as they were
    monkeypatch.undo()
    make_fbank(data, quiet=True)
    assert outputs(data) == want
    # (the review) the same options over speakers merged since: the arks keep their names (the tag does not cover
    # utt2spk) and are replaced before the tables, so the earlier tables would read the new CMVN ark at the old
    # offsets: removed with the record; and a stop among the renames left some tables new, some old
    merged = dict.fromkeys(read_table(data / "utt2spk"), "s0")
    (data / "utt2spk").write_text("".join(f"{utt} s0\n" for utt in sorted(merged)))
    write_spk2utt(data / "spk2utt", merged)
    monkeypatch.setattr(module, "table_text", full)
    with pytest.raises(OSError, match="No space left"):
        make_fbank(data, quiet=True)
    assert not [name for name in OUTPUTS if (data / name).exists()]
    monkeypatch.undo()
    replace, renamed = os.replace, []

    def stopping(source, target):
        if Path(target).name in ("feats.scp", "cmvn.scp", "utt2num_frames"):
            renamed.append(Path(target).name)
            if len(renamed) == 2:
                raise KeyboardInterrupt
        return replace(source, target)

    monkeypatch.setattr(os, "replace", stopping)
    with pytest.raises(KeyboardInterrupt):
        make_fbank(data, quiet=True)
    monkeypatch.undo()
    assert renamed == ["utt2num_frames", "cmvn.scp"]
    assert not [name for name in OUTPUTS if (data / name).exists()] and not list(data.glob(".*.tmp.*"))


def test_other_options_take_nothing_over(dirs, monkeypatch, capsys):
    data, _ = dirs
    stopped(monkeypatch, 4, data)
    capsys.readouterr()
    summary = make_fbank(data, FbankConfig(num_mel_bins=23), quiet=True, resume=True)
    assert "fbank: --resume" not in capsys.readouterr().err  # nothing to say: a recipe passes it on every run
    assert summary.taken_frames == 0 and not left(data)  # the other options' files removed once it completed
    stopped(monkeypatch, 4, data, channel=0)
    assert make_fbank(data, quiet=True, resume=True).taken_frames == 0 and not left(data)


def edit_lists(data: Path, drop: str = "", add: str = "") -> None:
    r"""Leaves the utterance ``drop`` out of ``data`` (as ``utils/fix_data_dir.sh`` would after it failed) and adds
    ``add`` (spkB's, reading spkB-000's file)."""
    tables = {name: read_table(data / name) for name in ("wav.scp", "utt2spk")}
    if add:
        tables["wav.scp"][add], tables["utt2spk"][add] = tables["wav.scp"]["spkB-000"], "spkB"
    for table in tables.values():
        table.pop(drop, None)
    for name, table in tables.items():
        (data / name).write_text("".join(f"{utt} {value}\n" for utt, value in sorted(table.items())))
    write_spk2utt(data / "spk2utt", tables["utt2spk"])


def fresh_outputs(data: Path, root: Path) -> dict[str, bytes]:
    r"""The outputs of one uninterrupted run on a copy of ``data``'s lists (the same name)."""
    reference = root / data.name
    shutil.copytree(data, reference, ignore=shutil.ignore_patterns("data", *OUTPUTS))
    make_fbank(reference, quiet=True)
    return outputs(reference)


def test_failed_recordings_left_out_keep_all_the_others(dirs, monkeypatch, capsys, tmp_path):
    r"""The usual mend of failed utterances is to leave them out of the data dir: that changed ``wav.scp``, and a
    ``--resume`` computed everything again (at WSJ's size, minutes). The failed run computed all the others: they
    are all taken over, those after a left-out recording moved back in the ark."""
    data, _ = dirs
    for utt in ("spkA-004", "spkB-002"):
        Path(read_table(data / "wav.scp")[utt]).write_bytes(b"not a wav file")
    with pytest.raises(Exception, match="not a readable WAV") as error:
        make_fbank(data, quiet=True)
    assert "; the features of 10 utterance(s) (10 recording(s)) stay in" in str(error.value)
    assert "'flowaccent fbank --resume' with the same options, once the failed utterance(s) are mended or left out " \
        f"of the data dir ('flowaccent fixdir --exclude {data}/data/fbank_failed.txt {data}'), goes on from them" \
        in str(error.value)
    edit_lists(data, drop="spkA-004")
    with pytest.raises(Exception, match="not a readable WAV"):  # one left out, one still there
        make_fbank(data, quiet=True, resume=True)
    assert "took over 7 utterance(s) of 7 recording(s)" in (err := capsys.readouterr().err)
    assert "recording 8 ('spkB-002'): an utterance of it failed, and all after it" in err
    edit_lists(data, drop="spkB-002")
    summary = make_fbank(data, quiet=True, resume=True)
    err = capsys.readouterr().err
    assert "took over 10 utterance(s) of 10 recording(s)" in err and err.endswith("the other 0 recording(s)\n")
    assert summary.taken_frames == summary.num_frames and summary.num_utts == 10
    assert outputs(data) == fresh_outputs(data, tmp_path / "ref2") and not left(data)


def test_changed_lists_keep_the_recordings_still_listed_in_order(dirs, monkeypatch, capsys, tmp_path):
    r"""Recordings added after those done, left out among them, or a segment changed: the recordings listed now are
    kept from the first while the stopped run computed them, in the same order."""
    data, _ = dirs
    stopped(monkeypatch, 5, data)
    edit_lists(data, add="spkB-999")  # last in order
    capsys.readouterr()
    make_fbank(data, quiet=True, resume=True)
    assert "took over 5 utterance(s) of 5 recording(s)" in capsys.readouterr().err
    assert outputs(data) == fresh_outputs(data, tmp_path / "ref2") and not left(data)
    stopped(monkeypatch, 5, data)
    edit_lists(data, drop="spkA-001")  # among those done: those after it move back
    capsys.readouterr()
    make_fbank(data, quiet=True, resume=True)
    err = capsys.readouterr().err
    assert "took over 4 utterance(s) of 4 recording(s)" in err and err.endswith("computing the other 8 recording(s)\n")
    assert outputs(data) == fresh_outputs(data, tmp_path / "ref3") and not left(data)
    wav = read_table(data / "wav.scp")  # segments: a segment of each recording
    (data / "segments").write_text("".join(f"{utt} {utt} 0 0.25\n" for utt in wav))
    stopped(monkeypatch, 4, data)
    (data / "segments").write_text("".join(f"{utt} {utt} 0 {0.3 if i == 2 else 0.25}\n" for i, utt in enumerate(wav)))
    make_fbank(data, quiet=True, resume=True)
    assert "took over 2 utterance(s) of 2 recording(s)" in (err := capsys.readouterr().err)
    assert "recording 3 ('spkA-003'): its segments changed since, and all after it" in err
    assert outputs(data) == fresh_outputs(data, tmp_path / "ref4") and not left(data)


def test_a_failed_segment_left_out_keeps_the_others_of_its_recording(tmp_path, capsys):
    r"""A recording whose one segment failed (here: past the audio's end) wrote its others: the segment left out of
    ``segments``, they are kept with all the other recordings, those after it moved back in the ark."""
    data = segmented(tmp_path / "a")
    segments = (data / "segments").read_text()
    (data / "segments").write_text(segments.replace("spkA-001 rec1 0 0.2", "spkA-001 rec1 30 30.2"))
    with pytest.raises(Exception, match="spkA-001"):
        make_fbank(data, quiet=True)
    (data / "segments").write_text(segments.replace("spkA-001 rec1 0 0.2\n", ""))
    utt2spk = read_table(data / "utt2spk")
    del utt2spk["spkA-001"]
    (data / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in sorted(utt2spk.items())))
    write_spk2utt(data / "spk2utt", utt2spk)
    capsys.readouterr()
    summary = make_fbank(data, quiet=True, resume=True)
    err = capsys.readouterr().err
    assert "took over 15 utterance(s) of 8 recording(s)" in err and err.endswith("the other 0 recording(s)\n")
    assert summary.taken_frames == summary.num_frames
    assert outputs(data) == fresh_outputs(data, tmp_path / "ref")


def test_a_stop_while_kept_recordings_move_back_keeps_those_before(dirs, monkeypatch, capsys, tmp_path):
    r"""The journal is cut to the recordings before the first left out, then those after are moved back: a stop
    while they move (a kill) leaves a journal of those that did not move, and the next run goes on from them."""
    from flowaccent.features import fbank_resume

    data, _ = dirs
    stopped(monkeypatch, 8, data)
    edit_lists(data, drop="spkA-003")
    move = fbank_resume._compact

    def killed(fd, ranges, to):
        move(fd, ranges[:2], to)  # two moved, then killed
        fd.seek(to + 10)
        fd.write(b"half-moved")
        fd.flush()
        raise KeyboardInterrupt

    monkeypatch.setattr(fbank_resume, "_compact", killed)
    capsys.readouterr()
    with pytest.raises(KeyboardInterrupt):
        make_fbank(data, quiet=True, resume=True)
    monkeypatch.undo()
    assert len(stopped_files(data)[1].read_bytes().splitlines()) == 1 + 3  # the header and the first three
    make_fbank(data, quiet=True, resume=True)
    assert "took over 3 utterance(s) of 3 recording(s)" in capsys.readouterr().err.split("\n")[-2]
    assert outputs(data) == fresh_outputs(data, tmp_path / "ref2") and not left(data)


def test_another_dirs_stopped_run_of_other_lists_is_not_taken(tmp_path, monkeypatch, capsys):
    r"""``x/train`` and ``y/train`` sharing ``data/``, y's lists x's but its last recording: y does not take x's
    stopped run over (it would have cut it to y's and written on into it: x's gone)."""
    storage = tmp_path / "storage"
    storage.mkdir()
    x = make_wav_data_dir(tmp_path / "x", utts_per_spk=6).rename(tmp_path / "x" / "train")
    y = tmp_path / "y" / "train"
    shutil.copytree(x, y)
    edit_lists(y, drop="spkB-005")
    for data in (x, y):
        (data / "data").symlink_to(storage)
    stopped(monkeypatch, 5, x)
    stopped(monkeypatch, 3, y)
    capsys.readouterr()
    make_fbank(y, quiet=True, resume=True)
    assert "took over 3 utterance(s)" in capsys.readouterr().err
    make_fbank(x, quiet=True, resume=True)
    assert "took over 5 utterance(s)" in capsys.readouterr().err and not list(storage.glob(".*.part.*"))


def test_audio_changed_since_is_read_again(dirs, monkeypatch, tmp_path):
    r"""A file written again after the stop (here the third recording's, at the same size): it and all after it are
    computed again, and the outputs are those of the audio as it is now."""
    data, _ = dirs
    stopped(monkeypatch, 5, data)
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
    stopped(monkeypatch, 6, data)
    ark = next(p for p in (data / "data").glob(".*.part.*") if not p.name.endswith(".jobs"))
    journal = journal_of(ark)
    lines = journal.read_bytes().splitlines(keepends=True)
    assert lines[0].startswith(MAGIC) and len(lines) == 7
    if cut == "inside an utterance":
        os.truncate(ark, ark.stat().st_size - 100)
    elif cut == "inside a journal line":
        journal.write_bytes(b"".join(lines[:-1]) + lines[-1][:5])
    elif cut == "a failed recording":
        failed = b" ".join([FAILED, *lines[4].split()[:3], b"0"]) + b"\n"  # failed RATE STAMP REC 0
        journal.write_bytes(b"".join(lines[:4]) + failed + b"".join(lines[5:]))
    else:
        ark.write_bytes(ark.read_bytes().replace(b"spkA-004 ", b"spkA-00x "))
    kept = {"a failed recording": 3, "another key": 4}.get(cut, 5)
    why = {"inside an utterance": "its features are cut short in the ark", "a failed recording": "an utterance of it "
           "failed", "another key": "the ark holds 'spkA-00x' where 'spkA-004' was expected"}.get(cut)
    stopped(monkeypatch, 2, data, resume=True)
    err = capsys.readouterr().err
    assert f"took over {kept} utterance(s) of {kept} recording(s)" in err
    assert (f"recording {kept + 1} ('spkA-00{kept}'): {why}" in err) if why else "and all after it" not in err, err
    make_fbank(data, quiet=True, resume=True)
    assert f"took over {kept + 2} utterance(s) of {kept + 2} recording(s)" in capsys.readouterr().err
    assert outputs(data) == want and not left(data)


def test_of_two_stopped_runs_the_one_further_on_is_taken(dirs, monkeypatch, capsys):
    data, want = dirs
    stopped(monkeypatch, 5, data)
    ark = next(p for p in (data / "data").glob(".*.part.*") if not p.name.endswith(".jobs"))
    # two runs killed (PIDs above Linux's largest), each with the whole ark: their journals say how far to keep
    dead = [ark.with_name(f"{ark.name.rsplit('.', 1)[0]}.{pid}") for pid in (2**22 + 11, 2**22 + 12)]
    for path, recordings in zip(dead, (2, 5)):
        shutil.copy(ark, path)
        lines = journal_of(ark).read_bytes().splitlines(keepends=True)
        journal_of(path).write_bytes(b"".join(lines[:1 + recordings]))
    ark.unlink()
    journal_of(ark).unlink()
    capsys.readouterr()
    make_fbank(data, quiet=True, resume=True)
    assert f"took over 5 utterance(s) of 5 recording(s) of a stopped run ({dead[1]})" in capsys.readouterr().err
    assert outputs(data) == want and not left(data)  # the other removed once the run completed


def segmented(root: Path) -> Path:
    r"""A data dir of 8 recordings, each cut in two utterances (``UTT`` and ``UTT-b``) by ``segments``."""
    data = make_wav_data_dir(root, utts_per_spk=4, pipe_last=False)
    wav = read_table(data / "wav.scp")
    (data / "wav.scp").write_text("".join(f"rec{i} {wav[utt]}\n" for i, utt in enumerate(wav)))
    (data / "segments").write_text("".join(f"{utt} rec{i} 0 0.2\n{utt}-b rec{i} 0.2 0.45\n"
                                           for i, utt in enumerate(wav)))
    utt2spk = {u: s for utt, s in read_table(data / "utt2spk").items() for u in (utt, f"{utt}-b")}
    (data / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in sorted(utt2spk.items())))
    write_spk2utt(data / "spk2utt", utt2spk)
    return data


def test_segments_are_gone_on_with_by_recording(tmp_path, monkeypatch, capsys):
    data = segmented(tmp_path / "a")
    reference = tmp_path / "ref" / data.name
    shutil.copytree(data, reference)
    make_fbank(reference, quiet=True)
    stopped(monkeypatch, 3, data)
    capsys.readouterr()
    make_fbank(data, quiet=True, resume=True)
    assert "took over 6 utterance(s) of 3 recording(s)" in capsys.readouterr().err
    assert outputs(data) == outputs(reference)


def test_an_error_or_failed_utterances_keep_the_recordings_before_them(dirs, monkeypatch, capsys):
    r"""A full disk keeps what was done; so do failed utterances (the other recordings), said in the error's one
    line: with a file restored in place (a download made again), a rerun keeps those before it and computes from
    there (its features go in their place in the ark)."""
    data, want = dirs
    stop_at(monkeypatch, 2, OSError(28, "No space left on device"))
    with pytest.raises(OSError):
        make_fbank(data, quiet=True)
    assert "the features of 2 utterance(s)" in capsys.readouterr().err and len(left(data)) == 2
    monkeypatch.undo()
    path = Path(read_table(data / "wav.scp")["spkB-001"])
    good = path.read_bytes()
    path.write_bytes(b"not a wav file")
    with pytest.raises(Exception, match="not a readable WAV") as error:
        make_fbank(data, quiet=True, resume=True)
    assert "; the features of 11 utterance(s) (11 recording(s)) stay in" in str(error.value)
    assert "stay in" not in capsys.readouterr().err.replace("took over", "")  # said once, in the error
    path.write_bytes(good)
    make_fbank(data, quiet=True, resume=True)
    assert "took over 7 utterance(s) of 7 recording(s)" in capsys.readouterr().err
    assert outputs(data) == want and not left(data)


def test_a_renamed_data_dir_goes_on_and_leaves_nothing(dirs, monkeypatch, capsys, tmp_path):
    r"""The ark names carry the dir's name: the stopped run's files of the old name are taken over (the same TAG:
    the same features), and with another TAG removed once a run completes (they stayed for ever)."""
    data, want = dirs
    stopped(monkeypatch, 5, data)
    renamed = data.parent / "train"
    data.rename(renamed)
    stopped(monkeypatch, 2, renamed, resume=True)
    (journal,) = (renamed / "data").glob(".*.part.*.jobs")  # names the dir as it is now: its runs remove it
    assert json.loads(journal.read_bytes().split(b"\n")[0][len(MAGIC):])["data_dir"] == str(renamed)
    make_fbank(renamed, quiet=True, resume=True)
    assert "took over 7 utterance(s)" in capsys.readouterr().err and not left(renamed)
    reference = tmp_path / "ref2" / "train"
    shutil.copytree(renamed, reference, ignore=shutil.ignore_patterns("data", *OUTPUTS))
    make_fbank(reference, quiet=True)
    assert outputs(renamed) == outputs(reference)
    stopped(monkeypatch, 5, renamed, FbankConfig(num_mel_bins=30))
    renamed.rename(data)
    make_fbank(data, quiet=True)
    assert not left(data)
    assert {k: v for k, v in outputs(data).items() if "_train." not in k} == want  # train's arks: another name's


def test_a_journal_held_by_a_running_process_is_not_taken_and_a_pid_in_use_does_not_matter(dirs, monkeypatch,
                                                                                            capsys):
    r"""What tells a stopped run from one running is the lock on its journal, not its process number (after a
    reboot, the number of a run killed with the machine belongs to another process)."""
    import subprocess
    import sys

    data, want = dirs
    stopped(monkeypatch, 5, data)
    (ark,) = [p for p in (data / "data").glob(".*.part.*") if not p.name.endswith(".jobs")]
    journal = journal_of(ark)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
                               str(journal)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        in_use = ark.with_name(f"{ark.name.rsplit('.', 1)[0]}.{holder.pid}")  # its number too
        ark.rename(in_use)
        journal.rename(journal_of(in_use))
        capsys.readouterr()
        make_fbank(data, FbankConfig(num_mel_bins=30), quiet=True)  # completes: removes no running run's files
        assert left(data) == sorted([in_use.name, journal_of(in_use).name])
        make_fbank(data, quiet=True, resume=True)
        assert "took over" not in capsys.readouterr().err and left(data)
    finally:
        holder.kill()
        holder.wait()
    ark = in_use  # now stopped, under the number of a running process (this one's parent): that does not matter
    in_use = ark.with_name(f"{ark.name.rsplit('.', 1)[0]}.{os.getppid()}")
    ark.rename(in_use)
    journal_of(ark).rename(journal_of(in_use))
    capsys.readouterr()
    (data / "fbank.json").unlink()  # the run of the features there: else they are kept, complete
    make_fbank(data, quiet=True, resume=True)
    assert "took over 5 utterance(s)" in capsys.readouterr().err
    assert outputs(data) == want and not left(data)


def test_data_dirs_sharing_a_storage_folder_keep_their_stopped_runs(tmp_path, monkeypatch, capsys):
    r"""``x/train`` and ``y/train`` with ``data/`` linked to one folder (Kaldi's shared ``mfcc/``): y completing
    removed x's stopped run (hours of features)."""
    storage = tmp_path / "storage"
    storage.mkdir()
    dirs = []
    for root, utts in (("x", 6), ("y", 4)):
        data = make_wav_data_dir(tmp_path / root, utts_per_spk=utts)
        data = data.rename(data.parent / "train")
        (data / "data").symlink_to(storage)
        dirs.append(data)
    x, y = dirs
    stopped(monkeypatch, 5, x)
    make_fbank(y, quiet=True)
    capsys.readouterr()
    make_fbank(x, quiet=True, resume=True)
    assert "took over 5 utterance(s)" in capsys.readouterr().err and not list(storage.glob(".*.part.*"))


def test_dither_is_taken_over_too(dirs, monkeypatch, capsys):
    r"""Dither's noise depends on how the recordings were split among runs and jobs: a resumed run is not the
    bytes of one run then (nor is an ``--nj 2`` run), but its features are what fbank computes, recording by
    recording."""
    data, _ = dirs
    config = FbankConfig(dither=1.0)
    stopped(monkeypatch, 5, data, config)
    make_fbank(data, config, quiet=True, resume=True)
    assert "took over 5 utterance(s)" in capsys.readouterr().err and not left(data)
    assert len(read_table(data / "utt2num_frames")) == 12


def test_another_version_or_an_entry_naming_no_file_is_not_taken_over(dirs, monkeypatch, capsys):
    data, want = dirs
    stopped(monkeypatch, 5, data)
    (ark,) = [p for p in (data / "data").glob(".*.part.*") if not p.name.endswith(".jobs")]
    journal = journal_of(ark)
    journal.write_bytes(journal.read_bytes().replace(b'"version": "', b'"version": "0.0.1-', 1))
    capsys.readouterr()
    make_fbank(data, quiet=True, resume=True)
    err = capsys.readouterr().err
    assert "took over 0 utterance(s)" in err and "written by another version of flowaccent (0.0.1-" in err
    assert outputs(data) == want
    stopped(monkeypatch, 5, data)
    (ark,) = [p for p in (data / "data").glob(".*.part.*") if not p.name.endswith(".jobs")]
    journal_of(ark).write_bytes(b"X" + journal_of(ark).read_bytes()[1:])
    (data / "fbank.json").unlink()  # here and below: else the complete features there are kept
    make_fbank(data, quiet=True, resume=True)
    assert "took over 0 utterance(s)" in (err := capsys.readouterr().err) and "journal's header is damaged" in err
    stopped(monkeypatch, 5, data)
    journal = stopped_files(data)[1]
    journal.write_bytes(journal.read_bytes().replace(MAGIC, b"flowaccent fbank journal 2 ", 1))
    (data / "fbank.json").unlink()
    make_fbank(data, quiet=True, resume=True)
    assert "took over 0 utterance(s)" in (err := capsys.readouterr().err) and "is of an older flowaccent" in err
    lines = (data / "wav.scp").read_text().splitlines()
    utt, path = lines[1].split(" ", 1)
    lines[1] = f"{utt} cd {Path(path).parent} && cat {Path(path).name} |"  # names the file relative to the cd
    (data / "wav.scp").write_text("\n".join(lines) + "\n")
    stopped(monkeypatch, 5, data)
    make_fbank(data, quiet=True, resume=True)  # another wav.scp: the features there are not kept
    assert ("took over 1 utterance(s) of 1 recording(s)" in (err := capsys.readouterr().err) and
            "recording 2 ('spkA-001'): its wav.scp entry names no file whose size and time can be checked" in err)


def test_audio_stamp_covers_the_files_an_entry_reads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    audio, archive = tmp_path / "a.sph", tmp_path / "wavs.ark"
    audio.write_bytes(b"1234")
    archive.write_bytes(b"5678")
    spaced = tmp_path / "my audio" / "b.wav"  # a path with a space: no word of it was a file
    spaced.parent.mkdir()
    spaced.write_bytes(b"1234")
    entries = [str(audio), f"sph2pipe -f wav '{audio}' |", f"{archive}:42", "a.sph", f"cat {audio} {tmp_path} |",
               str(spaced), f"cat '{spaced}' |", f"cat \"{spaced}\" | sox -t wav - -t wav - |"]
    before = [audio_stamp(entry) for entry in entries]
    assert before[0] == before[1] == before[3] == before[4]  # the one file, however named; a folder is no file
    assert before[5] == before[6] == before[7] != before[0]
    assert audio_stamp("sox gone.wav -t wav - |") == audio_stamp("") == audio_stamp("cat 'unclosed |") == UNCHECKED
    os.utime(audio, ns=(0, 10**18))
    after = [audio_stamp(entry) for entry in entries]
    assert [b != a for b, a in zip(before, after)] == [True, True, False, True, True, False, False, False]
    archive.write_bytes(b"56789")
    spaced.write_bytes(b"12345")
    assert audio_stamp(entries[2]) != before[2] and all(audio_stamp(e) != before[5] for e in entries[5:])


def test_features_complete_of_these_options_and_audio_are_kept(dirs, monkeypatch, capsys):
    r"""A recipe passes --resume on every run: its rerun after a stop computed the sets that had finished again
    (hours of WSJ's fbank), as --resume took over only a stopped run's features."""
    data, want = dirs
    make_fbank(data, quiet=True)
    stopped(monkeypatch, 5, data)  # left by a run stopped after one that completed: removed, as a run removes it
    assert left(data)
    capsys.readouterr()
    monkeypatch.setattr(fbank_jobs, "compute_one", None)  # computing anything fails
    summary = make_fbank(data, quiet=True, resume=True)
    assert summary.kept and summary.num_utts == 12 and summary.num_frames == summary.taken_frames > 0
    assert capsys.readouterr().err == (f"fbank: {data}: the features are complete already, of these options and "
                                       "this audio (fbank.json); kept (leave --resume out to compute them again)\n")
    assert outputs(data) == want and not left(data)
    monkeypatch.undo()
    frames = (data / "utt2num_frames").read_text()
    (data / "utt2num_frames").write_text(re.sub(r" \d+\n", " 7\n", frames))  # tables edited by hand since
    assert not make_fbank(data, quiet=True, resume=True).kept and (data / "utt2num_frames").read_text() == frames
    (arks := sorted((data / "data").glob("raw_fbank_*.ark")))[0].write_bytes(arks[0].read_bytes()[:1000])  # cut
    assert not make_fbank(data, quiet=True, resume=True).kept and outputs(data) == want
    stats = (data / "cmvn.scp").read_text()
    from flowaccent.features.make_cmvn import make_cmvn  # stats of another speaker split since ('flowaccent cmvn')

    utt2spk = (data / "utt2spk").read_text()
    (data / "utt2spk").write_text(utt2spk.replace("spkB-005 spkB", "spkB-005 spkC"))
    write_spk2utt(data / "spk2utt", read_table(data / "utt2spk"))
    make_cmvn(data)
    (data / "utt2spk").write_text(utt2spk)  # the split back, the stats not
    write_spk2utt(data / "spk2utt", read_table(data / "utt2spk"))
    assert not make_fbank(data, quiet=True, resume=True).kept and (data / "cmvn.scp").read_text() == stats
    wav = Path(read_table(data / "wav.scp")["spkA-002"])
    os.utime(wav, ns=(wav.stat().st_atime_ns, wav.stat().st_mtime_ns + 10**9))  # written again since
    assert not make_fbank(data, quiet=True, resume=True).kept
    assert make_fbank(data, quiet=True, resume=True).kept
    utt2spk = (data / "utt2spk").read_text()
    (data / "utt2spk").write_text(utt2spk.replace("spkB-005 spkB", "spkB-005 spkC"))  # other speakers' stats
    write_spk2utt(data / "spk2utt", read_table(data / "utt2spk"))
    assert not make_fbank(data, quiet=True, resume=True).kept
    assert not make_fbank(data, FbankConfig(num_mel_bins=30), quiet=True, resume=True).kept  # other options
    (data / "cmvn.scp").unlink()  # a table missing
    assert not make_fbank(data, FbankConfig(num_mel_bins=30), quiet=True, resume=True).kept
    lines = (data / "wav.scp").read_text().splitlines()
    utt, path = lines[1].split(" ", 1)
    lines[1] = f"{utt} cd {Path(path).parent} && cat {Path(path).name} |"  # names no file: never kept
    (data / "wav.scp").write_text("\n".join(lines) + "\n")
    make_fbank(data, quiet=True)
    assert "inputs" not in json.loads((data / "fbank.json").read_text())
    assert not make_fbank(data, quiet=True, resume=True).kept


def test_the_cli_passes_resume(dirs, monkeypatch, capsys):
    from flowaccent.cli.main import main

    data, want = dirs
    stopped(monkeypatch, 5, data)
    capsys.readouterr()
    assert main(["fbank", str(data), "--quiet", "--resume"]) == 0
    err = capsys.readouterr().err
    frames = sum(map(int, read_table(data / "utt2num_frames").values()))
    taken = sum(int(n) for utt, n in read_table(data / "utt2num_frames").items() if utt < "spkA-005")
    assert f"12 utterances, {frames} frames ({taken} taken over) in" in err and outputs(data) == want
    assert np.isfinite(taken) and taken > 0 and " frames/s)" in err
    Path(read_table(data / "wav.scp")["spkB-005"].split()[1]).write_bytes(b"not a wav file")  # a `cat FILE |`
    assert main(["fbank", str(data), "--quiet"]) == 1
    edit_lists(data, drop="spkB-005")
    capsys.readouterr()
    assert main(["fbank", str(data), "--quiet", "--resume"]) == 0
    err = capsys.readouterr().err  # all taken over: no rate ("0 frames/s")
    left_out = int(want["utt2num_frames"].split()[-1])  # spkB-005's, the last
    assert f"11 utterances, {frames - left_out} frames ({frames - left_out} taken over) in" in err
    assert "frames/s" not in err


def stopped_files(data: Path) -> tuple[Path, Path]:
    (ark,) = [p for p in (data / "data").glob(".*.part.*") if not p.name.endswith(".jobs")]
    return ark, journal_of(ark)


def set_header(journal: Path, **fields) -> None:
    lines = journal.read_bytes().split(b"\n", 1)
    header = json.loads(lines[0][len(MAGIC):]) | fields
    journal.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + lines[1])


def test_without_file_locks_the_process_the_journal_names_decides(dirs, monkeypatch, capsys):
    r"""On a file system without ``flock`` (Lustre without ``-o flock``): a journal whose header names a running
    process is not taken over (after a take-over in place, the process in the file's name is the stopped one,
    and a second run took the running one's files over); one whose process is gone is."""
    import errno

    data, want = dirs
    stopped(monkeypatch, 5, data)

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)  # the module the locks call
    ark, journal = stopped_files(data)
    set_header(journal, pid=os.getppid())  # running
    capsys.readouterr()
    make_fbank(data, FbankConfig(num_mel_bins=30), quiet=True)
    assert stopped_files(data) == (ark, journal)  # a completed run does not remove it either
    set_header(journal, pid=2**22 + 7)  # gone
    make_fbank(data, quiet=True, resume=True)
    assert "took over 5 utterance(s)" in capsys.readouterr().err
    assert outputs(data) == want and not left(data)
    assert fcntl.flock is no_locks
    stopped(monkeypatch, 5, data)
    set_header(stopped_files(data)[1], pid=2**40)  # no process's number (os.kill raised OverflowError)
    monkeypatch.setattr(fcntl, "flock", no_locks)  # the module the locks call
    (data / "fbank.json").unlink()  # else the complete features there are kept
    make_fbank(data, quiet=True, resume=True)
    assert "took over 0 utterance(s)" in (err := capsys.readouterr().err) and "header is damaged" in err


def test_a_stop_while_the_journal_is_replaced_or_checked_loses_nothing(dirs, monkeypatch, capsys):
    r"""The journal is written anew and renamed over the old one (cut to nothing and written again, a kill in
    between lost all it held); a Ctrl-C while checking leaves the files as they were and unlocked (the Python API
    goes on in the same process: the lock stayed held and the next run found no stopped run)."""
    from flowaccent.features import fbank_resume

    data, want = dirs
    stopped(monkeypatch, 5, data)
    before = {p.name: p.read_bytes() for p in (data / "data").iterdir()}
    write = os.write
    for where in ("write", "_recording"):
        def stop(*args, where=where):
            if where == "write" and not bytes(args[1]).startswith(MAGIC):  # the new journal: stopped writing it
                return write(*args)
            raise KeyboardInterrupt

        monkeypatch.setattr(os if where == "write" else fbank_resume, where, stop)
        with pytest.raises(KeyboardInterrupt):
            make_fbank(data, quiet=True, resume=True)
        monkeypatch.undo()
        assert {p.name: p.read_bytes() for p in (data / "data").iterdir()} == before, where
    capsys.readouterr()
    make_fbank(data, quiet=True, resume=True)
    assert "took over 5 utterance(s)" in capsys.readouterr().err
    assert outputs(data) == want and not left(data)


def test_a_copy_of_the_data_dir_leaves_nothing_when_it_completes(dirs, monkeypatch, tmp_path):
    r"""A stopped run's files copied with the dir (``cp -r``) name the original in their journal; the copy's
    ``data/`` is not the original's, so nobody else would ever take them over: they go."""
    data, _ = dirs
    stopped(monkeypatch, 5, data)
    copy = tmp_path / "copy" / data.name
    shutil.copytree(data, copy)
    make_fbank(copy, quiet=True)
    assert not left(copy) and len(left(data)) == 2  # the original's stay with it


def test_a_journal_removed_before_its_lock_was_had_is_not_taken(dirs, monkeypatch, capsys):
    r"""Another dir's completed run removed the stopped run's files between this one opening the journal and
    locking it: it took the unlinked journal over and crashed on the ark."""
    from flowaccent.features import fbank_journal, fbank_resume

    data, _ = dirs
    stopped(monkeypatch, 5, data)
    ark, journal = stopped_files(data)
    dead = ark.with_name(f"{ark.name.rsplit('.', 1)[0]}.{2**22 + 9}")  # not this process's: its new files are
    ark.rename(dead)
    journal.rename(journal_of(dead))
    ark, journal = dead, journal_of(dead)
    lock = fbank_journal.lock

    def removed_first(fd):
        ark.unlink(missing_ok=True)
        journal.unlink(missing_ok=True)
        return lock(fd)

    monkeypatch.setattr(fbank_journal, "lock", removed_first)  # and where fbank_resume calls it
    monkeypatch.setattr(fbank_resume, "lock", removed_first)
    capsys.readouterr()
    assert make_fbank(data, quiet=True, resume=True).taken_frames == 0
    assert "took over" not in capsys.readouterr().err


def test_files_of_this_number_held_elsewhere_are_left_alone(dirs):
    r"""Two containers sharing a folder: the same process number, another process. The new run truncated the
    other's files; it now writes under its number with digits after it (and the other's stay)."""
    import subprocess
    import sys

    data, want = dirs
    make_fbank(data, quiet=True)
    (final,) = (data / "data").glob("raw_fbank_*.ark")
    journal = journal_of(final.with_name(f".{final.name}.part.{os.getpid()}"))
    journal.write_bytes(b"another's")
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
                               str(journal)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        make_fbank(data, quiet=True)
        assert journal.read_bytes() == b"another's"
        assert {k: v for k, v in outputs(data).items() if ".part." not in k} == want
    finally:
        holder.kill()
        holder.wait()


def test_the_stopped_run_that_keeps_the_most_is_taken_and_a_journal_alone_is_removed(dirs, monkeypatch, capsys):
    r"""The longest journal was taken: one that failed at its second recording (a run through all of them, 1 kept)
    over one stopped after 5. A journal whose ark is gone (a SIGKILL between removing the two) stayed for ever."""
    data, want = dirs
    stopped(monkeypatch, 6, data)
    ark, journal = stopped_files(data)
    lines = journal.read_bytes().splitlines(keepends=True)
    dead = [ark.with_name(f"{ark.name.rsplit('.', 1)[0]}.{pid}") for pid in (2**22 + 21, 2**22 + 22, 2**22 + 23)]
    journals = (lines[:2] + [FAILED + b"\n"] + lines[3:] * 3, lines[:6], lines)
    for path, content in zip(dead, journals):
        shutil.copy(ark, path)
        journal_of(path).write_bytes(b"".join(content))
    dead[2].unlink()  # a journal alone
    ark.unlink()
    journal.unlink()
    capsys.readouterr()
    make_fbank(data, quiet=True, resume=True)
    assert f"took over 5 utterance(s) of 5 recording(s) of a stopped run ({dead[1]})" in capsys.readouterr().err
    assert outputs(data) == want and not left(data)


def test_without_file_locks_a_take_over_is_claimed_before_its_check(dirs, monkeypatch, capsys):
    r"""Checking a large stopped run takes minutes; its journal named the stopped process all that time, and a
    second run (another dir sharing the folder) took the same files over: both wrote one ark."""
    import errno

    from flowaccent.features import fbank_resume

    data, want = dirs
    stopped(monkeypatch, 5, data)
    set_header(stopped_files(data)[1], pid=2**22 + 31)

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)  # the module the locks call
    recording, claimed = fbank_resume._recording, []

    def checking(*args):
        claimed.append(json.loads(stopped_files(data)[1].read_bytes().split(b"\n")[0][len(MAGIC):])["pid"])
        return recording(*args)

    monkeypatch.setattr(fbank_resume, "_recording", checking)
    make_fbank(data, quiet=True, resume=True)
    assert claimed == [os.getpid()] * 5 and "took over 5 utterance(s)" in capsys.readouterr().err
    assert outputs(data) == want


def test_a_stop_before_the_run_writes_leaves_the_stopped_run_free(dirs, monkeypatch, capsys):
    r"""A Ctrl-C after the take-over, before the run's first recording (the Python API): the journal stayed locked
    by the process, and the next run was refused as if another process wrote it."""
    from flowaccent.features import make_fbank as module

    data, want = dirs
    stopped(monkeypatch, 5, data)

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "ArkWriter", stop)
    with pytest.raises(KeyboardInterrupt):
        make_fbank(data, quiet=True, resume=True)
    monkeypatch.undo()
    capsys.readouterr()
    make_fbank(data, quiet=True, resume=True)
    assert "took over 5 utterance(s)" in capsys.readouterr().err and outputs(data) == want


@pytest.mark.parametrize("where", ["_recording", "kept_count"])
def test_a_stop_while_choosing_or_checking_leaves_no_journal_open(dirs, monkeypatch, capsys, where):
    r"""Without file locks the check runs on a journal replaced by the claim: a Ctrl-C in it closed the old fd
    again (EBADF instead of the Ctrl-C) and left the new one open, its header naming this process; a Ctrl-C while
    the candidates' journals were read left one locked (the Python API goes on in the process)."""
    import errno

    from flowaccent.features import fbank_resume

    data, want = dirs
    stopped(monkeypatch, 5, data)
    set_header(stopped_files(data)[1], pid=2**22 + 41)

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    def stop(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(fcntl, "flock", no_locks)  # the module the locks call
    monkeypatch.setattr(fbank_resume, where, stop)
    opened = len(os.listdir("/proc/self/fd"))
    with pytest.raises(KeyboardInterrupt):
        make_fbank(data, quiet=True, resume=True)
    assert len(os.listdir("/proc/self/fd")) == opened
    monkeypatch.undo()
    capsys.readouterr()
    make_fbank(data, quiet=True, resume=True)
    assert "took over 5 utterance(s)" in capsys.readouterr().err and outputs(data) == want


def test_without_file_locks_another_machines_run_is_left_alone(dirs, monkeypatch, capsys):
    r"""On a cluster's shared file system without locks a process number says nothing of another node's run."""
    import errno


    data, _ = dirs
    stopped(monkeypatch, 5, data)
    ark, journal = stopped_files(data)
    set_header(journal, host="another-node")
    other = ark.with_name(f"{ark.name.rsplit('.', 1)[0]}.{2**22 + 51}")
    files = other, journal_of(other)
    ark.rename(other)
    journal.rename(journal_of(other))

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)  # the module the locks call
    capsys.readouterr()
    make_fbank(data, quiet=True, resume=True)
    assert "took over" not in capsys.readouterr().err and stopped_files(data) == files
    other.rename(ark)  # under this process's number: not written over either (a container's, with its own)
    journal_of(other).rename(journal)
    content = journal.read_bytes()
    make_fbank(data, quiet=True)
    assert journal.read_bytes() == content and stopped_files(data) == (ark, journal)


def test_a_journal_from_before_headers_named_the_machine_is_taken_over(dirs, monkeypatch, capsys):
    data, want = dirs
    stopped(monkeypatch, 5, data)
    journal = stopped_files(data)[1]
    lines = journal.read_bytes().split(b"\n", 1)
    header = json.loads(lines[0][len(MAGIC):])
    del header["host"]
    journal.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + lines[1])
    make_fbank(data, quiet=True, resume=True)
    assert "took over 5 utterance(s)" in capsys.readouterr().err and outputs(data) == want
