r"""Demo corpus without audio: phonemes, L1 transfer rules, sentences and the corpus plan."""

from __future__ import annotations

import numpy as np
import pytest

from flowaccent.errors import ConfigError
from flowaccent.synth.accents import apply_accent, japanese, mandarin, score_of
from flowaccent.synth.phonemes import Phone, format_word, parse_word
from flowaccent.synth.plan import SETS, SynthConfig, plan_corpus
from flowaccent.synth.speakers import HELDOUT_VARIANTS, TRAIN_VARIANTS
from flowaccent.synth.text import SentenceGenerator, final_punctuation, transcript

# espeak en-gb phonemes (espeak_TextToPhonemes) of a few words
THIN = ["T", "'I", "n"]
VIVID = ["v", "'I", "v", "I", "d"]
MILK = ["m", "'I", "l", "k"]
LITTLE = ["l", "'I", "t", "@L"]
CAT = ["k", "'a", "t"]
STRENGTHS = ["s", "t", "r", "'E", "N", "T", "s"]
FISH = ["f", "'I", "S"]
SIT = ["s", "'I", "t"]
QUICK = ["k", "w", "'I", "k"]


def rules(rule, tokens, seed=0):
    return format_word(rule(parse_word(tokens), np.random.default_rng(seed)))


def strip_stress(tokens):
    return [t.lstrip("',%=") for t in tokens]


def test_phone_parsing_round_trips():
    assert Phone.parse("'I") == Phone("I", "'")
    assert Phone.parse(",0") == Phone("0", ",")
    assert Phone.parse("aI@") == Phone("aI@", "")
    assert format_word(parse_word(STRENGTHS)) == STRENGTHS


def test_mandarin_rules():
    assert strip_stress(rules(mandarin, THIN)) == ["s", "I", "n"]  # th -> s, n coda kept
    assert strip_stress(rules(mandarin, VIVID)) == ["w", "I", "w", "I", "t[", "@"]  # v -> w, d unaspirated + schwa
    assert strip_stress(rules(mandarin, MILK)) == ["m", "I", "o", "k", "h", "@"]  # dark l vocalised, k aspirated
    assert strip_stress(rules(mandarin, LITTLE)) == ["l", "I", "t", "h", "o"]
    assert strip_stress(rules(mandarin, ["D", "@"])) == ["d", "@"]  # th (voiced) -> d
    assert strip_stress(rules(mandarin, STRENGTHS)) == ["s", "@", "t", "h", "@", "r", "E", "N", "s", "@", "s", "@"]
    assert strip_stress(rules(mandarin, QUICK)) == ["k", "w", "I", "k", "h", "@"]  # kw onset is Mandarin too


def test_mandarin_tones_mark_every_syllable():
    for seed in range(20):
        out = [Phone.parse(t) for t in rules(mandarin, ["v", "'E", "l", "v", "I2", "t"], seed)]
        vowels = [p for p in out if p.is_vowel and p.name != "@"]
        assert vowels and all(p.stress in ("'", ",", "%") for p in vowels)
    stresses = {rules(mandarin, VIVID, seed)[1][0] for seed in range(40)}
    assert stresses == {"'", ",", "%"}


def test_japanese_rules():
    assert strip_stress(rules(japanese, THIN)) == ["S", "I", "n"]  # th -> s, s before i -> sh
    assert strip_stress(rules(japanese, VIVID)) == ["b", "I", "b", "I", "d", "d", "o"]  # v -> b, geminate, o after d
    assert strip_stress(rules(japanese, MILK)) == ["m", "I", "*", "u", "k", "u"]  # l -> flap, epenthetic u
    assert strip_stress(rules(japanese, LITTLE)) == ["*", "I", "t", "o", "*", "u"]  # ritoru
    assert strip_stress(rules(japanese, CAT)) == ["k", "a", "t", "t", "o"]  # katto
    assert strip_stress(rules(japanese, FISH)) == ["w#", "I", "S", "u"]  # f -> bilabial
    assert strip_stress(rules(japanese, SIT)) == ["S", "I", "t", "t", "o"]
    assert strip_stress(rules(japanese, ["b", "r", "'I", "dZ"])) == ["b", "u", "*", "I", "dZ", "i"]
    assert strip_stress(rules(japanese, ["D", "@"])) == ["z", "@"]


