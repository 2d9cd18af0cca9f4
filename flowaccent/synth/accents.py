r"""L1 transfer rules: Mandarin and Japanese phonology applied to English phonemes.

Each rule set maps one English word (espeak phoneme names, see
:mod:`flowaccent.synth.phonemes`) to the way a speaker of the L1 might say it.
:func:`apply_accent` applies the rules to a random fraction of the words of an
utterance, its *strength*, chosen among the words the rules change (a rule set
leaves some words as they are: Japanese ``on``, a Mandarin word whose drawn
tones equal its stresses); the fraction of words whose phonemes differ from the
native reading is the ground truth behind ``utt2score``. The voice stays the
English one, so accented and native speech differ only in what is said, not in
the timbre; phonemes the English voice lacks are mapped to the nearest one it
has (noted per rule).

Mandarin (:func:`mandarin`):
    th -> s (``T``) / d (``D``); v -> w; d -> the voice's unaspirated dental
    ``t[`` (b and g stay: the voice already makes them short-lag, and it has no
    unaspirated p or k); p/t/k aspirated before a vowel (``+h``, also after s
    and before an epenthetic vowel, where English does not aspirate); dark l
    (l after a vowel and not before one, and syllabic ``@L``) vocalised to
    ``o``; only n and ng close a syllable,
    every other consonant not before a vowel (or a glide j/w and a vowel) gets
    an epenthetic schwa; tones: each syllable gets primary stress (tones 1, 4),
    secondary (tone 2) or none (tone 3) at random, the English voice's nearest
    to lexical tone (it has no tone phonemes).
Japanese (:func:`japanese`):
    CV morae: every consonant not before a vowel (or j and a vowel) gets an
    epenthetic vowel, ``o`` after t/d, ``i`` after ch/j, ``u`` otherwise
    (the voice's ``u`` is rounded; Japanese /ɯ/ is not), except the moraic n/ng
    and the first half of a geminate; r and l merge into the flap ``*``
    (syllabic ``@L`` becomes ``o*``: little -> ritoru);
    th -> s (``T``) / z (``D``); v -> b; f -> ``w#`` (the voice's voiceless [ʍ],
    nearest to bilabial [ɸ]; its ``B`` is voiced); s before i -> sh;
    a word-final stop after a short vowel is geminated (``cat`` -> ``katto``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from flowaccent.synth.phonemes import (
    AFFRICATES,
    ALVEOLAR_STOPS,
    CODA_NASALS,
    LATERALS,
    LINKING,
    RHOTICS,
    SHORT_VOWELS,
    STOPS,
    VOICELESS_STOPS,
    Phone,
    Word,
    followed_by_vowel,
    format_word,
    preceded_by_vowel,
)

#: Accent names, as written to ``utt2accent``.
ACCENTS = ("native", "zh", "ja")

MANDARIN_SUBSTITUTIONS = {"T": "s", "D": "d", "v": "w", "d": "t[", "d#": "t["}
JAPANESE_SUBSTITUTIONS = {"T": "s", "D": "z", "v": "b", "f": "w#"}
#: Stress marks standing for the four Mandarin tones (1 high, 2 rising, 3 low, 4 falling).
TONE_STRESS = ("'", ",", "%", "'")
#: Vowels before which Japanese /s/ is [ɕ].
I_VOWELS = frozenset("i i: I I2 i@".split())


def mandarin(word: Word, rng: np.random.Generator) -> Word:
    r"""Mandarin transfer rules on one word (see the module docstring)."""
    word = [Phone(MANDARIN_SUBSTITUTIONS.get(p.name, p.name), p.stress) for p in word]
    word = _vocalise_dark_l(word)
    word = [Phone(p.name, TONE_STRESS[rng.integers(4)]) if p.is_vowel else p for p in word]
    word = _epenthesis(word, lambda phone: "@", glides=("j", "w"))
    return _aspirate(word)


def japanese(word: Word, rng: np.random.Generator) -> Word:
    r"""Japanese transfer rules on one word (see the module docstring)."""
    out: Word = []
    for p in word:
        if p.name == "@L":  # syllabic dark l: o + flap (little -> ritoru)
            out += [Phone("o", p.stress), Phone("*")]
        elif p.name in LATERALS or p.name in RHOTICS:
            out.append(Phone("*", p.stress))
        else:
            out.append(Phone(JAPANESE_SUBSTITUTIONS.get(p.name, p.name), p.stress))
    out = [
        Phone("S", p.stress) if p.name == "s" and i + 1 < len(out) and out[i + 1].name in I_VOWELS else p
        for i, p in enumerate(out)
    ]
    out = _geminate_final_stop(out)
    return _epenthesis(out, _japanese_vowel, glides=("j",))


#: Accent name -> rule set.
RULES: dict[str, Callable[[Word, np.random.Generator], Word]] = {"zh": mandarin, "ja": japanese}


def apply_accent(words: list[Word], accent: str, strength: float, rng: np.random.Generator) -> tuple[list[Word], int]:
    r"""Applies the rules of ``accent`` to a random ``strength`` fraction of ``words``.

    The rules are applied to every word first (in order, drawing Mandarin tones
    from ``rng``); the words they leave unchanged (Japanese ``on``, a Mandarin
    word whose drawn tones are its own stresses) cannot carry the accent, and
    ``k = max(1, round(strength * n))`` of the ``n`` words are drawn from the
    others. Where fewer than ``k`` words change, all of them are accented, so
    the count returned may fall short of ``k`` (it is 0 when no word changes).

    Arguments:
        words: the utterance, one phone list per word.
        accent: ``"native"`` (nothing changes) or a key of :data:`RULES`.
        strength: target fraction of words to transform, in [0, 1]; at least
            one word is transformed when ``strength > 0`` and a rule changes one.
        rng: the random source (which tones, which words).

    Returns:
        ``(words, num_changed)``: the new words and how many of them differ
        from ``words`` (in the phoneme names written, stress marks included):
        the ground truth behind :func:`score_of`.
    """
    if accent == "native" or strength <= 0 or not words:
        return [list(word) for word in words], 0
    if accent not in RULES:
        raise ValueError(f"unknown accent '{accent}'; known: {', '.join(ACCENTS)}")
    rule = RULES[accent]
    transformed = [rule(word, rng) for word in words]
    alterable = [i for i, (new, old) in enumerate(zip(transformed, words)) if _differs(new, old)]
    target = min(len(words), max(1, round(strength * len(words))))
    count = min(target, len(alterable))
    chosen = set(rng.choice(alterable, size=count, replace=False).tolist()) if count else set()
    out = [transformed[i] if i in chosen else list(word) for i, word in enumerate(words)]
    return out, sum(_differs(new, old) for new, old in zip(out, words))


def _differs(new: Word, old: Word) -> bool:
    r"""Whether two readings of a word are written differently (stress marks included)."""
    return format_word(new) != format_word(old)


def score_of(num_transformed: int, num_words: int) -> float:
    r"""The 1-5 rating of an utterance: 5 native, 1 when every word is accented.

    ``num_transformed`` is the number of words whose phonemes differ from the
    native reading (what :func:`apply_accent` returns), not of words chosen.
    """
    return 5.0 - 4.0 * num_transformed / max(num_words, 1)


def _vocalise_dark_l(word: Word) -> Word:
    r"""Dark l (l not before a vowel, and syllabic ``@L``) becomes the vowel ``o``."""
    out = []
    for i, p in enumerate(word):
        if p.name == "@L" or (p.name in LATERALS and not followed_by_vowel(word, i) and preceded_by_vowel(word, i)):
            out.append(Phone("o", p.stress))
        else:
            out.append(p)
    return out


def _epenthesis(word: Word, vowel_after: Callable[[Phone], str], glides: tuple[str, ...]) -> Word:
    r"""Inserts a vowel after every consonant that cannot end a syllable.

    A consonant is kept as it is before a vowel, before a glide of ``glides``
    followed by a vowel, as a nasal coda (n, ng after a vowel), and as the first
    half of a geminate stop; espeak's linking ``;`` (:data:`~flowaccent.synth.phonemes.LINKING`) is no consonant
    and gets none.
    """
    out: Word = []
    for i, p in enumerate(word):
        out.append(p)
        if p.is_vowel or p.name in LINKING or p.name in glides and followed_by_vowel(word, i):
            continue
        nxt = word[i + 1] if i + 1 < len(word) else None
        if nxt is not None and (nxt.is_vowel or nxt.name in glides and followed_by_vowel(word, i + 1)):
            continue
        if p.name in CODA_NASALS and out[-2:-1] and out[-2].is_vowel:
            continue
        if nxt is not None and p.name in STOPS and nxt.name == p.name:
            continue
        out.append(Phone(vowel_after(p)))
    return out


def _aspirate(word: Word) -> Word:
    r"""Adds aspiration ``h`` after p/t/k before a vowel."""
    out: Word = []
    for i, p in enumerate(word):
        out.append(p)
        if p.name in VOICELESS_STOPS and followed_by_vowel(word, i):
            out.append(Phone("h"))
    return out


def _geminate_final_stop(word: Word) -> Word:
    r"""Doubles a word-final stop after a short vowel (``k a t`` -> ``k a t t``)."""
    if len(word) >= 2 and word[-1].name in STOPS and word[-2].name in SHORT_VOWELS:
        return [*word, Phone(word[-1].name)]
    return word


def _japanese_vowel(consonant: Phone) -> str:
    if consonant.name in ALVEOLAR_STOPS:
        return "o"
    if consonant.name in AFFRICATES:
        return "i"
    return "u"
