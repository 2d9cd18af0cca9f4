r"""The checked ark/scp layer: round trips, and every damaged input as a typed error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flowaccent.data import ArkWriter, ScpReader, iter_ark, read_matrix, read_scp
from flowaccent.errors import FeatureError, FlowAccentError, KaldiIOError


@pytest.fixture
def ark(tmp_path, rng):
    r"""An ark + scp of three utterances (5, 7 and 3 frames of dim 4) and the matrices."""
    mats = {f"u{i}": rng.standard_normal((n, 4)).astype(np.float32) for i, n in enumerate([5, 7, 3])}
    with ArkWriter(tmp_path / "feats.ark", tmp_path / "feats.scp") as writer:
        for key, mat in mats.items():
            writer.write(key, mat)
    return tmp_path / "feats.ark", tmp_path / "feats.scp", mats


def offsets(scp):
    return [int(e.rxfile.rsplit(":", 1)[1]) for e in read_scp(scp)]


def test_round_trip_scp_ark_and_pipe(ark):
    ark_path, scp, mats = ark
    for key, mat in ScpReader(scp, expected_dim=4):
        np.testing.assert_array_equal(mat, mats[key])
    assert [k for k, _ in iter_ark(f"ark:{ark_path}")] == list(mats)
    piped = dict(iter_ark(f"ark:cat {ark_path} |", expected_keys=list(mats)))
    np.testing.assert_array_equal(piped["u1"], mats["u1"])
    np.testing.assert_array_equal(read_matrix(f"{ark_path}:{offsets(scp)[1]}[2:3]"), mats["u1"][2:4])
    np.testing.assert_array_equal(read_matrix(f"{ark_path}:{offsets(scp)[1]}[2:6,1:3]"), mats["u1"][2:7, 1:4])
    assert len(dict(iter_ark(f"scp:{scp}"))) == 3
    # a plain path: an ark, or an scp by its name (feats.scp read as an ark was 'not a Kaldi matrix')
    assert str(scp).endswith(".scp") and [k for k, _ in iter_ark(str(scp))] == list(mats)
    assert [k for k, _ in iter_ark(str(ark_path))] == list(mats)
    # a Path, as a notebook passes it: 'argument of type PosixPath is not iterable'
    assert [k for k, _ in iter_ark(Path(scp))] == [k for k, _ in iter_ark(Path(ark_path))] == list(mats)


def test_a_range_past_the_matrix_is_refused(ark):
    r"""numpy cut ``[0:99999]`` and ``[0:6,0:45]`` short to the matrix without a word; Kaldi refuses them."""
    ark_path, scp, _ = ark
    at = f"{ark_path}:{offsets(scp)[1]}"  # u1: 7 x 4
    with pytest.raises(KaldiIOError, match=r"range \[0:99999\] of rows is past the end of the matrix's 7 rows"):
        read_matrix(f"{at}[0:99999]")
    with pytest.raises(KaldiIOError, match=r"range \[0:45\] of columns is past the end of the matrix's 4 columns"):
        read_matrix(f"{at}[0:6,0:45]")
    with pytest.raises(KaldiIOError, match="a range of 3 dimensions for an object of 2"):
        read_matrix(f"{at}[0:1,0:1,0:1]")
    with pytest.raises(KaldiIOError, match=r"^'/nonexistent/a.ark:0': ark '/nonexistent/a.ark' does not exist"):
        read_matrix("/nonexistent/a.ark:0")  # no key given: the rxfile named, not "utterance ''"
    # reversed: an empty matrix, or 'zero-length utterance'; '²': isdigit(), then int()'s traceback
    for reversed_range in ("[5:2]", "[0:6,3:1]", "[0:\u00b2]"):
        with pytest.raises(KaldiIOError, match="bad range .* first <= last"):
            read_matrix(f"{at}{reversed_range}")
    bad = scp.parent / "bad.scp"  # read through an scp: named (it said the utterance alone)
    bad.write_text(f"u1 {at}[5:2]\n")
    with pytest.raises(KaldiIOError, match=f"^{bad}: utterance 'u1': bad range"):
        list(ScpReader(bad))
    from flowaccent.data.kaldi_io import RandomAccessReader

    with pytest.raises(KaldiIOError, match=f"^{bad}: utterance 'u1': bad range"):
        RandomAccessReader(bad)["u1"]


def test_float64_and_compressed_arks(tmp_path, rng):
    import kaldiio

    mat = rng.standard_normal((6, 3))
    with ArkWriter(tmp_path / "d.ark", tmp_path / "d.scp") as writer:
        writer.write("x", mat)
    ((_, got),) = ScpReader(tmp_path / "d.scp")
    assert got.dtype == np.float64 and np.array_equal(got, mat)
    kaldiio.save_ark(str(tmp_path / "c.ark"), {"x": mat.astype(np.float32)}, compression_method=2)
    ((_, comp),) = iter_ark(f"ark:{tmp_path / 'c.ark'}")
    np.testing.assert_allclose(comp, mat, atol=0.015)  # 0.0059 measured


def test_text_arks_written_on_windows_and_a_damaged_one(tmp_path):
    r"""A text ark with CRLF line ends failed with an empty message (kaldiio's bare AssertionError)."""
    import kaldiio

    mats = {"u1": np.arange(6, dtype=np.float32).reshape(2, 3), "u2": np.ones((3, 3), np.float32)}
    kaldiio.save_ark(str(tmp_path / "t.ark"), mats, text=True)
    (tmp_path / "w.ark").write_bytes((tmp_path / "t.ark").read_bytes().replace(b"\n", b"\r\n"))
    for name in ("t.ark", "w.ark"):
        got = dict(iter_ark(f"ark:{tmp_path / name}"))
        assert list(got) == ["u1", "u2"] and all(np.array_equal(got[k], mats[k]) for k in mats)
    (tmp_path / "bad.ark").write_bytes(b"u1 [ 1 2\n 3 4 ]x\n")
    with pytest.raises(KaldiIOError, match=r"bad.ark: utterance 'u1' \(object at byte 3\): corrupt text matrix: "
                                           r"b'x' after its '\]' \(a line's end expected\)"):
        dict(iter_ark(f"ark:{tmp_path / 'bad.ark'}"))
    for body, said in [(b"[ 1 2\n 3 ]\n", "rows of 1 and 2 numbers"), (b"[ 1 x ]\n", "could not convert string "
                       "to float: 'x'"), (b"[ 1 2\n", "the file ends before its '\\]'")]:
        (tmp_path / "bad.ark").write_bytes(b"u1 " + body)
        with pytest.raises(KaldiIOError, match=f"utterance 'u1' .*: corrupt text matrix: {said}"):
            dict(iter_ark(f"ark:{tmp_path / 'bad.ark'}"))


def test_a_text_matrix_of_one_line_is_one_row_and_keeps_its_digits(tmp_path):
    r"""``key [ 1 2 3 ]`` is a 1 x 3 matrix, as Kaldi reads it into a matrix (kaldiio's vector was refused as "a
    vector, not a matrix of features"); text values are float64 as written: cmvn stats' sums lost ~4e-3 in
    float32."""
    (tmp_path / "t.ark").write_bytes(b"u1 [ 1 2 3 ]\nspk [\n 61234.567891 2.5 10\n 1e6 3.25 0 ]\n"
                                      b"z  [\n  0 -1.5 nan\n  inf 2 -3e-2 ]\ne [ ]\n")
    got = dict(iter_ark(f"ark:{tmp_path / 't.ark'}"))
    assert got["u1"].shape == (1, 3) and got["u1"].tolist() == [[1.0, 2.0, 3.0]]
    assert got["spk"].dtype == np.float64 and got["spk"][0, 0] == 61234.567891
    # a first number without '.' made kaldiio read integers, and fail on the '-1.5'
    np.testing.assert_array_equal(got["z"], [[0, -1.5, np.nan], [np.inf, 2, -0.03]])
    assert got["e"].shape == (0, 0)
    assert float(np.float32(61234.567891)) != 61234.567891  # what float32 made of it
    (tmp_path / "feats.scp").write_text(f"u1 {tmp_path / 't.ark'}:3\n")
    ((key, one),) = ScpReader(tmp_path / "feats.scp")
    assert key == "u1" and one.shape == (1, 3)


def truncate(path, size):
    data = path.read_bytes()
    path.write_bytes(data[:size])


def test_truncated_inside_a_matrix(ark):
    ark_path, scp, _ = ark
    truncate(ark_path, offsets(scp)[1] + 30)  # u1's header is 15 bytes, its data 112
    with pytest.raises(KaldiIOError, match=r"feats.scp: utterance 'u1'.*truncated ark"):
        list(ScpReader(scp))
    with pytest.raises(KaldiIOError, match=r"utterance 'u1'.*truncated"):
        list(iter_ark(f"ark:{ark_path}"))


def test_truncated_inside_a_header(ark):
    ark_path, scp, _ = ark
    truncate(ark_path, offsets(scp)[1] + 8)
    with pytest.raises(KaldiIOError, match=r"utterance 'u1'.*truncated ark"):
        list(ScpReader(scp))


def test_truncated_inside_a_key(ark):
    ark_path, scp, _ = ark
    truncate(ark_path, offsets(scp)[1] - 2)  # cuts "u1 " after its first letter
    with pytest.raises(KaldiIOError, match=r"feats.ark"):
        list(iter_ark(f"ark:{ark_path}"))
    with pytest.raises(KaldiIOError, match=r"utterance 'u1'.*past the end"):
        list(ScpReader(scp))


def test_truncated_between_utterances(ark):
    ark_path, scp, mats = ark
    truncate(ark_path, offsets(scp)[2] - 3)  # the ark ends cleanly after u1
    assert len(list(iter_ark(f"ark:{ark_path}"))) == 2  # what kaldiio alone would accept
    with pytest.raises(KaldiIOError, match=r"ends after 2 utterance\(s\); 'u2' .* missing"):
        list(iter_ark(f"ark:{ark_path}", expected_keys=list(mats)))
    with pytest.raises(KaldiIOError, match=r"utterance 'u2'.*past the end"):
        list(ScpReader(scp))


def test_corrupt_type_token_and_binary_marker(ark):
    ark_path, scp, _ = ark
    data = bytearray(ark_path.read_bytes())
    start = offsets(scp)[1]
    data[start + 2 : start + 4] = b"XM"
    ark_path.write_bytes(bytes(data))
    with pytest.raises(KaldiIOError, match=r"utterance 'u1'.*corrupt type token"):
        list(ScpReader(scp))
    data[start + 2 : start + 4] = b"FM"
    data[start : start + 2] = b"\0C"
    ark_path.write_bytes(bytes(data))
    with pytest.raises(KaldiIOError, match=r"utterance 'u1'.*corrupt binary marker"):
        list(ScpReader(scp))


def test_offset_into_the_middle_of_a_matrix(ark):
    ark_path, scp, _ = ark
    scp.write_text(f"u0 {ark_path}:40\n")
    with pytest.raises(KaldiIOError, match=r"utterance 'u0'"):
        list(ScpReader(scp))


def test_failing_pipes(ark, tmp_path):
    ark_path, scp, mats = ark
    with pytest.raises(KaldiIOError, match=r"pipe 'false' failed \(exit status 1"):
        list(iter_ark("ark:false |"))
    # Output that looks complete but a non-zero exit: still an error.
    with pytest.raises(KaldiIOError, match="exit status 3: broken"):
        list(iter_ark(f"ark:cat {ark_path}; echo broken >&2; exit 3 |"))
    (tmp_path / "pipe.scp").write_text(f"u0 cat {tmp_path}/missing.ark |\n")
    with pytest.raises(KaldiIOError, match=r"pipe.scp: utterance 'u0': pipe .* failed"):
        list(ScpReader(tmp_path / "pipe.scp"))


def test_keys_with_whitespace(tmp_path):
    import kaldiio

    with pytest.raises(KaldiIOError, match="whitespace"), ArkWriter(tmp_path / "a.ark") as writer:
        writer.write("spk 1", np.zeros((2, 2), np.float32))
    assert list(tmp_path.iterdir()) == []
    kaldiio.save_ark(str(tmp_path / "b.ark"), {"spk 1": np.zeros((2, 2), np.float32)})
    with pytest.raises(KaldiIOError, match="b.ark"):
        list(iter_ark(f"ark:{tmp_path / 'b.ark'}"))


def test_missing_files(tmp_path):
    with pytest.raises(KaldiIOError, match="no such file"):
        ScpReader(tmp_path / "feats.scp")
    (tmp_path / "feats.scp").write_text(f"u0 {tmp_path}/gone.ark:3\n")
    with pytest.raises(KaldiIOError, match=r"utterance 'u0': ark '.*gone.ark' does not exist"):
        list(ScpReader(tmp_path / "feats.scp"))
    with pytest.raises(KaldiIOError) as error:
        list(iter_ark(f"ark:{tmp_path}/gone.ark"))
    assert str(error.value) == f"ark '{tmp_path}/gone.ark' does not exist"  # named once (it was twice)
    (tmp_path / "cmvn.scp").write_text("spk0 data/gone.ark:3\n")  # a speaker's stats; a path from the cwd
    with pytest.raises(KaldiIOError, match=r"speaker 'spk0': ark 'data/gone.ark' does not exist \(relative to the "
                                           r"current folder, /"):
        list(ScpReader(tmp_path / "cmvn.scp"))


def test_bad_scp_lines(tmp_path):
    (tmp_path / "a.scp").write_text("u0\n")
    with pytest.raises(KaldiIOError, match=r"a.scp:1: expected 'key rxfile'"):
        read_scp(tmp_path / "a.scp")
    (tmp_path / "a.scp").write_text("u0 x.ark:1\nu0 x.ark:9\n")
    with pytest.raises(KaldiIOError, match=r"a.scp:2: duplicate key 'u0'"):
        read_scp(tmp_path / "a.scp")


def test_wrong_dims_frames_and_values(ark, tmp_path):
    _, scp, _ = ark
    with pytest.raises(FeatureError, match=r"utterance 'u0': features have dim 4, expected 40"):
        list(ScpReader(scp, expected_dim=40))
    with pytest.raises(FeatureError, match=r"utterance 'u1': 7 frames, but utt2num_frames says 8"):
        list(ScpReader(scp, utt2num_frames={"u0": 5, "u1": 8, "u2": 3}))
    bad = np.ones((4, 2), np.float32)
    bad[2, 1] = np.nan
    with ArkWriter(tmp_path / "n.ark", tmp_path / "n.scp") as writer:
        writer.write("n", bad)
    reader = iter(ScpReader(tmp_path / "n.scp"))
    with pytest.raises(FeatureError, match="utterance 'n': NaN or inf .* frame 2"):
        next(reader)
    key, mat = next(iter(ScpReader(tmp_path / "n.scp", allow_nonfinite=True)))
    assert key == "n" and np.isnan(mat).any()


def test_zero_length_and_vectors_are_refused(tmp_path):
    with ArkWriter(tmp_path / "z.ark", tmp_path / "z.scp") as writer:
        writer.write("z", np.zeros((0, 2), np.float32))
        writer.write("v", np.zeros(2, np.float32))
    entries = read_scp(tmp_path / "z.scp")
    (tmp_path / "one.scp").write_text(f"z {entries[0].rxfile}\n")
    with pytest.raises(FeatureError, match="zero-length"):
        list(ScpReader(tmp_path / "one.scp"))
    (tmp_path / "one.scp").write_text(f"v {entries[1].rxfile}\n")
    with pytest.raises(FeatureError, match=r"expected a matrix \(T, D\)"):
        list(ScpReader(tmp_path / "one.scp"))


def test_writer_refuses_integer_arrays_and_leaves_nothing_on_error(tmp_path):
    with pytest.raises(KaldiIOError, match="int64"), ArkWriter(tmp_path / "i.ark", tmp_path / "i.scp") as writer:
        writer.write("a", np.zeros((2, 2), np.float32))
        writer.write("b", np.zeros((2, 2), np.int64))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError), ArkWriter(tmp_path / "e.ark", tmp_path / "e.scp") as writer:
        writer.write("a", np.zeros((2, 2), np.float32))
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_every_error_is_a_flowaccent_error():
    assert issubclass(KaldiIOError, FlowAccentError) and issubclass(FeatureError, FlowAccentError)


