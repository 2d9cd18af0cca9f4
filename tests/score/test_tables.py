r"""``spk_scores.tsv`` from the utterance table: the sums by speaker, in any number of speakers; the tables read
back."""

from __future__ import annotations

import re
import time
import tracemalloc

import numpy as np
import pytest

from flowaccent.score import tables
from flowaccent.score.tables import COLUMNS, read_tsv, write_speaker_tsv, write_tsv


def _table(rng, utts: int, speakers: list[str]) -> dict:
    spk = [speakers[i] for i in rng.integers(0, len(speakers), utts)]
    score = rng.uniform(1, 5, utts)
    score[rng.random(utts) < 0.4] = np.nan  # utt2score may rate some utterances only
    return {"utt": [f"u{i}" for i in range(utts)], "spk": spk, "num_frames": rng.integers(1, 900, utts).astype(float),
            "log_ll": rng.normal(size=utts), "score": score, "llr": rng.normal(size=utts)}


def test_speaker_means_are_the_masked_ones(tmp_path, rng):
    r"""Each speaker's row against the sums over a mask of its utterances (the definition), speakers in C order
    (code points beyond ASCII, one speaker with no rated utterance)."""
    speakers = ["b", "a", "\u00e9", "\U0001f600", "A", "z\u3000y", "lone"]
    table = _table(rng, 300, speakers)
    table["spk"][-1], table["score"][-1] = "unrated", np.nan
    write_speaker_tsv(tmp_path / "spk.tsv", table)
    got = read_tsv(tmp_path / "spk.tsv")
    present = sorted(set(table["spk"]), key=str.encode)
    assert got["spk"] == present and list(got) == ["spk", "num_utts", "num_frames", "log_ll", "score", "llr"]
    spk, frames = np.asarray(table["spk"], dtype=object), table["num_frames"]
    for i, name in enumerate(present):
        mine = spk == name
        assert got["num_utts"][i] == mine.sum() and got["num_frames"][i] == frames[mine].sum()
        for column in ("log_ll", "llr"):
            want = (table[column][mine] * frames[mine]).sum() / frames[mine].sum()
            assert got[column][i] == pytest.approx(want, abs=1e-6)
        rated = table["score"][mine][np.isfinite(table["score"][mine])]
        assert np.isnan(got["score"][i]) if not len(rated) else got["score"][i] == pytest.approx(rated.mean(), abs=1e-6)
    assert np.isnan(got["score"][present.index("unrated")])


def test_each_utterance_its_own_speaker(tmp_path, rng):
    r"""Kaldi's ``utt2spk`` where the speakers are not known maps each utterance to itself: a mask per speaker
    took time in speakers x utterances (50 s at 100k, ad hoc); by speaker in one pass, 0.5 s."""
    n = 100_000
    table = _table(rng, n, ["x"])
    table["spk"] = table["utt"]
    start = time.perf_counter()
    write_speaker_tsv(tmp_path / "spk.tsv", table)
    assert time.perf_counter() - start < 10
    got = read_tsv(tmp_path / "spk.tsv")
    assert len(got["spk"]) == n and (got["num_utts"] == 1).all()
    order = sorted(range(n), key=lambda i: table["utt"][i].encode())
    np.testing.assert_allclose(got["log_ll"], table["log_ll"][order], atol=1e-6)


def _utt_table(rng, utts: int) -> dict:
    return {"utt": [f"spk{i % 97:03d}-u{i:07d}" for i in range(utts)], "spk": [f"spk{i % 97:03d}" for i in range(utts)],
            "num_frames": rng.integers(1, 900, utts).tolist(),
            **{c: rng.normal(size=utts).tolist() for c in ("log_ll", "log_p", "log_det", "nll")}}


def test_read_tsv_over_its_blocks_of_rows(tmp_path, rng, monkeypatch):
    r"""The table read a few rows at a time equals what was written, and a damaged row in a later block is named
    by its own line."""
    monkeypatch.setattr(tables, "_ROWS", 7)
    rows = _utt_table(rng, 7 * 3 + 4)
    path = tmp_path / "utt_scores.tsv"
    write_tsv(path, rows, {rows["utt"][3]: 4.5})
    got = read_tsv(path)
    assert got["utt"] == rows["utt"] and got["spk"] == rows["spk"] and list(got) == [*COLUMNS, "score"]
    for column in COLUMNS[2:]:
        np.testing.assert_allclose(got[column], rows[column], atol=1e-6)
    assert got["score"][3] == 4.5 and np.isnan(np.delete(got["score"], 3)).all()
    lines = path.read_text().split("\n")
    for damage, said in ((lambda f: f[:-1], "line 20 has 7 fields, the header 8"),
                         (lambda f: f[:4] + ["x1"] + f[5:], "line 20: log_p 'x1' is not a number")):
        path.write_text("\n".join(lines[:19] + ["\t".join(damage(lines[19].split("\t")))] + lines[20:]))
        with pytest.raises(ValueError, match=re.escape(f"{path}: {said}")):
            read_tsv(path)
    path.write_text("\n".join([lines[0] + "\tlog_ll"] + [line + "\t0" for line in lines[1:-1]]) + "\n")
    with pytest.raises(ValueError, match="the header names log_ll twice"):
        read_tsv(path)


def test_read_tsv_holds_no_row_of_fields(tmp_path, rng):
    r"""Every row split into fields at once (~9 strings a row) peaked at 4x the table it read (100 MB beside it
    at 200k utterances, the peak of ``score``'s summary); a block at a time, with one string per speaker."""
    path = tmp_path / "utt_scores.tsv"
    write_tsv(path, _utt_table(rng, 50_000))
    tracemalloc.start()
    try:
        table = read_tsv(path)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(table["utt"]) == 50_000 and peak < 2.5 * held, (held, peak)


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_read_tsv_of_a_table_an_editor_saved(tmp_path, rng, newline):
    r"""Lines ending in ``\r\n`` or ``\r`` read as the table written; an empty file or one of blank lines is one
    error."""
    rows = _utt_table(rng, 5)
    path = tmp_path / "utt_scores.tsv"
    write_tsv(path, rows)
    path.write_bytes(path.read_bytes().replace(b"\n", newline.encode()) + newline.encode())
    got = read_tsv(path)
    assert list(got) == list(COLUMNS) and got["utt"] == rows["utt"]
    np.testing.assert_allclose(got["nll"], rows["nll"], atol=1e-6)
    for text in ("", f"{newline} {newline}"):
        path.write_text(text)
        with pytest.raises(ValueError, match=re.escape(f"{path}: empty (no header)")):
            read_tsv(path)
