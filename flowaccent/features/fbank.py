r"""Log mel filterbanks like Kaldi's ``compute-fbank-feats``, via kaldi-native-fbank."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from flowaccent.config import Config
from flowaccent.errors import ConfigError, FeatureError
from flowaccent.features.resample import kaldi_resample


@dataclasses.dataclass(frozen=True)
class FbankConfig(Config):
    r"""Options of ``compute-fbank-feats``; defaults are Kaldi's except where noted.

    Differences from Kaldi's defaults: ``num_mel_bins`` is 40 (Kaldi: 23) and
    ``dither`` is 0 (Kaldi: 1.0; kaldi-native-fbank: 3e-5) so features are
    reproducible bit for bit. ``sample_frequency`` (Kaldi ``--sample-frequency``) is the rate features are computed
    at; audio at another rate is resampled to it first.

    Attributes:
        sample_frequency: rate the features are computed at, in Hz (audio at another rate is resampled to it).
        num_mel_bins: triangular mel bins (Kaldi's default: 23).
        frame_length_ms: window length in milliseconds.
        frame_shift_ms: hop between frames in milliseconds.
        dither: scale of the Gaussian dither added to each sample (0: none; Kaldi's default: 1.0).
        preemph_coeff: pre-emphasis coefficient.
        remove_dc_offset: subtract each frame's mean before windowing.
        window_type: ``povey``, ``hamming``, ``hanning``, ``sine``, ``rectangular`` or ``blackman``.
        round_to_power_of_two: zero-pad each frame to a power of two for the FFT.
        snip_edges: only frames that fit in the signal (else frames depend on the shift alone, the
            signal reflected at its ends).
        low_freq: low cutoff of the mel bins, in Hz.
        high_freq: high cutoff of the mel bins, in Hz (<= 0: offset from Nyquist).
        use_energy: add the log energy as an extra first feature.
        energy_floor: floor on the energy (with ``use_energy``; needed without dither).
        raw_energy: energy before pre-emphasis and windowing.
        htk_compat: put the energy last.
        use_log_fbank: log filterbank energies (else linear).
        use_power: power spectrum (else magnitude).
        allow_upsample: compute features of audio at a lower rate than ``sample_frequency``, upsampled
            (Kaldi's ``--allow-upsample``, with Kaldi's resampler: :mod:`flowaccent.features.resample`).
            Off: an error, since the upsampled audio's band above its own Nyquist frequency is empty: the
            same utterances at 8 kHz scored AUC 0.99 against themselves at 16 kHz (ad hoc).
        allow_downsample: compute features of audio at a higher rate, downsampled (Kaldi's
            ``--allow-downsample``, with Kaldi's resampler; off by default there; on here: the band the
            features cover is kept whole, and the demo corpus is at 22.05 kHz).
    """

    sample_frequency: int = 16000
    num_mel_bins: int = 40
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    dither: float = 0.0
    preemph_coeff: float = 0.97
    remove_dc_offset: bool = True
    window_type: Literal["povey", "hamming", "hanning", "sine", "rectangular", "blackman"] = "povey"
    round_to_power_of_two: bool = True
    snip_edges: bool = True
    low_freq: float = 20.0
    high_freq: float = 0.0
    use_energy: bool = False
    energy_floor: float = 0.0
    raw_energy: bool = True
    htk_compat: bool = False
    use_log_fbank: bool = True
    use_power: bool = True
    allow_upsample: bool = False
    allow_downsample: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        for field in dataclasses.fields(self):  # nan passed every check below, inf overflowed int(): tracebacks
            value = getattr(self, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"fbank: {field.name} (--{field.name.replace('_', '-')}) must be a finite number, "
                                  f"got {value}")
        # past these: kaldi-native-fbank's int overflow, or minutes of one frame's FFT that no Ctrl-C or SIGTERM stopped
        for name, most in (("sample_frequency", 384_000), ("num_mel_bins", 1024), ("frame_length_ms", 1000.0),
                           ("frame_shift_ms", 1000.0)):
            value = getattr(self, name)
            if not 0 < value <= most:
                raise ConfigError(f"fbank: {name} (--{name.replace('_', '-')}) must be in (0, {most:g}], got {value:g}")
        if not 0 <= self.preemph_coeff <= 1:  # kaldi-native-fbank checks it only on the first frame: a traceback
            raise ConfigError(f"fbank: preemph_coeff must be in [0, 1] (Kaldi's: 0.97), got {self.preemph_coeff}")
        samples = window_and_shift(self.to_dict())
        if min(samples) < 1:  # a shift of 0 samples crashed kaldi-native-fbank (SIGFPE)
            raise ConfigError(
                f"fbank: frame_length_ms {self.frame_length_ms} and frame_shift_ms {self.frame_shift_ms} give "
                f"{samples[0]} and {samples[1]} samples at {self.sample_frequency} Hz; both are milliseconds "
                f"(Kaldi's: 25 and 10)"
            )
        try:  # kaldi-native-fbank checks the mel bins against the band and the FFT size when it is made
            import kaldi_native_fbank as knf

            knf.OnlineFbank(self.knf_options())
        except ValueError as error:
            if "num_mel_bins" not in str(error):
                raise ConfigError(f"fbank: {error} (sample_frequency {self.sample_frequency} Hz)") from None
            # kaldi-native-fbank's words blamed num_mel_bins alone, though a low --sample-frequency is as likely
            most = self._most_mel_bins()
            fit = f"at most {most} do; lower --num-mel-bins, or" if most else "none does:"
            raise ConfigError(
                f"fbank: {self.num_mel_bins} mel bins (--num-mel-bins) do not fit the band of --sample-frequency "
                f"{self.sample_frequency} Hz with these options: {fit} widen the band (--sample-frequency, "
                "--low-freq, --high-freq)"
            ) from None

    def _most_mel_bins(self) -> int:
        r"""The most mel bins kaldi-native-fbank takes with the other options as they are (0: none), by bisection:
        each bin must hold an FFT bin of the band, so fewer always fit where more do."""
        import kaldi_native_fbank as knf

        fits, too_many = 0, self.num_mel_bins
        while too_many - fits > 1:
            middle = (fits + too_many) // 2
            opts = self.knf_options()
            opts.mel_opts.num_bins = middle
            try:
                knf.OnlineFbank(opts)
                fits = middle
            except ValueError:
                too_many = middle
        return fits

    def knf_options(self):
        r"""Returns the equivalent ``kaldi_native_fbank.FbankOptions``."""
        import kaldi_native_fbank as knf

        opts = knf.FbankOptions()
        frame = opts.frame_opts
        frame.samp_freq = float(self.sample_frequency)
        for name in (
            "frame_length_ms",
            "frame_shift_ms",
            "dither",
            "preemph_coeff",
            "remove_dc_offset",
            "window_type",
            "round_to_power_of_two",
            "snip_edges",
        ):
            setattr(frame, name, getattr(self, name))
        opts.mel_opts.num_bins = self.num_mel_bins
        opts.mel_opts.low_freq = self.low_freq
        opts.mel_opts.high_freq = self.high_freq
        for name in ("use_energy", "energy_floor", "raw_energy", "htk_compat", "use_log_fbank", "use_power"):
            setattr(opts, name, getattr(self, name))
        return opts

    @property
    def dim(self) -> int:
        r"""Feature dimension: ``num_mel_bins`` (+1 with ``use_energy``)."""
        return self.num_mel_bins + int(self.use_energy)


def window_and_shift(options: Mapping[str, Any]) -> tuple[int, int]:
    r"""The window and the shift of fbank ``options`` (:meth:`FbankConfig.to_dict`, or a record of them) in samples
    at their ``sample_frequency``, as Kaldi rounds them (down)."""
    rate = float(options.get("sample_frequency", 16000))
    window, shift = (float(options.get(n, d)) for n, d in (("frame_length_ms", 25.0), ("frame_shift_ms", 10.0)))
    return int(rate * 0.001 * window), int(rate * 0.001 * shift)


def kaldi_num_frames(samples: int, options: Mapping[str, Any]) -> int:
    r"""Frames of ``samples`` audio samples under fbank ``options`` (as :func:`window_and_shift`), as Kaldi's
    ``NumFrames`` counts them: with ``snip_edges``, ``1 + (N - window) // shift`` (0 for audio shorter than a
    window), else ``(N + shift // 2) // shift``."""
    window, shift = window_and_shift(options)
    if options.get("snip_edges", True):
        return 0 if samples < window else 1 + (samples - window) // shift
    return (samples + shift // 2) // shift


def compute_fbank(wave: np.ndarray, sample_rate: int, num_mel_bins: int = 40, **kaldi_opts) -> np.ndarray:
    r"""Computes Kaldi log mel filterbank features of one waveform.

    Arguments:
        wave: samples ``(N,)`` at int16 scale (an int16 array, or floats in
            about -32768..32767; floats within [-1, 1] are refused because they
            would shift every log-mel by 2 ln 32768, and so are integers past
            int16's range, a 32-bit WAV's, by 2 ln 65536).
        sample_rate: rate of ``wave`` in Hz; resampled to ``sample_frequency``
            (16000 by default) when different.
        num_mel_bins: number of mel bins.
        kaldi_opts: other fields of :class:`FbankConfig`.

    Returns:
        float32 ``(T, num_mel_bins)`` with ``T = 1 + (N - 400) // 160`` at 16 kHz
        (``snip_edges``), ``(0, num_mel_bins)`` for audio shorter than one frame: numpy for a numpy or torch
        ``wave`` (kaldi-native-fbank computes it; no gradient flows back to a tensor).

    Example:
        >>> compute_fbank(np.zeros(16000, np.int16) + 100, 16000).shape
        (98, 40)
    """
    try:
        config = _config(num_mel_bins, **kaldi_opts)
    except TypeError as error:  # Kaldi's option names (frame_shift) said nothing of the names taken
        names = ", ".join(f.name for f in dataclasses.fields(FbankConfig))
        raise ConfigError(f"fbank: {error} (FbankConfig's fields: {names})") from None
    wave = np.asarray(wave.detach().cpu() if hasattr(wave, "detach") else wave)  # a tensor needing grad too
    if wave.dtype.kind == "f" and wave.size and 0.0 < float(np.max(np.abs(wave))) <= 1.0:
        raise FeatureError("fbank: samples look like floats in [-1, 1]; Kaldi expects int16 scale (multiply by 32768)")
    if wave.dtype.kind in "iu" and wave.size and int(np.max(np.abs(wave.astype(np.int64)))) > 32768:
        raise FeatureError(f"fbank: {wave.dtype} samples past int16's range (a 32-bit WAV's, as scipy reads it?); "
                           "Kaldi expects int16 scale (divide 32-bit samples by 65536)")
    return compute_fbank_with(config, wave, sample_rate)


def _config(num_mel_bins: Any, **kaldi_opts: Any) -> FbankConfig:
    r"""``FbankConfig(num_mel_bins=num_mel_bins, **kaldi_opts)``, made once per options: its checks (a
    kaldi-native-fbank made to check the mel bins among them) took ~0.1 ms, ~8% of a 1 s utterance's features."""
    opts = {"num_mel_bins": num_mel_bins, **kaldi_opts}
    key = tuple((name, type(value), value) for name, value in sorted(opts.items()))  # True is 1, 40.0 is 40: typed
    try:
        hash(key)
    except TypeError:  # a list given as an option: the config's own check says what is wrong
        return FbankConfig(**opts)
    return _cached_config(key)


@functools.lru_cache(maxsize=32)
def _cached_config(key: tuple) -> FbankConfig:
    return FbankConfig(**{name: value for name, _, value in key})


def compute_fbank_with(config: FbankConfig, wave: np.ndarray, sample_rate: int) -> np.ndarray:
    r"""Like :func:`compute_fbank` with a ready :class:`FbankConfig`; ``wave`` must be at int16 scale.

    Unlike :func:`compute_fbank` it does not second-guess quiet floats (the
    audio reader already brought them to int16 scale).
    """
    import kaldi_native_fbank as knf

    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise FeatureError(f"fbank: expected mono samples (N,), got shape {wave.shape}")
    if wave.size and not np.isfinite(wave).all():
        raise FeatureError("fbank: samples contain NaN or inf")
    whole = isinstance(sample_rate, (int, float, np.integer, np.floating)) and float(sample_rate).is_integer()
    if isinstance(sample_rate, bool) or not whole or sample_rate <= 0:  # 0 said 'pass --allow-upsample true'
        raise FeatureError(f"fbank: the audio's sample rate is a whole number of Hz > 0, got {sample_rate!r}")
    sample_rate = int(sample_rate)
    target = config.sample_frequency
    if (sample_rate < target and not config.allow_upsample) or (sample_rate > target and not config.allow_downsample):
        up = sample_rate < target
        raise FeatureError(
            f"fbank: audio at {sample_rate} Hz, features at sample_frequency {target} Hz: "
            + (f"upsampled, its band above {sample_rate // 2} Hz would be empty, unlike that of {target} Hz audio; "
               f"compute "
               f"features at --sample-frequency {sample_rate}, or pass --allow-upsample true" if up else
               "pass --allow-downsample true, or --sample-frequency " + str(sample_rate))
        )
    wave = kaldi_resample(wave.astype(np.float32, copy=False), sample_rate, target)
    fbank = knf.OnlineFbank(config.knf_options())
    fbank.accept_waveform(float(config.sample_frequency), wave)
    fbank.input_finished()
    n = fbank.num_frames_ready
    out = np.empty((n, config.dim), dtype=np.float32)
    for i in range(n):
        out[i] = fbank.get_frame(i)
    return out
