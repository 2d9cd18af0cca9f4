r"""Scoring: identities in every row, summary recomputed from the files, statistics, bad input."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import kurtosis, norm, pearsonr, skew, spearmanr

from flowaccent.cli.main import main
from flowaccent.data import ScpReader, load_data_dir, read_table, write_table
from flowaccent.runtime import bf16_in_hardware
from flowaccent.score.metrics import (
    auc_interval,
    auc_variance,
    correlations,
    detection_auc,
    moments,
    pearson_interval,
    pearson_interval_over_groups,
    unit_gaussian_log_p,
)
from flowaccent.score.run import score_corpora
from flowaccent.score.scorer import Reservoir, ScoreConfig, utterance_means
from flowaccent.score.tables import read_tsv
from flowaccent.train.checkpoint import load_model


@pytest.fixture(scope="module")
def scored(trained):
    root, exp = trained
    out = root / "scores"
    config = ScoreConfig(batch_frames=100, max_latents=500)
    summary = score_corpora(exp, out, [str(root / n) for n in ("native", "zh", "ja")], baseline="gmm", config=config)
    return root, exp, out, summary


def test_the_svr_leaves_numpys_global_generator_alone():
    r"""libsvm drew its seed from ``np.random``: a notebook's stream moved at every scoring of rated sets. The fits
    do not depend on it (the same correlations after another global seed)."""
    from flowaccent.score.regress import cross_validated, transfer

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((30, 4)), rng.uniform(1, 5, 30)
    groups = [f"s{i // 3}" for i in range(30)]
    results = []
    for seed in (5, 6):
        np.random.seed(seed)
        state = np.random.get_state()
        results.append((cross_validated(x, y, groups), transfer(x, y, x[::-1], y[::-1])))
        after = np.random.get_state()
        assert after[2] == state[2] and np.array_equal(after[1], state[1])
    assert results[0] == results[1]


def test_a_short_write_of_numpy_on_a_full_disk_names_its_file(trained, tmp_path, monkeypatch, capsys):
    r"""numpy's short write ('211680 requested and 70624 written': an OSError without errno or file name) on a full
    disk was a traceback from score."""
    import flowaccent.score.scorer as scorer

    root, exp = trained
    monkeypatch.setattr(scorer.np, "save", lambda *args: (_ for _ in ()).throw(OSError("211680 requested and 70624 "
                                                                                         "written")))
    data = root / "zh"
    assert main(["score", "--exp", str(exp), "--out", str(tmp_path / "o"), str(data), "--quiet"]) == 1
    assert capsys.readouterr().err == (f"flowaccent score: error: {tmp_path / 'o' / 'zh' / 'latents.npy'}: a short "
                                       "write (211680 requested and 70624 written): is the disk full?\n")


def test_every_row_has_the_identities(scored):
    _, _, out, _ = scored
    for name in ("native", "zh", "ja"):
        table = read_tsv(out / name / "utt_scores.tsv")
        np.testing.assert_allclose(table["log_ll"], table["log_p"] + table["log_det"], atol=2e-6)
        np.testing.assert_allclose(table["nll"], -table["log_ll"], atol=1e-6)
        frames = dict(ScpReader(out / name / "frame_scores.scp"))
        for i, utt in enumerate(table["utt"]):
            per_frame = frames[utt]
            assert per_frame.shape == (table["num_frames"][i], 2)
            assert per_frame.sum(1).mean() == pytest.approx(table["log_ll"][i], abs=1e-4)
        assert ("score" in table) == (name == "ja") and "llr" in table and "gmm_log_ll" in table


def test_each_column_is_the_models_own_score_of_its_frames(trained, tmp_path):
    r"""Each row's ``log_p``, ``log_det`` and ``llr`` against the model's own per-frame scores of that utterance (its
    prior's class densities written out for ``llr``: native's over the others', or zh's over native's with
    ``native_class`` zh), ``frame_scores.ark``'s two columns in order, ``utt_latent_means.npy`` the mean latents,
    ``gmm_log_ll`` the saved GMM's density of the standardised frames written out with scipy plus the
    standardisation's log-determinant, and the summary's set means weighted by frames, on utterances of uneven
    lengths: the sets above have one length, where utterance means are the frame-weighted ones, and only sums were
    checked (``log_p`` and ``log_det`` swapped, the GMM without its standardisation, passed every test)."""
    from ..train.test_frames import write_uneven_dir

    root, exp = trained
    lengths = [1, 3, 50, 7, 120, 12, 2, 33]
    data = write_uneven_dir(tmp_path / "uneven", lengths, dim=6, seed=4)
    summary = score_corpora(exp, tmp_path / "s", [str(data)], baseline="gmm",
                            config=ScoreConfig(batch_frames=64, max_latents=500))
    score_corpora(exp, tmp_path / "zh", [str(data)], config=ScoreConfig(native_class="zh"), quiet=True)
    model = load_model(exp / "final.pt")
    table = read_tsv(tmp_path / "s" / "uneven" / "utt_scores.tsv")
    zh_llr = read_tsv(tmp_path / "zh" / "uneven" / "utt_scores.tsv")["llr"]
    latent_means = np.load(tmp_path / "s" / "uneven" / "utt_latent_means.npy")
    gmm = np.load(exp / "baseline_gmm.npz")
    mean, std = model.pipeline.mean.numpy(), model.pipeline.std.numpy()
    frames = dict(ScpReader(tmp_path / "s" / "uneven" / "frame_scores.scp"))
    native, other = model.class_names.index("native"), model.class_names.index("zh")
    every = {"log_p": [], "log_det": [], "gmm_log_ll": []}
    with torch.no_grad():
        for i, (utt, feats) in enumerate(ScpReader(data / "feats.scp")):
            assert table["utt"][i] == utt and table["num_frames"][i] == len(feats)
            out = model.score_utterance(feats)
            per_class = model.prior.class_log_probs(out.z).double()
            for key, value in (("log_p", out.log_p), ("log_det", out.log_det),
                               ("llr", per_class[:, native] - per_class[:, other])):
                assert table[key][i] == pytest.approx(float(value.double().mean()), abs=2e-5), (utt, key)
            assert zh_llr[i] == pytest.approx(-table["llr"][i], abs=2e-5)
            np.testing.assert_allclose(latent_means[i], out.z.double().mean(0).numpy(), atol=1e-5)
            np.testing.assert_allclose(frames[utt], torch.stack([out.log_p, out.log_det], 1).numpy(), atol=1e-4)
            every["log_p"].append(out.log_p.double())
            every["log_det"].append(out.log_det.double())
            x = (model.pipeline.unstandardized(torch.as_tensor(feats)).double().numpy() - mean) / std
            components = [np.log(w) + norm.logpdf(x, m, np.sqrt(v)).sum(1)
                          for w, m, v in zip(gmm["weights"], gmm["means"], gmm["variances"])]
            gmm_ll = logsumexp(np.stack(components, 1), axis=1) - np.log(std).sum()
            assert table["gmm_log_ll"][i] == pytest.approx(gmm_ll.mean(), abs=1e-5)
            every["gmm_log_ll"].append(torch.from_numpy(gmm_ll))
    for key, values in every.items():
        assert summary["sets"]["uneven"][key] == pytest.approx(float(torch.cat(values).mean()), abs=1e-5)


def test_summary_is_recomputed_from_the_files(scored):
    _, _, out, summary = scored
    assert json.loads((out / "summary.json").read_text())["sets"].keys() == summary["sets"].keys()
    for name, values in summary["sets"].items():
        table = read_tsv(out / name / "utt_scores.tsv")
        w = table["num_frames"]
        assert values["num_frames"] == w.sum() and values["num_utts"] == len(w)
        for key in ("log_ll", "log_p", "log_det", "nll"):
            assert values[key] == pytest.approx((table[key] * w).sum() / w.sum(), rel=1e-12)
        assert values["log_p_reference"] == pytest.approx(-1.4189385 * 6)
        latents = np.load(out / name / "latents.npy").astype(np.float64)  # moments are taken in float64
        assert len(latents) == min(500, w.sum()) == values["num_latents"]
        assert values["skew"] == pytest.approx(skew(latents.ravel()))
        assert values["kurtosis"] == pytest.approx(kurtosis(latents.ravel(), fisher=True))
        assert values["skew_c"] == pytest.approx(skew(latents[:, :4].ravel()))
        assert values["kurtosis_r"] == pytest.approx(kurtosis(latents[:, 4:].ravel()))
    # the regressions from the utterances' mean latents (not recoverable from latents.npy, a sample of frames)
    from flowaccent.score import regress

    table = read_tsv(out / "ja" / "utt_scores.tsv")
    rated = np.isfinite(table["score"])
    means = np.load(out / "ja" / "utt_latent_means.npy")
    assert means.shape == (len(table["utt"]), 6)
    speakers = [s for s, kept in zip(table["spk"], rated) if kept]
    assert len(set(speakers)) < len(speakers)  # the folds split speakers, not utterances
    assert summary["regression"]["ja"]["svr_cv"] == regress.cross_validated(means[rated], table["score"][rated],
                                                                            speakers)


def test_speaker_table_sums_the_utterance_table(scored):
    _, _, out, _ = scored
    for name in ("native", "ja"):
        utts = read_tsv(out / name / "utt_scores.tsv")
        spks = read_tsv(out / name / "spk_scores.tsv")
        scores = [c for c in utts if c not in ("utt", "spk", "num_frames")]
        assert list(spks) == ["spk", "num_utts", "num_frames", *scores]
        assert spks["spk"] == sorted(set(utts["spk"])) and len(spks["spk"]) > 1
        assert spks["num_frames"].sum() == utts["num_frames"].sum()
        for i, spk in enumerate(spks["spk"]):
            mine = np.asarray(utts["spk"]) == spk
            w = utts["num_frames"][mine]
            assert spks["num_utts"][i] == mine.sum() and spks["num_frames"][i] == w.sum()
            for key in ("log_ll", "llr", "gmm_log_ll"):  # over the speaker's frames
                assert spks[key][i] == pytest.approx((utts[key][mine] * w).sum() / w.sum(), abs=2e-6)
            if name == "ja":  # ratings: over the speaker's utterances
                assert spks["score"][i] == pytest.approx(utts["score"][mine].mean(), abs=2e-6)


def test_odd_ids_an_out_holding_the_data_dirs_and_the_baselines_own_seed(trained, tmp_path, capsys):
    r"""Ids holding U+2028 or U+0085 (Kaldi splits lines at \\n alone) were a traceback after every set was
    scored ('line 2 has 1 fields'); ``--out`` the folder of the data dirs wrote the scores in among their Kaldi
    files (exit 0); ``--seed`` (the latent sample's) refitted the GMM baseline; a GMM of more components than
    frames was scikit-learn's traceback. ``--seed`` does draw another latent sample."""
    import shutil

    from flowaccent.train.trainer import train

    from ..train.conftest import small_config, write_gaussian_dir

    root, trained_exp = trained
    exp = tmp_path / "exp"
    shutil.copytree(trained_exp, exp)
    odd = write_gaussian_dir(tmp_path / "odd", np.full(6, 1.0), np.eye(6), 8, 10, seed=4, prefix="x\u2028y\u0085")
    args = ["score", "--exp", str(exp), "--quiet", "--baseline", "gmm", "--max-latents", "30"]  # of 80 frames
    assert main([*args, "--out", str(tmp_path / "o"), str(odd)]) == 0
    table = read_tsv(tmp_path / "o" / "odd" / "utt_scores.tsv")
    assert len(table["utt"]) == 8 and table["utt"][0].startswith("x\u2028y\u0085") and len(table["gmm_log_ll"]) == 8
    first = json.loads((tmp_path / "o" / "summary.json").read_text())["baseline"]
    assert main([*args, "--out", str(tmp_path / "o1"), str(odd), "--seed", "1"]) == 0
    again = json.loads((tmp_path / "o1" / "summary.json").read_text())["baseline"]
    assert again["loaded"] and np.array_equal(read_tsv(tmp_path / "o1" / "odd" / "utt_scores.tsv")["gmm_log_ll"],
                                              table["gmm_log_ll"])
    assert first["frames"] == again["frames"]
    samples = [np.load(tmp_path / o / "odd" / "latents.npy") for o in ("o", "o1")]
    assert samples[0].shape == samples[1].shape == (30, 6) and not np.array_equal(*samples)
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path), str(odd)]) == 1
    assert f"set 'odd' would be written into {odd}, a Kaldi data dir" in capsys.readouterr().err
    assert sorted(p.name for p in odd.iterdir()) == ["feats.ark", "feats.scp", "spk2utt", "utt2num_frames", "utt2spk"]
    assert not (tmp_path / ".out.lock").exists()  # a refused run's lock: not left in a folder it wrote nothing into
    # a set named as a model's folder, or as another run's output: its files went in among final.pt, config.yaml
    for name, what in (("exp", "an experiment dir of 'flowaccent train'"),
                       ("o", "the output folder of another command (its summary.json)")):
        before = sorted((tmp_path / name).rglob("*"))
        assert main([*args, "--out", str(tmp_path), f"{name}={odd}"]) == 1
        assert capsys.readouterr().err.endswith(f"set '{name}' would be written into {tmp_path / name}, {what}; give "
                                                "--out a folder of its own, or the set another name (NAME=DATA_DIR)\n")
        assert sorted((tmp_path / name).rglob("*")) == before
    few = write_gaussian_dir(tmp_path / "few", np.zeros(6), np.eye(6), 3, 5, seed=5)
    config = small_config(epochs=1).with_overrides({"train": {"valid_fraction": 0.0, "batch_size": 8}})
    train(config, tmp_path / "tiny", [str(few)], quiet=True)
    capsys.readouterr()
    assert main(["score", "--exp", str(tmp_path / "tiny"), "--out", str(tmp_path / "o2"), str(odd), "--quiet",
                 "--baseline", "gmm"]) == 1
    assert "--baseline gmm: 15 frames of the model's training data (its validation utterances left out) for a GMM " \
        "of 32 components: too few" in capsys.readouterr().err


