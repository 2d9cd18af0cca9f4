r"""Rendering one job of the plan: phonemize, apply the accent, speak, write WAV files.

espeak-ng keeps state across utterances that no API resets (its pitch-flutter
phase and automatic gain live in C statics), so the samples of an utterance
depend on what the process spoke before. A job (one speaker of one data dir) is
therefore always rendered from a fresh library in a fresh process, in plan
order: the bytes then depend on the plan only, not on ``nj`` or scheduling.
"""

from __future__ import annotations

import dataclasses
import wave
from pathlib import Path

import numpy as np

from flowaccent.synth.accents import apply_accent
from flowaccent.synth.canonical import canonical_segments
from flowaccent.synth.espeak import Espeak
from flowaccent.synth.phonemes import SILENCE, Phone, format_word, parse_word
from flowaccent.synth.plan import Job
from flowaccent.synth.text import final_punctuation


@dataclasses.dataclass(frozen=True)
class Rendered:
    r"""What was made of one planned utterance.

    Attributes:
        utt: utterance id.
        wav_path: the WAV file written.
        num_samples: its length in samples.
        num_words: words in the phoneme transcription.
        num_accented: words whose phonemes the accent changed (differ from the native reading).
        phones: the espeak phonemes spoken (words separated by spaces, phonemes by ``|``).
        segments: each phoneme spoken as espeak timed it, ``(start, duration, name)`` in seconds, the name without
            its stress mark, a pause ``sil`` (:func:`phone_segments`): the utterance's lines of ``phones.ctm``.
        canonical: the native reading's phonemes timed by those spoken
            (:func:`~flowaccent.synth.canonical.canonical_segments`): its lines of ``canonical.ctm``.
    """

    utt: str
    wav_path: Path
    num_samples: int
    num_words: int
    num_accented: int
    phones: str
    segments: tuple[tuple[float, float, str], ...] = ()
    canonical: tuple[tuple[float, float, str], ...] = ()


def render_job(job: Job, wav_root: Path, noise_std: float = 0.0) -> list[Rendered]:
    r"""Renders every utterance of ``job`` into ``wav_root/<speaker>/<utt>.wav``.

    Arguments:
        job: one speaker's planned utterances.
        wav_root: folder of the WAV files (created if needed).
        noise_std: standard deviation of the Gaussian noise floor added, in int16 units.

    Returns:
        one :class:`Rendered` per utterance, in plan order.
    """
    tts = Espeak.get()
    folder = Path(wav_root) / job.speaker
    folder.mkdir(parents=True, exist_ok=True)
    persona = job.persona
    tts.set_voice(job.language, persona.variant, persona.rate_wpm, persona.pitch, persona.pitch_range)
    out = []
    for plan in job.utts:
        words = [parse_word(tokens) for tokens in tts.phonemize(plan.sentence)]
        rng = np.random.default_rng(plan.seed)
        spoken, accented = apply_accent(words, plan.accent, plan.strength, rng)
        names = [format_word(word) for word in spoken]
        samples = tts.speak_phonemes(names, final_punctuation(plan.sentence), plan.seed)
        samples = add_noise_floor(samples, noise_std, np.random.default_rng([plan.seed, 1]))
        path = folder / f"{plan.utt}.wav"
        write_wav(path, samples, tts.sample_rate)
        phones = " ".join("|".join(word) for word in names)
        segments = phone_segments(tts.phonemes, len(samples), tts.sample_rate)
        out.append(Rendered(plan.utt, path, len(samples), len(words), accented, phones, segments,
                            canonical_segments(words, spoken, segments)))
    return out


def phone_segments(
    phonemes: list[tuple[str, int]], num_samples: int, sample_rate: int
) -> tuple[tuple[float, float, str], ...]:
    r"""``(start, duration, name)`` in seconds of each phoneme of ``phonemes`` (``(espeak name, first sample)``,
    :attr:`Espeak.phonemes`): each lasts up to the next one's first sample, the last up to ``num_samples``; a
    phoneme of no samples (espeak's ``_`` at the end) is left out. Names lose their stress mark (``'a`` is ``a``:
    its frames pooled with the unstressed vowel's); pauses are :data:`~flowaccent.synth.phonemes.SILENCE`. The
    samples before the first phoneme (0-54 ms in the demo corpus) are in none."""
    ends = [sample for _, sample in phonemes[1:]] + [num_samples]
    segments = []
    for (name, start), end in zip(phonemes, ends):
        if end > start:
            phone = SILENCE if name.startswith("_") else Phone.parse(name).name
            segments.append((start / sample_rate, (end - start) / sample_rate, phone))
    return tuple(segments)


def add_noise_floor(samples: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    r"""Adds rounded Gaussian noise to int16 samples ``(N,)``.

    espeak's pauses are digital silence: every filterbank bin of such a frame
    sits at the log floor, a point mass on which any density model's
    likelihood diverges. A faint noise floor (like any recording) avoids it.
    """
    if std <= 0:
        return samples
    noisy = samples.astype(np.float64) + np.round(rng.normal(0.0, std, size=samples.shape))
    return np.clip(noisy, -32768, 32767).astype(np.int16)


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    r"""Writes int16 mono samples ``(N,)`` as a 16-bit PCM WAV file."""
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(np.asarray(samples, dtype="<i2").tobytes())
