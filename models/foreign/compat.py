"""Importing the bridges (torchax, onnx2torch) with the torch that installs here.

torchax 0.0.13 (and every release before it) lists named-tensor overloads of ATen ops
(``aten.prod.dim_Dimname``, ``aten.norm.names_ScalarOpt_dim``, ...) in its autocast policy
(``amp.py``) and decomposition table (``decompositions.py``). torch 2.13 dropped those
overloads, so attribute access raises ``AttributeError`` and ``import torchax`` fails. While
torchax is imported (and its environment built, which imports the decompositions), a missing
overload whose name is a named-tensor one resolves to a :class:`DroppedOverload` placeholder:
it is hashable and no ``OpOverload``, so torch's ``get_decompositions`` skips it and no traced
op ever matches it in the autocast table — the entries are skipped, exactly as if torchax had
not listed them. torch itself is left as it was once the import is done.

onnx2torch imports torchvision for two detection converters (NonMaxSuppression, RoiAlign).
The torchvision wheels on PyPI are CUDA builds that cannot load beside a CPU torch, and an
installed-but-broken torchvision breaks ``transformers`` too, so torchvision is left out and
onnx2torch installed with ``pip install --no-deps onnx2torch``. :func:`import_onnx2torch`
then gives onnx2torch a stand-in ``torchvision`` for its import only; a model that needs one
of those two operators is refused with a ``ValueError`` when it is converted.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
import types
from typing import Any

_LOCK = threading.Lock()
_NAMED_TENSOR_MARKS = ("dimname", "names")


class DroppedOverload:
    """Placeholder for an ATen overload that this torch no longer has."""

    def __init__(self, qualified: str) -> None:
        self.qualified = qualified

    def __repr__(self) -> str:
        return f"<dropped overload {self.qualified}>"


def _is_named_tensor_overload(key: str) -> bool:
    return any(mark in key.lower() for mark in _NAMED_TENSOR_MARKS)


@contextlib.contextmanager
def tolerate_dropped_overloads():
    """Within the block, a missing named-tensor overload of an op resolves to a placeholder."""
    from torch._ops import OpOverloadPacket

    original = OpOverloadPacket.__getattr__

    def getattr_(self, key: str) -> Any:
        try:
            return original(self, key)
        except AttributeError:
            if _is_named_tensor_overload(key):
                return DroppedOverload(f"{self}.{key}")
            raise

    OpOverloadPacket.__getattr__ = getattr_
    try:
        yield
    finally:
        OpOverloadPacket.__getattr__ = original


def import_torchax() -> types.ModuleType:
    """torchax, imported and its default environment built (see the module docstring).

    Raises ``ImportError`` saying what to install when torch or torchax is missing.
    """
    with _LOCK:
        if "torchax" in sys.modules and getattr(sys.modules["torchax"], "_env", None):
            return sys.modules["torchax"]
        try:
            importlib.import_module("torch")
        except ImportError as e:
            raise ImportError("PyTorch models need torch: pip install torch==2.13.0 "
                              "(or pip install 'hearsight[foreign]')") from e
        try:
            with tolerate_dropped_overloads():
                torchax = importlib.import_module("torchax")
                importlib.import_module("torchax.decompositions")
                torchax.default_env()
        except ImportError as e:
            raise ImportError("PyTorch models are lowered to JAX by torchax: pip install "
                              "torchax==0.0.13 (or pip install 'hearsight[foreign]')") from e
        return torchax


def _torchvision_works() -> bool:
    try:
        importlib.import_module("torchvision")
    except Exception:  # noqa: BLE001 - a CUDA build beside a CPU torch raises RuntimeError
        sys.modules.pop("torchvision", None)
        return False
    return True


def _refuse(op: str):
    def fn(*args, **kwargs):
        raise ValueError(f"the ONNX operator {op} needs torchvision, which is not installed "
                         "here; hearsight's speech classifiers do not use it")
    return fn


def _torchvision_stand_in() -> dict[str, types.ModuleType]:
    tv = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    ops.nms, ops.box_convert = _refuse("NonMaxSuppression"), _refuse("NonMaxSuppression")
    ops.roi_align = _refuse("RoiAlign")
    tv.ops = ops
    return {"torchvision": tv, "torchvision.ops": ops}


def import_onnx2torch() -> types.ModuleType:
    """onnx2torch, imported with a stand-in torchvision when the real one cannot load."""
    with _LOCK:
        if "onnx2torch" in sys.modules:
            return sys.modules["onnx2torch"]
        stand_in = {} if _torchvision_works() else _torchvision_stand_in()
        sys.modules.update(stand_in)
        try:
            return importlib.import_module("onnx2torch")
        except ImportError as e:
            raise ImportError("ONNX models are converted by onnx2torch: pip install --no-deps "
                              "onnx2torch, and pip install onnx onnxruntime") from e
        finally:
            for name in stand_in:  # onnx2torch keeps its own reference; nobody else sees it
                sys.modules.pop(name, None)
