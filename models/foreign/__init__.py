"""Adapters that put foreign classifiers behind the model contract (:mod:`models.contract`).

``hf:PATH`` (:mod:`.hf`), ``torch:package.module:factory`` (:mod:`.torch_module`) and
``onnx:FILE`` (:mod:`.onnx`) all end in :func:`.bridge.bridge_module`, which lowers a
``torch.nn.Module`` to JAX with torchax (imported through :mod:`.compat`). Names are
re-exported lazily: importing this package imports neither torch nor transformers.
"""

from __future__ import annotations

from hearsight.lazy import attach

_EXPORTS = {
    "Tap": "bridge",
    "bridge_module": "bridge",
    "prepare_module": "bridge",
    "import_torchax": "compat",
    "import_onnx2torch": "compat",
    "load_hf": "hf",
    "load_torch": "torch_module",
    "load_onnx": "onnx",
    "kaldi_fbank": "hf_features",
}

__getattr__, __all__ = attach(__name__, _EXPORTS)
