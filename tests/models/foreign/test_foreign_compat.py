"""The bridges import with the torch installed here, and torch is left as it was."""

from __future__ import annotations

import importlib.util
import sys

import pytest

torch = pytest.importorskip("torch")
if importlib.util.find_spec("torchax") is None:  # a plain import fails on torch 2.13 (compat.py)
    pytest.skip("torchax is not installed", allow_module_level=True)

from models.foreign.compat import (  # noqa: E402
    DroppedOverload,
    import_onnx2torch,
    import_torchax,
    tolerate_dropped_overloads,
)


def test_torchax_imports_and_lowers_a_module():
    import jax
    import jax.numpy as jnp

    torchax = import_torchax()
    lin = torch.nn.Linear(3, 2)
    weights, fn = torchax.extract_jax(lin)
    x = jnp.ones((4, 3))
    out = jax.jit(lambda w, x: fn(w, (x,)))(weights, x)
    ref = lin(torch.ones(4, 3)).detach().numpy()
    assert abs(float((out - ref).max())) < 1e-6


def test_dropped_overloads_resolve_only_inside_the_block():
    packet = torch.ops.aten.prod
    if "dim_Dimname" in packet.overloads():
        pytest.skip("this torch still has the named-tensor overloads")
    with tolerate_dropped_overloads():
        placeholder = packet.dim_Dimname
        with pytest.raises(AttributeError):  # other missing names still fail
            packet.no_such_overload  # noqa: B018
    assert isinstance(placeholder, DroppedOverload) and "dim_Dimname" in repr(placeholder)
    with pytest.raises(AttributeError, match="dim_Dimname"):
        packet.dim_Dimname  # noqa: B018  (torch is unchanged afterwards)


def test_placeholders_are_skipped_by_the_decomposition_table():
    from torch._decomp import get_decompositions

    with tolerate_dropped_overloads():
        table = get_decompositions([torch.ops.aten.all.dimname, torch.ops.aten.addcmul.default])
    assert list(table) == [torch.ops.aten.addcmul.default]


def test_torchax_tables_hold_no_placeholder_that_could_match():
    import_torchax()
    from torchax import amp
    from torchax.decompositions import DECOMPOSITIONS

    assert not any(isinstance(k, DroppedOverload) for k in DECOMPOSITIONS)
    dropped = [k for k in amp.autocast_policy if isinstance(k, DroppedOverload)]
    assert all(not isinstance(k, torch._ops.OpOverload) for k in dropped)


def test_onnx2torch_imports_without_touching_sys_modules():
    if importlib.util.find_spec("onnx2torch") is None:
        pytest.skip("onnx2torch is not installed")
    before = "torchvision" in sys.modules
    onnx2torch = import_onnx2torch()
    assert callable(onnx2torch.convert)
    assert ("torchvision" in sys.modules) == before  # the stand-in never stays behind
