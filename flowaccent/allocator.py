r"""Keeps glibc's ``malloc`` from handing large tensors' pages back to the kernel after every step.

On Linux, glibc serves an allocation above ``M_MMAP_THRESHOLD`` with a fresh ``mmap`` and unmaps
it on free; the threshold adapts upwards, but heap trimming still returns freed memory, so a flow
step that allocates and frees ``(10000, 512)`` float32 activations (20 MB each) touches new pages
every time: 80 000-100 000 minor page faults per inference step of a 10 x 512 flow in a process
that only scores, a quarter of its time on 2 cores (``benchmarks/bench_malloc.py`` measures it).

:func:`tune_allocator` fixes the thresholds with ``mallopt`` (the same effect as the
``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` environment variables): allocations up to
32 MiB come from the heap and freed memory is kept for reuse, so the process's resident size
stays at its peak instead of shrinking between steps. The ``flowaccent`` command calls it at
start-up; ``FLOWACCENT_MALLOC=system`` leaves glibc's defaults. Elsewhere (macOS, musl, an
allocator such as jemalloc preloaded) nothing is changed.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: glibc's mallopt parameter numbers (malloc.h).
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
#: glibc refuses a larger mmap threshold on 64-bit systems (HEAP_MAX_SIZE / 2).
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 1024 * 1024 * 1024
TOP_PAD = 64 * 1024 * 1024


def tune_allocator() -> bool:
    r"""Sets glibc's mmap/trim thresholds (see the module doc); returns whether it did."""
    if os.environ.get("FLOWACCENT_MALLOC", "tuned") == "system" or not sys.platform.startswith("linux"):
        return False
    try:  # the process's own symbols, which hold libc's: find_library("c") runs `ldconfig -p` at every start
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD))
    return all(mallopt(param, value) == 1 for param, value in settings)
