r"""Where the model runs and in what precision: the ``device`` and ``precision`` options of
``train`` and ``score``.

Precisions:
  fp32  everything in float32 (the default; the results the tests pin down).
  tf32  CUDA only: float32 tensors, matmuls on TF32 tensor cores (10-bit mantissa products,
        float32 accumulation); the flags are restored on leaving the block.
  bf16  the conditioner MLPs' matmuls under bfloat16 autocast (CUDA or CPU). Everything that
        sums or exponentiates stays float32: the conditioner's output is cast back to the
        frames' dtype before the coupling's tanh/exp (flows.coupling), and the prior runs with
        autocast off (model.FlowModel), so log-determinants and log-densities are float32 sums.
Parameters, optimiser state and checkpoints stay float32 in every precision. bf16 is fast only
where the hardware multiplies bfloat16 matrices (:func:`bf16_in_hardware`): on other CPUs it is
emulated and slower than fp32, and the commands say so (:func:`precision_note`).
``benchmarks/bench_precision.py`` measures the speed of each and its effect on held-out NLL.

``train.compile`` runs the training forward through ``torch.compile`` (:func:`compiled`):
TorchInductor fuses the element-wise work around the matmuls and its backward into
generated kernels (C++ on a CPU, so it needs a C++ compiler). ``benchmarks/bench_model.py``
measures its rate against the eager forward.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
from torch import nn

from flowaccent import torchrun
from flowaccent.errors import ConfigError

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["fp32", "tf32", "bf16"]


def _option(what: str, field: str) -> str:
    r"""The config field ``what.field`` as an error names it: with ``score``'s command-line spelling (``--device``),
    which is not ``--score.device`` as ``train``'s is ``--train.device``."""
    return f"{what}.{field}" + (f" (--{field.replace('_', '-')})" if what == "score" else "")


def resolve_device(device: str, what: str) -> torch.device:
    r"""``auto`` (cuda when present), ``cpu`` or ``cuda`` -> a device; ``what`` names the option in errors. The GPU is
    torchrun's ``LOCAL_RANK``, this process's place on its machine (else 0). Under torchrun, more processes on this
    machine than GPUs is an error of every process alike (only those without a GPU said it, one line each, and
    ``score`` found it after rank 0 had scored its share of the first set); where the launcher did not set
    ``LOCAL_WORLD_SIZE``, only the processes without a GPU can tell."""
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"{_option(what, 'device')} must be auto, cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{_option(what, 'device')} is cuda but no GPU is visible")
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        count = torch.cuda.device_count()
        if (processes := torchrun.local_world_size()) is not None and processes > count:
            raise ConfigError(f"{_option(what, 'device')}: {processes} processes on this machine, but {count} GPU(s) "
                              "visible: start at most that many processes on it, one per GPU")
        if (index := torchrun.local_rank()) >= count:
            raise ConfigError(f"{_option(what, 'device')}: process {index} of this machine has no GPU of its own "
                              f"({count} visible): start at most that many processes on it")
        return torch.device("cuda", index)
    return torch.device("cpu")


def check_precision(device: torch.device, precision: str, what: str) -> None:
    r"""A clear error, before any work, for a precision ``device`` cannot run."""
    if precision not in ("fp32", "tf32", "bf16"):
        raise ConfigError(f"{_option(what, 'precision')} must be fp32, tf32 or bf16, got {precision!r}")
    if precision == "tf32" and device.type != "cuda":
        raise ConfigError(f"{_option(what, 'precision')} tf32 is a CUDA matmul mode; on {device.type} use fp32 or "
                          "bf16")


@contextlib.contextmanager
def compute_precision(device: torch.device, precision: str) -> Iterator[None]:
    r"""Runs the block's forward passes in ``precision`` on ``device`` (module docstring)."""
    check_precision(device, precision, "run")
    if precision == "fp32":
        yield
    elif precision == "tf32":
        with tf32_matmuls(True):
            yield
    elif precision == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield


