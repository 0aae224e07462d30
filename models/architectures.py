"""Classifier architectures of the seed systems, written with flax ``nnx``.

Every model maps features ``(batch, freq, time)`` float32 (values in ``[floor, 0]``, see
``data.features``) to logits ``(batch, n_classes)``. Convolutions run in NHWC =
``(batch, freq, time, channels)``; the channel axis is added inside the model. Every model
records its intermediate activations under stable names (``conv1``, ``dense1``, ``logits``,
...) as ``nnx.Intermediate``; :func:`call_with_intermediates` runs a model and returns them.

References:
  d-DeVIS CNN (Krug, Knaebel & Stober 2018, "Neuron activation profiles ..." / d-DeVIS tool).
  Soomro et al. classifier ("Generating speech utterances by activation maximisation").
  Frame MLP of the autoencoder-projection study (5 hidden ReLU layers of 1000 units).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models.hooks import tap
from models.layers import conv_mono, conv_patches, max_pool2

_HAS_CAPTURE = hasattr(nnx, "capture")


def sow(module: nnx.Module, name: str, value: jax.Array) -> jax.Array:
    """Record ``value`` as ``nnx.Intermediate`` ``name`` of ``module`` and return it.

    The value first passes through :func:`models.hooks.tap`, so an active intervention
    (ablation mask, Grad-CAM perturbation) changes what is recorded *and* what the next layer
    sees; callers must continue with the returned value.

    Newer flax (0.12+) deprecates sowing outside ``nnx.capture``; we sow only while capturing
    there, so that calling a model directly (training, gradients) stays silent and cheap.
    Older flax has no ``capture``: we always sow and :func:`call_with_intermediates` pops them.
    """
    value = tap(name, value)
    if not _HAS_CAPTURE or hasattr(module, "__captures__"):
        module.sow(nnx.Intermediate, name, value)
    return value


def variable_type(v: Any) -> type | None:
    """The ``nnx.Variable`` class of a state leaf, or None for anything else.

    flax >= 0.11 keeps ``Variable`` objects in a ``State``; flax 0.10 keeps ``VariableState``
    objects whose ``.type`` is the class.
    """
    if isinstance(v, nnx.Variable):
        return type(v)
    t = getattr(v, "type", None)
    return t if isinstance(t, type) and issubclass(t, nnx.Variable) else None


def variable_value(v: Any) -> Any:
    """The array held by a state leaf (``get_value`` on flax 0.12+, ``.value`` before)."""
    return v.get_value() if hasattr(v, "get_value") else v.value


def flat_intermediates(state: Mapping, prefix: tuple[str, ...] = ()) -> dict[str, jax.Array]:
    """Flatten a (nested) intermediates ``State`` to ``{"name" or "sub/name": array}``.

    A sown value is a tuple (one entry per call); the last call's value is kept.
    """
    out: dict[str, jax.Array] = {}
    for key, v in state.items():
        path = (*prefix, str(key))
        if variable_type(v) is not None:
            val = variable_value(v)
            out["/".join(path)] = val[-1] if isinstance(val, tuple) else val
        elif isinstance(v, Mapping):
            out.update(flat_intermediates(v, path))
    return out


def call_with_intermediates(fn: nnx.Module | Callable, *args) -> tuple[Any, dict[str, jax.Array]]:
    """Run a model (or a bound method of one) and collect its sown intermediates.

    Returns ``(output, {name: array})``; works under ``jax.jit`` and with flax 0.10–0.12.
    """
    if _HAS_CAPTURE:
        out, inter = nnx.capture(fn, nnx.Intermediate)(*args)
        return out, flat_intermediates(inter)
    module = fn if isinstance(fn, nnx.Module) else fn.__self__
    out = fn(*args)
    return out, flat_intermediates(nnx.pop(module, nnx.Intermediate))


def _check_input(x: jax.Array, input_shape: tuple[int, int], name: str) -> None:
    if x.ndim != 3 or tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError(f"{name} expects features of shape (batch, {input_shape[0]}, "
                         f"{input_shape[1]}), got {tuple(x.shape)}; pad/crop the time axis "
                         "with the feature floor (engine.forward does this)")


def _shape2(input_shape) -> tuple[int, int]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"input_shape must be (freq, time) of positive ints, got {input_shape}")
    return shape


class _ConvNet(nnx.Module):
    """Shared by the CNNs: block ``i``'s convolution. A single-channel input goes through
    :func:`models.layers.conv_patches` when the kernel covers at most 9 bins (the Soomro CNN's
    2×2 conv1: 2.4x faster at batch 1, 1.8x at 256) and :func:`models.layers.conv_mono` when
    larger (the d-DeVIS 7×7 conv1: its forward 1.2-1.3x faster, at batch 1 and 256); same
    parameters and values either way. Multi-channel layers keep XLA's convolution (im2col
    there was 1.1-7x slower at batch 256)."""

    def _conv(self, i: int, x: jax.Array) -> jax.Array:
        conv = getattr(self, f"conv{i}")
        if x.shape[-1] == 1:
            kh, kw = conv.kernel[...].shape[:2]
            return conv_patches(conv, x) if kh * kw <= 9 else conv_mono(conv, x)
        return conv(x)


class DdevisCNN(_ConvNet):
    """The d-DeVIS CNN: 4 conv blocks (16@7×7, 16@5×5, 32@3×3, 32@3×3, 'SAME'), each
    ReLU → BatchNorm → 2×2 max-pool → dropout 0.25; dense 256 ReLU, dropout 0.5; logits.

    Sows ``conv1``..``conv4`` (after ReLU+BatchNorm, before pooling, NHWC), ``dense1``
    (after ReLU) and ``logits``. For input (160, 150): conv1 (b,160,150,16), conv2
    (b,80,75,16), conv3 (b,40,37,32), conv4 (b,20,18,32), flattened 10·9·32 = 2880.
    """

    layer_names = ("conv1", "conv2", "conv3", "conv4", "dense1", "logits")
    blocks = ((16, 7), (16, 5), (32, 3), (32, 3))

    def __init__(self, n_classes: int, input_shape=(160, 150), *, rngs: nnx.Rngs):
        self.input_shape = _shape2(input_shape)
        self.n_classes = int(n_classes)
        h, w, c_in = *self.input_shape, 1
        for i, (c, k) in enumerate(self.blocks, start=1):
            setattr(self, f"conv{i}", nnx.Conv(c_in, c, kernel_size=(k, k), padding="SAME",
                                               rngs=rngs))
            # Momentum 0.9 (not Keras' 0.99): running statistics settle within a few dozen
            # steps, so short, time-budgeted first runs already evaluate well.
            setattr(self, f"bn{i}", nnx.BatchNorm(c, momentum=0.9, rngs=rngs))
            setattr(self, f"drop{i}", nnx.Dropout(0.25, rngs=rngs))
            h, w, c_in = h // 2, w // 2, c
        if h < 1 or w < 1:
            raise ValueError(f"input_shape {self.input_shape} is too small for 4 poolings")
        self.dense1 = nnx.Linear(h * w * c_in, 256, rngs=rngs)
        self.drop_dense = nnx.Dropout(0.5, rngs=rngs)
        self.out = nnx.Linear(256, self.n_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        _check_input(x, self.input_shape, "DdevisCNN")
        x = x[..., None]
        for i in range(1, 5):
            x = self._conv(i, x)
            x = getattr(self, f"bn{i}")(nnx.relu(x))
            x = sow(self, f"conv{i}", x)
            x = getattr(self, f"drop{i}")(max_pool2(x))
        x = nnx.relu(self.dense1(x.reshape(x.shape[0], -1)))
        x = sow(self, "dense1", x)
        logits = self.out(self.drop_dense(x))
        logits = sow(self, "logits", logits)
        return logits


class SoomroCNN(_ConvNet):
    """Soomro et al.'s classifier: conv 8/16/32 with 2×2 kernels ('SAME', ReLU, 2×2 max-pool
    each), dense 512/256/128 ReLU, logits.

    Sows ``conv1``..``conv3`` (after ReLU, before pooling), ``dense1``..``dense3``, ``logits``.
    For input (80, 90): conv1 (b,80,90,8), conv2 (b,40,45,16), conv3 (b,20,22,32).

    Options (stored in a checkpoint's ``arch_kwargs``; the defaults are the original model):
      input_norm: ``""`` (none), ``"mean"`` or ``"meanstd"``: the first op subtracts each
        feature row's mean over time (and with ``"meanstd"`` divides by its standard
        deviation plus 0.1), per utterance, like cepstral mean normalisation: a stationary
        channel or microphone response (a constant added to a log row) is removed, while the
        features, pictures and sonification outside the model stay as they are.
      head: ``"flatten"`` (the dense layers see the whole conv3 map) or ``"pool"`` (conv3's
        map is max-pooled over all time columns first, so the dense layers see which patterns
        occurred, not when).
      dropout: rate of dropout after each dense layer while training (0: none, and no
        dropout modules, as in the original model).
      keep_rows: when > 0, only the lowest ``keep_rows`` feature rows reach the convolutions
        (the rows above are set to 0 after ``input_norm``; shapes stay as they are): a model
        that must hear 8 kHz recordings (nothing above 4 kHz) learns no cue from above it.
      channels: output channels of conv1..conv3 (the paper's 8, 16, 32).
      kernel: their square kernel size (the paper's 2).
    """

    layer_names = ("conv1", "conv2", "conv3", "dense1", "dense2", "dense3", "logits")
    input_norms = ("", "mean", "meanstd")
    heads = ("flatten", "pool")

    def __init__(self, n_classes: int = 35, input_shape=(80, 90), *, rngs: nnx.Rngs,
                 input_norm: str = "", head: str = "flatten", dropout: float = 0.0,
                 keep_rows: int = 0, channels=(8, 16, 32), kernel: int = 2):
        self.input_shape = _shape2(input_shape)
        self.n_classes = int(n_classes)
        if input_norm not in self.input_norms or head not in self.heads:
            raise ValueError(f"input_norm must be one of {self.input_norms} and head one of "
                             f"{self.heads}, got {input_norm!r}, {head!r}")
        self.input_norm, self.head = str(input_norm), str(head)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        if not 0 <= int(keep_rows) <= self.input_shape[0]:
            raise ValueError(f"keep_rows must be in [0, {self.input_shape[0]}], got {keep_rows!r}")
        self.keep_rows = int(keep_rows)
        channels = tuple(int(c) for c in channels)
        if len(channels) != 3 or min(channels) < 1 or not 1 <= int(kernel) <= 7:
            raise ValueError(f"channels must be 3 positive counts and kernel in 1..7, got "
                             f"{channels!r}, {kernel!r}")
        h, w, c_in = *self.input_shape, 1
        for i, c in enumerate(channels, start=1):
            setattr(self, f"conv{i}", nnx.Conv(c_in, c, kernel_size=(int(kernel),) * 2,
                                               padding="SAME", rngs=rngs))
            h, w, c_in = h // 2, w // 2, c
        if h < 1 or w < 1:
            raise ValueError(f"input_shape {self.input_shape} is too small for 3 poolings")
        n_in = h * c_in if self.head == "pool" else h * w * c_in
        for i, n in enumerate((512, 256, 128), start=1):
            setattr(self, f"dense{i}", nnx.Linear(n_in, n, rngs=rngs))
            n_in = n
        self.out = nnx.Linear(n_in, self.n_classes, rngs=rngs)
        if self.dropout:
            self.drop = nnx.Dropout(self.dropout, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        _check_input(x, self.input_shape, "SoomroCNN")
        if self.input_norm:
            x = normalise_rows(x, std=self.input_norm == "meanstd")
        if self.keep_rows:
            x = jnp.where(jnp.arange(x.shape[1])[None, :, None] < self.keep_rows, x, 0.0)
        x = x[..., None]
        for i in range(1, 4):
            x = nnx.relu(self._conv(i, x))
            x = sow(self, f"conv{i}", x)
            x = max_pool2(x)
        if self.head == "pool":
            x = jnp.max(x, axis=2)  # (b, freq, channels): over every time column
        x = x.reshape(x.shape[0], -1)
        for i in range(1, 4):
            x = nnx.relu(getattr(self, f"dense{i}")(x))
            x = sow(self, f"dense{i}", x)
            if self.dropout:
                x = self.drop(x)
        logits = self.out(x)
        logits = sow(self, "logits", logits)
        return logits


def normalise_rows(x: jax.Array, *, std: bool = False, eps: float = 0.1) -> jax.Array:
    """``x (batch, freq, time)`` minus each row's mean over time (divided by its standard
    deviation + ``eps`` when ``std``): per-utterance mean normalisation of every band."""
    x = x - jnp.mean(x, axis=2, keepdims=True)
    if std:
        x = x / (jnp.std(x, axis=2, keepdims=True) + eps)
    return x


class FrameMLP(nnx.Module):
    """Frame classifier: a context window of frames flattened, ``depth`` × dense ``hidden``
    ReLU, logits. Input ``(batch, n_feat, context)`` (see :func:`frame_windows`).

    Sows ``dense1``..``dense{depth}`` and ``logits``.
    """

    def __init__(self, n_classes: int, input_shape=(80, 11), *, hidden: int = 1000,
                 depth: int = 5, rngs: nnx.Rngs):
        self.input_shape = _shape2(input_shape)
        self.n_classes = int(n_classes)
        if hidden < 1 or depth < 1:
            raise ValueError(f"need hidden >= 1 and depth >= 1, got {hidden}, {depth}")
        self.depth = int(depth)
        n_in = self.input_shape[0] * self.input_shape[1]
        for i in range(1, depth + 1):
            setattr(self, f"dense{i}", nnx.Linear(n_in, hidden, rngs=rngs))
            n_in = hidden
        self.out = nnx.Linear(n_in, self.n_classes, rngs=rngs)

    @property
    def layer_names(self) -> tuple[str, ...]:
        return (*(f"dense{i}" for i in range(1, self.depth + 1)), "logits")

    def __call__(self, x: jax.Array) -> jax.Array:
        _check_input(x, self.input_shape, "FrameMLP")
        x = x.reshape(x.shape[0], -1)
        for i in range(1, self.depth + 1):
            x = nnx.relu(getattr(self, f"dense{i}")(x))
            x = sow(self, f"dense{i}", x)
        logits = self.out(x)
        logits = sow(self, "logits", logits)
        return logits


FRAME_CONTEXT = 11  # frames per window the frame-level models (frame_mlp) classify


def frame_windows(feats, *, context: int = FRAME_CONTEXT, hop: int = 1,
                  floor: float | None = None) -> np.ndarray:
    """Context windows of frames centred on every ``hop``-th frame of each utterance.

    Args:
      feats: ``(N, F, T)`` features.
      context: frames per window (odd keeps it centred: ``context // 2`` each side).
      hop: frames between window centres.
      floor: value the edges are padded with; ``None`` → the minimum of ``feats`` (the feature
        floor whenever any bin reaches it).
    Returns:
      ``(N, T', F, context)`` float32 with ``T' = ceil(T / hop)`` (``T' == T`` for hop 1); a
      read-only strided view where possible, so large corpora are not copied.
    """
    x = np.asarray(feats, dtype=np.float32)
    if x.ndim != 3 or x.shape[2] < 1:
        raise ValueError(f"frame_windows expects (N, F, T) features, got shape {x.shape}")
    if context < 1 or hop < 1:
        raise ValueError(f"need context >= 1 and hop >= 1, got {context}, {hop}")
    fill = float(x.min()) if floor is None else float(floor)
    left = (context - 1) // 2
    padded = np.pad(x, ((0, 0), (0, 0), (left, context - 1 - left)), constant_values=fill)
    win = np.lib.stride_tricks.sliding_window_view(padded, context, axis=2)  # (N, F, T, C)
    return win[:, :, ::hop].transpose(0, 2, 1, 3)
