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
    images = re.findall(r"!\[[^\]]*\]\(([^)]*)\)", md)
    assert len(images) == len(sources) and all((tmp_path / p).exists() for p in images)
    for png in images:
        assert (tmp_path / png).with_suffix(".pdf").exists()


def test_plot_command(scored_dir_and_exp, tmp_path, capsys):
    out_dir, exp = scored_dir_and_exp
    assert main(["plot", "--exp", str(exp), "--scores", str(out_dir), "--out", str(tmp_path / "f")]) == 0
    names = {p.name for p in (tmp_path / "f").iterdir()}
    assert {"latents_tsne.png", "latents_pca.pdf", "roc_llr.png", "training_curves.png", "hist_log_ll.png"} <= names
