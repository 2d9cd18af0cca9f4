r"""What every benchmark script shares: a count option's type, and stops that clean up.

``timeout`` (as ``benchmarks/gpu_checks.sh`` bounds each section) and a scheduler stop a process with SIGTERM,
which ends Python without running its ``finally`` blocks: a benchmark stopped so left its corpus in
``/tmp/bench_*`` (44 MB at ``--quick`` sizes, gigabytes at full ones). :func:`stop_on_term` makes it a Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Callable


def at_least(least: int) -> Callable[[str], int]:
    r"""An option's type: a whole number of at least ``least``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        return value

    return parse


#: A count of at least 1 (``--repeats 0`` failed with 'no median for empty data' after the run, ``--frames 0``
#: with a torch traceback).
count = at_least(1)


def stop_on_term() -> None:
    r"""SIGTERM and SIGHUP raise ``KeyboardInterrupt``, as Ctrl-C does, so the temporary folders are removed."""

    def interrupt(number, frame):
        raise KeyboardInterrupt(signal.Signals(number).name)

    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, interrupt)
