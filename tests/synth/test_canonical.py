r"""``canonical.ctm``: the native reading's phones timed by the phones spoken, word by word, on the accents'
own rewrites (epenthesis, aspiration, vocalised l, geminates), pauses and espeak's own changes."""

from __future__ import annotations

import pytest

from flowaccent.synth.canonical import alignment, canonical_segments
from flowaccent.synth.phonemes import parse_word


def _timed(names: str, step: float = 0.1) -> list[tuple[float, float, str]]:
    r"""Spoken phones one after another, ``step`` seconds each."""
    return [(round(k * step, 6), step, name) for k, name in enumerate(names.split())]


def _words(text: str) -> list:
    return [parse_word(word.split("|")) for word in text.split()]


def _canonical(native: str, accented: str, spoken: str) -> list[tuple[str, int]]:
    r"""Each canonical phone and how many spoken phones (of 0.1 s) its time holds."""
    return [(name, round(duration / 0.1)) for _, duration, name in
            canonical_segments(_words(native), _words(accented), _timed(spoken))]


@pytest.mark.parametrize("native, spoken, want", [
    ("b a d", "b a t[ @", [0, 1, 2, None]),  # a substitution, then the epenthetic vowel inserted
    ("p a t", "p h a t", [0, None, 1, 2]),  # aspiration
    ("k a t", "k a t t o", [0, 1, 2, None, None]),  # a geminate: the stop is the first of the two
    ("b O l", "b O o", [0, 1, 2]),  # dark l vocalised: a substitution across, not a deletion and an insertion
    ("a b c", "a c", [0, 2]),  # b said not at all
    ("a b", "a @ p", [0, None, 1]),  # a consonant with a consonant, over the vowel before it
    ("", "a", [None]),
])
def test_alignment_of_the_accents_rewrites(native, spoken, want):
    assert alignment(native.split(), spoken.split()) == want


def test_each_native_phone_takes_its_spoken_phones_and_those_inserted_after_it():
    assert _canonical("b|'a|d", "b|'a|t[|@", "b a t[ @ sil") == [("b", 1), ("a", 1), ("d", 2), ("sil", 1)]
    # Japanese: syllabic dark l said 'o *' and an epenthetic u; 'tried the' with the d geminated and D said z
    assert _canonical("'OI|@L t|r|'aI|d D|@", "'OI|o|*|u t|*|'aI|d|d|o z|@", "OI o * u t * aI d d o z @") == [
        ("OI", 1), ("@L", 3), ("t", 1), ("r", 1), ("aI", 1), ("d", 3), ("D", 1), ("@", 1)]


def test_pauses_stay_and_what_follows_one_goes_to_the_phone_after_it():
    # espeak's linking r- after a pause (inserted: none of the words has it) joins the phone after it
    got = canonical_segments(_words("f|A: a|t"), _words("f|A: a|t"), _timed("sil f A: sil r- a t sil"))
    assert [(round(start, 6), round(duration, 6), name) for start, duration, name in got] == [
        (0.0, 0.1, "sil"), (0.1, 0.1, "f"), (0.2, 0.1, "A:"), (0.3, 0.1, "sil"), (0.4, 0.2, "a"), (0.6, 0.1, "t"),
        (0.7, 0.1, "sil")]
    # a phone said not at all has no line; the spoken phone no native one is aligned with either, at the start
    assert _canonical("a|b|c", "a|c", "a c") == [("a", 1), ("c", 1)]
    assert _canonical("a", "@|a", "@ a") == [("a", 2)]


def test_the_words_must_match():
    with pytest.raises(ValueError):
        canonical_segments(_words("a b"), _words("a"), _timed("a b"))
