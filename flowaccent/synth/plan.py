r"""What the demo corpus contains: its configuration and the deterministic plan of every utterance.

The plan is pure (no audio): which sentence each speaker reads, in which accent,
at which strength, with which random seed. :mod:`flowaccent.synth.corpus` then
renders it. Everything derives from ``SynthConfig.seed`` through named random
streams, so the same configuration always gives the same plan.
"""

from __future__ import annotations

import dataclasses
import math
import zlib

import numpy as np

from flowaccent.config import Config
from flowaccent.errors import ConfigError
from flowaccent.synth.espeak import VOICE_FILES
from flowaccent.synth.speakers import HELDOUT_VARIANTS, TRAIN_VARIANTS, Persona, make_personas, next_numbers
from flowaccent.synth.text import SentenceGenerator

#: The data dirs of the corpus: name -> accent.
SETS = {
    "train_native": "native",
    "dev_native": "native",
    "test_native": "native",
    "train_zh": "zh",
    "test_zh": "zh",
    "test_ja": "ja",
}


#: The loudest noise floor (``noise_std``, int16 units): -12 dBFS, where 4 sigma reach full scale.
NOISE_STD_MAX = 8192.0

#: The most speakers of a split (``train_speakers``, ...): a set's sentences go round its speakers, so more than it
#: has sentences read none (said, :func:`speaker_shortfall`); 1e12 drew personas for hours without a word.
MAX_SPEAKERS = 10_000


