"""One jit-compiled forward pass per model: logits, probabilities and every intermediate.

The model is split once (``graphdef, state = nnx.split(model)``) and merged inside the jitted
function (flax nnx functional API). Inputs are bucketed so interaction never recompiles: the
time axis is fitted to the model's frames with the feature floor, and the batch is padded up
to a power of two (1, 2, 4, …, ``max_batch``); larger batches run in chunks of ``max_batch``.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models.architectures import call_with_intermediates


class Forward:
    """A model's bucketed, jitted forward pass (build with :func:`make_forward`).

    Attributes:
      graphdef, state: the split model (eval mode); ``state`` is the pytree to differentiate.
      apply: jitted pure ``apply(state, x) -> (logits, acts)`` with ``x`` ``(b, freq, time)``
        of the model's exact shape; ``acts`` maps every sown name and ``"probs"`` to arrays.
      logits_fn: pure, un-jitted ``logits_fn(state, x) -> logits`` for ``jax.grad`` / ``vmap``.
      input_shape: ``(freq, time)`` the model expects.
      floor: feature floor used to pad the time and batch axes.
      layer_names: sown names in forward order; labels: class names (or None).
    """

    def __init__(self, model: nnx.Module, *, input_shape: tuple[int, int], max_batch: int,
                 floor: float, labels: Sequence[str] | None):
        model.eval()
        self.graphdef, self.state = nnx.split(model)
        self.input_shape = input_shape
        self.max_batch = max_batch
        self.floor = float(floor)
        self.layer_names = tuple(getattr(model, "layer_names", ()))
        self.labels = None if labels is None else [str(s) for s in labels]
        self._traces = 0
        graphdef = self.graphdef

        def logits_fn(state, x):
            return call_with_intermediates(nnx.merge(graphdef, state), x)[0]

        def apply(state, x):
            self._traces += 1  # Python side effect: runs only while tracing
            logits, acts = call_with_intermediates(nnx.merge(graphdef, state), x)
            return logits, {**acts, "probs": jax.nn.softmax(logits, axis=-1)}

        self.logits_fn = logits_fn
        self.apply = jax.jit(apply)
        from engine.devices import Sharder

        self.sharder = Sharder()  # a batch split over the local devices, when there are more

    @property
    def trace_count(self) -> int:
        """How many times :attr:`apply` has been traced (one per batch bucket)."""
        return self._traces

    def bucket(self, n: int) -> int:
        """Padded batch size for ``n`` examples: the next power of two, at most max_batch."""
        return min(1 << max(0, (n - 1).bit_length()), self.max_batch)

    def fit_time(self, x: np.ndarray) -> np.ndarray:
        """Crop or floor-pad the time axis of ``(b, freq, time)`` to the model's frames."""
        frames = self.input_shape[1]
        x = x[:, :, :frames]
        missing = frames - x.shape[2]
        if missing > 0:
            x = np.pad(x, ((0, 0), (0, 0), (0, missing)), constant_values=self.floor)
        return x

    def __call__(self, x) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Logits ``(b, n_classes)`` and activations ``{name: (b, ...)}`` as NumPy arrays.

        Args:
          x: features ``(b, freq, time_any)``, NumPy or JAX; ``freq`` must match the model.
        """
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[0] < 1 or x.shape[1] != self.input_shape[0] or x.shape[2] < 1:
            raise ValueError(f"expected features (batch, {self.input_shape[0]}, time) with "
                             f"batch, time >= 1, got {x.shape}; compute them with the "
                             "model's FeatureParams")
        x = self.fit_time(x)
        if len(x) <= self.max_batch:
            # One chunk: hand back zero-copy views; concatenating would copy every intermediate
            # (hundreds of MB at batch 256) for nothing.
            return self._run_chunk(x)
        chunks = [self._run_chunk(x[s:s + self.max_batch])
                  for s in range(0, len(x), self.max_batch)]
        logits = np.concatenate([c[0] for c in chunks])
        acts = {k: np.concatenate([c[1][k] for c in chunks]) for k in chunks[0][1]}
        return logits, acts

    def _run_chunk(self, x: np.ndarray):
        n = len(x)
        pad = self.bucket(n) - n
        if pad:
            x = np.pad(x, ((0, pad), (0, 0), (0, 0)), constant_values=self.floor)
        # NumPy straight into the jitted call: an explicit jax.device_put first cost ~70 µs
        # more per call (Soomro CNN at batch 1: 0.40 vs 0.33 ms). With several local devices
        # a bucket that splits evenly is sharded over them (engine.devices); one device takes
        # this path unchanged.
        sharder = self.sharder
        logits, acts = self.apply(sharder.weights(self.state), sharder.batch(x))
        return np.asarray(logits)[:n], {k: np.asarray(v)[:n] for k, v in acts.items()}


def make_forward(model: nnx.Module, *, max_batch: int = 256, floor: float = -4.0,
                 input_shape: tuple[int, int] | None = None,
                 labels: Sequence[str] | None = None) -> Forward:
    """Build the bucketed jitted forward pass of ``model`` (switched to eval mode).

    Args:
      model: ``nnx.Module`` following the protocol of :mod:`models.registry`.
      max_batch: largest batch bucket (examples per compiled call).
      floor: feature floor (``FeatureParams.floor``) used for padding.
      input_shape: ``(freq, time)``; defaults to ``model.input_shape``.
      labels: optional class names kept on the result.
    """
    shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
    if shape is None or len(tuple(shape)) != 2:
        raise ValueError("the model has no input_shape attribute; pass input_shape=(freq, time)")
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    return Forward(model, input_shape=tuple(int(s) for s in shape), max_batch=int(max_batch),
                   floor=floor, labels=labels)
