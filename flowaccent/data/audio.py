r"""Reading ``wav.scp`` entries: WAV files and ``cmd |`` pipes, at int16 scale.

WAV is read as Kaldi reads it (scipy, with Kaldi's handling of streamed and truncated files). What is not
RIFF/RF64 WAV (FLAC, NIST SPHERE, AIFF, Ogg, ... as ESPnet's ``format_wav_scp.sh`` or lhotse write them, by
path or from a pipe) is read with libsndfile (``soundfile``), which Kaldi cannot: FLAC and PCM give the same
int16-scale samples as the same audio in a WAV file."""

from __future__ import annotations

import io
import re
import sys
import warnings
from pathlib import Path

import numpy as np

from flowaccent.data.kaldi_io import run_pipe
from flowaccent.errors import AudioError


def read_wav(rxfile: str, where: str = "", channel: int = -1) -> tuple[np.ndarray, int]:
    r"""Reads one ``wav.scp`` value as Kaldi does: samples at int16 scale and the rate.

    Arguments:
        rxfile: an audio path or a shell command ending in ``|`` that writes audio to stdout: WAV, or a format
            libsndfile reads (FLAC, ...; see the module).
        where: ``"wav.scp: utterance 'x'"`` for messages.
        channel: channel to take; -1 requires mono (stricter than Kaldi's ``--channel=-1``, which warns and takes
            channel 0 of stereo audio: here a choice is asked for).

    Returns:
        ``(samples (N,) float32 at int16 scale, sample_rate)``. 8/24/32-bit PCM is
        rescaled to int16 scale, float audio (in [-1, 1]) is multiplied by 32768.
    """
    data, rate = read_audio(rxfile, where)
    return select_channel(data, channel, where or f"'{rxfile}'"), rate


def read_audio(rxfile: str, where: str = "") -> tuple[np.ndarray, int]:
    r"""Reads a ``wav.scp`` value as stored: ``((N,) or (N, C) samples of the file's type, rate)``: an audio
    file, a ``cmd |`` pipe, or ``archive:offset`` (a WAV object in an archive, as Kaldi's ``wav-copy`` writes it);
    WAV, or what libsndfile reads (the module).

    For cutting segments of a recording before choosing a channel (:func:`select_channel`). A file
    shorter than its header says is read as far as it goes, with a one-line warning naming it (as
    Kaldi warns); a streamed header's size (``sox ... -t wav - |`` cannot seek back to write it) is
    not a warning.
    """
    where = where or f"'{rxfile}'"
    source: str | io.BytesIO
    if rxfile.rstrip().endswith("|"):
        command = rxfile[: rxfile.rstrip().rfind("|")]
        try:
            source = io.BytesIO(run_pipe(command, where))
        except Exception as error:  # KaldiIOError from the pipe: same message, audio type
            raise AudioError(str(error)) from None
    else:
        ark = re.fullmatch(r"(.+):(\d+)", rxfile.strip())
        if not Path(rxfile).is_file() and ark and Path(ark.group(1)).is_file():  # Kaldi's wav-copy writes them
            source = io.BytesIO(_wav_in_ark(ark.group(1), int(ark.group(2)), where))
        elif Path(rxfile).is_dir():  # it said the file did not exist
            raise AudioError(f"{where}: '{rxfile}' is a directory, not an audio file")
        elif not Path(rxfile).is_file():
            relative = "" if Path(rxfile).is_absolute() else f" (relative to the current folder, {Path.cwd()})"
            raise AudioError(f"{where}: audio file '{rxfile}' does not exist{relative}")
        else:
            try:  # unreadable (permissions, an I/O error): this utterance's error, listed with the others
                with open(rxfile, "rb") as f:
                    head = f.read(4096)
                chunks = _chunks(head)  # a WAV with its data chunk further on, or streamed: read whole
                whole = chunks and (b"data" not in chunks or _stream_sizes(head))
                source = io.BytesIO(Path(rxfile).read_bytes()) if whole else rxfile
            except OSError as error:
                raise AudioError(f"{where}: audio file '{rxfile}': {error.strerror or error}") from None
    if isinstance(source, io.BytesIO):
        with source.getbuffer() as view:
            streamed, magic = _stream_sizes(view), bytes(view[:4])
        if streamed:
            source = io.BytesIO(_streamed(source.getvalue()))
    else:
        magic = head[:4]
    if not magic:
        what = "the command wrote nothing" if rxfile.rstrip().endswith("|") else "the file is empty"
        raise AudioError(f"{where}: '{rxfile.strip()}' holds no audio: {what}")
    if magic not in WAV_MAGIC:
        return _read_libsndfile(source, rxfile.strip(), where)
    from scipy.io import wavfile

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rate, data = wavfile.read(source)
    except Exception as error:  # scipy raises ValueError, EOFError, struct.error...
        raise AudioError(f"{where}: '{rxfile.strip()}' is not a readable WAV file ({error})") from None
    for warning in caught:  # scipy's own lines name neither file nor utterance
        expected = re.search(r"Reached EOF prematurely.*expected (\d+) bytes", str(warning.message))
        if expected and int(expected.group(1)) < STREAMED_SIZE:
            print(f"{where}: warning: '{rxfile.strip()}' ends before its header says: {len(data)} samples read, "
                  f"{int(expected.group(1))} bytes expected (truncated?)", file=sys.stderr)
    return data, int(rate)


