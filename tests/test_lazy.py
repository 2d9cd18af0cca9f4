r"""Packages whose names are imported on first use (flowaccent.lazy): every listed name resolves."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = ("flowaccent.features", "flowaccent.blurmask")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_listed_name_resolves_to_its_module_s_object(package):
    r"""A name mapped to the wrong module would fail only when a user first reached for it."""
    module = importlib.import_module(package)
    assert dir(module) == sorted(module.__all__) and module.__all__
    for name in module.__all__:
        value = getattr(module, name)
        assert value is getattr(importlib.import_module(f"{package}.{module._NAMES[name]}"), name)


def test_an_unknown_name_is_an_attribute_error():
    import flowaccent.blurmask

    with pytest.raises(AttributeError, match="module 'flowaccent.blurmask' has no attribute 'fit_mask'"):
        flowaccent.blurmask.fit_mask  # noqa: B018
    from flowaccent.blurmask import fit_blur_mask  # the import statement goes through __getattr__ too

    assert fit_blur_mask.__module__ == "flowaccent.blurmask.fit"
