r"""Figures and the self-contained report from a tiny trained model."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from flowaccent.cli.main import main


def test_report_embeds_every_image(scored_dir_and_exp, tmp_path):
    out_dir, exp = scored_dir_and_exp
    html_path = tmp_path / "report.html"
    assert main(["report", "--exp", str(exp), "--scores", str(out_dir), "--out", str(html_path)]) == 0
    html = html_path.read_text()
    sources = re.findall(r"<img [^>]*src='([^']*)'", html)
    assert len(sources) >= 7 and all(s.startswith("data:image/png;base64,") for s in sources)
    # nothing from outside the page; each figure a link to its PNG beside it, whole (shown at half the page's width)
    assert "src='http" not in html and {h[0] for h in re.findall(r"href='([^']*)'", html)} == {"#", "f"}
    links = re.findall(r"<a href='(figures/[^']*)' title='[^']*'><img ", html)
    assert len(links) == len(sources) and all((tmp_path / h).is_file() for h in links)
    # a set's rows by score: both the set and the score name the row
    assert re.search(r"<th scope='row'>ja</th><th scope='row'>log_ll</th><td>", html)
    assert "<th scope='col'>set</th><th scope='col' class='key'>score</th><th scope='col'>Pearson</th>" in html
    for text in (
        "Scores per set",
        "Detection AUC against 'native'",
        "Correlation with ratings",
        "NLL (lab 'LogLL')",
        "How this was made",
        "flowaccent score",
        "cond_dim: 4",
    ):
        assert text in html, text
    md = html_path.with_suffix(".md").read_text()
    # the model and its training data, in both
    trained = f"classes native, zh. Trained on `{exp.parent / 'native'}`, `{exp.parent / 'zh'}`"
    assert trained in md and trained.replace("`", "<code>", 1).split("`")[0] in html
    assert "| set | utts | log_ll | llr | gmm_log_ll |" in md  # in the order scored, as in the recipes' RESULTS.md
    images = re.findall(r"!\[[^\]]*\]\(([^)]*)\)", md)
    assert len(images) == len(sources) and all((tmp_path / p).exists() for p in images)
    for png in images:
        assert (tmp_path / png).with_suffix(".pdf").exists()


def test_plot_command(scored_dir_and_exp, tmp_path, capsys, monkeypatch):
    r"""``plot`` draws the figures; a ``report`` after it, each where it draws by default (``SCORES/figures``,
    ``EXP_DIR/figures``), draws the same t-SNE points without fitting them again."""
    import shutil

    import sklearn.manifold

    from flowaccent.plots import tsne_points

    out_dir, exp = scored_dir_and_exp
    exp, scores = shutil.copytree(exp, tmp_path / "exp"), shutil.copytree(out_dir, tmp_path / "scores")
    shutil.rmtree(exp / "figures", ignore_errors=True)
    shutil.rmtree(scores / "figures", ignore_errors=True)
    assert main(["plot", "--exp", str(exp), "--scores", str(scores)]) == 0
    names = {p.name for p in (scores / "figures").iterdir()}
    assert {"latents_tsne.png", "latents_pca.pdf", "roc_llr.png", "training_curves.png", "hist_log_ll.png",
            "speakers_log_ll.png", "speakers_log_ll.pdf", "latents_tsne.npz"} <= names
    real, fits = sklearn.manifold.TSNE, []
    monkeypatch.setattr(sklearn.manifold, "TSNE", lambda *a, **k: fits.append(k) or real(*a, **k))
    assert main(["report", "--exp", str(exp), "--scores", str(scores)]) == 0
    drawn = tsne_points(exp / "figures" / "latents_tsne.npz")
    assert fits == [] and list(drawn) == list(json.loads((scores / "summary.json").read_text())["sets"])
    assert all(np.array_equal(v, tsne_points(scores / "figures" / "latents_tsne.npz")[k]) for k, v in drawn.items())
    assert main(["report", "--exp", str(exp), "--scores", str(scores), "--tsne-frames", "9"]) == 0
    assert len(fits) == 1 and all(len(v) <= 9 for v in tsne_points(exp / "figures" / "latents_tsne.npz").values())


def test_tsne_frames_sets_the_sample_and_zero_leaves_the_tsne_out(scored_dir_and_exp, tmp_path, monkeypatch, capsys):
    r"""The t-SNE, the slowest figure (its time grows faster than its points), is drawn from ``--tsne-frames`` frames
    per set; 0 draws none, and an earlier run's t-SNE goes; a number that is not a count is a usage error."""
    from flowaccent import plots

    out_dir, exp = scored_dir_and_exp
    drawn = []
    real = plots.latents_tsne
    monkeypatch.setattr(plots, "latents_tsne", lambda latents, base, per_set, cols, reuse, before_fit: drawn.append(
        per_set) or real(latents, base, per_set=per_set, cols=cols, reuse=reuse, before_fit=before_fit))
    figures = tmp_path / "f"
    monkeypatch.setattr("flowaccent.report.figures.TSNE_SAID", 20)  # a t-SNE of minutes was drawn without a word
    assert main(["plot", "--exp", str(exp), "--scores", str(out_dir), "--out", str(figures), "--tsne-frames", "7"]) == 0
    assert drawn == [7] and (figures / "latents_tsne.png").exists()
    sets = len(json.loads((out_dir / "summary.json").read_text())["sets"])
    assert f"note: t-SNE of {7 * sets} latent frames ({sets} sets, 7 per set at most): minutes on a CPU; " \
        "--tsne-frames N draws fewer per set (0: none)\n" in capsys.readouterr().err
    assert main(["plot", "--exp", str(exp), "--scores", str(out_dir), "--out", str(figures), "--tsne-frames", "7"]) == 0
    assert drawn == [7, 7] and "note: t-SNE" not in capsys.readouterr().err  # drawn again from its points: unsaid
    drawn.pop()
    assert main(["plot", "--exp", str(exp), "--scores", str(out_dir), "--out", str(figures), "--tsne-frames", "0"]) == 0
    assert drawn == [7] and not (figures / "latents_tsne.png").exists() and (figures / "latents_pca.png").exists()
    html = tmp_path / "r" / "report.html"
    assert main(["report", "--exp", str(exp), "--scores", str(out_dir), "--out", str(html), "--tsne-frames", "0"]) == 0
    assert drawn == [7] and "t-SNE" not in html.read_text() and "Latents, PCA" in html.read_text()
    assert "--tsne-frames 0" in html.read_text()  # the command, under "How this was made"
    for bad in ("-1", "1.5", "many", "\u0663"):
        with pytest.raises(SystemExit) as stop:
            main(["report", "--exp", str(exp), "--scores", str(out_dir), "--tsne-frames", bad])
        assert stop.value.code == 2 and "--tsne-frames: expected a whole number >= 0" in capsys.readouterr().err
    from flowaccent.errors import ConfigError
    from flowaccent.report import make_figures, write_report

    for bad in (-1, True, 2.0):
        with pytest.raises(ConfigError, match="tsne_frames"):
            write_report(exp, out_dir, tmp_path / "r2", tsne_frames=bad)
        with pytest.raises(ConfigError, match="tsne_frames"):
            make_figures(exp, out_dir, tmp_path / "f2", tsne_frames=bad)
    assert not (tmp_path / "r2").exists() and not (tmp_path / "f2").exists()


def test_a_sets_colour_does_not_depend_on_the_order_given_nor_come_near_another_accents():
    r"""dev_native and test_native swapped colours between two reports that listed them in other orders; a third zh
    set got a light red next to ja's pink."""
    from flowaccent.plots.colours import ACCENT_COLOURS, _rgb, colours

    assert colours(["dev_native", "test_native"]) == colours(["test_native", "dev_native"])
    got = colours(["test_zh", "zh_train", "zh_copy", "zh_more", "test_ja", "test_native"])
    for name in ("zh_train", "zh_copy", "zh_more"):
        for other in ("ja", "native"):
            assert np.linalg.norm(_rgb(got[name]) - _rgb(ACCENT_COLOURS[other])) >= 80, (name, got[name])


def test_every_set_of_a_figure_has_its_own_colour():
    r"""Sets of one accent (the demo reports dev_native and test_native) are shades of its colour."""
    import colorsys

    from flowaccent.plots import ACCENT_COLOURS, colours

    names = ["dev_native", "test_native", "train-native", "test_zh", "zh_read", "test_ja", "mine", "other"]
    got = colours(names)
    assert len(set(got.values())) == len(names)
    assert got["dev_native"] == ACCENT_COLOURS["native"] and got["test_zh"] == ACCENT_COLOURS["zh"]

    def hue(c: str) -> float:
        return colorsys.rgb_to_hsv(*(int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)))[0]

    for name, accent in [("test_native", "native"), ("train-native", "native"), ("zh_read", "zh")]:
        assert abs(hue(got[name]) - hue(ACCENT_COLOURS[accent])) < 0.02, name
    assert colours(["a_native"] * 1) == {"a_native": ACCENT_COLOURS["native"]}


