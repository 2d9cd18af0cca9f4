r"""A tiny DNF flow with speaker CMVN on 8-bin "filterbanks", saved as an experiment, and its data dirs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from flowaccent.data import ArkWriter, write_spk2utt, write_table
from flowaccent.features import FeaturePipelineConfig
from flowaccent.features.cmvn import compute_cmvn_stats
from flowaccent.flows.realnvp import ModelConfig
from flowaccent.model import build_model
from flowaccent.prior import PriorConfig

BINS = 8


def write_fbank_dir(path: Path, prefix: str, seed: int, bins: int = BINS, frames: int = 30) -> Path:
    r"""A data dir of 2 speakers x 2 utterances of smooth log spectra ``(frames, bins)`` with
    feats.scp, cmvn.scp, utt2spk, spk2utt, utt2num_frames."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    utt2spk, feats = {}, {}
    for s in range(2):
        for u in range(2):
            spk = f"{prefix}{s}"
            utt = f"{spk}-{u:03d}"
            t = np.arange(frames)[:, None]
            k = np.arange(bins)[None]
            x = 8 + 3 * np.sin(k / 2 + t / 4 + seed) + 0.5 * rng.standard_normal((frames, bins))
            feats[utt], utt2spk[utt] = x.astype(np.float32), spk
    with ArkWriter(path / "feats.ark", path / "feats.scp") as writer:
        for utt in sorted(feats):
            writer.write(utt, feats[utt])
    with ArkWriter(path / "cmvn.ark", path / "cmvn.scp") as writer:
        for spk in sorted(set(utt2spk.values())):
            writer.write(spk, sum(compute_cmvn_stats(feats[u]) for u in feats if utt2spk[u] == spk))
    write_table(path / "utt2spk", utt2spk)
    write_spk2utt(path / "spk2utt", utt2spk)
    write_table(path / "utt2num_frames", {u: frames for u in utt2spk})
    return path


def tiny_model(classes=("native", "zh"), cond_dim: int = 4, data: list[Path] = ()):
    r"""An untrained 2-block DNF flow over 8-bin fbank + deltas (16-d), standardised on ``data``."""
    from flowaccent.data import load_data_dir
    from flowaccent.data.stream import iter_utterances

    torch.manual_seed(0)
    features = FeaturePipelineConfig(cmvn="spk", deltas=1, standardize=True)
    model = build_model(features, BINS, ModelConfig(num_blocks=2, hidden=16), PriorConfig(cond_dim=cond_dim), classes)
    utterances = [u for d in data for u in iter_utterances(load_data_dir(d))]
    model.pipeline.fit((u.feats, u.cmvn_stats) for u in utterances)
    frames = torch.cat([model.pipeline.unstandardized(torch.as_tensor(u.feats), u.cmvn_stats) for u in utterances])
    labels = torch.arange(len(frames)) % len(classes)
    model.initialize(frames, labels)
    with torch.no_grad():  # not the identity: perturb the zero-initialised last layers
        for name, param in model.named_parameters():
            if "transform" in name:
                param.add_(0.1 * torch.randn_like(param))
    return model.eval()


@pytest.fixture(scope="module")
def flow_exp(tmp_path_factory):
    r"""``(root, exp, native_dir, zh_dir)``: ``exp/final.pt`` is a tiny DNF flow (classes native, zh)."""
    root = tmp_path_factory.mktemp("blurmask")
    native = write_fbank_dir(root / "native", "n", seed=1)
    zh = write_fbank_dir(root / "zh", "z", seed=2)
    model = tiny_model(data=[native, zh])
    (root / "exp").mkdir()
    torch.save(model.to_checkpoint(), root / "exp" / "final.pt")
    return root, root / "exp", native, zh
