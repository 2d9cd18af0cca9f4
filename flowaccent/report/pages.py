r"""The report's two pages: ``report.html`` (self-contained: images embedded) and ``report.md`` (figures beside it),
from its tables, figures, notes and configuration."""

from __future__ import annotations

import base64
import html
import re
import urllib.parse
from pathlib import Path
from typing import Any

#: Columns after a table's first, ``set``, that name its row too (a set's rows by score, by SVR, by blur baseline):
#: headers of the row, read with each of its numbers, as the first cell is.
ROW_KEYS = frozenset({"score", "how", "baseline"})


def html_page(summary, sections, figures: dict[str, Path], config: str, notes: list[str], made: list[str],
          trained: str = "", root: Path | None = None) -> str:
    r"""The report page; ``notes``: paragraphs on the names (HTML), ``made``: the lines of "How this was made";
    ``root``: the folder of the page, where each figure embedded is linked to its PNG under it (full size)."""
    e = html.escape

    t = _text
    heading = f"flowaccent report: {_experiment_name(summary)}"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{t(heading)}</title><style>",
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;break-inside:avoid}.scroll{overflow-x:auto}"
        "td,th{border:1px solid #bbb;padding:3px 8px;"
        "text-align:right}td{white-space:nowrap}"  # '0.400 [0.00,' above '0.86]' beside a long set name; names wrap
        "th{background:#eef}th[scope=row]{background:none;font-weight:normal;overflow-wrap:anywhere;min-width:9em}"
        "th[scope=row],th.key{text-align:left}"  # the names, and the heading of a second column of them
        "td:first-child,th:first-child{text-align:left}"
        "figure{display:inline-block;width:47%;margin:1%;vertical-align:top}figure.wide{width:98%}"
        "img{width:100%;border:1px solid #ddd}figcaption{font-size:90%;color:#444}"
        "pre{background:#f6f6f6;padding:1em;white-space:pre-wrap;overflow-wrap:anywhere}"
        "h2{break-after:avoid}figure,tr{break-inside:avoid}nav{font-size:90%}nav h2{font-size:120%}"
        "h1,h2,nav{overflow-wrap:anywhere}"  # a long path in a heading ran past a phone's screen: the page panned
        "@media (max-width:800px){figure{width:98%}}"
        # on paper nothing scrolls: a wide table (long set names) is set smaller and its names wrap, not cut
        "@media print{.scroll{overflow:visible}table{font-size:8pt}td,th{padding:2px 4px}}",
        "</style></head><body>",
        f"<h1>{t(heading)}</h1>",
        "<p>" + re.sub(r"`([^`]*)`", r"<code>\1</code>", e(_model_line(summary, trained))) + "</p>",
    ]
    parts.append(_contents([title for title, _, _ in sections], list(figures)))
    parts += [f"<p class='naming'>{note}</p>" for note in notes]
    for number, (title, header, rows) in enumerate(sections, 1):
        keys = row_keys(header)  # the columns of names: their headers set left, as the names are
        key = " class='key'"
        parts.append(f"<section id='table-{number}'><h2>{t(title)}</h2><div class='scroll'>"
                     f"<table aria-label='{e(title)}'><thead><tr>"  # its title, read with it
                     + "".join(f"<th scope='col'{key if 0 < i < keys else ''}>{t(h)}</th>"
                               for i, h in enumerate(header)) + "</tr></thead><tbody>")
        # each row's name (a set, a phone; and its score, ...) is its header, read with each of its numbers
        parts += ["<tr>" + "".join(f"<th scope='row'>{t(c)}</th>" for c in row[:keys])
                  + "".join(f"<td>{t(c)}</td>" for c in row[keys:]) + "</tr>" for row in rows]
        parts.append("</tbody></table></div></section>")
    parts.append("<section id='figures'><h2>Figures</h2>")
    for number, (title, png) in enumerate(figures.items(), 1):
        raw = png.read_bytes()
        data = base64.b64encode(raw).decode()
        wide = " class='wide'" if is_wide(raw) else ""
        image = f"<img alt='{e(title)}' src='data:image/png;base64,{data}'>"
        if root is not None and png.is_relative_to(root):  # shown at half the page's width: a click opens it whole
            href = figure_link(png, root)
            image = f"<a href='{e(href)}' title='{e(href)} (full size)'>{image}</a>"
        parts.append(f"<figure id='figure-{number}'{wide}>{image}"
                     f"<figcaption>Figure {number}: {t(title)}</figcaption></figure>")
    parts.append("</section>")
    parts.append(f"<section id='configuration'><h2>Configuration</h2><pre>{t(config)}</pre></section>")
    parts.append(f"<section id='made'><h2>How this was made</h2><pre>{t(chr(10).join(made))}</pre></section>"
                 "</body></html>")
    return "\n".join(parts) + "\n"


