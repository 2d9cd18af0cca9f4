r"""espeak-ng phoneme names of the English voice: parsing, classes and syllables.

espeak writes phonemes with ASCII names (``T`` for /θ/, ``'I`` for stressed /ɪ/,
``aI@`` for /aɪə/). A word is a list of such names; a stress mark
(``'`` primary, ``,`` secondary, ``%`` unstressed) precedes the vowel it marks.
The classes below cover what ``espeak_TextToPhonemes`` emits for en-gb
(``gmw/en``) and what the accent rules of :mod:`flowaccent.synth.accents`
write; every name written is in the English voice's phoneme table (``en`` and
the ``base1`` table it includes), which the tests check by synthesis.
"""

from __future__ import annotations

from typing import NamedTuple

#: The phone name of espeak's pauses (``_:``, ``_``, ``_!``) in the demo's CTMs: Kaldi's silence.
SILENCE = "sil"

#: Stress marks espeak puts before a vowel.
STRESS_MARKS = ("'", ",", "%", "=")

#: Vowels (and syllabic consonants) of the ``en`` and ``base1`` phoneme tables.
VOWELS = frozenset(
    """@ @2 @5 @L @# @- 3 3: a a# a#2 a2 aa A: A@ A# A~ aI aI@ aI3 aU aU@ e e: e# e@ E E# E2
    eI i i: i@ i@3 I I2 I# I2# IR o o: oU oU# O O: O@ o@ O~ OI 0 0# 02 O2 u u: U U@ V VR
    m- n- N- l-""".split()
)

#: Short (lax) vowels: a stop after one of these may be geminated in Japanese loanwords.
SHORT_VOWELS = frozenset("@ a a# a2 e E E2 i I I2 o 0 02 O2 u U V".split())

#: Stops, voiceless and voiced (``t2``, ``t#``, ``d#`` are en-specific variants of t and d).
VOICELESS_STOPS = frozenset("p t t2 t# k".split())
VOICED_STOPS = frozenset("b d d# g".split())
STOPS = VOICELESS_STOPS | VOICED_STOPS

#: Affricates.
AFFRICATES = frozenset("tS dZ".split())

#: Alveolar stops (the Japanese epenthetic vowel after them is /o/, not /u/).
ALVEOLAR_STOPS = frozenset("t t2 t# d d#".split())

#: Nasals that may close a syllable in Mandarin and Japanese (the moraic nasal).
CODA_NASALS = frozenset("n N".split())

#: espeak's linking glide: word-final (``D|'I2|;``, *the* before a vowel), said only into the next word's vowel,
#: so it closes no syllable (the accents' epenthesis put a vowel after it, as after a consonant).
LINKING = frozenset(";")

#: Laterals and rhotics of the en table (``r-`` is the linking r, ``l/2`` dark l).
LATERALS = frozenset("l l/ l/2 L".split())
RHOTICS = frozenset("r r- r/".split())


class Phone(NamedTuple):
    r"""One phoneme: its espeak name and the stress mark before it (``""`` if none)."""

    name: str
    stress: str = ""

    @classmethod
    def parse(cls, token: str) -> Phone:
        r"""Splits ``"'I"`` into ``Phone("I", "'")``."""
        stress = ""
        while token[:1] in STRESS_MARKS and len(token) > 1:
            stress, token = stress + token[0], token[1:]
        return cls(token, stress)

    def __str__(self) -> str:
        return self.stress + self.name

    @property
    def is_vowel(self) -> bool:
        return self.name in VOWELS


#: A word: its phones in order.
Word = list[Phone]


def parse_word(tokens: list[str]) -> Word:
    r"""Parses espeak phoneme names of one word (``["T", "'I", "n"]``)."""
    return [Phone.parse(token) for token in tokens if token]


def format_word(word: Word) -> list[str]:
    r"""The inverse of :func:`parse_word`."""
    return [str(phone) for phone in word]


def syllable_nuclei(word: Word) -> list[int]:
    r"""Indices of the vowels of ``word``: one per syllable."""
    return [i for i, phone in enumerate(word) if phone.is_vowel]


def followed_by_vowel(word: Word, index: int) -> bool:
    r"""Whether the phone after ``word[index]`` (within the word) is a vowel."""
    return index + 1 < len(word) and word[index + 1].is_vowel


def preceded_by_vowel(word: Word, index: int) -> bool:
    r"""Whether the phone before ``word[index]`` (within the word) is a vowel."""
    return index > 0 and word[index - 1].is_vowel
