"""What the attribution methods explain: the target class's logit (gradient methods, as
Grad-CAM prescribes) or its softmax probability (occlusion, faithfulness), and the ``logits_fn``
view of an ``acts_fn``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import jax
import jax.numpy as jnp

Array = jax.Array


@lru_cache(maxsize=64)
def logits_from_acts(acts_fn: Callable) -> Callable:
    """A stable ``logits_fn`` view of an ``acts_fn`` (cached, so jit caches stay warm)."""
    return lambda x: acts_fn(x)[0]


def target_logit_sum(logits_fn: Callable, x: Array, target: Array) -> Array:
    """``sum_b logits[b, target[b]]``: its gradient is every example's own (examples independent)."""
    return jnp.take_along_axis(logits_fn(x), target[:, None], axis=1).sum()


def target_prob(logits_fn: Callable, x: Array, target: Array) -> Array:
    """Softmax probability of each example's target class, ``(batch,)``."""
    p = jax.nn.softmax(logits_fn(x), axis=-1)
    return jnp.take_along_axis(p, target[:, None], axis=1)[:, 0]
