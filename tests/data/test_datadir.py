r"""Kaldi data-dir rules: each violation is reported naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowaccent.data import load_data_dir, read_table, validate_data_dir, write_spk2utt, write_table
from flowaccent.errors import DataDirError


def make_dir(root: Path, **tables: str) -> Path:
    base = {
        "utt2spk": "a-1 a\na-2 a\nb-1 b\n",
        "spk2utt": "a a-1 a-2\nb b-1\n",
        "text": "a-1 THE THIN VAN\na-2 \nb-1 RED LORRY\n",
        "utt2num_frames": "a-1 10\na-2 12\nb-1 9\n",
        "utt2accent": "a-1 native\na-2 native\nb-1 zh\n",
        "utt2score": "a-1 5\na-2 4.5\nb-1 2\n",
    }
    base.update({k.replace("__", "."): v for k, v in tables.items()})
    root.mkdir(parents=True, exist_ok=True)
    for name, content in base.items():
        if content is not None:
            (root / name).write_text(content)
    return root


def test_valid_dir(tmp_path, monkeypatch):
    d = make_dir(tmp_path / "train_native")
    assert validate_data_dir(d) == []
    data = load_data_dir(d)
    assert data.name == "train_native" and data.utts == ["a-1", "a-2", "b-1"]
    with monkeypatch.context() as m:  # the dir given as '.' (or '..') is named as its folder: it was ''
        m.chdir(d)
        assert load_data_dir(".").name == "train_native"
    (d / "sub").mkdir()
    with monkeypatch.context() as m:
        m.chdir(d / "sub")
        assert load_data_dir("..").name == "train_native"
    assert data.spk2utt == {"a": ["a-1", "a-2"], "b": ["b-1"]}
    assert data.utt2num_frames()["a-2"] == 12 and data.utt2score()["b-1"] == 2.0
    assert data.table("text")["a-2"] == ""
    # spk2utt's utterances split at any whitespace, as Kaldi's spk2utt_to_utt2spk.pl splits them
    (d / "spk2utt").write_text("a a-1  a-2\nb\tb-1\n")
    assert validate_data_dir(d) == [] and load_data_dir(d).spk2utt == {"a": ["a-1", "a-2"], "b": ["b-1"]}


@pytest.mark.parametrize(
    "tables,fragment",
    [
        ({"utt2spk": "a-2 a\na-1 a\nb-1 b\n"}, "not sorted in C order"),
        ({"utt2spk": "a-1 a\na-1 a\nb-1 b\n"}, "duplicate key 'a-1'"),
        ({"utt2spk": "a a-1\na a-2\nb b-1\n", "wav__scp": "a-1 1.wav\na-2 2.wav\nb-1 3.wav\n"},  # columns swapped
         "utt2spk:2: duplicate key 'a' (line 1 too): not an utterance of wav.scp or segments: a speaker? utt2spk is "
         "'utterance speaker' a line"),
        ({"utt2spk": None}, "utt2spk: required but missing (make it from spk2utt: Kaldi's "
         "utils/spk2utt_to_utt2spk.pl "),
        ({"utt2spk": None, "spk2utt": None, "feats__scp": "a-1 x.ark:1\na-2 x.ark:2\nb-1 x.ark:3\n"},
         "utt2spk: required but missing "
         "('utterance speaker' a line; speakers not known: one per utterance, as Kaldi's recipes make it, awk "
         "'{print $1, $1}' "),
        ({"spk2utt": "a a-1\nb b-1\n"}, "speaker 'a' does not match utt2spk"),
        ({"utt2spk": "a-1 b\na-2 a\nb-1 b\n", "spk2utt": "a a-2\nb a-1 b-1\n"},
         "not sorted by speaker as well as by utterance (1 place(s), e.g. 'a-2 a' after 'a-1 b')"),
        # prefixed already, yet s10_a sorts before s1_a: 'make each speaker id a prefix' was no help
        ({"utt2spk": "s10_a s10\ns1_a s1\n", "spk2utt": "s1 s1_a\ns10 s10_a\n"},
         "(sort -k2); give the speaker ids one length (s01, s10) or join them to the utterance ids with '-'"),
        ({"text": "a-1 X\nb-1 Y\n"}, "text: 1 utterance(s) of utt2spk missing, e.g. 'a-2'"),
        ({"utt2accent": "a-1 x\na-2 x\nb-1 x\nc-1 x\n"}, "1 utterance(s) not in utt2spk"),
        ({"utt2num_frames": "a-1 10\na-2 0\nb-1 9\n"}, "bad frame count '0'"),
        # other scripts' digits: a traceback ('²': isdigit() then int()), or taken ('٣٧٦', Kaldi refuses it)
        ({"utt2num_frames": "a-1 10\na-2 \u00b2\nb-1 9\n"}, "bad frame count '\u00b2'"),
        ({"utt2num_frames": "a-1 10\na-2 \u0663\u0667\nb-1 9\n"}, "bad frame count '\u0663\u0667'"),
        ({"segments": "a-1 r 0 1\na-2 r 1 1_5\nb-1 r 2 3\n"}, "bad start, end or channel"),
        ({"segments": "a-1 r 0 1\na-2 r 1 2 \u00b9\nb-1 r 2 3\n"}, "bad start, end or channel"),
        ({"utt2score": "a-1 5\na-2 good\nb-1 2\n"}, "not a number"),
        ({"utt2spk": "a-1 a\n\na-2 a\nb-1 b\n"}, "empty line"),
        ({"utt2spk": "a-1\na-2 a\nb-1 b\n"}, "has no value"),
        ({"utt2spk": " a-1 a\na-2 a\nb-1 b\n"}, "starts with whitespace"),
        ({"cmvn__scp": "a x.ark:1\n"}, "cmvn.scp: 1 speaker(s) of utt2spk missing, e.g. 'b'"),
        ({"cmvn__scp": "a-1 x.ark:1\na-2 x.ark:2\nb-1 x.ark:3\n"},
         "not in utt2spk, e.g. 'a-1' (keyed by utterance: speaker CMVN stats are keyed by speaker, as "
         "compute-cmvn-stats --spk2utt writes them, and 'flowaccent cmvn "),
        ({"spk2utt": None}, "spk2utt: required but missing (make it from utt2spk: 'flowaccent fixdir "),
        ({"segments": "a-1 r 0 1\na-2 r 1 -1\nb-1 r 2 2\n"}, "utterance 'b-1': empty segment"),
        ({"segments": "a-1 r 0 1\na-2 r 1 -1\nb-1 r -1 2\n"}, "start must be a time >= 0"),
        ({"segments": "a-1 r 0 1\na-2 r 1 x\nb-1 r 2 3\n"}, "bad start, end or channel"),
        ({"segments": "a-1 r 0 1\na-2 r 1 2 -1\nb-1 r 2 3\n"}, "channel must be >= 0"),
        ({"segments": "a-1 r 0 1\na-2 r 1\nb-1 r 2 3\n"}, "expected 'recording start end [channel]'"),
        ({"segments": "a-1 r 0 1\nb-1 r 2 3\n"}, "segments: 1 utterance(s) of utt2spk missing, e.g. 'a-2'"),
        ({"segments": "a-1 r 0 1\na-2 r 1 2\nb-1 q 0 3\n", "wav__scp": "r r.wav\n"}, "1 recording(s) of segments"),
    ],
)
def test_each_rule(tmp_path, tables, fragment):
    d = tmp_path / "d"
    if tables.get("spk2utt", "") is None:
        make_dir(d, **{k: v for k, v in tables.items() if k != "spk2utt"})
        (d / "spk2utt").unlink()
    else:
        make_dir(d, **tables)
    problems = validate_data_dir(d)
    assert any(fragment in p for p in problems), problems
    assert all(str(d) in p for p in problems)
    with pytest.raises(DataDirError, match="d/"):
        load_data_dir(d)


def test_stats_keyed_by_utterance_are_said_as_such_first(tmp_path):
    r"""score and train say a dir's first problem: it was '2 speaker(s) of utt2spk missing', which hid the cause."""
    d = make_dir(tmp_path / "d", cmvn__scp="a-1 x.ark:1\na-2 x.ark:2\nb-1 x.ark:3\n")
    problems = validate_data_dir(d)
    assert len(problems) == 1 and "cmvn.scp: 3 speaker(s) not in utt2spk, e.g. 'a-1' (keyed by utterance" in problems[0]
    with pytest.raises(DataDirError, match=r"cmvn.scp: 3 speaker\(s\) not in utt2spk, e.g. 'a-1' \(keyed by utt"):
        load_data_dir(d)


