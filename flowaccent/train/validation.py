r"""The held-out NLL of a model over a stream's utterances, shared out over the processes of a run."""

from __future__ import annotations

import torch

from flowaccent.flows.packed import packed_inference, padded_rows
from flowaccent.model import FlowModel
from flowaccent.runtime import compute_precision
from flowaccent.train import distributed
from flowaccent.train.frames import FrameStream


@torch.no_grad()
def held_out_nll(
    model: FlowModel,
    stream: FrameStream,
    batch_frames: int,
    device: torch.device,
    precision: str,
    env: distributed.DistEnv | None = None,
) -> dict[str, float] | None:
    r"""NLL, LogP and LogDet per frame of ``stream``'s utterances (the held-out ones) under ``model``
    (in eval mode), and their frame count; None without any utterances. The utterances, whole, are
    joined into batches of about ``batch_frames`` frames (:meth:`FrameStream.joined`: one forward
    per batch, not per utterance), the sums taken in float64. Under several processes (``env``), each
    takes its share of the utterances and the sums are added over all: every process returns the same."""
    if not stream.refs:
        return None
    share = env is not None and env.distributed
    sums = torch.zeros(4, dtype=torch.float64)  # -log p(x), -LogP, -LogDet, frames
    with packed_inference(model), compute_precision(device, precision):  # no optimiser step inside
        for x, y in stream.joined(batch_frames, share):
            x, y = x.to(device), y.to(device)
            out = model(*padded_rows(x, y))  # batches of every size: oneDNN kept a kernel for each
            sums[:3] += torch.stack([out.nll, -out.log_p, -out.log_det])[:, : len(x)].double().sum(1).cpu()
            sums[3] += len(x)
    if share:
        sums = distributed.sum_over_ranks(sums, env)
    count = int(sums[3])
    nll, neg_log_p, neg_log_det = (sums[:3] / count).tolist()
    return {"nll": nll, "log_p": -neg_log_p, "log_det": -neg_log_det, "frames": count}
