r"""The training curves: train and validation NLL over steps, from ``log/train.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path

from flowaccent.errors import ConfigError
from flowaccent.plots import figure


def training_curves(log: Path, base: Path) -> Path | None:
    r"""Train and validation NLL ("LogLL" in the lab's tables) over steps, from ``log/train.jsonl``.

    A last line cut short (a run killed while writing it) is left out; it broke the figure. A damaged line
    before it is a ConfigError naming it."""
    log = Path(log)
    if not log.exists():
        return None
    lines = [(n, line) for n, line in enumerate(log.read_bytes().decode(errors="replace").splitlines(), 1)
             if line.strip()]
    records = []
    for number, line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == lines[-1][0]:
                break
            raise ConfigError(f"{log}: line {number} is not a JSON record ({error})") from None
    records = [r for r in records if isinstance(r, dict) and isinstance(r.get("step"), int)]
    train = [(r["step"], r["nll"]) for r in records if r.get("event") == "train" and _number(r.get("nll"))]
    valid = [(r["step"], r["valid"]["nll"]) for r in records
             if r.get("event") == "epoch" and isinstance(r.get("valid"), dict) and _number(r["valid"].get("nll"))]
    if not train and not valid:
        return None
    fig, ax = figure.subplots(figsize=(6, 4))
    if train:
        ax.plot(*zip(*train), ".-", label="train", color="#1f5fbf")
    if valid:
        ax.plot(*zip(*valid), "o-", label="valid", color="#d62728")
    ax.set(title="Training: NLL per frame (the lab's 'LogLL')", xlabel="step", ylabel="NLL (nats/frame)")
    ax.legend()
    return figure.save(fig, base)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
