"""``onnx:FILE``: an ONNX classifier, converted to PyTorch by onnx2torch, then lowered to JAX.

The spec lies in a sidecar JSON next to the file, ``FILE.json`` (``model.onnx.json``), with
the schema of :mod:`models.foreign.torch_module`::

    {"input": "waveform", "sample_rate": 16000, "n_samples": 16000,
     "labels": ["yes", "no"],
     "layers": {"conv1": "Conv_0"}}          # optional: onnx2torch module names

The graph's single input is the waveform ``(batch, n_samples)`` (or features ``(batch, freq,
time)``) and its first output the logits ``(batch, classes)``; export with a dynamic batch
axis (``dynamic_axes`` / ``dynamic_shapes``) so that every batch size works. Without
``layers``, every convolution (``Conv1d``: ``"time"``, ``Conv2d``: ``"freq_time"``) and
fully connected layer (``"vector"``) of the converted graph is exposed, named after its
node. An operator onnx2torch cannot convert, or torchax cannot lower, is a ``ValueError``
naming it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from models.contract import LoadedModel
from models.foreign.bridge import Tap
from models.foreign.compat import import_onnx2torch
from models.foreign.torch_module import bridge_declared


def sidecar(path: Path) -> Path:
    """Where the spec of the ONNX file ``path`` lies: ``path`` + ``.json``."""
    return path.with_name(path.name + ".json")


def _default_taps(module) -> list[Tap]:
    """Every Conv1d, Conv2d and Linear of the converted graph, named after its ONNX node
    (``conv1/Conv`` -> ``conv1``, the exporting module's path, where that is unique)."""
    import torch

    kinds = {torch.nn.Conv1d: "time", torch.nn.Conv2d: "freq_time", torch.nn.Linear: "vector"}
    found = [(n, kinds[type(s)]) for n, s in module.named_modules() if type(s) in kinds]
    short = [re.sub(r"\W", "_", n.rsplit("/", 1)[0]) for n, _ in found]
    full = [re.sub(r"\W", "_", n) for n, _ in found]
    names = short if len(set(short)) == len(short) else full
    return [Tap(name, path, kind) for name, (path, kind) in zip(names, found)]


def _convert(path: Path, spec: str):
    import onnx

    onnx2torch = import_onnx2torch()
    try:
        proto = onnx.load(str(path))
    except Exception as e:  # noqa: BLE001 - onnx raises DecodeError and friends
        raise ValueError(f"{spec}: {path} is not a readable ONNX file: {e}") from e
    try:
        return onnx2torch.convert(proto)
    except NotImplementedError as e:
        raise ValueError(f"{spec}: onnx2torch cannot convert this graph: {e}. Export the model "
                         "without that operator (a newer/older opset, or standard layers), or "
                         "wrap the PyTorch original as torch:package.module:factory; nothing "
                         "was loaded") from e


def load_onnx(file: str) -> LoadedModel:
    """The ONNX classifier ``file`` (spec in ``file.json``) behind the contract."""
    spec_name = f"onnx:{file}"
    path = Path(file).expanduser()
    if not path.is_file():
        raise ValueError(f"{spec_name}: no file {path}; give the path of an .onnx file")
    side = sidecar(path)
    if not side.is_file():
        raise ValueError(f"{spec_name}: no spec {side}; write it next to the model (input, "
                         "sample_rate, n_samples, labels; see models.foreign.onnx)")
    try:
        spec = json.loads(side.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{spec_name}: {side} is not valid JSON: {e}") from e
    module = _convert(path, spec_name)
    return bridge_declared(module, spec, name=spec_name, adapter="onnx",
                           default_taps=_default_taps(module))
