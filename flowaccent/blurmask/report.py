r"""A ``flowaccent blurmask`` run's part of ``flowaccent report``: its tables, deletion curves and one mask figure
per set, checked to be masks of the scored model."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from flowaccent.blurmask.tables import mask_symbol, summary_tables, utt_file_name
from flowaccent.data.atomic import atomic_copy
from flowaccent.errors import ConfigError
from flowaccent.report import BLURMASK_FIGURES

#: What the blur-mask tables' names mean (the report's naming paragraph, with ``{m}`` the mask's symbol and
#: ``{what}`` what it is: a noise mask's was called a width).
NAMING = (
    "Blur masks (flowaccent blurmask): each time-frequency cell's learned {what} {m}, small where the model's "
    "output depends on the cell. Removing the cells lowest {m} first, highest {m} first or at random, and "
    "replacing them by a baseline (blur: maximal blur; mean: the bin's mean; floor: a log floor), changes the "
    "output; the AUCs are of those changes, normalised per utterance to [0, 1]. SRG = AUC(lowest first) - "
    "AUC(highest first), in [-1, 1], positive where the mask ranks the cells the right way round; '(k of n)': "
    "utterances with SRG &gt; 0. The lab's table gives the median change, in output standard deviations."
)



def naming_paragraph(variant: str) -> str:
    r""":data:`NAMING` of a ``variant`` (``blur``, ``noise``) mask."""
    what = "blur width" if variant == "blur" else "noise scale"
    return NAMING.replace("{m}", mask_symbol(variant)).replace("{what}", what)


def load_blurmask(folder: Path) -> dict[str, Any]:
    r"""The ``summary.json`` of a ``flowaccent blurmask --out`` folder."""
    path = folder / "summary.json"
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder (--blurmask: the --out of 'flowaccent blurmask')")
    if not path.is_file() and (folder / "phones.json").is_file():  # it said to run blurmask into the phones
        raise ConfigError(f"{folder}: the output of 'flowaccent phones' (--phones DIR), not of 'flowaccent blurmask' "
                          f"(--blurmask: the --out of 'flowaccent blurmask')")
    if not path.is_file():
        raise ConfigError(f"{path}: missing; run 'flowaccent blurmask --out {folder}' first (or it did not finish)")
    try:
        summary = json.loads(path.read_text())
        if isinstance(summary, dict) and "reference" in summary and "all" not in summary:
            raise ConfigError(f"{path}: the summary of 'flowaccent score', not of 'flowaccent blurmask' (--blurmask: "
                              f"the --out of 'flowaccent blurmask')")
        summary["sets"], summary["all"], summary["config"]["fit"]["variant"]  # noqa: B018 (the keys it needs)
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ConfigError(f"{path}: not a summary of 'flowaccent blurmask' ({type(error).__name__}: {error}); "
                          f"run it again") from None
    try:
        summary_tables(summary)  # every key of the report's tables: an older version's summary lacks some
    except (KeyError, TypeError, AttributeError) as error:
        raise ConfigError(f"{path}: a summary of 'flowaccent blurmask' in another format than this version writes "
                          f"(an older flowaccent's?), lacking what the report reads ({type(error).__name__}: "
                          f"{error}); run 'flowaccent blurmask --out {folder}' again with this version") from None
    return summary


def check_same_model(folder: Path, blurmask: dict[str, Any], scores: dict[str, Any]) -> None:
    r"""Refuses masks of another model file than the scores' (both record the file's digest; a blur-mask run
    before the digest was recorded is taken as it is)."""
    scored = scores.get("model", {})
    scored_digest = scored.get("checkpoint_digest") or scored.get("final_digest")
    digest = blurmask.get("model", {}).get("digest")
    if digest and scored_digest and digest != scored_digest:
        raise ConfigError(
            f"{folder}: masks of {blurmask['model'].get('checkpoint', 'another model')} as it was then, not of the "
            f"model file these scores were made with; run 'flowaccent blurmask' again, or give the scores of "
            f"that model"
        )


def blurmask_part(
    folder: str | Path, summary: dict[str, Any], fig_dir: Path
) -> tuple[list[tuple[str, list[str], list[list[str]]]], dict[str, Path], str, str]:
    r"""``(tables, figures, naming, command)`` of the blur-mask run in ``folder`` (its ``summary``,
    :func:`load_blurmask`, checked by :func:`check_same_model`): :func:`~flowaccent.blurmask.summary.summary_tables`
    titled "Blur masks: ..." (a word's capital lowered there: "the lab's table", not "The lab's table"), the
    deletion curves and the first utterance's mask figure of each set, copied into ``fig_dir`` as
    ``blurmask_*.png`` (the report's Markdown links them there), the naming paragraph and the run's command."""
    folder = Path(folder)
    tables = [(f"Blur masks: {_after_colon(title)}", header, rows)
              for title, header, rows in summary_tables(summary, "all sets")]
    figures: dict[str, Path] = {}
    fig_dir.mkdir(parents=True, exist_ok=True)
    how = f"{summary['config']['fit']['variant']} mask, target {summary['config'].get('run', {}).get('target', '?')}"
    curves = folder / "deletion_curves.png"
    if curves.is_file():
        copied = atomic_copy(curves, fig_dir / f"{BLURMASK_FIGURES}deletion_curves.png")
        figures[f"Blur masks: deletion curves ({how})"] = copied
    for name, utt in _first_utterances(folder / "utt_table.tsv").items():
        figure = folder / name / "figures" / f"{utt_file_name(utt)}.png"
        if name in summary["sets"] and figure.is_file():
            figures[f"Blur mask of utterance '{utt}' of {name}"] = atomic_copy(
                figure, fig_dir / f"{BLURMASK_FIGURES}{name}_{utt_file_name(utt)}.png"
            )
    naming = naming_paragraph(summary["config"]["fit"]["variant"])
    return tables, figures, naming, summary.get("command", "(command not recorded)")


def _after_colon(title: str) -> str:
    r"""``title`` to follow a colon: its first word's capital lowered, an acronym's kept ("AUCs and SRG ...")."""
    return title[:1].lower() + title[1:] if title[1:2].islower() else title


def _first_utterances(table: Path) -> dict[str, str]:
    r"""Each set's first utterance in a run's ``utt_table.tsv`` ({} where there is none)."""
    if not table.is_file():
        return {}
    first: dict[str, str] = {}
    with table.open(newline="") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):  # an id may start with a quote
            first.setdefault(row.get("set", ""), row.get("utt", ""))
    return {name: utt for name, utt in first.items() if name and utt}
