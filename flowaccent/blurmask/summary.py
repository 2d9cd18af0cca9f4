r"""What a blur-mask run writes over its utterances: ``summary.json``, ``summary.md`` (its tables), ``config.yaml``,
``utt_table.tsv`` and the deletion curves."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import yaml

from flowaccent import plots
from flowaccent.blurmask.config import DeletionConfig
from flowaccent.blurmask.evaluate import ORDERS, summarise
from flowaccent.blurmask.tables import fixed, mask_symbol, summary_markdown
from flowaccent.blurmask.utterance import UttResult
from flowaccent.data.atomic import atomic_write_json, atomic_write_text
from flowaccent.words import counted


def _group_summary(group: list[UttResult], baselines: tuple[str, ...]) -> dict[str, Any]:
    return {
        "num_utts": len(group),
        "invariance_error": float(np.mean([r.invariance_error for r in group])) if group else None,
        "mean_m": float(np.mean([r.mean_m for r in group])) if group else None,
        "baselines": {b: summarise([r.curves[b] for r in group]) for b in baselines},
    }


def write_summary(out, exp, checkpoint, digest, results, names, fit, deletion, run, command) -> dict[str, Any]:
    report: dict[str, Any] = {
        "model": {"exp": os.path.abspath(exp), "checkpoint": os.path.abspath(checkpoint or exp / "final.pt"),
                  "digest": digest},  # absolute: as score's (a report made elsewhere named a relative path)
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
        f"Deletion curves over {counted(len(results), 'utterance')} (target {run.target}, "
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
