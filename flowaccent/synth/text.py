r"""Sentences for the demo corpus: templates filled from word lists, deterministic per seed.

About nine words per sentence, chosen to be rich in what L1 transfer changes:
th, v, r/l, word-final stops and consonant clusters. Words with two common
pronunciations (read, lead, live, close) are avoided so the phonemes are the
ones espeak's dictionary gives.

Example:
    >>> import numpy as np
    >>> gen = SentenceGenerator(np.random.default_rng(0))
    >>> len(gen.sentence().split()) >= 8
    True
"""

from __future__ import annotations

import re

import numpy as np

ADJECTIVES = """thick thin vivid brave bright cold clever gentle rapid bold little strong rough
silver crisp loyal thirsty wealthy bitter stiff brisk wild red black flat proud sharp grand frozen
golden lovely heavy smooth dark fresh brown green broad plain strict swift stout vast
strange sprightly""".split()

NOUNS = """thief river village lantern rabbit brother feather ladder valley blanket tablet carpet
basket thread violin vase lizard farmer traveller clerk driver doctor bottle bridge castle garden
kettle puppet rocket trumpet wagon cottage pilot crystal cliff stove glove drum truck belt desk
bench clock pocket pebble monster sister mother father author leather
street stream string straw sculptor splinter""".split()

PLURALS = """gloves drums trucks belts desks clocks pockets pebbles lanterns blankets baskets
threads violins rabbits feathers ladders bottles kettles puppets rockets trumpets wagons crystals
carrots vegetables bricks planks twigs cloths paths strings streams sprouts scripts""".split()

#: (base, past) forms of transitive verbs.
VERBS = [
    tuple(pair.split("/"))
    for pair in """grab/grabbed drag/dragged carry/carried pull/pulled stretch/stretched
    drop/dropped kick/kicked thank/thanked love/loved value/valued cover/covered roll/rolled
    deliver/delivered gather/gathered throw/threw bring/brought fix/fixed pack/packed
    scrub/scrubbed rub/rubbed judge/judged lift/lifted twist/twisted wrap/wrapped polish/polished
    clean/cleaned crush/crushed borrow/borrowed touch/touched watch/watched move/moved save/saved
    shove/shoved clutch/clutched track/tracked test/tested fill/filled trim/trimmed lock/locked
    stack/stacked hug/hugged blame/blamed flip/flipped splash/splashed
    scratch/scratched sprinkle/sprinkled squeeze/squeezed strap/strapped stroke/stroked""".split()
]

PREPOSITIONS = """through over near behind beneath above beside along across around toward
under past""".split()

NAMES = """Robert Victor Ruth Beth Clive Olivia Lloyd Travis Gareth Martha Vera Dorothy Timothy
Arthur Kathleen Everett Beverly Bradley Gilbert Frederick Valerie Theodore""".split()

NUMBERS = "three five seven eleven twelve thirteen thirty twenty".split()

TIMES = """last_Thursday at_dawn that_evening every_winter before_breakfast after_lunch
on_Friday last_night by_twilight""".split()

ADVERBS = """slowly gently firmly bravely proudly silently twice softly briskly carefully
deliberately thoroughly""".split()

POSSESSIVES = "her his their our".split()

#: Templates; ``{slot}`` names a word list, ``{slot2}`` a second draw from it.
TEMPLATES = (
    "The {adj} {noun} {past} {num} {adj2} {plural} {prep} the {noun2}.",
    "{name} {past} the {adj} {noun} {prep} the {adj2} {noun2}.",
    "{num} {adj} {plural} {past} the {noun} {time}.",
    "Did {name} {base} the {adj} {noun} {prep} the {noun2}?",
    "{name} and {name2} {past} {num} {plural} {prep} the {noun}.",
    "The {noun} {past} the {adj} {noun2} {adv} {time}.",
    "{poss} {adj} {noun} {past} the {noun2} {prep} the {adj2} {noun3}.",
    "{name} {adv} {past} the {plural} {prep} the {adj} {noun}.",
)

_SLOTS = {
    "adj": ADJECTIVES,
    "noun": NOUNS,
    "plural": PLURALS,
    "prep": PREPOSITIONS,
    "name": NAMES,
    "num": NUMBERS,
    "time": TIMES,
    "adv": ADVERBS,
    "poss": POSSESSIVES,
}


class SentenceGenerator:
    r"""Draws sentences from :data:`TEMPLATES`; the same generator state gives the same sentences.

    Arguments:
        rng: the random source (``np.random.default_rng(seed)``).
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def sentence(self) -> str:
        r"""One sentence with its final punctuation (``"Did Ruth grab the thin vase beside the cliff?"``)."""
        template = TEMPLATES[self.rng.integers(len(TEMPLATES))]
        verb = VERBS[self.rng.integers(len(VERBS))]
        words: dict[str, str] = {"base": verb[0], "past": verb[1]}
        for slot in re.findall(r"\{(\w+)\}", template):
            if slot not in words:
                pool = _SLOTS[slot.rstrip("23")]
                taken = {w for k, w in words.items() if k.rstrip("23") == slot.rstrip("23")}
                words[slot] = self._draw(pool, taken)
        text = template.format(**words).replace("_", " ")
        return text[0].upper() + text[1:]

    def unique(self, count: int, exclude: set[str] | None = None) -> list[str]:
        r"""``count`` distinct sentences, none of them in ``exclude``."""
        seen = set(exclude or ())
        out: list[str] = []
        for _ in range(1000 * count + 1000):
            if len(out) == count:
                return out
            sentence = self.sentence()
            if sentence not in seen:
                seen.add(sentence)
                out.append(sentence)
        raise RuntimeError(f"could not draw {count} distinct sentences")

    def _draw(self, pool: list[str], taken: set[str]) -> str:
        while True:
            word = pool[self.rng.integers(len(pool))]
            if word not in taken:
                return word


def transcript(sentence: str) -> str:
    r"""The Kaldi ``text`` of a sentence: upper case, no punctuation (WSJ style)."""
    return " ".join(re.sub(r"[^\w' ]", " ", sentence).upper().split())


def final_punctuation(sentence: str) -> str:
    r"""``"?"`` for a question, ``"."`` otherwise (sets espeak's clause intonation)."""
    return "?" if sentence.rstrip().endswith("?") else "."
