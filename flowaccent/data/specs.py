r"""Data dirs named on the command line: ``DATA_DIR`` or ``NAME=DATA_DIR``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from flowaccent.data.datadir import DataDir, load_data_dir
from flowaccent.errors import ConfigError


def parse_data_specs(specs: Sequence[str]) -> list[tuple[str | None, Path]]:
    r"""``["path", "name=path"]`` -> ``[(None, path), (name, path)]``."""
    out = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        out.append((name, Path(path)) if sep and name else (None, Path(spec)))
    return out


def load_named_dirs(specs: Sequence[str], require: Iterable[str], command: str) -> dict[str, DataDir]:
    r"""Validated data dirs by name (``NAME=`` or the dir's name); two of one name are an error."""
    sets: dict[str, DataDir] = {}
    for name, path in parse_data_specs(specs):
        data = load_data_dir(path, require=tuple(require))
        name = name or data.name
        if name in sets:
            raise ConfigError(f"{command}: two data dirs are named '{name}'; name them with NAME=DATA_DIR")
        sets[name] = data
    return sets
