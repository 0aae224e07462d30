"""Paths through a model's nnx state: which variables a checkpoint saves, and nesting /
flattening them as ``{("conv1", "kernel"): value}`` for orbax (flax 0.10-0.12 alike)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flax import nnx

from models.architectures import variable_type


def set_variable(v: Any, value: Any) -> None:
    """Set a state leaf's value (``set_value`` on flax 0.12+, ``.value`` before)."""
    if hasattr(v, "set_value"):
        v.set_value(value)
    else:
        v.value = value


def saved_variables(state: Mapping, prefix: tuple[str, ...] = ()) -> dict[tuple, Any]:
    """``{path: Variable}`` of everything worth saving (not RNG state, not intermediates)."""
    out = {}
    for key, v in state.items():
        path = (*prefix, str(key))
        kind = variable_type(v)
        if kind is not None:
            if not issubclass(kind, (nnx.RngState, nnx.Intermediate)):
                out[path] = v
        elif isinstance(v, Mapping):
            out.update(saved_variables(v, path))
    return out


def nest(flat: dict[tuple, Any]) -> dict:
    """``{path: value}`` back into nested dicts."""
    root: dict = {}
    for path, value in flat.items():
        node = root
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return root


def flatten(tree: Mapping, prefix: tuple[str, ...] = ()) -> dict[tuple, Any]:
    """Nested mappings as ``{path: leaf}`` (keys as strings)."""
    out = {}
    for key, v in tree.items():
        path = (*prefix, str(key))
        out.update(flatten(v, path) if isinstance(v, Mapping) else {path: v})
    return out