def figure_link(png: Path, root: Path) -> str:
    r"""The link to figure ``png`` from a page in ``root`` (both pages'): its path under ``root``, encoded (a blur
    mask's figure is named by its utterance id, which may hold '#' or a space)."""
    return urllib.parse.quote(png.relative_to(root).as_posix())


def row_keys(header: list[str]) -> int:
    r"""How many of a table's first columns name its rows: the first, and after a first column ``set`` those in
    :data:`ROW_KEYS` (only there: the columns of the SVR table by set are sets, which may be named ``baseline``)."""
    keys = 1
    while header[:1] == ["set"] and keys < len(header) and header[keys] in ROW_KEYS:
        keys += 1
    return keys


def _contents(tables: list[str], figures: list[str]) -> str:
    r"""The page's contents: a link to each table, figure and the two closing parts (a report with blur masks and
    two phones runs, as the demo's DNF report, has 13 tables before its figures)."""
    t = _text
    items = [f"<li><a href='#table-{n}'>{t(title)}</a></li>" for n, title in enumerate(tables, 1)]
    shown = "".join(f"<li><a href='#figure-{n}'>Figure {n}: {t(title)}</a></li>" for n, title in enumerate(figures, 1))
    items.append(f"<li><a href='#figures'>Figures</a><ul>{shown}</ul></li>")
    items += ["<li><a href='#configuration'>Configuration</a></li>", "<li><a href='#made'>How this was made</a></li>"]
    return f"<nav><h2>Contents</h2><ul>{''.join(items)}</ul></nav>"


def _markdown_contents(before: list[str], tables: list[str], closing: list[str]) -> list[str]:
    r"""``## Contents``: a link to each table's heading and the closing headings, by the anchors GitHub and GitLab
    give headings (:func:`_anchor`; ``before``: the headings above, which take their anchors first)."""
    taken: dict[str, int] = {}
    for heading in before:
        _anchor(heading, taken)
    links = [f"- [{markdown_escaped(title, link=True)}](#{_anchor(title, taken)})" for title in [*tables, *closing]]
    return ["## Contents", "", *links, ""]


def _anchor(heading: str, taken: dict[str, int]) -> str:
    r"""A Markdown heading's anchor as GitHub makes it: lower case, punctuation but ``-`` and ``_`` dropped, spaces
    made ``-``; a repeat gets ``-1``, ``-2``, ... (``taken``: the anchors so far, updated)."""
    anchor = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
    count = taken.get(anchor, 0)
    taken[anchor] = count + 1
    return f"{anchor}-{count}" if count else anchor


def _text(text: str) -> str:
    r"""Element text, escaped: quotes need no escaping."""
    return html.escape(text, quote=False)


