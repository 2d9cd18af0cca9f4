r"""Parsing one Kaldi object (after its key) safely: sizes checked before anything is read.

kaldiio's ``read_kaldi`` trusts the header (a corrupt one can ask for gigabytes), dispatches on
magic bytes to pickle and audio loaders, and fails with bare assertions. Here: binary float and
double matrices and vectors (``FM``, ``DM``, ``FV``, ``DV``) are parsed directly, compressed ones
(``CM``, ``CM2``, ``CM3``) are read whole after a size check and decompressed by kaldiio, text
matrices (``[ ... ]``) are read by lines, and anything else is a
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
    r"""A text matrix ``[ 1 2 \n 3 4 ]`` (``head``: its first bytes, read already), read by lines up to its ``]``
    and the line's end, carriage returns too (a file written on Windows). Float64, as written: cmvn stats are sums
    of ~1e4-1e6 frames (float32 moved them by ~4e-3), and kaldiio's reader took a matrix whose first number has no
    '.' (Kaldi writes 0.0 as ``0``) as integers and failed on the rest. One line, ``[ 1 2 3 ]``, is a matrix of one
    row, as Kaldi reads it into a matrix (kaldiio's is a vector, which every reader here refuses)."""
    text = head + fd.readline()
    while b"]" not in text:
        line = fd.readline()
        if not line:
            raise KaldiIOError(f"{where}: corrupt text matrix: the file ends before its ']'")
        text += line
    body, _, after = text.partition(b"]")
    if after.strip(b"\r\n"):
        raise KaldiIOError(f"{where}: corrupt text matrix: {after.rstrip()[:20]!r} after its ']' (a line's end "
                           f"expected)")
    body = body.lstrip()
    if body[:1] != b"[":
        raise KaldiIOError(f"{where}: corrupt text matrix: {body[:20]!r} before its '['")
    rows = [row.split() for row in body[1:].split(b"\n")]
    rows = [row for row in rows if row]
    widths = sorted({len(row) for row in rows})
    if len(widths) > 1:
        raise KaldiIOError(f"{where}: corrupt text matrix: rows of {widths[0]} and {widths[-1]} numbers")
    try:
        values = np.array([token.decode("ascii") for row in rows for token in row], dtype=np.float64)
    except (UnicodeDecodeError, ValueError) as error:
        raise KaldiIOError(f"{where}: corrupt text matrix: {error}") from None
    return values.reshape(len(rows), widths[0] if rows else 0)


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
