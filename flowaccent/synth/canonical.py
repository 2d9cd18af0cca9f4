r"""The native reading's phones, timed by the phones spoken: the demo corpus's ``canonical.ctm``.

``phones.ctm`` names what espeak said: a Mandarin-accented ``the`` is ``d @``, and its ``d`` is a phone of test_zh
that test_native hardly has. A forced alignment of accented speech against a native lexicon labels the same
stretch ``D @``, the phone the word should have had, and that is how a real corpus's CTM comes out: it says which
of the target phones a speaker got wrong, where ``phones.ctm`` says which sounds came out.

:func:`canonical_segments` aligns each word's native reading (before the accent's rules, stress marks dropped)
with the word as the rules wrote it, and those words' phones with the phones espeak spoke (``phones.ctm``'s,
pauses aside: espeak adds a linking ``r-`` or merges a phone now and then), each by edit distance: a match costs
0, a substitution :data:`SUBSTITUTION` within vowels or within consonants and :data:`ACROSS` from one to the other
(dark l spoken ``o``), an insertion or a deletion :data:`GAP`. Word by word: ``tried the`` said ``t r aI d d o z
@`` in Japanese has its ``D`` in ``z``, where one alignment of the whole would give it ``d o z`` at the same
cost. A native phone takes the time of the spoken phone aligned with it and of those inserted after it up to the
next (an epenthetic vowel, the aspiration ``h``, a geminate's second half, espeak's linking ``r-``); phones
inserted after a pause, or first, go to the native phone after them. A native phone aligned with none (said not
at all) has no time and no line; pauses stay ``sil``.

Example:
    >>> from flowaccent.synth.phonemes import parse_word
    >>> native, said = [parse_word(["b", "'a", "d"])], [parse_word(["b", "'a", "t[", "@"])]  # 'bad', Mandarin
    >>> spoken = [(0.0, 0.1, "b"), (0.1, 0.2, "a"), (0.3, 0.1, "t["), (0.4, 0.1, "@"), (0.5, 0.2, "sil")]
    >>> canonical_segments(native, said, spoken)
    ((0.0, 0.1, 'b'), (0.1, 0.2, 'a'), (0.3, 0.2, 'd'), (0.5, 0.2, 'sil'))
"""

from __future__ import annotations

from collections.abc import Sequence

from flowaccent.synth.phonemes import SILENCE, VOWELS, Word

#: Edit costs: a substitution within vowels or within consonants, one from one to the other, an insertion or a
#: deletion. ``ACROSS`` below two gaps: a dark l spoken ``o`` is a substitution, not a deletion and an insertion.
SUBSTITUTION, ACROSS, GAP = 1.0, 1.5, 1.0



def alignment(native: Sequence[str], spoken: Sequence[str]) -> list[int | None]:
    r"""For each phone of ``spoken`` the index of the ``native`` phone aligned with it, None for one inserted:
    a least-cost edit path (module docstring). Of paths of the same cost, the one that aligns each native phone
    with the earliest spoken phone it can (the phones inserted then follow it, and are its: a geminate's first half
    is the stop's, Japanese ``o *`` of ``@L`` is ``@L``'s whatever the epenthetic ``u`` after it).
    ``O(len(native) * len(spoken))``."""
    n, m = len(native), len(spoken)
    cost = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        cost[i][0] = i * GAP
    for j in range(1, m + 1):
        cost[0][j] = j * GAP
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i][j] = min(cost[i - 1][j - 1] + _substitution(native[i - 1], spoken[j - 1]),
                             cost[i - 1][j] + GAP, cost[i][j - 1] + GAP)
    out: list[int | None] = [None] * m
    i, j = n, m
    while i > 0 and j > 0:
        if cost[i][j] == cost[i][j - 1] + GAP:  # from the end: an insertion first, the alignment then earlier
            j -= 1
        elif cost[i][j] == cost[i - 1][j - 1] + _substitution(native[i - 1], spoken[j - 1]):
            i, j = i - 1, j - 1
            out[j] = i
        else:
            i -= 1
    return out


def _substitution(native: str, spoken: str) -> float:
    if native == spoken:
        return 0.0
    return SUBSTITUTION if (native in VOWELS) == (spoken in VOWELS) else ACROSS


def canonical_segments(
    native: Sequence[Word], accented: Sequence[Word], segments: Sequence[tuple[float, float, str]]
) -> tuple[tuple[float, float, str], ...]:
    r"""``(start, duration, name)`` of each phone of the ``native`` words said, timed by the spoken ``segments``
    (:func:`~flowaccent.synth.render.phone_segments`) of the ``accented`` words (the rules' output, word for word
    of ``native``), and the pauses: an utterance's lines of ``canonical.ctm`` (module docstring)."""
    names, origin = [], []  # the accented phones, and each one's native phone (an index of the native flattened)
    first = 0
    for word, said_word in zip(native, accented, strict=True):
        aligned = alignment([p.name for p in word], [p.name for p in said_word])
        names += [p.name for p in said_word]
        origin += [None if index is None else first + index for index in aligned]
        first += len(word)
    flat = [phone.name for word in native for phone in word]
    said = [k for k, (_, _, name) in enumerate(segments) if name != SILENCE]
    owner: list[int | None] = [None] * len(segments)  # each segment's native phone
    for k, index in zip(said, alignment(names, [segments[k][2] for k in said])):
        owner[k] = None if index is None else origin[index]
    for k in range(len(segments)):  # an inserted phone: the native phone before it, up to a pause
        if owner[k] is None and segments[k][2] != SILENCE and k > 0 and owner[k - 1] is not None:
            owner[k] = owner[k - 1]
    for k in reversed(range(len(segments))):  # after a pause, or first: the one after it
        if owner[k] is None and segments[k][2] != SILENCE and k + 1 < len(segments) and owner[k + 1] is not None:
            owner[k] = owner[k + 1]
    out: list[tuple[float, float, str]] = []
    for k, (start, duration, name) in enumerate(segments):
        label = SILENCE if name == SILENCE else None if owner[k] is None else flat[owner[k]]
        if label is None:
            continue
        if out and owner[k] is not None and k > 0 and owner[k - 1] == owner[k]:
            first = out[-1][0]
            out[-1] = (first, start + duration - first, label)
        else:
            out.append((start, duration, label))
    return tuple(out)
