r"""CLI options generated from config dataclasses: ``--kebab-case`` overrides the field."""

from __future__ import annotations

import argparse
import dataclasses
import typing
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


def add_config_options(
    parser: argparse.ArgumentParser, config: type[Config], skip: tuple[str, ...] = ()
) -> None:
    r"""Adds ``--field-name VALUE`` for every field of ``config`` (default: unchanged)."""
    hints = typing.get_type_hints(config)
    group = parser.add_argument_group(f"{config.__name__} fields")
    for field in dataclasses.fields(config):  # type: ignore[arg-type]
        if field.name in skip:
            continue
        hint = hints[field.name]
        kwargs: dict[str, Any] = {"default": None, "dest": f"cfg_{field.name}"}
        if typing.get_origin(hint) is Literal:
            kwargs["choices"] = typing.get_args(hint)
        elif hint is bool:
            kwargs["type"], kwargs["metavar"] = parse_bool, "true|false"
        elif hint in (int, float, str):
            kwargs["type"], kwargs["metavar"] = hint, hint.__name__.upper()
        else:
            continue
        default = field.default
        kwargs["help"] = f"default: {str(default).lower() if isinstance(default, bool) else default}"
        group.add_argument(f"--{field.name.replace('_', '-')}", **kwargs)


def config_from_args(config: type[Config], args: argparse.Namespace, base: dict | None = None) -> Any:
    r"""Builds ``config`` from ``base`` (e.g. YAML) with the options given on the command line."""
    values = dict(base or {})
    for field in dataclasses.fields(config):  # type: ignore[arg-type]
        value = getattr(args, f"cfg_{field.name}", None)
        if value is not None:
            values[field.name] = value
    return config.from_dict(values, "command line")
