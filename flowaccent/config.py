r"""Frozen dataclass configs: strict loading from dicts and YAML.

Every config of the toolkit is a frozen dataclass deriving from :class:`Config`.
``from_dict`` rejects unknown keys and wrong types with a
:class:`~flowaccent.errors.ConfigError` naming the field, so a typo in a YAML
file stops the command before any work starts.

Example:
    >>> @dataclasses.dataclass(frozen=True)
    ... class C(Config):
    ...     x: int = 1
    >>> C.from_dict({"x": 2}).to_dict()
    {'x': 2}
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import numbers
import re
import types
import typing
from typing import Any, Literal, TypeVar

from flowaccent.errors import ConfigError

T = TypeVar("T", bound="Config")
#: float32's largest finite number: a float setting past it overflows where it meets the model's tensors.
FLOAT32_MAX = 3.4028234663852886e38


class Config:
    r"""Mixin of ``to_dict`` / ``from_dict`` / ``replace`` for frozen dataclasses.

    A subclass's ``__post_init__`` calls ``super().__post_init__()`` first: it checks every field's type and
    choices as ``from_dict`` does, so a config built in Python is checked too (``ModelConfig(mask="rand")``
    built random masks, ``FeaturePipelineConfig(cmvn="speaker")`` applied no CMVN)."""

    def __post_init__(self) -> None:
        r"""Checks each field against its annotation (:func:`_check`), converting as ``from_dict`` does (an
        ``int`` to a ``float`` field's float, a list to a tuple, a dict to a nested config)."""
        where = type(self).__name__
        for name, hint in _hints(type(self)).items():
            value = getattr(self, name)
            checked = _check(hint, value, f"{where}.{name}")
            if checked is not value:
                object.__setattr__(self, name, checked)

    def to_dict(self) -> dict[str, Any]:
        r"""Returns the config as plain Python values (YAML/JSON-safe)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
        r"""Builds the config from ``data``, checking keys and types.

        Arguments:
            data: field values; missing fields take their defaults.
            where: a prefix for error messages (e.g. ``"conf.yaml: features"``).
        """
        where = where or cls.__name__
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(fields)}")
        hints = _hints(cls)
        values = {k: _check(hints[k], v, f"{where}.{k}") for k, v in data.items()}
        try:
            config = cls(**values)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{where}: {error}") from None
        return config

    @classmethod
    def field_docs(cls) -> dict[str, str]:
        r"""Each field's text in the class docstring's ``Attributes:`` section, joined into one line.

        Example:
            >>> from flowaccent.score.config import ScoreConfig
            >>> ScoreConfig.field_docs()["seed"]
            "seeds the latent sample (and the regressions' sample)."
        """
        docs: dict[str, str] = {}
        name = ""
        lines = (inspect.getdoc(cls) or "").splitlines()
        start = lines.index("Attributes:") + 1 if "Attributes:" in lines else len(lines)
        for line in lines[start:]:
            entry = re.match(r"^    (\w+): (.*)$", line)
            if entry:
                name = entry.group(1)
                docs[name] = entry.group(2).strip()
            elif line.startswith("        ") and name:
                docs[name] += " " + line.strip()
            elif line.strip():
                break
        return docs

    def check_seed(self, section: str) -> None:
        r"""Raises a :class:`ConfigError` unless ``seed`` is one the generators take (0 <= seed < 2**63)."""
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"{section}: seed must be in [0, 2**63), got {self.seed}")

    def check_ranges(self, section: str, ranges: tuple[tuple[str, float, bool], ...]) -> None:
        r"""Raises a :class:`ConfigError` naming the first field out of its range and its value.

        Arguments:
            section: the message's prefix (``train``).
            ranges: ``(field, low, strict)``: the field must be ``> low`` (strict) or ``>= low``.
        """
        for name, low, strict in ranges:
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ConfigError(f"{section}: {name} must be a finite number, got {value}")
            if value < low or (strict and value == low):
                raise ConfigError(f"{section}: {name} must be {'>' if strict else '>='} {low}, got {value}")
            if value > FLOAT32_MAX and not isinstance(value, int):  # Adam's step with lr 1e39: a traceback
                raise ConfigError(f"{section}: {name} must be at most {FLOAT32_MAX:.4g} (float32's largest, as the "
                                  f"model's numbers are), got {value:g}")

    @classmethod
    def expect(cls, value: Any, where: str) -> None:
        r"""Refuses a ``value`` given where a ``cls`` is wanted (a dict: ``'dict' object has no attribute ...``),
        naming ``where`` (``make_corpus``) and ``cls.from_dict``."""
        if not isinstance(value, cls):
            raise ConfigError(f"{where}: config is a {cls.__name__} ({cls.__name__}.from_dict(d) for a dict), got "
                              f"{type(value).__name__}")

    def replace(self: T, **changes: Any) -> T:
        r"""Returns a copy with ``changes`` applied, checked like ``from_dict``."""
        return type(self).from_dict({**self.to_dict(), **changes})


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    r"""The resolved annotations of ``cls``'s dataclass fields."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _check(hint: Any, value: Any, where: str) -> Any:
    r"""Returns ``value`` converted to ``hint`` or raises :class:`ConfigError`."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in typing.get_args(hint):
            choices = ", ".join(map(repr, typing.get_args(hint)))
            read = " (YAML reads off, no, on and yes as false and true)" if isinstance(value, bool) else ""
            raise ConfigError(f"{where}: {value!r} is not one of {choices}{read}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check(arg, value, where)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return tuple(_check(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint) and isinstance(hint, type) and issubclass(hint, Config):
        return value if isinstance(value, hint) else hint.from_dict(value, where)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, float) and value.is_integer():  # 3.0 and 1e4, whole: as the command line takes them
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value if type(value) is int else int(value)  # numpy's integers too
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return value if type(value) is float else float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value
