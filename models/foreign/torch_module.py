"""``torch:package.module:factory``: any PyTorch classifier with a small declared spec.

The factory is imported with :mod:`importlib` (the module must be on ``sys.path``), called
with no arguments, and returns either ``(module, spec)`` or a module with a
``hearsight_spec`` attribute. The spec is a dict (the same schema is the ONNX sidecar)::

    {
      "input": "waveform",        # or "features"
      "sample_rate": 16000,       # Hz ("waveform")
      "n_samples": 16000,         # samples per clip ("waveform"); or "duration_s": 1.0
      "features": {...},          # "features" only: hearsight's data.features.FeatureParams
                                  # fields (kind, sample_rate, n_fft, hop_length, ...)
      "labels": ["yes", "no"],    # class names in logit order (default "0", "1", ...)
      "layers": {                 # exposed layers, in forward order
        "conv1": "features.0",    # name -> submodule path (module.named_modules())
        "gru": {"module": "rnn", "kind": "sequence"},
        "pooled": {"module": "head", "kind": "vector", "capture": "input"},
      },
    }

The module gets ``(batch, n_samples)`` float32 waveforms in [-1, 1], or ``(batch, freq,
time)`` features, and returns logits ``(batch, classes)`` (or a tuple whose first element
they are). Layer kinds: ``"freq_time"`` (a conv2d map, torch ``(channels, freq, time)``),
``"time"`` (a conv1d map, ``(channels, time)``), ``"sequence"`` (``(time, dim)``),
``"vector"``; omitted, a kind is inferred from the output's rank and the module's type.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from data.features import FeatureParams, features
from models.contract import InputSpace, LoadedModel
from models.foreign.bridge import Tap, bridge_module

_KEYS = {"input", "sample_rate", "n_samples", "duration_s", "features", "labels", "layers"}


def input_space(spec: Mapping[str, Any], name: str) -> InputSpace:
    """The :class:`InputSpace` a declared spec describes (see the module docstring)."""
    kind = spec.get("input")
    if kind == "features":
        if not isinstance(spec.get("features"), Mapping):
            raise ValueError(f"{name}: a 'features' input needs a 'features' dict of "
                             "data.features.FeatureParams fields (kind, sample_rate, ...)")
        fp = FeatureParams.from_dict(dict(spec["features"]))
        return InputSpace("features", fp.sample_rate, fp.n_samples, fp.shape,
                          features=partial(features, params=fp), feature_params=fp)
    if kind != "waveform":
        raise ValueError(f"{name}: 'input' must be 'waveform' or 'features', got {kind!r}")
    if "sample_rate" not in spec or not ({"n_samples", "duration_s"} & set(spec)):
        raise ValueError(f"{name}: a 'waveform' input needs 'sample_rate' (Hz) and "
                         "'n_samples' (or 'duration_s')")
    sr = int(spec["sample_rate"])
    n = int(spec["n_samples"]) if "n_samples" in spec else round(float(spec["duration_s"]) * sr)
    return InputSpace("waveform", sr, n, (n,))


def taps(layers: Mapping[str, Any], name: str) -> list[Tap]:
    """:class:`Tap` per declared layer: ``name -> path`` or ``name -> {module, kind, capture}``."""
    out = []
    for layer, decl in layers.items():
        if isinstance(decl, str):
            out.append(Tap(layer, decl))
        elif isinstance(decl, Mapping) and isinstance(decl.get("module"), str):
            extra = set(decl) - {"module", "kind", "capture"}
            if extra or decl.get("capture", "output") not in ("output", "input"):
                raise ValueError(f"{name}: layer {layer!r}: keys are module, kind, capture "
                                 f"('output' or 'input'), got {dict(decl)}")
            out.append(Tap(layer, decl["module"], decl.get("kind"),
                           decl.get("capture", "output")))
        else:
            raise ValueError(f"{name}: layer {layer!r} must name a submodule path or "
                             "{'module': path, 'kind': ...}")
    return out


def check_spec(spec: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(spec, Mapping):
        raise ValueError(f"{name}: the model spec must be a dict, got {type(spec).__name__}")
    unknown = set(spec) - _KEYS
    if unknown:
        raise ValueError(f"{name}: unknown spec keys {sorted(unknown)}; known: {sorted(_KEYS)}")
    return spec


def bridge_declared(module, spec: Mapping[str, Any], *, name: str, adapter: str,
                    default_taps: list[Tap] | None = None) -> LoadedModel:
    """A module with a declared spec behind the contract."""
    spec = check_spec(spec, name)
    layers = taps(spec["layers"], name) if "layers" in spec else list(default_taps or [])
    return bridge_module(module, spec=name, input_space=input_space(spec, name), taps=layers,
                         labels=spec.get("labels"), info={"adapter": adapter})


def load_torch(entry: str) -> LoadedModel:
    """The module made by the factory ``package.module:factory`` behind the contract."""
    import torch

    from models import resolve_factory

    name = f"torch:{entry}"
    if ":" not in entry:
        raise ValueError(f"{name}: expected torch:package.module:factory")
    made = resolve_factory(entry)()
    module, spec = made if isinstance(made, tuple) else (made, getattr(made, "hearsight_spec",
                                                                       None))
    if not isinstance(module, torch.nn.Module):
        raise ValueError(f"{name}: the factory returned {type(module).__name__}, expected a "
                         "torch.nn.Module (or (module, spec))")
    if spec is None:
        raise ValueError(f"{name}: no spec; return (module, spec) from the factory or set "
                         "module.hearsight_spec (see models.foreign.torch_module)")
    return bridge_declared(module, spec, name=name, adapter="torch")
