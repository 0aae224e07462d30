"""A tiny bring-your-own model for tests/models/test_byo.py (written with plain flax nnx)."""

import jax.numpy as jnp
from flax import nnx


class TinyLinear(nnx.Module):
    """Flatten → dense ``hidden`` (identity activation) → logits; sows ``hidden``, ``logits``."""

    layer_names = ("hidden", "logits")

    def __init__(self, n_classes, input_shape, *, rngs):
        self.input_shape = tuple(input_shape)
        self.hidden = nnx.Linear(input_shape[0] * input_shape[1], 4, rngs=rngs)
        self.out = nnx.Linear(4, n_classes, rngs=rngs)

    def __call__(self, x):
        h = self.hidden(jnp.reshape(x, (x.shape[0], -1)))
        self.sow(nnx.Intermediate, "hidden", h)
        logits = self.out(h)
        self.sow(nnx.Intermediate, "logits", logits)
        return logits


def make_model(*, n_classes, input_shape, rngs):
    return TinyLinear(n_classes, input_shape, rngs=rngs)


NOT_CALLABLE = 3
