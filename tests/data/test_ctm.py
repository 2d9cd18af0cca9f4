r"""Kaldi CTM files of phones: read (sorted, named by a phone table), written, and every damaged line an error."""

from __future__ import annotations

import pytest

from flowaccent.data.ctm import Segment, read_ctm, read_phone_table, write_ctm
from flowaccent.errors import DataDirError


def test_reads_utterances_sorted_with_confidences_and_comments(tmp_path):
    path = tmp_path / "phones.ctm"
    path.write_text(";; a NIST comment\n"
                    "u2 1 0.20 0.10 b 0.9\n"
                    "u1 1 0.05 0.10 a NA\n"
                    "\n"
                    "u2 A 0.00 0.20 sil\n"
                    "u1 1 0.00 0.05 sil\n")
    assert read_ctm(path) == {
        "u2": [Segment(0.0, 0.2, "sil", "A"), Segment(0.2, 0.1, "b")],  # the channel as written
        "u1": [Segment(0.0, 0.05, "sil"), Segment(0.05, 0.1, "a")],
    }
    assert Segment(0.2, 0.1, "b").end == pytest.approx(0.3)


def test_integer_phones_are_named_by_the_phone_table(tmp_path):
    (tmp_path / "phones.txt").write_text("<eps> 0\nSIL 1\nAH1_B 2\n")
    (tmp_path / "ali.ctm").write_text("u1 1 0.00 0.03 1\nu1 1 0.03 0.07 2\n")
    symbols = read_phone_table(tmp_path / "phones.txt")
    assert symbols == {"0": "<eps>", "1": "SIL", "2": "AH1_B"}
    assert [s.phone for s in read_ctm(tmp_path / "ali.ctm", symbols)["u1"]] == ["SIL", "AH1_B"]
    (tmp_path / "ali.ctm").write_text("u1 1 0.00 0.03 9\n")
    with pytest.raises(DataDirError, match=r"ali.ctm: line 1: phone '9' is not in the phone table given \(--phones\)$"):
        read_ctm(tmp_path / "ali.ctm", symbols)
    (tmp_path / "ali.ctm").write_text("u1 1 0.00 0.03 AH1_B\n")  # named already: the table is not for it
    with pytest.raises(DataDirError, match=r"phone 'AH1_B' is not in .*: the table maps integers to names, and this "
                                           r"CTM holds names already; leave --phones out"):
        read_ctm(tmp_path / "ali.ctm", symbols)


@pytest.mark.parametrize("line, said", [
    ("u1 1 0.00 a", "4 fields, expected 'utt channel start duration phone"),
    ("u1 1 0.00 0.1 a 0.5 x", "7 fields"),
    ("u1 1 zero 0.1 a", "start 'zero' is not a number of seconds >= 0"),
    ("u1 1 0.00 -0.1 a", "duration '-0.1' is not a number"),
    ("u1 1 nan 0.1 a", "start 'nan' is not a number"),
    ("u1 1 inf 0.1 a", "start 'inf' is not a number"),
    ("u1 1 0.00 0.1 a b", "confidence 'b' is no number (nor NA): a line is 'utt channel start duration phone "
                          "[confidence]', a phone one field"),  # taken as phone 'a'
    ("u1 1 0.00 0.1 a nan", "confidence 'nan' is no number"),
])
def test_a_damaged_line_is_an_error_naming_file_and_line(tmp_path, line, said):
    path = tmp_path / "x.ctm"
    path.write_text(f"u0 1 0.0 0.1 a\n{line}\n")
    with pytest.raises(DataDirError) as error:
        read_ctm(path)
    assert str(error.value).startswith(f"{path}: line 2: ") and said in str(error.value)


def test_overlapping_phones_are_an_error_but_rounding_is_not(tmp_path):
    path = tmp_path / "x.ctm"
    path.write_text("u1 1 0.000 0.101 a\nu1 1 0.100 0.050 b\n")  # 1 ms: a start and duration rounded on their own
    assert [s.phone for s in read_ctm(path)["u1"]] == ["a", "b"]
    path.write_text("u1 1 1.217 0.124 a\nu1 1 1.340 0.072 b\n")  # 1 ms too, though 1.217 + 0.124 > 1.341 in floats
    assert [s.phone for s in read_ctm(path)["u1"]] == ["a", "b"]
    path.write_text("u1 1 0.000 0.102 a\nu1 1 0.100 0.050 b\n")
    with pytest.raises(DataDirError, match=r"line 2: utterance 'u1': phone 'b' at 0.1 s starts before 'a' ends"):
        read_ctm(path)