@contextlib.contextmanager
def tf32_matmuls(enabled: bool) -> Iterator[None]:
    r"""CUDA matmuls and cuDNN convolutions on TF32 tensor cores (``enabled``) or in full float32 inside the block;
    the settings before are restored. Through torch's ``fp32_precision`` where it has it (2.9 on): there, reading
    the older ``allow_tf32`` raised once a program had set the newer one, and writing it back turned the matmuls'
    ``none`` (follow ``torch.backends.fp32_precision``) into an explicit ``ieee``."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(matmul, "fp32_precision") and hasattr(getattr(cudnn, "conv", None), "fp32_precision"):
        flags, value = [(matmul, "fp32_precision"), (cudnn.conv, "fp32_precision")], "tf32" if enabled else "ieee"
    else:  # torch before 2.9
        flags, value = [(matmul, "allow_tf32"), (cudnn, "allow_tf32")], enabled
    before = [getattr(owner, name) for owner, name in flags]
    try:
        for owner, name in flags:
            setattr(owner, name, value)
        yield
    finally:
        for (owner, name), old in zip(flags, before):
            setattr(owner, name, old)


#: This CPU's vector and matrix units that torch's kernels can use -> torch.cpu's probe for each.
CPU_UNITS = {"AVX512": "_is_avx512_supported", "AVX512-BF16": "_is_avx512_bf16_supported",
             "AMX": "_is_amx_tile_supported"}


def cpu_units() -> list[str]:
    r"""The names of :data:`CPU_UNITS` this CPU has (torch's probes; none where torch lacks a probe)."""
    return [name for name, probe in CPU_UNITS.items() if getattr(torch.cpu, probe, lambda: False)()]


def bf16_in_hardware(device: torch.device) -> bool:
    r"""Whether ``device`` multiplies bfloat16 matrices in hardware: a CUDA GPU of compute capability
    8.0 or later, or a CPU with AMX tiles or AVX512-BF16 (oneDNN's bf16 kernels use them). Elsewhere
    bf16 products are emulated in float32 arithmetic."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    return bool({"AMX", "AVX512-BF16"} & set(cpu_units()))


def precision_note(device: torch.device, precision: str, what: str) -> str | None:
    r"""One line for stderr when ``precision`` will be slow on ``device`` (bf16 without hardware for it)."""
    if precision == "bf16" and not bf16_in_hardware(device):
        kind = "GPU" if device.type == "cuda" else "CPU (no AMX or AVX512-BF16)"
        return f"{what}: precision bf16 is emulated on this {kind} and slower than fp32"
    return None


def full_precision(device_type: str):
    r"""A block where autocast is off (the prior's sums and matmuls stay float32 under ``bf16``)."""
    return torch.autocast(device_type=device_type, enabled=False)


def compiled(module: nn.Module, device: torch.device, what: str, mode: str | None = None) -> nn.Module:
    r"""``torch.compile(module, mode=mode)`` with static shapes, for training forwards (``train.compile``).

    The first call with a new input shape compiles (seconds to a minute; the epoch's last,
    shorter batch compiles once more), later calls run the generated kernels. The module's
    ActNorm layers must be initialised and its standardisation fitted already: the compiled
    forward skips those data-dependent checks, which would split its graph (flows.norm.ActNorm,
    features.pipeline). A clear error when a CPU run has no C++ compiler (``g++``, or ``$CXX``)
    for Inductor (:func:`check_compile`, which the trainer also calls before any work). The oneDNN
    training products' on/off decision is marked a constant for the graph first
    (:func:`flowaccent.flows.onednn_train.prepare_compile`).
    """
    from flowaccent.features.pipeline import FeaturePipeline
    from flowaccent.flows.norm import ActNorm
    from flowaccent.flows.onednn_train import prepare_compile

    for m in module.modules():
        if (isinstance(m, ActNorm) and not m.is_initialized()) or (
            isinstance(m, FeaturePipeline) and m.config.standardize and not m.is_fitted()
        ):
            raise ConfigError(f"{what}.compile: initialise the model (FlowModel.initialize) before compiling it")
    check_compile(device, what)
    prepare_compile()
    return torch.compile(module, dynamic=False, mode=mode)


def check_compile(device: torch.device, what: str) -> None:
    r"""A clear error, before any work, when Inductor cannot compile for ``device`` (a CPU without
    a C++ compiler)."""
    if device.type == "cpu":
        from torch._inductor import cpp_builder

        try:
            cpp_builder.get_cpp_compiler()
        except Exception as exc:  # Inductor's own error names what it searched
            raise ConfigError(f"{what}.compile on a CPU needs a C++ compiler (g++, or set CXX): {exc}") from None
