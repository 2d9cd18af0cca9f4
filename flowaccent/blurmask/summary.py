r"""What a blur-mask run writes over its utterances: ``summary.json``, ``summary.md`` (its tables), ``config.yaml``,
``utt_table.tsv`` and the deletion curves."""

from __future__ import annotations

from typing import Any

import numpy as np
import yaml

from flowaccent import plots
from flowaccent.blurmask.config import DeletionConfig
from flowaccent.blurmask.evaluate import ORDERS, summarise
from flowaccent.blurmask.utterance import UttResult, mask_symbol
from flowaccent.data.atomic import atomic_write_json, atomic_write_text


def _group_summary(group: list[UttResult], baselines: tuple[str, ...]) -> dict[str, Any]:
    return {
        "num_utts": len(group),
        "invariance_error": float(np.mean([r.invariance_error for r in group])) if group else None,
        "mean_m": float(np.mean([r.mean_m for r in group])) if group else None,
        "baselines": {b: summarise([r.curves[b] for r in group]) for b in baselines},
    }


def write_summary(out, exp, checkpoint, digest, results, names, fit, deletion, run, command) -> dict[str, Any]:
    report: dict[str, Any] = {
        "model": {"exp": str(exp), "checkpoint": str(checkpoint or exp / "final.pt"), "digest": digest},
        "config": {"fit": fit.to_dict(), "deletion": deletion.to_dict(), "run": run.to_dict()},
        "command": command,
        "sets": {n: _group_summary([r for r in results if r.set_name == n], deletion.baselines) for n in names},
        "all": _group_summary(results, deletion.baselines),
    }
    out.mkdir(parents=True, exist_ok=True)  # made by the first utterance's files, or here (a failure before: none)
    atomic_write_text(out / "utt_table.tsv", _utt_table(results, deletion))
    plots.blurmask_deletion_curves(
        report["all"]["baselines"],
        out / "deletion_curves",
        f"Deletion curves over {len(results)} utterance{'s' * (len(results) != 1)} (target {run.target}, "
        f"{fit.variant} mask, mode {fit.mode})",
        mask_symbol(fit.variant),
    )
    atomic_write_text(out / "summary.md", summary_markdown(report))
    atomic_write_text(out / "config.yaml", yaml.safe_dump(report["config"], sort_keys=False))
    atomic_write_json(out / "summary.json", report)
    return report


def _utt_table(results: list[UttResult], deletion: DeletionConfig) -> str:
    columns = ["set", "utt", "num_frames", "baseline", "invariance_error", "mean_m"]
    columns += [f"auc_{o}" for o in ORDERS] + ["srg"] + [f"change{p}_{o}" for p in (50, 80) for o in ORDERS]
    lines = ["\t".join(columns)]
    for r in results:
        for b in deletion.baselines:
            c = r.curves[b]
            values = [r.set_name, r.utt, str(r.num_frames), b, f"{r.invariance_error:.6g}", f"{r.mean_m:.4f}"]
            values += [fixed(c.auc[o], 4) for o in ORDERS] + [fixed(c.srg, 4)]
            values += [f"{c.at(p / 100, o):.6g}" for p in (50, 80) for o in ORDERS]
            lines.append("\t".join(values))
    return "\n".join(lines) + "\n"


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