def test_a_duplicate_utterance_of_utt2spk_is_not_called_a_speaker(tmp_path):
    d = make_dir(tmp_path / "d", utt2spk="a-1 a\na-1 a\nb-1 b\n", wav__scp="a-1 1.wav\na-2 2.wav\nb-1 3.wav\n")
    assert [p for p in validate_data_dir(d) if "utt2spk:" in p] == [
        f"{d / 'utt2spk'}:2: duplicate key 'a-1' (line 1 too): keep one of the two lines"]


def test_the_first_problem_names_the_command_that_lists_the_others(tmp_path):
    d = make_dir(tmp_path / "d", utt2accent="a-1 native\n", utt2score="a-1 5\na-2 x\nb-1 2\n")
    problems = validate_data_dir(d)
    assert len(problems) == 2, problems
    with pytest.raises(DataDirError) as error:
        load_data_dir(d)
    assert str(error.value) == f"{problems[0]} (and 1 more problem: 'flowaccent validate {d}' lists a data dir's)"
    assert "(and" not in str(pytest.raises(DataDirError, load_data_dir, make_dir(tmp_path / "e", utt2accent="")).value)
    # tables the command requires, which validate does not: each said (validate said 'OK')
    (d / "utt2num_frames").unlink()
    with pytest.raises(DataDirError) as error:
        load_data_dir(d, require=("feats.scp", "utt2num_frames"))
    message = str(error.value)
    # the tables made from feats.scp, with it missing too: fbank writes them all ('make it from feats.scp with
    # flowaccent cmvn' sent the user to make cmvn.scp from the features that were not there)
    assert message.startswith(f"{d / 'feats.scp'}: required but missing (compute the features: 'flowaccent fbank {d}', "
                              f"or Kaldi's steps/make_fbank.sh); {d / 'utt2num_frames'}: required but missing (written "
                              f"with feats.scp by 'flowaccent fbank') (and 2 more problems: 'flowaccent validate {d}' "
                              f"lists a data dir's)")


