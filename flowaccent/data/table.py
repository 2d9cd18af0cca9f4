r"""One Kaldi table (``key value`` lines, as Kaldi defines them): read with every line checked, written sorted in C
(byte) order and atomically; ``spk2utt`` from ``utt2spk``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from flowaccent.data.atomic import atomic_write_text
from flowaccent.data.kaldi_text import KALDI_SPACE, fields, has_space
from flowaccent.errors import DataDirError


class DuplicateKeyError(DataDirError):
    r"""A key on two lines of a table: ``where`` (``path:line``), the ``key``, the ``first`` line that holds it."""

    def __init__(self, where: str, key: str, first: int):
        self.where, self.key, self.first = where, key, first
        super().__init__(f"{self.said}: keep one of the two lines")

    @property
    def said(self) -> str:
        r"""What is wrong, without what to do."""
        return f"{self.where}: duplicate key '{self.key}' (line {self.first} too)"


def read_table(
    path: str | Path, allow_empty_value: bool = False, any_text: bool = False, *, shared: dict[str, str] | None = None,
    share_values: bool = False, any_order: bool = False,
) -> dict[str, str]:
    r"""Reads a Kaldi table ``key value`` into an insertion-ordered dict.

    Lines end at ``\n`` only, as in Kaldi (a ``\r`` before it is dropped: CRLF files read as LF
    ones). Raises :class:`DataDirError` naming the file and line for a missing file, bytes that
    are not UTF-8 (with ``any_text``, in values they are replaced instead: transcripts in Latin-1),
    a byte-order mark, a line without a value, a duplicate key, or keys not sorted in C order.

    ``shared``: strings read before (each mapped to itself, e.g. by the tables of the same data dir read
    before): a key equal to one is kept as that one, a new key is added to it; with ``share_values`` the values
    too (ids, counts: ``utt2spk``'s speakers). A data dir's tables then hold each utterance id once, and each
    speaker once, not once per line of each table (the four tables ``train`` reads of 200k utterances: 63 MB, not
    99 MB). ``any_order``: keys in any order are taken (the dict then holds them in the file's order).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataDirError(f"{path}: no such file") from None
    except OSError as error:
        raise DataDirError(f"{path}: cannot read: {error}") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raise DataDirError(f"{path}:1: starts with a UTF-8 byte-order mark (BOM); save the file without it")
    table: dict[str, str] = {}
    previous = ""
    for number, line in enumerate(_lines(raw, any_text, path), 1):
        if line.endswith("\r"):
            line = line[:-1]
        parts = fields(line, maxsplit=1)
        if not parts:
            raise DataDirError(f"{path}:{number}: empty line (Kaldi's tables have none: remove it)")
        if line[0] in KALDI_SPACE:
            raise DataDirError(f"{path}:{number}: line starts with whitespace (empty key)")
        key = parts[0] if shared is None else shared.setdefault(parts[0], parts[0])
        value = parts[1] if len(parts) == 2 else ""
        if share_values and shared is not None:
            value = shared.setdefault(value, value)
        if not value and not allow_empty_value:
            raise DataDirError(f"{path}:{number}: key '{key}' has no value")
        if key in table:
            raise DuplicateKeyError(f"{path}:{number}", key, list(table).index(key) + 1)  # a line a key up to here
        if key < previous and not any_order:  # code points compare as UTF-8 bytes: C order
            raise DataDirError(
                f"{path}:{number}: not sorted in C order ('{key}' after '{previous}'); sort with LC_ALL=C sort"
            )
        table[key] = value
        previous = key
    return table


def _lines(raw: bytes, any_text: bool, path: Path) -> list[str]:
    r"""``raw``'s lines (split at ``\n`` only) as text: the whole decoded at once, else line by line (to name the
    line that is not UTF-8, or with ``any_text`` to replace its value's bytes)."""
    try:
        lines = raw.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        lines = [_decode(data, any_text, f"{path}:{number}") for number, data in enumerate(raw.split(b"\n"), 1)]
    if lines[-1] == "":
        lines.pop()
    return lines


def _decode(data: bytes, any_text: bool, where: str) -> str:
    r"""A line as text; with ``any_text`` a value that is not UTF-8 is replaced (its key must be)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        if any_text:
            key, rest = re.match(rb"(\S*)(.*)", data, re.S).groups()  # type: ignore[union-attr]
            try:
                return key.decode("utf-8") + rest.decode("utf-8", errors="replace")
            except UnicodeDecodeError:
                pass
        raise DataDirError(f"{where}: not UTF-8 ({error.reason} at byte {error.start})") from None


def write_table(path: str | Path, mapping: Mapping[str, object]) -> None:
    r"""Writes ``key value`` lines sorted in C order, atomically.

    Values are written with ``str()``; lists and tuples are joined by spaces.
    Raises :class:`DataDirError` for an empty key or a key with whitespace, a value with a line break (it
    wrote a line the table's reader refused: ``key 'y' has no value``), or a ``path`` that is a folder (a data
    dir, not its table) or in a folder that does not exist.
    """
    if Path(path).is_dir():
        raise DataDirError(f"{path}: is a folder; give the table's file (a data dir's {Path(path) / 'spk2utt'}, say)")
    if not Path(path).parent.is_dir():  # else the error named the temporary file (.utt2spk.tmp.123)
        raise DataDirError(f"{path}: no such folder {Path(path).parent}")
    atomic_write_text(path, table_text(mapping, str(path)))


def table_text(mapping: Mapping[str, object], where: str) -> str:
    r"""The text :func:`write_table` writes for ``mapping`` (its errors naming ``where``)."""
    lines = []
    for key in sorted(mapping, key=c_order):
        check_key(key, where)
        value = mapping[key]
        if isinstance(value, (list, tuple)):
            value = " ".join(map(str, value))
        line = f"{key} {value}".rstrip()
        if "\n" in line or "\r" in line:  # the reader splits lines at \n and drops a \r before it
            raise DataDirError(f"{where}: the value of '{key}' holds a line break ({str(value)!r}); a table's value "
                               "is one line")
        lines.append(line + "\n")
    return "".join(lines)


def write_spk2utt(path: str | Path, utt2spk: Mapping[str, str]) -> None:
    r"""Writes ``spk2utt`` derived from ``utt2spk`` (Kaldi's ``utt2spk_to_spk2utt.pl``)."""
    write_table(path, spk2utt_of(utt2spk))


def spk2utt_of(utt2spk: Mapping[str, str]) -> dict[str, list[str]]:
    r"""Inverts ``utt2spk``: speaker -> its utterances in C order."""
    spk2utt: dict[str, list[str]] = {}
    for utt in sorted(utt2spk, key=c_order):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    return spk2utt


def check_key(key: str, where: str) -> None:
    r"""Raises :class:`DataDirError` unless ``key`` is a valid Kaldi key (non-empty, no whitespace)."""
    if not key or has_space(key):
        raise DataDirError(f"{where}: invalid key {key!r}: keys must be non-empty without whitespace")


def c_order(key: str) -> bytes:
    r"""Sort key matching ``LC_ALL=C sort``: the UTF-8 bytes."""
    return key.encode("utf-8")
