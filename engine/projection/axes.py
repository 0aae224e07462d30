"""Orientation of layout axes.

Eigenvectors and singular vectors are defined only up to sign, so the same data could come out
mirrored from one run (or one backend) to the next; the spectral layouts (PivotMDS, classical
MDS, PCA) fix every axis's sign the same way.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def sign_fix(y: jax.Array) -> jax.Array:
    """Make the largest-magnitude entry of every column positive (deterministic layouts)."""
    idx = jnp.argmax(jnp.abs(y), axis=0)
    signs = jnp.sign(y[idx, jnp.arange(y.shape[1])])
    return y * jnp.where(signs == 0, 1.0, signs)