def test_empty_data_dir(tmp_path):
    d = make_dir(tmp_path / "d", utt2spk="", spk2utt="", text="", utt2num_frames="", utt2accent="", utt2score="")
    with pytest.raises(DataDirError, match="empty data dir"):
        load_data_dir(d)


def test_missing_dir_and_required_tables(tmp_path):
    assert validate_data_dir(tmp_path / "nope") == [f"{tmp_path / 'nope'}: no such directory"]  # 'not a directory'
    (tmp_path / "afile").write_text("")
    assert validate_data_dir(tmp_path / "afile") == [f"{tmp_path / 'afile'}: not a directory"]
    d = make_dir(tmp_path / "d")
    (d / "text").rename(tmp_path / "text")
    (d / "text").symlink_to(tmp_path / "gone")  # skipped as absent: fbank then said 'required but missing'
    assert validate_data_dir(d) == [f"{d / 'text'}: a broken symbolic link (to {tmp_path / 'gone'})"]
    (d / "text").unlink()
    (tmp_path / "text").rename(d / "text")
    with pytest.raises(DataDirError, match="feats.scp: required but missing"):
        load_data_dir(d, require=("feats.scp",))
    (d / "utt2num_frames").unlink()  # train needs it; Kaldi's feature scripts do not always write it
    with pytest.raises(DataDirError, match=f"utt2num_frames: required but missing .make it from feats.scp with "
                                           f"'flowaccent fixdir {d}' or Kaldi's utils/data/get_utt2num_frames.sh; or "
                                           f"run 'flowaccent fbank {d}' for new features.$"):
        load_data_dir(d, require=("utt2num_frames",))


