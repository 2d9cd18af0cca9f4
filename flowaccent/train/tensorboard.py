r"""TensorBoard's view of a run: its event files, written afresh from ``log/train.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path


def open_writer(exp: Path):
    r"""A TensorBoard writer into ``exp/tensorboard``, its event files written afresh from ``log/train.jsonl``
    (as :func:`~flowaccent.train.experiment.trim_log` left it): a resumed run's scalars past its checkpoint stood
    there twice (the writer appends a file per run and trims nothing), and what a killed run's writer had not
    flushed was lost. None where tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional: the jsonl log has the same scalars
        return None
    folder, log = exp / "tensorboard", exp / "log" / "train.jsonl"
    for old in folder.glob("events.out.tfevents.*"):
        old.unlink()
    writer = SummaryWriter(str(folder))
    for line in log.read_text(encoding="utf-8").splitlines() if log.exists() else []:
        add_scalars(writer, json.loads(line))
    writer.flush()
    return writer


def add_scalars(writer, record: dict) -> None:
    r"""A ``train.jsonl`` record's scalars in TensorBoard: a train window's as ``train/LogLL`` (NLL),
    ``train/LogP``, ``train/LogDet``; an epoch's validation as ``valid/...``; at the record's step and time."""
    where = record.get("event")
    values = {"train": record, "epoch": record.get("valid")}.get(where)
    if not isinstance(values, dict):
        return
    where = "train" if where == "train" else "valid"
    for name, key in (("LogLL", "nll"), ("LogP", "log_p"), ("LogDet", "log_det")):
        if key in values:  # an older run's records may lack one
            writer.add_scalar(f"{where}/{name}", values[key], record["step"], walltime=record.get("time"))
