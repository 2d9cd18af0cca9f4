r"""Writing Kaldi arks (and their scp) atomically: nothing under the final names unless all went well."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import numpy as np

from flowaccent.data.atomic import temporary_name
from flowaccent.data.kaldi_text import has_space
from flowaccent.errors import KaldiIOError


class ArkWriter:
    r"""Writes ``ark`` (+ ``scp``) atomically: nothing appears under the final names unless all went well.

    Matrices are written as Kaldi binary float (``FM``) or double (``DM``)
    objects; integer arrays and keys with whitespace are refused. The scp
    points at the final ark path with byte offsets.

    Example:
        >>> with ArkWriter("raw.ark", "feats.scp") as w:  # doctest: +SKIP
        ...     w.write("spk1-utt1", feats)
    """

    def __init__(
        self, ark: str | Path, scp: str | Path | None = None, *, partial: Path | None = None,
        taken: Sequence[tuple[str, int]] = (),
    ):
        r"""``partial``: the temporary ark's name instead of :func:`~flowaccent.data.atomic.temporary_name`'s, kept
        on a failure (what a stopped ``fbank`` leaves for its ``--resume``); ``taken``: the keys and offsets of what
        that ark holds already (a stopped run's, cut after its last whole object): written after it."""
        self.ark, self.scp = Path(ark).absolute(), Path(scp) if scp else None
        self.partial = partial
        self._tmp_ark = partial or temporary_name(self.ark)
        self._lines = [f"{key} {self.ark}:{offset}\n" for key, offset in taken]
        self._keys = {key for key, _ in taken}
        self._fd: IO[bytes] | None = None

    @property
    def temporary(self) -> Path:
        r"""Where the ark is written until it is complete."""
        return self._tmp_ark

    def __enter__(self) -> ArkWriter:
        self._fd = open(self._tmp_ark, "ab" if self._lines else "wb")
        return self

    def flush(self) -> None:
        r"""Hands what was written to the operating system (a process killed after it leaves it in the file)."""
        assert self._fd is not None, "use ArkWriter as a context manager"
        self._fd.flush()

    def write(self, key: str, array: np.ndarray) -> None:
        r"""Appends one ``(T, D)`` matrix or ``(D,)`` vector of float32/float64 under ``key``."""
        from kaldiio.matio import write_array

        assert self._fd is not None, "use ArkWriter as a context manager"
        where = f"{self.ark}: utterance '{key}'"
        if not key or has_space(key):
            raise KaldiIOError(f"{where}: keys must be non-empty without whitespace")
        if key in self._keys:
            raise KaldiIOError(f"{where}: duplicate key")
        array = np.asarray(array)
        if array.dtype not in (np.float32, np.float64) or array.ndim not in (1, 2):
            raise KaldiIOError(
                f"{where}: Kaldi arks store float32/float64 vectors or matrices, "
                f"got {array.dtype} of shape {array.shape}"
            )
        self._fd.write(key.encode("utf-8") + b" ")
        offset = self._fd.tell()
        write_array(self._fd, np.ascontiguousarray(array))
        self._keys.add(key)
        self._lines.append(f"{key} {self.ark}:{offset}\n")

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._fd is not None
        self._fd.close()
        if exc_type is not None:
            if self.partial is not None:
                return
            with contextlib.suppress(FileNotFoundError):
                self._tmp_ark.unlink()
            return
        with open(self._tmp_ark, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(self._tmp_ark, self.ark)
        if self.scp is not None:
            from flowaccent.data.atomic import atomic_write_text

            atomic_write_text(self.scp, "".join(self._lines))

    @property
    def scp_lines(self) -> list[str]:
        r"""The scp lines written so far (``key /abs/path.ark:offset``)."""
        return list(self._lines)