def test_c_order_is_byte_order(tmp_path):
    # LC_ALL=C puts upper case before lower case and '-' before '_'.
    write_table(tmp_path / "t", {"b": 1, "B": 2, "a_1": 3, "a-1": 4})
    assert [line.split()[0] for line in (tmp_path / "t").read_text().splitlines()] == ["B", "a-1", "a_1", "b"]
    assert list(read_table(tmp_path / "t")) == ["B", "a-1", "a_1", "b"]
    # beyond ASCII: UTF-8's bytes (LC_ALL=C sort), 2-, 3- and 4-byte characters, and U+FFFF before U+10000
    keys = ["aZ", "a\u00e9", "a\u4e00", "a\uffff", "a\U00010000", "a\U0001f600"]
    assert sorted(keys, key=lambda k: k.encode()) == keys
    (tmp_path / "u").write_text("".join(f"{k} v\n" for k in keys), encoding="utf-8")
    assert list(read_table(tmp_path / "u")) == keys
    for i in range(len(keys) - 1):
        swapped = keys[:i] + [keys[i + 1], keys[i]] + keys[i + 2 :]
        (tmp_path / "u").write_text("".join(f"{k} v\n" for k in swapped), encoding="utf-8")
        with pytest.raises(DataDirError, match=f"u:{i + 2}: not sorted in C order"):
            read_table(tmp_path / "u")


def test_write_table_refuses_bad_keys_and_leaves_nothing(tmp_path):
    with pytest.raises(DataDirError, match="whitespace"):
        write_table(tmp_path / "t", {"a 1": "x"})
    assert list(tmp_path.iterdir()) == []


def test_write_spk2utt(tmp_path):
    write_spk2utt(tmp_path / "spk2utt", {"b-1": "b", "a-2": "a", "a-1": "a"})
    assert (tmp_path / "spk2utt").read_text() == "a a-1 a-2\nb b-1\n"
    with pytest.raises(DataDirError, match=f"{tmp_path}: is a folder; give the table's file"):
        write_spk2utt(tmp_path, {"b-1": "b"})  # the data dir, not its spk2utt: was IsADirectoryError


def test_subset_keeps_every_table_consistent(tmp_path):
    from flowaccent.data import subset_data_dir

    d = make_dir(tmp_path / "d", cmvn__scp="a x.ark:1\nb x.ark:9\n")
    sub = subset_data_dir(d, tmp_path / "sub", ["a-2", "b-1"])
    assert sub.utts == ["a-2", "b-1"] and validate_data_dir(sub.path) == []
    assert (tmp_path / "sub" / "spk2utt").read_text() == "a a-2\nb b-1\n"
    assert read_table(tmp_path / "sub" / "cmvn.scp") == {"a": "x.ark:1", "b": "x.ark:9"}
    assert not (tmp_path / "sub" / "fbank.json").exists()  # the source has none
    # features computed by flowaccent fbank: the subset keeps their record (a model trained on it checks sets)
    (d / "feats.scp").write_text("a-1 f.ark:1\na-2 f.ark:2\nb-1 f.ark:3\n")
    (d / "fbank.json").write_text('{"fbank": {"frame_shift_ms": 10.0}}')
    subset_data_dir(d, tmp_path / "sub", ["a-2"])
    assert (tmp_path / "sub" / "fbank.json").read_text() == (d / "fbank.json").read_text()
    with pytest.raises(DataDirError, match="unknown utterance"):
        subset_data_dir(d, tmp_path / "bad", ["c-1"])


