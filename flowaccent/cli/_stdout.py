r"""A command's text on standard output, its write errors naming it."""

from __future__ import annotations

import sys


def write(text: str) -> None:
    r"""``text`` on stdout, flushed; an ``OSError`` in writing it names ``stdout``: 'compare > /dev/full' said 'error:
    No space left on device' without saying of what."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # '| head' closed it: Python's own handling, as before
        raise
    except OSError as error:
        raise OSError(error.errno, error.strerror, "stdout") from None