def test_detection_and_rating_use_the_tables(scored):
    _, _, out, summary = scored
    ref = read_tsv(out / "native" / "utt_scores.tsv")
    by_utterance = []
    for name in ("zh", "ja"):
        other = read_tsv(out / name / "utt_scores.tsv")
        d = summary["detection"][name]
        assert d["score"] == "log_ll" and d["auc"] == pytest.approx(detection_auc(ref["log_ll"], other["log_ll"]))
        assert d["by_score"]["llr"] == pytest.approx(detection_auc(ref["llr"], other["llr"]))
        assert set(d["ci95"]) == set(d["by_score"]) >= {"log_ll", "llr"}
        for k, (low, high) in d["ci95"].items():
            assert [low, high] == pytest.approx(auc_interval(ref[k], other[k], ref["spk"], other["spk"]))  # speakers
            assert low <= d["by_score"][k] <= high
            by_utterance.append([low, high] != pytest.approx(auc_interval(ref[k], other[k])))
    assert any(by_utterance)  # not DeLong's over utterances (where an AUC is 0 or 1, both are 0 wide)
    assert summary["detection"]["zh"]["by_score"]["llr"] > 0.9  # the DNF classes tell the two apart
    ja = read_tsv(out / "ja" / "utt_scores.tsv")
    rating = summary["rating"]["ja"]["log_ll"]
    rated = np.isfinite(ja["score"])
    assert rating["pearson_ci95"] == pytest.approx(pearson_interval_over_groups(  # over the speakers
        ja["log_ll"][rated], ja["score"][rated], np.asarray(ja["spk"])[rated]))
    assert rating["pearson_ci95"] != pytest.approx(pearson_interval(rating["pearson"], rating["n"]))
    assert rating["pearson"] == pytest.approx(pearsonr(ja["log_ll"], ja["score"])[0])
    assert rating["spearman"] == pytest.approx(spearmanr(ja["log_ll"], ja["score"])[0])
    assert {"svr_cv", "svr_cv_shuffled"} <= set(summary["regression"]["ja"])


def test_scores_do_not_depend_on_batching(trained, scored, tmp_path):
    root, exp, out, _ = scored
    score_corpora(exp, tmp_path / "s", [str(root / "zh")], config=ScoreConfig(batch_frames=100_000, max_latents=500))
    a, b = read_tsv(out / "zh" / "utt_scores.tsv"), read_tsv(tmp_path / "s" / "zh" / "utt_scores.tsv")
    np.testing.assert_allclose(a["log_ll"], b["log_ll"], atol=1e-5)
    assert a["utt"] == b["utt"] and (a["num_frames"] == b["num_frames"]).all()
    # the latent sample takes the same frames whatever the batches
    same = [(tmp_path / "s" / "zh" / "latent_utts.txt").read_text(), (out / "zh" / "latent_utts.txt").read_text()]
    assert same[0] == same[1]
    np.testing.assert_allclose(np.load(out / "zh" / "latents.npy"), np.load(tmp_path / "s" / "zh" / "latents.npy"),
                               atol=1e-4)


def test_an_utterance_longer_than_a_batch_goes_through_the_flow_in_parts(trained, scored, tmp_path, monkeypatch):
    r"""One long utterance went through the flow whole: memory in proportion to it (2.6 GB for 200k frames with a
    440-d model of hidden 512; 1.3 GB now, its features and latents). The parts give the same scores."""
    import flowaccent.score.scorer as scorer

    root, exp, out, _ = scored
    seen = []
    part = scorer._scored_part
    monkeypatch.setattr(scorer, "_scored_part", lambda model, x, *args: seen.append(len(x)) or part(model, x, *args))
    score_corpora(exp, tmp_path / "s", [str(root / "zh")], config=ScoreConfig(batch_frames=7), quiet=True)
    assert max(seen) == 7 and sum(seen) == 40 * 40  # 40 utterances of 40 frames
    a, b = read_tsv(out / "zh" / "utt_scores.tsv"), read_tsv(tmp_path / "s" / "zh" / "utt_scores.tsv")
    for column in ("log_ll", "log_p", "log_det", "llr"):
        np.testing.assert_allclose(a[column], b[column], atol=1e-5)
    frames = [dict(ScpReader(d / "zh" / "frame_scores.scp")) for d in (out, tmp_path / "s")]
    assert all(np.allclose(frames[0][u], frames[1][u], atol=1e-4) for u in frames[0])


