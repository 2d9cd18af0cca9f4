r"""tune_allocator: large tensors reuse their pages instead of faulting them in on every step."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = r"""
import resource, sys, torch
from flowaccent.allocator import tune_allocator
print(tune_allocator())
def step():  # a flow step's pattern: several 20 MB activations alive, then all freed
    xs = [torch.ones(10000, 512) for _ in range(4)]
    return sum(float(x[0, 0]) for x in xs)
for _ in range(5):  # the heap's layout settles after a few steps
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


def probe(malloc: str) -> tuple[bool, float]:
    env = {"FLOWACCENT_MALLOC": malloc, "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    tuned, faults = out.stdout.split()
    return tuned == "True", float(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_tuned_allocator_reuses_pages():
    tuned, faults = probe("tuned")
    assert tuned
    pages_per_step = 4 * 10000 * 512 * 4 / 4096  # 20 000
    assert faults < 0.05 * pages_per_step


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_tuning_starts_no_process(monkeypatch):
    r"""The command's start-up runs no child process: ``ctypes.util.find_library`` ran ``ldconfig -p`` every time
    (milliseconds, and a stray child for whatever watches the command's processes)."""
    from flowaccent.allocator import tune_allocator

    def no_process(*args, **kwargs):
        raise AssertionError(f"started a process: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    monkeypatch.setenv("FLOWACCENT_MALLOC", "tuned")
    assert tune_allocator()


def test_system_leaves_glibc_alone():
    r"""Untuned, whether the probe faults the pages in again depends on glibc's dynamic mmap threshold, which moves
    with the process's history (~20 000 faults a step in one run, 0 in a CI run): only the flag is checked."""
    tuned, _ = probe("system")
    assert not tuned
