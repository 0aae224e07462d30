"""Classical (Torgerson) MDS from the full ``n x n`` squared-distance matrix; small ``n`` only.

For large ``n`` use :func:`engine.projection.pivot_mds`, which with all points as pivots
reproduces this layout exactly.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from engine.projection.axes import sign_fix
from engine.projection.distances import row_sqnorms, sqdist_block
from engine.projection.streaming import check_matrix

MAX_MDS_POINTS = 20000


def classical_mds(x: jax.Array, *, dims: int = 2) -> jax.Array:
    """Classical (Torgerson) MDS from the full n x n squared-distance matrix; small n only.

    Args:
      x: ``(n, d)`` points, ``n <= 20000``.
    Returns:
      ``(n, dims)`` layout: top eigenvectors of ``B = -1/2 J D² J`` times sqrt(eigenvalue).

    References:
      Torgerson (1952), Multidimensional scaling: I. Theory and method. Psychometrika 17.
    """
    n, _ = check_matrix(x)
    if n > MAX_MDS_POINTS:
        raise ValueError(f"classical_mds builds an n x n matrix; n={n} > {MAX_MDS_POINTS}. "
                         "Use pivot_mds for large n.")
    xd = x if isinstance(x, jax.Array) else jax.device_put(np.asarray(x, np.float32))
    return _classical_mds(xd.astype(jnp.float32), dims=dims)


@partial(jax.jit, static_argnames=("dims",))
def _classical_mds(x: jax.Array, *, dims: int) -> jax.Array:
    c = jnp.mean(x, axis=0)
    d2 = sqdist_block(x, row_sqnorms(x, c), x, c)
    b = -0.5 * (d2 - d2.mean(axis=0, keepdims=True) - d2.mean(axis=1, keepdims=True) + d2.mean())
    evals, evecs = jnp.linalg.eigh(b)
    order = jnp.argsort(evals)[::-1][:dims]
    return sign_fix(evecs[:, order] * jnp.sqrt(jnp.maximum(evals[order], 0.0)))