def test_missing_or_undecodable_files_and_bad_phone_tables(tmp_path):
    with pytest.raises(DataDirError, match="no such CTM file"):
        read_ctm(tmp_path / "none.ctm")
    (tmp_path / "bin.ctm").write_bytes(b"u1 1 0 0.1 \xff\n")
    with pytest.raises(DataDirError, match="not UTF-8"):
        read_ctm(tmp_path / "bin.ctm")
    with pytest.raises(DataDirError, match="no such phone table"):
        read_phone_table(tmp_path / "none.txt")
    (tmp_path / "phones.txt").write_text("SIL 1\nAH one\n")
    with pytest.raises(DataDirError, match=r"phones.txt: line 2: expected '<phone> <integer>'"):
        read_phone_table(tmp_path / "phones.txt")
    (tmp_path / "phones.txt").write_bytes(b"SIL 1\n\xff\xfe 2\n")  # final.mdl given by mistake: a traceback
    with pytest.raises(DataDirError, match=r"phones.txt: not UTF-8 text \(invalid start byte at byte 6\), not a "):
        read_phone_table(tmp_path / "phones.txt")
    (tmp_path / "phones.txt").write_text("SIL 1\nAH 2\nEH 2\n")  # the last name was taken
    with pytest.raises(DataDirError, match=r"phones.txt: line 3: integer 2 names 'EH' here and 'AH' on line 2"):
        read_phone_table(tmp_path / "phones.txt")


def test_written_phones_touch_and_read_back(tmp_path):
    segments = [(0.00014, 0.00014, "sil"), (0.00028, 0.10014, "a"), (0.10042, 0.2, "b")]  # 0.0001 + 0.0001 != 0.0003
    write_ctm(tmp_path / "x.ctm", {"u1": segments})
    back = read_ctm(tmp_path / "x.ctm")["u1"]
    assert [s.phone for s in back] == ["sil", "a", "b"]
    assert [round(s.start, 4) for s in back] == [0.0001, 0.0003, 0.1004]
    for before, after in zip(back, back[1:]):  # the end rounded, not the duration: no gap, no overlap
        assert before.end == pytest.approx(after.start, abs=1e-12)
    assert back[-1].end == pytest.approx(0.3004, abs=1e-12)
    # utterances in C order, as Kaldi and sclite expect a CTM (synth wrote its jobs' one job after another)
    write_ctm(tmp_path / "y.ctm", {"zh-m07-0008": segments[:1], "zh-f07-0004": segments[:1], "zh-m07-0000": segments})
    assert [line.split()[0] for line in (tmp_path / "y.ctm").read_text().splitlines()] == [
        "zh-f07-0004", "zh-m07-0000", "zh-m07-0000", "zh-m07-0000", "zh-m07-0008"]


def test_base_phone_drops_kaldis_word_position_then_the_stress_digit():
    from flowaccent.data.ctm import base_phone

    assert [base_phone(p) for p in ("AH1_B", "AH0_E", "AH2_I", "AH", "SIL_S", "T_I", "ER2", "NSN_S")] == [
        "AH", "AH", "AH", "AH", "SIL", "T", "ER", "NSN"]
    assert [base_phone(p) for p in ("2", "@2", "AH_X", "AH12", "B_", "_B")] == ["2", "@2", "AH_X", "AH12", "B_", "_B"]


def test_phones_of_two_channels_of_one_key_may_overlap(tmp_path):
    path = tmp_path / "calls.ctm"
    path.write_text("call A 0.00 0.30 a\ncall B 0.10 0.30 b\ncall A 0.30 0.10 c\n")
    assert read_ctm(path)["call"] == [Segment(0.0, 0.3, "a", "A"), Segment(0.1, 0.3, "b", "B"),
                                      Segment(0.3, 0.1, "c", "A")]
    path.write_text("call A 0.00 0.30 a\ncall 1 0.10 0.30 b\n")  # NIST's A is channel 1
    with pytest.raises(DataDirError, match=r"line 2: utterance 'call': phone 'b' at 0.1 s starts before 'a' ends"):
        read_ctm(path)


