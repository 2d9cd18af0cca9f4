r"""espeak-ng 1.52 through ``espeakng-loader``, driven by ctypes.

espeak-ng is GPL-3.0+: it is loaded at run time from the ``espeakng-loader``
wheel (the optional extra ``flowaccent[demo]``) and never vendored. Its
synthesiser is a process-global C library, so one process holds one
:class:`Espeak`; run several processes, not threads, for parallelism.

Pitfalls handled here (measured with 1.52):

- voices are matched by *file* name: en-gb lives in ``gmw/en`` (:data:`VOICE_FILES`);
- rate and pitch must be set *after* the voice, which resets them;
- ``espeak_ng_SetRandSeed`` is called before every utterance (without it about one
  file in six differs between runs, DESIGN.md section 5);
- even with it, samples depend on what the process spoke before: the pitch-flutter
  phase and the gain control of ``wavegen.c`` are C statics that nothing resets
  (the same utterance spoken twice in a row differs by tens of samples), and breath
  noise draws on libc ``rand()``; a reproducible corpus therefore renders each job
  in a fresh process (:mod:`flowaccent.synth.render`);
- ``espeak_TextToPhonemes`` ignores ``[[...]]``: phonemize plain text only;
- ``espeak_TextToPhonemes`` dereferences NULL before a voice is set: the
  constructor sets en-gb.

Example:
    >>> tts = Espeak.get()  # doctest: +SKIP
    >>> words = tts.phonemize("The thin rabbit.")  # doctest: +SKIP
    >>> tts.set_voice("en-gb", variant="m3", rate_wpm=170, pitch=50)  # doctest: +SKIP
    >>> samples = tts.speak_phonemes(words, seed=1)  # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator

import numpy as np

from flowaccent.errors import FlowAccentError

#: Language -> espeak-ng 1.52 voice file (voices are matched by file name).
VOICE_FILES = {"en-gb": "gmw/en", "en-us": "gmw/en-US"}

#: ``espeak_AUDIO_OUTPUT``: synchronous, samples delivered to the synth callback.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
#: ``espeak_Initialize`` option ``espeakINITIALIZE_PHONEME_EVENTS``: a phoneme event per phoneme spoken (the samples
#: are the same without it: tested).
_PHONEME_EVENTS = 0x1
#: ``espeak_EVENT_TYPE``: the end of an event list, a phoneme.
_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7
#: ``espeak_Synth`` flags: UTF-8 text, ``[[...]]`` phoneme input, pause at the end.
_CHARS_UTF8, _PHONEMES, _ENDPAUSE = 0x1, 0x100, 0x1000
#: ``espeak_POSITION_TYPE`` POS_CHARACTER.
_POS_CHARACTER = 1
#: ``espeak_PARAMETER`` ids.
_RATE, _PITCH, _RANGE = 1, 3, 4
#: ``espeak_TextToPhonemes`` phoneme mode: ASCII names, ``|`` between phonemes.
_PHONEME_MODE = ord("|") << 8


class _Event(ctypes.Structure):
    r"""``espeak_EVENT`` of ``speak_lib.h`` (1.52); ``id`` is the union's ``char string[8]``, a phoneme's name."""

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class EspeakMissingError(FlowAccentError):
    r"""``espeakng-loader`` (the ``demo`` extra) is not installed."""


class EspeakError(FlowAccentError):
    r"""espeak-ng failed: no library, unknown voice, failed synthesis."""


class Espeak:
    r"""The process-wide espeak-ng synthesiser (use :meth:`get`, not the constructor)."""

    _instance: Espeak | None = None
    _pid: int = -1

    def __init__(self) -> None:
        loader = require_espeak()
        try:
            lib = ctypes.CDLL(loader.get_library_path())
            data = loader.get_data_path()
        except (OSError, RuntimeError) as error:
            raise EspeakError(f"cannot load libespeak-ng from espeakng-loader: {error}") from None
        _declare(lib)
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), _PHONEME_EVENTS)
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed with data path '{data}'")
        self.lib = lib
        self.sample_rate: int = rate
        self._chunks: list[bytes] = []
        #: The phonemes of the last utterance spoken, in order: ``(name, first sample)``, the name as espeak wrote
        #: it (stress marks included; ``_:``, ``_`` pauses).
        self.phonemes: list[tuple[str, int]] = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: C holds a raw pointer
        lib.espeak_SetSynthCallback(self._callback)
        self.set_voice("en-gb")  # without a voice espeak_TextToPhonemes dereferences NULL

    @classmethod
    def get(cls) -> Espeak:
        r"""Returns this process's synthesiser, initialising espeak-ng on first use."""
        if cls._instance is None or cls._pid != os.getpid():
            cls._instance, cls._pid = cls(), os.getpid()
        return cls._instance

    def set_voice(
        self, language: str, variant: str = "", rate_wpm: int = 175, pitch: int = 50, pitch_range: int = 50
    ) -> None:
        r"""Chooses the voice, then its rate and pitch (the voice resets them).

        Arguments:
            language: a key of :data:`VOICE_FILES` (``"en-gb"``).
            variant: a voice variant of ``espeak-ng-data/voices/!v`` (``"m3"``, ``"f2"``) or ``""``.
            rate_wpm: speaking rate in words per minute (espeak: 80-450).
            pitch: base pitch, 0-100 (espeak's default 50).
            pitch_range: pitch range, 0-100 (espeak's default 50; 0 is monotone).
        """
        if language not in VOICE_FILES:
            raise EspeakError(f"unknown language '{language}'; known: {', '.join(VOICE_FILES)}")
        name = VOICE_FILES[language] + (f"+{variant}" if variant else "")
        if self.lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise EspeakError(f"espeak-ng has no voice '{name}'")
        for parameter, value in ((_RATE, rate_wpm), (_PITCH, pitch), (_RANGE, pitch_range)):
            if self.lib.espeak_SetParameter(parameter, int(value), 0) != 0:
                raise EspeakError(f"espeak_SetParameter({parameter}, {value}) failed for voice '{name}'")

    def phonemize(self, text: str) -> list[list[str]]:
        r"""Returns the phonemes of ``text`` with the current voice's language.

        Returns:
            one list per word of espeak phoneme names, stress marks attached to
            the vowel they precede (``[["D", "@"], ["T", "'I", "n"]]``).
        """
        buffer = ctypes.c_char_p(text.encode())
        clauses = []
        while buffer.value:  # one call per clause; espeak advances the pointer, NULL at the end
            result = self.lib.espeak_TextToPhonemes(ctypes.byref(buffer), _CHARS_UTF8, _PHONEME_MODE)
            if result is None:
                break
            clauses.append(result.decode())
        return [word.split("|") for word in " ".join(clauses).split()]

    def speak_phonemes(self, words: list[list[str]], punctuation: str = ".", seed: int = 0) -> np.ndarray:
        r"""Speaks espeak phoneme names with the current voice.

        Arguments:
            words: phoneme names per word, as :meth:`phonemize` returns them.
            punctuation: the clause end (``"."`` or ``"?"``), which sets the intonation.
            seed: espeak's random seed; the same seed gives the same samples.

        Returns:
            int16 samples ``(N,)`` at :attr:`sample_rate`.
        """
        text = "[[" + " ".join("|".join(word) for word in words) + "]]" + punctuation
        return self._synth(text, _CHARS_UTF8 | _PHONEMES | _ENDPAUSE, seed)

    def speak_text(self, text: str, seed: int = 0) -> np.ndarray:
        r"""Speaks plain text with the current voice; int16 samples ``(N,)``."""
        return self._synth(text, _CHARS_UTF8 | _ENDPAUSE, seed)

    def _synth(self, text: str, flags: int, seed: int) -> np.ndarray:
        data = text.encode()
        self._chunks, self.phonemes = [], []
        self.lib.espeak_ng_SetRandSeed(int(seed) & 0x7FFFFFFF)
        status = self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, flags, None, None)
        if status != 0:
            raise EspeakError(f"espeak_Synth failed (status {status}) on {text!r}")
        samples = np.frombuffer(b"".join(self._chunks), dtype=np.int16).copy()
        self._chunks = []
        return samples

    def _collect(self, wav, num_samples: int, events) -> int:
        if num_samples > 0 and wav:
            self._chunks.append(ctypes.string_at(wav, num_samples * 2))
        for event in _events(events):
            if event.type == _EVENT_PHONEME:
                self.phonemes.append((event.id.decode(), event.sample))
        return 0  # 0: continue synthesis


