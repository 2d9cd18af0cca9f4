r"""The demo corpus: English read natively and with Mandarin and Japanese transfer, by espeak-ng.

espeak-ng (GPL-3.0+) comes from the optional extra ``flowaccent[demo]``
(``espeakng-loader``) and is loaded only when speech is made.

Example:
    >>> from flowaccent.synth import SynthConfig, make_corpus
    >>> make_corpus("data/demo", SynthConfig(num_sentences=200, seed=1))  # doctest: +SKIP
"""

from flowaccent.synth.accents import ACCENTS, apply_accent, japanese, mandarin, score_of
from flowaccent.synth.corpus import CorpusSummary, SynthError, make_corpus
from flowaccent.synth.espeak import Espeak, EspeakError, EspeakMissingError
from flowaccent.synth.plan import SETS, SynthConfig, plan_corpus
from flowaccent.synth.text import SentenceGenerator

__all__ = [
    "ACCENTS",
    "SETS",
    "CorpusSummary",
    "Espeak",
    "EspeakError",
    "EspeakMissingError",
    "SentenceGenerator",
    "SynthConfig",
    "SynthError",
    "apply_accent",
    "japanese",
    "make_corpus",
    "mandarin",
    "plan_corpus",
    "score_of",
]
