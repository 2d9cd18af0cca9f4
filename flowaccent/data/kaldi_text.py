r"""Kaldi's text fields: tokens separated by ASCII whitespace only.

Kaldi splits table and scp lines on the C locale's whitespace (``isspace``: space, ``\t``, ``\n``, ``\v``,
``\f``, ``\r``), so a key may hold any other character, a no-break space (U+00A0) or an ideographic space
(U+3000) among them. Python's ``str.split()`` splits on Unicode whitespace too, which cut such a key in two.
"""

from __future__ import annotations

import re

#: The characters Kaldi separates fields with.
KALDI_SPACE = " \t\n\v\f\r"
_SPACES = re.compile(r"[ \t\n\v\f\r]+")
#: The ASCII characters besides Kaldi's that ``str.split()`` takes for whitespace (file, group, record and unit
#: separators).
_MORE_ASCII_SPACE = re.compile(r"[\x1c-\x1f]")
#: A number as Kaldi's tables write it, in ASCII: Python's float() and int() also take 4_5, ' 5', and other scripts'
#: digits (Arabic-Indic, superscripts: int('²') is an error isdigit() let through, a traceback).
NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
COUNT = re.compile(r"[0-9]+")


def fields(text: str, maxsplit: int = -1) -> list[str]:
    r"""``text``'s fields as Kaldi reads them (``str.split`` on ASCII whitespace only; with ``maxsplit``, at
    most that many splits, the rest one field without its surrounding whitespace).

    Example:
        >>> fields("spk\u00a0a  wav/a.wav\r")
        ['spk\xa0a', 'wav/a.wav']
        >>> fields(" a b  c ", maxsplit=1)
        ['a', 'b  c']
    """
    stripped = text.strip(KALDI_SPACE)
    if stripped.isascii() and not _MORE_ASCII_SPACE.search(stripped):  # str.split's whitespace is Kaldi's here
        return stripped.split(None, maxsplit if maxsplit > 0 else -1)
    return _SPACES.split(stripped, maxsplit=max(maxsplit, 0)) if stripped else []


def has_space(key: str) -> bool:
    r"""Whether ``key`` holds a character Kaldi separates fields with."""
    return any(c in KALDI_SPACE for c in key)
