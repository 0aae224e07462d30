"""Principal components of ``(n, d)`` data, streamed in row blocks for large ``n``."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from engine.projection.axes import sign_fix
from engine.projection.streaming import block_centre, check_matrix, row_block


@partial(jax.jit, static_argnames=("dims",))
def _pca_small(x: jax.Array, *, dims: int) -> jax.Array:
    xc = x - jnp.mean(x, axis=0)
    u, s, _ = jnp.linalg.svd(xc, full_matrices=False)
    return sign_fix(u[:, :dims] * s[:dims])


@jax.jit
def _moments_block(xb: jax.Array, centre: jax.Array):
    a = xb - centre
    return jnp.sum(a, axis=0), a.T @ a


def pca(x, *, dims: int = 2, chunk: int = 65536) -> jax.Array:
    """Principal-component scores of ``(n, d)`` data: ``(n, dims)``, sign-fixed.

    For ``n <= chunk`` the thin SVD of the centred data; otherwise the ``d x d`` covariance is
    accumulated chunk-wise about a provisional centre (the first chunk's mean, which keeps the
    float32 sums well conditioned) and the data projected on its top eigenvectors.

    References:
      Pearson (1901); Jolliffe (2002), Principal Component Analysis.
    """
    n, d = check_matrix(x)
    if not 1 <= dims <= min(n, d):
        raise ValueError(f"need 1 <= dims <= min(n, d) = {min(n, d)}, got {dims}")
    if n <= chunk:
        xd = x if isinstance(x, jax.Array) else jax.device_put(np.asarray(x, np.float32))
        return _pca_small(xd.astype(jnp.float32), dims=dims)
    centre = block_centre(x, chunk)
    s1, s2 = jnp.zeros(d), jnp.zeros((d, d))
    for s in range(0, n, chunk):
        m1, m2 = _moments_block(row_block(x, s, chunk), centre)
        s1, s2 = s1 + m1, s2 + m2
    mu = s1 / n
    evals, evecs = jnp.linalg.eigh(s2 / n - jnp.outer(mu, mu))
    v = evecs[:, jnp.argsort(evals)[::-1][:dims]]
    shift = centre + mu
    scores = [row_block(x, s, chunk) @ v - shift @ v for s in range(0, n, chunk)]
    return sign_fix(jnp.concatenate(scores))
