"""Every re-exported public name resolves to a real object in the module it names."""

import importlib

import pytest


@pytest.mark.parametrize("pkg", ["data", "models", "engine", "viz"])
def test_lazy_exports_resolve(pkg):
    mod = importlib.import_module(pkg)
    for name in mod.__all__:
        obj = getattr(mod, name)
        assert obj is getattr(importlib.import_module(f"{pkg}.{mod._EXPORTS[name]}"), name)


def test_unknown_name_raises():
    import data

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        data.nope  # noqa: B018