def _events(events) -> Iterator[_Event]:
    r"""The events of a callback's list (NULL: none), up to the one that ends it."""
    i = 0
    while events and events[i].type != _EVENT_LIST_TERMINATED:
        yield events[i]
        i += 1


def require_espeak():
    r"""Imports ``espeakng_loader`` or raises one clear line saying what to install."""
    try:
        import espeakng_loader
    except ImportError:
        raise EspeakMissingError(
            "the demo corpus needs espeak-ng from the package espeakng-loader; "
            "install flowaccent[demo] (pip install 'flowaccent[demo]')"
        ) from None
    return espeakng_loader


def _declare(lib: ctypes.CDLL) -> None:
    r"""Declares the C signatures used (``speak_lib.h`` / ``espeak_ng.h`` of 1.52)."""
    c = ctypes
    lib.espeak_Initialize.argtypes = [c.c_int, c.c_int, c.c_char_p, c.c_int]
    lib.espeak_Initialize.restype = c.c_int
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [c.c_char_p]
    lib.espeak_SetVoiceByName.restype = c.c_int
    lib.espeak_SetParameter.argtypes = [c.c_int, c.c_int, c.c_int]
    lib.espeak_SetParameter.restype = c.c_int
    lib.espeak_ng_SetRandSeed.argtypes = [c.c_long]
    lib.espeak_ng_SetRandSeed.restype = None
    lib.espeak_TextToPhonemes.argtypes = [c.POINTER(c.c_char_p), c.c_int, c.c_int]
    lib.espeak_TextToPhonemes.restype = c.c_char_p
    lib.espeak_Synth.argtypes = [
        c.c_char_p,
        c.c_size_t,
        c.c_uint,
        c.c_int,
        c.c_uint,
        c.c_uint,
        c.c_void_p,
        c.c_void_p,
    ]
    lib.espeak_Synth.restype = c.c_int
