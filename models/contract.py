"""The one model contract: what every page, analysis and command sees of a classifier.

A loaded model is an input space, a pure JAX ``apply(params, x) -> (logits, activations)``,
class labels and, for every exposed layer, its kind and shape. Adapters turn a model into a
:class:`LoadedModel` (``models.foreign``: PyTorch modules through torchax, Hugging Face
folders, ONNX files); nothing above ``models/`` knows which adapter made it
(CONVENTIONS.md 16).

Layouts are channels-last, as in the flax models and the ablation protocol of
:mod:`models.hooks` (masks broadcast over the last axis). Per example:

- ``"freq_time"``: a convolution map over frequency × time, ``(freq, time, channels)``;
- ``"time"``: a convolution over time, ``(time, channels)`` (frames at the layer's own rate);
- ``"sequence"``: a transformer layer's output, ``(time, dim)`` (tokens for patch models);
- ``"vector"``: one vector per example, ``(dim,)``.

Model specs name a model everywhere one is named; :func:`load_model` dispatches on the
prefix: ``hf:PATH`` (a local Hugging Face folder), ``torch:package.module:factory`` and
``onnx:FILE``. Adapters register themselves in :data:`ADAPTERS`. hearsight's own flax
models come behind the contract through :func:`flax_adapter` (their specs, ``module:factory``
and checkpoint folders, are resolved by the registry and checkpoints).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jax
import numpy as np

from data.features import FeatureParams

InputKind = Literal["waveform", "features"]
LayerKind = Literal["freq_time", "time", "sequence", "vector"]
LAYER_KINDS: dict[str, int] = {"freq_time": 3, "time": 2, "sequence": 2, "vector": 1}
Apply = Callable[[Any, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]


@dataclass(frozen=True)
class Inverse:
    """How a feature input is heard: a linear STFT magnitude for phase retrieval.

    ``to_magnitude`` maps one input ``(freq, time)`` to a non-negative magnitude
    ``(n_fft // 2 + 1, 1 + n_samples // hop_length)`` on the grid of
    :func:`data.features.stft` (centred frames, periodic ``window`` of ``n_fft`` samples), so
    that the engine's Griffin-Lim (``engine.inversion.griffin_lim``) turns it into sound. Phase
    retrieval stays in the engine; models only say how to get back to a magnitude.
    """

    to_magnitude: Callable[[jax.Array], jax.Array]
    n_fft: int
    hop_length: int
    window: str = "hann"


@dataclass(frozen=True)
class InputSpace:
    """What ``apply`` takes: a raw waveform, or features computed from one.

    Attributes:
      kind: ``"waveform"``: ``x`` is ``(batch, n_samples)`` float32 in [-1, 1] at
        ``sample_rate`` Hz. ``"features"``: ``x`` is ``(batch, freq, time)``, made from a
        waveform by ``features``.
      sample_rate: Hz of the waveform the model hears.
      n_samples: samples of one example's waveform (clips are trimmed/padded to it).
      shape: one example's input shape, ``(n_samples,)`` or ``(freq, time)``.
      features: ``"features"`` only: a differentiable JAX function of one waveform
        ``(n_samples,) -> (freq, time)``, so gradients reach the waveform through it.
      inverse: ``"features"`` only: how an input is heard (:class:`Inverse`).
      feature_params: set when the features are hearsight's own (:mod:`data.features`); the
        engine then inverts them with ``engine.inversion.spectrogram_to_audio``.
    """

    kind: InputKind
    sample_rate: int
    n_samples: int
    shape: tuple[int, ...]
    features: Callable[[jax.Array], jax.Array] | None = None
    inverse: Inverse | None = None
    feature_params: FeatureParams | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("waveform", "features"):
            raise ValueError(f"input kind must be 'waveform' or 'features', got {self.kind!r}")
        if self.sample_rate <= 0 or self.n_samples <= 0:
            raise ValueError(f"need a positive sample_rate and n_samples, got "
                             f"{self.sample_rate} Hz, {self.n_samples} samples")
        if self.kind == "waveform" and tuple(self.shape) != (self.n_samples,):
            raise ValueError(f"a waveform input has shape ({self.n_samples},), got {self.shape}")
        if self.kind == "features":
            if len(self.shape) != 2 or self.features is None:
                raise ValueError(f"a feature input needs a (freq, time) shape and a feature "
                                 f"function, got shape {self.shape}")
            if self.inverse is None and self.feature_params is None:
                raise ValueError("a feature input needs an inverse (or feature_params) so "
                                 "that it can be heard")

    @property
    def duration_s(self) -> float:
        """Seconds of one example's waveform."""
        return self.n_samples / self.sample_rate

    def from_wave(self, wave: jax.Array) -> jax.Array:
        """The model input for one waveform ``(n_samples,)`` (identity for waveform models)."""
        if wave.shape[-1] != self.n_samples:
            raise ValueError(f"expected {self.n_samples} samples ({self.duration_s:g} s at "
                             f"{self.sample_rate} Hz), got {wave.shape[-1]}; trim or pad first")
        return wave if self.kind == "waveform" else self.features(wave)


@dataclass(frozen=True)
class LayerInfo:
    """One exposed layer: its name in the activations dict, kind and per-example shape."""

    name: str
    kind: LayerKind
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        rank = LAYER_KINDS.get(self.kind)
        if rank is None:
            raise ValueError(f"layer {self.name!r}: kind must be one of {sorted(LAYER_KINDS)}, "
                             f"got {self.kind!r}")
        if len(self.shape) != rank:
            raise ValueError(f"layer {self.name!r} of kind {self.kind!r} needs a rank-{rank} "
                             f"shape per example, got {self.shape}")


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A classifier behind the contract.

    Attributes:
      spec: the model spec it was loaded from (``hf:PATH``, ...).
      input: its :class:`InputSpace`.
      params: pytree of floating-point JAX arrays (weights and buffers), the first argument
        of ``apply``.
      apply: ``apply(params, x) -> (logits, activations)``: pure JAX, jit-able and
        differentiable w.r.t. ``x``; ``x`` is ``(batch, *input.shape)`` float32, ``logits``
        ``(batch, len(labels))``, ``activations`` ``{layer.name: (batch, *layer.shape)}``.
      labels: class names, in logit order.
      layers: the exposed layers, in forward order.
      info: adapter facts for ``describe`` (``adapter``, ``family``, ``ops``, ...).
    """

    spec: str
    input: InputSpace
    params: Any
    apply: Apply
    labels: tuple[str, ...]
    layers: tuple[LayerInfo, ...]
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers)

    def layer(self, name: str) -> LayerInfo:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"{self.spec} has no layer {name!r}; layers: {list(self.layer_names)}")


Loader = Callable[[str], LoadedModel]
ADAPTERS: dict[str, str] = {
    "hf": "models.foreign.hf:load_hf",
    "torch": "models.foreign.torch_module:load_torch",
    "onnx": "models.foreign.onnx:load_onnx",
}


def _loader(prefix: str) -> Loader:
    import importlib

    module, name = ADAPTERS[prefix].split(":")
    return getattr(importlib.import_module(module), name)


def load_model(spec: str) -> LoadedModel:
    """The model named by ``spec``, behind the contract; raises ``ValueError`` when it can't.

    ``hf:PATH`` a local Hugging Face folder, ``torch:package.module:factory`` a PyTorch
    factory, ``onnx:FILE`` an ONNX classifier (see :mod:`models.foreign`). A model either loads
    whole (every layer traced once) or not at all.
    """
    prefix, sep, rest = spec.partition(":")
    if not sep or prefix not in ADAPTERS or not rest:
        raise ValueError(f"model spec {spec!r} names no adapter; use one of "
                         f"{', '.join(f'{p}:...' for p in ADAPTERS)} "
                         "(hf:PATH, torch:package.module:factory, onnx:FILE)")
    return _loader(prefix)(rest)


_RANK_KINDS = {3: "freq_time", 2: "sequence", 1: "vector"}


def flax_adapter(model, *, features: FeatureParams, labels: tuple[str, ...] | list[str],
                 spec: str) -> LoadedModel:
    """One of hearsight's own flax ``nnx`` clip classifiers behind the contract.

    ``model`` follows the protocol of :mod:`models.registry` (sows ``layer_names``; input
    ``(batch, freq, time)`` features of ``features``, e.g. a checkpoint's ``FeatureParams``).
    ``apply(state, x)`` merges the split model inside the traced function (one jit boundary,
    CONVENTIONS 3); conv maps ``(freq, time, channels)`` are ``"freq_time"``, dense outputs
    ``"vector"``. The input space carries ``feature_params``, so the engine inverts it with
    its own Griffin-Lim. Frame-window models (``frame_mlp``) are not clip models: refused.
    """
    from functools import partial

    from flax import nnx

    from data.features import features as compute_features
    from models.architectures import call_with_intermediates

    shape = tuple(int(s) for s in getattr(model, "input_shape", features.shape))
    if shape != features.shape:
        raise ValueError(f"{spec}: the model takes inputs of shape {shape}, its features are "
                         f"{features.shape}; only clip models open behind the contract")
    model.eval()
    graphdef, state = nnx.split(model)
    names = tuple(model.layer_names)

    def apply(state, x):
        logits, acts = call_with_intermediates(nnx.merge(graphdef, state), x)
        return logits, {name: acts[name] for name in names}

    _, acts = jax.eval_shape(apply, state, jax.ShapeDtypeStruct((1, *shape), np.float32))
    layers = tuple(LayerInfo(n, _RANK_KINDS[acts[n].ndim - 1], tuple(acts[n].shape[1:]))
                   for n in names)
    space = InputSpace("features", features.sample_rate, features.n_samples, shape,
                       features=partial(compute_features, params=features),
                       feature_params=features)
    return LoadedModel(spec=spec, input=space, params=state, apply=apply,
                       labels=tuple(str(label) for label in labels), layers=layers,
                       info={"adapter": "flax", "architecture": type(model).__name__})


def parameter_count(params: Any) -> int:
    """Number of scalars in a params pytree (floating-point weights and buffers)."""
    return int(sum(np.prod(np.shape(a)) for a in jax.tree_util.tree_leaves(params)))


def describe(model: LoadedModel) -> dict[str, Any]:
    """JSON-ready summary: input space, rate, labels, layers (kind, shape), parameter count,
    adapter facts (for ``hearsight models inspect``)."""
    space = model.input
    return {
        "spec": model.spec,
        "input": {"kind": space.kind, "sample_rate": space.sample_rate,
                  "n_samples": space.n_samples, "duration_s": space.duration_s,
                  "shape": list(space.shape)},
        "labels": list(model.labels),
        "layers": [{"name": layer.name, "kind": layer.kind, "shape": list(layer.shape)}
                   for layer in model.layers],
        "parameters": parameter_count(model.params),
        **{k: v for k, v in model.info.items()},
    }
