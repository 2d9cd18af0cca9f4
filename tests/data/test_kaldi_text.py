r"""Kaldi's field splitting (ASCII whitespace only) against a plain reference, on random lines."""

from __future__ import annotations

import random
import re

import pytest

from flowaccent.data.kaldi_text import KALDI_SPACE, fields, has_space

#: Kaldi's separators (isspace() in the C locale), written out: the module's own constant is under test.
SPACE = " \t\n\v\f\r"
#: Kaldi's separators, the ASCII ones str.split() also takes (\x1c-\x1f), Unicode spaces, and plain characters.
ALPHABET = list(SPACE) + ["\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\xa0", "\u2028", "\u3000", "a", "b", "é", "-"]


def reference(text: str, maxsplit: int) -> list[str]:
    stripped = text.strip(SPACE)
    return re.split(r"[ \t\n\v\f\r]+", stripped, maxsplit=max(maxsplit, 0)) if stripped else []


@pytest.mark.parametrize("maxsplit", [-1, 0, 1, 2])
def test_fields_split_as_kaldi_does(maxsplit):
    rng = random.Random(maxsplit)
    for _ in range(20000):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(12)))
        assert fields(text, maxsplit) == reference(text, maxsplit), repr(text)


def test_kaldis_separators_and_no_others():
    assert sorted(KALDI_SPACE) == sorted(SPACE)
    assert all(has_space(f"a{c}b") for c in SPACE)
    assert not any(has_space(f"a{c}b") for c in ALPHABET if c not in SPACE)