def test_the_baseline_fit_is_kept_beside_the_model(trained, scored, tmp_path, monkeypatch):
    import os
    from pathlib import Path

    from flowaccent.data import load_data_dir
    from flowaccent.data.kaldi_io import ScpEntry, read_scp
    from flowaccent.score import baseline
    from flowaccent.train.frames import held_out

    root, exp, out, summary = scored
    # fitted on the flow's training utterances: not on those it held out for validation (it saw them all)
    fraction = summary["baseline"]["valid_fraction"]
    counts = {u: n for d in ("native", "zh") for u, n in load_data_dir(root / d).utt2num_frames().items()}
    used = sum(n for u, n in counts.items() if not held_out(u, fraction))
    assert fraction > 0 and summary["baseline"]["frames"] == used < sum(counts.values())
    assert summary["baseline"]["file"] == str(exp / "baseline_gmm.npz") and (exp / "baseline_gmm.npz").exists()
    again = score_corpora(exp, tmp_path / "s", [str(root / "zh")], baseline="gmm", config=ScoreConfig(max_latents=500))
    assert again["baseline"]["loaded"] and again["baseline"]["frames"] == summary["baseline"]["frames"]
    np.testing.assert_array_equal(read_tsv(out / "zh" / "utt_scores.tsv")["gmm_log_ll"],
                                  read_tsv(tmp_path / "s" / "zh" / "utt_scores.tsv")["gmm_log_ll"])
    # loaded without reading the training data (its frames were sampled from all of it to make the fit's key, each
    # run); an archive written since: sampled again, and the same frames' fit loaded
    drawn, fits, sample, fit = [], [], baseline.sample_frames, baseline.fit_gmm
    monkeypatch.setattr(baseline, "sample_frames", lambda *a: drawn.append(a) or sample(*a))
    monkeypatch.setattr(baseline, "fit_gmm", lambda *a: fits.append(a) or fit(*a))
    third = score_corpora(exp, tmp_path / "s3", [str(root / "zh")], baseline="gmm", config=ScoreConfig(max_latents=500))
    assert third["baseline"] == again["baseline"] and not drawn and not fits
    ark = Path(ScpEntry("", read_scp(root / "native" / "feats.scp")[0].rxfile).location()[0])
    stat = ark.stat()
    try:
        os.utime(ark, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        fourth = score_corpora(exp, tmp_path / "s4", [str(root / "zh")], baseline="gmm",
                               config=ScoreConfig(max_latents=500))
        assert fourth["baseline"] == again["baseline"] and len(drawn) == 1 and not fits
    finally:
        os.utime(ark, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    # without config.yaml the checkpoint's own config says which utterances the flow held out
    import shutil

    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("final.pt", "data.txt", "classes.txt"):
        shutil.copy(exp / name, bare / name)
    alone = score_corpora(bare, tmp_path / "b", [str(root / "zh")], baseline="gmm", config=ScoreConfig(max_latents=500))
    assert alone["baseline"]["valid_fraction"] == fraction and alone["baseline"]["frames"] == used


def test_the_latent_sample_is_uniform_and_does_not_depend_on_how_the_stream_is_cut():
    rows = np.arange(1000, dtype=np.float32)[:, None]
    tags = np.array([f"u{i // 10}" for i in range(1000)], dtype=object)
    counts = np.zeros(1000)
    for seed in range(300):
        whole = Reservoir(100, 1, seed)
        whole.add(rows, tags)
        cut, start = Reservoir(100, 1, seed), 0
        for size in np.random.default_rng(seed).integers(1, 60, size=1000):
            cut.add(rows[start : start + int(size)], tags[start : start + int(size)])
            start += int(size)
        assert all(np.array_equal(a, b) for a, b in zip(whole.sample(), cut.sample()))
        sample, sample_tags = whole.sample()
        assert len(sample) == 100 and len(set(sample[:, 0])) == 100
        assert all(t == f"u{int(r) // 10}" for r, t in zip(sample[:, 0], sample_tags))
        counts[sample[:, 0].astype(int)] += 1
    # each row is kept with probability 0.1: 30 of 300 draws, binomial sd 5.2
    deciles = counts.reshape(10, 100).sum(1) / 300  # rows kept per decile of the stream, expected 10
    assert np.all(np.abs(deciles - 10) < 1.0), deciles
    # each row's count binomial(300, 0.1): variance 27 (the same rows every draw: 8100; each row 30 times: 0)
    assert 22 < counts.var() < 32, counts.var()
    one_tag = Reservoir(5, 1, 0)
    one_tag.add(rows[:3], "a")
    one_tag.add(rows[3:8], "b")
    kept, kept_tags = one_tag.sample()
    assert [t for r, t in zip(kept[:, 0], kept_tags) if r < 3] == ["a"] * int((kept[:, 0] < 3).sum())
    assert set(kept_tags[kept[:, 0] >= 3]) <= {"b"} and len(kept) == 5


def test_the_latent_sample_takes_memory_for_the_rows_it_keeps_not_for_max_latents():
    r"""``--max-latents 100000000`` reserved 45 GB before the first row (a traceback); 3e7 took 500 MB for 1,764
    frames. The arrays grow with the rows, and the sample is the same as with the room reserved."""
    huge = Reservoir(10**9, 120, 0)
    assert huge.rows.nbytes < 10**7
    rows = np.arange(30000, dtype=np.float32)[:, None]
    grown, start = Reservoir(20000, 1, 3), 0
    for size in np.random.default_rng(0).integers(1, 3000, size=100):
        grown.add(rows[start : start + int(size)], "u")
        start += int(size)
    whole = Reservoir(20000, 1, 3)
    whole.add(rows[:start], "u")
    assert start > 20000 and np.array_equal(grown.sample()[0], whole.sample()[0]) and len(whole.sample()[0]) == 20000
    everything = Reservoir(10**9, 1, 0)
    everything.add(rows[:9000], "u")
    assert np.array_equal(everything.sample()[0], rows[:9000])


def test_utterance_means_of_runs_of_values():
    rng = np.random.default_rng(0)
    counts = np.array([1, 5, 2, 7])
    values = rng.standard_normal(counts.sum()).astype(np.float32)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    want = [values[a : a + n].astype(np.float64).mean() for a, n in zip(starts, counts)]
    np.testing.assert_allclose(utterance_means(values, starts, counts), want, rtol=1e-12)


def test_metrics_on_crafted_inputs():
    assert detection_auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert detection_auc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    assert detection_auc(np.array([1.0, 3.0]), np.array([2.0, 2.0])) == 0.5
    assert detection_auc(np.array([1.0]), np.array([1.0])) == 0.5  # ties count half
    c = correlations(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 4.0, 9.0, 16.0]))
    assert c["spearman"] == pytest.approx(1.0) and c["pearson"] == pytest.approx(0.984374, abs=1e-6)
    assert np.isnan(correlations(np.ones(5), np.arange(5.0))["pearson"])
    m = moments(np.array([[0.0, 0.0], [0.0, 3.0]]))
    assert m["skew"] == pytest.approx(1.1547005) and m["kurtosis"] == pytest.approx(-0.6666667)
    assert all(np.isnan(v) for v in moments(np.full((4, 3), 2.5)).values())  # no spread
    from scipy.stats import kurtosis, skew

    rng = np.random.default_rng(0)
    for values in (rng.standard_normal((500, 7)), rng.exponential(size=(300, 4)), 1e3 + rng.standard_t(5, (200, 3))):
        m = moments(values)
        assert m["skew"] == pytest.approx(skew(values.ravel()), rel=1e-9)
        assert m["kurtosis"] == pytest.approx(kurtosis(values.ravel()), rel=1e-9)
    assert unit_gaussian_log_p(120) == pytest.approx(-170.27, abs=0.01)
    assert unit_gaussian_log_p(440) == pytest.approx(-624.33, abs=0.01)