@dataclasses.dataclass(frozen=True)
class SynthConfig(Config):
    r"""Size and randomness of the demo corpus.

    Attributes:
        num_sentences: utterances of ``train_native``; the other sets scale with it.
        seed: the one seed everything derives from (non-negative).
        language: espeak language of every voice: ``en-gb`` or ``en-us`` (``espeak.VOICE_FILES``).
        train_speakers: personas of the training sets (half female).
        dev_speakers: personas of ``dev_native``.
        test_speakers: personas of the three test sets (the same voices in each).
        train_zh_fraction: ``train_zh`` size as a fraction of ``num_sentences``.
        dev_fraction: ``dev_native`` size as a fraction of ``num_sentences``.
        test_fraction: size of each test set as a fraction of ``num_sentences``.
        strength_min: lowest accent strength (fraction of words transformed) of an accented utterance.
        strength_max: highest accent strength; each accented speaker's utterances
            spread evenly over ``[strength_min, strength_max]``.
        noise_std: Gaussian noise floor added to every utterance, in int16 units (about
            -78 dBFS at 4; at most 8192, -12 dBFS); espeak's pauses are otherwise digital silence.
    """

    num_sentences: int = 800
    seed: int = 0
    language: str = "en-gb"
    train_speakers: int = 8
    dev_speakers: int = 4
    test_speakers: int = 8
    train_zh_fraction: float = 0.5
    dev_fraction: float = 0.1
    test_fraction: float = 0.2
    strength_min: float = 0.1
    strength_max: float = 1.0
    noise_std: float = 4.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_ranges("synth", (("num_sentences", 1, False), ("seed", 0, False)))
        if self.language not in VOICE_FILES:
            raise ConfigError(f"synth: unknown language '{self.language}'; known: {', '.join(VOICE_FILES)}")
        if min(self.train_speakers, self.dev_speakers, self.test_speakers) < 1:
            raise ConfigError("synth: every split needs at least one speaker")
        for name in ("train_speakers", "dev_speakers", "test_speakers"):  # 1e12 drew personas for hours
            if getattr(self, name) > MAX_SPEAKERS:
                raise ConfigError(f"synth: {name} must be <= {MAX_SPEAKERS} (speakers beyond a set's sentences read "
                                  f"none), got {getattr(self, name)}")
        for name in ("train_zh_fraction", "dev_fraction", "test_fraction"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ConfigError(f"synth: {name} must be in (0, 1], got {getattr(self, name)}")
        if not 0.0 < self.strength_min <= self.strength_max <= 1.0:
            raise ConfigError("synth: need 0 < strength_min <= strength_max <= 1")
        if not 0 <= self.noise_std < math.inf:  # nan wrote all-zero audio, inf noise alone
            raise ConfigError(f"synth: noise_std must be a finite number >= 0, got {self.noise_std}")
        if self.noise_std > NOISE_STD_MAX:  # 1e9 wrote full-scale noise, 99.996% of the samples clipped, exit 0
            raise ConfigError(f"synth: noise_std must be <= {NOISE_STD_MAX:g} (int16 units: a noise floor of -12 dBFS; "
                              f"louder drowns the speech and clips at 32767), got {self.noise_std:g}")

    def size(self, fraction: float) -> int:
        r"""Utterances of a set that is ``fraction`` of ``num_sentences`` (at least 1)."""
        return max(1, round(self.num_sentences * fraction))

    @property
    def num_utts(self) -> int:
        r"""Utterances of the whole corpus (:attr:`Plan.num_utts` of its plan, known before it is drawn)."""
        zh = min(self.num_sentences, self.size(self.train_zh_fraction))
        return self.num_sentences + zh + self.size(self.dev_fraction) + 3 * self.size(self.test_fraction)


@dataclasses.dataclass(frozen=True)
class UttPlan:
    r"""One utterance to render: id, sentence, accent, target strength and espeak seed."""

    utt: str
    sentence: str
    accent: str
    strength: float
    seed: int


@dataclasses.dataclass(frozen=True)
class Job:
    r"""One speaker's utterances in one data dir: rendered in order, in one fresh process."""

    data_dir: str
    speaker: str
    persona: Persona
    language: str
    utts: tuple[UttPlan, ...]


@dataclasses.dataclass(frozen=True)
class Plan:
    r"""The whole corpus: jobs, and the mean accent strength of every accented speaker."""

    jobs: tuple[Job, ...]
    speaker_strength: dict[str, float]

    @property
    def num_utts(self) -> int:
        return sum(len(job.utts) for job in self.jobs)


def stream(seed: int, *names: str) -> np.random.Generator:
    r"""A random generator for one named purpose, independent of all other names."""
    return np.random.default_rng([seed, *(zlib.crc32(name.encode()) for name in names)])


def utterance_seed(seed: int, utt: str) -> int:
    r"""espeak's random seed for one utterance (31 bits)."""
    return zlib.crc32(f"{seed}/{utt}".encode()) & 0x7FFFFFFF


def plan_corpus(config: SynthConfig) -> Plan:
    r"""Plans every utterance of the six data dirs of :data:`SETS`.

    Training sentences, dev sentences and test sentences are disjoint; the
    three test sets read the same sentences with the same voices (``native-m07``,
    ``zh-m07``, ``ja-m07``), so they differ only in accent. Utterance ids are
    ``<speaker>-<sentence number>``, e.g. ``zh-m07-0012``.
    """
    seed = config.seed
    sentences = SentenceGenerator(stream(seed, "text"))
    train = sentences.unique(config.num_sentences)
    dev = sentences.unique(config.size(config.dev_fraction), exclude=set(train))
    test = sentences.unique(config.size(config.test_fraction), exclude=set(train) | set(dev))
    zh_count = min(config.num_sentences, config.size(config.train_zh_fraction))
    zh_numbers = sorted(stream(seed, "train_zh").choice(len(train), zh_count, replace=False).tolist())

    voices = stream(seed, "voices")
    train_p = make_personas(config.train_speakers, TRAIN_VARIANTS, voices)
    dev_p = make_personas(config.dev_speakers, HELDOUT_VARIANTS, voices, next_numbers(train_p))
    test_p = make_personas(config.test_speakers, HELDOUT_VARIANTS, voices, next_numbers(train_p + dev_p))

    readings = {  # data dir -> (sentence numbers, sentence pool, personas)
        "train_native": (list(range(len(train))), train, train_p),
        "train_zh": (zh_numbers, train, train_p),
        "dev_native": (list(range(len(dev))), dev, dev_p),
        "test_native": (list(range(len(test))), test, test_p),
        "test_zh": (list(range(len(test))), test, test_p),
        "test_ja": (list(range(len(test))), test, test_p),
    }
    jobs, speaker_strength = [], {}
    for name, accent in SETS.items():
        numbers, pool, personas = readings[name]
        width = max(4, len(str(len(pool) - 1)))
        for index, persona in enumerate(personas):
            spk = persona.speaker_id(accent)
            mine = numbers[index :: len(personas)]  # round-robin: sentence k of the set -> persona k % n
            strengths = _strengths(config, spk, len(mine)) if accent != "native" else [0.0] * len(mine)
            utts = tuple(
                UttPlan(utt, pool[n], accent, s, utterance_seed(seed, utt))
                for n, s in zip(mine, strengths)
                for utt in [f"{spk}-{n:0{width}d}"]
            )
            if utts:
                jobs.append(Job(name, spk, persona, config.language, utts))
                if accent != "native":
                    speaker_strength[spk] = float(np.mean(strengths))
    return Plan(tuple(jobs), speaker_strength)


def speaker_shortfall(plan: Plan, config: SynthConfig) -> list[str]:
    r"""A line for each set that has fewer speakers than its split asks for (fewer sentences than speakers: a set's
    sentences go round its speakers, and one with none is left out; 20 sentences gave 4 of 8 test speakers)."""
    wanted = {"train": config.train_speakers, "dev": config.dev_speakers, "test": config.test_speakers}
    lines = []
    for name in SETS:
        split = name.split("_")[0]
        jobs = [job for job in plan.jobs if job.data_dir == name]
        if len(jobs) < wanted[split]:
            sentences = sum(len(job.utts) for job in jobs)
            fraction = {"train_zh": " or --train-zh-fraction", "dev_native": " or --dev-fraction"}.get(
                name, " or --test-fraction" if split == "test" else "")
            plural = "s go" if sentences != 1 else " goes"  # 'its 1 sentences go round them'
            lines.append(f"{name} has {len(jobs)} of the {wanted[split]} {split} speakers (its {sentences} sentence"
                         f"{plural} round them); give more --num-sentences{fraction}")
    return lines


def _strengths(config: SynthConfig, spk: str, count: int) -> list[float]:
    r"""Target accent strengths of one accented speaker's utterances.

    Balanced, not drawn independently: ``[strength_min, strength_max]`` is cut
    into ``count`` equal bins and each utterance gets a point of its own bin, in
    random order. Every speaker thus reads at every strength, so a voice's
    timbre says nothing about its ratings and the ratings vary within speakers.
    """
    rng = stream(config.seed, "strength", spk)
    edges = np.linspace(config.strength_min, config.strength_max, count + 1)
    points = edges[:-1] + rng.uniform(size=count) * np.diff(edges)
    return [float(x) for x in rng.permutation(points)]
