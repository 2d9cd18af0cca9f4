r"""A model too large for this machine's memory, refused before it is built: ``--model.hidden 1000000000`` asked
torch for 240 GB and died in a traceback (``--check`` too), and ``--model.num-blocks 1000000`` built blocks for
minutes."""

from __future__ import annotations

from flowaccent.errors import ConfigError
from flowaccent.flows.realnvp import ModelConfig, flops_per_frame

#: Bytes of a float32 weight.
WEIGHT_BYTES = 4

#: What training holds of each weight on its device: the weight, its gradient, Adam's two moments.
TRAINING_COPIES = 4


def num_weights(config: ModelConfig, dim: int) -> int:
    r"""The conditioners' weight matrices' entries for ``dim``-d frames (a multiply-add each per frame; the biases,
    the norms' and the prior's few are left out)."""
    return flops_per_frame(config, dim) // 2


def available_memory() -> int | None:
    r"""Bytes of memory available here (Linux's ``MemAvailable``), None where it cannot be read."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_model_size(config: ModelConfig, dim: int, copies: int = TRAINING_COPIES,
                     available: int | None = None) -> None:
    r"""Refuses a model whose ``copies`` of its weights (:data:`TRAINING_COPIES` where it trains on this machine, 1
    where it is only built here) do not fit in the ``available`` bytes (default :func:`available_memory`; unknown:
    nothing refused)."""
    available = available_memory() if available is None else available
    weights = num_weights(config, dim)
    need = weights * WEIGHT_BYTES * copies
    if available is not None and need > available:
        held = f"training holds {copies} copies of them" if copies > 1 else "building it holds them"
        raise ConfigError(f"model: num_blocks {config.num_blocks} x hidden {config.hidden} on {dim}-d frames make "
                          f"{weights:,} weights, and {held} ({need / 2**30:,.1f} GiB), more than the "
                          f"{available / 2**30:,.1f} GiB of memory available here; give a smaller --model.hidden "
                          f"or --model.num-blocks")