def test_cli_and_bad_input(trained, tmp_path, capsys):
    root, exp = trained
    assert main(["score", "--exp", str(exp), "--out", str(tmp_path / "s"), f"mine={root / 'ja'}", f"zh={root / 'zh'}",
                 "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "score: mine: 30 utts, LogLL" in err
    zh = json.loads((tmp_path / "s" / "summary.json").read_text())["detection"]["zh"]
    said = re.search(r"score: zh: 40 utts, LogLL .*, AUC vs mine (\d\.\d{3}) \[(\d\.\d\d), (\d\.\d\d)\]\n", err)
    assert said.groups() == (f"{zh['auc']:.3f}", *(f"{v:.2f}" for v in zh["ci95"]["log_ll"]))
    from ..train.conftest import write_gaussian_dir

    wrong = write_gaussian_dir(tmp_path / "wrong", np.zeros(5), np.eye(5), 3, 10, seed=0)
    assert main(["score", "--exp", str(exp), "--out", str(tmp_path / "w"), str(wrong), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(r"wrong/feats.scp: utterance '.*': features have dim 5, expected 6", err[0])
    assert not (tmp_path / "w" / "summary.json").exists()
    assert main(["report", "--exp", str(exp), "--scores", str(tmp_path / "w")]) == 1  # the folder it made: removed
    assert f"{tmp_path / 'w'}: no such folder (--scores: the --out of 'flowaccent score')" in capsys.readouterr().err
    # a set of other features after one that is right: refused before any is scored (it was, then the error came)
    assert main(["score", "--exp", str(exp), "--out", str(tmp_path / "w"), f"mine={root / 'ja'}", str(wrong)]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (f"flowaccent score: error: set wrong: {wrong / 'feats.scp'}: "
                                                        "utterance 's0-0000': features have dim 5, expected 6")
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("args, message", [
    (["summary.json={ja}"], "flowaccent score: error: 'summary.json' cannot name a set (a file the command writes)"),
    (["a/b={ja}"], "flowaccent score: error: 'a/b' cannot name a set (ASCII letters, digits"),
    (["zhé={ja}"], "flowaccent score: error: 'zhé' cannot name a set (ASCII letters, digits, _ . + -, not "
                  "first .); give another NAME"),
    (["..={ja}"], "flowaccent score: error: '..' cannot name a set"),
    (["figures={ja}"], "flowaccent score: error: 'figures' cannot name a set (a file the command writes)"),
    (["report.html={ja}"], "flowaccent score: error: 'report.html' cannot name a set"),  # report then: Is a directory
    (["{ja}", "{ja}"], "flowaccent score: error: two data dirs are named 'ja'; name them with NAME=DATA_DIR"),
    (["a={ja}", "a={ja}"], "flowaccent score: error: two data dirs are named 'a'; give them different NAMEs"),
    (["{ja}", "--out", "{file}"], "flowaccent score: error: --out {file} is a file; give a folder"),
    # each said 'File exists'
    (["{ja}", "--out", "{file}/o"], "flowaccent score: error: --out {file}/o: {file} is a file, not a folder"),
    (["{ja}", "--out", "{link}"], "flowaccent score: error: --out {link} is a broken symbolic link (to "
     "{file}.gone); remove it or give another folder"),
    (["{ja}", "--max-latents", "0"], "flowaccent score: error: max_latents (--max-latents) must be >= 1, got 0"),
    (["{ja}", "--batch-frames", "-5"], "flowaccent score: error: batch_frames (--batch-frames) must be >= 1, got -5"),
    (["{ja}", "--native-class", "fr"], "flowaccent score: error: class 'fr' is not one of the model's classes"),
])
def test_bad_names_outputs_and_sizes_are_one_line_errors(trained, tmp_path, capsys, args, message):
    r"""A set name that is not a plain folder name or is a file scoring writes, a file where the output folder
    goes, and sizes below one: a one-line error, status 1, before anything is written."""
    root, exp = trained
    (tmp_path / "afile").write_text("")
    (tmp_path / "link").symlink_to(tmp_path / "afile.gone")
    fill = {"ja": root / "ja", "file": tmp_path / "afile", "link": tmp_path / "link"}
    argv = [a.format(**fill) for a in args]
    out = ["--out", str(tmp_path / "o")] if "--out" not in argv else []
    assert main(["score", "--exp", str(exp), *out, *argv, "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message.format(**fill) in err[0]
    assert not (tmp_path / "o").exists() and (tmp_path / "afile").read_text() == ""


def test_precision_and_device_options(trained, scored, tmp_path, capsys, monkeypatch):
    r"""``--precision bf16`` scores within bf16's rounding of fp32 (and says when this CPU emulates it);
    tf32 and an absent GPU are clear errors."""
    root, exp, out, _ = scored
    args = ["score", "--exp", str(exp), str(root / "zh"), "--quiet", "--batch-frames", "100", "--max-latents", "500"]
    assert main([*args, "--out", str(tmp_path / "cpu"), "--device", "cpu"]) == 0
    assert main([*args, "--out", str(tmp_path / "bf16"), "--precision", "bf16"]) == 0
    fp32 = read_tsv(out / "zh" / "utt_scores.tsv")
    np.testing.assert_allclose(
        read_tsv(tmp_path / "cpu" / "zh" / "utt_scores.tsv")["log_ll"], fp32["log_ll"], atol=1e-5
    )
    bf16 = read_tsv(tmp_path / "bf16" / "zh" / "utt_scores.tsv")["log_ll"]
    assert 0 < np.abs(bf16 - fp32["log_ll"]).max() < 0.1
    assert ("emulated" in capsys.readouterr().err) == (not bf16_in_hardware(torch.device("cpu")))
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert main([*args, "--out", str(tmp_path / "bf16_emulated"), "--precision", "bf16"]) == 0
    err = capsys.readouterr().err
    assert err.count("score: precision bf16 is emulated on this CPU (no AMX or AVX512-BF16) and slower than fp32") == 1
    assert main([*args, "--out", str(tmp_path / "tf32"), "--precision", "tf32", "--device", "cpu"]) == 1
    assert "score.precision (--precision) tf32 is a CUDA matmul mode" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main([*args, "--out", str(tmp_path / "gpu"), "--device", "cuda"]) == 1
        assert "score.device (--device) is cuda but no GPU is visible" in capsys.readouterr().err


def test_prefetching_batches_scores_the_same(trained, scored, tmp_path, capsys):
    r"""``--prefetch 0`` (features made in the scoring loop) writes the same files as the default
    (made ahead in a thread)."""
    root, exp, _, _ = scored
    args = ["score", "--exp", str(exp), str(root / "zh"), "--quiet", "--batch-frames", "100", "--max-latents", "500"]
    for depth in ("0", "2"):
        assert main([*args, "--out", str(tmp_path / depth), "--prefetch", depth]) == 0
    for name in ("utt_scores.tsv", "frame_scores.ark", "latents.npy", "latent_utts.txt", "utt_latent_means.npy"):
        assert (tmp_path / "0" / "zh" / name).read_bytes() == (tmp_path / "2" / "zh" / name).read_bytes(), name
    assert main([*args, "--out", str(tmp_path / "bad"), "--prefetch", "-2"]) == 1
    assert "flowaccent score: error: prefetch (--prefetch) must be >= 0, or -1 for auto, got -2" in \
        capsys.readouterr().err


def test_svr_cv_against_its_shuffled_chance_level():
    r"""On a small set the cross-validated SVR correlation is strongly negative with no signal at all, and the
    shuffled ratings show it; with a signal it stands well above that level."""
    from flowaccent.score.regress import cross_validated, shuffled

    rng = np.random.default_rng(0)
    noise = shuffled(rng.normal(size=(6, 20)), rng.uniform(1, 5, 6), permutations=10)
    assert noise["n"] == 6 and noise["permutations"] == 10 and noise["pearson"] < -0.5
    x = rng.normal(size=(60, 20))
    ratings = 3 + x[:, 0] + 0.3 * rng.normal(size=60)
    assert cross_validated(x, ratings)["pearson"] > shuffled(x, ratings)["pearson"] + 0.5


def test_svr_cv_interval_is_of_its_predictions_over_the_speakers():
    r"""``pearson_ci95`` of the cross-validated SVR: the bootstrap of speakers of the predictions' r, as a score's
    with the rating; Fisher's without speakers; none from the shuffles, which only the mean r is kept of."""
    from sklearn.model_selection import cross_val_predict

    from flowaccent.score.metrics import pearson_interval, pearson_interval_over_groups
    from flowaccent.score.regress import _speaker_folds, _svr, cross_validated, shuffled, transfer

    rng = np.random.default_rng(4)
    speakers = [f"s{i}" for i in np.repeat(np.arange(12), 4)]
    x = rng.normal(size=(48, 6))
    ratings = 3 + x[:, 0] + 0.5 * rng.normal(size=48)
    predicted = cross_val_predict(_svr(), x, ratings, cv=_speaker_folds(speakers, 5, 0))
    got = cross_validated(x, ratings, speakers)
    assert got["pearson_ci95"] == pearson_interval_over_groups(predicted, ratings, speakers)
    assert got["pearson_ci95"][0] < got["pearson"] < got["pearson_ci95"][1]
    alone = cross_validated(x, ratings)
    assert alone["pearson_ci95"] == pearson_interval(alone["pearson"], 48)
    assert "pearson_ci95" not in cross_validated(x, ratings, speakers, interval=False)
    assert "pearson_ci95" not in shuffled(x, ratings, speakers, permutations=2)
    fitted = _svr().fit(x[:24], ratings[:24]).predict(x[24:])
    assert transfer(x[:24], ratings[:24], x[24:], ratings[24:], speakers[24:])["pearson_ci95"] == \
        pearson_interval_over_groups(fitted, ratings[24:], speakers[24:])
    assert np.isnan(cross_validated(x, np.full(48, 3.0), speakers)["pearson_ci95"]).all()


def test_svr_folds_split_speakers_so_a_speakers_signature_does_not_predict_its_own_rating():
    r"""10 speakers x 5 utterances, each speaker a random latent offset and a random rating: nothing carries
    over to an unseen speaker. Folds over utterances put a speaker on both sides and found r ~ 0.99; folds over
    speakers find no more than their chance level (negative at this size)."""
    from flowaccent.score.regress import _speaker_folds, cross_validated, shuffled

    rng = np.random.default_rng(1)
    grouped, ungrouped = [], []
    for _ in range(5):
        x = np.repeat(rng.normal(size=(10, 40)), 5, 0) + 0.5 * rng.normal(size=(50, 40))
        ratings = np.repeat(rng.uniform(1, 5, 10), 5) + 0.1 * rng.normal(size=50)
        speakers = [f"s{i}" for i in np.repeat(np.arange(10), 5)]
        grouped.append(cross_validated(x, ratings, speakers)["pearson"])
        ungrouped.append(cross_validated(x, ratings)["pearson"])
    assert np.mean(ungrouped) > 0.9 and np.mean(grouped) < 0.2
    assert shuffled(x, ratings, speakers, permutations=5)["pearson"] < 0.2
    from flowaccent.score.regress import _speaker_shuffle

    blocks = [[0, 1, 2], [3, 4], [5]]  # speakers a, b, c
    for seed in range(6):  # each speaker takes one other's ratings (cycled to its size), each speaker's once
        by_speaker = _speaker_shuffle(np.arange(6.0), ["a", "a", "a", "b", "b", "c"], np.random.default_rng(seed))
        sources = [next(i for i, s in enumerate(blocks) if np.array_equal(by_speaker[t], np.resize(s, len(t))))
                   for t in blocks]
        assert sorted(sources) == [0, 1, 2]
    one_each = np.random.default_rng(3)  # one utterance per speaker: a plain permutation, as before
    assert np.array_equal(_speaker_shuffle(np.arange(9.0), range(9), one_each),
                          np.random.default_rng(3).permutation(np.arange(9.0)))
    for train, test in _speaker_folds(speakers, 5, 0):
        assert not {speakers[i] for i in train} & {speakers[i] for i in test}
    assert len(_speaker_folds(["a", "a", "b", "b", "c"], 5, 0)) == 3  # fewer speakers than folds: one fold each
    assert _speaker_folds(["a", "a"], 5, 0) == []
    assert np.isnan(cross_validated(x[:2], ratings[:2], ["a", "a"])["pearson"])
    one_each = [f"u{i}" for i in range(50)]  # one utterance per speaker: the folds of utterances themselves
    assert cross_validated(x, ratings, one_each, interval=False) == cross_validated(x, ratings, interval=False)


def test_the_chance_level_shuffles_whole_speakers_when_given_them(monkeypatch):
    r""":func:`shuffled` with speakers hands the folds ratings shuffled by speaker: ratings constant within each
    speaker stay so (shuffled by utterance, a speaker's utterances took several speakers' ratings)."""
    from flowaccent.score import regress

    rng = np.random.default_rng(2)
    speakers = [f"s{i}" for i in np.repeat(np.arange(8), 4)]
    ratings = np.repeat(rng.permutation(8) + 1.0, 4)
    seen = []
    monkeypatch.setattr(regress, "cross_validated", lambda x, y, *args, **kwargs: seen.append(y) or
                        {"pearson": 0.0, "spearman": 0.0, "n": len(y)})
    regress.shuffled(rng.normal(size=(32, 3)), ratings, speakers, permutations=5)
    assert len(seen) == 5 and any(not np.array_equal(y, ratings) for y in seen)
    for y in seen:
        assert sorted(y) == sorted(ratings) and all(np.ptp(y[i:i + 4]) == 0 for i in range(0, 32, 4))


def test_undefined_correlations_still_count_the_utterances():
    from flowaccent.score.regress import cross_validated, transfer

    x = np.random.default_rng(0).normal(size=(20, 4))
    got = transfer(x[:2], np.array([1.0, 2.0]), x, np.arange(20.0))  # fitted on 2 utterances: none
    assert np.isnan(got["pearson"]) and got["n"] == 20  # was 0, though the target set has 20
    assert cross_validated(x, np.full(20, 3.0))["n"] == 20


def test_cmvn_units_of_few_frames_are_warned_about(trained, capsys, tmp_path):
    from flowaccent.data import ArkWriter, ScpReader, load_data_dir, subset_data_dir
    from flowaccent.features.cmvn_stats import compute_cmvn_stats
    from flowaccent.score.checks import warn_short_cmvn_units

    root, _ = trained
    one = subset_data_dir(root / "ja", tmp_path / "one", ["j1-0001"]).path
    feats = dict(ScpReader(root / "ja" / "feats.scp"))
    with ArkWriter(tmp_path / "cmvn_one.ark", one / "cmvn.scp") as writer:  # j1's stats of all its utterances, kept
        writer.write("j1", sum(compute_cmvn_stats(x) for u, x in feats.items() if u.startswith("j1-")))
    warn_short_cmvn_units({"one": load_data_dir(one)}, "spk")
    assert capsys.readouterr().err == ""  # it warned: the set's 30 frames, not all of j1's it is normalised on
    with ArkWriter(tmp_path / "cmvn_one.ark", one / "cmvn.scp") as writer:  # stats of the subset itself
        writer.write("j1", compute_cmvn_stats(feats["j1-0001"]))
    warn_short_cmvn_units({"one": load_data_dir(one)}, "spk")
    assert "set one: 1 speaker(s) of under 100 frames (e.g. 'j1': 30); the model's speaker CMVN" in \
        capsys.readouterr().err
    sets = {"ja": load_data_dir(root / "ja")}  # 30 utterances of 30 frames, 4 speakers
    warn_short_cmvn_units(sets, "spk")
    warn_short_cmvn_units(sets, "none")
    assert capsys.readouterr().err == ""
    warn_short_cmvn_units(sets, "utt")
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["score: warning: set ja: 30 utterance(s) of under 100 frames (e.g. 'j0-0000': 30); the model's "
                   "utterance CMVN normalises them on so few frames that their scores are not comparable (1 frame: "
                   "every feature 0)"]
    import shutil
    from types import SimpleNamespace

    shutil.copytree(tmp_path / "one", tmp_path / "no_counts")  # utt2num_frames is optional: counted when read
    (tmp_path / "no_counts" / "utt2num_frames").unlink()
    sets = {"no_counts": load_data_dir(tmp_path / "no_counts")}
    warn_short_cmvn_units(sets, "utt")  # before scoring: nothing to count yet
    assert capsys.readouterr().err == ""
    warn_short_cmvn_units(sets, "utt", {"no_counts": SimpleNamespace(utts=["j1-0001"], num_frames=np.array([30]))})
    assert "set no_counts: 1 utterance(s) of under 100 frames (e.g. 'j1-0001': 30)" in capsys.readouterr().err
    warn_short_cmvn_units({"one": load_data_dir(tmp_path / "one")}, "utt", {})  # counted before already
    warn_short_cmvn_units({"one": load_data_dir(tmp_path / "one")}, "spk", {})  # speakers: counted before only
    assert capsys.readouterr().err == ""


def test_a_rerun_with_fewer_sets_names_the_old_ones(trained, tmp_path, capsys):
    root, exp = trained
    out = str(tmp_path / "s")
    assert main(["score", "--exp", str(exp), "--out", out, str(root / "native"), str(root / "zh"), "--quiet"]) == 0
    assert main(["score", "--exp", str(exp), "--out", out, str(root / "native"), "--quiet"]) == 0
    assert f"score: warning: {out} holds folders of sets this run does not make: zh (an earlier run's" in \
        capsys.readouterr().err
    assert list(json.loads((tmp_path / "s" / "summary.json").read_text())["sets"]) == ["native"]


def test_an_svr_across_sets_is_fitted_on_the_first_and_tested_on_the_second(trained, tmp_path):
    r"""``a->b`` in the summary's regressions: an SVR fitted on set a's rated utterances' mean latents and applied
    to set b's (its ``n`` counts b's), for both orders of two rated sets of different sizes."""
    import shutil

    from flowaccent.score import regress

    root, exp = trained
    zh = shutil.copytree(root / "zh", tmp_path / "zh")
    rng = np.random.default_rng(1)
    write_table(zh / "utt2score", {u: f"{rng.uniform(1, 5):.2f}" for u in sorted(load_data_dir(zh).utt2spk)[:24]})
    out = tmp_path / "s"
    assert main(["score", "--exp", str(exp), "--out", str(out), f"zh={zh}", f"ja={root / 'ja'}", "--quiet"]) == 0
    regression = json.loads((out / "summary.json").read_text())["regression"]
    data, speakers = {}, {}
    for name in ("zh", "ja"):
        table = read_tsv(out / name / "utt_scores.tsv")
        rated = np.isfinite(table["score"])
        data[name] = np.load(out / name / "utt_latent_means.npy")[rated], table["score"][rated]
        speakers[name] = list(np.asarray(table["spk"])[rated])
    assert len(data["zh"][1]) == 24 != len(data["ja"][1])
    for a, b in (("zh", "ja"), ("ja", "zh")):
        expected = regress.transfer(*data[a], *data[b], speakers[b])  # the interval: over b's speakers
        assert expected["n"] == len(data[b][1])
        got = regression[f"{a}->{b}"]["svr"]
        assert got.pop("pearson_ci95") == pytest.approx(expected.pop("pearson_ci95"), rel=1e-12)
        assert got == pytest.approx(expected, rel=1e-12)


def test_sets_sharing_utterances_are_flagged(trained, tmp_path, capsys):
    root, exp = trained
    sets = [f"native={root / 'native'}", f"ja={root / 'ja'}", f"ja_again={root / 'ja'}"]
    assert main(["score", "--exp", str(exp), "--out", str(tmp_path / "s"), *sets, "--quiet"]) == 0
    assert "score: warning: sets ja and ja_again share 30 utterance id(s)" in capsys.readouterr().err
    regression = json.loads((tmp_path / "s" / "summary.json").read_text())["regression"]
    assert regression["ja->ja_again"]["svr"]["shared_utts"] == 30
    assert main(["report", "--exp", str(exp), "--scores", str(tmp_path / "s"), "--out", str(tmp_path / "r.html")]) == 0
    assert "| ja->ja_again | svr (30 utts in both sets) |" in (tmp_path / "r.md").read_text()
    from flowaccent.data import subset_data_dir

    ja = sorted(load_data_dir(root / "ja").utt2spk)  # the same speakers, other utterances: said too
    for i in range(2):
        subset_data_dir(root / "ja", tmp_path / f"ja{i}", ja[i::2])
    halves = [str(tmp_path / f"ja{i}") for i in range(2)]
    assert main(["score", "--exp", str(exp), "--out", str(tmp_path / "h"), *halves, "--quiet"]) == 0
    speakers = len(set(load_data_dir(root / "ja").utt2spk.values()))
    assert f"score: warning: sets ja0 and ja1 share {speakers} speaker(s); an SVR fitted on one" in \
        capsys.readouterr().err
    copies = [f"ja{i}={root / 'ja'}" for i in range(5)]  # 10 pairs: one line, not 10
    assert main(["score", "--exp", str(exp), "--out", str(tmp_path / "c"), *copies, "--quiet"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "share" in line]
    assert warned == ["score: warning: 10 pairs of sets share utterance ids (sets ja0 and ja1 share 30 utterance "
                      "id(s); ja0 and ja2 share 30 utterance id(s); ja0 and ja3 share 30 utterance id(s); ...); an "
                      "SVR fitted on one and applied to the other, and where one is the reference the other's AUC "
                      "against it, compare the same utterances"]


def test_features_computed_otherwise_are_refused(trained, tmp_path, capsys):
    r"""train keeps its dirs' fbank.json; score refuses a set computed with other options (a 5 ms shift scored
    'more native than native' without a word) and warns about one upsampled from a lower rate."""
    import shutil

    from flowaccent.features.fbank import FbankConfig
    from flowaccent.features.fbank_record import write_record
    from flowaccent.train.trainer import train

    from ..train.conftest import small_config

    root, _ = trained
    native, ja = shutil.copytree(root / "native", tmp_path / "native"), shutil.copytree(root / "ja", tmp_path / "ja")
    for d in (native, ja):  # their arks named as flowaccent fbank names them, run 0123456789
        ark = d / f"raw_fbank_{d.name}.0123456789.ark"
        shutil.copy(next(iter(read_table(d / "feats.scp").values())).rsplit(":", 1)[0], ark)
        feats = read_table(d / "feats.scp")
        write_table(d / "feats.scp", {u: f"{ark}:{v.rsplit(':', 1)[1]}" for u, v in feats.items()})
        write_record(d, FbankConfig().to_dict(), -1, {16000: 40}, run="0123456789")
    exp = tmp_path / "exp"
    train(small_config(epochs=1), exp, [str(native)], quiet=True)
    assert json.loads((exp / "fbank.json").read_text())["source_rates"] == {"16000": 40}
    write_record(ja, FbankConfig(frame_shift_ms=5.0).to_dict(), -1, {16000: 30})
    assert main(["score", "--exp", str(exp), "--out", str(tmp_path / "s"), str(ja), "--quiet"]) == 1
    assert (f"flowaccent score: error: set ja: its features were computed with frame_shift_ms 5.0 (not 10.0) of the "
            f"model's training features ({ja / 'fbank.json'} against {exp / 'fbank.json'})") in capsys.readouterr().err
    write_record(ja, FbankConfig(allow_upsample=True).to_dict(), -1, {8000: 30})
    assert main(["score", "--exp", str(exp), "--out", str(tmp_path / "s"), str(ja), "--quiet"]) == 0
    assert "score: warning: set ja: audio at 8000 Hz upsampled to 16000 Hz" in capsys.readouterr().err
    # a record of a run whose arks feats.scp no longer lists (features computed again by Kaldi) vouched for them,
    # also one from before records named their run
    shutil.copy(ja / "raw_fbank_ja.0123456789.ark", ja / "raw_fbank_ja.1.ark")  # as Kaldi names its arks
    kaldi = {u: v.replace(".0123456789.", ".1.") for u, v in read_table(ja / "feats.scp").items()}
    write_table(ja / "feats.scp", kaldi)
    for run in ("0123456789", None):
        write_record(ja, FbankConfig(frame_shift_ms=5.0).to_dict(), -1, {16000: 30}, run=run)
        assert main(["score", "--exp", str(exp), "--out", str(tmp_path / "s"), str(ja), "--quiet"]) == 0
        err = capsys.readouterr().err
        assert (f"score: warning: {ja / 'fbank.json'} describes features that {ja / 'feats.scp'} no longer lists "
                "(computed again by another tool?)") in err and "no record of how" not in err  # said once
    # so the set is one without a record: scored, and said to be unchecked
    (ja / "fbank.json").unlink()
    assert main(["score", "--exp", str(exp), "--out", str(tmp_path / "s"), str(ja), "--quiet"]) == 0
    assert (f"score: warning: set ja: no record of how its features were computed ({ja / 'fbank.json'}, written "
            f"by 'flowaccent fbank'): not checked against the model's fbank options ({exp / 'fbank.json'})"
            ) in capsys.readouterr().err
    # ... but for its frame rate, where Kaldi's utt2dur says how long its audio is: twice the frames it makes at
    # 10 ms are 5 ms features (as Kaldi's utils/data/get_frame_shift.sh works a shift out)
    frames = {u: int(n) for u, n in read_table(ja / "utt2num_frames").items()}
    for shift, code in ((0.010, 0), (0.005, 1)):
        write_table(ja / "utt2dur", {u: f"{(n - 1) * shift + 0.025:.3f}" for u, n in frames.items()})
        assert main(["score", "--exp", str(exp), "--out", str(tmp_path / "s"), str(ja), "--quiet"]) == code
        err = capsys.readouterr().err
        assert ("flowaccent score: error: set ja: its features come every 5.0 ms, not every 10 ms as the model's "
                "(frame_shift_ms)" in err) == (code == 1) and ("no record of how" in err) == (code == 0), err


def test_a_model_folder_of_final_pt_alone_is_scored_said_unchecked_and_reported(trained, tmp_path, capsys):
    r"""A shared final.pt in a folder of its own: score checked no set's fbank options against the model's (none
    kept) and said nothing, so 5 ms features were scored by a 10 ms model silently; report then refused the
    folder ('no config.yaml') that score had taken."""
    import shutil

    from flowaccent.features.fbank import FbankConfig
    from flowaccent.features.fbank_record import write_record

    root, exp = trained
    only = tmp_path / "only"
    only.mkdir()
    shutil.copy(exp / "final.pt", only / "final.pt")
    ja = shutil.copytree(root / "ja", tmp_path / "ja")
    write_record(ja, FbankConfig(frame_shift_ms=5.0).to_dict(), -1, {16000: 30})
    scores = tmp_path / "s"
    assert main(["score", "--exp", str(only), "--out", str(scores), str(ja), str(root / "zh"), "--quiet"]) == 0
    assert (f"score: warning: no record of how the model's training features were computed ({only / 'fbank.json'}, "
            "which 'flowaccent train' keeps where 'flowaccent fbank' made them): the fbank options of set(s) ja are "
            "not checked against the model's") in capsys.readouterr().err
    assert main(["report", "--exp", str(only), "--scores", str(scores), "--tsne-frames", "0"]) == 0
    html = (only / "report.html").read_text()  # the config final.pt records: it said "(no config.yaml)" alone
    assert f"# no config.yaml: the config {only / 'final.pt'} records" in html and "cond_dim: " in html


def test_a_folder_holding_a_config_yaml_of_its_own_is_not_an_output(trained, tmp_path, capsys):
    r"""--out a project folder with its own config.yaml: score wrote its copy of the model's over it, exit 0."""
    root, exp = trained
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.yaml").write_text("my: settings\n")
    assert main(["score", "--exp", str(exp), "--out", str(project), str(root / "ja"), "--quiet"]) == 1
    assert capsys.readouterr().err == (f"flowaccent score: error: --out {project} holds config.yaml, which score "
                                       "writes, but no summary.json of an earlier run; give a folder of its own\n")
    assert (project / "config.yaml").read_text() == "my: settings\n" and sorted(project.iterdir()) == [
        project / "config.yaml"]
    (project / "config.yaml").unlink()  # an earlier run's scores: scored again, config.yaml and all
    assert main(["score", "--exp", str(exp), "--out", str(project), str(root / "ja"), "--quiet"]) == 0
    assert main(["score", "--exp", str(exp), "--out", str(project), str(root / "ja"), "--quiet"]) == 0


def test_auc_and_correlations_equal_sklearn_and_scipy_with_ties():
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    for n0, n1 in ((1, 1), (5, 7), (40, 33)):
        a, b = rng.integers(0, 6, n0).astype(float), rng.integers(0, 6, n1).astype(float)  # many ties
        want = roc_auc_score(np.r_[np.ones(n0), np.zeros(n1)], np.r_[a, b])
        assert detection_auc(a, b) == pytest.approx(want, abs=1e-12)
    for n in (3, 10, 200):
        x, y = rng.normal(size=n).round(1), rng.integers(1, 6, n).astype(float)
        got = correlations(x, y)
        assert got["pearson"] == pytest.approx(pearsonr(x, y)[0], abs=1e-12)
        assert got["spearman"] == pytest.approx(spearmanr(x, y)[0], abs=1e-12)


def test_a_value_not_finite_or_scores_not_one_per_utterance_give_no_number():
    r"""Spearman's ranked a NaN above every value (-0.3 where scipy's is NaN, and Pearson's was NaN); a 2-D AUC was
    2.0."""
    for x, y in (([1.0, 2, np.nan, 4, 5], [5.0, 3, 4, 1, 2]), ([1.0, 2, 3, 4, 5], [5.0, 3, np.nan, 1, 2])):
        assert all(math.isnan(v) for k, v in correlations(np.array(x), np.array(y)).items() if k != "n")
    x, y = np.array([1.0, 2, 3, 4, -np.inf]), np.array([2.0, 3, 5, 4, 1])  # an infinite value is ranked, as scipy's
    got = correlations(x, y)
    assert math.isnan(got["pearson"]) and got["spearman"] == pytest.approx(spearmanr(x, y)[0], abs=1e-12)
    import warnings

    with warnings.catch_warnings():  # all infinite: NaN, without numpy's 'invalid value' warnings
        warnings.simplefilter("error")
        got = correlations(np.array([np.inf] * 3), np.array([1.0, 2, 3]))
        huge = correlations(np.array([1e308, -1e308, 1.0, 2.0]), np.array([1.0, 2, 3, 4]))  # overflow: no warning
    assert math.isnan(got["pearson"]) and math.isnan(got["spearman"]) and huge["spearman"] == pytest.approx(-0.2)
    with pytest.raises(ValueError, match=r"one score per utterance \(n,\), got shapes \(2, 2\), \(1, 2\)"):
        detection_auc(np.array([[3.0, 4.0], [5.0, 6.0]]), np.array([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="one score per utterance"):
        auc_variance(np.ones((2, 2)), np.ones(3))
    with pytest.raises(ValueError, match="a rating per score, got 4 scores and 3 ratings"):
        correlations(np.arange(4.0), np.arange(3.0))


def test_partly_rated_sets_use_their_rated_utterances(trained, tmp_path):
    import shutil

    from flowaccent.data import read_table, write_table

    root, exp = trained
    ja = shutil.copytree(root / "ja", tmp_path / "ja")
    ratings = read_table(ja / "utt2score")
    kept = dict(list(ratings.items())[::2])  # half the utterances rated
    write_table(ja / "utt2score", kept)
    summary = score_corpora(exp, tmp_path / "s", [str(root / "native"), str(ja)])
    table = read_tsv(tmp_path / "s" / "ja" / "utt_scores.tsv")
    rated = np.isfinite(table["score"])
    assert [u for u, r in zip(table["utt"], rated) if r] == list(kept) and not rated.all()
    assert summary["rating"]["ja"]["log_ll"]["n"] == len(kept)
    want = correlations(table["log_ll"][rated], table["score"][rated])
    assert summary["rating"]["ja"]["log_ll"]["pearson"] == pytest.approx(want["pearson"])
    assert summary["regression"]["ja"]["svr_cv"]["n"] == len(kept)
    speakers = read_tsv(tmp_path / "s" / "ja" / "spk_scores.tsv")
    for i, spk in enumerate(speakers["spk"]):
        mine = (np.asarray(table["spk"]) == spk) & rated
        assert speakers["score"][i] == pytest.approx(table["score"][mine].mean())


def test_out_may_not_be_the_experiment_dir(trained, capsys):
    r"""--out EXP_DIR wrote the command's config.yaml over the training run's."""
    root, exp = trained
    before = (exp / "config.yaml").read_text()
    for command in (["score", str(root / "ja")], ["blurmask", "--data", str(root / "ja")]):
        assert main([command[0], "--exp", str(exp), "--out", str(exp), *command[1:], "--quiet"]) == 1
        assert f"flowaccent {command[0]}: error: --out {exp} is an experiment dir of 'flowaccent train'; give a " \
               f"folder inside it, e.g. {exp / command[0]}" in capsys.readouterr().err
    assert (exp / "config.yaml").read_text() == before


def test_an_output_folder_takes_one_command_at_a_time(trained, scored_dir_and_exp, tmp_path, capsys, monkeypatch):
    r"""Two scorings into one --out both exited 0 with a column of each in the tables; blurmask into a scores
    folder wrote its summary.json over score's (and score into blurmask's folder the reverse)."""
    import fcntl

    root, exp = trained
    scores, _ = scored_dir_and_exp
    out = tmp_path / "s"
    out.mkdir()
    with open(out / ".out.lock", "w") as held:  # as a running score or blurmask holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        assert main(["score", "--exp", str(exp), "--out", str(out), str(root / "native"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"flowaccent score: error: --out {out} is in use by another flowaccent command now (writing it, or a " in err
    assert sorted(p.name for p in out.iterdir()) == [".out.lock"]
    before = (scores / "summary.json").read_text()
    blur = ["blurmask", "--exp", str(exp), "--data", str(root / "native"), "--utts", "1", "--steps", "2", "--quiet"]
    assert main([*blur, "--out", str(scores)]) == 1
    assert "holds the output of 'flowaccent score'; give another folder" in capsys.readouterr().err
    monkeypatch.chdir(scores.parent)  # a relative --out was not recognised
    assert main([*blur, "--out", scores.name]) == 1
    assert "holds the output of 'flowaccent score'; give another folder" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert main(["score", "--exp", str(exp), "--out", str(root / "ja"), str(root / "native"), "--quiet"]) == 1
    assert f"--out {root / 'ja'} is a Kaldi data dir; give a folder of its own" in capsys.readouterr().err
    assert (scores / "summary.json").read_text() == before
    blurred = tmp_path / "b"
    assert main([*blur, "--out", str(blurred)]) == 0
    assert (blurred / "utt_table.tsv").exists()
    assert main(["score", "--exp", str(exp), "--out", str(blurred), str(root / "native"), "--quiet"]) == 1
    assert "holds the output of 'flowaccent blurmask'" in capsys.readouterr().err
    phones = tmp_path / "phones"  # 'flowaccent phones --out': the scores were mixed in among its files
    phones.mkdir()
    (phones / "phones.json").write_text("{}")
    for command in (["score", "--exp", str(exp), str(root / "native"), "--quiet"], blur):
        assert main([*command, "--out", str(phones)]) == 1
        assert "holds the output of 'flowaccent phones'; give another folder" in capsys.readouterr().err


def test_scores_being_read_are_not_scored_into_nor_read_while_written(trained, scored_dir_and_exp, tmp_path, capsys):
    r"""A report drawn while score rewrote its folder put the old figures and report back beside the new
    summary.json (exit 0 both); a report started while score ran said the scores 'stopped before its end'; two
    ``phones`` into one --out mixed their tables and figure."""
    import shutil

    from flowaccent.data.lock import output_lock, reading_lock

    root, exp = trained
    scores = tmp_path / "scores"
    shutil.copytree(scored_dir_and_exp[0], scores)
    assert (scores / ".out.lock").exists()  # score leaves its lock file
    before = (scores / "summary.json").read_text()
    with reading_lock(scores, "--scores S"), reading_lock(scores, "--scores S"):  # readers share it
        assert main(["score", "--exp", str(exp), "--out", str(scores), str(root / "native"), "--quiet"]) == 1
    assert (f"flowaccent score: error: --out {scores} is in use by another flowaccent command now (writing it, or a "
            "report, plot or phones reading it); wait for it or give another --out\n") in capsys.readouterr().err
    assert (scores / "summary.json").read_text() == before
    ctm = tmp_path / "a.ctm"
    ctm.write_text("")
    readers = [["report", "--exp", str(exp), "--scores", str(scores), "--out", str(tmp_path / "r"), "--tsne-frames",
                "0"], ["plot", "--exp", str(exp), "--scores", str(scores), "--out", str(tmp_path / "f")],
               ["phones", "--scores", str(scores), "--out", str(tmp_path / "p"), str(ctm)]]
    with output_lock(scores, "score"):  # as a running score holds it
        for command in readers:
            assert main(command) == 1, command
            assert (f"flowaccent {command[0]}: error: --scores {scores} is being written by another flowaccent "
                    "command now; wait for it to end\n") in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in "rfp")
    with output_lock(tmp_path / "p", "phones"):
        assert main(readers[2]) == 1
    assert f"flowaccent phones: error: --out {tmp_path / 'p'} is in use by another" in capsys.readouterr().err
    assert main(readers[1]) == 0  # unheld: drawn
    capsys.readouterr()


def test_a_model_other_than_the_experiments_is_refused(trained, tmp_path, capsys):
    r"""``--checkpoint`` of another experiment (or a hand-edited config.yaml) was scored and reported under the
    experiment's configuration and training curves."""
    import shutil

    root, exp = trained
    other = tmp_path / "other"
    shutil.copytree(exp, other)
    (other / "config.yaml").write_text((exp / "config.yaml").read_text().replace("cond_dim: 4", "cond_dim: 2"))
    args = ["score", "--out", str(tmp_path / "s"), str(root / "native"), "--quiet"]
    assert main([*args, "--exp", str(other)]) == 1
    err = capsys.readouterr().err
    assert f"{other / 'final.pt'} is not the model {other / 'config.yaml'} describes (prior.cond_dim: 4 in the " \
           "model, 2 in config.yaml); give the --exp it was trained in" in err
    assert main([*args, "--exp", str(other), "--checkpoint", str(exp / "final.pt")]) == 1
    assert main([*args, "--exp", str(exp), "--checkpoint", str(other / "final.pt")]) == 0  # the same model
    (other / "config.yaml").write_text((exp / "config.yaml").read_text().replace("seed: 0", "seed: 3"))
    assert main([*args, "--exp", str(other)]) == 1  # the same architecture, trained otherwise
    assert "train.seed: 0 in the model, 3 in config.yaml" in capsys.readouterr().err
    (other / "config.yaml").write_text((exp / "config.yaml").read_text())
    (other / "classes.txt").write_text("native\nja\n")
    assert main([*args, "--exp", str(other)]) == 1
    assert "(classes native, zh in the model, native, ja in classes.txt)" in capsys.readouterr().err
    (other / "config.yaml").write_text("")  # its note said 'train: note: ...' under score
    assert main([*args, "--exp", str(other)]) == 1
    assert capsys.readouterr().err.startswith(f"score: note: {other / 'config.yaml'} holds no settings (empty, or "
                                              "comments only): the defaults are used\n")


def test_the_kept_baseline_serves_when_the_training_dirs_are_gone(trained, scored, tmp_path, capsys):
    r"""With the training dirs moved, ``--baseline gmm`` failed (naming neither data.txt nor the baseline) even with
    its fit kept, and left the sets half-written; now the kept fit is used, and without one nothing is scored."""
    import shutil

    root, exp, out, summary = scored
    moved = tmp_path / "exp"
    shutil.copytree(exp, moved)
    (moved / "data.txt").write_text("".join(f"{tmp_path / 'gone' / n}\n" for n in ("native", "zh")))
    config = ScoreConfig(max_latents=500)
    again = score_corpora(moved, tmp_path / "s", [str(root / "zh")], baseline="gmm", config=config)
    assert again["baseline"]["loaded"] and again["baseline"]["frames"] is None
    assert f"the model's training data dir {tmp_path / 'gone' / 'native'} is gone; using the GMM fitted on it " \
           "before" in capsys.readouterr().err
    np.testing.assert_array_equal(read_tsv(out / "zh" / "utt_scores.tsv")["gmm_log_ll"],
                                  read_tsv(tmp_path / "s" / "zh" / "utt_scores.tsv")["gmm_log_ll"])
    (moved / "baseline_gmm.npz").unlink()
    args = ["score", "--exp", str(moved), "--out", str(tmp_path / "t"), str(root / "zh"), "--baseline", "gmm"]
    assert main([*args, "--quiet"]) == 1
    assert "is gone and no fit of it is kept; give it back (or edit data.txt if it moved)" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_float64_weights_score_and_a_float64_default_keeps_float32_weights(scored, tmp_path):
    r"""A checkpoint of float64 weights loaded (as from_checkpoint promises) but scoring fed it float32 features: a
    traceback; and under torch.set_default_dtype(float64), a notebook's habit, float32 weights loaded as float64."""
    from flowaccent.train.checkpoint import load_model

    root, exp, out, _ = scored
    state = torch.load(exp / "final.pt", weights_only=False)
    weights = state["model"] if "model" in state else state
    weights["state_dict"] = {k: v.double() if v.is_floating_point() else v for k, v in weights["state_dict"].items()}
    torch.save(state, tmp_path / "f64.pt")
    args = ["score", "--exp", str(exp), "--out", str(tmp_path / "s"), str(root / "zh"), "--quiet"]
    assert main([*args, "--checkpoint", str(tmp_path / "f64.pt")]) == 0
    a, b = read_tsv(out / "zh" / "utt_scores.tsv"), read_tsv(tmp_path / "s" / "zh" / "utt_scores.tsv")
    np.testing.assert_allclose(a["log_ll"], b["log_ll"], atol=1e-4)
    torch.set_default_dtype(torch.float64)
    try:
        model = load_model(exp / "final.pt")
    finally:
        torch.set_default_dtype(torch.float32)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    from flowaccent.data import load_data_dir
    from flowaccent.score.scorer import score_dir

    model.train()  # a notebook's model in training: scoring leaves it so
    score_dir(model, load_data_dir(root / "zh"), "zh", tmp_path / "d", ScoreConfig(max_latents=10), quiet=True)
    assert model.training


def test_the_baseline_leaves_out_the_speakers_a_flow_held_out_by_speaker(tmp_path):
    r"""With ``train.valid_by speaker`` the flow held out whole speakers; the GMM baseline's frames leave out
    exactly their utterances (it fitted on frames the flow validated on)."""
    from flowaccent.features import FeaturePipeline, FeaturePipelineConfig
    from flowaccent.score.baseline import sample_frames
    from flowaccent.train.frames import held_out

    from ..train.conftest import write_gaussian_dir

    data = load_data_dir(write_gaussian_dir(tmp_path / "d", np.zeros(3), np.eye(3), utts=40, frames=10, seed=0))
    pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="none", deltas=0, standardize=False), 3)
    by_speaker = sample_frames([data], pipeline, 10**6, 0, 0.6, "speaker")
    kept = [u for u in data.utts if not held_out(data.utt2spk[u], 0.6)]
    assert len(by_speaker) == 10 * len(kept) == 300  # speaker s1's 10 utterances left out, all 3 others kept
    assert len(sample_frames([data], pipeline, 10**6, 0, 0.6)) != len(by_speaker)  # by utterance: others


def test_read_tsv_is_strict_inside_the_table_and_takes_a_blank_last_line(tmp_path):
    r"""A row cut short was dropped silently (the columns zipped to the shortest); an editor's blank last line is
    not a row."""
    from flowaccent.score.tables import read_tsv

    path = tmp_path / "t.tsv"
    path.write_text("utt\tspk\tnum_frames\tlog_ll\nu1\ts\t10\t-1.5\n\n")
    table = read_tsv(path)
    assert table["utt"] == ["u1"] and table["log_ll"].tolist() == [-1.5]
    path.write_text("utt\tspk\tnum_frames\tlog_ll\nu1\ts\t10\nu2\ts\t10\t-2\n")
    with pytest.raises(ValueError, match="line 2 has 3 fields, the header 4"):
        read_tsv(path)
    path.write_text("utt\tspk\tnum_frames\tlog_ll\nu1\ts\t10\tlots\n")
    with pytest.raises(ValueError, match="line 2: log_ll 'lots' is not a number"):
        read_tsv(path)


def test_utterances_shorter_than_the_models_context_are_named(trained, tmp_path, capsys):
    r"""An utterance shorter than the model's context (1 frame: its deltas all 0) was scored like the others
    without a word."""
    from flowaccent.data import ArkWriter
    from flowaccent.train.trainer import train

    from ..train.conftest import small_config

    root, _ = trained
    exp = tmp_path / "exp"  # deltas of order 2: a context of 9 frames
    config = small_config(epochs=1).with_overrides({"features": {"deltas": 2}})
    train(config, exp, [str(root / "zh")], quiet=True)
    context = config.features.context
    assert context == 9
    short = tmp_path / "short"
    feats = dict(ScpReader(root / "zh" / "feats.scp"))
    first = sorted(feats)[0]
    feats[first] = feats[first][: context - 1]
    short.mkdir()
    with ArkWriter(short / "feats.ark", short / "feats.scp") as writer:
        for utt in sorted(feats):
            writer.write(utt, feats[utt])
    for name in ("utt2spk", "spk2utt"):
        (short / name).write_text((root / "zh" / name).read_text())
    write_table(short / "utt2num_frames", {u: str(len(f)) for u, f in feats.items()})
    assert main(["score", "--exp", str(exp), "--out", str(tmp_path / "s"), str(short), str(root / "zh"),
                 "--quiet"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "shorter than the model's context" in line]
    assert warnings == [f"score: warning: set short: 1 utterance(s) shorter than the model's context of {context} "
                        f"frames (deltas and splicing; e.g. '{first}': {context - 1}): every frame holds copies of "
                        f"its edge frames, so their scores are not comparable"]


def test_regressions_of_a_large_rated_set_take_a_sample(trained, tmp_path, capsys):
    r"""The SVRs' 21 cross-validations take time in about the square of the rated utterances (a 50k set ran over
    10 minutes without an end): above ``--regression-max-utts`` they fit a seeded sample, said on stderr and in
    ``sample_of``; the correlations of the scores with the ratings still take every rated utterance."""
    from flowaccent.score import regress
    from flowaccent.score.run import regression_sample

    root, exp = trained
    out = tmp_path / "s"
    assert main(["score", "--exp", str(exp), "--out", str(out), str(root / "native"), str(root / "ja"),
                 "--regression-max-utts", "9", "--seed", "3", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    table = read_tsv(out / "ja" / "utt_scores.tsv")
    rated = np.isfinite(table["score"])
    assert rated.sum() > 9 and summary["rating"]["ja"]["log_ll"]["n"] == rated.sum()
    index = regression_sample(rated, 9, 3)
    assert len(index) == 9 and rated[index].all() and (np.diff(index) > 0).all()
    means = np.load(out / "ja" / "utt_latent_means.npy")[index]
    speakers = [table["spk"][i] for i in index]
    cv = summary["regression"]["ja"]["svr_cv"]
    assert cv == {**regress.cross_validated(means, table["score"][index], speakers), "sample_of": rated.sum()}
    assert cv["n"] == 9 and summary["regression"]["ja"]["svr_cv_shuffled"]["sample_of"] == rated.sum()
    assert main(["report", "--exp", str(exp), "--scores", str(out), "--out", str(tmp_path / "r")]) == 0  # "9 of N"
    assert f"| 9 of {rated.sum()} |" in (tmp_path / "r" / "report.md").read_text()
    assert f"the SVR regressions use 9 of its {rated.sum()} rated utterances" in capsys.readouterr().err
    assert (regression_sample(rated, 0, 3) == np.flatnonzero(rated)).all()  # 0: all
    assert (regression_sample(rated, 100, 3) == np.flatnonzero(rated)).all()
    assert main(["score", "--exp", str(exp), "--out", str(out), str(root / "ja"), "--regression-max-utts", "-1"]) == 1
    assert "regression_max_utts (--regression-max-utts) must be >= 0" in capsys.readouterr().err


def test_the_summary_names_the_model_by_absolute_paths(trained, tmp_path, monkeypatch):
    r"""``--exp`` as typed (relative) went into summary.json: a report made from another folder named a path that
    was not there, and its check of the checkpoint's digest did not find the file."""
    import json

    root, exp = trained
    monkeypatch.chdir(exp.parent)
    assert main(["score", "--exp", exp.name, "--out", str(tmp_path / "s"), str(root / "native"), "--quiet"]) == 0
    model = json.loads((tmp_path / "s" / "summary.json").read_text())["model"]
    assert model["exp"] == str(exp) and model["checkpoint"] == str(exp / "final.pt")
