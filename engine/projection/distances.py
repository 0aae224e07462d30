"""Squared Euclidean distances of row blocks to a few reference points (jit kernels).

Shared by PivotMDS (distances to the pivots) and classical MDS (all pairs).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.jit
def row_sqnorms(xb: jax.Array, centre: jax.Array) -> jax.Array:
    """``||x_i - centre||²`` per row; an elementwise-then-reduce loop XLA fuses into one read."""
    a = xb - centre
    return jnp.sum(a * a, axis=1)


@jax.jit
def sqdist_block(xb: jax.Array, aa: jax.Array, piv: jax.Array, centre: jax.Array) -> jax.Array:
    """Squared distances ``(rows, k)`` of a block (row norms ``aa`` about ``centre``) to pivots.

    ``||a||² + ||b||² − 2ab`` needs one matmul instead of a (rows, k, d) difference tensor.
    Distances are taken about ``centre`` to shrink the norms and so the cancellation error, but
    ``(x − c)·b`` is computed as ``x·b − c·b``: feeding the raw block to the matmul lets XLA
    stream it, while a centred copy costs an extra write and read of the block (15x slower on
    CPU). The clip removes the tiny negatives that rounding leaves.
    """
    b = (piv - centre).astype(jnp.float32)
    cross = xb.astype(jnp.float32) @ b.T - centre @ b.T
    return jnp.maximum(aa[:, None] + jnp.sum(b * b, axis=1)[None, :] - 2.0 * cross, 0.0)
