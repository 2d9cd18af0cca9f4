r"""Damaged inputs through the command line: exit 1, one line naming file, utterance and problem,
no traceback, nothing half-written in the output dir."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flowaccent.cli.main import main
from flowaccent.data import ArkWriter, read_table


def entries(d: Path) -> list[tuple[str, str, int]]:
    r"""``(utt, ark path, offset)`` of every feats.scp line."""
    out = []
    for utt, value in read_table(d / "feats.scp").items():
        path, offset = value.rsplit(":", 1)
        out.append((utt, path, int(offset)))
    return out


def cut_ark(d: Path, where: int) -> str:
    r"""Cuts the ark ``where`` bytes after the start of the object stored last in it."""
    utt, path, offset = max(entries(d), key=lambda e: e[2])
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: offset + where])
    return utt


def poke(d: Path, at: int, value: bytes) -> str:
    utt, path, offset = entries(d)[3]
    data = bytearray(Path(path).read_bytes())
    data[offset + at : offset + at + len(value)] = value
    Path(path).write_bytes(bytes(data))
    return utt


def set_table(d: Path, name: str, text: str) -> None:
    (d / name).write_text(text)


def rewrite_utt(d: Path, index: int, array: np.ndarray) -> str:
    r"""Replaces utterance ``index`` with ``array`` in a new ark (scp updated)."""
    utt, _, _ = entries(d)[index]
    with ArkWriter(d / "extra.ark", d / "extra.scp") as writer:
        writer.write(utt, array)
    lines = (d / "feats.scp").read_text().splitlines()
    lines[index] = (d / "extra.scp").read_text().strip()
    (d / "feats.scp").write_text("\n".join(lines) + "\n")
    return utt


def nan_frames(d: Path) -> str:
    x = np.zeros((20, 6), np.float32)
    x[5, 2] = np.nan
    return rewrite_utt(d, 2, x)


# (id, damage(d) -> utterance named or None, file named, message fragment)
FAULTS = [
    ("ark cut inside a matrix", lambda d: cut_ark(d, 40), "feats.scp", "truncated ark"),
    ("ark cut inside a header", lambda d: cut_ark(d, 6), "feats.scp", "truncated ark"),
    ("ark cut inside the next key", lambda d: cut_ark(d, -1), "feats.scp", "past the end"),
    (
        "ark cut between utterances",
        lambda d: cut_ark(d, -len(max(entries(d), key=lambda e: e[2])[0]) - 1),
        "feats.scp",
        "past the end",
    ),
    ("corrupt type token", lambda d: poke(d, 2, b"XM"), "feats.scp", "corrupt type token"),
    ("corrupt binary marker", lambda d: poke(d, 0, b"\0C"), "feats.scp", "corrupt binary marker"),
    ("failing cmd pipe", lambda d: rewrite_pipe(d), "feats.scp", "pipe 'cat /nonexistent.ark' failed"),
    ("scp points at a missing file", lambda d: missing_file(d), "feats.scp", "does not exist"),
    ("scp offset past the end", lambda d: bad_offset(d), "feats.scp", "past the end"),
    ("unsorted keys", lambda d: swap_lines(d, "utt2spk"), "utt2spk", "not sorted in C order"),
    ("duplicated keys", lambda d: duplicate_line(d, "utt2spk"), "utt2spk", "duplicate key"),
    ("utt2spk/spk2utt mismatch", lambda d: set_table(d, "spk2utt", "s0 s0-0000\n"), "spk2utt", "does not match"),
    ("speaker with whitespace", lambda d: space_key(d), "utt2spk", "bad speaker"),
    ("empty data dir", lambda d: empty(d), "utt2spk", "empty data dir"),
    (
        "zero-length utterance",
        lambda d: rewrite_utt(d, 1, np.zeros((0, 6), np.float32)),
        "feats.scp",
        "zero-length utterance (0 frames): remove it from the data dir (its feats.scp line, then 'flowaccent fixdir'",
    ),
    ("wrong dimension", lambda d: rewrite_utt(d, 1, np.zeros((20, 5), np.float32)), "feats.scp", "dim 5, expected 6"),
    ("NaN in features", nan_frames, "feats.scp", "NaN or inf"),
    (
        "finite features the model cannot score",  # scored NaN with exit 0
        lambda d: rewrite_utt(d, 2, np.full((20, 6), 3e38, np.float32)),
        "feats.scp",
        "is nan",
    ),
    (
        "frame count differs from utt2num_frames",
        lambda d: rewrite_utt(d, 1, np.zeros((7, 6), np.float32)),
        "feats.scp",
        "7 frames, but utt2num_frames says 20",
    ),
]


def repoint(d: Path, index: int, value) -> str:
    r"""Sets the rxfile of feats.scp line ``index`` to ``value(utt, ark path, offset)``; returns the utterance."""
    utt, path, offset = entries(d)[index]
    lines = (d / "feats.scp").read_text().splitlines()
    lines[index] = f"{utt} {value(utt, path, offset)}"
    (d / "feats.scp").write_text("\n".join(lines) + "\n")
    return utt


def rewrite_pipe(d: Path) -> str:
    return repoint(d, 4, lambda utt, path, offset: "cat /nonexistent.ark |")


def missing_file(d: Path) -> str:
    return repoint(d, 5, lambda utt, path, offset: f"{d}/gone.ark:{offset}")


def bad_offset(d: Path) -> str:
    return repoint(d, 5, lambda utt, path, offset: f"{path}:99999999")


def swap_lines(d: Path, name: str) -> None:
    lines = (d / name).read_text().splitlines()
    lines[0], lines[1] = lines[1], lines[0]
    (d / name).write_text("\n".join(lines) + "\n")


def duplicate_line(d: Path, name: str) -> None:
    lines = (d / name).read_text().splitlines()
    lines.insert(1, lines[0])
    (d / name).write_text("\n".join(lines) + "\n")


def space_key(d: Path) -> None:
    lines = (d / "utt2spk").read_text().splitlines()
    lines[0] = lines[0] + " extra"
    (d / "utt2spk").write_text("\n".join(lines) + "\n")


def empty(d: Path) -> None:
    for name in ("utt2spk", "spk2utt", "feats.scp", "utt2num_frames"):
        (d / name).write_text("")


@pytest.mark.parametrize("name,damage,file,fragment", FAULTS, ids=[f[0] for f in FAULTS])
def test_score_reports_the_fault(damaged, tmp_path, capsys, name, damage, file, fragment):
    exp, corpus = damaged
    utt = damage(corpus)
    out = tmp_path / "scores"
    assert main(["score", "--exp", str(exp), "--out", str(out), str(corpus), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert file in err[0] and fragment in err[0], err[0]
    if utt:
        assert f"'{utt}'" in err[0], err[0]
    assert not out.exists(), "nothing half-written"


def test_compressed_arks_are_read(damaged, tmp_path):
    r"""An utterance stored compressed scores as its decompressed matrix stored plain (the exit status alone was
    checked), and near the matrix before compression."""
    import kaldiio

    from flowaccent.score.tables import read_tsv

    exp, corpus = damaged
    utt, ark, offset = entries(corpus)[0]
    features = kaldiio.load_mat(f"{ark}:{offset}")
    lines = (corpus / "feats.scp").read_text().splitlines()
    log_ll = {}
    for name in ("before", "compressed", "decompressed"):
        if name == "compressed":
            kaldiio.save_ark(str(corpus / f"{name}.ark"), {utt: features}, compression_method=2)
        elif name == "decompressed":
            decompressed = kaldiio.load_mat(f"{corpus}/compressed.ark:{len(utt) + 1}")
            assert 0 < np.abs(decompressed - features).max() < 0.05  # lossy
            kaldiio.save_ark(str(corpus / f"{name}.ark"), {utt: decompressed})
        if name != "before":
            lines[0] = f"{utt} {corpus}/{name}.ark:{len(utt) + 1}"
            (corpus / "feats.scp").write_text("\n".join(lines) + "\n")
        assert main(["score", "--exp", str(exp), "--out", str(tmp_path / name), str(corpus), "--quiet"]) == 0
        log_ll[name] = read_tsv(tmp_path / name / "corpus" / "utt_scores.tsv")["log_ll"]
    first = read_tsv(tmp_path / "before" / "corpus" / "utt_scores.tsv")["utt"].index(utt)
    np.testing.assert_allclose(log_ll["compressed"], log_ll["decompressed"], atol=1e-5)
    np.testing.assert_array_equal(np.delete(log_ll["compressed"], first), np.delete(log_ll["before"], first))
    assert 0 < abs(log_ll["compressed"][first] - log_ll["before"][first]) < 0.1


def test_a_wav_entry_that_is_not_audio(wav_data_dir, capsys):
    path = read_table(wav_data_dir / "wav.scp")["spkA-001"]
    Path(path).write_bytes(b"RIFF\x00\x00garbage")
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "wav.scp: utterance 'spkA-001'" in err[0] and "not a readable WAV" in err[0]
    assert not (wav_data_dir / "feats.scp").exists()
    lines = (wav_data_dir / "wav.scp").read_text().splitlines()
    lines[1] = f"spkA-001 {wav_data_dir}"  # it said the directory did not exist
    (wav_data_dir / "wav.scp").write_text("\n".join(lines) + "\n")
    assert main(["fbank", str(wav_data_dir), "--quiet"]) == 1
    assert f"utterance 'spkA-001': '{wav_data_dir}' is a directory, not an audio file" in capsys.readouterr().err


def test_an_empty_name_or_dir_in_name_equals_dir_is_one_line(damaged, tmp_path, capsys):
    r"""``=DIR`` said ``=DIR: not a directory``; ``NAME=`` was read as the current folder (``utt2spk: required but
    missing``). A folder whose name holds ``=`` is still a path."""
    exp, corpus = damaged
    for spec, said in ((f"={corpus}", "NAME"), (f"{corpus.name}=", "DATA_DIR")):
        assert main(["score", "--exp", str(exp), "--out", str(tmp_path / "s"), spec, "--quiet"]) == 1
        assert capsys.readouterr().err.strip() == \
            f"flowaccent score: error: '{spec}': NAME=DATA_DIR with an empty {said}"
    missing = f"{tmp_path}/lr=0.1/missing"  # a path with = that is not there: named whole, not split at the =
    assert main(["score", "--exp", str(exp), "--out", str(tmp_path / "s"), missing, "--quiet"]) == 1
    assert f"{missing}: no such directory" in capsys.readouterr().err
    odd = tmp_path / "a=b"
    shutil.copytree(corpus, odd)
    assert main(["score", "--exp", str(exp), "--out", str(tmp_path / "s"), str(odd), "--quiet"]) == 1
    assert "'a=b' cannot name a set" in capsys.readouterr().err  # read as the folder (named by NAME=, it scores)
    assert main(["score", "--exp", str(exp), "--out", str(tmp_path / "s"), f"odd={odd}", "--quiet"]) == 0
    assert (tmp_path / "s" / "odd" / "utt_scores.tsv").exists()


def test_no_traceback_from_a_real_process(damaged, tmp_path):
    exp, corpus = damaged
    cut_ark(corpus, 40)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "flowaccent",
            "score",
            "--exp",
            str(exp),
            "--out",
            str(tmp_path / "s"),
            str(corpus),
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_output_that_cannot_be_written_is_one_line(monkeypatch, capsys):
    r"""A read-only or full file system was a traceback of 15-27 lines from every command; other OS errors
    (a bug's) still are, unless they name a file (a path the user gave)."""
    import errno
    import os

    import flowaccent.score.run as run

    def fails(code, filename="/data/scores/.x.tmp.1"):
        def score_corpora(*args, **kwargs):
            raise OSError(code, os.strerror(code), *([filename] if filename else []))

        return score_corpora

    for code in (errno.ENOSPC, errno.EROFS):
        monkeypatch.setattr(run, "score_corpora", fails(code))
        assert main(["score", "--exp", "e", "--out", "o", "d"]) == 1
        # the file a hidden temporary one was to become: the name the user knows
        assert capsys.readouterr().err == f"flowaccent score: error: /data/scores/x: {os.strerror(code)}\n"
    monkeypatch.setattr(run, "score_corpora", fails(errno.ENOSPC, None))  # no file named: the output folder
    assert main(["score", "--exp", "e", "--out", "o", "d"]) == 1
    assert capsys.readouterr().err == f"flowaccent score: error: writing into o: {os.strerror(errno.ENOSPC)}\n"
    import flowaccent.cli.fbank as fbank  # a data dir's command: it said only 'No space left on device'

    monkeypatch.setattr(fbank, "make_fbank", fails(errno.ENOSPC, None))
    assert main(["fbank", "d"]) == 1
    assert capsys.readouterr().err == f"flowaccent fbank: error: writing into d: {os.strerror(errno.ENOSPC)}\n"
    import flowaccent.cli.synth as synth  # 'synth /ro/out' said '/ro/.out.tmp-8qadta9v', a name never given

    for filename, said in [("/ro/.out.tmp-8qadta9v", "/ro/out"), ("/ro/.out.tmp-8q_a/zh/.text.tmp.7",
                                                                  "/ro/out/zh/text"),
                           ("/ro/figs/.figures.lock", "/ro/figs"), (None, "writing into out")]:
        monkeypatch.setattr(synth, "make_corpus", fails(errno.EROFS, filename))
        assert main(["synth", "out"]) == 1
        assert capsys.readouterr().err == f"flowaccent synth: error: {said}: {os.strerror(errno.EROFS)}\n"
    monkeypatch.setattr(run, "score_corpora", fails(errno.EBADF, None))
    with pytest.raises(OSError):
        main(["score", "--exp", "e", "--out", "o", "d"])



def test_a_path_through_a_file_is_one_line(tmp_path, capsys):
    r"""``--exp afile/x`` (NotADirectoryError) and other errors of a path the user gave were tracebacks."""
    (tmp_path / "afile").write_text("")
    assert main(["train", str(tmp_path / "d"), "--exp", str(tmp_path / "afile" / "x")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("flowaccent train: error: ") and "Traceback" not in err and err.count("\n") == 1


def test_a_ctrl_c_while_starting_is_one_line(monkeypatch, capsys):
    r"""A Ctrl-C while the parser imported torch was a 30-107-line traceback."""
    import flowaccent.cli.main as cli

    def interrupted(command):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert main(["score", "--exp", "e", "d"]) == 130
    assert capsys.readouterr().err == "flowaccent: interrupted\n"


@pytest.mark.parametrize("argv", [["train", "d", "--exp", "e", "--train.seed", "-1"],
                                  ["train", "d", "--exp", "e", "--train.seed", "99999999999999999999999"],
                                  ["score", "--exp", "e", "--out", "o", "--seed", "-1", "d"]])
def test_a_seed_the_generators_refuse_is_one_line(argv, capsys):
    assert main(argv) != 0
    seed = "seed (--seed)" if argv[0] == "score" else "seed"  # score's options are not --score.X
    assert f"{seed} must be in [0, 2**63)" in capsys.readouterr().err


def test_a_home_folder_after_an_equals_sign_is_expanded(monkeypatch, tmp_path):
    r"""The shell leaves ``--out=~/x`` as it is: the command made a folder named ``~`` in the current one."""
    import flowaccent.cli.score as score_cli

    seen = []
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(score_cli, "run", lambda args: seen.append((args.exp, args.out, args.checkpoint,
                                                                    args.data_dirs)) or 0)
    assert main(["score", "--exp=~/exp", "--out=~/scores", "--checkpoint", "~/exp/last.pt", "native=~/a", "~/b",
                 "c=d~"]) == 0
    home = tmp_path / "home"
    assert seen == [(f"{home}/exp", f"{home}/scores", f"{home}/exp/last.pt", [f"native={home}/a", f"{home}/b", "c=d~"])]
