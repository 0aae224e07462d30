"""PivotMDS: layouts of millions of points from their distances to a few pivots.

The data ``x`` of shape ``(n, d)`` (one row per activation vector) may stay in host memory as a
NumPy array; the pivot distances are streamed through jit-compiled kernels one ``chunk`` of rows
at a time, so device memory is O(n·k) for the pivot distances plus one ``(chunk, d)`` block.
Either pivot choice reads the data about twice: max-min (:mod:`engine.projection.maxmin`) one
pass for the first pivot's distances plus the few rows each later choice needs, then both the
one pass for the layout's distances.
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from engine.projection.axes import sign_fix
from engine.projection.maxmin import maxmin_pivots
from engine.projection.streaming import aligned_empty, block_centre, check_matrix, row_block

PivotChoice = Literal["maxmin", "random"]


@jax.jit
def _cross_block(xb: jax.Array, b: jax.Array) -> jax.Array:
    """``-2 x·b`` of a block against the centred pivots: one matmul, one read of the block."""
    return -2.0 * (xb.astype(jnp.float32) @ b.T)


def random_pivots(key: jax.Array, n: int, k: int) -> np.ndarray:
    """``k`` distinct row indices in ``0..n-1``, sorted, uniformly at random from ``key``.

    The indices of the ``k`` largest of ``n`` i.i.d. uniforms: a uniform ``k``-subset in one
    O(n) pass (``jax.random.choice(replace=False)`` permutes all ``n``: 0.5 s at n = 1M).
    """
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    return np.sort(np.asarray(jax.lax.top_k(jax.random.uniform(key, (n,)), k)[1]))


def _pivot_cross(x, idx: np.ndarray, *, chunk: int) -> jax.Array:
    """What PivotMDS needs of the squared distances to the pivot rows ``idx``, in one pass.

    ``D²_ij = ||x_i - c||² + ||p_j - c||² - 2 (x_i - c)·(p_j - c)``; the double centring in
    :func:`_pivot_layout` removes every term constant along a row or a column, so only the
    cross term matters, and ``(x_i - c)·b_j = x_i·b_j - c·b_j`` differs from ``x_i·b_j`` by a
    column constant too. Returning ``-2 x_i·b_j`` gives the same layout without the pass over
    the data for the row norms (the centre ``c`` keeps the values small for float32).
    """
    n = x.shape[0]
    b = jax.device_put(np.asarray(x[np.sort(idx)], dtype=np.float32)) - block_centre(x, chunk)
    if not isinstance(x, jax.Array) and jax.default_backend() == "cpu":
        return jax.device_put(_cross_host(x, np.asarray(b), chunk))
    return jnp.concatenate([_cross_block(row_block(x, s, chunk), b) for s in range(0, n, chunk)],
                           axis=0)


def _cross_host(x: np.ndarray, b: np.ndarray, chunk: int) -> np.ndarray:
    """:func:`_cross_block` over all of a host array with NumPy's BLAS matmul.

    Used on the CPU backend: for this one large ``(n, d) @ (d, k)`` product, OpenBLAS's
    GEMM runs about twice as fast as XLA:CPU's on the 2-core machine the benchmarks run on
    (``benchmarks/projection.py``: 1.07 s against 2.38 s at 1M x 1000, k = 50).
    """
    bt = np.ascontiguousarray(-2.0 * b.T, dtype=np.float32)
    out = aligned_empty((x.shape[0], bt.shape[1]))  # handed to XLA without a copy
    for s in range(0, x.shape[0], chunk):
        np.matmul(np.asarray(x[s:s + chunk], dtype=np.float32), bt, out=out[s:s + chunk])
    return out


@partial(jax.jit, static_argnames=("dims",))
def _pivot_layout(d2: jax.Array, *, dims: int) -> jax.Array:
    """Layout from the (n, k) squared pivot distances (Brandes & Pich 2006, Sect. 4), or from
    any matrix equal to them up to terms constant along a row or a column."""
    c = -0.5 * (d2 - d2.mean(axis=1, keepdims=True) - d2.mean(axis=0, keepdims=True) + d2.mean())
    # Right singular vectors of C are the eigenvectors of the small k x k matrix C^T C, so the
    # SVD costs O(n k^2) and no n x n matrix is ever formed.
    evals, evecs = jnp.linalg.eigh(c.T @ c)
    order = jnp.argsort(evals)[::-1][:dims]
    v = evecs[:, order]
    sigma = jnp.sqrt(jnp.maximum(evals[order], 0.0))
    # C v = U sigma; rescaling to U sqrt(sigma) makes k = n reproduce classical MDS exactly
    # (C is then the MDS Gram matrix, whose eigenvalues are the singular values).
    y = (c @ v) / jnp.sqrt(jnp.where(sigma > 0, sigma, 1.0))
    return sign_fix(y)


def pivot_mds(x, *, k: int = 50, dims: int = 2, pivots: PivotChoice = "maxmin",
              key: jax.Array, chunk: int = 65536) -> jax.Array:
    """PivotMDS layout of ``n`` points from their squared distances to ``k`` pivots.

    Args:
      x: ``(n, d)`` float array (NumPy on the host or a jax.Array); rows are points.
      k: number of pivots, ``dims <= k <= n``.
      dims: output dimensions.
      pivots: ``"maxmin"`` (greedy farthest point from a random start,
        :func:`engine.projection.maxmin.maxmin_pivots`) or ``"random"``.
      key: ``jax.random`` key for the start point / the random pivots.
      chunk: rows streamed per kernel call (device memory ~ ``chunk * d`` floats).
    Returns:
      ``(n, dims)`` float32 layout in the units of ``x``; the largest-magnitude entry of each
      axis is positive.

    References:
      Brandes & Pich (2006), Eigensolver methods for progressive multidimensional scaling of
      large data. Graph Drawing, LNCS 4372.
    """
    n, _ = check_matrix(x)
    if not dims <= k <= n:
        raise ValueError(f"need dims <= k <= n, got dims={dims}, k={k}, n={n}")
    if pivots not in ("maxmin", "random"):
        raise ValueError(f"pivots must be 'maxmin' or 'random', got {pivots!r}")
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of rows, got {chunk}")
    chunk = min(chunk, n)
    idx = (maxmin_pivots(x, k, key=key, chunk=chunk) if pivots == "maxmin"
           else random_pivots(key, n, k))
    return _pivot_layout(_pivot_cross(x, idx, chunk=chunk), dims=dims)
