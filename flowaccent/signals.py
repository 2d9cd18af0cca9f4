r"""The signals that stop a command: what a user (Ctrl-C), a scheduler (``kill``, Slurm) and a closed terminal send.
:mod:`flowaccent.cli.main` turns the others into Ctrl-C's ``KeyboardInterrupt``, :mod:`flowaccent.workers` stops its
workers on them and holds them back while it forks, and :mod:`flowaccent.train.interrupts` holds them back in a
training step."""

from __future__ import annotations

import signal

#: SIGINT first; the others are unwound as it is.
STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
