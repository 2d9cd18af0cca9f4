r"""``score --resume``: a stopped run keeps the sets it finished; the next scores only the others, and the same
files and summary come out as from one uninterrupted run."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from flowaccent.cli.main import main
from flowaccent.score import run, scorer
from flowaccent.score.resume import MARKER

FILES = ("utt_scores.tsv", "spk_scores.tsv", "frame_scores.ark", "latents.npy", "latent_utts.txt",
         "utt_latent_means.npy")


def _spied(monkeypatch, stop_at: str | None = None) -> list[str]:
    r"""The names of the sets ``score_dir`` scores from now on; with ``stop_at``, a Ctrl-C once that set's files
    are written (before the GMM's column and the stamp)."""
    real, scored = scorer.score_dir, []

    def spy(model, data, name, *args, **kwargs):
        scored.append(name)
        result = real(model, data, name, *args, **kwargs)
        if name == stop_at:
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(run, "score_dir", spy)
    return scored


@pytest.fixture
def sets(trained):
    root, exp = trained
    return exp, [f"{n}={root / n}" for n in ("native", "zh", "ja")]


def _score(exp, out, sets, *more: str) -> int:
    return main(["score", "--exp", str(exp), "--out", str(out), *sets, "--quiet", "--baseline", "gmm", *more])


def test_a_stopped_run_keeps_its_finished_sets_and_resume_scores_only_the_rest(sets, tmp_path, monkeypatch, capsys):
    exp, specs = sets
    assert _score(exp, tmp_path / "whole", specs) == 0  # the uninterrupted run, for comparison
    out = tmp_path / "s"
    scored = _spied(monkeypatch, stop_at="ja")
    assert _score(exp, out, specs) == 130
    err = capsys.readouterr().err
    assert f"score: 2 set(s) scored completely stay in {out} (native, zh): --resume keeps them in a rerun" in err
    assert scored == ["native", "zh", "ja"]
    assert sorted(p.name for p in out.iterdir() if p.name != ".out.lock") == ["native", "zh"]  # ja half made: gone
    assert all((out / n / MARKER).is_file() and (out / n / "spk_scores.tsv").is_file() for n in ("native", "zh"))
    scored = _spied(monkeypatch)
    assert _score(exp, out, specs, "--resume") == 0
    err = capsys.readouterr().err
    assert scored == ["ja"] and "set ja: scoring it again" not in err  # its folder was gone: nothing to say
    assert f"score: set native: kept (--resume: scored completely before, from the same model, data and options): " \
        f"{out / 'native'}" in err
    whole = json.loads((tmp_path / "whole" / "summary.json").read_text())
    resumed = json.loads((out / "summary.json").read_text())
    assert resumed.pop("command") != whole.pop("command")
    resumed["baseline"].pop("loaded"), whole["baseline"].pop("loaded")  # fitted by the first run, read by the next
    assert resumed == whole
    for name in ("native", "zh", "ja"):
        for file in FILES:
            assert (out / name / file).read_bytes() == (tmp_path / "whole" / name / file).read_bytes(), (name, file)
    scored.clear()
    assert _score(exp, out, specs, "--resume") == 0  # all kept: nothing scored, the same summary
    assert scored == [] and json.loads((out / "summary.json").read_text())["sets"] == whole["sets"]


def test_what_changed_is_scored_again_and_says_why(sets, trained, tmp_path, monkeypatch, capsys):
    exp, specs = sets
    root, _ = trained
    zh = shutil.copytree(root / "zh", tmp_path / "zh")
    specs = [specs[0], f"zh={zh}"]
    out = tmp_path / "s"
    assert _score(exp, out, specs) == 0
    scored = _spied(monkeypatch)
    capsys.readouterr()

    def resumed(*more: str) -> str:
        scored.clear()
        assert _score(exp, out, specs, "--resume", *more) == 0
        return capsys.readouterr().err

    assert "score: set native: scoring it again: what it was scored from changed: options (seed)" in resumed(
        "--seed", "1")
    assert scored == ["native", "zh"]
    assert "scoring it again" not in resumed("--seed", "1", "--batch-frames", "77") and scored == []  # rounding only
    (zh / "utt2score").write_text(f"{sorted(p.split()[0] for p in (zh / 'utt2spk').read_text().splitlines())[0]} 3\n")
    err = resumed("--seed", "1")
    assert "score: set zh: scoring it again: what it was scored from changed: data (utt2score)" in err
    assert scored == ["zh"]
    assert "options (seed)" in resumed() and scored == ["native", "zh"]
    (out / "zh" / "latents.npy").unlink()
    assert "score: set zh: scoring it again: latents.npy is missing" in resumed() and scored == ["zh"]
    with open(out / "zh" / "frame_scores.ark", "r+b") as f:
        f.truncate(100)
    assert "score: set zh: scoring it again: frame_scores.ark is not as it was written (another size)" in resumed()
    assert scored == ["zh"]
    (out / "zh" / MARKER).unlink()
    assert "score: set zh: scoring it again: not stamped complete (its scoring did not finish" in resumed()
    assert scored == ["zh"]
    shutil.copy(exp / "final.pt", tmp_path / "same.pt")  # the same model, another file name: kept
    resumed("--checkpoint", str(tmp_path / "same.pt"))
    assert scored == []
    other = exp / "checkpoints" / "last.pt"
    assert "what it was scored from changed: model" in resumed("--checkpoint", str(other)) and len(scored) == 2
    scored.clear()
    assert main(["score", "--exp", str(exp), "--out", str(out), *specs, "--quiet", "--resume"]) == 0  # no GMM
    assert "score: set zh: scoring it again: what it was scored from changed: model, baseline" in \
        capsys.readouterr().err and len(scored) == 2


def test_a_set_being_scored_again_is_not_taken_for_complete(sets, tmp_path, monkeypatch, capsys):
    r"""A rerun without --resume that stops while writing over a complete set leaves it unstamped: its files are
    half new, half old, and a later --resume scores it again."""
    exp, specs = sets
    out = tmp_path / "s"
    assert _score(exp, out, specs[:1]) == 0
    _spied(monkeypatch, stop_at="native")
    assert _score(exp, out, specs[:1]) == 130
    assert not (out / "native" / MARKER).exists() and (out / "native").is_dir()  # an earlier run's folder: stays
    assert "stay in" not in capsys.readouterr().err
    scored = _spied(monkeypatch)
    assert _score(exp, out, specs[:1], "--resume") == 0
    assert scored == ["native"] and "not stamped complete" in capsys.readouterr().err


def test_kept_scores_read_back_as_they_were_made(sets, tmp_path):
    r"""What :func:`load_set_scores` reads back is what scoring returned (ids with characters Python splits lines
    at, too)."""
    from flowaccent.score.resume import load_set_scores
    from flowaccent.score.scorer import score_dir
    from flowaccent.train.checkpoint import load_model

    from ..train.conftest import write_gaussian_dir

    exp, _ = sets
    odd = write_gaussian_dir(tmp_path / "odd", np.zeros(6), np.eye(6), 5, 9, seed=1, prefix="x\u2028y\u0085")
    made = score_dir(load_model(exp / "final.pt"), odd, "odd", tmp_path / "s")
    back = load_set_scores(tmp_path / "s", "odd")
    assert back.name == "odd" and back.utts == made.utts and np.array_equal(back.num_frames, made.num_frames)
    for field in ("latent_means", "latents", "latent_utts"):
        assert np.array_equal(getattr(back, field), getattr(made, field)), field
    for key, values in made.utt_table.items():
        assert np.allclose(back.utt_table[key], values, rtol=0, atol=5e-7), key  # as the table keeps them


def test_other_features_under_the_same_ids_a_moved_folder_and_a_file_in_a_sets_place(sets, trained, tmp_path,
                                                                                      monkeypatch, capsys):
    r"""Features of the same utterance ids and lengths are other data where they are in another dir, or were
    written again into the same archive (new audio, another dither): those sets were kept, their numbers under
    the new data's name. An output folder moved since left its kept sets' ``frame_scores.scp`` pointing into the
    old place. A file where a set's folder goes is named as before (not as its missing stamp)."""
    import os

    from ..train.conftest import write_gaussian_dir

    exp, _ = sets
    clean = write_gaussian_dir(tmp_path / "clean" / "eval", np.full(6, -1.0), np.eye(6), 10, 20, seed=1)
    noisy = write_gaussian_dir(tmp_path / "noisy" / "eval", np.full(6, 2.0), np.eye(6), 10, 20, seed=1)
    out = tmp_path / "s"
    assert _score(exp, out, [str(clean)]) == 0
    scored = _spied(monkeypatch)
    capsys.readouterr()
    assert _score(exp, out, [str(noisy)], "--resume") == 0
    assert "score: set eval: scoring it again: what it was scored from changed: data (dir, arks)" in \
        capsys.readouterr().err and scored == ["eval"]
    ark = next(noisy.glob("*.ark"))
    before = ark.stat()
    louder = write_gaussian_dir(tmp_path / "louder", np.full(6, 5.0), np.eye(6), 10, 20, seed=1)
    assert (louder / "feats.scp").read_text() == (noisy / "feats.scp").read_text().replace(str(noisy), str(louder))
    ark.write_bytes((louder / ark.name).read_bytes())  # written again: the same names and sizes, other values
    assert ark.stat().st_size == before.st_size
    os.utime(ark, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))  # as a computation taking a second would
    scored.clear()
    assert _score(exp, out, [str(noisy)], "--resume") == 0
    assert "what it was scored from changed: data (arks)" in capsys.readouterr().err and scored == ["eval"]
    moved = tmp_path / "moved"
    out.rename(moved)
    scored.clear()
    assert _score(exp, moved, [str(noisy)], "--resume") == 0
    assert "score: set eval: scoring it again: its frame_scores.scp points to " \
        f"{out / 'eval' / 'frame_scores.ark'}, not to the ark beside it" in capsys.readouterr().err
    assert scored == ["eval"]
    assert str(moved / "eval" / "frame_scores.ark") in (moved / "eval" / "frame_scores.scp").read_text()
    shutil.rmtree(moved / "eval")
    (moved / "eval").write_text("a file\n")
    assert _score(exp, moved, [str(noisy)], "--resume") == 1
    err = capsys.readouterr().err
    assert MARKER not in err and "eval" in err


