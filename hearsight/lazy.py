"""Lazy re-exports (PEP 562) shared by the package ``__init__`` files.

Importing ``data`` or ``engine`` must stay cheap (the synth workers import ``data``); a public
name is resolved, and its module imported, only when first used.
"""

from __future__ import annotations

import importlib


def attach(package: str, exports: dict[str, str]):
    """``(__getattr__, __all__)`` for ``package`` re-exporting ``name -> submodule``."""

    def __getattr__(name: str):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__, sorted(exports)