def test_espeaks_linking_glide_gets_no_epenthetic_vowel():
    r"""espeak ends *the* before a vowel with its linking ``;`` (``D|'I2|;``); taken for a consonant, it got the
    epenthetic vowel (``d|'I2|;|@``, ``z|'I2|;|u``) in 59 utterances of the default corpus."""
    assert strip_stress(rules(mandarin, ["D", "'I2", ";"])) == ["d", "I2", ";"]
    assert strip_stress(rules(japanese, ["D", "'I2", ";"])) == ["z", "I2", ";"]
    assert strip_stress(rules(japanese, ["m", "i", ";"])) == ["m", "i", ";"]  # a word the rules leave unchanged


def test_japanese_morae_are_cv():
    out = [Phone.parse(t) for t in rules(japanese, STRENGTHS)]
    for i, p in enumerate(out):
        if not p.is_vowel and p.name != "N":
            assert i + 1 < len(out) and out[i + 1].is_vowel, out


def test_apply_accent_strength_counts_words():
    words = [parse_word(w) for w in (THIN, VIVID, MILK, LITTLE, CAT, STRENGTHS, FISH, SIT, QUICK, CAT)]
    rng = np.random.default_rng(0)
    same, count = apply_accent(words, "native", 1.0, rng)
    assert count == 0 and same == words
    for strength, expected in ((0.01, 1), (0.3, 3), (0.55, 6), (1.0, 10)):
        out, count = apply_accent(words, "zh", strength, np.random.default_rng(1))
        assert count == expected
        assert sum(a != b for a, b in zip(out, words)) == expected
    with pytest.raises(ValueError):
        apply_accent(words, "fr", 0.5, rng)


def test_apply_accent_chooses_among_the_words_the_rules_change():
    r"""Japanese leaves "on", "me" and "dawn" as they are: they are never drawn, and never counted."""
    unchanged = [parse_word(w) for w in ([",0", "n"], ["m", "'i:"], ["d", "'O:", "n"])]
    assert all(japanese(word, np.random.default_rng(0)) == word for word in unchanged)
    words = [parse_word(w) for w in (THIN, [",0", "n"], VIVID, ["m", "'i:"], MILK, ["d", "'O:", "n"], CAT, SIT, FISH)]
    for seed in range(20):
        for strength, expected in ((0.01, 1), (0.3, 3), (0.6, 5), (0.7, 6), (0.8, 6), (1.0, 6)):  # 6 can change
            out, count = apply_accent(words, "ja", strength, np.random.default_rng(seed))
            assert count == expected == sum(a != b for a, b in zip(out, words)), (seed, strength)
            assert [out[i] for i in (1, 3, 5)] == [words[i] for i in (1, 3, 5)]
    out, count = apply_accent(unchanged, "ja", 1.0, np.random.default_rng(0))
    assert count == 0 and out == unchanged  # nothing to accent: the score says native
    # Mandarin tones are drawn: "on" with its own stress drawn is unchanged, and then not counted
    for seed in range(40):
        out, count = apply_accent([parse_word([",0", "n"]), parse_word(THIN)], "zh", 1.0, np.random.default_rng(seed))
        assert count == sum(a != b for a, b in zip(out, [parse_word([",0", "n"]), parse_word(THIN)])) >= 1


def test_score_scale():
    assert score_of(0, 9) == 5.0
    assert score_of(9, 9) == 1.0
    assert score_of(3, 9) == pytest.approx(5 - 4 / 3)


def test_sentences_deterministic_and_rich():
    a = SentenceGenerator(np.random.default_rng(7)).unique(300)
    b = SentenceGenerator(np.random.default_rng(7)).unique(300)
    assert a == b and len(set(a)) == 300
    lengths = [len(s.split()) for s in a]
    assert 8.5 <= np.mean(lengths) <= 9.5 and min(lengths) >= 8
    text = " ".join(a).lower()
    for pattern in ("th", "v", "r", "l", "ed ", "st", "str"):
        assert text.count(pattern) > 40, pattern
    assert transcript("Did Ruth grab the thin vase?") == "DID RUTH GRAB THE THIN VASE"
    assert final_punctuation("Did Ruth grab it?") == "?" and final_punctuation("Ruth did.") == "."