def test_a_set_whose_scp_runs_commands_is_always_scored_again(sets, trained, tmp_path, monkeypatch, capsys):
    r"""What ``cmd |`` entries give cannot be checked without running them: their files changed behind the same
    scp, such a set was kept with the old numbers."""
    root, _ = trained
    exp, _ = sets
    piped = shutil.copytree(root / "ja", tmp_path / "piped")
    entries = [line.split(" ", 1) for line in (piped / "feats.scp").read_text().splitlines()]
    records = sorted((rx.rsplit(":", 1)[0], int(rx.rsplit(":", 1)[1]), utt) for utt, rx in entries)  # by ark, offset
    (piped / "mats").mkdir()
    lines = []
    for i, (ark, offset, utt) in enumerate(records):  # each matrix alone: from its offset to the next record's key
        data = open(ark, "rb").read()
        following = records[i + 1] if i + 1 < len(records) and records[i + 1][0] == ark else None
        end = following[1] - len(following[2]) - 1 if following else len(data)
        (piped / "mats" / utt).write_bytes(data[offset:end])
        lines.append(f"{utt} cat {piped / 'mats' / utt} |\n")
    (piped / "feats.scp").write_text("".join(sorted(lines)))
    out = tmp_path / "s"
    assert _score(exp, out, [f"piped={piped}"]) == 0
    scored = _spied(monkeypatch)
    capsys.readouterr()
    assert _score(exp, out, [f"piped={piped}"], "--resume") == 0
    assert "score: set piped: scoring it again: its feats.scp or cmvn.scp runs commands ('... |'), whose output " \
        "cannot be checked" in capsys.readouterr().err
    assert scored == ["piped"]