def test_subset_keeps_other_tools_tables(tmp_path):
    r"""Kaldi's subset_data_dir.sh keeps utt2dur, utt2lang, spk2gender, ...: they were dropped (the demo's utt2phones
    among them)."""
    from flowaccent.data import subset_data_dir

    d = make_dir(tmp_path / "d", segments="a-1 r1 0 1\na-2 r1 1 2\nb-1 r2 0 1\n", wav__scp="r1 r1.wav\nr2 r2.wav\n")
    (d / "utt2phones").write_text("a-1 h @ l oU\na-2 w 3: l d\nb-1 b aI\n")
    (d / "phones.ctm").write_text("a-2 1 0.0 0.1 w\na-1 1 0.0 0.5 h\na-2 1 0.1 0.2 3:\nb-1 1 0.0 0.3 b\n")
    (d / "utt2dur").write_text("a-1 1.0\na-2 1.0\nb-1 1.0\n")
    (d / "spk2gender").write_text("a f\nb m\n")
    (d / "reco2file_and_channel").write_text("r1 r1 A\nr2 r2 A\n")
    (d / "frame_shift").write_text("0.01\n")
    (d / "notes.txt").write_text("a-1 is not a table\n")
    (d / "utt2dur.gz").write_bytes(b"\x1f\x8b binary")  # a file named like a table is not one: left alone
    subset_data_dir(d, tmp_path / "sub", ["a-2"])
    sub = tmp_path / "sub"
    assert (sub / "utt2phones").read_text() == "a-2 w 3: l d\n" and (sub / "utt2dur").read_text() == "a-2 1.0\n"
    assert (sub / "phones.ctm").read_text() == "a-2 1 0.0 0.1 w\na-2 1 0.1 0.2 3:\n"  # an utterance's lines, in order
    assert (sub / "spk2gender").read_text() == "a f\n" and (sub / "reco2file_and_channel").read_text() == "r1 r1 A\n"
    assert (sub / "frame_shift").read_text() == "0.01\n" and not (sub / "notes.txt").exists()
    assert not (sub / "utt2dur.gz").exists()
    assert validate_data_dir(sub) == []


def test_segments_key_wav_scp_by_recording(tmp_path):
    from flowaccent.data import subset_data_dir
    from flowaccent.data.segments import Segment

    d = make_dir(tmp_path / "d", segments="a-1 r1 0 1.5\na-2 r1 1.5 -1\nb-1 r2 0.25 2 1\n",
                 wav__scp="r0 unused.wav\nr1 r1.wav\nr2 sox r2.wav -t wav - |\n")
    # Kaldi's validate_data_dir.sh requires segments' recordings and wav.scp's to be the same; commands read the dir
    assert validate_data_dir(d) == [f"{d / 'wav.scp'}: 1 recording(s) that no line of segments cuts, e.g. 'r0' "
                                    "(Kaldi's validate_data_dir.sh requires the same recordings; 'flowaccent fixdir "
                                    f"{d}' removes them)"]
    assert load_data_dir(d).segments()["b-1"] == Segment("r2", 0.25, 2.0, 1)
    sub = subset_data_dir(d, tmp_path / "sub", ["b-1"])
    assert read_table(sub.path / "wav.scp") == {"r2": "sox r2.wav -t wav - |"} and validate_data_dir(sub.path) == []


def test_spk2utt_is_not_said_to_be_made_of_a_utt2spk_that_is_missing(tmp_path):
    d = make_dir(tmp_path / "d", utt2spk=None, spk2utt=None)
    assert validate_data_dir(d)[:2] == [f"{d / 'utt2spk'}: required but missing",
                                        f"{d / 'spk2utt'}: required but missing"]


