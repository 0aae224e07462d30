"""PivotMDS: layouts of millions of points from their distances to a few pivots.

The data ``x`` of shape ``(n, d)`` (one row per activation vector) may stay in host memory as a
NumPy array, read one ``chunk`` of rows at a time, so memory is O(n·k) for the pivot distances
plus one ``(chunk, d)`` block. On the CPU backend a host array takes NumPy's BLAS for the one
large product and the layout's Gram sums (no jit compile but the max-min pass's kernel); a
jax.Array (or another backend) takes jit-compiled kernels. Max-min pivots
(:mod:`engine.projection.maxmin`) cost one pass for the first pivot's distances plus the rows
each later choice needs; then either pivot choice makes one pass for the layout's distances.
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from engine.projection.axes import sign_fix
from engine.projection.maxmin import maxmin_pivots
from engine.projection.streaming import aligned_empty, check_matrix, row_block

PivotChoice = Literal["maxmin", "random"]
GRAM_ROWS = 4096  # rows per product on the (n, k) cross term: in L2, and small enough that
# OpenBLAS runs the layout's (rows, k) @ (k, 2) on one thread (see _host_layout)


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


def _centred_pivots(x, idx: np.ndarray) -> np.ndarray:
    """The pivot rows ``idx`` (in row order) minus their mean, ``(k, d)`` float32.

    Any centre ``c`` gives the same layout (the double centring removes it, see
    :func:`_pivot_cross`); the pivots' own mean keeps ``b`` small for float32 and costs no
    pass over the data (the mean of a block of 65,536 rows cost 20-40 ms at d = 512).
    """
    p = np.asarray(x[np.sort(idx)], dtype=np.float32)
    return p - p.mean(axis=0, dtype=np.float64).astype(np.float32)


def _pivot_cross(x, b: np.ndarray, *, chunk: int) -> jax.Array:
    """What PivotMDS needs of the squared distances to the pivots ``b + c``, in one pass.

    ``D²_ij = ||x_i - c||² + ||p_j - c||² - 2 (x_i - c)·(p_j - c)``; the double centring in
    :func:`_pivot_layout` removes every term constant along a row or a column, so only the
    cross term matters, and ``(x_i - c)·b_j = x_i·b_j - c·b_j`` differs from ``x_i·b_j`` by a
    column constant too. Returning ``-2 x_i·b_j`` gives the same layout without the pass over
    the data for the row norms.
    """
    n, bd = x.shape[0], jax.device_put(b)
    return jnp.concatenate([_cross_block(row_block(x, s, chunk), bd) for s in range(0, n, chunk)],
                           axis=0)


def _cross_host(x: np.ndarray, b: np.ndarray, chunk: int) -> tuple[np.ndarray, ...]:
    """:func:`_cross_block` over all of a host array with NumPy's BLAS matmul, shifted, and
    the Gram terms of its columns, each block's taken while the block is in cache.

    Used on the CPU backend: this one large ``(n, d) @ (d, k)`` product took 1.07 s with
    OpenBLAS against 2.38 s with XLA:CPU at 1M x 1000, k = 50 (an earlier run of
    ``benchmarks/projection.py`` on the 2-core machine); at 200k x 512 on the loaded machine
    (load 4) the bare products were about even, and the default call took 0.50 s this way
    against 0.57 s with the product and the block's Gram fused in one XLA kernel, whose
    compile added 0.26 s to the first call.

    The Gram products take ``GRAM_ROWS`` rows at a time, in L2 cache: one product per
    65,536-row block cost 72 ms at 200k x 50 (``scipy`` ``ssyrk``, load 3), 4,096-row ones 21.

    Returns ``F = D - s`` ``(n, k)`` float32 with ``D = -2 x bᵀ`` and ``s`` ``(k,)`` the first
    block's column means, then ``FᵀF`` ``(k, k)`` and the column sums of ``F`` ``(k,)``
    (float64 across blocks), and ``s``. A column constant changes no layout; the shift keeps
    the float32 Gram free of the cancellation that ``DᵀD - n μμᵀ`` would suffer where the
    data lie far from the origin (``D``'s columns then have means far above their spread).
    """
    bt = np.ascontiguousarray(-2.0 * b.T, dtype=np.float32)
    k = bt.shape[1]
    out = aligned_empty((x.shape[0], k))
    gram, total, shift = np.zeros((k, k)), np.zeros(k), None
    for s in range(0, x.shape[0], chunk):
        np.matmul(np.asarray(x[s:s + chunk], dtype=np.float32), bt, out=out[s:s + chunk])
        shift = out[s:s + chunk].mean(axis=0) if shift is None else shift
        end = min(s + chunk, x.shape[0])
        for t in range(s, end, GRAM_ROWS):
            f = out[t:min(t + GRAM_ROWS, end)]
            f -= shift
            gram += f.T @ f
            total += f.sum(axis=0, dtype=np.float64)
    return out, gram, total, shift


def _host_layout(f: np.ndarray, gram: np.ndarray, total: np.ndarray, *, dims: int) -> jax.Array:
    """:func:`_pivot_layout` from :func:`_cross_host`'s ``F`` and Gram terms.

    ``C = -½ J_n D J_k`` (``J`` the centring matrices) and ``J_n D = J_n F``, so
    ``CᵀC = ¼ J_k (FᵀF - n m mᵀ) J_k`` with ``m = colmean(F)``: a ``k x k`` matrix from the
    block sums. The layout ``C v / √σ = -½ J_n F w`` with ``w = J_k v / √σ`` is one more
    product ``F w``, less its column mean ``m w``. No centred ``n x k`` copy is made. The
    product goes ``GRAM_ROWS`` rows at a time: whole, OpenBLAS splits a ``(n, k) @ (k, 2)``
    product over two threads and took 46 ms for 200k x 50 on the loaded 2-core machine
    (load 3), 25x the 1.7 ms of the single-threaded pieces.
    """
    n, k = f.shape
    m = total / n
    jk = np.eye(k) - 1.0 / k
    evals, evecs = np.linalg.eigh(0.25 * jk @ (gram - n * np.outer(m, m)) @ jk)
    order = np.argsort(evals)[::-1][:dims]
    sigma = np.sqrt(np.maximum(evals[order], 0.0))
    w = (jk @ evecs[:, order]) / np.sqrt(np.where(sigma > 0, sigma, 1.0))
    y, w32 = np.empty((n, dims), np.float32), w.astype(np.float32)
    for t in range(0, n, GRAM_ROWS):  # one (n, k) @ (k, 2) product: 46 ms at load 3; 1.7
        np.matmul(f[t:t + GRAM_ROWS], w32, out=y[t:t + GRAM_ROWS])
    y -= (m @ w).astype(np.float32)
    y *= np.float32(-0.5)
    return jnp.asarray(sign_fix(y))


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
    b = _centred_pivots(x, idx)
    if not isinstance(x, jax.Array) and jax.default_backend() == "cpu":
        f, gram, total, _ = _cross_host(x, b, chunk)
        return _host_layout(f, gram, total, dims=dims)
    return _pivot_layout(_pivot_cross(x, b, chunk=chunk), dims=dims)
