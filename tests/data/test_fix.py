r"""fix_data_dir (Kaldi's utils/fix_data_dir.sh): the utterances every table lists, less a list's; backups."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import pytest

from flowaccent.data import validate_data_dir
from flowaccent.data.fix import fix_data_dir
from flowaccent.errors import ConfigError, DataDirError, KaldiIOError

from .test_datadir import make_dir


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_keeps_the_utterances_every_table_lists_less_those_excluded(tmp_path):
    d = make_dir(tmp_path / "d", wav__scp="a-1 a1.wav\nb-1 b1.wav\n",  # a-2's line removed by hand
                 text="a-1\tTHE  THIN VAN\na-2 \nb-1 RED LORRY\n", cmvn__scp="a c.ark:1\nb c.ark:9\n",
                 feats__scp="a-1 f.ark:1\na-2 f.ark:2\nb-1 f.ark:3\n")
    (d / "utt2dur").write_text("a-1 1.0\na-2 1.5\nb-1 2.0\n")
    (d / "utt2lang").write_text("a-1 en\na-2 en\n")  # Kaldi's script keeps what it lists too
    (d / "spk2gender").write_text("a f\nb m\n")
    (d / "frame_shift").write_text("0.01\n")
    before = files(d)
    summary = fix_data_dir(d, ["b-1", "zz-9"])  # b-1 failed in fbank, say; zz-9 is not there
    assert (summary.kept, summary.total, dict(summary.lacking)) == (1, 3, {"utt2lang": 1, "wav.scp": 1})
    assert (summary.excluded, summary.unknown) == (1, 1)
    after = files(d)
    assert after["text"] == b"a-1\tTHE  THIN VAN\n"  # lines kept byte for byte
    assert after["wav.scp"] == b"a-1 a1.wav\n" and after["utt2spk"] == b"a-1 a\n" and after["spk2utt"] == b"a a-1\n"
    assert after["cmvn.scp"] == b"a c.ark:1\n" and after["spk2gender"] == b"a f\n"  # speaker b has none left
    assert after["utt2dur"] == b"a-1 1.0\n" and after["frame_shift"] == b"0.01\n" and after["utt2lang"] == b"a-1 en\n"
    assert after["utt2score"] == b"a-1 5\n" and after["feats.scp"] == b"a-1 f.ark:1\n"
    assert validate_data_dir(d) == []
    changed = {name for name in before if before[name] != after[name]}
    assert set(summary.changed) == changed and "frame_shift" not in changed
    assert {name: after[f".backup/{name}"] for name in changed} == {name: before[name] for name in changed}
    # no marker left; the lock's file stays, as fbank's does
    assert set(after) == set(before) | {f".backup/{name}" for name in changed} | {".fbank.lock"}


def test_with_segments_recordings_follow_their_utterances(tmp_path):
    r"""A recording left out of ``wav.scp`` takes its segments with it; ``wav.scp`` keeps the recordings segments
    name (Kaldi's filter_recordings), ``reco2file_and_channel`` too."""
    d = make_dir(tmp_path / "d", segments="a-1 r1 0 1\na-2 r1 1 2\nb-1 r2 0 1\n", wav__scp="r0 r0.wav\nr1 r1.wav\n")
    (d / "reco2file_and_channel").write_text("r0 r0 A\nr1 r1 A\nr2 r2 A\n")
    summary = fix_data_dir(d)
    assert summary.kept == 2 and dict(summary.lacking) == {"wav.scp": 1}
    assert (d / "wav.scp").read_text() == "r1 r1.wav\n" and (d / "reco2file_and_channel").read_text() == "r1 r1 A\n"
    assert (d / "segments").read_text() == "a-1 r1 0 1\na-2 r1 1 2\n" and validate_data_dir(d) == []
    (d / "wav.scp").unlink()
    with pytest.raises(DataDirError, match=r"segments: is there, but no wav.scp \(the recordings it cuts\); give its "
                                           r"wav.scp$"):
        fix_data_dir(d)
    (d / "feats.scp").write_text("a-1 x.ark:1\na-2 x.ark:2\n")  # features only: the segments are left over
    with pytest.raises(DataDirError, match=r"give its wav.scp \(a dir of features only: remove segments\)$"):
        fix_data_dir(d)


def test_unsorted_tables_are_sorted_and_a_second_fix_changes_nothing(tmp_path):
    d = make_dir(tmp_path / "d", utt2accent="b-1 zh\na-1 native\na-2 native\n")
    (d / "utt2dur").write_text("b-1 2.0\na-2 1.5\na-1 1.0\n")
    assert any("not sorted" in problem for problem in validate_data_dir(d))
    summary = fix_data_dir(d)
    assert summary.kept == 3 and set(summary.changed) == {"utt2accent", "utt2dur"} and summary.backup == d / ".backup"
    assert (d / "utt2dur").read_text() == "a-1 1.0\na-2 1.5\nb-1 2.0\n" and validate_data_dir(d) == []
    before = files(d)
    again = fix_data_dir(d)
    assert again.changed == () and files(d) == before  # the backups are those of the first
    assert again.backup is None  # it named a folder of no table this fix replaced


def test_nothing_left_changes_nothing(tmp_path):
    d = make_dir(tmp_path / "d", wav__scp="c-1 c.wav\n")
    before = files(d)
    with pytest.raises(DataDirError, match=r"no utterance would be left \(3 not in wav.scp, 1 excluded\)"):
        fix_data_dir(d, ["a-1"])
    assert files(d) == before


def test_tables_it_cannot_read_are_named(tmp_path):
    d = make_dir(tmp_path / "d", text="a-1 X\na-1 Y\n")
    with pytest.raises(DataDirError, match=r"text:2: duplicate key 'a-1'"):
        fix_data_dir(d)
    with pytest.raises(DataDirError, match="no such directory"):
        fix_data_dir(tmp_path / "nothing")
    (d / "utt2spk").unlink()
    with pytest.raises(DataDirError, match=r"utt2spk: required but missing \(make it from spk2utt: Kaldi's "
                                           r"utils/spk2utt_to_utt2spk.pl \S+/spk2utt > \S+/utt2spk\)$"):
        fix_data_dir(d)  # its speakers are in spk2utt: not one per utterance
    (d / "spk2utt").unlink()
    with pytest.raises(DataDirError, match=r"utt2spk: required but missing$"):  # no wav.scp to make it of
        fix_data_dir(d)
    (d / "wav.scp").write_text("a-1 1.wav\na-2 2.wav\nb-1 3.wav\n")
    with pytest.raises(DataDirError, match=r"utt2spk: required but missing \('utterance speaker' a line; .*awk "
                                           r"'\{print \$1, \$1\}' \S+/wav.scp > "):
        fix_data_dir(d)
    with pytest.raises(DataDirError, match="a list of names"):
        fix_data_dir(d, "a-1")


def test_a_fix_stopped_while_writing_is_finished_by_the_next_and_the_backups_kept(tmp_path, monkeypatch):
    r"""Stopped after rewriting some tables, a second fix (here with a longer list) would back the half-rewritten
    tables up over the old ones."""
    from flowaccent.data import fix

    d = make_dir(tmp_path / "d", wav__scp="a-1 a1.wav\na-2 a2.wav\nb-1 b1.wav\n")
    reference = shutil.copytree(d, tmp_path / "ref")
    fix_data_dir(reference, ["a-2", "b-1"])
    before = files(d)
    real, calls = fix.atomic_path, []

    def stopping(path):
        calls.append(path)
        if len(calls) == 12:  # the backups and the marker written, then some tables
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(fix, "atomic_path", stopping)
    with pytest.raises(KeyboardInterrupt):
        fix_data_dir(d, ["a-2"])
    monkeypatch.setattr(fix, "atomic_path", real)
    half = files(d)
    assert half != before and (d / ".backup" / ".writing").is_file()
    assert any(before[name] != half[name] for name in before if not name.startswith(".backup"))
    fix_data_dir(d, ["a-2", "b-1"])
    assert files(d) == files(reference)  # backups, then tables, as one uninterrupted fix
    assert {name: data for name, data in files(d).items() if name.startswith(".backup/")} == \
        {f".backup/{name}": before[name] for name in before if before[name] != files(d)[name]}


def test_refused_while_fbank_writes_the_data_dir(tmp_path):
    d = make_dir(tmp_path / "d")
    held = os.open(d / ".fbank.lock", os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ConfigError, match="being written by another flowaccent fbank, fixdir or cmvn now"):
            fix_data_dir(d, ["a-1"])
    finally:
        os.close(held)
    assert fix_data_dir(d, ["a-1"]).kept == 2


def test_an_empty_data_dir_is_said_so(tmp_path):
    d = make_dir(tmp_path / "d", utt2spk="", spk2utt="", text=None, utt2num_frames=None, utt2accent=None,
                 utt2score=None)
    with pytest.raises(DataDirError, match=r"utt2spk: empty data dir \(no utterances\)"):
        fix_data_dir(d)


def test_lines_are_split_as_kaldi_splits_them(tmp_path):
    r"""A key may hold a no-break space or an ASCII separator (Kaldi splits at its six whitespace bytes alone), and a
    CRLF line is kept as it is."""
    from flowaccent.data.datadir import kept_lines

    table = tmp_path / "t"
    table.write_bytes("b\u00a0x v1\nb\x1cy v2\r\na v3\nb v4".encode())
    assert kept_lines(table.read_bytes(), {"b\u00a0x", "b\x1cy", "b"}) == "b\u00a0x v1\nb\x1cy v2\r\nb v4\n".encode()
    assert kept_lines(table.read_bytes(), None, sort=True) == "a v3\nb v4\nb\x1cy v2\r\nb\u00a0x v1\n".encode()


def with_features(d: Path, frames: dict[str, int]) -> Path:
    r"""``d`` with a ``feats.scp`` of matrices of those ``frames`` (in ``d/f.ark``)."""
    import numpy as np

    from flowaccent.data import ArkWriter

    with ArkWriter(d / "f.ark", d / "feats.scp") as writer:
        for utt, n in frames.items():
            writer.write(utt, np.zeros((n, 3), np.float32))
    return d


def test_frame_counts_utt2num_frames_lacks_are_counted_in_feats_scp(tmp_path):
    r"""Kaldi's ``get_utt2num_frames.sh``: the lines utt2num_frames lacks are counted in feats.scp; its other lines
    kept byte for byte; the table made where it is not there; an utterance left out is not read."""
    d = with_features(make_dir(tmp_path / "d", utt2num_frames="b-1\t9\n"), {"a-1": 10, "a-2": 12, "b-1": 9})
    before = files(d)
    summary = fix_data_dir(d)
    assert (summary.counted, summary.changed, summary.kept) == (2, ("utt2num_frames",), 3)
    assert (summary.replaced, summary.made) == (("utt2num_frames",), ())
    assert (d / "utt2num_frames").read_bytes() == b"a-1 10\na-2 12\nb-1\t9\n"
    assert (d / ".backup" / "utt2num_frames").read_bytes() == before["utt2num_frames"]
    assert validate_data_dir(d) == []
    assert fix_data_dir(d).changed == ()  # nothing lacks now
    (d / "utt2num_frames").write_text("b-1 9\n")
    (d / "f.ark").write_bytes((d / "f.ark").read_bytes()[:-40])  # b-1's data cut short
    summary = fix_data_dir(d, ["b-1"])
    assert (summary.counted, (d / "utt2num_frames").read_text()) == (2, "a-1 10\na-2 12\n")
    assert validate_data_dir(d) == []
    d = with_features(make_dir(tmp_path / "e", utt2num_frames=None), {"a-1": 10, "a-2": 12, "b-1": 9})
    summary = fix_data_dir(d)
    assert (summary.made, summary.replaced, summary.counted) == (("utt2num_frames",), (), 3)
    assert not (d / ".backup").exists()  # nothing replaced: nothing backed up, and no empty folder to look in


def test_frames_that_cannot_be_counted_change_nothing(tmp_path):
    d = with_features(make_dir(tmp_path / "d", utt2num_frames=None), {"a-1": 10, "a-2": 12, "b-1": 9})
    (d / "f.ark").write_bytes((d / "f.ark").read_bytes()[:-40])
    before = files(d)
    with pytest.raises(KaldiIOError, match=r"feats.scp: utterance 'b-1' in .*truncated ark.* \(counting the frames "
                                           r"utt2num_frames lacks; nothing changed\)$"):
        fix_data_dir(d, ["a-1"])  # a-1's lines would have gone
    assert files(d) == before
    (d / "data").mkdir()
    (d / "data" / "fbank_failed.txt").write_text("a-1 its error\n")  # the features are stale: not counted
    summary = fix_data_dir(d)
    assert summary.stale_feats and summary.counted == 0 and not (d / "utt2num_frames").exists()
    (d / "utt2num_frames").write_text("a-2 12\n")  # and validate does not say fixdir counts them
    assert validate_data_dir(d) == [f"{d / 'utt2num_frames'}: 2 utterance(s) of utt2spk missing, e.g. 'a-1'"]


def test_a_backup_that_is_a_file_changes_nothing(tmp_path):
    r"""It said "File exists" with no word of what to do."""
    d = make_dir(tmp_path / "d", text="a-1 X\nb-1 Y\nz-1 Z\n")
    (d / ".backup").write_text("mine\n")
    before = files(d)
    with pytest.raises(DataDirError, match=r"\.backup: not a folder, where fixdir keeps the tables it replaces .*: "
                                           "move it away; nothing changed"):
        fix_data_dir(d)
    assert files(d) == before