@pytest.mark.parametrize("name,content,said", [
    ("spk2gender", "a x\nb m\n", ": speaker 'a': 'x' is not 'm' or 'f'"),
    ("spk2gender", "a f\n", ": 1 speaker(s) of utt2spk missing, e.g. 'b' (Kaldi's validate_data_dir.sh requires them "
     "all; give each speaker one)"),
    ("spk2gender", "a f\nb m\nz m\n", ": 1 speaker(s) not in utt2spk, e.g. 'z' ('flowaccent fixdir {d}' removes them)"),
    ("spk2gender", "a f\na m\nb m\n", ":2: duplicate key 'a' (line 1 too): keep one of the two lines"),
    ("utt2dur", "a-1 1.5\na-2 -1\nb-1 2\n", ": utterance 'a-2': '-1' is not a duration > 0 (seconds)"),
    ("utt2dur", "a-1 1.5\nb-1 2\n", ": 1 utterance(s) of utt2spk missing, e.g. 'a-2' (Kaldi's validate_data_dir.sh "
     "requires them all; Kaldi's utils/data/get_utt2dur.sh makes it)"),
    ("utt2warp", "a-1 1\na-2 1.6\nb-1 1\n", ": utterance 'a-2': '1.6' is not a warp factor in (0.5, 1.5)"),
    ("utt2lang", "a-1 en\nb-1 zh\n", ": 1 utterance(s) of utt2spk missing, e.g. 'a-2' (Kaldi's validate_data_dir.sh "
     "requires them all; 'flowaccent fixdir {d}' leaves them out)"),
    ("reco2file_and_channel", "a-1 a-1 A\na-2 a-2 C\nb-1 b-1 B\n", ": recording 'a-2': 'a-2 C' is not 'file "
     "channel', the channel A or B"),
    ("vad.scp", "a-1 v.ark:1\na-2 v.ark:9\nb-1 v.ark:20\n", None),
])
def test_kaldis_other_tables_checked_as_kaldi_checks_them(tmp_path, name, content, said):
    r"""Kaldi's validate_data_dir.sh's rules for the tables flowaccent's commands do not read (it said OK of a
    spk2gender of 'x' and unknown speakers); the commands read the dir all the same."""
    d = make_dir(tmp_path / "d", **{name.replace(".", "__"): content})
    assert validate_data_dir(d) == ([f"{d / name}{said.format(d=d)}"] if said else [])
    load_data_dir(d)
    assert validate_data_dir(d, unused=[name]) == []


@pytest.mark.parametrize("name, content, said", [
    ("text", "a-1 <s> THE VAN </s>\na-2 \nb-1 X\n", ":1: holds '<s>', a symbol of the language model that Kaldi's "
     "validate_text.pl refuses in a transcript"),
    ("text", "a-1 X\na-2 \nb-1 #0\n", ":3: holds '#0'"),
    ("text", "a-1 THE\u00a0VAN\na-2 \nb-1 X\n", ":1: holds whitespace '\\xa0', which Kaldi's validate_text.pl"),
    ("wav__scp", "a-1 a.wav\na-2 ~/b.wav\nb-1 c.wav\n", ":2: a path starting with '~', which Kaldi's tools do not "
     "expand (validate_data_dir.sh refuses it); give the whole path"),
    ("utt2score", "a-1 5\na-2 4.5\nb-1 2", ": no line end after its last line, which Kaldi's validate_data_dir.sh "
     "refuses ('invalid newline'); echo >> {path}"),
])
def test_kaldis_rules_for_bytes_and_words(tmp_path, name, content, said):
    r"""What Kaldi's validate_data_dir.sh and validate_text.pl refuse (held against them by a helper): a transcript's
    LM symbols and Unicode spaces, a '~' path, a last line without its line end."""
    d = make_dir(tmp_path / "d", **{name: content})
    path = d / name.replace("__", ".")
    problems = validate_data_dir(d)
    assert len(problems) == 1 and problems[0].startswith(f"{path}{said.format(path=path)}"), problems
    load_data_dir(d)  # the commands read it


