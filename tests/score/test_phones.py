r"""``flowaccent phones``: the scored frames of each phone of a CTM pooled per set, checked against the frames read
back with kaldiio; the frame ranges of a phone; the bootstrap of speakers against one written out; the command's
files, notes and one-line errors."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
from pathlib import Path

import kaldiio
import numpy as np
import pytest

from flowaccent.cli.main import main
from flowaccent.data.ctm import Segment, read_ctm
from flowaccent.errors import ConfigError, DataDirError
from flowaccent.report.phones import build_report, markdown_text, read_ctms, summary_line
from flowaccent.score.metrics import mean_difference_interval_over_groups
from flowaccent.score.phones import DEFAULT_SHIFT, differences, frame_ranges, frame_shift_of, set_phones
from flowaccent.score.tables import read_tsv

PHONES = ("sil", "a", "b", "c", "d")


@pytest.fixture(scope="module")
def scored(scored_dir_and_exp):
    r"""``(root, scores)``: native, zh and ja of ``trained`` scored by its DNF flow (the conftest's scores)."""
    scores, exp = scored_dir_and_exp
    return exp.parent, scores


def _two_ctms(folder, scores) -> list[str]:
    r"""The CTMs of native (seed 2) and zh (seed 3) of :func:`_write_ctm` in ``folder``, their paths."""
    for name, seed in (("native", 2), ("zh", 3)):
        _write_ctm(folder / f"{name}.ctm", scores, name, seed)
    return [str(folder / "native.ctm"), str(folder / "zh.ctm")]


def _write_ctm(path, scores, name, seed, skip=()):
    r"""A CTM of random phones on whole frames (start = frame x 0.01 s), gaps left between some, for each of the
    set's utterances but ``skip``; returns ``{utt: [(phone, first, end)]}``, the frames each phone holds."""
    rng = np.random.default_rng(seed)
    table = read_tsv(scores / name / "utt_scores.tsv")
    lines, truth = [], {}
    for utt, frames in zip(table["utt"], table["num_frames"]):
        if utt in skip:
            continue
        t, truth[utt] = int(rng.integers(0, 3)), []
        while t < frames:
            length = int(rng.integers(1, 9))
            phone = PHONES[int(rng.integers(len(PHONES)))]
            truth[utt].append((phone, t, min(t + length, int(frames))))
            lines.append(f"{utt} 1 {t * 0.01:.2f} {length * 0.01:.2f} {phone}\n")  # the last may run past the end
            t += length + int(rng.integers(0, 2))
    path.write_text("".join(lines))
    return truth


def test_each_phones_frames_are_pooled_as_read_back(scored, tmp_path):
    root, scores = scored
    truth = _write_ctm(tmp_path / "zh.ctm", scores, "zh", seed=1, skip={"z1-0001", "z2-0006"})
    found = set_phones(scores, "zh", read_ctm(tmp_path / "zh.ctm"))
    assert found.frame_shift == (DEFAULT_SHIFT, f"Kaldi's default ({root / 'zh'} has neither fbank.json nor "
                                                f"frame_shift)")
    table = read_tsv(scores / "zh" / "utt_scores.tsv")
    speaker_of = dict(zip(table["utt"], table["spk"]))
    frames = dict(kaldiio.load_scp(str(scores / "zh" / "frame_scores.scp")))
    pooled: dict = {}
    for utt, ranges in truth.items():
        log_ll = frames[utt].astype(np.float64).sum(axis=1)
        mean = log_ll.mean()
        assert mean == pytest.approx(table["log_ll"][list(table["utt"]).index(utt)], abs=1e-4)
        for phone, first, end in ranges:
            p = pooled.setdefault(phone, {"tokens": 0, "frames": [], "log_p": [], "relative": [], "spk": {}})
            p["tokens"] += 1
            p["frames"] += list(log_ll[first:end])
            p["log_p"] += list(frames[utt][first:end, 0])
            p["relative"] += list(log_ll[first:end] - mean)
            spk = p["spk"].setdefault(speaker_of[utt], [0, 0.0, 0.0])
            spk[0] += end - first
            spk[1] += log_ll[first:end].sum()
            spk[2] += (log_ll[first:end] - mean).sum()
    assert (found.utts, found.aligned_utts) == (40, 38)
    assert found.held_frames == 38 * 40
    assert found.aligned_frames == sum(end - first for r in truth.values() for _, first, end in r) < 38 * 40
    assert list(found.phones) == sorted(pooled)
    for phone, p in found.phones.items():
        want = pooled[phone]
        assert (p.tokens, p.frames) == (want["tokens"], len(want["frames"]))
        assert p.log_ll == pytest.approx(np.mean(want["frames"]), abs=1e-6)
        assert p.log_p == pytest.approx(np.mean(want["log_p"]), abs=1e-5)
        assert p.log_p + p.log_det == pytest.approx(p.log_ll, abs=1e-6)
        assert p.relative == pytest.approx(np.mean(want["relative"]), abs=1e-6)
        assert p.speakers == tuple(sorted(want["spk"]))
        rows = np.array([want["spk"][s] for s in p.speakers])
        np.testing.assert_array_equal(p.speaker_frames, rows[:, 0])
        np.testing.assert_allclose(p.speaker_log_ll, rows[:, 1], atol=1e-6)
        np.testing.assert_allclose(p.speaker_relative, rows[:, 2], atol=1e-6)


@pytest.mark.parametrize("segments, frames, want", [
    ([(0.0, 0.034, "a"), (0.034, 0.016, "b")], 10, [("a", 0, 3), ("b", 3, 5)]),  # 3.4 -> 3, 5.0 -> 5
    ([(0.0, 0.035, "a"), (0.035, 0.016, "b")], 10, [("a", 0, 4), ("b", 4, 5)]),  # halves round up, as Kaldi's
    ([(0.02, 0.003, "a"), (0.023, 0.03, "b")], 10, [("b", 2, 5)]),  # a phone of no frame is left out
    ([(0.0, 0.1, "a"), (0.1, 0.05, "b")], 12, [("a", 0, 10), ("b", 10, 12)]),  # past the last frame: cut
    ([(0.0, 0.0501, "a"), (0.0499, 0.05, "b")], 20, [("a", 0, 5), ("b", 5, 10)]),  # touching within rounding
    ([(0.0, 0.056, "a"), (0.054, 0.05, "b")], 20, [("a", 0, 6), ("b", 6, 10)]),  # one frame, one phone
    ([(0.0, 0.05, "a"), (0.08, 0.02, "b")], 20, [("a", 0, 5), ("b", 8, 10)]),  # a gap: frames 5-7 in none
    ([(0.10, 0.05, "a"), (0.12, 0.02, "b")], 10, [("a", 10, 10)][:0]),  # within the slack past the end: dropped
])
def test_frame_ranges(segments, frames, want):
    assert frame_ranges([Segment(*s) for s in segments], frames, 0.01, "u") == want


def test_halves_round_up_not_to_even():
    r"""Kaldi's frame of a time is ``floor(t / shift + 0.5)``; Python's ``round`` takes 2.5 to 2."""
    assert frame_ranges([Segment(1.25, 1.0, "a")], 10, 0.5, "u") == [("a", 3, 5)]


def test_halves_written_in_decimal_round_up_at_a_shift_of_10_ms():
    r"""``0.485 / 0.01`` is 48.49999999999999 in floating point: the half frame of the CTM's text still rounds up
    (128 of the 1000 starts 0.005 ... 9.995 s rounded down), a start and an end alike."""
    for k in range(1000):
        start = float(f"{10 * k + 5}e-3")
        assert frame_ranges([Segment(start, 0.1, "a")], 2000, 0.01, "u") == [("a", k + 1, k + 11)], start
        assert frame_ranges([Segment(0.0, start, "a")], 2000, 0.01, "u") == [("a", 0, k + 1)], start


def test_a_phone_well_past_the_utterance_is_an_error():
    frame_ranges([Segment(0.12, 0.01, "a")], 10, 0.01, "u")  # frame 12: the last frame the slack allows for
    with pytest.raises(ConfigError, match=r"u: phone 'a' starts at 0.13 s, frame 13, past the utterance's 10 "
                                          r"frames \(0.1 s at a frame shift of 0.01 s\)"):
        frame_ranges([Segment(0.0, 0.05, "sil"), Segment(0.13, 0.01, "a")], 10, 0.01, "u")


def test_the_interval_is_a_bootstrap_of_each_sides_speakers():
    r"""Against the bootstrap written out: speakers drawn with replacement on each side, their frames pooled."""
    rng = np.random.default_rng(3)
    sides = []
    for offset, speakers in ((-1.0, 6), (0.0, 9)):
        frames = [rng.normal(offset + rng.normal(0, 2), 1, int(rng.integers(5, 60))) for _ in range(speakers)]
        sides.append(frames)
    args = [a for frames in sides for a in (np.array([f.sum() for f in frames]), np.array([len(f) for f in frames]))]
    low, high = mean_difference_interval_over_groups(*args, resamples=8000, seed=0)
    draws = np.random.default_rng(11)
    written = []
    for _ in range(8000):
        means = [np.concatenate([frames[i] for i in draws.integers(0, len(frames), len(frames))]).mean()
                 for frames in sides]
        written.append(means[0] - means[1])
    want = np.percentile(written, [2.5, 97.5])
    width = want[1] - want[0]
    assert abs(low - want[0]) < 0.05 * width and abs(high - want[1]) < 0.05 * width, (low, high, want)
    mid = np.concatenate(sides[0]).mean() - np.concatenate(sides[1]).mean()
    assert low < mid < high
    assert mean_difference_interval_over_groups(*args, resamples=8000, seed=0) == [low, high]  # seeded
    two = [args[0][:2], args[1][:2], args[2], args[3]]
    assert all(math.isnan(v) for v in mean_difference_interval_over_groups(*two))


def test_phones_rank_by_relative_loglikelihood_and_keep_their_interval(scored, tmp_path):
    _, scores = scored
    ctm = {utt: segments for path in _two_ctms(tmp_path, scores) for utt, segments in read_ctm(path).items()}
    native, zh = set_phones(scores, "native", ctm), set_phones(scores, "zh", ctm)
    found = differences(zh, native, min_frames=0)
    assert [d.relative for d in found] == sorted(d.relative for d in found)
    for d in found:
        assert d.relative == pytest.approx(zh.phones[d.phone].relative - native.phones[d.phone].relative)
        assert d.value == pytest.approx(zh.phones[d.phone].log_ll - native.phones[d.phone].log_ll)
        assert d.interval[0] < d.value < d.interval[1] and d.relative_interval[0] < d.relative < d.relative_interval[1]
    frames = {d.phone: min(zh.phones[d.phone].frames, native.phones[d.phone].frames) for d in found}
    cut = sorted(frames.values())[2]
    fewer = differences(zh, native, min_frames=cut)
    assert {d.phone for d in fewer} == {p for p, n in frames.items() if n >= cut}
    kept = {d.phone: d for d in found}
    assert all(d == kept[d.phone] for d in fewer)  # seeded by its name: the same interval without the others


def test_frame_shift_is_read_where_the_set_was_scored_from(scored, tmp_path):
    root, scores = scored
    assert frame_shift_of(scores, "ja")[0] == DEFAULT_SHIFT
    (root / "ja" / "frame_shift").write_text("0.015\n")
    try:
        assert frame_shift_of(scores, "ja") == (0.015, str(root / "ja" / "frame_shift"))
        (root / "ja" / "fbank.json").write_text(json.dumps({"fbank": {"frame_shift_ms": 12.5}, "source_rates": {}}))
        assert frame_shift_of(scores, "ja") == (0.0125, str(root / "ja" / "fbank.json"))
        (root / "ja" / "fbank.json").write_text('{"bad json')  # damaged: said so, not 'has neither'
        (root / "ja" / "frame_shift").write_text("abc\n")
        said = f"Kaldi's default ({root / 'ja' / 'fbank.json'} cannot be read; {root / 'ja' / 'frame_shift'} holds no "
        assert frame_shift_of(scores, "ja") == (DEFAULT_SHIFT, said + "number)")
    finally:
        for name in ("frame_shift", "fbank.json"):
            (root / "ja" / name).unlink(missing_ok=True)
    copy = tmp_path / "copy"
    (copy / "ja").mkdir(parents=True)
    assert frame_shift_of(copy, "ja") == (DEFAULT_SHIFT, "Kaldi's default (the set's data dir is not recorded)")


def test_command_writes_tables_and_figure_as_computed(scored, tmp_path, capsys):
    _, scores = scored
    ctms = _two_ctms(tmp_path, scores)
    out = tmp_path / "out"
    assert main(["phones", "--scores", str(scores), *ctms, "--out", str(out), "--min-frames", "20"]) == 0
    err = capsys.readouterr().err
    assert "phones: note: set 'ja' left out: the CTMs hold none of its 30 utterances" in err
    assert "\n- Set 'ja' left out: the CTMs hold none of its 30 utterances." in (out / "phones.md").read_text()
    assert {p.name for p in out.iterdir()} == {"phones.md", "phone_scores.tsv", "phones.png", "phones.pdf",
                                               "phones.json", ".out.lock"}  # its lock, left as score's is
    report = build_report(scores, ctms, min_frames=20)
    rows = list(csv.DictReader(io.StringIO((out / "phone_scores.tsv").read_text()), delimiter="\t"))
    assert len(rows) == sum(len(s.phones) for s in report.sets.values())
    for row in rows:
        p = report.sets[row["set"]].phones[row["phone"]]
        assert (int(row["tokens"]), int(row["frames"]), int(row["speakers"])) == (p.tokens, p.frames, len(p.speakers))
        assert float(row["relative"]) == pytest.approx(p.relative, abs=1e-5)
        ranked = {d.phone: d for d in report.differences.get(row["set"], ())}
        if row["phone"] in ranked:
            assert float(row["relative_minus_ref"]) == pytest.approx(ranked[row["phone"]].relative, abs=1e-5)
        else:
            assert math.isnan(float(row["relative_minus_ref"]))
    markdown = (out / "phones.md").read_text()
    table = markdown.split("## zh: phones against native's", 1)[1].split("\n\n")[1].splitlines()[2:]
    assert [line.split(" | ")[0].strip("| ") for line in table] == [d.phone for d in report.differences["zh"]]
    assert "![Each phone's LogLL minus the reference's](phones.png)" in markdown
    assert main(["phones", "--scores", str(scores), *ctms, "--min-frames", "20"]) == 0
    assert capsys.readouterr().out == markdown.replace("![Each phone's LogLL minus the reference's](phones.png)\n\n",
                                                       "").replace(f" --out {out}", "")


def test_a_ctm_of_integer_phones_without_their_table_is_noted(scored, tmp_path):
    r"""``ali-to-phones`` writes integers: ranking phones '84' and '12' says nothing a user can read."""
    _, scores = scored
    ctms = _two_ctms(tmp_path, scores)
    numbers = {phone: str(i) for i, phone in enumerate(PHONES, 1)}
    for path in map(Path, ctms):
        path.write_text("".join(" ".join([*line.split()[:4], numbers[line.split()[4]]]) + "\n"
                                for line in path.read_text().splitlines()))
    (tmp_path / "phones.txt").write_text("".join(f"{name} {i}\n" for name, i in numbers.items()))
    said = "the CTMs' phones are integers (ali-to-phones'): --phones lang/phones.txt names them"
    assert said in build_report(scores, ctms, min_frames=0).notes
    assert said not in build_report(scores, ctms, min_frames=0, phones=tmp_path / "phones.txt").notes


def test_a_phone_with_a_bar_or_a_tags_bracket_keeps_its_name_and_its_tables_columns(scored, tmp_path):
    r"""A ``|`` in a phone's name ended its Markdown cell: the row's numbers fell under the next columns. Kaldi's
    ``<sil>`` was a tag a Markdown renderer dropped: the row's numbers had no phone; ``c*d*`` was an italic ``cd``."""
    from markdown_it import MarkdownIt

    _, scores = scored
    ctms = _two_ctms(tmp_path, scores)
    for path in map(Path, ctms):
        text = re.sub(r" a$", " <sil>", re.sub(r" b$", " b|x", path.read_text(), flags=re.M), flags=re.M)
        path.write_text(re.sub(r" c$", " c*d*", text, flags=re.M))
    markdown = markdown_text(build_report(scores, ctms, min_frames=0), str(scores))
    rendered = MarkdownIt("commonmark").enable("table").render(markdown)  # as GitHub shows it
    phones = [cell for cell in re.findall(r"<tr>\n<td>(.*?)</td>", rendered) if not cell.isdigit()]
    assert set(phones) >= {"b|x", "&lt;sil&gt;", "c*d*"} and not [phone for phone in phones if "<" in phone]
    tables = [block.splitlines() for block in markdown.split("\n\n") if block.startswith("| ")]
    assert any("b\\|x" in row for table in tables for row in table)
    assert any(row.startswith("| \\<sil> | ") for table in tables for row in table) and "| <sil>" not in markdown
    rare = markdown_text(build_report(scores, ctms, min_frames=10**6), str(scores))  # listed under the tables
    assert "Fewer than 1000000 frames here or in native: " in rare and "\\<sil> (" in rare and " <sil> (" not in rare
    for header, _, *rows in tables:  # each row as many cells as its header
        assert {len(re.split(r"(?<!\\)\|", row)) for row in rows} == {len(header.split("|"))}


def test_a_set_with_no_phone_ranked_is_said_why(scored, tmp_path):
    r"""``--min-frames`` above every phone's frames ranked none: the command said '0 phones ranked; lowest ...:
    none'. It now says how many phones the set shares with the reference, each too rare."""
    _, scores = scored
    ctms = _two_ctms(tmp_path, scores)
    report = build_report(scores, ctms, min_frames=10**6)
    shared = len(report.sets["zh"].phones)
    assert summary_line(report) == [f"zh: no phone ranked: {shared} phones in native too, each of fewer than "
                                    "--min-frames 1000000 frames here or there"]
    assert summary_line(build_report(scores, ctms, min_frames=0))[0].startswith(f"zh: {shared} phones ranked; ")
    zh = Path(ctms[1])  # none of its phones in the reference's (another phone set's CTM)
    zh.write_text(re.sub(r" (\S+)$", r" zh_\1", zh.read_text(), flags=re.M))
    assert summary_line(build_report(scores, ctms, min_frames=0)) == [f"zh: no phone ranked: none of its {shared} "
                                                                      "phones is in native"]


def test_an_empty_ctm_among_others_is_noted(scored, tmp_path):
    r"""Every CTM empty is an error; one among others is noted, and the others' phones ranked (it stopped the run)."""
    _, scores = scored
    ctms = _two_ctms(tmp_path, scores)
    (tmp_path / "empty.ctm").write_text("")
    report = build_report(scores, [*ctms, str(tmp_path / "empty.ctm")], min_frames=0)
    assert f"{tmp_path / 'empty.ctm'}: no phone in it (an empty CTM: did its alignment fail?)" in report.notes
    assert report.differences == build_report(scores, ctms, min_frames=0).differences
    # a CTM of no scored utterance (another set's, given by mistake) was left out without a word
    (tmp_path / "other.ctm").write_text("train-0001 1 0.00 0.05 a\ntrain-0002 1 0.00 0.05 b\n")
    report = build_report(scores, [*ctms, str(tmp_path / "other.ctm")], min_frames=0)
    plain = build_report(scores, ctms, min_frames=0).notes  # ja has no CTM here: a note of its own
    assert report.notes == (*plain, f"{tmp_path / 'other.ctm'}: none of its 2 utterance(s) or recording(s) is of a "
                            "scored set: not used (a CTM of another set?)")
    assert not [note for note in plain if "not used" in note]


def test_a_copied_scores_folder_is_read_from_its_own_arks(scored, tmp_path):
    r"""``frame_scores.scp`` holds the ark's absolute path: a copy of the scores read the original folder's frame
    scores, another model's once the original was scored again (exit 0, its numbers under the copy's name), and a
    moved folder failed on an ark that no longer was. A copy reads its own ark, at the scp's offsets."""
    import shutil

    from flowaccent.data.ark_writer import ArkWriter
    from flowaccent.data.kaldi_io import ScpReader

    _, scores = scored
    ctms = _two_ctms(tmp_path, scores)
    first = shutil.copytree(scores, tmp_path / "first")  # stands for a folder scored into: its own arks
    for scp in first.glob("*/frame_scores.scp"):
        scp.write_text(scp.read_text().replace(str(scores), str(first)))
    copy = shutil.copytree(first, tmp_path / "copy")  # its scp names first's arks
    for scp in first.glob("*/frame_scores.scp"):  # first scored again, by another model: other frame scores
        matrices = list(ScpReader(scp))
        with ArkWriter(scp.parent / "frame_scores.ark", scp) as ark:
            for utt, matrix in matrices:
                ark.write(utt, matrix * 2)
    assert build_report(copy, ctms, min_frames=0).differences == build_report(scores, ctms, min_frames=0).differences
    assert build_report(first, ctms, min_frames=0).differences != build_report(scores, ctms, min_frames=0).differences
    shutil.rmtree(first)  # moved: 'ark ... does not exist'
    assert build_report(copy, ctms, min_frames=0).differences == build_report(scores, ctms, min_frames=0).differences


def test_one_ctm_written_with_channel_a_and_with_channel_1_is_the_same_ctm(tmp_path):
    r"""NIST's channel ``A`` is ``1``: the same phones in two files, the channel written each way, are one CTM (they
    were said to be 'other phones'); other phones are still refused."""
    lines = "u1 {} 0.00 0.12 sil\nu1 {} 0.12 0.08 T\n"
    for name, channel in (("a.ctm", "A"), ("one.ctm", "1")):
        (tmp_path / name).write_text(lines.format(channel, channel))
    (tmp_path / "other.ctm").write_text(lines.format("A", "A").replace(" T", " D"))
    merged = read_ctms([tmp_path / "a.ctm", tmp_path / "one.ctm"])
    assert [s.phone for s in merged["u1"]] == ["sil", "T"]
    with pytest.raises(ConfigError, match="other.ctm: utterance 'u1' is in .*one.ctm too, with other phones"):
        read_ctms([tmp_path / "one.ctm", tmp_path / "other.ctm"])


@pytest.mark.parametrize("args, said", [
    (["{zh}"], "the CTMs hold none of the utterances of the reference set 'native'"),
    (["{native}"], "the CTMs hold utterances of no set but the reference 'native': nothing to set against it; set "
                   "'zh' left out: the CTMs hold none of its 40 utterances; set 'ja' left out: "),  # why: a channel?
    (["{native}", "{zh}", "--reference", "xx"], "{scores}: no set 'xx' to set the others against (sets: native, zh, "
                                                "ja; --reference NAME)"),
    (["{native}", "{clash}"], "{clash}: utterance 'n0-0000' is in {native} too, with other phones"),
    (["{empty}"], "{empty}: no phone in it (an empty CTM: did the alignment fail?)"),  # among others: a note
    (["{native}", "{empty}"], "nothing to set against it; {empty}: no phone in it (an empty CTM: did its alignment "
                              "fail?); set 'zh' left out"),  # zh's CTM empty: the likeliest why, not said
    (["{native}", "{zh}", "--out", "{native}"], "--out {native} is a file"),
    (["{native}", "{zh}", "--out", "{scores}/zh"], "--out {scores}/zh is a scored set's folder; give the phones tables "
                                                  "and figure a folder of their own"),
    (["{native}", "{zh}", "--frame-shift", "0.001"], "set 'native', utterance 'n0-0000': phone"),
    (["{native}", "{zh}", "--phones", "{native}"], "{native}: line 1: expected '<phone> <integer>'"),
    (["{native}", "--scores", "{root}"], "{root}/summary.json: missing"),
    (["{native}", "--scores", "{holder}"], "{holder}: an experiment dir, not scores; its scores are {holder}/scores "
                                           "(--scores: the --out of 'flowaccent score')"),
    (["{native}", "{zh}", "--scores", "{headless}"], "{headless}/zh/utt_scores.tsv: no column utt, spk, num_frames "
                                                     "(its header: x); run 'flowaccent score' again"),
])
def test_user_errors_are_one_line(scored, tmp_path, capsys, args, said):
    root, scores = scored
    _two_ctms(tmp_path, scores)
    (tmp_path / "clash.ctm").write_text("n0-0000 1 0.00 0.05 x\n")
    (tmp_path / "empty.ctm").write_text(";; NIST's comment only\n")
    names = {n: str(tmp_path / f"{n}.ctm") for n in ("native", "zh", "clash", "empty")}
    names |= {"scores": scores, "root": root}
    (tmp_path / "holder").mkdir()  # an experiment dir holding its scores, given as them
    (tmp_path / "holder" / "scores").symlink_to(scores)
    headless = shutil.copytree(scores, tmp_path / "headless", symlinks=True)  # a table whose header lost its names
    (headless / "zh" / "utt_scores.tsv").write_text("x\n")
    names |= {"holder": tmp_path / "holder", "headless": headless}
    argv = ["phones", "--scores", str(scores), *(a.format(**names) for a in args)]
    status = main(argv)
    out, err = capsys.readouterr()
    assert status == 1 and out == "" and err.count("\n") == 1, err
    assert err.startswith("flowaccent phones: error: ") and said.format(**names) in err, err


def test_notes_and_left_out_phones_say_what_is_not_ranked(scored, tmp_path):
    _, scores = scored
    _write_ctm(tmp_path / "native.ctm", scores, "native", 2)
    _write_ctm(tmp_path / "zh.ctm", scores, "zh", 3, skip={"z1-0001", "z2-0006"})
    with (tmp_path / "zh.ctm").open("a") as f:
        f.write("z1-0001 1 0.00 0.01 x\n")  # a phone native does not have, in an utterance of its own
    ctms = [tmp_path / "native.ctm", tmp_path / "zh.ctm"]
    report = build_report(scores, ctms, reference="zh", min_frames=0)
    assert list(report.sets) == ["zh", "native"] and list(report.differences) == ["native"]  # the reference first
    assert report.notes == ("set 'zh': the CTMs hold 39 of its 40 utterances",
                            "set 'ja' left out: the CTMs hold none of its 30 utterances")
    halved = build_report(scores, ctms, frame_shift=0.02).notes
    assert any(re.fullmatch(r"set 'native': its phones hold \d{3} of the 1600 frames of the utterances the CTMs hold: "
                            r"long gaps between phones, or another frame shift than 0.02 s \(--frame-shift\)\?", note)
               for note in halved), halved  # the frames of the first half of each utterance, less the gaps
    markdown = markdown_text(build_report(scores, ctms, min_frames=10**6), str(scores))
    assert f"CTM: {ctms[0]}, {ctms[1]}." in markdown
    rare = markdown.split("## zh: phones against native's", 1)[1].split("\n\n")[2]
    assert rare.startswith("Fewer than 1000000 frames here or in native: ") and "a (" in rare
    assert "Not in native (relative LogLL, frames): x (" in markdown and ", 1 frames)." in markdown


def test_report_shows_each_sets_lowest_phones_of_these_scores_only(scored, tmp_path, capsys, monkeypatch):
    from flowaccent.report import phones as part

    monkeypatch.setattr(part, "REPORT_PHONES", 3)  # of the 5 (PHONES)
    root, scores = scored
    ctms = _two_ctms(tmp_path, scores)
    phones = tmp_path / "phones"
    assert main(["phones", "--scores", str(scores), *ctms, "--out", str(phones), "--min-frames", "0"]) == 0
    stamp = json.loads((phones / "phones.json").read_text())
    assert (stamp["reference"], stamp["min_frames"], stamp["ctms"]) == ("native", 0, ctms)
    assert stamp["notes"] == ["set 'ja' left out: the CTMs hold none of its 30 utterances"]
    report = tmp_path / "report"
    argv = ["report", "--exp", str(root / "exp"), "--scores", str(scores), "--out", str(report), "--tsne-frames",
            "0", "--phones", str(phones)]
    assert main(argv) == 0
    markdown = (report / "report.md").read_text()
    ranked = build_report(scores, ctms, min_frames=0).differences["zh"]
    title = f"## Phones: zh's lowest relative LogLL minus native's (3 of 5 ranked; {phones}/phones.md has all)"
    rows = markdown.split(title + "\n\n", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    assert [row.split(" | ")[0].strip("| ") for row in rows] == [d.phone for d in ranked[:3]]
    assert f"| {ranked[0].relative:.3f} [{ranked[0].relative_interval[0]:.2f}, " in rows[0]
    assert (report / "figures" / "phones_relative.png").is_file() and "figures/phones_relative.png" in markdown
    assert markdown.count("## Phones: ") == 1  # zh's: no table of the reference against itself
    assert "phones: flowaccent phones --scores" in markdown  # how it was made
    assert "Set 'ja' left out: the CTMs hold none of its 30 utterances." in markdown  # not only on the terminal
    page = (report / "report.html").read_text()  # the legend's '<=' and '<' were parse errors of the page
    assert "holds the frames t with round(start / shift) &lt;= t &lt; round(end / shift))" in page
    assert "holds the frames t with round(start / shift) <= t < round(end / shift))" in markdown
    other = tmp_path / "canonical"  # a second run, as the demo's of canonical.ctm: both shown, each named
    ctms_other = [str(tmp_path / "canonical.ctm"), ctms[0]]
    _write_ctm(tmp_path / "canonical.ctm", scores, "zh", seed=9)
    assert main(["phones", "--scores", str(scores), *ctms_other, "--out", str(other), "--min-frames", "0"]) == 0
    assert main([*argv, "--phones", str(other)]) == 0
    both = (report / "report.md").read_text()
    assert both.count("## Phones") == 2 and "## Phones (phones: native.ctm, zh.ctm): zh's lowest" in both
    second = both.split("## Phones (canonical: canonical.ctm, native.ctm): zh's lowest", 1)[1]
    again = build_report(scores, ctms_other, min_frames=0).differences["zh"]
    assert f"| {again[0].relative:.3f} [{again[0].relative_interval[0]:.2f}, " in second.split("\n\n", 2)[1]
    assert (report / "figures" / "phones_relative_2.png").read_bytes() == (other / "phones.png").read_bytes()
    assert "(flowaccent phones, canonical: canonical.ctm, native.ctm)](figures/phones_relative_2.png)" in both
    assert both.count("phones: flowaccent phones --scores") == 2
    assert main([*argv, "--phones", str(phones)]) == 1  # one run twice
    assert "a folder given twice" in capsys.readouterr().err
    assert main(argv[:-2]) == 0  # without --phones: no phones, and the earlier report's figure gone
    assert "## Phones" not in (report / "report.md").read_text()
    assert not (report / "figures" / "phones_relative.png").exists()
    assert not (report / "figures" / "phones_relative_2.png").exists()
    capsys.readouterr()
    summary = scores / "summary.json"
    kept = summary.read_text()
    try:
        summary.write_text(kept.replace('"reference"', '"reference" ', 1))  # scored again, as far as it can tell
        assert main(argv) == 1
        said = f"{phones}: phones of {scores} as they were then, not of {scores} as they are (other scores, or scored"
        again = f" again since); run 'flowaccent phones --scores {scores} CTM ... --out {phones}' again"
        assert said + again in capsys.readouterr().err
    finally:
        summary.write_text(kept)
    (phones / "phones.json").unlink()
    assert main(argv) == 1
    assert f"{phones / 'phones.json'}: missing; run 'flowaccent phones --out {phones}' first" in capsys.readouterr().err
    assert main([*argv[:-1], str(scores)]) == 1  # the scores given as phones: it said to write phones into them
    assert (f"{scores}: the output of 'flowaccent score' or 'blurmask', not of 'flowaccent phones' (--phones: the "
            f"folder 'flowaccent phones --out DIR' wrote)") in capsys.readouterr().err


def test_base_phones_pool_kaldis_variants_of_a_phone(scored, tmp_path):
    _, scores = scored
    plain = _two_ctms(tmp_path, scores)
    variants = []
    for i, path in enumerate(plain):  # each phone as Kaldi's position-dependent, stressed variants of it
        lines = Path(path).read_text().splitlines()
        fields = [line.split() for line in lines]
        text = "".join(" ".join(f[:4] + [f"{f[4]}{n % 3}_{'BEIS'[n % 4]}"]) + "\n" for n, f in enumerate(fields))
        variants.append(tmp_path / f"variants{i}.ctm")
        variants[-1].write_text(text)
    assert len(build_report(scores, variants, min_frames=0).sets["zh"].phones) > 5 * 4  # split without it
    pooled, want = build_report(scores, variants, min_frames=0, base=True), build_report(scores, plain, min_frames=0)
    assert pooled.differences == want.differences
    assert {n: list(s.phones) for n, s in pooled.sets.items()} == {n: list(s.phones) for n, s in want.sets.items()}


def test_a_ctm_of_recordings_is_cut_into_the_utterances_by_the_data_dirs_segments(scored, tmp_path):
    r"""zh's utterances laid end to end in one recording per speaker (``segments``), z0 and z1 on channels A and B
    of one call (``reco2file_and_channel``), and its CTM written against the recordings as ``utils/convert_ctm.pl``
    writes one: the same phones, frames and differences as the CTM of utterances."""
    root, scores = scored
    plain = _two_ctms(tmp_path, scores)
    table = read_tsv(scores / "zh" / "utt_scores.tsv")
    frames_of = dict(zip(table["utt"], map(int, table["num_frames"])))
    spans, offset = {}, {}
    for utt in sorted(frames_of):
        speaker = utt.split("-")[0]
        start = offset.get(speaker, 1.5)
        spans[utt] = (speaker, start, start + frames_of[utt] * 0.01 + 0.1)  # the audio outlasts the last frame
        offset[speaker] = spans[utt][2] + 0.4
    file_of = {"z0": "call A", "z1": "call B"}
    lines = []
    for line in Path(plain[1]).read_text().splitlines():
        utt, _, start, duration, phone = line.split()
        recording, begin, _ = spans[utt]
        file, channel = file_of.get(recording, f"{recording} 1").split()
        lines.append(f"{file} {channel} {float(start) + begin:.2f} {duration} {phone}\n")
    recordings = tmp_path / "recordings.ctm"
    recordings.write_text("".join(reversed(lines)))
    made = [root / "zh" / "segments", root / "zh" / "reco2file_and_channel"]
    made[0].write_text("".join(f"{u} {r} {s:.2f} {e:.2f}\n" for u, (r, s, e) in spans.items()))
    made[1].write_text("z0 call A\nz1 call B\n")
    try:
        cut, want = build_report(scores, [plain[0], recordings]), build_report(scores, plain)
        assert cut.differences == want.differences
        zh, zh_want = cut.sets["zh"], want.sets["zh"]
        assert (zh.aligned_utts, zh.cut_utts, zh.cut_by) == (40, 40, str(made[0]))
        assert (zh.aligned_frames, zh.held_frames) == (zh_want.aligned_frames, zh_want.held_frames)
        assert f"set 'zh': 40 utterances cut from the CTMs' recordings by {made[0]}" in cut.notes
        assert cut.sets["native"].cut_utts == 0
        assert not [note for note in cut.notes if "not used" in note]  # a CTM of recordings, cut: used
        made[1].write_text("z0 call A\nz1 call C\n")  # a channel the CTM does not hold 'call' on: z1's phones none
        z1 = sum(utt.startswith("z1-") for utt in frames_of)
        assert (f"set 'zh': the CTMs hold {40 - z1} of its 40 utterances ({made[1]} puts recording 'z1' on channel C "
                f"(3) of 'call', which the CTMs hold on channels 1, 2 only)"
                in build_report(scores, [plain[0], recordings]).notes)
        made[1].write_text("z0 call A\nz1 call B\n")
        _write_ctm(tmp_path / "ja.ctm", scores, "ja", 4)
        (root / "zh").rename(root / "zh_moved")  # scored from a data dir since moved: nothing to cut by, and said
        try:
            assert (f"set 'zh' left out: the CTMs hold none of its 40 utterances (nor can a CTM of recordings be cut "
                    f"by its data dir's segments: {root / 'zh'}, which it was scored from, is gone)"
                    in build_report(scores, [plain[0], recordings, tmp_path / "ja.ctm"]).notes)
            with pytest.raises(ConfigError, match=rf"reference set 'zh' .*\) \(nor can .*: {root / 'zh'}, which"):
                build_report(scores, [plain[0], recordings], reference="zh")
        finally:
            (root / "zh_moved").rename(root / "zh")
        mixed = {**read_ctm(recordings), "z1-0001": [Segment(0.0, 0.4, "q")]}  # an utterance's own phones first
        assert set_phones(scores, "zh", mixed).phones["q"].frames == 40
        assert set_phones(scores, "zh", mixed).cut_utts == 39
        _write_ctm(tmp_path / "some.ctm", scores, "zh", seed=3, skip={"z1-0001"})  # one neither keyed nor cut
        some = set_phones(scores, "zh", read_ctm(tmp_path / "some.ctm"))
        assert (some.aligned_utts, some.cut_utts, some.cut_by) == (39, 0, "")
        made[1].unlink()  # z0 and z1 then one recording 'call' of two channels, and the others their own
        with pytest.raises(DataDirError, match=r"the CTM holds recording 'call' on channels 1, 2: which is which "
                                               r"recording needs reco2file_and_channel"):
            spans = {u: (("call", *s[1:]) if s[0] in file_of else s) for u, s in spans.items()}
            made[0].write_text("".join(f"{u} {r} {s:.2f} {e:.2f}\n" for u, (r, s, e) in spans.items()))
            build_report(scores, [plain[0], recordings])
    finally:
        for path in made:
            path.unlink(missing_ok=True)
    channels = tmp_path / "channels.ctm"
    channels.write_text(Path(plain[1]).read_text().replace(" 1 ", " 2 ", 1))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(channels))}: utterance 'z\d-\d+': the CTM holds its "
                                          r"phones on channels 1, 2"):  # which of the CTMs: it named none
        build_report(scores, [plain[0], channels])