#: The first 4 bytes of the WAV files scipy reads; anything else goes to libsndfile.
WAV_MAGIC = (b"RIFF", b"RIFX", b"RF64")

#: libsndfile's sample types read as integers (8-bit as int16 x 256, 24-bit as int32 x 256, as scipy reads WAV);
#: every other type (float, mu-law, Vorbis, ...) is read as float32 in [-1, 1].
_INTEGER_TYPES = {"PCM_S8": "int16", "PCM_U8": "int16", "PCM_16": "int16", "PCM_24": "int32", "PCM_32": "int32"}


def _read_libsndfile(source: str | io.BytesIO, rxfile: str, where: str) -> tuple[np.ndarray, int]:
    r"""A non-WAV ``wav.scp`` value (a path or a pipe's bytes) read with libsndfile: ``((N,) or (N, C), rate)``."""
    try:
        import soundfile
    except (ImportError, OSError) as error:  # OSError: the package is there, its libsndfile is not
        raise AudioError(f"{where}: '{rxfile}' is not a WAV file; other formats are read with the soundfile "
                         f"package, which did not load ({error})") from None
    try:
        with soundfile.SoundFile(source) as f:
            data = f.read(dtype=_INTEGER_TYPES.get(f.subtype, "float32"))
            rate = f.samplerate
    except Exception as error:  # soundfile.LibsndfileError, RuntimeError, TypeError from the format's decoder
        raise AudioError(f"{where}: '{rxfile}' is not a readable WAV file, nor audio libsndfile reads "
                         f"({_libsndfile_reason(error)})") from None
    return data, int(rate)


def _libsndfile_reason(error: Exception) -> str:
    r"""libsndfile's reason without its ``Error opening <_io.BytesIO object at 0x..>:`` prefix."""
    return re.sub(r"^Error( opening .*?)?\s*:\s*", "", str(error).strip()) or type(error).__name__


#: Data sizes at least this large in a WAV header are placeholders of a streamed file (sox writes 0x7ffff000).
STREAMED_SIZE = 0x7FFFF000


def _wav_in_ark(path: str, offset: int, where: str) -> bytes:
    r"""The audio object at byte ``offset`` of the archive ``path`` (a ``wav.scp`` entry ``path:offset``): a WAV, as
    Kaldi's ``wav-copy`` writes them (and kaldiio by default), whose RIFF header's size says how far it goes; or
    kaldiio's ``write_function="soundfile"`` object (ESPnet's ``*.ark`` audio formats): ``AUDIO``, a byte ``n``,
    the length in ``n`` bytes (little-endian), then that many bytes of a file libsndfile reads (WAV, FLAC, ...)."""
    where_at = f"{where}: '{path}:{offset}'"
    with open(path, "rb") as f:
        f.seek(offset)
        head = f.read(8)
        if head[:5] == b"AUDIO" and len(head) > 5:
            f.seek(offset + 6)
            size = int.from_bytes(f.read(head[5]), "little")
            blob = f.read(size)
            if len(blob) < size or size == 0:
                raise AudioError(f"{where_at}: kaldiio's AUDIO object of {size} bytes, {len(blob)} there (a cut "
                                 f"archive?)")
            return blob
        if head[:4] != b"RIFF":
            raise AudioError(f"{where_at}: no WAV object at that offset, nor kaldiio's AUDIO one (corrupt archive or "
                             f"offset?)")
        size = int.from_bytes(head[4:8], "little")
        return head + f.read(size) if 0 < size < STREAMED_SIZE else head + f.read()  # a streamed one: to the end