def test_each_input_of_a_stamp_tells_it_apart(sets, trained, tmp_path):
    r"""Every option, part and parameter the stamp holds changes it, so that a change to it is named and the set
    scored again: the latent sample's size, the precision, the llr's class, the GMM's variances; an archive
    copied elsewhere (same name, size and time) that feats.scp now points to; a cmvn.scp that runs commands. A
    stamp lacking a part that is now in it differs in that part."""
    import json
    import os

    from flowaccent.data import load_data_dir
    from flowaccent.score.config import ScoreConfig
    from flowaccent.score.resume import differences, gmm_digest, set_stamp

    root, _ = trained
    data = load_data_dir(root / "ja")
    base = set_stamp("m", data, False, ScoreConfig(), "native", "g")
    folder = tmp_path / "set"
    folder.mkdir()

    def named(stamp: dict) -> list[str] | None:
        (folder / MARKER).write_text(json.dumps(base))
        return differences(folder, stamp)

    assert named(base) == []
    assert named(set_stamp("m", data, False, ScoreConfig(max_latents=7), "native", "g")) == ["options (max_latents)"]
    assert named(set_stamp("m", data, False, ScoreConfig(precision="bf16"), "native", "g")) == ["options (precision)"]
    assert named(set_stamp("m", data, False, ScoreConfig(), "zh", "g")) == ["options (llr_class)"]
    assert named(set_stamp("m", data, False, ScoreConfig(), "native", None)) == ["baseline"]
    older = json.loads(json.dumps(base))
    del older["options"]["seed"]
    (folder / MARKER).write_text(json.dumps(older))
    assert differences(folder, base) == ["options (seed)"]
    gmm = SimpleNamespace(**{k: torch.ones(2, 3) for k in ("weights", "means", "variances")})
    assert gmm_digest(gmm) != gmm_digest(SimpleNamespace(weights=gmm.weights, means=gmm.means,
                                                         variances=2 * gmm.variances))
    moved = shutil.copytree(root / "ja", tmp_path / "ja")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    scp = (moved / "feats.scp").read_text()
    ark = scp.split()[1].rsplit(":", 1)[0]
    shutil.copy2(ark, elsewhere / os.path.basename(ark))  # the same name, size and modification time
    copied = set_stamp("m", load_data_dir(moved), False, ScoreConfig(), "native", "g")
    (moved / "feats.scp").write_text(scp.replace(ark, str(elsewhere / os.path.basename(ark))))
    (folder / MARKER).write_text(json.dumps(copied))
    assert differences(folder, set_stamp("m", load_data_dir(moved), False, ScoreConfig(), "native", "g")) == \
        ["data (arks)"]
    spk = sorted(set(load_data_dir(moved).utt2spk.values()))
    (moved / "cmvn.scp").write_text("".join(f"{s} cat {tmp_path / s} |\n" for s in spk))
    assert set_stamp("m", load_data_dir(moved), True, ScoreConfig(), "native", "g")["data"]["commands"]
    assert not set_stamp("m", load_data_dir(moved), False, ScoreConfig(), "native", "g")["data"]["commands"]