def test_config_checks():
    with pytest.raises(ConfigError):
        SynthConfig(num_sentences=0)
    with pytest.raises(ConfigError, match=r"^synth: seed must be >= 0, got -1$"):  # named num_sentences too
        SynthConfig(seed=-1)
    with pytest.raises(ConfigError, match=r"test_speakers must be <= 10000 \(speakers beyond a set's sentences read "
                                          r"none\), got 1000000000000"):
        SynthConfig(test_speakers=10**12)  # drew personas for hours
    assert SynthConfig(num_sentences=3, train_speakers=10_000).train_speakers == 10_000  # a shortfall: a note
    with pytest.raises(ConfigError):
        SynthConfig(test_fraction=1.5)
    with pytest.raises(ConfigError):
        SynthConfig(language="fr")
    with pytest.raises(ConfigError):
        SynthConfig.from_dict({"num_sentence": 3})
    for noise in (-1.0, float("nan"), float("inf")):  # nan wrote all-zero audio, inf noise alone (exit 0)
        with pytest.raises(ConfigError, match="noise_std must be a finite number >= 0"):
            SynthConfig(noise_std=noise)
    with pytest.raises(ConfigError, match=r"noise_std must be <= 8192 \(int16 units: a noise floor of -12 dBFS; louder "
                                          r"drowns the speech and clips at 32767\), got 1e\+09"):
        SynthConfig(noise_std=1e9)  # full-scale noise, 99.996% of the samples clipped, exit 0
    assert SynthConfig(noise_std=8192).noise_std == 8192
    assert SynthConfig.from_dict(SynthConfig(seed=3).to_dict()) == SynthConfig(seed=3)


def test_a_set_with_fewer_speakers_than_asked_is_named():
    r"""20 sentences gave 4 of the 8 test speakers (and 2 of 4 dev ones) without a word."""
    from flowaccent.synth.plan import plan_corpus, speaker_shortfall

    config = SynthConfig(num_sentences=20)
    assert speaker_shortfall(plan_corpus(config), config) == [
        "dev_native has 2 of the 4 dev speakers (its 2 sentences go round them); give more --num-sentences or "
        "--dev-fraction",
        *(f"{name} has 4 of the 8 test speakers (its 4 sentences go round them); give more --num-sentences or "
          "--test-fraction" for name in ("test_native", "test_zh", "test_ja"))]
    assert speaker_shortfall(plan_corpus(SynthConfig()), SynthConfig()) == []


def test_plan_splits_and_speakers():
    config = SynthConfig(num_sentences=100, seed=4)
    plan = plan_corpus(config)
    assert plan == plan_corpus(config)
    by_dir: dict[str, list] = {name: [] for name in SETS}
    for job in plan.jobs:
        by_dir[job.data_dir].append(job)
        for utt in job.utts:
            assert utt.utt.startswith(job.speaker + "-")
            assert utt.accent == SETS[job.data_dir]
            assert (utt.strength == 0) == (utt.accent == "native")
    sentences = {name: {u.sentence for j in jobs for u in j.utts} for name, jobs in by_dir.items()}
    assert not sentences["train_native"] & sentences["test_native"]
    assert not sentences["train_native"] & sentences["dev_native"]
    assert sentences["test_native"] == sentences["test_zh"] == sentences["test_ja"]
    assert sentences["train_zh"] <= sentences["train_native"]
    assert len({u.utt for j in plan.jobs for u in j.utts}) == plan.num_utts == 100 + 50 + 10 + 3 * 20

    def voices(name):
        return {(j.persona.tag, j.persona.variant) for j in by_dir[name]}

    train_tags = {tag for tag, _ in voices("train_native")}
    assert not train_tags & {tag for tag, _ in voices("test_native") | voices("dev_native")}
    assert {v for _, v in voices("train_native")} <= set(sum(TRAIN_VARIANTS.values(), ()))
    assert {v for _, v in voices("test_native")} <= set(sum(HELDOUT_VARIANTS.values(), ()))
    assert voices("test_native") == voices("test_zh") == voices("test_ja")
    assert {j.persona.gender for j in by_dir["test_native"]} == {"m", "f"}


def test_plan_strengths_balanced_within_speakers():
    plan = plan_corpus(SynthConfig(num_sentences=200, seed=1))
    for job in plan.jobs:
        if job.data_dir in ("test_zh", "test_ja") and len(job.utts) >= 4:
            strengths = sorted(u.strength for u in job.utts)
            assert strengths[0] < 0.4 and strengths[-1] > 0.7, strengths
    assert all(0.1 <= s <= 1.0 for s in plan.speaker_strength.values())
