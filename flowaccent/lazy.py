r"""A package's names imported on first use, so that importing one light module of it (its configs) does not
import the torch-heavy rest."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_names(package: str, names: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    r"""The package's module-level ``__getattr__`` and ``__dir__`` (PEP 562) for ``names``: ``{name: module}``, the
    module relative to ``package``.

    Example:
        >>> getattr_, dir_ = lazy_names("flowaccent.features", {"add_deltas": "deltas"})
        >>> getattr_("add_deltas").__name__, dir_()
        ('add_deltas', ['add_deltas'])
    """

    def __getattr__(name: str) -> object:
        if name not in names:
            raise AttributeError(f"module '{package}' has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{names[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__
