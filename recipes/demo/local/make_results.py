#!/usr/bin/env python3
"""Print the demo's RESULTS tables (markdown) from exp/{dnf,nf}/scores/summary.json and exp/dnf/blurmask/summary.json.

Usage: make_results.py EXP_DIR > EXP_DIR/RESULTS.md
"""

import json
import sys
from pathlib import Path

from flowaccent.report.tables import with_bounds, with_interval

SETS = ("dev_native", "test_native", "test_zh", "test_ja")


def fmt(value):
    return "–" if value is None else f"{round(value, 3) + 0.0:.3f}" if isinstance(value, float) else str(value)


def paired_tables(exp: Path) -> list:
    """The plain flow's AUCs minus the DNF flow's, with DeLong's paired test over speakers (compare's tables)."""
    if not all((exp / model / "scores" / "summary.json").exists() for model in ("dnf", "nf")):
        return []
    from flowaccent.report.compare import compare, load_scored, value_tables
    from flowaccent.report.pages import markdown_table

    tables = value_tables(compare(load_scored([f"{model}={exp / model / 'scores'}" for model in ("dnf", "nf")])))
    return [line for title, header, rows in tables if "minus dnf's" in title
            for line in markdown_table(title, header, rows)]


def phones_table(exp: Path, folder: str = "phones", count: int = 5) -> list:
    """Each accented test set's phones least like test_native's, by relative LogLL, per model (flowaccent phones'
    phone_scores.tsv in exp/MODEL/folder: by the phones spoken, phones.ctm's, or by the native reading's,
    canonical.ctm's in phones_canonical; [] where stage 5 made none)."""
    import csv

    out = []
    which = "phones spoken" if folder == "phones" else "native reading's phones (canonical.ctm)"
    for model in ("dnf", "nf"):
        path = exp / model / folder / "phone_scores.tsv"
        if not path.exists():
            continue
        rows = [r for r in csv.DictReader(path.open(encoding="utf-8"), delimiter="\t")
                if r["set"] in ("test_zh", "test_ja") and r["relative_minus_ref"] != "nan"]
        if not out:
            out += [f"## Phones least like test_native's, of the {which} (relative LogLL minus test_native's, nats "
                    f"per frame; in brackets its 95% interval over speakers; {exp}/MODEL/{folder}/phones.md has every "
                    f"phone)",
                    "", "| model | set | " + " | ".join(str(n) for n in range(1, count + 1)) + " |",
                    "|" + "---|" * (count + 2)]
        for name in ("test_zh", "test_ja"):
            lowest = sorted((r for r in rows if r["set"] == name), key=lambda r: float(r["relative_minus_ref"]))
            cells = [f"{r['phone']} " + with_bounds(float(r["relative_minus_ref"]),
                                                    [float(r["relative_low"]), float(r["relative_high"])])
                     for r in lowest[:count]]
            out.append(f"| {model} | {name} | " + " | ".join(cells + [""] * (count - len(cells))) + " |")
    return out + [""] if out else []


def blurmask_table(path: Path) -> list:
    """The blur-mask run's AUCs and SRG over all its utterances, per baseline ([] where there is no run)."""
    if not path.exists():
        return []
    from flowaccent.blurmask.tables import AUC_TABLE, summary_tables

    s = json.loads(path.read_text())
    utts = ", ".join(f"{v['num_utts']} {name}" for name, v in s["sets"].items())
    _, header, rows = next(t for t in summary_tables(s, everything="all") if t[0] == AUC_TABLE)
    out = [f"## dnf: blur masks of the LogLL ({utts} utterances; docs/blurmask.md)", "",
           "| " + " | ".join(header[1:]) + " |", "|" + "---|" * (len(header) - 1)]
    return out + ["| " + " | ".join(row[1:]) + " |" for row in rows if row[0] == "all" and row[3] != "-"] + [""]


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1].startswith("-") or not Path(sys.argv[1]).is_dir():
        print(__doc__.strip(), file=sys.stderr)
        return 0 if sys.argv[1:] in (["-h"], ["--help"]) else 2
    exp = Path(sys.argv[1])
    out = [f"# Demo results ({exp})", ""]
    for model in ("dnf", "nf"):
        path = exp / model / "scores" / "summary.json"
        if not path.exists():
            continue
        s = json.loads(path.read_text())
        out += [f"## {model}: {', '.join(s['model']['classes'])}; input {s['model']['dim']}, "
                f"cond_dim {s['model']['cond_dim']}", "",
                "| set | utts | LogLL | LogP | LogDet | NLL (lab 'LogLL') | GMM LogLL | skew | kurtosis |",
                "|---|---|---|---|---|---|---|---|---|"]
        for name in SETS:
            v = s["sets"].get(name)
            if v:
                out.append(f"| {name} | {v['num_utts']} | {fmt(v['log_ll'])} | {fmt(v['log_p'])} | "
                           f"{fmt(v['log_det'])} | {fmt(v['nll'])} | {fmt(v.get('gmm_log_ll'))} | "
                           f"{fmt(v['skew'])} | {fmt(v['kurtosis'])} |")
        out += ["", f"Utterance AUC against {s['reference']} (0.5 = no separation; in brackets its 95% "
                "interval, over speakers):", "", "| set | flow LogLL | flow LLR | GMM LogLL |", "|---|---|---|---|"]
        for name, d in s["detection"].items():
            out.append(f"| {name} | " + " | ".join(with_interval(d, k) for k in ("log_ll", "llr", "gmm_log_ll")) + " |")
        if s.get("rating"):
            out += ["", "Correlation with the accent rating (utt2score, 5 = native; in brackets Pearson's 95% "
                    "interval, by a bootstrap of the speakers):", "",
                    "| set | score | Pearson | Spearman |", "|---|---|---|---|"]
            for name, r in s["rating"].items():
                for key, c in r.items():
                    out.append(f"| {name} | {key} | {with_bounds(c['pearson'], c.get('pearson_ci95'))} | "
                               f"{fmt(c['spearman'])} |")
        if s.get("regression"):
            out += ["", "Rating predicted from utterance mean latents (SVR; cv: 5 folds of the set's "
                    "speakers, cv_shuffled: the same with the ratings shuffled by speaker, its chance level; "
                    "a->b: fitted on a, applied to b; [95% interval] of the predictions' r over the speakers):", "",
                    "| set | how | Pearson | Spearman |", "|---|---|---|---|"]
            for name, r in s["regression"].items():
                for key, c in r.items():
                    out.append(f"| {name} | {key} | {with_bounds(c['pearson'], c.get('pearson_ci95'))} | "
                               f"{fmt(c['spearman'])} |")
        out.append("")
    out += paired_tables(exp)
    out += phones_table(exp)
    out += phones_table(exp, "phones_canonical")
    out += blurmask_table(exp / "dnf" / "blurmask" / "summary.json")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
