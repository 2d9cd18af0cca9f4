r"""How a blur-mask run's results are named and tabled: the mask's symbol, an utterance's file name, and the
summary's tables (``summary.md``, ``flowaccent report --blurmask``, the command's last lines). No torch here:
``flowaccent report --blurmask`` reads a finished run without loading it."""

from __future__ import annotations

from typing import Any


def utt_file_name(utt: str) -> str:
    r"""The name of an utterance's files (its .npz and figures): the id, a / in it made _."""
    return utt.replace("/", "_")


def mask_symbol(variant: str) -> str:
    r"""What a mask of ``variant`` is called in tables and figures: ``m`` (blur widths) or ``sigma`` (noise)."""
    return "m" if variant == "blur" else "sigma"


def fixed(value: float, digits: int) -> str:
    r"""``value`` with ``digits`` decimals, never a negative zero: ``fixed(-0.0001, 3) == "0.000"``."""
    return f"{round(value, digits) + 0.0:.{digits}f}"


def utts_defined(summary: dict[str, Any]) -> str:
    r"""``"4"``, or ``"3 of 4"`` where some utterances' curves are undefined (their output never changed)."""
    defined, total = summary["num_defined"], summary["num_utts"]
    return f"{defined}" if defined == total else f"{defined} of {total}"


#: Titles of :func:`summary_tables`' two tables.
AUC_TABLE = "AUCs and SRG per set and baseline"
LAB_TABLE = "The lab's table: median output change over all utterances, in output standard deviations"


def summary_tables(report: dict[str, Any], everything: str = "**all**") -> list[tuple[str, list[str], list[list[str]]]]:
    r"""``(title, header, rows)`` of the summary's tables: AUCs and SRG per set and baseline (``everything``: the
    name of the rows over all sets), and the lab's 50/80 table; ``report``: the run's ``summary.json``. For
    ``summary.md`` and ``flowaccent report --blurmask``."""
    m = mask_symbol(report["config"]["fit"]["variant"])
    header = ["set", "baseline", "utts", f"AUC lowest {m} first", f"AUC highest {m} first", "AUC random",
              "SRG (utterances > 0)"]
    rows = []
    for name, values in [*report["sets"].items(), (everything, report["all"])]:
        for b, s in values["baselines"].items():
            if "auc" in s:
                auc, srg = s["auc"], s["srg"]
                rows.append([name, b, utts_defined(s), *(fixed(auc[o]["mean"], 3) for o in ("low", "high", "random")),
                             f"{fixed(srg['mean'], 3)} ± {fixed(srg['std'], 3)} ({srg['positive']} of "
                             f"{s['num_defined']})"])
            elif s["num_utts"]:
                rows.append([name, b, utts_defined(s), "-", "-", "-", "-"])
    lab = ["baseline", "removed", f"lowest {m} (most important)", f"highest {m} (least important)", "random",
           "low > high"]
    lab_rows = [
        [b, f"{fraction}%", f"{row['low']:.3g}", f"{row['high']:.3g}", f"{row['random']:.3g}",
         f"{row['low_above_high']}/{s['num_utts']}"]
        for b, s in report["all"]["baselines"].items()
        for fraction, row in s.get("table", {}).items()
    ]
    return [(AUC_TABLE, header, rows), (LAB_TABLE, lab, lab_rows)]


def summary_markdown(report: dict[str, Any]) -> str:
    r"""The summary's tables in Markdown (:func:`summary_tables`)."""
    lines = ["# Blur-mask summary", "", f"`{report['command']}`", ""]
    if any(s["num_defined"] < s["num_utts"] for s in report["all"]["baselines"].values()):
        lines += ["Utterances whose output no removal changed have no curve; '3 of 4' counts the others.", ""]
    for title, header, rows in summary_tables(report):
        if title != AUC_TABLE:
            lines += ["", f"{title}.", ""]
        lines += ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
