r"""Parsing one Kaldi object (after its key) safely: sizes checked before anything is read.

kaldiio's ``read_kaldi`` trusts the header (a corrupt one can ask for gigabytes), dispatches on
magic bytes to pickle and audio loaders, and fails with bare assertions. Here: binary float and
double matrices and vectors (``FM``, ``DM``, ``FV``, ``DV``) are parsed directly, compressed ones
(``CM``, ``CM2``, ``CM3``) are read whole after a size check and decompressed by kaldiio, text
matrices (``[ ... ]``) go to kaldiio's text reader, and anything else is a
:class:`~flowaccent.errors.KaldiIOError` naming the byte offset and the problem.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
from typing import IO

import numpy as np

from flowaccent.errors import KaldiIOError

#: The largest object a non-seekable stream (a pipe) may announce: 4 GiB.
MAX_STREAM_BYTES = 1 << 32
_PLAIN = {"FM": ("<f4", 4, True), "DM": ("<f8", 8, True), "FV": ("<f4", 4, False), "DV": ("<f8", 8, False)}
_COMPRESSED = ("CM", "CM2", "CM3")


def read_object(fd: IO[bytes], where: str) -> np.ndarray:
    r"""Reads the object at the current position of ``fd``; a writable float array ``(R, C)`` or ``(D,)``."""
    start = _tell(fd)
    at = f" (object at byte {start})" if start is not None else ""
    head = fd.read(2)
    if head == b"\0B":
        return _binary(fd, f"{where}{at}", start)
    if not head:
        raise KaldiIOError(f"{where}: truncated ark: nothing where an object should start{at}")
    if head.lstrip()[:1] in (b"[", b""):
        return _text(head, fd, f"{where}{at}")
    raise KaldiIOError(f"{where}: not a Kaldi matrix{at}: starts with {head!r} (corrupt binary marker or offset?)")


def read_rows(fd: IO[bytes], where: str) -> int:
    r"""The rows of the matrix at the current position of ``fd``, a seekable file (Kaldi's ``feat-to-len``): a
    binary one's from its header, its data checked to be in the file but not read; a text one is read. ``fd`` is
    left anywhere. Raises :class:`KaldiIOError` as :func:`read_object` does, and for a vector."""
    start = fd.tell()
    if fd.read(2) != b"\0B":
        fd.seek(start)
        array = read_object(fd, where)
        if array.ndim != 2:
            raise KaldiIOError(f"{where} (object at byte {start}): a vector, not a matrix of features")
        return array.shape[0]
    where = f"{where} (object at byte {start})"
    token, rows, cols, body, _ = _header(fd, where)
    if token in ("FV", "DV"):
        raise KaldiIOError(f"{where}: a vector ({token}), not a matrix of features")
    left = _remaining(fd)
    if left is not None and body > left:
        raise KaldiIOError(f"{where}: truncated ark: the header says {token} {rows} x {cols} ({body} bytes) but only "
                           f"{left} bytes remain")
    return rows


def _header(fd: IO[bytes], where: str) -> tuple[str, int, int, int, bytes]:
    r"""``(token, rows, cols, bytes of data after the header, the header of a compressed object)`` of a binary
    object (after its ``\0B``): a compressed one's 16 bytes (its value range, then its sizes) are kept to decompress
    it; ``b""`` for the others."""
    token = _token(fd, where)
    if token in _PLAIN:
        size, is_matrix = _PLAIN[token][1:]
        rows = _int32(fd, where)
        cols = _int32(fd, where) if is_matrix else 1
        return token, rows, cols, rows * cols * size, b""
    if token in _COMPRESSED:
        header = _exactly(fd, 16, where, f"{token} header")
        _, _, rows, cols = struct.unpack("<ffii", header)
        if rows < 0 or cols < 0:
            raise KaldiIOError(f"{where}: corrupt {token} header: {rows} x {cols}")
        body = {"CM": cols * 8 + rows * cols, "CM2": 2 * rows * cols, "CM3": rows * cols}[token]
        return token, rows, cols, body, header
    raise KaldiIOError(
        f"{where}: corrupt type token {token!r} (expected FM, DM, FV, DV, CM, CM2 or CM3; "
        f"integer vectors and other objects are not features)"
    )


def _binary(fd: IO[bytes], where: str, start: int | None) -> np.ndarray:
    token, rows, cols, body, header = _header(fd, where)
    data = _exactly(fd, body, where, f"{token} {rows} x {cols}")
    if token in _COMPRESSED:
        from kaldiio.matio import read_matrix_or_vector

        blob = io.BytesIO(b"\0B" + token.encode() + b" " + header + data)
        try:
            return np.array(read_matrix_or_vector(blob), dtype=np.float32)
        except Exception as error:  # kaldiio's decompression of a damaged body
            raise KaldiIOError(f"{where}: corrupt {token} matrix: {type(error).__name__}: {error}") from None
    dtype, _, is_matrix = _PLAIN[token]
    array = np.frombuffer(data, dtype=dtype).copy()
    return array.reshape(rows, cols) if is_matrix else array


def _token(fd: IO[bytes], where: str) -> str:
    r"""The type token up to its space (at most 8 bytes)."""
    raw = b""
    while len(raw) < 8:
        c = fd.read(1)
        if not c:
            raise KaldiIOError(f"{where}: truncated ark: the file ends inside an object header")
        if c == b" ":
            return raw.decode("latin-1")
        raw += c
    raise KaldiIOError(f"{where}: corrupt type token starting {raw!r}")


def _int32(fd: IO[bytes], where: str) -> int:
    r"""Kaldi's ``\x04`` size marker and a little-endian int32 >= 0."""
    raw = fd.read(5)
    if len(raw) < 5:
        raise KaldiIOError(f"{where}: truncated ark: the file ends inside an object header")
    if raw[:1] != b"\x04":
        raise KaldiIOError(f"{where}: corrupt header: size marker {raw[:1]!r} instead of \\x04")
    value = struct.unpack("<i", raw[1:])[0]
    if value < 0:
        raise KaldiIOError(f"{where}: corrupt header: negative size {value}")
    return value


def _exactly(fd: IO[bytes], count: int, where: str, what: str) -> bytes:
    r"""``count`` bytes, after checking the stream can hold them; a short read is a truncation."""
    left = _remaining(fd)
    if (left is not None and count > left) or (left is None and count > MAX_STREAM_BYTES):
        room = f"only {left} bytes remain" if left is not None else "more than a stream may announce"
        raise KaldiIOError(f"{where}: truncated ark: the header says {what} ({count} bytes) but {room}")
    chunks, got = [], 0
    while got < count:
        chunk = fd.read(min(count - got, 1 << 26))
        if not chunk:
            raise KaldiIOError(f"{where}: truncated ark: the file ends inside this utterance ({what})")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _text(head: bytes, fd: IO[bytes], where: str) -> np.ndarray:
    r"""A text matrix ``[ 1 2 \n 3 4 ]``, parsed by kaldiio (its carriage returns left out: kaldiio's own reader
    failed on the lines of a file written on Windows)."""
    from kaldiio.matio import read_ascii_mat

    try:
        array = read_ascii_mat(_Prefixed(head, fd))
    except Exception as error:  # a bare AssertionError says nothing: what was expected, then
        said = str(error) or "not the '[ rows of numbers ]' of a Kaldi text matrix"
        raise KaldiIOError(f"{where}: corrupt text matrix: {type(error).__name__}: {said}") from None
    return np.array(array, dtype=np.float32)


class _Prefixed:
    r"""A read-only stream of ``head`` followed by ``fd`` (for text matrices after a peek), without its carriage
    returns."""

    def __init__(self, head: bytes, fd: IO[bytes]):
        self.head, self.fd = head, fd

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            return self._read(n).replace(b"\r", b"")
        out = b""
        while len(out) < n:  # kaldiio reads a byte at a time, and b"" is its end of file
            chunk = self._read(n - len(out))
            if not chunk:
                break
            out += chunk.replace(b"\r", b"")
        return out

    def _read(self, n: int) -> bytes:
        if self.head:
            out, self.head = self.head[:n] if n >= 0 else self.head, self.head[n:] if n >= 0 else b""
            return out + (self.fd.read(n - len(out)) if n < 0 or len(out) < n else b"")
        return self.fd.read(n)


def _tell(fd: IO[bytes]) -> int | None:
    try:
        return fd.tell()
    except (OSError, AttributeError, io.UnsupportedOperation):
        return None


def _remaining(fd: IO[bytes]) -> int | None:
    r"""Bytes left in a seekable file; None for a stream."""
    with contextlib.suppress(OSError, AttributeError, io.UnsupportedOperation, ValueError):
        if fd.seekable():
            if isinstance(fd, io.BytesIO):
                return len(fd.getbuffer()) - fd.tell()
            return os.fstat(fd.fileno()).st_size - fd.tell()
    return None