def test_a_ctm_of_recordings_is_cut_into_utterances_as_convert_ctm_made_it():
    from flowaccent.data.ctm import utterances_of_recordings
    from flowaccent.data.segments import Segment as Span

    ctm = {"file": [Segment(18.0, 1.0, "w", "A")],  # utils/convert_ctm.pl's own example, undone
           "r2": [Segment(0.0, 0.5, "a"), Segment(0.5, 0.3, "b"), Segment(0.8, 0.4, "c"), Segment(1.2, 0.2, "d")],
           "r3": [Segment(0.0, 0.2, "x", "1"), Segment(0.1, 0.2, "y", "2")]}
    spans = {"u": Span("reco", 10.0, 20.0), "v": Span("r2", 0.6, 1.0), "w": Span("r2", 0.9, -1),
             "x": Span("r2", 5.0, 6.0), "y": Span("r3", 0.0, 1.0)}
    got = utterances_of_recordings(ctm, spans, {"reco": "file A", "r3": "r3 B"})
    assert got["u"] == [Segment(8.0, 1.0, "w")]
    # b (middle 0.65) and c (1.0, not in [0.6, 1.0)) for v; c and d for w, to the recording's end
    assert [(s.phone, round(s.start, 6), round(s.duration, 6)) for s in got["v"]] == [("b", 0.0, 0.2)]
    assert [(s.phone, round(s.start, 6), round(s.duration, 6)) for s in got["w"]] == [("c", 0.0, 0.3),
                                                                                      ("d", 0.3, 0.2)]
    assert got["y"] == [Segment(0.1, 0.2, "y")]  # channel B of r3: the second channel
    assert "x" not in got  # no phone: left out
    # a CTM keyed by the recordings themselves beside a reco2file_and_channel naming files it lacks: the recordings'
    keyed = utterances_of_recordings({"sw02001-A": [Segment(0.5, 0.2, "k")]}, {"z": Span("sw02001-A", 0.4, 1.0)},
                                     {"sw02001-A": "sw02001 A"})
    assert keyed == {"z": [Segment(0.1, 0.2, "k")]}
    # keyed so on two channels: the table is there, but names a file the CTM lacks ('needs reco2file_and_channel')
    with pytest.raises(DataDirError, match=r"^segments: the CTM holds recording 'r3' on channels 1, 2: which is which "
                                           r"recording needs reco2file_and_channel \('recording file channel'\); "
                                           r"r2fc puts it on 'r3file', which the CTM does not hold$"):
        utterances_of_recordings(ctm, {"y": Span("r3", 0.0, 1.0)}, {"r3": "r3file A"}, "segments", "r2fc")
    # 15.4569 - 12.0 is 3.456899999999999, whose end (+ 0.0481) would round to frame 350 where 3.4569's is 351
    assert utterances_of_recordings({"r": [Segment(15.4569, 0.0481, "k")]}, {"u": Span("r", 12.0, 20.0)}) == {
        "u": [Segment(3.4569, 0.0481, "k")]}
    overlapping = utterances_of_recordings(ctm, {"p": Span("r2", 0.0, 0.9), "q": Span("r2", 0.5, 1.4)})
    assert [s.phone for s in overlapping["p"]] == ["a", "b"] and [s.phone for s in overlapping["q"]] == ["b", "c", "d"]
    with pytest.raises(DataDirError, match=r"segments: the CTM holds recording 'r3' on channels 1, 2"):
        utterances_of_recordings(ctm, {"y": Span("r3", 0.0, 1.0)})
    with pytest.raises(DataDirError, match=r"reco2file_and_channel: recording 'r3': expected 'file channel'"):
        utterances_of_recordings(ctm, {"y": Span("r3", 0.0, 1.0)}, {"r3": "r3"})


def test_recordings_on_a_channel_the_ctm_lacks_are_named():
    from flowaccent.data.ctm import off_channel

    ctm = {"call": [Segment(0.0, 0.2, "x", "1"), Segment(0.1, 0.2, "y", "2")], "mono": [Segment(0.0, 0.2, "z", "A")]}
    tracks = {"a": "call A", "b": "call 2", "c": "call C", "m": "mono B", "n": "mono 1", "gone": "elsewhere B"}
    assert off_channel(ctm, ["n", "m", "c", "b", "a", "gone", "plain", "m"], tracks, "r2fc") == [
        "r2fc puts recording 'c' on channel C (3) of 'call', which the CTMs hold on channels 1, 2 only",
        "r2fc puts recording 'm' on channel B (2) of 'mono', which the CTMs hold on channel 1 only"]
    assert off_channel(ctm, ["m"], None) == []