def test_the_figure_sets_long_phone_names_upright_on_their_side(monkeypatch, tmp_path):
    r"""Kaldi's position-dependent phones (``AH0_B``) ran into each other as upright tick labels; a set of one
    ranked phone was '1 phones'."""
    from types import SimpleNamespace

    from flowaccent.plots import figure
    from flowaccent.plots.phones import phone_differences

    drawn = []
    monkeypatch.setattr(figure, "save", lambda fig, base: drawn.append(fig) or base)

    def one(phone, value):
        return SimpleNamespace(phone=phone, relative=value, relative_interval=(value - 1, value + 1))

    for names, rotation in ((["a", "eI"], 0), (["AH0_B", "T"], 90)):
        phone_differences({"zh": [one(names[0], -2.0)], "ja": [one(p, -1.0) for p in names]}, "native", tmp_path / "p")
        ax = drawn[-1].axes[0]
        assert {t.get_rotation() for t in ax.get_xticklabels()} == {rotation}
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["zh (1 phone)", "ja (2 phones)"]
    phone_differences({"zh": [one("$s$", -2.0)]}, "native", tmp_path / "p")  # drawn as mathtext: an italic s
    (label,) = drawn[-1].axes[0].get_xticklabels()
    assert label._preprocess_math(label.get_text()) == ("$s$", False)  # matplotlib's own: the text it draws