def test_tables_read_as_kaldi_reads_them(tmp_path):
    r"""Lines end at \n only (a stray \r or form feed inside a transcript is text), CRLF reads as LF, a BOM and
    bytes that are not UTF-8 are named with their line; a Latin-1 transcript is read (text is never used)."""
    d = make_dir(tmp_path / "d", text="a-1 THE\x0cTHIN\rVAN\r\na-2 \r\nb-1 RED LORRY\r\n")
    assert load_data_dir(d).table("text")["a-1"] == "THE\x0cTHIN\rVAN"
    # validate holds it to Kaldi's rules too: Kaldi's tools read the \r, validate_text.pl refuses a form feed
    assert validate_data_dir(d) == [
        f"{d / 'text'}:1: a Windows line end (\\r\\n): Kaldi's tools take the \\r as part of the line's last field "
        f"(flowaccent's drop it); sed -i 's/\\r$//' {d / 'text'}",
        f"{d / 'text'}:1: holds whitespace '\\x0c', which Kaldi's validate_text.pl refuses (only spaces and tabs)"]
    (d / "text").write_text("a-1 THE THIN\tVAN\na-2 \nb-1 RED LORRY\n")
    assert validate_data_dir(d) == []
    (d / "text").write_bytes(b"a-1 caf\xe9\na-2 \nb-1 X\n")
    assert load_data_dir(d).table("text")["a-1"] == "caf\ufffd"
    assert validate_data_dir(d) == []  # Latin-1: validate_text.pl checks only the lines that decode as UTF-8
    (d / "utt2accent").write_bytes(b"a-1 nat\xefve\na-2 native\nb-1 zh\n")
    assert any("utt2accent:1: not UTF-8 (invalid continuation byte at byte 7)" in p for p in validate_data_dir(d))
    (d / "utt2accent").write_bytes(b"\xef\xbb\xbfa-1 native\na-2 native\nb-1 zh\n")
    assert any("utt2accent:1: starts with a UTF-8 byte-order mark (BOM)" in p for p in validate_data_dir(d))


def test_fields_are_split_at_ascii_whitespace_only_and_lines_at_newlines_only(tmp_path):
    r"""Kaldi splits on the C locale's whitespace: a no-break or ideographic space is part of a key (Python's
    ``split()`` cut it in two, and the half was reported as out of order), U+2028 does not end a line."""
    from flowaccent.data import ScpReader
    from flowaccent.data.kaldi_io import read_scp

    (tmp_path / "t").write_text("spkA\u00a0x v1\nspkB\u3000y v\u2028w\n", encoding="utf-8")
    assert read_table(tmp_path / "t") == {"spkA\u00a0x": "v1", "spkB\u3000y": "v\u2028w"}
    (tmp_path / "feats.scp").write_text("u\u00a0x /nowhere.ark:3\r\nu\u2028y /nowhere.ark:9\n", encoding="utf-8")
    assert [(e.key, e.rxfile) for e in read_scp(tmp_path / "feats.scp")] == [
        ("u\u00a0x", "/nowhere.ark:3"), ("u\u2028y", "/nowhere.ark:9")]
    assert ScpReader(tmp_path / "feats.scp").ids() == ["u\u00a0x", "u\u2028y"]


@pytest.mark.parametrize("value", ["4_5", "\u0661\u0662", "4,5", "nan", "1e400", "0x10", "4 5"])
def test_ratings_must_be_plain_numbers(tmp_path, value):
    d = make_dir(tmp_path / "d", utt2score=f"a-1 5\na-2 {value}\nb-1 2\n")
    assert any("utterance 'a-2': not a number" in p for p in validate_data_dir(d))


