r"""Figures and the self-contained report from a tiny trained model."""

from __future__ import annotations

import re

from flowaccent.cli.main import main


def test_report_embeds_every_image(scored_dir_and_exp, tmp_path):
    out_dir, exp = scored_dir_and_exp
    html_path = tmp_path / "report.html"
    assert main(["report", "--exp", str(exp), "--scores", str(out_dir), "--out", str(html_path)]) == 0
    html = html_path.read_text()
    sources = re.findall(r"<img [^>]*src='([^']*)'", html)
    assert len(sources) >= 7 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "src='http" not in html and "href=" not in html  # nothing outside the page
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
    assert "classes native, zh." in md and "classes native, zh.</p>" in html  # the model, in both
    assert "| set | log_ll | llr | gmm_log_ll |" in md  # in the order scored, as in the recipes' RESULTS.md
    images = re.findall(r"!\[[^\]]*\]\(([^)]*)\)", md)
    assert len(images) == len(sources) and all((tmp_path / p).exists() for p in images)
    for png in images:
        assert (tmp_path / png).with_suffix(".pdf").exists()


def test_plot_command(scored_dir_and_exp, tmp_path, capsys):
    out_dir, exp = scored_dir_and_exp
    assert main(["plot", "--exp", str(exp), "--scores", str(out_dir), "--out", str(tmp_path / "f")]) == 0
    names = {p.name for p in (tmp_path / "f").iterdir()}
    assert {"latents_tsne.png", "latents_pca.pdf", "roc_llr.png", "training_curves.png", "hist_log_ll.png"} <= names


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
    (scores / "native" / "latents.npy").unlink()
    assert f"{scores / 'native' / 'latents.npy'}: missing, though summary.json lists set 'native'" in report(exp)
    (scores / "summary.json").write_text("{")
    assert f"{scores / 'summary.json'}: not valid JSON" in report(exp)
