r"""Progress bars: tqdm's, redrawn up to ten times a second on a terminal, and once every :data:`PIPED_INTERVAL`
seconds where the bar's stream is a file or a pipe (a recipe's log): there each redraw is a line of the log, and a
training run's filled it with ten a second (about 3.6 MB an hour of one line redrawn)."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

#: Seconds between a bar's redraws where its stream is not a terminal.
PIPED_INTERVAL = 60.0


def progress_bar(*args: Any, **kwargs: Any) -> tqdm:
    r"""``tqdm(*args, **kwargs)``, its redraws at most every :data:`PIPED_INTERVAL` seconds where its ``file``
    (``sys.stderr`` by default) is not a terminal, unless ``mininterval`` is given."""
    stream = kwargs.get("file") or sys.stderr
    if "mininterval" not in kwargs and not _is_terminal(stream):
        kwargs["mininterval"] = kwargs["maxinterval"] = PIPED_INTERVAL  # maxinterval: tqdm's monitor's redraws
    return tqdm(*args, **kwargs)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False
