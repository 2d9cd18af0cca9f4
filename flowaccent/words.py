r"""Counts in words, as the commands' lines and the report's titles say them: ``1 utterance``, ``2 utterances``."""

from __future__ import annotations


def counted(count: int, noun: str) -> str:
    r"""``count`` and ``noun``, plural (an ``s``) unless ``count`` is 1.

    Example:
        >>> counted(1, "utt"), counted(0, "phone")
        ('1 utt', '0 phones')
    """
    return f"{count} {noun}{'s' * (count != 1)}"
