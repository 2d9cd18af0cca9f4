r"""Synthetic speakers: an espeak voice variant with its own rate, pitch and pitch range.

A *persona* is one voice: variant (male ``m*`` or female ``f*``/``steph``),
speaking rate, base pitch and pitch range, kept for all its utterances.
Training personas use the variants of :data:`TRAIN_VARIANTS`; dev and test
personas the disjoint :data:`HELDOUT_VARIANTS`, so no test voice is heard in
training. A persona may read in several accents: ``native-m07``, ``zh-m07`` and
``ja-m07`` are the same voice, which keeps timbre from telling the groups apart.
"""

from __future__ import annotations

import dataclasses

import numpy as np

#: Voice variants of espeak-ng's ``voices/!v`` used for training speakers, by gender.
TRAIN_VARIANTS = {"m": ("m1", "m2", "m3", "m4", "m6"), "f": ("f1", "f2", "f3", "steph")}
#: Variants used only for dev and test speakers.
HELDOUT_VARIANTS = {"m": ("m5", "m7", "m8"), "f": ("f4", "f5")}


@dataclasses.dataclass(frozen=True)
class Persona:
    r"""One synthetic voice.

    Attributes:
        gender: ``"m"`` or ``"f"``.
        number: its number within the gender (``7`` in ``m07``), unique across splits.
        variant: espeak voice variant (``"m3"``).
        rate_wpm: speaking rate, words per minute.
        pitch: espeak base pitch, 0-100.
        pitch_range: espeak pitch range, 0-100.
    """

    gender: str
    number: int
    variant: str
    rate_wpm: int
    pitch: int
    pitch_range: int

    @property
    def tag(self) -> str:
        r"""``"m07"``: the part of the speaker id shared by all accents."""
        return f"{self.gender}{self.number:02d}"

    def speaker_id(self, accent: str) -> str:
        r"""Kaldi speaker id, e.g. ``"zh-m07"``."""
        return f"{accent}-{self.tag}"


@dataclasses.dataclass(frozen=True)
class VoiceRanges:
    r"""Ranges personas are drawn from (inclusive, uniform)."""

    rate_wpm: tuple[int, int] = (150, 200)
    pitch: tuple[int, int] = (35, 65)
    pitch_range: tuple[int, int] = (35, 75)


def make_personas(
    count: int,
    variants: dict[str, tuple[str, ...]],
    rng: np.random.Generator,
    first_number: dict[str, int] | None = None,
    ranges: VoiceRanges = VoiceRanges(),
) -> list[Persona]:
    r"""Draws ``count`` personas, alternating male and female, cycling through ``variants``.

    Arguments:
        count: number of personas (``count // 2`` female, the rest male).
        variants: variants per gender.
        rng: the random source for rate and pitch.
        first_number: the first number per gender (so splits do not reuse numbers).
        ranges: rate and pitch ranges.

    Returns:
        personas, males first then females, numbered consecutively per gender.
    """
    first = {"m": 1, "f": 1, **(first_number or {})}
    counts = {"m": count - count // 2, "f": count // 2}
    personas = []
    for gender in ("m", "f"):
        pool = list(variants[gender])
        order = rng.permutation(len(pool))
        for i in range(counts[gender]):
            personas.append(
                Persona(
                    gender=gender,
                    number=first[gender] + i,
                    variant=pool[order[i % len(pool)]],
                    rate_wpm=int(rng.integers(ranges.rate_wpm[0], ranges.rate_wpm[1] + 1)),
                    pitch=int(rng.integers(ranges.pitch[0], ranges.pitch[1] + 1)),
                    pitch_range=int(rng.integers(ranges.pitch_range[0], ranges.pitch_range[1] + 1)),
                )
            )
    return personas


def next_numbers(personas: list[Persona]) -> dict[str, int]:
    r"""The first unused number per gender after ``personas``."""
    out = {"m": 1, "f": 1}
    for persona in personas:
        out[persona.gender] = max(out[persona.gender], persona.number + 1)
    return out