def test_readers_on_a_table_read_already(ark):
    r"""Given the scp's ``{key: rxfile}`` (a data dir's ``feats.scp`` table), the readers read the same matrices
    without reading the scp again."""
    from flowaccent.data.kaldi_io import RandomAccessReader

    _, scp, mats = ark
    rxfiles = {e.key: e.rxfile for e in read_scp(scp)}
    scp.unlink()  # not read
    reader = ScpReader(scp, 4, rxfiles=rxfiles)
    assert len(reader) == 3 and reader.ids() == ["u0", "u1", "u2"]
    assert [(k, m.tolist()) for k, m in reader] == [(k, m.tolist()) for k, m in mats.items()]
    with RandomAccessReader(scp, 4, rxfiles=rxfiles) as reader:
        assert reader.rxfiles is rxfiles and "u2" in reader and "u9" not in reader
        for key in ["u2", "u0", "u1"]:
            np.testing.assert_array_equal(reader[key], mats[key])
        with pytest.raises(KaldiIOError, match="'u9': not in the scp"):
            reader["u9"]


def test_location_without_a_range_is_the_patterns(rng):
    r"""``ScpEntry.location`` splits an rxfile without a range at its last ``:digits`` (5x as fast as the
    pattern, per utterance read): the same answer as the pattern on random rxfiles of the characters that
    matter (``\d`` takes any Unicode digit, as ``int`` does)."""
    from flowaccent.data.scp import _RXFILE, ScpEntry

    alphabet = list(":0123456789a/.[]," + "\u0663\u00b2 ")  # an Arabic-Indic 3; a superscript 2 is no digit
    for _ in range(20000):
        rxfile = "".join(rng.choice(alphabet, size=rng.integers(0, 12)))
        if rxfile.endswith("]"):
            continue
        match = _RXFILE.match(rxfile)
        expected = (match["path"], int(match["offset"]) if match["offset"] is not None else None, None)
        assert ScpEntry("k", rxfile).location() == expected, rxfile
