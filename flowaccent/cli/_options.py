r"""CLI options generated from config dataclasses: ``--kebab-case`` overrides the field (the field's own
``--snake_case`` spelling, as in the YAML, is accepted too and not listed)."""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from collections.abc import Mapping
from typing import Any, Literal

from flowaccent.config import Config


def parse_bool(text: str) -> bool:
    r"""Kaldi-style booleans: ``true/false`` (also ``1/0``, ``yes/no``)."""
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def whole_number(note: str = ""):
    r"""An argparse ``type`` for a whole number >= 0, in ASCII digits (``str.isdigit`` takes ``²``, which ``int``
    refuses) or as a whole float (``1e3``, as :func:`integer` and the config options take it); ``note`` follows the
    bound in the error (``0: no t-SNE``)."""
    said = f"a whole number >= 0 ({note})" if note else "a whole number >= 0"

    def parse(text: str) -> int:
        try:
            value = integer(text) if text.strip().isascii() else -1
        except ValueError:
            value = -1
        if value < 0:
            raise argparse.ArgumentTypeError(f"expected {said}, got '{text}'")
        return value

    return parse


def add_config_options(
    parser: argparse.ArgumentParser,
    config: type[Config],
    skip: tuple[str, ...] = (),
    prefix: str = "",
    aliases: Mapping[str, str] | None = None,
) -> None:
    r"""Adds ``--[prefix.]field-name VALUE`` for every field of ``config`` (default: unchanged); ``aliases``
    (another tool's option name -> field) adds hidden other names of a field's option."""
    hints = typing.get_type_hints(config)
    docs = config.field_docs()
    summary = _plain((config.__doc__ or "").strip().splitlines()[0]) if config.__doc__ else None
    name = prefix or config.__name__.removesuffix("Config").lower()
    group = parser.add_argument_group(f"{name} options", summary)
    for field in dataclasses.fields(config):  # type: ignore[arg-type]
        if field.name in skip:
            continue
        hint = hints[field.name]
        kwargs: dict[str, Any] = {"default": None, "dest": f"cfg_{prefix}_{field.name}"}
        if typing.get_origin(hint) is Literal:
            kwargs["choices"] = typing.get_args(hint)
        elif hint is bool:
            kwargs["type"], kwargs["metavar"] = parse_bool, "true|false"
        elif hint in (int, float, str):
            kwargs["type"], kwargs["metavar"] = integer if hint is int else hint, hint.__name__.upper()
        else:
            continue
        default = field.default
        default_text = str(default).lower() if isinstance(default, bool) else (default if default != "" else "''")
        sentence = _first_sentence(docs.get(field.name, ""))
        stated = "(default:" in sentence  # a default the docs word themselves ('native' if the model has it...)
        kwargs["help"] = (sentence if stated else f"{sentence} (default: {default_text})").lstrip()
        dotted = f"--{prefix}." if prefix else "--"
        other_names = [dotted + a for a, f in (aliases or {}).items() if f == field.name]  # listed in --help
        group.add_argument(dotted + field.name.replace("_", "-"), *other_names, **kwargs)
        if "_" in field.name:  # --train.batch_size, as the YAML spells it
            group.add_argument(dotted + field.name, **kwargs | {"help": argparse.SUPPRESS})


def integer(text: str) -> int:
    r"""An integer option's value, also written as a whole float (``16000.0``, ``1e4``): Kaldi's
    ``--sample-frequency`` is a float, and a conf file already reads it so. Else a ValueError, which argparse says
    as ``invalid int value``."""
    try:
        return int(text)
    except ValueError:
        value = float(text)
        if not value.is_integer():
            raise ValueError(text) from None
        return int(value)


integer.__name__ = "int"  # argparse's error names the type by it


def _plain(text: str) -> str:
    r"""Docstring markup as plain text: ````x```` -> ``x``, ``:class:`~a.B``` -> ``B``."""
    text = re.sub(r":\w+:`~?(?:[\w.]+\.)?(\w+)`", r"\1", text)
    return text.replace("``", "").replace("%", "%%")  # argparse formats help with %


def _first_sentence(text: str) -> str:
    r"""The field's first sentence (up to a full stop before a capital or a digit), as plain text."""
    return _plain(re.split(r"(?<=\.)\s+(?=[A-Z0-9])", text, maxsplit=1)[0])


def given_options(config: type[Config], args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    r"""The fields of ``config`` set on the command line (by :func:`add_config_options`)."""
    values = {}
    for field in dataclasses.fields(config):  # type: ignore[arg-type]
        value = getattr(args, f"cfg_{prefix}_{field.name}", None)
        if value is not None:
            values[field.name] = value
    return values


def config_from_args(config: type[Config], args: argparse.Namespace) -> Any:
    r"""Builds ``config`` from its defaults and the options given on the command line; its errors name each field
    with its option (``m_max (--m-max) must be > 1``: the field alone named no option of the command)."""
    from flowaccent.errors import ConfigError

    try:
        return config.from_dict(given_options(config, args), "command line")
    except ConfigError as error:
        raise ConfigError(with_options(str(error), config)) from None


def with_options(message: str, config: type[Config]) -> str:
    r"""``message`` with each of ``config``'s field names in it followed by its option, once (not where the option
    is named already, nor inside one: ``--target``)."""
    for name in sorted((f.name for f in dataclasses.fields(config)), key=len, reverse=True):
        flag = f"--{name.replace('_', '-')}"
        message = re.sub(rf"(?<![-\w]){re.escape(name)}(?![\w-])(?! \(--)", f"{name} ({flag})", message, count=1)
    return message
