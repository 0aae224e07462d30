"""Orientation of layout axes.

Eigenvectors and singular vectors are defined only up to sign, so the same data could come out
mirrored from one run (or one backend) to the next; the spectral layouts (PivotMDS, classical
MDS, PCA) fix every axis's sign the same way.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def sign_fix(y):
    """Make the largest-magnitude entry of every column positive (deterministic layouts).

    A NumPy array in gives a NumPy array out (the host PivotMDS path: no op-by-op compiles on
    a first call); a jax.Array (or a tracer) a jax.Array.
    """
    xp = np if isinstance(y, np.ndarray) else jnp
    idx = xp.argmax(xp.abs(y), axis=0)
    signs = xp.sign(y[idx, xp.arange(y.shape[1])])
    return y * xp.where(signs == 0, 1, signs).astype(y.dtype)
