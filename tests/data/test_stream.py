r"""Streaming utterances with their speaker's CMVN stats."""

from __future__ import annotations

import numpy as np
import pytest

from flowaccent.cli.main import main
from flowaccent.data import load_data_dir
from flowaccent.data.stream import iter_utterances
from flowaccent.errors import FeatureError


def test_streams_every_utterance_with_its_speaker_stats(wav_data_dir, monkeypatch):
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 0
    data = load_data_dir(wav_data_dir, require=("feats.scp", "cmvn.scp"))
    with monkeypatch.context() as patched:  # a loaded dir's scps are its tables: not read (nor held) again
        for where in ("flowaccent.data.kaldi_io.read_scp", "flowaccent.data.scp.read_scp"):
            patched.setattr(where, lambda path: pytest.fail(f"{path} read again"))
        utts = list(iter_utterances(data, expected_dim=40))
    assert [u.utt for u in utts] == data.utts
    assert all(u.utt is key for u, key in zip(utts, data.utt2spk))  # the table's strings
    for spk in data.spk2utt:
        feats = np.concatenate([u.feats for u in utts if u.spk == spk])
        stats = next(u.cmvn_stats for u in utts if u.spk == spk)
        assert stats[0, -1] == feats.shape[0]
        np.testing.assert_allclose(stats[0, :-1], feats.astype(np.float64).sum(0), rtol=1e-9)
    with pytest.raises(FeatureError, match="dim 40, expected 120"):
        next(iter_utterances(data, expected_dim=120))
    by_path = list(iter_utterances(str(wav_data_dir)))  # a path is loaded (and checked) first
    assert [u.utt for u in by_path] == data.utts
    assert all(np.array_equal(a.feats, b.feats) for a, b in zip(utts, by_path))
    from flowaccent.errors import DataDirError

    with pytest.raises(DataDirError, match="nowhere: no such directory"):
        next(iter_utterances(wav_data_dir / "nowhere"))
