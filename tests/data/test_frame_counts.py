r"""``frame_counts`` (Kaldi's ``feat-to-len``): the frames every reader would read, from binary matrices' headers,
and the damaged inputs the readers refuse refused here too."""

from __future__ import annotations

import kaldiio
import numpy as np
import pytest

from flowaccent.data import ArkWriter, read_scp
from flowaccent.data.kaldi_io import frame_counts, read_matrix
from flowaccent.errors import FeatureError, KaldiIOError


@pytest.fixture
def scp(tmp_path, rng):
    r"""An scp of every kind of matrix and rxfile: float and double, compressed three ways, text, ranges of rows and
    of rows and columns, a file of one matrix (no offset), and a ``cmd |``; 2 to 13 frames each."""
    mats = {f"u{i}": rng.standard_normal((n, 4)).astype(np.float32) for i, n in enumerate([5, 7, 3, 2])}
    lines = []
    with ArkWriter(tmp_path / "f.ark", tmp_path / "f.scp") as writer:
        for key, mat in mats.items():
            writer.write(key, mat)
        writer.write("double", rng.standard_normal((6, 4)))
    lines += [f"{e.key} {e.rxfile}" for e in read_scp(tmp_path / "f.scp")]
    for method, token in [(2, "cm"), (1, "cm2"), (5, "cm3")]:
        kaldiio.save_ark(str(tmp_path / f"{token}.ark"), {token: rng.standard_normal((8 + method, 4)).astype("f4")},
                         scp=str(tmp_path / f"{token}.scp"), compression_method=method)
        lines += (tmp_path / f"{token}.scp").read_text().splitlines()
    kaldiio.save_ark(str(tmp_path / "t.ark"), {"text": mats["u1"]}, scp=str(tmp_path / "t.scp"), text=True)
    lines += (tmp_path / "t.scp").read_text().splitlines()
    u1 = dict(line.split(" ", 1) for line in lines)["u1"]
    lines += [f"rows {u1}[2:5]", f"rows_cols {u1}[1:6,0:1]", f"all_rows {u1}[:,1:2]"]
    kaldiio.save_mat(str(tmp_path / "one.mat"), mats["u2"])
    lines += [f"one {tmp_path / 'one.mat'}", f"one_again {tmp_path / 'one.mat'}", f"piped cat {tmp_path / 'one.mat'} |"]
    (tmp_path / "all.scp").write_text("".join(f"{line}\n" for line in lines))
    return tmp_path / "all.scp"


def test_the_frames_the_readers_read(scp):
    expected = {e.key: read_matrix(e.rxfile, e.key).shape[0] for e in read_scp(scp)}
    assert expected["cm3"] == 13 and expected["rows"] == 4 and expected["all_rows"] == 7 and expected["one_again"] == 3
    got = frame_counts(scp)
    assert got == expected and list(got) == list(expected)  # the scp's order
    assert frame_counts(scp, ["rows", "u0", "nowhere"]) == {"u0": 5, "rows": 4}
    rxfiles = {e.key: e.rxfile for e in read_scp(scp)}
    scp.unlink()  # given the table read already, the scp is not read again
    assert frame_counts(scp, rxfiles=rxfiles) == expected


def test_a_binary_matrix_is_counted_from_its_header(tmp_path, monkeypatch):
    r"""Its data is not read (Kaldi's feat-to-len reads it whole)."""
    from flowaccent.data import kaldi_object

    with ArkWriter(tmp_path / "f.ark", tmp_path / "f.scp") as writer:
        writer.write("a", np.zeros((9, 4), np.float32))
    monkeypatch.setattr(kaldi_object, "_exactly", lambda *args: pytest.fail("read the data"))
    assert frame_counts(tmp_path / "f.scp") == {"a": 9}


def write(tmp_path, mats):
    with ArkWriter(tmp_path / "d.ark", tmp_path / "d.scp") as writer:
        for key, mat in mats.items():
            writer.write(key, mat)
    return tmp_path / "d.ark", tmp_path / "d.scp", {e.key: e.rxfile for e in read_scp(tmp_path / "d.scp")}


def test_what_the_readers_refuse_is_refused(tmp_path):
    ark, scp, at = write(tmp_path, {"a": np.ones((3, 2), np.float32), "b": np.ones((7, 2), np.float32),
                                    "z": np.zeros((0, 2), np.float32), "v": np.zeros(2, np.float32)})
    cases = {
        f"{at['b']}[0:7]": (KaldiIOError, r"range \[0:7\] of rows is past the end of the matrix's 7 rows"),
        at["z"]: (FeatureError, "zero-length utterance"),
        f"{at['b']}[3:2]": (KaldiIOError, "bad range"),
        at["v"]: (KaldiIOError, r"a vector \(FV\), not a matrix of features"),
        f"{ark}:99999": (KaldiIOError, "offset 99999 is past the end"),
        f"{tmp_path / 'gone.ark'}:0": (KaldiIOError, "gone.ark' does not exist"),
        f"{ark}:{at['b'].split(':')[-1]}x": (KaldiIOError, "does not exist"),
        "false |": (KaldiIOError, "pipe 'false' failed"),
    }
    for rxfile, (error, message) in cases.items():
        scp.write_text(f"a {at['a']}\nbad {rxfile}\n")
        with pytest.raises(error, match=f"^{scp}: utterance 'bad'.*{message}"):
            frame_counts(scp)
        assert frame_counts(scp, ["a"]) == {"a": 3}  # an utterance not asked for is not read
    data = ark.read_bytes()
    offset = int(at["b"].split(":")[-1])
    ark.write_bytes(data[: offset + 15 + 55])  # b's header is 15 bytes, its data 56
    scp.write_text(f"b {at['b']}\n")
    with pytest.raises(KaldiIOError, match=r"'b' in .*d.ark' \(object at byte \d+\): truncated ark: the header says "
                                           r"FM 7 x 2 \(56 bytes\) but only 55 bytes remain"):
        frame_counts(scp)
    ark.write_bytes(data[: offset + 8])  # inside b's header
    with pytest.raises(KaldiIOError, match="'b' in .*truncated ark: the file ends inside an object header"):
        frame_counts(scp)
