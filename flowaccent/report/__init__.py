r"""``report.html`` (self-contained: images embedded) and ``report.md`` from an experiment and its scores.

:func:`write_report` writes them; the parts have their own files: what a report reads, checked
(:mod:`~flowaccent.report.inputs`), its figures (:mod:`~flowaccent.report.figures`, also ``flowaccent plot``), its
tables and the words on their names (:mod:`~flowaccent.report.tables`), and the two pages
(:mod:`~flowaccent.report.pages`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from flowaccent.data.atomic import atomic_write_text
from flowaccent.data.lock import reading_lock
from flowaccent.data.specs import check_not_inputs, check_parents
from flowaccent.errors import ConfigError
from flowaccent.report.figures import (
    BLURMASK_FIGURES,
    DRAWN,
    FIGURE_FILES,
    PHONES_FIGURES,
    TSNE_FRAMES,
    check_tsne_frames,
    draw_figures_locked,
    figures_lock,
    make_figures,
    remove_drawn,
)
from flowaccent.report.inputs import checked_inputs, checkpoint_config, load_summary, trained_on
from flowaccent.report.pages import html_page, markdown_page
from flowaccent.report.tables import naming, sections

__all__ = [
    "BLURMASK_FIGURES", "DRAWN", "FIGURE_FILES", "PHONES_FIGURES", "TSNE_FRAMES", "load_summary", "make_figures",
    "naming", "remove_drawn", "write_report",
]


def write_report(
    exp: str | Path, scores: str | Path, out: str | Path | None = None, command: str = "",
    blurmask: str | Path | None = None, tsne_frames: int = TSNE_FRAMES,
    phones: str | Path | Sequence[str | Path] | None = None,
) -> Path:
    r"""Writes ``report.html`` and ``report.md`` (default: into ``exp``; ``out`` a folder, or any name not ending in
    ``.html``: into it); returns the HTML path. ``blurmask``: the ``--out`` folder of a ``flowaccent blurmask`` run
    on the scored model, whose tables and figures the report shows too
    (:func:`flowaccent.blurmask.report.blurmask_part`). ``phones``: the ``--out`` folder of a ``flowaccent phones``
    run on these scores, or several, whose lowest phones per set and figure it shows too
    (:func:`flowaccent.report.phones.phones_part`). ``tsne_frames``: as :func:`make_figures`'s. An
    earlier report at ``out`` is removed before the figures are drawn, so an interrupted run leaves no report
    beside figures it did not draw."""
    exp, scores = Path(exp), Path(scores)
    check_tsne_frames(tsne_frames)
    given = str(out) if out else ""
    out = Path(out) if out else exp / "report.html"
    check_parents(out, "report", file=out.suffix.lower() in (".html", ".htm"))  # 'afile/figures: Not a directory'
    if out.is_dir() or given.endswith(("/", os.sep)) or out.suffix.lower() not in (".html", ".htm"):
        if out.is_file():  # taken as a folder: '.../summary.json/figures: Not a directory'
            raise ConfigError(f"report: --out {out} is a file; give a path ending in .html, or a folder")
        out = out / "report.html"  # --out r1 wrote an HTML file r1, r1.md beside it, and figures/ into r1's folder
    if out.is_symlink():  # a link to the latest report (a web folder's): it was replaced by a file of its own
        out = Path(os.path.realpath(out))  # the report, its .md and figures/ beside the file linked to
    check_not_inputs(out.parent, "the report and its figures")  # figures/ went in among a set's scores
    _check_not_theirs(out, bool(given))
    folders = [] if phones is None else [Path(phones)] if isinstance(phones, (str, Path)) else list(map(Path, phones))
    if len(set(folders)) < len(folders):
        raise ConfigError(f"report: --phones {' '.join(map(str, folders))}: a folder given twice")
    with contextlib.ExitStack() as held:  # the inputs, while they are read: no score, blurmask or phones into them
        for folder, option in [(scores, "--scores"), *([(Path(blurmask), "--blurmask")] if blurmask else []),
                               *[(folder, "--phones") for folder in folders]]:
            held.enter_context(reading_lock(folder, f"{option} {folder}"))
        return _write_report(exp, scores, out, command, blurmask, tsne_frames, folders)


#: What an earlier report's two pages hold at their start (``<title>flowaccent report: EXP`` and ``# flowaccent
#: report: EXP``; before a2f68bc without the colon and name): others are not replaced.
_OWN_HTML, _OWN_MD = "<title>flowaccent report", "# flowaccent report"


def _check_not_theirs(out: Path, given: bool) -> None:
    r"""Refuses an ``out`` whose HTML page or ``.md`` twin is there already and is not an earlier report's: a user's
    ``thesis.html`` given as ``--out``, and the ``thesis.md`` beside it, were replaced without a word. ``given``:
    ``out`` came from ``--out`` (else it is the default, ``EXP_DIR/report.html``)."""
    for page in (out, out.with_suffix(".md")):
        if not page.is_file():
            continue
        with open(page, encoding="utf-8", errors="replace") as f:
            head = f.read(1000)
        if not _earlier_report(page, head):
            where, instead = (f"--out {out}", "give another --out") if given else (str(out), "give --out")
            raise ConfigError(f"report: {where}: {page} is a file there already, not an earlier report, which the "
                              f"report would replace; {instead}, or remove it")


def _earlier_report(page: Path, head: str) -> bool:
    r"""Whether ``head`` (a page's first characters) is that of an earlier report's page ``page`` (``.md``: its
    heading line; else the HTML's title)."""
    if page.suffix == ".md":
        first = head.split("\n", 1)[0]
        return first in (_OWN_MD, f"{_OWN_MD}:") or first.startswith(f"{_OWN_MD}: ")
    return f"{_OWN_HTML}</title>" in head or f"{_OWN_HTML}: " in head


def _write_report(exp: Path, scores: Path, out: Path, command: str, blurmask: str | Path | None, tsne_frames: int,
                  folders: list[Path]) -> Path:
    r""":func:`write_report`'s work, its inputs locked: ``out`` the HTML path, ``folders`` the phones runs'."""
    summary = checked_inputs(exp, scores)  # wrong inputs leave an earlier report as it was
    masks = None
    if blurmask is not None:
        from flowaccent.blurmask.report import check_same_model, load_blurmask

        masks = load_blurmask(Path(blurmask))
        check_same_model(Path(blurmask), masks, summary)  # before anything is removed
    from flowaccent.report.phones import load_phones, phones_part

    phone_runs = [load_phones(folder, scores) for folder in folders]  # before anything is removed
    with figures_lock(out.parent / "figures"):  # another report into this folder: refused, not interleaved
        for old in (out, out.with_suffix(".md")):
            old.unlink(missing_ok=True)
        figures = draw_figures_locked(exp, scores, out.parent / "figures", summary, tsne_frames)
        for prefix in (BLURMASK_FIGURES, PHONES_FIGURES):  # an earlier report's blur masks and phones
            for old in (out.parent / "figures").glob(f"{prefix}*.png"):
                old.unlink()
        config = (exp / "config.yaml").read_text() if (exp / "config.yaml").exists() else checkpoint_config(exp)
        shown = sections(summary)
        notes, made = [naming(summary)], [f"scored: {summary.get('command', '(command not recorded)')}"]
        if masks is not None:
            from flowaccent.blurmask.report import blurmask_part

            tables, mask_figures, note, blurmask_command = blurmask_part(blurmask, masks, out.parent / "figures")
            shown, figures = shown + tables, figures | mask_figures
            notes.append(note)
            made.append(f"blur masks: {blurmask_command}")
        named = [f.name for f in folders]  # each run by its folder's name, by the path given where two share one
        named = named if len(set(named)) == len(named) else [str(f) for f in folders]
        for index, (folder, run) in enumerate(zip(folders, phone_runs)):
            tables, phone_figures, note, phones_command = phones_part(folder, *run, out.parent / "figures",
                                                                      index if len(folders) > 1 else None,
                                                                      named[index])
            shown, figures = shown + tables, figures | phone_figures
            notes += [note] if note else []
            made.append(f"phones: {phones_command}")
        if command:
            made.append(f"report: {command}")
        trained = trained_on(exp)
        atomic_write_text(out, html_page(summary, shown, figures, config, notes, made, trained, out.parent))
        markdown = markdown_page(summary, shown, figures, config, notes, made, out.parent, trained)
        atomic_write_text(out.with_suffix(".md"), markdown)
        return out
