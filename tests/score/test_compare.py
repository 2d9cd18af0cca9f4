r"""``flowaccent compare``: two models' scores side by side, checked against their ``summary.json``; the notes
where columns do not compare like with like; bad input in one line."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil

import numpy as np
import pytest

from flowaccent.cli.main import main
from flowaccent.report.compare import SET_VALUES, default_name
from flowaccent.report.tables import fmt, with_interval
from flowaccent.score.metrics import paired_auc_difference
from flowaccent.score.tables import read_tsv

from ..train.conftest import small_config


@pytest.fixture(scope="module")
def two_models(trained):
    r"""``(root, dnf_scores, plain_scores)``: the DNF flow of ``trained`` and a plain flow on native alone, both
    scoring native, zh and ja (``EXP/scores``), the plain one without the GMM baseline."""
    from flowaccent.train.trainer import train

    root, exp = trained
    plain = root / "plain"
    train(small_config(epochs=2), plain, [str(root / "native")], quiet=True)
    sets = [str(root / n) for n in ("native", "zh", "ja")]
    assert main(["score", "--exp", str(exp), "--out", str(exp / "scores"), *sets, "--baseline", "gmm", "--quiet"]) == 0
    assert main(["score", "--exp", str(plain), "--out", str(plain / "scores"), *sets, "--quiet"]) == 0
    return root, exp / "scores", plain / "scores"


def _table(markdown: str, title: str) -> dict[str, dict[str, str]]:
    r"""``{model: {set: cell}}`` of the Markdown table under ``## title``."""
    lines = markdown.split(f"## {title}\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    return {row[0]: dict(zip(header[1:], row[1:])) for row in rows}


def test_every_value_is_each_models_own(two_models, capsys):
    root, dnf, plain = two_models
    assert main(["compare", str(dnf), f"nf={plain}"]) == 0
    text, err = capsys.readouterr()
    assert err == ""
    assert default_name(dnf) == "exp"  # EXP/scores: named by the experiment
    summaries = {"exp": json.loads((dnf / "summary.json").read_text()),
                 "nf": json.loads((plain / "summary.json").read_text())}
    for key, title in SET_VALUES:
        if key == "gmm_log_ll":
            continue
        table = _table(text, title)
        assert set(table) == {"exp", "nf"}
        for model, summary in summaries.items():
            assert table[model] == {s: fmt(v[key]) for s, v in summary["sets"].items()}, (key, model)
    relative = _table(text, "LogLL minus that of 'native' (per frame)")
    for model, summary in summaries.items():
        sets = summary["sets"]
        assert relative[model] == {s: fmt(v["log_ll"] - sets["native"]["log_ll"]) for s, v in sets.items()}
        assert relative[model]["zh"] != fmt(sets["zh"]["log_ll"])
    gmm = _table(text, "LogLL of the GMM baseline (mean per frame)")
    assert gmm["exp"] == {s: fmt(v["gmm_log_ll"]) for s, v in summaries["exp"]["sets"].items()}
    assert set(gmm["nf"].values()) == {""}  # not scored with the baseline: empty, not '–'
    llr = _table(text, "AUC of llr against 'native' (0.5: no separation; [95% interval])")
    assert llr["exp"] == {s: f"{d['by_score']['llr']:.3f} [{d['ci95']['llr'][0]:.2f}, {d['ci95']['llr'][1]:.2f}]"
                          for s, d in summaries["exp"]["detection"].items()}
    assert set(llr["nf"].values()) == {""}  # a flow without classes has no llr
    assert _table(text, "AUC of log_ll against 'native' (0.5: no separation; [95% interval])")["nf"] == {
        s: with_interval(d, "log_ll") for s, d in summaries["nf"]["detection"].items()}
    rated = _table(text, "Pearson r of log_ll with the rating (utt2score; [95% interval])")
    r = summaries["nf"]["rating"]["ja"]["log_ll"]
    assert rated["nf"] == {"ja": f"{r['pearson']:.3f} [{r['pearson_ci95'][0]:.2f}, {r['pearson_ci95'][1]:.2f}]"}
    svr = _table(text, "Pearson r of the rating predicted from mean latents (SVR, cross-validated; [95% interval])")
    cv = summaries["exp"]["regression"]["ja"]["svr_cv"]
    assert svr["exp"] == {"ja": f"{cv['pearson']:.3f} [{cv['pearson_ci95'][0]:.2f}, {cv['pearson_ci95'][1]:.2f}]"}
    assert _table(text, "Models")["exp"]["classes"] == "native, zh"
    assert "## Notes" not in text  # the same data, reference and precision
    assert f"nf: {summaries['nf']['command']}" in text


def test_many_sets_are_rows_not_columns(two_models, capsys, monkeypatch):
    r"""20 sets made Markdown tables of 20 columns, rows of 900 characters; past ``WIDE`` sets (and more sets than
    models) each value's table has a row per set and a column per model, the same cells."""
    from flowaccent.report import compare

    root, dnf, plain = two_models
    assert main(["compare", str(dnf), f"nf={plain}"]) == 0
    wide = capsys.readouterr().out
    monkeypatch.setattr(compare, "WIDE", 2)  # the three sets here, more than two models
    assert main(["compare", str(dnf), f"nf={plain}"]) == 0
    turned = capsys.readouterr().out
    assert "a row per set, a column per model" in turned and "a row per model, a column per set" in wide
    titles = [t for _, t in SET_VALUES if t != "LogLL of the GMM baseline (mean per frame)"]
    titles += ["AUC of log_ll against 'native' (0.5: no separation; [95% interval])",
               "LogLL of the GMM baseline (mean per frame)"]
    for title in titles:
        by_model, by_set = _table(wide, title), _table(turned, title)
        assert list(by_set) == list(next(iter(by_model.values()))) and len(by_set) >= 2, title  # the columns, as rows
        assert {m: {s: row[m] for s, row in by_set.items()} for m in by_model} == by_model, title
    assert _table(turned, "Models")["nf"]["classes"] == "native"  # a row per model still


def test_out_never_replaces_a_file_of_the_scores_compared(two_models, tmp_path, capsys):
    r"""``--out SCORES/summary.json`` replaced the summary with the Markdown (exit 0), and every later compare,
    phones or report on those scores failed; so did another model's summary, or a model's config.yaml. A new file,
    or an earlier comparison, is written."""
    _, dnf, plain = two_models
    for victim in (dnf / "summary.json", plain / "zh" / "utt_scores.tsv", dnf.parent / "config.yaml"):
        kept = victim.read_bytes()
        assert main(["compare", str(dnf), "--out", str(victim)]) == 1
        assert capsys.readouterr().err == (
            f"flowaccent compare: error: --out {victim} is a file there already, not an earlier comparison, which it "
            "would replace; give the comparison a file of its own (or remove that one)\n")
        assert victim.read_bytes() == kept
    beside = dnf / "compare.md"
    try:
        for _ in range(2):  # the second time over its own output
            assert main(["compare", str(dnf), str(plain), "--out", str(beside)]) == 0
        assert beside.read_text().startswith("# flowaccent: 2 model(s) side by side")
    finally:
        beside.unlink(missing_ok=True)
    capsys.readouterr()


def test_out_through_a_link_or_into_a_pipe_writes_there_and_keeps_them(two_models, tmp_path, capsys):
    r"""``--out`` was written under a temporary name and renamed: a link to a shared results file was replaced by a
    file of its own (the shared one not updated), and a device or a pipe by a regular file (as root, ``--out
    /dev/full`` replaced the system's /dev/full and said it had written there)."""
    import os
    import threading

    _, dnf, plain = two_models
    shared = tmp_path / "results" / "compare.md"
    shared.parent.mkdir()
    shared.write_text("# flowaccent: an earlier comparison\n")
    shared.chmod(0o664)
    os.link(shared, tmp_path / "hard.md")
    (tmp_path / "link.md").symlink_to(shared)
    assert main(["compare", str(dnf), str(plain), "--out", str(tmp_path / "link.md")]) == 0
    assert (tmp_path / "link.md").is_symlink()
    assert shared.read_text().startswith("# flowaccent: 2 model(s) side by side")
    # written through, as '>' writes (the review: replaced, it lost its mode and its hard link kept the old text)
    assert shared.stat().st_mode & 0o777 == 0o664 and (tmp_path / "hard.md").read_text() == shared.read_text()
    # a link made before the file it names ('latest.md' to where the results will go) was refused as broken
    (tmp_path / "latest.md").symlink_to(tmp_path / "later" / "compare.md")
    assert main(["compare", str(dnf), str(plain), "--out", str(tmp_path / "latest.md")]) == 0
    assert (tmp_path / "latest.md").is_symlink() and (tmp_path / "later" / "compare.md").read_text().startswith(
        "# flowaccent: 2 model(s) side by side")
    (tmp_path / "empty.md").touch()  # as '--out /dev/stdout > empty.md' makes it: not another file's to keep
    assert main(["compare", str(dnf), str(plain), "--out", str(tmp_path / "empty.md")]) == 0
    # '--out /dev/stdout >> earlier.md' appends, as the shell opened it (opened anew, it was truncated: the third
    # review), and '> new.md' writes
    import shlex
    import subprocess
    import sys

    command = shlex.join([sys.executable, "-m", "flowaccent", "compare", str(dnf), str(plain), "--out", "/dev/stdout"])
    for redirect in (">", ">>"):
        done = subprocess.run(["bash", "-c", f"{command} {redirect} {shlex.quote(str(tmp_path / 'stdout.md'))}"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "stdout.md").read_text().count("# flowaccent: 2 model(s) side by side") == 2
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    read = []
    reader = threading.Thread(target=lambda: read.append(fifo.read_text()), daemon=True)  # never left waiting
    reader.start()
    assert main(["compare", str(dnf), str(plain), "--out", str(fifo)]) == 0
    reader.join(timeout=60)
    assert read and read[0].startswith("# flowaccent: 2 model(s) side by side") and fifo.is_fifo()
    capsys.readouterr()


def test_a_full_stdout_is_named(two_models, capsys, monkeypatch):
    r"""'compare > /dev/full' said 'error: No space left on device', not of what."""
    import errno
    import sys

    class Full(io.StringIO):
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

    _, dnf, plain = two_models
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdout", Full())
    assert main(["compare", str(dnf), str(plain)]) == 1
    assert capsys.readouterr().err == "flowaccent compare: error: stdout: No space left on device\n"


def test_tsv_holds_every_value_as_stored(two_models, tmp_path, capsys):
    root, dnf, plain = two_models
    out = tmp_path / "compare.tsv"  # the suffix chooses the format
    assert main(["compare", f"dnf={dnf}", f"nf={plain}", "--out", str(out)]) == 0
    assert capsys.readouterr().err == f"compare: 2 model(s): {out}\n"
    rows = list(csv.DictReader(io.StringIO(out.read_text()), delimiter="\t"))
    got = {(r["model"], r["metric"], r["set"]): r["value"] for r in rows}
    assert float(got["nf", "log_ll_minus_reference", "zh"]) == float(got["nf", "log_ll", "zh"]) - float(
        got["nf", "log_ll", "native"])
    assert [(r["model"], r["set"], r["value"]) for r in rows if r["metric"] == "reference"] == [
        ("dnf", "native", "1"), ("nf", "native", "1")]  # the set each model's AUCs are against
    rows = [r for r in rows if r["metric"] not in ("log_ll_minus_reference", "reference")  # the rest: as stored
            and not r["metric"].endswith(("_minus_first", "_p_vs_first"))]  # (the paired tests: their own test)
    got = {(r["model"], r["metric"], r["set"]): r["value"] for r in rows}
    assert len(got) == len(rows)
    want = {}
    for model, folder in (("dnf", dnf), ("nf", plain)):
        summary = json.loads((folder / "summary.json").read_text())
        for s, v in summary["sets"].items():
            want |= {(model, k, s): v[k] for k, _ in SET_VALUES if k in v}
        for s, d in summary["detection"].items():
            want |= {(model, f"auc_{k}", s): a for k, a in d["by_score"].items()}
            want |= {(model, f"auc_{k}_ci95_{b}", s): d["ci95"][k][i] for k in d["by_score"]
                     for i, b in enumerate(("low", "high"))}
        for s, r in summary["rating"].items():
            want |= {(model, f"pearson_{k}", s): c["pearson"] for k, c in r.items()}
            want |= {(model, f"pearson_{k}_ci95_{b}", s): c["pearson_ci95"][i] for k, c in r.items()
                     for i, b in enumerate(("low", "high"))}
        for s, r in summary["regression"].items():
            want |= {(model, f"pearson_{k}", s): c["pearson"] for k, c in r.items() if "->" not in s}
            want |= {(model, f"pearson_svr_cv_ci95_{b}", s): r["svr_cv"]["pearson_ci95"][i]
                     for i, b in enumerate(("low", "high")) if "->" not in s}
    assert set(got) == set(want)
    assert all(float(got[k]) == (float("nan") if want[k] is None else want[k]) or want[k] is None for k in want)
    assert all(got[k] == "nan" for k in want if want[k] is None)
    assert main(["compare", f"dnf={dnf}", "--format", "md", "--out", str(tmp_path / "new" / "c.tsv")]) == 0
    assert (tmp_path / "new" / "c.tsv").read_text().startswith("# flowaccent: 1 model(s) side by side")  # its folder


def test_columns_of_other_data_references_or_precision_are_noted(two_models, tmp_path, capsys):
    root, dnf, plain = two_models
    other = tmp_path / "other"  # zh is ja's data here, the reference zh, in bf16
    sets = [f"native={root / 'native'}", f"zh={root / 'ja'}", f"ja={root / 'ja'}"]
    assert main(["score", "--exp", str(root / "plain"), "--out", str(other), *sets, "--reference", "zh",
                 "--precision", "bf16", "--quiet"]) == 0
    capsys.readouterr()
    copy = tmp_path / "copy"  # one set's stamp gone
    shutil.copytree(plain, copy)
    (copy / "ja" / ".scored.json").unlink()
    out = tmp_path / "c.md"
    assert main(["compare", f"dnf={dnf}", f"other={other}", f"copy={copy}", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    text = out.read_text()
    notes = [line[2:] for line in text.split("## Notes\n\n", 1)[1].split("\n\n", 1)[0].splitlines()]
    assert notes == [
        "The AUCs are against each model's reference set: dnf: native; other: zh; copy: native; so no table pairs "
        "them (each model's AUC minus the first's, DeLong's test): that needs one reference set.",
        "Set 'zh' was scored from other utterances by some models (utt2spk differs: dnf, copy | other): its columns "
        "compare different data.",
        "Set 'zh' was scored from other features by some models (feats.scp differs: dnf, copy | other): its columns "
        "compare different data.",
        "Set 'ja' of copy: no .scored.json that says its data (scored before flowaccent wrote one, or removed or "
        "edited since): not checked to be the same data as the other models'.",
        "Scored in other precisions: dnf: fp32; other: bf16; copy: fp32 (score in fp32 for numbers you report).",
    ]
    assert err.splitlines() == [f"compare: note: {n}" for n in notes] + [f"compare: 3 model(s): {out}"]
    assert "## AUC of log_ll against each model's own reference set (0.5" in text
    assert "minus dnf's" not in text  # AUCs against other references: not paired
    (copy / "zh" / ".scored.json").write_text('{"data": 5, "options": []}')  # edited: said as not checked
    assert main(["compare", f"dnf={dnf}", f"copy={copy}", "--format", "tsv"]) == 0
    assert "compare: note: Set 'zh' of copy: no .scored.json that says its data" in capsys.readouterr().err
    # the one reference set of both, of other utterances: every AUC compares against other data
    same = tmp_path / "same"
    assert main(["score", "--exp", str(root / "plain"), "--out", str(same), f"native={root / 'ja'}",
                 f"zh={root / 'zh'}", "--reference", "native", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["compare", f"dnf={dnf}", f"same={same}", "--format", "tsv"]) == 0
    err = capsys.readouterr().err
    assert ("compare: note: Set 'native' was scored from other utterances by some models (utt2spk differs: dnf | "
            "same): its columns compare different data, and so does every AUC and LogLL-minus-reference column: it "
            "is their reference.\n") in err
    assert "Set 'zh' was scored from other utterances" not in err


def test_one_folder_twice_a_model_trained_since_and_names_of_markup_are_noted_and_sets_keep_one_order(
        two_models, tmp_path, capsys):
    r"""A walkthrough's findings: one folder under two names was compared with itself without a word; scores of a
    model trained again since were shown as the model's (``report`` refuses them); a note named a model ``_nf_``
    in italics (the tables escaped it, the notes not); a set's column moved from table to table (each table took the
    first model that had the value: the DNF's llr table had the DNF's order); ``--out new/`` wrote a file."""
    from markdown_it import MarkdownIt

    root, dnf, plain = two_models
    exp = root / "exp"
    flipped = tmp_path / "flipped"  # the DNF's sets in another order, and one named as markup
    assert main(["score", "--exp", str(exp), "--out", str(flipped), f"__ja__={root / 'ja'}", f"zh={root / 'zh'}",
                 f"native={root / 'native'}", "--quiet"]) == 0
    since = shutil.copytree(plain, tmp_path / "since")
    summary = json.loads((since / "summary.json").read_text())
    summary["model"]["final_digest"] = "0" * 64  # as if its final.pt were trained again after these scores
    (since / "summary.json").write_text(json.dumps(summary))
    capsys.readouterr()
    assert main(["compare", f"_nf_={plain}", f"flip={flipped}", f"again={plain}", f"since={since}"]) == 0
    text = capsys.readouterr().out
    notes = [line[2:] for line in text.split("## Notes\n\n", 1)[1].split("\n\n", 1)[0].splitlines()]
    assert f"\\_nf\\_, again are one folder ({plain.resolve()}): the same scores, each column of theirs alike." in notes
    assert (f"since: scored with {summary['model']['checkpoint']}, which is another file now (trained again "
            "since?): its columns are of the model as it was then; score it again for the model's now.") in notes
    rendered = MarkdownIt("commonmark").enable("table").render(text)
    assert "<li>_nf_, again are one folder" in rendered and "<em>" not in rendered
    orders = [re.findall(r"<th>([^<]*)</th>", head)[1:] for head in re.findall(r"<thead>(.*?)</thead>", rendered,
                                                                                re.S)[1:]]  # past the models'
    assert {tuple(s for s in ["native", "zh", "ja", "__ja__"] if s in order) for order in orders} == {
        tuple(order) for order in orders} and any("llr" in t for t in re.findall(r"<h2>(.*?)</h2>", rendered))
    assert main(["compare", f"nf={plain}", "--out", f"{tmp_path}/new/"]) == 1
    assert "--out " + f"{tmp_path}/new/ is a folder; give a file name" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def _tsv(text: str, model: str) -> dict[tuple[str, str], float]:
    return {(r["metric"], r["set"]): float(r["value"]) for r in csv.DictReader(io.StringIO(text), delimiter="\t")
            if r["model"] == model}


def _column(folder, name: str, score: str = "log_ll") -> np.ndarray:
    r"""A column of a set's ``utt_scores.tsv`` (``score``, or ``spk``), in the order of the utterances' names."""
    table = read_tsv(folder / name / "utt_scores.tsv")
    return np.asarray(table[score])[np.argsort(table["utt"])]


def test_each_models_auc_against_the_first_is_delongs_paired_test(two_models, tmp_path, capsys, monkeypatch):
    root, dnf, plain = two_models
    assert main(["compare", f"dnf={dnf}", f"nf={plain}", "--format", "tsv"]) == 0
    got = _tsv(capsys.readouterr().out, "nf")
    summaries = [json.loads((f / "summary.json").read_text())["detection"] for f in (plain, dnf)]
    for s in ("zh", "ja"):
        speakers = [_column(plain, n, "spk") for n in ("native", s)]
        diff, p = paired_auc_difference(*(_column(f, n) for f in (plain, dnf) for n in ("native", s)), *speakers)
        assert got["auc_log_ll_minus_first", s] == pytest.approx(diff) and got["auc_log_ll_p_vs_first", s] == p
        assert diff == pytest.approx(summaries[0][s]["by_score"]["log_ll"] - summaries[1][s]["by_score"]["log_ll"])
        assert 0 <= p <= 1
    # the plain flow has no llr and no GMM: nothing to pair; the first model's own row is not in the table
    assert {m for m, _ in got if m.endswith(("_minus_first", "_p_vs_first"))} == {"auc_log_ll_minus_first",
                                                                                  "auc_log_ll_p_vs_first"}
    calls = []  # over the utterances' speakers (here every AUC is 1: with them or without, p is 1)
    monkeypatch.setattr("flowaccent.report.compare.paired_auc_difference",
                        lambda *args: calls.append(args) or paired_auc_difference(*args))
    assert main(["compare", f"dnf={dnf}", f"nf={plain}"]) == 0
    assert len(calls) == 2 and all(len(c) == 6 for c in calls)
    assert [list(g) for g in calls[0][4:]] == [list(_column(plain, n, "spk")) for n in ("native", "zh")]
    table = _table(capsys.readouterr().out, "AUC of log_ll: each model's minus dnf's (p of DeLong's paired test "
                                            "over speakers, on the same utterances)")
    assert list(table) == ["nf"] and table["nf"]["zh"] == f"{got['auc_log_ll_minus_first', 'zh']:+.3f} (p " \
        f"{got['auc_log_ll_p_vs_first', 'zh']:.3f})".replace("p 0.000", "p < 0.001")
    shuffled = shutil.copytree(plain, tmp_path / "shuffled")  # the rows in another order: paired by utterance
    for name in ("native", "zh"):
        header, *rows = (shuffled / name / "utt_scores.tsv").read_text().splitlines(keepends=True)
        (shuffled / name / "utt_scores.tsv").write_text(header + "".join(rows[::-1]))
    assert main(["compare", f"dnf={dnf}", f"nf={shuffled}", "--format", "tsv"]) == 0
    assert _tsv(capsys.readouterr().out, "nf") == got
    # zh of other utterances: not paired; a table that cannot be read: said, and not paired
    other = tmp_path / "other"
    assert main(["score", "--exp", str(root / "plain"), "--out", str(other), str(root / "native"),
                 f"zh={root / 'ja'}", str(root / "ja"), "--quiet"]) == 0
    damaged = shutil.copytree(plain, tmp_path / "damaged")
    (damaged / "ja" / "utt_scores.tsv").write_text("utt\tlog_ll\nx\ty\n")
    (damaged / "zh" / "utt_scores.tsv").write_text("x\n")  # rows of no 'utt': a KeyError, not a note
    gone = shutil.copytree(plain, tmp_path / "gone")  # a set's folder deleted: said as such, not as an OSError's repr
    shutil.rmtree(gone / "zh")
    assert main(["compare", f"dnf={dnf}", f"gone={gone}", "--format", "tsv"]) == 0
    assert (f"compare: note: Set 'zh' of gone: {gone / 'zh' / 'utt_scores.tsv'}: No such file or directory: not in "
            "the paired tests.") in capsys.readouterr().err
    assert main(["compare", f"dnf={dnf}", f"other={other}", f"damaged={damaged}", "--format", "tsv"]) == 0
    out, err = capsys.readouterr()
    assert {s for (m, s) in _tsv(out, "other") if m == "auc_log_ll_minus_first"} == {"ja"}
    assert not {s for (m, s) in _tsv(out, "damaged") if m == "auc_log_ll_minus_first"}
    assert f"compare: note: Set 'ja' of damaged: {damaged / 'ja' / 'utt_scores.tsv'}" in err
    assert (f"compare: note: Set 'zh' of damaged: {damaged / 'zh' / 'utt_scores.tsv'}: no column utt, spk (its "
            f"header: x): not in the paired tests.") in err


@pytest.mark.parametrize("args, said", [
    (["{nowhere}"], "{nowhere}: no such folder (SCORES: the --out of 'flowaccent score')"),
    (["{bad}/summary.json"], "{bad}/summary.json: a file, not a folder (SCORES: the --out of"),  # 'no such folder'
    (["{dnf}", "x={dnf}"], ""),  # the same folder twice, named apart: fine
    (["{dnf}", "{dnf}"], "two scores named 'exp' ({dnf} and {dnf}); name each: NAME=SCORES"),
    (["a b={dnf}"], "'a b={dnf}': the name 'a b' (given) holds whitespace, '|', '=' or '\"' or is empty"),
    (['"q"={dnf}'], "'\"q\"={dnf}': the name '\"q\"' (given) holds whitespace, '|', '=' or '\"'"),  # csv: q
    (["x="], "'x=': no folder after 'x=' (NAME=SCORES)"),
    (["{root}/native"], "{root}/native/summary.json: missing; a Kaldi data dir, not scores; score it first ("),
    (["{dnf}/zh"], "{dnf}/zh/summary.json: missing; one set's folder of the scores {dnf}; give that folder"),
    (["{stopped}"], "{stopped}/summary.json: missing; 'flowaccent score' into it stopped before its end; finish it "
                    "with 'flowaccent score --resume'"),
    (["{empty}"], "{empty}/summary.json: missing; run 'flowaccent score' first (or it did not finish)"),
    (["{phones}"], "{phones}/summary.json: missing; the --out of 'flowaccent phones', not scores; give the scores it "
                   "was made from ({dnf}) (SCORES)"),  # 'run flowaccent score first'
    (["{report}"], "{report}/summary.json: missing; the --out of 'flowaccent report', not scores; give the scores it "
                   "was made from (SCORES)"),
    # an experiment dir whose scores are elsewhere (its report.html: it was named a report's --out)
    (["{expdir}"], "{expdir}/summary.json: missing; an experiment dir, not scores; score it first ('flowaccent score "
                   "--exp {expdir} --out SCORES DATA_DIR ...') and give SCORES (SCORES)"),
    (["{dnf}", "--out", "{tmp}/loop.md"], "--out {tmp}/loop.md is a link that leads back to itself (a loop)"),
    # a folder whose name holds '=' is a path (it was split into the name '{tmp}/x' and the folder 'y')
    (["{tmp}/x=y"], "'{tmp}/x=y': the name 'x=y' (taken from {tmp}/x=y) holds whitespace, '|', '=' or '\"'"),
    (["{dnf}", "m={tmp}/x=y"], ""),
    (["{root}/exp"], "{root}/exp: an experiment dir, not scores; its scores are {root}/exp/scores (SCORES: the"),
    (["{bad}"], "{bad}/summary.json: not the summary of 'flowaccent score' (no sets or model)"),
    (["{dnf}", "{odd}"], "{odd}/summary.json: not the summary of 'flowaccent score' (no sets or model)"),
    (["{dnf}", "--out", "{root}"], "--out {root} is a folder; give a file name"),
    (["{dnf}", "--out", "{bad}/summary.json/c.md"], "--out {bad}/summary.json/c.md: {bad}/summary.json is a file, "
                                                   "not a folder"),  # 'File exists'
])
def test_user_errors_are_one_line(two_models, tmp_path, capsys, args, said):
    root, dnf, _ = two_models
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "summary.json").write_text("[1, 2]")
    odd = tmp_path / "odd"  # JSON of another shape
    odd.mkdir()
    (odd / "summary.json").write_text('{"reference": "native", "sets": [], "model": {}}')
    stopped = shutil.copytree(dnf, tmp_path / "stopped")  # its sets stamped complete, no summary
    (stopped / "summary.json").unlink()
    (tmp_path / "empty").mkdir()
    (tmp_path / "phones").mkdir()
    (tmp_path / "phones" / "phones.json").write_text(json.dumps({"format": 1, "scores": str(dnf)}))
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.html").write_text("<title>flowaccent report: exp</title>")
    (tmp_path / "expdir").mkdir()
    (tmp_path / "expdir" / "final.pt").write_bytes(b"")
    (tmp_path / "expdir" / "report.html").write_text("<title>flowaccent report: expdir</title>")
    (tmp_path / "loop.md").symlink_to(tmp_path / "loop.md")
    shutil.copytree(dnf, tmp_path / "x=y")
    names = {"nowhere": tmp_path / "nowhere", "dnf": dnf, "root": root, "bad": bad, "odd": odd, "stopped": stopped,
             "empty": tmp_path / "empty", "tmp": tmp_path, "phones": tmp_path / "phones",
             "report": tmp_path / "report", "expdir": tmp_path / "expdir"}
    argv = ["compare", *(a.format(**names) for a in args)]
    status = main(argv)
    out, err = capsys.readouterr()
    if not said:
        assert status == 0 and ("| x |" in out or "| m |" in out)
        return
    assert status == 1 and out == "" and err.count("\n") == 1
    assert err.startswith("flowaccent compare: error: " + said.format(**names)), err