def test_speakers_need_not_prefix_utterances_when_sorted_alike(tmp_path):
    one = make_dir(tmp_path / "one", utt2spk="a-1 speakerA\na-2 speakerA\nb-1 speakerA\n",
                   spk2utt="speakerA a-1 a-2 b-1\n")
    assert validate_data_dir(one) == []  # Kaldi's rule is sort -k2, not the prefix


def test_ratings_may_cover_part_of_the_utterances(tmp_path):
    d = make_dir(tmp_path / "d", utt2score="a-2 4.5\n")  # an annotated part of the corpus
    assert validate_data_dir(d) == [] and load_data_dir(d).utt2score() == {"a-2": 4.5}
    d = make_dir(tmp_path / "e", utt2score="a-2 4.5\nc-9 1\n")
    assert any("utt2score: 1 utterance(s) not in utt2spk, e.g. 'c-9'" in p for p in validate_data_dir(d))


def test_write_table_refuses_a_value_with_a_line_break(tmp_path):
    r"""A transcript holding a newline was written as two lines; the reader then refused the table
    ('key 'y' has no value')."""
    with pytest.raises(DataDirError, match=r"the value of 'a' holds a line break \('x\\ny'\); a table's value is one"):
        write_table(tmp_path / "text", {"a": "x\ny"})
    with pytest.raises(DataDirError, match="line break"):
        write_table(tmp_path / "text", {"a": ["x", "y\rz"]})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataDirError, match=f"{tmp_path / 'no' / 'utt2spk'}: no such folder {tmp_path / 'no'}"):
        write_table(tmp_path / "no" / "utt2spk", {"a": "b"})  # FileNotFoundError naming '.utt2spk.tmp.123'


def test_a_subset_into_its_own_source_is_refused(tmp_path):
    r"""``subset_data_dir(d, d, utts)`` cut every table of ``d`` down in place (through a link to it too)."""
    from flowaccent.data import subset_data_dir

    d = make_dir(tmp_path / "d")
    before = {p.name: p.read_text() for p in d.iterdir()}
    (tmp_path / "link").symlink_to(d)
    for target in (d, tmp_path / "link", tmp_path / "d" / ".." / "d"):
        with pytest.raises(DataDirError, match="is the source data dir .*; give the subset a folder of its own"):
            subset_data_dir(d, target, ["a-1"])
    assert {p.name: p.read_text() for p in d.iterdir()} == before


def test_names_given_as_one_string_are_refused(tmp_path):
    from flowaccent.data import subset_data_dir

    d = make_dir(tmp_path / "d")
    with pytest.raises(DataDirError, match=r"utts is a list of names, got the string 'a-1' \(give \['a-1'\]\)"):
        subset_data_dir(d, tmp_path / "sub", "a-1")
    with pytest.raises(DataDirError, match=r"require is a list of names, got the string 'text'"):
        load_data_dir(d, require="text")


def test_tables_hold_each_id_once(tmp_path):
    r"""Every table of a data dir held its own copy of each utterance id, and ``utt2spk`` one speaker string per
    utterance (the four tables ``train`` reads of 200k utterances took 99 MB, now 63 MB)."""
    d = make_dir(tmp_path / "d")
    data = load_data_dir(d)
    utt2spk = data.utt2spk
    for name in ("text", "utt2num_frames", "utt2accent", "utt2score"):
        assert all(a is b for a, b in zip(utt2spk, data.table(name), strict=True)), name
    speakers = {id(s) for s in utt2spk.values()}
    assert speakers == {id(s) for s in data.tables["spk2utt"]}  # a and b: two strings for three utterances
    assert len({id(v) for v in data.table("utt2accent").values()}) == 2
    assert data.table("text")["a-1"] == "THE THIN VAN"  # values that are text are not shared
    alone = read_table(d / "utt2spk")  # read by itself: a dict of its own, the same content
    assert alone == dict(utt2spk) and alone is not utt2spk