def test_files_of_their_recorded_sizes_that_do_not_read_back_are_scored_again(sets, tmp_path, monkeypatch,
                                                                                capsys):
    r"""A latent sample overwritten by bytes of its size, or an id list one line short at its size: read back, the
    first was a traceback and the second went on with the lists out of step."""
    exp, specs = sets
    out = tmp_path / "s"
    assert _score(exp, out, specs[:1]) == 0
    latents = out / "native" / "latents.npy"
    size = latents.stat().st_size
    latents.write_bytes(b"x" * size)
    scored = _spied(monkeypatch)
    capsys.readouterr()
    assert _score(exp, out, specs[:1], "--resume") == 0
    assert "score: set native: scoring it again: its files are damaged" in capsys.readouterr().err
    assert scored == ["native"]
    ids = out / "native" / "latent_utts.txt"
    lines = ids.read_text().split("\n")[:-1]
    shorter = lines[:-2] + [lines[-2] + "x" * (len(lines[-1]) + 1)]  # one line fewer, the same bytes
    ids.write_text("".join(f"{u}\n" for u in shorter))
    assert ids.stat().st_size == len("".join(f"{u}\n" for u in lines).encode())
    scored.clear()
    assert _score(exp, out, specs[:1], "--resume") == 0
    assert "disagree on the number of utterances or latents" in capsys.readouterr().err and scored == ["native"]


def test_an_ark_is_found_elsewhere_only_where_the_scp_points_elsewhere(tmp_path):
    r"""The scp's first line was split at any whitespace: an id holding a no-break space (Kaldi's fields split at ASCII
    whitespace only) made a folder scored in place look moved (``score --resume`` scored it again, ``phones`` took
    'x /path' for the ark and left the utterance out)."""
    from flowaccent.score.resume import ark_elsewhere

    (tmp_path / "frame_scores.ark").write_bytes(b"x")
    for key in ("zh-f07-0004\u00a0x", "a\u2028b", "plain"):
        (tmp_path / "frame_scores.scp").write_text(f"{key} {tmp_path / 'frame_scores.ark'}:12\n", encoding="utf-8")
        assert ark_elsewhere(tmp_path) is None, key
    (tmp_path / "frame_scores.scp").write_text("zh-f07-0004\u00a0x /else/frame_scores.ark:12\n", encoding="utf-8")
    assert ark_elsewhere(tmp_path) == "/else/frame_scores.ark"