def test_missing_or_damaged_inputs_are_one_line_errors(scored_dir_and_exp, tmp_path, capsys):
    r"""No experiment dir, a summary.json that is not JSON, a set's file gone: an error naming it, status 1,
    no report written."""
    import shutil

    out_dir, exp = scored_dir_and_exp
    scores = tmp_path / "scores"
    shutil.copytree(out_dir, scores)
    html = tmp_path / "r" / "report.html"

    def report(exp_dir) -> str:
        assert main(["report", "--exp", str(exp_dir), "--scores", str(scores), "--out", str(html)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and not html.exists()
        return err[0]

    assert f"{tmp_path / 'nowhere'}: no such experiment dir" in report(tmp_path / "nowhere")
    # into a set's folder: figures/ went in among its scores
    assert main(["report", "--exp", str(exp), "--scores", str(scores), "--out", str(scores / "native")]) == 1
    assert capsys.readouterr().err == (f"flowaccent report: error: --out {scores / 'native'} is a scored "
                                       "set's folder; give the report and its figures a folder of their own\n")
    assert not (scores / "native" / "figures").exists()
    other = tmp_path / "other_exp"
    shutil.copytree(exp, other)
    (other / "config.yaml").write_text((exp / "config.yaml").read_text().replace("cond_dim: 4", "cond_dim: 3"))
    assert f"{scores}: scored by {exp}, whose config.yaml differs from {other / 'config.yaml'}" in report(other)
    kept = (scores / "config.yaml").read_text()  # the experiment trained on since it was scored
    (scores / "config.yaml").write_text(kept.replace("epochs: 3", "epochs: 2"))
    assert f"{scores}: scored by {exp} before its config.yaml changed (trained on or edited since)" in report(exp)
    (scores / "config.yaml").write_text(kept)
    (other / "config.yaml").write_text((exp / "config.yaml").read_text())  # same config, the model trained again
    import torch

    state = torch.load(other / "final.pt", weights_only=False)
    weights = state["model"]["state_dict"] if "model" in state else state["state_dict"]
    next(v for v in weights.values() if v.is_floating_point()).add_(0.01)
    torch.save(state, other / "final.pt")
    assert f"{scores}: scored with another {other / 'final.pt'} than the one there now" in report(other)
    (other / "final.pt").unlink()  # training again into it, not finished: its curves are not the scored model's
    assert f"{scores}: scored with {other / 'final.pt'}, which is gone (training again?" in report(other)
    (tmp_path / "empty").mkdir()
    assert f"{tmp_path / 'empty'}: not an experiment dir of 'flowaccent train' (neither config.yaml nor final.pt)" in \
        report(tmp_path / "empty")
    made_by = json.loads((scores / "summary.json").read_text())["model"]["exp"]  # scores as --exp: 'scored with
    assert report(scores).endswith(  # SCORES/final.pt, which is gone ... score it again' named no such file
        f"{scores}: the --out of 'flowaccent score' or 'flowaccent blurmask', not an experiment dir of 'flowaccent "
        f"train'; give the --exp that made the scores ({made_by})")
    (scores / "native" / "latents.npy").unlink()
    assert f"{scores / 'native' / 'latents.npy'}: missing, though summary.json lists set 'native'" in report(exp)
    (scores / "summary.json").write_text("{")
    assert f"{scores / 'summary.json'}: not valid JSON" in report(exp)
    for other_json in ("[]", '{"sets": [], "model": {}}'):  # "'list' object has no attribute 'get'", a traceback
        (scores / "summary.json").write_text(other_json)
        assert f"{scores / 'summary.json'}: not the summary of 'flowaccent score' (no sets or model)" in report(exp)
    (scores / "summary.json").write_text((out_dir / "summary.json").read_text())
    (scores / "native" / "latents.npy").write_bytes((out_dir / "native" / "latents.npy").read_bytes())
    no_log = tmp_path / "no_log"
    shutil.copytree(exp, no_log, ignore=shutil.ignore_patterns("log"))
    for path in (scores / "summary.json", scores / "config.yaml"):  # scored by the copy
        path.write_text(path.read_text().replace(str(exp), str(no_log)))
    assert main(["plot", "--exp", str(no_log), "--scores", str(scores), "--out", str(tmp_path / "f")]) == 0
    assert f"note: no training curves: {no_log / 'log' / 'train.jsonl'} is missing" in capsys.readouterr().err


def test_damaged_score_files_and_a_torn_training_log(scored_dir_and_exp, tmp_path, capsys):
    r"""A truncated latents.npy, a NaN or a non-UTF-8 byte in utt_scores.tsv were tracebacks; the table cut to its
    first rows, or a row cut short, was drawn as if it were the set. Each is now one line naming the file (and
    line). A training log whose last line a kill cut short broke the curves; that line is now left out."""
    import shutil

    out_dir, exp = scored_dir_and_exp
    scores, exp_copy = tmp_path / "scores", tmp_path / "exp"
    shutil.copytree(out_dir, scores)
    shutil.copytree(exp, exp_copy)
    html = tmp_path / "r" / "report.html"

    def report(status: int = 1) -> str:
        assert main(["report", "--exp", str(exp_copy), "--scores", str(scores), "--out", str(html)]) == status
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 0 or (len(err) == 1 and not html.exists()), err
        return err[0] if err else ""

    latents, table = scores / "zh" / "latents.npy", scores / "zh" / "utt_scores.tsv"
    kept_latents, kept_table = latents.read_bytes(), table.read_text()
    latents.write_bytes(kept_latents[: len(kept_latents) // 2])
    assert f"{latents}: damaged (" in report()
    latents.write_bytes(kept_latents[:100])
    assert f"{latents}: damaged (" in report()
    latents.write_bytes(kept_latents)
    lines = kept_table.splitlines()
    header = lines[0].split("\t")
    row = lines[1].split("\t")
    row[header.index("log_ll")] = "nan"
    table.write_text("\n".join([lines[0], "\t".join(row), *lines[2:]]) + "\n")
    assert f"{table}: line 2: log_ll is nan (utterance {row[0]})" in report()
    table.write_bytes(kept_table.encode().replace(b"\t", b"\t\xff", 1))
    assert f"{table}: not UTF-8 text" in report()
    table.write_text("\n".join(lines[:3]) + "\n")
    said = report()
    assert f"{table}: 2 utterances of " in said and "but summary.json says" in said
    table.write_text("\n".join([*lines[:2], lines[2].rsplit("\t", 1)[0], *lines[3:]]) + "\n")
    assert f"{table}: line 3 has {len(header) - 1} fields, the header {len(header)}" in report()
    table.write_text(kept_table)

    log = exp_copy / "log" / "train.jsonl"
    kept_log = log.read_text()
    log.write_text(kept_log[: len(kept_log) - 25])  # killed while writing its last line
    report(0)
    assert (html.parent / "figures" / "training_curves.png").exists()
    log_lines = kept_log.splitlines()
    log.write_text("\n".join([log_lines[0][:-5], *log_lines[1:]]) + "\n")
    assert f"{log}: line 1 is not a JSON record" in report()


def test_scores_of_a_checkpoint_written_again_since_are_refused(scored_dir_and_exp, tmp_path, capsys):
    r"""``--checkpoint`` scores record that file's SHA-1: a checkpoint written again since (training resumed
    over it) is refused as another ``final.pt`` is; the file gone, only the config check is left."""
    import shutil

    import torch

    _, exp = scored_dir_and_exp
    checkpoint, scores, html = tmp_path / "best.pt", tmp_path / "scores", tmp_path / "r" / "report.html"
    shutil.copy(exp / "final.pt", checkpoint)
    score = ["score", "--exp", str(exp), "--out", str(scores), "--checkpoint", str(checkpoint), "--quiet"]
    assert main([*score, str(exp.parent / "native")]) == 0
    assert json.loads((scores / "summary.json").read_text())["model"]["checkpoint_digest"]
    report = ["report", "--exp", str(exp), "--scores", str(scores), "--out", str(html)]
    assert main(report) == 0
    state = torch.load(checkpoint, weights_only=False)
    weights = state["model"]["state_dict"] if "model" in state else state["state_dict"]
    next(v for v in weights.values() if v.is_floating_point()).add_(0.01)
    torch.save(state, checkpoint)
    capsys.readouterr()
    assert main(report) == 1
    assert f"{scores}: scored with another {checkpoint} than the one there now" in capsys.readouterr().err
    checkpoint.unlink()
    assert main(report) == 0


def test_the_report_names_its_experiment_the_llrs_class_and_only_the_figures_of_these_scores(
    scored_dir_and_exp, tmp_path
):
    r"""Scores against zh's ``llr``, without a baseline, into a folder an earlier report with a baseline drew in:
    the naming says zh and no gmm_log_ll, the old ROC by gmm_log_ll is gone, the tables have header rows (a
    printed page repeats them), and the panels side by side take the page's width."""
    _, exp = scored_dir_and_exp
    scores, out = tmp_path / "zh_scores", tmp_path / "r"
    sets = [str(exp.parent / n) for n in ("native", "zh", "ja")]
    assert main(["score", "--exp", str(exp), "--out", str(scores), *sets, "--native-class", "zh", "--quiet"]) == 0
    assert json.loads((scores / "summary.json").read_text())["model"]["llr_class"] == "zh"
    (out / "figures").mkdir(parents=True)
    for stale in ("roc_gmm_log_ll.png", "roc_gmm_log_ll.pdf"):
        (out / "figures" / stale).write_bytes(b"an earlier report's")
    (out / "figures" / "mine.png").write_bytes(b"the user's")
    assert main(["report", "--exp", str(exp), "--scores", str(scores), "--out", str(out) + "/"]) == 0
    html = (out / "report.html").read_text()
    assert f"<title>flowaccent report: {exp}</title>" in html and f"# flowaccent report: {exp}" in \
        (out / "report.md").read_text()
    assert "log p(x | zh class)" in html and "gmm_log_ll" not in html
    assert not (out / "figures" / "roc_gmm_log_ll.png").exists() and (out / "figures" / "mine.png").exists()
    assert html.count("<thead>") == html.count("<table ") >= 4
    assert html.startswith("<!DOCTYPE html><html lang='en'>")  # for a screen reader; each table named by its title
    assert re.search(r"<h2>([^<]+)</h2><div class='scroll'><table aria-label='\1'>", html)
    assert re.search(r"<figure id='figure-\d+' class='wide'><a [^>]*><img alt='Utterance scores against rating'", html)
    assert "<th scope='col'>utts</th><th scope='col'>log_ll</th><th scope='col'>llr</th>" in html
    assert "<tr><td>" not in html and html.count("<th scope='row'>zh</th>") >= 3  # a row's name: its header
    assert "td{white-space:nowrap}" in html.split("@media")[0]  # on screen too: an AUC's interval cut in two


def test_figures_of_panels_or_many_sets_take_the_pages_width():
    r"""Only panels side by side (twice as wide as high) did: the speaker figure of 20 sets (rows of 8, 1353 px wide)
    went into half the page, its labels a few pixels high."""
    import io

    from PIL import Image

    from flowaccent.report.pages import WIDE_PIXELS, is_wide

    def png(width, height):
        buffer = io.BytesIO()
        Image.new("RGB", (width, height), "white").save(buffer, format="PNG")
        return buffer.getvalue()

    assert [is_wide(png(*size)) for size in ((648, 538), (901, 975), (1573, 425), (1353, 1473),
                                              (WIDE_PIXELS, 900), (WIDE_PIXELS + 1, 900))] == [
        False, False, True, True, False, True]


def test_the_reports_contents_link_every_table_and_figure_in_page_order(scored_dir_and_exp, tmp_path):
    r"""The contents at a report's top (one with blur masks and two phones runs has 13 tables before its figures)
    link each table, each figure and the closing parts, in the page's order, by their headings and captions."""
    from html.parser import HTMLParser

    scores, exp = scored_dir_and_exp
    assert main(["report", "--exp", str(exp), "--scores", str(scores), "--out", str(tmp_path / "r") + "/"]) == 0
    page = (tmp_path / "r" / "report.html").read_text()

    class Links(HTMLParser):
        def __init__(self):
            super().__init__()
            self.links, self.ids, self.href, self.figures = [], [], None, []

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "a" and not attrs["href"].startswith("#"):  # a figure, to its PNG
                self.figures.append(attrs["href"])
            elif tag == "a":
                self.href = attrs["href"]
                self.links.append([attrs["href"][1:], ""])
            if "id" in attrs:
                self.ids.append(attrs["id"])

        def handle_endtag(self, tag):
            self.href = None if tag == "a" else self.href

        def handle_data(self, data):
            if self.href:
                self.links[-1][1] += data

    parsed = Links()
    parsed.feed(page)
    targets = [target for target, _ in parsed.links]
    assert targets == parsed.ids  # each part linked once, in order, and nothing links elsewhere
    assert len(parsed.figures) == page.count("<figure ") and all(h.startswith("figures/") for h in parsed.figures)
    headings = re.findall(r"<h2>([^<]*)</h2>", page)
    assert headings[0] == "Contents" and page.index("<nav>") < page.index("<p class='naming'>")
    tables = [text for target, text in parsed.links if target.startswith("table-")]
    assert tables == headings[1 : 1 + len(tables)] and len(tables) == page.count("<table ") >= 4
    figures = [text for target, text in parsed.links if target.startswith("figure-")]
    assert figures == re.findall(r"<figcaption>([^<]*)</figcaption>", page) and len(figures) >= 6
    assert [text for target, text in parsed.links if not target.startswith(("table-", "figure-"))] == [
        "Figures", "Configuration", "How this was made"]
    # report.md's contents: each '## ' heading after it, in order, by the anchor GitHub gives it
    markdown = (tmp_path / "r" / "report.md").read_text()
    contents = markdown.split("## Contents\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    linked = [re.fullmatch(r"- \[(.*)\]\(#([^)]*)\)", line).groups() for line in contents]
    assert [title for title, _ in linked] == re.findall(r"^## (.*)$", markdown, re.M)[1:]
    assert [title for title, _ in linked] == [*tables, "Figures", "Configuration", "How this was made"]
    assert ("Gaussianity of the latents", "gaussianity-of-the-latents") in linked
    assert ("Scores per set (means over frames)", "scores-per-set-means-over-frames") in linked
    assert ("Detection AUC against 'native' (40 utts)", "detection-auc-against-native-40-utts") in linked


def test_markdown_anchors_are_githubs():
    r"""GitHub's heading anchors: lower case, punctuation but '-' and '_' dropped, spaces '-', repeats numbered."""
    from flowaccent.report.pages import _anchor

    taken: dict[str, int] = {}
    assert [_anchor(h, taken) for h in ("Phones (phones: x.ctm): zh's lowest", "A  b_c-d", "Figures", "Figures",
                                        "Figures", "Über")] == [
        "phones-phones-xctm-zhs-lowest", "a--b_c-d", "figures", "figures-1", "figures-2", "über"]


def test_a_table_of_long_set_names_prints_whole(scored_dir_and_exp, tmp_path):
    r"""Printed to PDF, the scores table of sets named as L2-ARCTIC's splits are lost its last four columns (LogDet,
    NLL, LogP of N(0,I), gmm_log_ll) past the page's edge, behind a scrollbar: the page said it printed whole."""
    import shutil
    import subprocess

    import pytest

    if not (shutil.which("chromium") and shutil.which("pdftotext")):
        pytest.skip("needs Debian's chromium and poppler-utils' pdftotext")
    scores, exp = scored_dir_and_exp
    assert main(["report", "--exp", str(exp), "--scores", str(scores), "--out", str(tmp_path / "r") + "/"]) == 0
    html = (tmp_path / "r" / "report.html").read_text()
    long = {n: f"l2arctic_{n}_speakers_BWC_LXC_NCC_TXHC_THV_TLV_eval" for n in ("native", "zh", "ja")}
    for short, name in long.items():
        html = html.replace(f"<th scope='row'>{short}</th>", f"<th scope='row'>{name}</th>")
    (tmp_path / "long.html").write_text(html)
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--print-to-pdf={tmp_path / 'r.pdf'}",
                    f"file://{tmp_path / 'long.html'}"], capture_output=True, timeout=120, check=True)
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    start = text.rindex("Scores per set")  # the table's heading, after the contents' line
    table = text[start:text.index("Gaussianity", start)]
    for header in ("LogLL", "LogDet", "NLL (lab", "LogP of", "gmm_log_ll"):
        assert header in table, (header, table)
    assert all(f"l2arctic_{n}_speakers" in table for n in long)  # the names wrapped, not cut


def test_a_set_of_few_utterances_is_drawn_as_ticks_not_as_the_tallest_bar(tmp_path, monkeypatch):
    r"""Each set's histogram is a density: one utterance made one bar of height 1/width, the tallest of the figure."""
    from matplotlib.colors import to_hex

    from flowaccent import plots

    drawn = {}
    monkeypatch.setattr(plots.figure, "save", lambda fig, base: drawn.setdefault("fig", fig))
    rng = np.random.default_rng(0)
    values = {"test_native": rng.normal(-130, 5, 40), "ja_one": np.array([-128.0])}
    cols = {"test_native": "#1f5fbf", "ja_one": "#e377c2"}
    plots.histograms(values, tmp_path / "h", "x", "t", cols)
    ax = drawn["fig"].axes[0]
    assert {to_hex(p.get_facecolor()) for p in ax.patches if p.get_fill()} == {"#1f5fbf"}  # test_native's bars
    assert ax.get_legend().get_texts()[1].get_text() == "ja_one (mean of utts -128.00; n=1): ticks only"
    rows = {t.get_text(): to_hex(t.get_color()) for t in ax.get_yticklabels()}  # each row of ticks named (none were)
    assert rows["test_native"] == "#1f5fbf" and rows["ja_one"] == "#aa5992"  # ja's pink, darker: read on white


def test_speakers_means_are_over_their_frames_and_drawn_in_order_above_their_utterances(tmp_path, monkeypatch):
    r"""The speaker figure: each speaker's mean over its frames (one of no frames: of its utterances), its column
    ordered by it, its utterances' dots in its column; below each set its speakers' count and the spread of their
    means; values that are not finite left out and counted; the reference's mean over frames a dashed line."""
    from matplotlib.colors import to_hex

    from flowaccent import plots

    who, means, position = plots.speaker_means(np.array([1.0, 2, 3, 10, 5, 7]), np.array([1, 3, 1, 1, 0, 0]),
                                               np.array(["b", "b", "a", "c", "d", "d"]))
    assert list(who) == ["b", "a", "d", "c"] and np.allclose(means, [1.75, 3, 6, 10])
    assert list(position) == [0, 0, 1, 3, 2, 2]
    drawn = {}
    monkeypatch.setattr(plots.figure, "save", lambda fig, base: drawn.__setitem__("fig", fig))
    values = {"native": np.array([-40.0, -42, -60, -62, -61]), "zh": np.array([-50.0, np.nan, -70, np.inf]),
              "ja": np.array([np.nan])}
    frames = {"native": np.array([100, 100, 50, 50, 100]), "zh": np.array([10, 10, 30, 10]), "ja": np.array([5])}
    speakers = {"native": np.array(["f1", "f1", "m1", "m1", "m1"]), "zh": np.array(["z1", "z1", "z2", "z2"]),
                "ja": np.array(["j1"])}
    cols = {"native": "#1f5fbf", "zh": "#d62728", "ja": "#e377c2"}
    plots.speaker_scores(values, frames, speakers, tmp_path / "s", "y", "t", "native", cols)
    ax = drawn["fig"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "native\n2 speakers, sd 14.14", "zh\n2 speakers, sd 14.14\n2 not finite", "ja\nno values\n1 not finite"]
    dots = [(to_hex(c.get_facecolor()[0]), c.get_offsets().data) for c in ax.collections]
    (native_utts, native_means), (zh_utts, zh_means) = [
        (dots[i][1], dots[i + 1][1]) for i in (0, 2)]
    assert [d[0] for d in dots] == ["#1f5fbf"] * 2 + ["#d62728"] * 2
    assert np.allclose(native_means, [[-0.2, -61.0], [0.2, -41.0]])  # m1 then f1, each in its half of the group
    assert np.allclose(native_utts[:, 0], [0.2, 0.2, -0.2, -0.2, -0.2]) and np.allclose(native_utts[:, 1], values[
        "native"])
    assert np.allclose(zh_means, [[0.8, -70], [1.2, -50]]) and np.allclose(zh_utts, [[1.2, -50], [0.8, -70]])
    line = ax.get_lines()[0]
    assert line.get_linestyle() == "--" and np.allclose(line.get_ydata(), -51.0)  # 20400 / 400
    assert ax.get_legend().get_texts()[0].get_text() == "native's mean over frames"
    # 20 sets: one row of them was a 3056 px strip, its labels 3 px high in the page; rows of 8 now, of one y axis
    many = {f"s{i:02d}": np.array([-50.0 - i, -60.0]) for i in range(20)}
    plots.speaker_scores(many, {k: np.array([10, 10]) for k in many}, {k: np.array(["a", "b"]) for k in many},
                         tmp_path / "m", "y", "t", "s00")
    axes = drawn["fig"].axes
    assert [[t.get_text().split("\n")[0] for t in ax.get_xticklabels()] for ax in axes] == [
        [f"s{i:02d}" for i in range(a, min(a + 8, 20))] for a in (0, 8, 16)]
    assert {ax.get_xlim() for ax in axes} == {(-0.6, 7.6)} and len({ax.get_ylim() for ax in axes}) == 1
    assert drawn["fig"].get_size_inches()[0] == pytest.approx(1.3 * 8 + 2) and axes[0].get_title() == "t"
    assert [ax.get_legend() is not None for ax in axes] == [True, False, False]
    assert all(np.allclose(ax.get_lines()[0].get_ydata(), -55.0) for ax in axes)  # the reference in every row
    # a set of many speakers: their means a black line, in order (1,240 diamonds' outlines were one black streak)
    k = plots.speakers.MANY_SPEAKERS + 1
    plots.speaker_scores({"big": np.arange(2.0 * k)}, {"big": np.ones(2 * k)}, {"big": np.arange(2 * k) % k},
                         tmp_path / "b", "y", "t")
    ax = drawn["fig"].axes[0]
    assert len(ax.collections) == 1 and len(ax.collections[0].get_offsets()) == 2 * k  # the utterances' dots alone
    (curve,) = ax.get_lines()
    assert curve.get_color() == "black" and np.allclose(curve.get_ydata(), np.arange(k) + k / 2)
    assert np.all(np.diff(curve.get_xdata()) > 0)


def test_the_histograms_rows_of_ticks_keep_their_height_with_many_sets(tmp_path, monkeypatch):
    r"""The figure kept 4 inches for any number of rows of ticks: at 40 sets their 6 pt names ran together."""
    from flowaccent import plots

    drawn = {}
    monkeypatch.setattr(plots.figure, "save", lambda fig, base: drawn.__setitem__("fig", fig))
    rng = np.random.default_rng(0)
    for count in (4, 40):
        plots.histograms({f"s{i:02d}": rng.normal(size=20) for i in range(count)}, tmp_path / "h", "x", "t")
        fig = drawn["fig"]
        ax = fig.axes[0]
        rows = sorted(t for t in ax.get_yticks() if t < 0)
        assert len(rows) == count
        low, high = ax.get_ylim()
        points = (rows[1] - rows[0]) / (high - low) * ax.get_position().height * fig.get_size_inches()[1] * 72
        assert points >= 7.5, (count, points)  # a row's 6 pt name and some room
        assert count > 4 or tuple(fig.get_size_inches()) == (6, 4)  # a few sets: as before


def test_values_that_are_not_finite_are_left_out_and_counted(tmp_path, monkeypatch):
    r"""A nan made the legend's mean nan and the bins the default 10 (nan's range is not > 0); a set of nan alone, or
    weights of only such values, raised."""
    from flowaccent import plots

    drawn = {}
    monkeypatch.setattr(plots.figure, "save", lambda fig, base: drawn.__setitem__("fig", fig))
    values = {"a": np.array([1.0, np.nan, 2, 3, 4, np.inf, 5]), "b": np.arange(1.0, 7.0), "c": np.array([np.nan])}
    plots.histograms(values, tmp_path / "h", "x", "t")
    ax = drawn["fig"].axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "a (mean of utts 3.00; n=5, 2 not finite left out)", "b (mean of utts 3.50; n=6)",
        "c (mean of utts nan; n=0, 1 not finite left out): ticks only"]
    assert len(np.unique(next(p for p in ax.patches if p.get_fill()).get_xy()[:, 0])) == 40  # the 40 bin edges
    plots.histograms({"a": np.array([np.nan, 1.0, 2, 3, 4, 5])}, tmp_path / "w", "x", "t",
                     weights={"a": np.array([9, 1, 1, 1, 1, 5])})
    assert drawn["fig"].axes[0].get_legend().get_texts()[0].get_text() == "a (3.89; n=5, 1 not finite left out)"
    # a NaN utterance score: scikit-learn's 'Input contains NaN' ended the ROC figure; detection_auc says NaN
    plots.roc_curves(np.array([1.0, 2, 3]), {"zh": np.array([0.5, np.nan, 1.5]), "ja": np.array([0.0, 2.5, 1.0])},
                     tmp_path / "roc", "log_ll", "native")
    assert [t.get_text() for t in drawn["fig"].axes[0].get_legend().get_texts()] == [
        "zh: no curve, a score is NaN (n=3)", "ja: AUC 0.722 [0.24, 1.00] (n=3)"]  # 6.5 of 9 pairs


def test_long_names_that_shorten_alike_are_told_apart():
    from flowaccent.plots import short_names

    names = ["l2arctic_mandarin_male_test_partition_v2", "l2arctic_mandarin_female_test_partition_v2", "test_zh"]
    short = short_names(names)
    assert len(set(short.values())) == 3 and short["test_zh"] == "test_zh"
    assert len(short[names[1]]) < len(names[1])
    middle = ["x" * 20 + "1" + "y" * 20, "x" * 20 + "2" + "y" * 20]  # told apart only by their middles
    assert short_names(middle) == {n: n for n in middle}


def test_colours_stay_distinct_for_any_number_of_sets():
    from flowaccent.plots import ACCENT_COLOURS, colours

    names = [f"S{i:02d}" for i in range(60)] + [f"test_native_{i}" for i in range(15)] + ["zh"]
    got = colours(names)
    assert len(set(got.values())) == len(names)  # 40 speaker sets once ran out of the palette (StopIteration)
    assert got["test_native_0"] == ACCENT_COLOURS["native"] and got["zh"] == ACCENT_COLOURS["zh"]
    from flowaccent.plots.colours import _rgb

    few = colours(["test_zh", "l2arctic_zh_x", "zh_two", "test_ja", "ja_one", "test_native", "dev_native"])
    apart = [np.linalg.norm(_rgb(a) - _rgb(b)) for i, a in enumerate(few.values()) for b in list(few.values())[i + 1:]]
    assert min(apart) >= 60  # shades of one accent too (two reds were 55 apart: one set read as the other)


def test_a_sets_name_in_its_colour_is_readable_on_the_page(tmp_path, monkeypatch):
    r"""The histogram's rows of ticks are named in each set's colour, at 6 pt: a light shade's name
    (l2arctic_nat_f03 #bccfec) was 1.58:1 on white, nearly invisible. Names now take the first darker shade of
    4.5:1 (WCAG's for text); colours that are readable already stay as they are."""
    from matplotlib import axes

    from flowaccent.plots import colours, histograms
    from flowaccent.plots.colours import TEXT_CONTRAST, _luminance, readable

    def contrast(colour: str) -> float:
        return 1.05 / (_luminance(colour) + 0.05)

    for colour in ("#bccfec", "#f3bebe", "#e377c2", "#ffffff", "#fefefe", "#000000"):
        assert contrast(readable(colour)) >= TEXT_CONTRAST, colour
    assert readable("#1f5fbf") == "#1f5fbf" and readable("#d62728") == "#d62728"
    assert readable("tab:red") == "#d62728" and readable((1.0, 1.0, 1.0)) == readable("#ffffff")  # any of matplotlib's
    names = ["test_native", "dev_native", *(f"l2arctic_native_f0{i}" for i in range(1, 5)), "test_zh"]
    cols = colours(names)
    assert min(map(contrast, cols.values())) < 2  # a light shade among them
    said = {}
    ticks = axes.Axes.get_yticklabels
    monkeypatch.setattr(axes.Axes, "get_yticklabels", lambda ax, *a, **k: said.setdefault("labels", ticks(ax, *a,
                                                                                                            **k)))
    rng = np.random.default_rng(0)
    histograms({n: rng.normal(size=20) for n in names}, tmp_path / "h", "x", "t", cols)
    named = {label.get_text(): label.get_color() for label in said["labels"] if label.get_text() in names}
    assert set(named) == set(names) and min(map(contrast, named.values())) >= TEXT_CONTRAST


def test_many_sets_of_many_accents_keep_their_colours_apart():
    r"""Four speakers of each of six accents took two near copies of one colour (7 RGB apart: korean_HKK #513968,
    korean_YKWK #553b6d) once no shade kept every bound, and sets of no accent past the palette were not compared
    with the colours taken (set11 41 from dev_native's blue). The farthest shade is taken now."""
    import itertools

    from flowaccent.plots.colours import _rgb, colours

    def closest(got):
        return min(np.linalg.norm(_rgb(a) - _rgb(b)) for a, b in itertools.combinations(got.values(), 2))

    groups = ["arabic", "mandarin", "hindi", "korean", "spanish", "vietnamese"]
    names = ["native"] + [f"{g}_s{i}" for g in groups for i in range(4)]
    got = colours(names, {n: n.split("_")[0] for n in names[1:]})
    assert len(set(got.values())) == len(names) and closest(got) >= 40
    unlabelled = colours(["native", "dev_native", "test_zh", "test_ja"] + [f"set{i}" for i in range(12)])
    assert closest(unlabelled) >= 75
    # on the page's white: 7 sets of each of three accents took #fbeaf5 (its ticks and legend box invisible)
    seven = [f"{a}_s{i:02d}" for a in ("native", "zh", "ja") for i in range(7)]
    for got in (colours(seven, {n: n.split("_")[0] for n in seven}), colours(seven)):
        assert min(np.linalg.norm(_rgb(c) - 255) for c in got.values()) >= 80, got
    # and where no shade keeps every bound (16, 12 and 12 sets: set4_test_ja took #f7d6ed, 45 from white)
    many = [f"{a}_s{i:02d}" for a, n in (("native", 16), ("zh", 12), ("ja", 12)) for i in range(n)]
    got = colours(many)
    assert len(set(got.values())) == len(many) and min(np.linalg.norm(_rgb(c) - 255) for c in got.values()) >= 80


def test_short_names_keep_both_ends():
    from flowaccent.plots import short_name

    long = "l2arctic_mandarin_speakers_read_speech_all_sessions_test_partition_v2"
    assert short_name(long) == "l2arctic_mand…t_partition_v2" and len(short_name(long)) == 28
    assert short_name("test_zh") == "test_zh"


def test_many_long_named_sets_and_tiny_latent_samples_still_draw(tmp_path, monkeypatch):
    r"""Legends beside the axes widen the figure; PCA of 1 frame and t-SNE of 2 say why they have no plot."""
    from PIL import Image

    from flowaccent import plots

    said, too_few = [], plots.figure.too_few
    monkeypatch.setattr(plots.figure, "too_few",
                        lambda base, title, what: said.append(what) or too_few(base, title, what))

    rng = np.random.default_rng(0)
    latents = {f"speaker_{i:02d}_of_a_corpus_with_long_names": rng.standard_normal((20, 4)) for i in range(30)}
    wide = Image.open(plots.latents_pca(latents, tmp_path / "pca")).size
    few = Image.open(plots.latents_pca(dict(list(latents.items())[:3]), tmp_path / "pca3")).size
    assert wide[0] > few[0] * 1.3  # the 30-entry legend beside the axes, not over the points
    values = {n: v[:, 0] for n, v in latents.items()}
    plots.histograms(values, tmp_path / "hist", "x", "t")
    plots.roc_curves(values.pop("speaker_00_of_a_corpus_with_long_names"), values, tmp_path / "roc", "s", "ref")
    for draw, frames in ((plots.latents_pca, 1), (plots.latents_tsne, 2)):
        png = draw({"one": rng.standard_normal((frames, 4))}, tmp_path / f"{draw.__name__}_{frames}")
        assert png.exists() and png.with_suffix(".pdf").exists()
    assert said == ["1 latent frame(s) in all: too few for a PCA", "2 latent frame(s) in all: too few for t-SNE"]


def test_latents_all_one_point_or_not_finite_say_so_instead_of_a_projection(tmp_path, monkeypatch):
    r"""t-SNE of latent frames all one point crashed the process (scikit-learn's PCA start divides by a zero
    spread: a segmentation fault, a notebook's kernel gone, ``flowaccent report`` killed); PCA titled its axes
    'PC1 (nan%)'. NaN reached scikit-learn's own error."""
    import sklearn.decomposition
    import sklearn.manifold

    from flowaccent import plots

    said = []
    monkeypatch.setattr(plots.figure, "too_few", lambda base, title, what: said.append(what) or base)

    def projected(*args, **kwargs):
        raise AssertionError("projected")

    monkeypatch.setattr(sklearn.manifold, "TSNE", projected)
    monkeypatch.setattr(sklearn.decomposition, "PCA", projected)
    nan = np.random.default_rng(0).standard_normal((20, 4))
    nan[3, 1] = np.nan
    for draw in (plots.latents_pca, plots.latents_tsne):
        draw({"a": np.ones((20, 4)), "b": np.ones((5, 4))}, tmp_path / "same")
        draw({"a": nan}, tmp_path / "nan")
        draw({"a": np.arange(20.0)[:, None]}, tmp_path / "narrow")  # scikit-learn's 'n_components=2 must be ...'
    assert said == ["all 25 latent frames are the same point: nothing for a PCA",
                    "1 of 20 latent frames are not finite (NaN or inf): no PCA",
                    "latents of 1 dimension(s): nothing to project onto two",
                    "all 25 latent frames are the same point: nothing for t-SNE",
                    "1 of 20 latent frames are not finite (NaN or inf): no t-SNE",
                    "latents of 1 dimension(s): nothing to project onto two"]


def test_a_notebooks_strings_are_taken_and_its_dicts_that_do_not_match_are_named(scored_dir_and_exp, tmp_path):
    r"""From Python: ``make_figures`` and ``load_summary`` given strings raised ''str' object has no attribute
    'is_dir'' and 'unsupported operand'; ``speaker_scores`` given a set's frame counts of another length an
    IndexError, and a ``cols`` without a set's colour a KeyError: neither named the set or the argument."""
    from flowaccent import plots
    from flowaccent.report import load_summary, make_figures

    out_dir, exp = scored_dir_and_exp
    assert load_summary(str(out_dir)) == load_summary(out_dir)
    drawn = make_figures(str(exp), str(out_dir), str(tmp_path / "figures"), tsne_frames=0)
    assert drawn and all(png.is_file() and png.parent == tmp_path / "figures" for png in drawn.values())
    values = {"a": np.arange(5.0), "b": np.arange(4.0)}
    frames = {name: np.full(len(v), 100) for name, v in values.items()}
    speakers = {name: np.array(["s1", "s2", "s1", "s2", "s1"])[: len(v)] for name, v in values.items()}
    with pytest.raises(ValueError, match=r"^speaker_scores: set 'b': 4 frame counts for 3 values"):
        plots.speaker_scores({**values, "b": values["b"][:3]}, frames, speakers, tmp_path / "s", "y", "t")
    with pytest.raises(ValueError, match=r"^speaker_scores: no speakers for set 'b' \(given for: 'a'\)$"):
        plots.speaker_scores(values, frames, {"a": speakers["a"]}, tmp_path / "s", "y", "t")
    for draw in (lambda cols: plots.histograms(values, tmp_path / "h", "x", "t", cols=cols),
                 lambda cols: plots.speaker_scores(values, frames, speakers, tmp_path / "s", "y", "t", cols=cols),
                 lambda cols: plots.roc_curves(values["a"], {"b": values["b"]}, tmp_path / "r", "x", "a", cols=cols),
                 lambda cols: plots.latents_pca({n: np.c_[v, -v] for n, v in values.items()}, tmp_path / "p",
                                                cols=cols)):
        with pytest.raises(ValueError, match=r": cols has no colour for set 'b' \(given for: 'a'\)$"):
            draw({"a": "#ff0000"})
        assert draw({"a": "#ff0000", "b": "#0000ff"}).is_file()
    # a folder as the base wrote FOLDER.png beside it; a partial cols without the reference's colour, which the ROC
    # does not draw with, is taken
    assert plots.roc_curves(values["a"], {"b": values["b"]}, tmp_path / "r", "x", "a", cols={"b": "#0000ff"})
    with pytest.raises(ValueError, match=r"figures: a folder; a figure's base is a file name without its suffix"):
        plots.histograms(values, tmp_path / "figures", "x", "t")
    assert not list(tmp_path.glob("figures.*"))


def test_latents_of_other_shapes_are_errors_naming_the_set_and_a_tsne_not_drawn_leaves_no_points(tmp_path):
    r"""A notebook's mistakes: sets of two dimensions gave numpy's 'all the input array dimensions ... must match'
    (the first two dimensions drew them on one pair of axes), a 1-D array an AxisError, a list a TypeError, a set of
    no frames scikit-learn's 'Found array with 0 sample(s)'. A t-SNE not drawn left the earlier run's points, which
    ``tsne_points`` read as this one's."""
    import torch

    from flowaccent import plots

    rng = np.random.default_rng(0)
    latents = {"a": rng.standard_normal((40, 6)), "b": rng.standard_normal((40, 6))}
    for draw in (plots.latents_first_dims, plots.latents_pca, plots.latents_tsne):
        name = draw.__name__
        with pytest.raises(ValueError, match=rf"^{name}: every set's latents of one dimension, got 6 for 'a', 6 for "
                                             r"'b', 3 for 'c'$"):
            draw({**latents, "c": rng.standard_normal((40, 3))}, tmp_path / "x")
        with pytest.raises(ValueError, match=rf"^{name}: latents \(N, D\) with D >= [12], got \(5,\) for 'a'$"):
            draw({"a": np.zeros(5)}, tmp_path / "x")
        with pytest.raises(ValueError, match=rf"^{name}: no set of latents given$"):
            draw({}, tmp_path / "x")
    taken = {"a": latents["a"].tolist(), "b": torch.tensor(latents["b"]), "none": np.empty((0, 6))}
    assert plots.latents_pca(taken, tmp_path / "p").is_file()
    plots.latents_tsne(latents, tmp_path / "t", per_set=20)
    assert set(plots.tsne_points(tmp_path / "t.npz")) == {"a", "b"}
    plots.latents_tsne(latents, tmp_path / "t", per_set=0)  # 'too few frames' drawn instead
    assert not (tmp_path / "t.npz").exists()


def test_each_sets_latents_have_a_mean_and_an_ellipse_told_apart_without_colour(tmp_path, monkeypatch):
    r"""The latent scatters told the sets apart by colour alone, and a dense cloud hid where each lay: each set's mean
    is now a marker of its own and its ellipse a line style of its own, the ellipse holding 90% of a Gaussian of the
    set's mean and covariance (each of its points at Mahalanobis distance sqrt(-2 ln 0.1))."""
    from flowaccent import plots
    from flowaccent.plots.latents import ellipse

    rng = np.random.default_rng(0)
    xy = rng.multivariate_normal([3.0, -1.0], [[4.0, 1.5], [1.5, 1.0]], 20000)
    mean, curve = ellipse(xy)
    inverse = np.linalg.inv(np.cov(xy.T))
    assert np.allclose(mean, xy.mean(axis=0))
    assert np.allclose(np.einsum("ni,ij,nj->n", curve - mean, inverse, curve - mean), -2 * np.log(0.1))
    assert abs((np.einsum("ni,ij,nj->n", xy - mean, inverse, xy - mean) <= -2 * np.log(0.1)).mean() - 0.9) < 0.01
    assert ellipse(np.array([[0.0, 0.0], [1.0, np.nan], [2.0, 2.0], [np.inf, 1.0]])) is None  # 2 finite points
    drawn = []
    monkeypatch.setattr(plots.figure, "save", lambda fig, base: drawn.append(fig) or base)
    latents = {name: rng.standard_normal((60, 3)) + 2 * shift for shift, name in enumerate("abcde")}
    cols = plots.colours(list(latents))
    plots.latents_first_dims(latents, tmp_path / "d", cols=cols)
    ax = drawn[0].axes[0]
    handles, labels = ax.get_legend_handles_labels()
    assert labels == [f"{name} (60)" for name in latents]
    assert len({(h.get_marker(), h.get_linestyle()) for h in handles}) == 5  # each set's own, without its colour
    assert [h.get_markerfacecolor() for h in handles] == [cols[name] for name in latents]
    curves = [line for line in ax.get_lines() if len(line.get_xdata()) == 121]
    means = [line.get_xydata()[0] for line in ax.get_lines() if len(line.get_xdata()) == 1]
    assert len(curves) == 5 and np.allclose(means, [v[:, :2].mean(axis=0) for v in latents.values()])
    plots.latents_tsne(latents, tmp_path / "t")  # a t-SNE's spreads mean nothing: its ellipses were one disc
    assert not drawn[1].axes[0].get_lines()


def test_a_tsne_of_the_same_frames_and_settings_is_drawn_again_from_its_points_not_recomputed(tmp_path, monkeypatch):
    r"""The t-SNE was most of a report's time (11 of the full demo's 19 s), and ``plot`` then ``report`` computed
    it twice. Its points go to ``latents_tsne.npz``; an earlier file of the same frames, per-set sample, seed and
    perplexity is drawn again, and one of other frames or settings, or damaged, is not."""
    import sklearn.manifold

    from flowaccent import plots

    rng = np.random.default_rng(0)
    latents = {"native": rng.standard_normal((40, 4)), "zh": rng.standard_normal((30, 4)) + 1}
    first = plots.latents_tsne(latents, tmp_path / "a" / "latents_tsne", per_set=25)
    saved = first.with_suffix(".npz")
    points = plots.tsne_points(saved)
    assert {k: v.shape for k, v in points.items()} == {"native": (25, 2), "zh": (25, 2)}
    real, fits = sklearn.manifold.TSNE, []
    monkeypatch.setattr(sklearn.manifold, "TSNE", lambda *a, **k: fits.append(k) or real(*a, **k))

    def again(name, chosen=latents, per_set=25, seed=0):
        png = plots.latents_tsne(chosen, tmp_path / name / "latents_tsne", per_set=per_set, seed=seed,
                                 reuse=[tmp_path / "none.npz", saved])
        return plots.tsne_points(png.with_suffix(".npz")), png

    drawn, png = again("b")
    assert fits == [] and png.read_bytes() == first.read_bytes()  # the same figure, byte for byte
    assert all(np.array_equal(drawn[k], points[k]) and drawn[k].dtype == points[k].dtype == np.float32 for k in points)
    moved = {"native": latents["native"] + 1e-12, "zh": latents["zh"]}  # the frames moved, however little
    for name, kwargs in (("c", {"chosen": moved}), ("d", {"per_set": 24}), ("e", {"seed": 1}),
                         ("f", {"chosen": {"zh": latents["native"], "native": latents["zh"]}})):
        count = len(fits)
        again(name, **kwargs)
        assert len(fits) == count + 1, name
    with np.load(saved) as earlier:
        key = str(earlier["key"])
    for damaged in (b"not an npz", saved.read_bytes()[:100], {"points": np.zeros((49, 2))},
                    {"points": np.full((50, 2), np.nan)}):
        count = len(fits)
        if isinstance(damaged, dict):  # its key, but not its points
            np.savez(saved, key=np.array(key), names=np.array(["native", "zh"]), sizes=np.array([25, 25]), **damaged)
        else:
            saved.write_bytes(damaged)
        again("g")
        assert len(fits) == count + 1


def test_tsne_points_names_a_file_that_is_not_a_figures(tmp_path):
    r"""numpy's and zipfile's errors (``'sizes is not a file in the archive'``) named neither the file nor what it
    should have been."""
    import pytest

    from flowaccent import plots
    from flowaccent.errors import ConfigError

    path = tmp_path / "latents_tsne.npz"
    with pytest.raises(ConfigError, match=r"latents_tsne.npz: no such file \(the .npz beside a t-SNE figure"):
        plots.tsne_points(path)
    for written, said in ((b"not an npz", "not the points of a t-SNE figure"),
                          ({"points": np.zeros((4, 2))}, "not the points of a t-SNE figure .*sizes"),
                          ({"points": np.zeros((4, 2)), "sizes": np.array([2, 3])}, r"damaged: 1 set names, 2 sizes "
                           r"summing to 5, points of shape \(4, 2\)")):
        if isinstance(written, bytes):
            path.write_bytes(written)
        else:
            np.savez(path, names=np.array(["native"]), **written)
        with pytest.raises(ConfigError, match=f"{path.name}: {said}"):
            plots.tsne_points(path)


def test_a_set_has_one_colour_in_every_figure(scored_dir_and_exp, tmp_path, monkeypatch):
    from flowaccent import plots
    from flowaccent.report import make_figures

    out_dir, exp = scored_dir_and_exp
    drawn = {}

    def spy(name, draw):
        def wrapped(*args, **kwargs):
            drawn[name] = kwargs.get("cols") or args[-1]
            return draw(*args, **kwargs)

        monkeypatch.setattr(plots, name, wrapped)

    for name in ("latents_pca", "histograms", "roc_curves", "rating_scatter"):
        spy(name, getattr(plots, name))
    make_figures(exp, out_dir, tmp_path / "figures")
    assert set(drawn) == {"latents_pca", "histograms", "roc_curves", "rating_scatter"}
    first = drawn["latents_pca"]
    assert all(cols == first for cols in drawn.values()) and set(first) == {"native", "zh", "ja"}
    # ja's utt2accent names an accent of no colour of its own: the first palette colour, its hue's family
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["sets"]["ja"]["accent"] == "japanese" and "accent" not in summary["sets"]["native"]
    assert first["ja"] == plots.PALETTE[0]


def test_sets_of_one_accent_share_a_hue_by_utt2accent():
    import colorsys

    from flowaccent.plots import ACCENT_COLOURS, PALETTE, colours
    from flowaccent.score.summary import set_accent

    def hue(c: str) -> float:
        return colorsys.rgb_to_hsv(*(int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)))[0]

    names = ["spk_a", "spk_b", "spk_c", "spk_d", "other", "test_zh"]
    accents = {"spk_a": "mandarin", "spk_b": "Native", "spk_c": "mandarin", "spk_d": "hindi", "test_zh": None}
    got = colours(names, accents)
    assert len(set(got.values())) == len(names)
    # taken in name order: 'other' (no accent) first
    assert got["other"] == PALETTE[0] and got["spk_a"] == PALETTE[1] and got["spk_d"] == PALETTE[2]
    assert got["spk_b"] == ACCENT_COLOURS["native"] and got["test_zh"] == ACCENT_COLOURS["zh"]  # by its name
    assert got["spk_c"] != got["spk_a"] and abs(hue(got["spk_c"]) - hue(PALETTE[1])) < 0.02
    assert set_accent({"u1": "zh", "u2": "ja", "u3": "zh"}) == "zh" and set_accent({"u1": "ja", "u2": "b"}) == "b"
    assert set_accent({}) is None


def test_a_folder_as_out_and_an_interrupted_rerun(scored_dir_and_exp, tmp_path, monkeypatch, capsys):
    r"""``--out DIR`` (existing, or with a trailing slash) writes DIR/report.html (it was a traceback); a rerun
    removes the earlier report before drawing, so an interrupted one leaves no report beside figures it did not
    draw; wrong inputs leave the earlier report as it was."""
    from flowaccent import plots

    out_dir, exp = scored_dir_and_exp
    folder = tmp_path / "r"
    folder.mkdir()
    assert main(["report", "--exp", str(exp), "--scores", str(out_dir), "--out", str(folder)]) == 0
    assert (folder / "report.html").exists() and (folder / "report.md").exists()
    assert main(["report", "--exp", str(exp), "--scores", str(out_dir), "--out", f"{tmp_path}/new/"]) == 0
    assert (tmp_path / "new" / "report.html").exists()
    assert main(["report", "--exp", str(exp), "--scores", str(out_dir), "--out", f"{tmp_path}/r_1"]) == 0
    assert (tmp_path / "r_1" / "report.html").exists() and (tmp_path / "r_1" / "figures").is_dir()
    assert not (tmp_path / "r_1.md").exists()  # it wrote an HTML file r_1, r_1.md, and figures/ beside them
    kept = (out_dir / "summary.json").read_bytes()  # a file not .html: said '.../summary.json/figures: Not a directory'
    capsys.readouterr()
    assert main(["report", "--exp", str(exp), "--scores", str(out_dir), "--out", str(out_dir / "summary.json")]) == 1
    assert (out_dir / "summary.json").read_bytes() == kept
    assert capsys.readouterr().err == (f"flowaccent report: error: --out {out_dir / 'summary.json'} is a file; give a "
                                       "path ending in .html, or a folder\n")
    assert main(["report", "--exp", str(tmp_path / "nowhere"), "--scores", str(out_dir), "--out", str(folder)]) == 1
    assert (folder / "report.html").exists()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    before = {p.name: p.read_bytes() for p in (folder / "figures").iterdir()}
    mine = {"roc_my_paper_figure.png": b"the user's", "blurmask_old_slides.pdf": b"the user's"}
    for name, text in mine.items():
        (folder / "figures" / name).write_bytes(text)
    monkeypatch.setattr(plots, "latents_tsne", interrupted)
    assert main(["report", "--exp", str(exp), "--scores", str(out_dir), "--out", str(folder)]) == 130
    assert not (folder / "report.html").exists() and not (folder / "report.md").exists()
    # the earlier figures whole (a Ctrl-C left 6 of 18), none half-drawn beside them, the user's files kept
    assert {p.name: p.read_bytes() for p in (folder / "figures").iterdir()} == before | mine
    # a t-SNE that says why it has none: the suite's time (this is about which files stay)
    monkeypatch.setattr(plots, "latents_tsne", lambda latents, base, per_set, cols=None, reuse=(), before_fit=None:
                        plots.figure.too_few(base, "t-SNE", "not drawn in this test"))
    assert main(["plot", "--exp", str(exp), "--scores", str(out_dir), "--out", str(folder / "figures")]) == 0
    # 'roc_\w+|blurmask_.+' went; the t-SNE's points went with the points from its figure
    assert {p.name for p in (folder / "figures").iterdir()} == set(before) - {"latents_tsne.npz"} | set(mine)
    # --out a link to the latest report (a web folder's): written through it, beside the file it links to (the link
    # was replaced by a file of its own, figures/ drawn in the link's folder)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "latest.html").symlink_to(tmp_path / "new" / "report.html")
    (tmp_path / "new" / "report.md").unlink()
    (tmp_path / "new" / "report.html").unlink()  # a link to a report not made yet was refused as broken
    assert main(["report", "--exp", str(exp), "--scores", str(out_dir), "--out", str(tmp_path / "www" / "latest.html")]
                ) == 0
    assert (tmp_path / "www" / "latest.html").is_symlink() and (tmp_path / "new" / "report.md").is_file()
    assert "<title>flowaccent report" in (tmp_path / "www" / "latest.html").read_text()
    assert [p.name for p in (tmp_path / "www").iterdir()] == ["latest.html"]


def test_figures_are_not_drawn_among_a_sets_scores_nor_a_data_dirs_tables(scored_dir_and_exp, tmp_path, capsys):
    r"""``plot --out`` a scored set's folder wrote 27 figures among its scores (``report`` refused that folder);
    both went in among a Kaldi data dir's tables."""
    out_dir, exp = scored_dir_and_exp
    scored = next(path.parent for path in out_dir.glob("*/utt_scores.tsv"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "utt2spk").write_text("a-1 a\n")
    for command, out, folder, what in [("plot", scored, scored, "the figures"),
                                       ("report", scored / "r.html", scored, "the report and its figures"),
                                       ("plot", data, data, "the figures"),
                                       ("report", data, data, "the report and its figures")]:
        before = sorted(folder.iterdir())
        assert main([command, "--exp", str(exp), "--scores", str(out_dir), "--out", str(out)]) == 1
        kind = "a scored set's folder" if folder == scored else "a Kaldi data dir"
        assert capsys.readouterr().err == (f"flowaccent {command}: error: --out {folder} is {kind}; give {what} a "
                                           "folder of their own\n")
        assert sorted(folder.iterdir()) == before


def test_a_page_at_out_that_is_not_an_earlier_reports_is_not_replaced(scored_dir_and_exp, tmp_path, capsys):
    r"""``--out notes/thesis.html`` replaced the user's thesis.html, and the thesis.md beside it, without a word (as
    a thesis.md in an ``--out`` folder); an earlier report there is replaced, and an ``--out`` under a file named
    ``--out`` (it said '.../afile/figures: Not a directory')."""
    out_dir, exp = scored_dir_and_exp
    notes = tmp_path / "notes"
    notes.mkdir()
    for page, text in (("thesis.html", "<html>my thesis</html>"), ("report.md", "# my notes\n")):
        (notes / page).write_text(text)
        out = notes / "thesis.html" if page.endswith(".html") else notes
        assert main(["report", "--exp", str(exp), "--scores", str(out_dir), "--out", str(out), "--tsne-frames",
                     "0"]) == 1
        shown = out if page.endswith(".html") else out / "report.html"
        assert capsys.readouterr().err == (f"flowaccent report: error: --out {shown}: {notes / page} is a file there "
                                           "already, not an earlier report, which the report would replace; give "
                                           "another --out, or remove it\n")
        assert (notes / page).read_text() == text and not (notes / "figures").exists()
    (notes / "report.md").unlink()
    for _ in range(2):  # a report, then the report again over it
        assert main(["report", "--exp", str(exp), "--scores", str(out_dir), "--out", str(notes), "--tsne-frames",
                     "0"]) == 0
    assert "<title>flowaccent report: " in (notes / "report.html").read_text()
    # a report of before a2f68bc (its title and heading without the colon and name) is an earlier report too
    html, md = (notes / "report.html").read_text(), (notes / "report.md").read_text()
    (notes / "report.html").write_text(html.replace(f"<title>flowaccent report: {exp}</title>",
                                                    "<title>flowaccent report</title>"))
    (notes / "report.md").write_text("# flowaccent report\n" + md.split("\n", 1)[1])
    assert "<title>flowaccent report</title>" in (notes / "report.html").read_text()
    assert main(["report", "--exp", str(exp), "--scores", str(out_dir), "--out", str(notes), "--tsne-frames", "0"]) == 0
    capsys.readouterr()
    own = exp / "report.md"  # the default --out, EXP_DIR/report.html: its message names no --out
    kept = own.read_text() if own.exists() else None
    own.write_text("# my notes on this model\n")
    try:
        assert main(["report", "--exp", str(exp), "--scores", str(out_dir), "--tsne-frames", "0"]) == 1
        assert capsys.readouterr().err == (f"flowaccent report: error: {exp / 'report.html'}: {own} is a file there "
                                           "already, not an earlier report, which the report would replace; give "
                                           "--out, or remove it\n")
    finally:
        own.unlink()
        if kept is not None:
            own.write_text(kept)
    (tmp_path / "afile").write_text("")
    capsys.readouterr()
    assert main(["report", "--exp", str(exp), "--scores", str(out_dir), "--out", str(tmp_path / "afile" / "r.html"),
                 "--tsne-frames", "0"]) == 1
    assert capsys.readouterr().err == (f"flowaccent report: error: --out {tmp_path / 'afile' / 'r.html'}: "
                                       f"{tmp_path / 'afile'} is a file, not a folder\n")


def test_no_rating_figure_without_varying_ratings_and_words_for_what_is_there(scored_dir_and_exp, tmp_path,
                                                                             monkeypatch):
    r"""A native reference rated 5 throughout was drawn as a rating figure of one vertical line; the one-class
    model's report explained _c/_r and llr, which it has not."""
    import shutil

    from flowaccent import plots
    from flowaccent.report import make_figures, naming

    for name in ("latents_first_dims", "latents_pca", "latents_tsne", "roc_curves", "histograms", "training_curves"):
        monkeypatch.setattr(plots, name, lambda *args, **kwargs: tmp_path / "not drawn.png")  # the slow ones
    out_dir, exp = scored_dir_and_exp
    copy = shutil.copytree(out_dir, tmp_path / "scores")
    summary = json.loads((copy / "summary.json").read_text())
    assert "Utterance scores against rating" in make_figures(exp, copy, tmp_path / "f")
    summary.pop("rating")  # as for sets whose ratings do not vary
    (copy / "summary.json").write_text(json.dumps(summary))
    assert "Utterance scores against rating" not in make_figures(exp, copy, tmp_path / "g")
    assert "<b>llr</b>" in naming(summary) and "_c and _r" in naming(summary)
    one_class = {"sets": {"a": {"skew": 0.1}}, "detection": {"b": {"by_score": {"log_ll": 0.5}}}}
    assert "llr" not in naming(one_class) and "_c and _r" not in naming(one_class) and "[" not in naming(one_class)


def test_plots_leave_the_callers_backend_alone_and_take_what_a_notebook_passes(tmp_path):
    r"""Every plot switched matplotlib to Agg (a notebook's inline backend gone); a dotted name lost its last part
    (with_suffix); a str base, tensors and lists were AttributeErrors."""
    import matplotlib
    import torch

    from flowaccent import plots

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        plots.histograms({"native": [1.0, 2.0, 2.5]}, str(tmp_path / "h.v1"), "x", "t")
        m = torch.rand(12, 5) * 9 + 1
        plots.blurmask_utterance(torch.randn(12, 5), m, m < 3, m > 7, tmp_path / "utt.v1", "t")
        plots.blurmask_utterance(torch.randn(12, 5), m, m < 3, m > 7, tmp_path / "utt.v2", "t")
        with pytest.raises(ValueError, match=r"got feats \(12, 5\), m \(5, 12\), removed_low \(5, 12\)"):
            plots.blurmask_utterance(torch.randn(12, 5), m.T, m.T < 3, m.T > 7, tmp_path / "utt.v3", "t")  # drawn
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{n}.{s}" for n in ("h.v1", "utt.v1", "utt.v2")
                                                          for s in ("pdf", "png")]


def test_row_headers_and_the_markdown_pages_figure_links(tmp_path):
    r"""A set's rows by score are named by both cells; the SVR table by set, whose columns are sets, not by a set
    named 'baseline'. report.md's figure links encoded: a blur mask's figure is named by its utterance id, which may
    hold '#' or a space (the link ended there)."""
    from flowaccent.report.pages import markdown_page, row_keys

    assert row_keys(["set", "score", "Pearson"]) == 2 and row_keys(["set", "baseline", "utts"]) == 2
    assert row_keys(["fitted on", "baseline", "zh"]) == 1 and row_keys(["phone", "frames"]) == 1
    png = tmp_path / "figures" / "blurmask_zh_u #1.png"
    summary = {"model": {"checkpoint": "m.pt", "dim": 2, "cond_dim": 0, "classes": ["native"]}}
    page = markdown_page(summary, [], {"mask": png}, "", [], [], tmp_path)
    assert "![mask](figures/blurmask_zh_u%20%231.png)" in page


def test_the_markdown_page_shows_each_cell_note_and_title_as_written(tmp_path):
    r"""report.md rendered as GitHub renders it (CommonMark with tables and strikethrough): a phone ``a*b*`` was an
    italic ``ab``, ``~~x~~`` struck through, ``&lt;`` a ``<``, ``_x_`` in italics, a backtick code; the same in a
    table's title, a note and a figure's title. Each is now shown as written, and a note's bold stays bold."""
    import html

    from markdown_it import MarkdownIt

    from flowaccent.report.pages import markdown_page

    odd = ["a*b*", "~~x~~", "&lt;", "<sil>", "_x_", "`q`", "back\\slash\\", "c|d", "[e](f)", "x_y", "a&b"]
    rows = [[f"zh_{n}", phone] for n, phone in enumerate(odd)]
    sections = [("scores of *all* _sets_", ["set", "phone"], rows)]
    notes = ["<b>log_ll</b>: the note's *own* `text` &amp;lt; a-&gt;b ~~c~~"]
    summary = {"model": {"checkpoint": "m.pt", "dim": 2, "cond_dim": 0, "classes": ["native"]}}
    figure = "mask of *u* [1] _v_"
    page = markdown_page(summary, sections, {figure: tmp_path / "figures" / "x.png"}, "", notes, [], tmp_path)
    rendered = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(page)
    cells = re.findall(r"<td>(.*?)</td>", rendered)
    assert not [cell for cell in cells if "<" in cell]  # no markup: <em>, <code>, <s>, <a> or a tag passed through
    assert [html.unescape(cell) for cell in cells] == [cell for row in rows for cell in row]
    assert f"<p>{notes[0].replace('<b>', '<strong>').replace('</b>', '</strong>')}</p>" in rendered
    assert "<h2>scores of *all* _sets_</h2>" in rendered
    assert ">scores of *all* _sets_</a></li>" in rendered  # the contents' link
    assert f'alt="{figure}"' in rendered and f"<em>Figure 1: {figure}</em>" in rendered


def test_a_blur_mask_figure_draws_an_utterance_id_as_it_is(tmp_path, monkeypatch):
    r"""Kaldi's ids may hold ``$``: matplotlib drew the text between two as mathtext (``a$b$`` as a and italic b)."""
    from flowaccent import plots

    drawn = []
    monkeypatch.setattr(plots.figure, "save", lambda fig, base: drawn.append(fig) or base)
    m = np.full((6, 4), 2.0)
    plots.blurmask_utterance(np.zeros((6, 4)), m, m < 1, m > 3, tmp_path / "u", "utterance 'a$b$' of zh")
    title = drawn[0]._suptitle
    assert title._preprocess_math(title.get_text()) == ("utterance 'a$b$' of zh", False)


def test_each_rating_panel_gives_each_sets_pearson_r_and_marker(tmp_path, monkeypatch):
    r"""The rating figure showed the points alone; each panel now gives each set's Pearson r, in its colour and
    marker, as the report's correlation table computes it (``-`` where it is not defined)."""
    from flowaccent import plots

    drawn = []
    monkeypatch.setattr(plots.figure, "save", lambda fig, base: drawn.append(fig) or base.with_suffix(".png"))
    rng = np.random.default_rng(0)
    ratings = {"zh": np.arange(1.0, 21.0), "ja": np.array([1.0, 2.0])}
    noisy = -40 + ratings["zh"] + rng.normal(0, 3, 20)
    scores = {"log_ll": {"zh": -40 + 0.5 * ratings["zh"], "ja": np.array([-40.0, -41.0])},
              "llr": {"zh": noisy, "ja": np.array([1.0, 2.0])}}
    cols = {"zh": "#d62728", "ja": "#e377c2"}
    plots.rating_scatter(scores, ratings, tmp_path / "rating", cols)
    (fig,) = drawn
    import matplotlib.colors

    legends = [[(t.get_text(), matplotlib.colors.to_hex(h.get_facecolor()[0]))
                for t, h in zip(ax.get_legend().get_texts(), ax.get_legend().legend_handles)] for ax in fig.axes]
    expected = np.corrcoef(noisy, ratings["zh"])[0, 1]
    assert legends == [[("zh (n=20): r = 1.00", cols["zh"]), ("ja (n=2): r = -", cols["ja"])],
                       [(f"zh (n=20): r = {expected:.2f}", cols["zh"]), ("ja (n=2): r = -", cols["ja"])]]
    # each set its own marker, the same in every panel and its legend (red and pink points told apart by shape)
    shapes = [[c.get_paths()[0].vertices.round(3).tobytes() for c in ax.collections] for ax in fig.axes]
    legend_shapes = [[h.get_paths()[0].vertices.round(3).tobytes() for h in ax.get_legend().legend_handles]
                     for ax in fig.axes]
    assert shapes[0] == shapes[1] == legend_shapes[0] == legend_shapes[1] and shapes[0][0] != shapes[0][1]
    assert all(not ax.texts for ax in fig.axes)  # nothing over the points


def test_each_roc_curve_gives_its_auc_and_interval(tmp_path, monkeypatch):
    from flowaccent import plots
    from flowaccent.score.metrics import auc_interval, detection_auc

    drawn = []
    monkeypatch.setattr(plots.figure, "save", lambda fig, base: drawn.append(fig) or base.with_suffix(".png"))
    rng = np.random.default_rng(0)
    reference, others = rng.normal(1, 1, 30), {"zh": rng.normal(0, 1, 20), "ja": np.array([0.5])}
    plots.roc_curves(reference, others, tmp_path / "roc", "log_ll", "native")
    (fig,) = drawn
    low, high = auc_interval(reference, others["zh"])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        f"zh: AUC {detection_auc(reference, others['zh']):.3f} [{low:.2f}, {high:.2f}] (n=20)",
        f"ja: AUC {detection_auc(reference, others['ja']):.3f} (n=1)"]  # one utterance: no interval
    speakers = {"native": [f"n{i % 3}" for i in range(30)], "zh": [f"z{i % 4}" for i in range(20)], "ja": ["j0"]}
    plots.roc_curves(reference, others, tmp_path / "roc", "log_ll", "native", speakers=speakers)
    low, high = auc_interval(reference, others["zh"], speakers["native"], speakers["zh"])
    assert drawn[1].axes[0].get_legend().get_texts()[0].get_text().endswith(f" [{low:.2f}, {high:.2f}] (n=20)")
    assert (low, high) != pytest.approx(auc_interval(reference, others["zh"]))  # over the speakers


def test_many_sets_of_one_accent_keep_a_shape_of_their_own_in_the_roc_and_rating_figures(tmp_path, monkeypatch):
    r"""14 sets of one accent (shades of one red): the ROC's four line styles drew three of them as one solid red,
    and the rating figure's ten markers repeated (the 2nd and the 12th set two light-pink triangles). Each curve now
    has a line style and a marker, each set's points a shape, filled or hollow, of their own."""
    from flowaccent import plots

    drawn = []
    monkeypatch.setattr(plots.figure, "save", lambda fig, base: drawn.append(fig) or base.with_suffix(".png"))
    rng = np.random.default_rng(0)
    names = [f"zh_{i:02d}" for i in range(14)]
    plots.roc_curves(rng.normal(1, 1, 30), {n: rng.normal(0, 1, 20) for n in names}, tmp_path / "roc", "s", "ref")
    curves = [line for line in drawn[0].axes[0].get_lines() if line.get_label() in {
        t.get_text() for t in drawn[0].axes[0].get_legend().get_texts()}]
    assert len(curves) == 14 and len({(c.get_linestyle(), c.get_marker()) for c in curves}) == 14
    ratings = {n: np.arange(1.0, 6.0) for n in names}
    plots.rating_scatter({"log_ll": {n: rng.normal(0, 1, 5) for n in names}}, ratings, tmp_path / "rating")
    points = drawn[1].axes[0].collections
    hollow = [not len(c.get_facecolor()) or c.get_facecolor()[0][3] == 0 for c in points]
    looks = {(c.get_paths()[0].vertices.round(3).tobytes(), empty) for c, empty in zip(points, hollow)}
    assert len(points) == 14 and len(looks) == 14 and sum(hollow) == 4  # the 11th to 14th hollow


def test_svr_across_many_sets_is_one_table_not_a_row_per_pair():
    r"""Every ordered pair of rated sets was a row of the SVR table (56 rows at 8 rated sets, 240 at 16: about half
    of a 25-set report.md); past two pairs they are a table of fitted-on rows and applied-to columns."""
    from flowaccent.report.tables import sections

    def result(r, **more):
        return {"pearson": r, "spearman": r, "n": 10, **more}

    def summary(names):
        regression = {n: {"svr_cv": result(0.5, pearson_ci95=[0.25, 0.625]), "svr_cv_shuffled": result(0.0)}
                      for n in names}
        regression |= {f"{a}->{b}": {"svr": result(0.25, **({"shared_utts": 3} if (a, b) == ("a", "b") else {}))}
                       for a in names for b in names if a != b}
        return {"sets": {n: {"num_utts": 10} for n in names}, "regression": regression}

    tables = {title.split(" (")[0].split(":")[0]: (header, rows) for title, header, rows in sections(summary(
        ["a", "b", "x-"]))}
    header, rows = tables["Ratings from averaged latents"]
    assert [r[:2] for r in rows] == [[n, k] for n in ("a", "b", "x-") for k in ("svr_cv", "svr_cv_shuffled")]
    assert [r[2] for r in rows[:2]] == ["0.500 [0.25, 0.62]", "0.000"]  # an interval where there is one
    header, rows = tables["SVR fitted on one set"]
    assert header == ["fitted on", "a", "b", "x-"]  # a name ending in '-' read whole
    assert rows == [["a", "", "0.250 (3 shared)", "0.250"], ["b", "0.250", "", "0.250"], ["x-", "0.250", "0.250", ""]]
    two = {title: rows for title, _, rows in sections(summary(["a", "b"]))}
    assert [r[:2] for r in two["Ratings from averaged latents (SVR)"]][-2:] == [["a->b", "svr (3 utts in both sets)"],
                                                                                  ["b->a", "svr"]]
    assert not any(title.startswith("SVR fitted") for title in two)


def test_a_short_utterances_mask_figure_counts_whole_frames(tmp_path, monkeypatch):
    r"""A 1-frame utterance's blur-mask figure had frame ticks -0.4, -0.2, 0.0, 0.2, 0.4."""
    from flowaccent import plots

    drawn = []
    monkeypatch.setattr(plots.figure, "save", lambda fig, base: drawn.append(fig) or base.with_suffix(".png"))
    for frames in (1, 3):
        m = np.full((frames, 5), 4.0)
        plots.blurmask_utterance(np.zeros((frames, 5)), m, m < 3, m > 7, tmp_path / "utt", "t")
        drawn[-1].canvas.draw()
        ticks = [t for t in drawn[-1].axes[3].get_xticks() if -0.5 <= t <= frames - 0.5]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_a_report_with_blur_masks_shows_their_tables_and_figures(scored_dir_and_exp, tmp_path, capsys):
    r"""``report --blurmask DIR``: the blur-mask run's AUC/SRG and lab tables, its deletion curves and one mask
    per set, in the HTML (embedded) and the Markdown (copied beside it); masks of another model file refused
    before anything is written; a report without them leaves none of their figures."""
    scores, exp = scored_dir_and_exp
    root = exp.parent
    masks = tmp_path / "masks"
    assert main(["blurmask", "--exp", str(exp), "--data", str(root / "native"), "--data", str(root / "ja"),
                 "--utts", "2", "--steps", "5", "--random-seeds", "1", "--step", "0.25", "--quiet",
                 "--out", str(masks)]) == 0
    out = tmp_path / "r" / "report.html"
    report = ["report", "--exp", str(exp), "--scores", str(scores), "--out", str(out)]
    assert main([*report, "--blurmask", str(masks)]) == 0
    html, md = out.read_text(), out.with_suffix(".md").read_text()
    # the same in a fresh process reads the blur-mask run without torch (its tables once lived beside the fitting)
    fresh = [*report[:-1], str(tmp_path / "fresh" / "report.html"), "--blurmask", str(masks), "--tsne-frames", "0"]
    code = f"import sys; from flowaccent.cli.main import main; print(main({fresh!r}), 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["0", "False"], done.stderr
    for text in ("<h2>Blur masks: AUCs and SRG per set and baseline</h2>", "<th scope='row'>all sets</th>",
                 "<h2>Blur masks: the lab's table: median output change over all utterances",
                 "SRG = AUC(lowest first) - AUC(highest first)", "blur masks: flowaccent blurmask --exp",
                 "learned blur width m, small where"):
        assert text in html, text
    utts = sorted((masks / "native").glob("*.npz"))[0].stem, sorted((masks / "ja").glob("*.npz"))[0].stem
    captions = ["Blur masks: deletion curves (blur mask, target log_ll)",
                f"Blur mask of utterance '{utts[0]}' of native", f"Blur mask of utterance '{utts[1]}' of ja"]
    for caption in captions:
        assert f"<img alt='{caption}' src='data:image/png;base64," in html.replace("&#x27;", "'"), caption
    images = re.findall(r"!\[([^\]]*)\]\(([^)]*)\)", md)
    assert [c for c, _ in images if "lur mask" in c] == captions and all((out.parent / p).is_file() for _, p in images)
    assert "| all sets | blur |" in md and "utterances with SRG > 0" in md
    # masks of another model file (their digest): refused, the report as it was
    before = out.read_bytes()
    summary = json.loads((masks / "summary.json").read_text())
    digest, summary["model"]["digest"] = summary["model"]["digest"], "0" * 64
    (masks / "summary.json").write_text(json.dumps(summary))
    capsys.readouterr()
    assert main([*report, "--blurmask", str(masks)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{masks}: masks of {exp / 'final.pt'} as it was then, not of the model file" in err[0]
    assert out.read_bytes() == before
    # a summary of an older blurmask (before 'num_defined', as 4ac5b53 and d6db35c wrote it): one line, not a
    # KeyError's traceback, and the report as it was
    summary["model"]["digest"] = digest
    for s in [summary["all"], *summary["sets"].values()]:
        for b in s["baselines"].values():
            del b["num_defined"]
    (masks / "summary.json").write_text(json.dumps(summary))
    assert main([*report, "--blurmask", str(masks)]) == 1
    assert capsys.readouterr().err == (
        f"flowaccent report: error: {masks / 'summary.json'}: a summary of 'flowaccent blurmask' in another format "
        "than this version writes (an older flowaccent's?), lacking what the report reads (KeyError: "
        f"'num_defined'); run 'flowaccent blurmask --out {masks}' again with this version\n")
    assert out.read_bytes() == before
    assert main([*report, "--blurmask", str(tmp_path / "none")]) == 1
    assert "no such folder (--blurmask: the --out of 'flowaccent blurmask')" in capsys.readouterr().err
    assert main(report) == 0  # without: no blur-mask table, figure or file left from the run before
    assert "Blur mask" not in out.read_text() and not list((out.parent / "figures").glob("blurmask_*"))


def test_scores_replaced_take_their_drawings_and_wrong_folders_are_named(scored_dir_and_exp, tmp_path, capsys):
    r"""A second score into a folder left the first scores' figures (plot's default --out) and report there beside
    the new summary, with no word; plot --out a file said '.../.partial: Not a directory'; a missing --scores
    folder was 'summary.json: missing; run score first'; and the summary of the other command given to report
    (--scores a blurmask run, --blurmask a score run) a KeyError and 'run it again'."""
    import shutil

    out_dir, exp = scored_dir_and_exp
    root = exp.parent
    scores = tmp_path / "scores"
    shutil.copytree(out_dir, scores)
    assert main(["plot", "--exp", str(exp), "--scores", str(scores), "--tsne-frames", "0"]) == 0
    assert main(["report", "--exp", str(exp), "--scores", str(scores), "--out", str(scores), "--tsne-frames", "0"]) == 0
    (scores / "figures" / "phones_relative.png").write_bytes(b"report --phones'")  # its copy of a phones figure
    drawn = sorted(p.name for p in (scores / "figures").iterdir())
    (scores / "figures" / "mine.png").write_bytes(b"user's")
    capsys.readouterr()
    assert main(["score", "--exp", str(exp), "--out", str(scores), str(root / "native"), str(root / "ja"),
                 "--quiet"]) == 0
    assert (f"score: note: {len(drawn) + 2} file(s) of a report or figures drawn from {scores}'s earlier scores "
            "removed") in capsys.readouterr().err
    assert sorted(p.name for p in (scores / "figures").iterdir()) == ["mine.png"]
    assert not (scores / "report.html").exists() and not (scores / "report.md").exists()
    (tmp_path / "afile").write_text("")
    assert main(["plot", "--exp", str(exp), "--scores", str(scores), "--out", str(tmp_path / "afile")]) == 1
    assert capsys.readouterr().err == (f"flowaccent plot: error: --out {tmp_path / 'afile'} is a file; give the "
                                       "figures a folder\n")
    assert main(["report", "--exp", str(exp), "--scores", str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().err == (f"flowaccent report: error: {tmp_path / 'nope'}: no such folder (--scores: the "
                                       "--out of 'flowaccent score')\n")
    masks = tmp_path / "masks"
    masks.mkdir()
    (masks / "summary.json").write_text(json.dumps({"sets": {}, "all": {}, "config": {"fit": {"variant": "x"}}}))
    assert main(["report", "--exp", str(exp), "--scores", str(masks)]) == 1
    assert "summary.json: the summary of 'flowaccent blurmask', not of 'flowaccent score'" in capsys.readouterr().err
    assert main(["report", "--exp", str(exp), "--scores", str(scores), "--blurmask", str(scores)]) == 1
    assert capsys.readouterr().err == (f"flowaccent report: error: {scores / 'summary.json'}: the summary of "
                                       "'flowaccent score', not of 'flowaccent blurmask' (--blurmask: the --out of "
                                       "'flowaccent blurmask')\n")
    (tmp_path / "phones").mkdir()  # it said to run blurmask into it
    (tmp_path / "phones" / "phones.json").write_text("{}")
    assert main(["report", "--exp", str(exp), "--scores", str(scores), "--blurmask", str(tmp_path / "phones")]) == 1
    assert capsys.readouterr().err == (f"flowaccent report: error: {tmp_path / 'phones'}: the output of 'flowaccent "
                                       "phones' (--phones DIR), not of 'flowaccent blurmask' (--blurmask: the --out of "
                                       "'flowaccent blurmask')\n")


def test_each_figure_and_table_draws_on_the_right_sets_and_utterances(trained, tmp_path, monkeypatch):
    r"""What the report hands its drawings, spied: the ROC curves the reference set's scores against the others',
    the rating figure only the rated utterances (zh here rates 24 of its 40), the LogLL histograms weighted by each
    utterance's frames; the detection table counts each set's own utterances."""
    import shutil

    from flowaccent import plots
    from flowaccent.data import load_data_dir, write_table
    from flowaccent.report.tables import with_interval
    from flowaccent.score.tables import read_tsv

    root, exp = trained
    zh = shutil.copytree(root / "zh", tmp_path / "zh")
    rng = np.random.default_rng(1)
    write_table(zh / "utt2score", {u: f"{rng.uniform(1, 5):.2f}" for u in sorted(load_data_dir(zh).utt2spk)[:24]})
    out = tmp_path / "s"
    sets = [f"native={root / 'native'}", f"zh={zh}", f"ja={root / 'ja'}"]
    assert main(["score", "--exp", str(exp), "--out", str(out), *sets, "--quiet"]) == 0
    tables = {n: read_tsv(out / n / "utt_scores.tsv") for n in ("native", "zh", "ja")}
    calls = {}
    for name in ("roc_curves", "rating_scatter", "histograms"):
        def spy(*args, _name=name, _real=getattr(plots, name), **kwargs):
            calls.setdefault(_name, []).append((args, kwargs))
            return _real(*args, **kwargs)
        monkeypatch.setattr(plots, name, spy)
    report = ["report", "--exp", str(exp), "--scores", str(out), "--out", str(tmp_path / "r.html")]
    assert main([*report, "--tsne-frames", "0"]) == 0
    assert [args[3] for args, _ in calls["roc_curves"]] == ["log_ll", "llr"]
    for (reference, others, _, score, *_), _ in calls["roc_curves"]:
        assert np.array_equal(reference, tables["native"][score])
        assert list(others) == ["zh", "ja"] and all(np.array_equal(others[n], tables[n][score]) for n in others)
    ((scores, ratings, *_), _), = calls["rating_scatter"]
    rated = {n: np.isfinite(tables[n]["score"]) for n in ("zh", "ja")}
    assert rated["zh"].sum() == 24 and rated["ja"].all()
    for n in ("zh", "ja"):
        assert np.array_equal(ratings[n], tables[n]["score"][rated[n]])
        assert np.array_equal(scores["log_ll"][n], tables[n]["log_ll"][rated[n]])
    ((values, *_), kwargs), = calls["histograms"]
    for n, table in tables.items():
        assert np.array_equal(values[n], table["log_ll"]) and np.array_equal(kwargs["weights"][n], table["num_frames"])
    markdown = (tmp_path / "r.md").read_text()
    detection = re.search(r"## Detection AUC against 'native' \(40 utts\)\n\n(.*?)\n\n", markdown, re.S)
    rows = [line.split("|")[1:4] for line in detection.group(1).splitlines()[2:]]
    summary = json.loads((out / "summary.json").read_text())["detection"]
    assert [[c.strip() for c in r] for r in rows] == [[n, u, with_interval(summary[n], "log_ll")] for n, u in
                                                      (("zh", "40"), ("ja", "30"))]
    assert re.fullmatch(r"[01]\.\d{3} \[[01]\.\d\d, [01]\.\d\d\]", rows[1][2].strip())  # the AUC, its interval


def test_a_full_disk_while_a_figure_is_written_is_one_error_naming_it(tmp_path, monkeypatch):
    r"""matplotlib's PDF writer, closing its stream after the disk filled, raised an AttributeError of its own: a
    60-line traceback of both, not 'No space left on device' in one line."""
    import errno

    from flowaccent.plots import figure

    fig, ax = figure.subplots(figsize=(2, 2))
    ax.plot([0, 1])

    def full(*args, **kwargs):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:  # its context: the disk's error
            raise AttributeError("'Stream' object has no attribute 'pos'")  # noqa: B904 - as matplotlib raises it

    monkeypatch.setattr(fig, "savefig", full)
    with pytest.raises(OSError) as raised:
        figure.save(fig, tmp_path / "f")
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(tmp_path / "f.png")
    assert not list(tmp_path.iterdir())  # nothing half-written
    monkeypatch.setattr(fig, "savefig", lambda *a, **k: (_ for _ in ()).throw(ValueError("not a disk's")))
    with pytest.raises(ValueError, match="not a disk's"):
        figure.save(fig, tmp_path / "g")


def test_a_figure_drawn_again_at_another_time_is_the_same_pdf(tmp_path, monkeypatch):
    r"""The PDF carried its creation date: a report drawn again from the same scores differed in every PDF, and a
    user comparing two runs' folders saw every figure changed."""
    from flowaccent.plots import figure

    pdfs = []
    for second, name in (("1000000000", "a"), ("1000000600", "b")):  # matplotlib dates a PDF by SOURCE_DATE_EPOCH
        monkeypatch.setenv("SOURCE_DATE_EPOCH", second)
        fig, ax = figure.subplots(figsize=(2, 2))
        ax.plot([0, 1])
        figure.save(fig, tmp_path / name)
        pdfs.append((tmp_path / f"{name}.pdf").read_bytes())
    assert pdfs[0] == pdfs[1]


def test_a_second_report_into_one_folder_is_refused_while_the_first_draws(scored_dir_and_exp, tmp_path, capsys):
    r"""Two reports into one folder removed each other's staged figures (``figures/.partial``): one failed on a
    figure that was gone, the other ended with exit 0 and a report whose figures were gone."""
    import fcntl

    from flowaccent.report.figures import FIGURES_LOCK

    out_dir, exp = scored_dir_and_exp
    figures = tmp_path / "r" / "figures"
    figures.mkdir(parents=True)
    with open(figures / FIGURES_LOCK, "w") as held:  # as the first run holds it while it draws
        fcntl.flock(held, fcntl.LOCK_EX)
        for command in ("report", "plot"):
            out = tmp_path / "r" if command == "report" else figures
            assert main([command, "--exp", str(exp), "--scores", str(out_dir), "--out", str(out)]) == 1
            assert capsys.readouterr().err == (f"flowaccent {command}: error: {figures} is being drawn into by "
                                               "another flowaccent report or plot now; wait for it or give another "
                                               "--out\n")
    assert main(["report", "--exp", str(exp), "--scores", str(out_dir), "--out", str(tmp_path / "r"),
                 "--tsne-frames", "0"]) == 0
    assert not (figures / FIGURES_LOCK).exists() and (tmp_path / "r" / "report.html").exists()