@pytest.mark.parametrize("shift, said", [("10", "expected seconds (0.01 for 10 ms), got '10'"),
                                         ("0", "expected seconds > 0, got '0'")])
def test_a_frame_shift_in_milliseconds_is_refused(shift, said, capsys):
    r"""``--frame-shift 10`` (meant as ms) ranked no phone of any set, exit 0, without a word."""
    with pytest.raises(SystemExit) as stop:
        main(["phones", "--scores", "s", "a.ctm", "--frame-shift", shift])
    assert stop.value.code == 2
    assert f"argument --frame-shift: {said}" in capsys.readouterr().err


def test_two_runs_in_folders_of_one_name_keep_their_figures_and_notes(scored, tmp_path, monkeypatch):
    r"""Two runs in ``a/phones`` and ``b/phones`` of CTMs named alike (Kaldi's ``get_train_ctm.sh`` names each
    ``ctm``): their titles were the same, so one figure replaced the other; a second run's notes were in no part of
    the report; a note naming ``empty.ctm`` said ``Empty.ctm``."""
    root, scores = scored
    monkeypatch.chdir(tmp_path)
    for run in ("a", "b"):
        Path(run).mkdir()
        _two_ctms(Path(run), scores)
    Path("empty.ctm").write_text("")
    assert main(["phones", "--scores", str(scores), "a/native.ctm", "a/zh.ctm", "--out", "a/phones"]) == 0
    assert main(["phones", "--scores", str(scores), "b/native.ctm", "b/zh.ctm", "empty.ctm", "--out", "b/phones"]) == 0
    said = "- empty.ctm: no phone in it (an empty CTM: did its alignment fail?)."
    assert said in Path("b/phones/phones.md").read_text()
    argv = ["report", "--exp", str(root / "exp"), "--scores", str(scores), "--out", "r/", "--tsne-frames", "0"]
    assert main([*argv, "--phones", "a/phones", "--phones", "b/phones"]) == 0
    page, markdown = Path("r/report.html").read_text(), Path("r/report.md").read_text()
    for run, figure in (("a/phones: native.ctm, zh.ctm", "phones_relative.png"),
                        ("b/phones: native.ctm, zh.ctm, empty.ctm", "phones_relative_2.png")):
        assert f"## Phones ({run}): zh's lowest" in markdown
        assert f"(flowaccent phones, {run})](figures/{figure})" in markdown
    assert page.count("<figure ") == markdown.count("](figures/") and "Figure 1" in page
    # each run's notes, named by its run: the second's were lost
    assert "Phones (b/phones: native.ctm, zh.ctm, empty.ctm): empty.ctm: no phone in it" in page
    assert "Phones (a/phones: native.ctm, zh.ctm): Set 'ja' left out" in page
    assert page.count("LogLL: log p(x) of the model, the mean over the phone") == 1  # the legend once
