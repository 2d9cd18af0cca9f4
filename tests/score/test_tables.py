r"""``spk_scores.tsv`` from the utterance table: the sums by speaker, in any number of speakers."""

from __future__ import annotations

import time

import numpy as np
import pytest

from flowaccent.score.tables import read_tsv, write_speaker_tsv


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
