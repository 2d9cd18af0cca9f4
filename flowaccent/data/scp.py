r"""Kaldi's scp tables: ``key rxfile`` lines, an rxfile being ``path[:offset][range]`` or ``cmd |``; Kaldi's
inclusive ``[first:last]`` / ``[r1:r2,c1:c2]`` ranges as slices. Read by :mod:`flowaccent.data.kaldi_io`."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from flowaccent.data.kaldi_text import COUNT, fields
from flowaccent.errors import KaldiIOError

_RXFILE = re.compile(r"^(?P<path>.*?)(?::(?P<offset>\d+))?(?:\[(?P<range>[^\]]*)\])?$")


@dataclasses.dataclass(frozen=True)
class ScpEntry:
    r"""One line of an scp: ``key rxfile``; ``rxfile`` is ``path[:offset][range]`` or ``cmd |``."""

    key: str
    rxfile: str

    @property
    def is_pipe(self) -> bool:
        return self.rxfile.rstrip().endswith("|")

    def location(self) -> tuple[str, int | None, tuple[slice, ...] | None]:
        r"""``(path, byte offset or None, (row slice[, column slice]) or None)``."""
        rxfile = self.rxfile
        if not rxfile.endswith("]"):  # no range: _RXFILE's answer without its backtracking (2.2 -> 0.45 µs)
            path, colon, offset = rxfile.rpartition(":")
            return (path, int(offset), None) if colon and offset.isdecimal() else (rxfile, None, None)
        match = _RXFILE.match(rxfile)
        assert match is not None  # the pattern matches every string
        offset = int(match["offset"]) if match["offset"] is not None else None
        return match["path"], offset, _parse_range(match["range"], self.key)


def located(entry: ScpEntry, scp: Path | str) -> tuple[str, int | None, tuple[slice, ...] | None]:
    r"""``entry.location()``, a bad range's error naming the scp it is in (it named the utterance alone)."""
    try:
        return entry.location()
    except KaldiIOError as error:
        raise KaldiIOError(f"{scp}: {error}") from None


def _parse_range(text: str | None, key: str) -> tuple[slice, ...] | None:
    r"""Kaldi's ``[first:last]`` / ``[r1:r2,c1:c2]`` (inclusive) ranges as slices."""
    if text is None:
        return None
    slices = []
    for part in text.split(","):
        if part.strip() in ("", ":"):
            slices.append(slice(None))
            continue
        bounds = part.split(":")
        if len(bounds) != 2 or not all(COUNT.fullmatch(b.strip()) for b in bounds) or int(bounds[0]) > int(bounds[1]):
            raise KaldiIOError(f"utterance '{key}': bad range '[{text}]' (Kaldi's [first:last], first <= last)")
        slices.append(slice(int(bounds[0]), int(bounds[1]) + 1))
    return tuple(slices)


def read_scp(path: str | Path) -> list[ScpEntry]:
    r"""Reads an scp file into entries (checks: file exists, every line has a key and a value, unique keys)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").split("\n")  # at \n only, as Kaldi (not U+2028, U+0085...)
        if lines[-1] == "":
            lines.pop()
    except FileNotFoundError:
        raise KaldiIOError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise KaldiIOError(f"{path}: cannot read: {error}") from None
    entries, seen = [], set()
    for number, line in enumerate(lines, 1):
        parts = fields(line, maxsplit=1)
        if len(parts) != 2:
            raise KaldiIOError(f"{path}:{number}: expected 'key rxfile', got {line!r}")
        if parts[0] in seen:
            raise KaldiIOError(f"{path}:{number}: duplicate key '{parts[0]}'")
        seen.add(parts[0])
        entries.append(ScpEntry(parts[0], parts[1]))
    return entries