def markdown_table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    r"""The lines of a table under its heading (``## title``), and an empty line after it. A ``|`` in a cell (a
    CTM's phone may hold one) is escaped: it would end the cell and shift the row's numbers under other columns; so
    is a ``<`` that would open a tag (:func:`markdown_escaped`)."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(markdown_escaped(cell).replace("|", "\\|") for cell in cells) + " |"

    return [f"## {markdown_escaped(title)}", "", line(header), "|" + "---|" * len(header), *map(line, rows), ""]


def markdown_escaped(text: str, link: bool = False) -> str:
    r"""``text`` shown as written in Markdown: each character that would start markup escaped with a backslash. A
    ``<`` that would open an HTML tag (Kaldi's ``<sil>`` and ``<unk>`` phones were tags a renderer dropped, leaving
    their rows' numbers without a name); a ``*``, a backtick, a ``~`` and an ``_`` at a word's edge (a phone ``a*b*``
    was shown as an italic ``ab``); a ``]`` before a ``(`` (``[e](f)`` was a link; a bracket alone is text: an
    interval ``[0.62, 0.79]`` stays as written; ``link``: each bracket, as a link's text, which one would end); a
    ``&`` that would start an entity (``&lt;`` was shown as ``<``); a backslash."""
    brackets = r"[][]" if link else r"\](?=\()"
    markup = rf"[\\*`~]|{brackets}|<(?=[A-Za-z/!?])|&(?=#?\w+;)|(?<![^\W_])_|_(?![^\W_])"
    return re.sub(markup, lambda m: "\\" + m[0], text)


def markdown_page(
    summary, sections, figures: dict[str, Path], config: str, notes: list[str], made: list[str], root: Path,
    trained: str = "",
) -> str:
    title = f"flowaccent report: {_experiment_name(summary)}"
    lines = [f"# {markdown_escaped(title)}", "", _model_line(summary, trained), ""]
    closing = ["Figures", "Configuration", "How this was made"]
    lines += _markdown_contents([title, "Contents"], [t for t, _, _ in sections], closing)
    for note in notes:  # HTML: its bold as Markdown's, its escaped text as text
        lines += ["**".join(markdown_escaped(html.unescape(part)) for part in re.split("</?b>", note)), ""]
    for title, header, rows in sections:
        lines += markdown_table(title, header, rows)
    lines += ["## Figures", ""]
    for number, (title, png) in enumerate(figures.items(), 1):
        shown = markdown_escaped(title, link=True)
        lines += [f"![{shown}]({figure_link(png, root)})", "", f"*Figure {number}: {shown}*", ""]
    lines += [
        "",
        "## Configuration",
        "",
        "```yaml",
        config.rstrip(),
        "```",
        "",
        "## How this was made",
        "",
        "```",
        *made,
        "```",
        "",
    ]
    return "\n".join(lines)


def _experiment_name(summary: dict[str, Any]) -> str:
    r"""The scored model's experiment dir as ``score`` was given it (``exp/quick/dnf``)."""
    return str(summary.get("model", {}).get("exp", "")) or "(experiment not recorded)"


#: A figure wider than this (pixels) takes the page's width, not half of it.
WIDE_PIXELS = 1000


def is_wide(png: bytes) -> bool:
    r"""Whether a figure (a PNG's bytes) takes the page's width, not half of it: panels side by side (twice as wide as
    high), or wider than :data:`WIDE_PIXELS` (the speaker figure of 20 sets in half the page: labels 3 px high)."""
    head = png[16:24]  # the IHDR chunk's width and height
    width, height = int.from_bytes(head[:4], "big"), int.from_bytes(head[4:], "big")
    return width > 2 * height or width > WIDE_PIXELS


def _model_line(summary: dict[str, Any], trained: str = "") -> str:
    model = summary["model"]
    line = (f"Model: `{model['checkpoint']}`, input dim {model['dim']}, cond_dim {model['cond_dim']}, "
            f"classes {', '.join(model['classes'])}.")
    gmm = "; the GMM baseline too" if "baseline" in summary else ""
    return line + (f" Trained on {trained} (`data.txt`{gmm})." if trained else "")