def _chunks(raw) -> dict[bytes, int]:
    r"""Where the size field of each chunk of the WAV ``raw`` is, by chunk id, up to the ``data`` chunk ({} for
    bytes that are not a WAV)."""
    found: dict[bytes, int] = {}
    if bytes(raw[:4]) != b"RIFF" or bytes(raw[8:12]) != b"WAVE":
        return found
    pos = 12
    while pos + 8 <= len(raw):
        found.setdefault(bytes(raw[pos : pos + 4]), pos + 4)
        if bytes(raw[pos : pos + 4]) == b"data":
            break
        size = int.from_bytes(raw[pos + 4 : pos + 8], "little")
        pos += 8 + size + (size & 1)
    return found


#: RIFF and data sizes of a streamed WAV, as Kaldi's wave reader takes them ("values as observed in the wild": 0 and
#: 0xffffffff from ffmpeg writing to a pipe, 0x7ffff000 from sox), and 0xfffffffe, which kaldi_native_io adds.
_STREAM_RIFF, _STREAM_DATA = (0, 0xFFFFFFFF), (0, 0xFFFFFFFF, 0xFFFFFFFE, STREAMED_SIZE)


def _stream_sizes(raw) -> bool:
    r"""Whether the WAV ``raw`` gives its RIFF or data size as a streamed file's (:data:`_STREAM_DATA`), which
    Kaldi's wave reader reads to its end (scipy refused 0, and a partial last sample frame after 0xffffffff)."""
    at = _chunks(raw).get(b"data")
    return at is not None and (int.from_bytes(raw[4:8], "little") in _STREAM_RIFF
                               or int.from_bytes(raw[at : at + 4], "little") in _STREAM_DATA)


def _streamed(raw: bytes) -> bytes:
    r"""``raw`` with a streamed RIFF or data size replaced by :data:`STREAMED_SIZE`, which scipy reads to the end,
    and a last partial sample frame dropped (as Kaldi drops it)."""
    chunks = _chunks(raw)
    raw, at = bytearray(raw), chunks[b"data"]
    for where in (4, at):
        if int.from_bytes(raw[where : where + 4], "little") in _STREAM_DATA:
            raw[where : where + 4] = STREAMED_SIZE.to_bytes(4, "little")
    fmt = chunks.get(b"fmt ")
    block = int.from_bytes(raw[fmt + 16 : fmt + 18], "little") if fmt is not None else 0  # bytes per sample frame
    if block:
        del raw[len(raw) - (len(raw) - at - 4) % block :]
    return bytes(raw)


def select_channel(data: np.ndarray, channel: int, where: str) -> np.ndarray:
    r"""``(N,)`` float32 samples at int16 scale of ``channel`` of :func:`read_audio`'s ``data`` (-1: mono)."""
    return _to_int16_scale(_pick_channel(data, channel, where), where)


def _pick_channel(data: np.ndarray, channel: int, where: str) -> np.ndarray:
    if data.ndim == 1:
        if channel > 0:  # as Kaldi: channel 0 of mono audio is the audio
            raise AudioError(f"{where}: channel {channel} requested, but the audio has 1 channel (channels count from "
                             f"0; -1: the one of mono audio)")
        return data
    if channel < 0:
        if data.shape[1] == 1:
            return data[:, 0]
        raise AudioError(f"{where}: {data.shape[1]} channels; choose one with --channel")
    if channel >= data.shape[1]:
        raise AudioError(f"{where}: channel {channel} requested, but the audio has {data.shape[1]} channels (channels "
                         f"count from 0)")
    return data[:, channel]


#: Float WAV samples beyond this are not [-1, 1] audio with some overshoot but int-scale values (x 32768 again).
FLOAT_LIMIT = 256.0


def _to_int16_scale(data: np.ndarray, where: str) -> np.ndarray:
    kind, bits = data.dtype.kind, data.dtype.itemsize * 8
    if kind == "f":
        if data.size and np.nanmax(np.abs(data)) > FLOAT_LIMIT:
            raise AudioError(f"{where}: float WAV samples reach {np.nanmax(np.abs(data)):.0f}; float WAV holds "
                             f"[-1, 1] (these look like int16-scale values: write them as int16 instead)")
        out = data.astype(np.float32) * 32768.0
    elif kind == "u" and bits == 8:
        out = (data.astype(np.float32) - 128.0) * 256.0
    elif kind == "i":
        out = data.astype(np.float32) * float(2.0 ** (16 - bits))
    else:
        raise AudioError(f"{where}: unsupported sample type {data.dtype}")
    if out.size == 0:
        raise AudioError(f"{where}: the audio has no samples")
    if not np.isfinite(out).all():
        raise AudioError(f"{where}: the audio contains NaN or inf samples")
    return out
