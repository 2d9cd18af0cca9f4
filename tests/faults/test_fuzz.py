r"""Fuzzing the parsers with random bytes: they end, and only with the toolkit's own error."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowaccent.data import ArkWriter, iter_ark, load_data_dir, read_scp, read_table
from flowaccent.data.kaldi_object import read_object
from flowaccent.errors import FlowAccentError

from ..conftest import fails_after

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True)
def no_hang():
    r"""Every fuzz test must end within 120 s (a hang fails instead of blocking CI)."""
    with fails_after(120, "parser hung"):
        yield


def valid_ark() -> bytes:
    buf = io.BytesIO()
    from kaldiio.matio import write_array

    for key, shape in (("a", (3, 4)), ("b", (2, 4))):
        buf.write(key.encode() + b" ")
        write_array(buf, np.ones(shape, np.float32))
    return buf.getvalue()


ARK = valid_ark()


def mutations() -> st.SearchStrategy[bytes]:
    r"""Random bytes, and valid arks with random cuts, flips and insertions (the likely damage)."""
    cut = st.integers(0, len(ARK)).map(lambda n: ARK[:n])
    flip = st.tuples(st.integers(0, len(ARK) - 1), st.integers(0, 255)).map(
        lambda t: ARK[: t[0]] + bytes([t[1]]) + ARK[t[0] + 1 :]
    )
    insert = st.tuples(st.integers(0, len(ARK)), st.binary(max_size=16)).map(lambda t: ARK[: t[0]] + t[1] + ARK[t[0] :])
    return st.one_of(st.binary(max_size=400), cut, flip, insert)


@FUZZ
@given(data=mutations())
def test_ark_reader(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("ark") / "x.ark"
    path.write_bytes(data)
    try:
        for _, array in iter_ark(f"ark:{path}"):
            assert isinstance(array, np.ndarray)
    except FlowAccentError:
        pass


@FUZZ
@given(data=mutations(), offset=st.integers(0, 200))
def test_object_reader_at_any_offset(data, offset):
    fd = io.BytesIO(data)
    fd.seek(min(offset, len(data)))
    try:
        read_object(fd, "fuzz")
    except FlowAccentError:
        pass


@FUZZ
@given(text=st.text(max_size=300), raw=st.binary(max_size=100))
def test_table_and_scp_parsers(tmp_path_factory, text, raw):
    root = tmp_path_factory.mktemp("tables")
    for content in (text.encode("utf-8", "surrogatepass"), raw):
        (root / "t").write_bytes(content)
        for parse in (read_table, read_scp):
            try:
                parse(root / "t")
            except FlowAccentError:
                pass


@FUZZ
@given(utt2spk=st.binary(max_size=120), spk2utt=st.binary(max_size=120), feats=st.binary(max_size=120))
def test_data_dir_loader(tmp_path_factory, utt2spk, spk2utt, feats):
    root = tmp_path_factory.mktemp("dd")
    (root / "utt2spk").write_bytes(utt2spk)
    (root / "spk2utt").write_bytes(spk2utt)
    (root / "feats.scp").write_bytes(feats)
    try:
        load_data_dir(root)
    except FlowAccentError:
        pass


def test_a_huge_announced_matrix_is_refused_before_reading(tmp_path):
    with ArkWriter(tmp_path / "a.ark") as writer:
        writer.write("u", np.ones((2, 2), np.float32))
    data = bytearray((tmp_path / "a.ark").read_bytes())
    data[8:12] = (2**31 - 1).to_bytes(4, "little")  # rows: after "u ", "\0B", "FM " and the \x04 marker
    (tmp_path / "a.ark").write_bytes(bytes(data))
    with pytest.raises(FlowAccentError, match=r"header says FM 2147483647 x 2 .* only 16 bytes remain"):
        list(iter_ark(f"ark:{tmp_path / 'a.ark'}"))
    with pytest.raises(FlowAccentError, match="more than a stream may announce"):
        list(iter_ark(f"ark:cat {tmp_path / 'a.ark'} |"))


def test_pickles_are_never_loaded(tmp_path):
    import pickle

    (tmp_path / "p.ark").write_bytes(b"u PKL" + pickle.dumps({"x": 1}))
    with pytest.raises(FlowAccentError, match="not a Kaldi matrix"):
        list(iter_ark(f"ark:{tmp_path / 'p.ark'}"))
