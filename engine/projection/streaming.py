"""Row blocks of ``(n, d)`` data for the streamed projections (PivotMDS, PCA).

A NumPy array may stay in host memory; each kernel gets one ``chunk`` of rows at a time. On
the CPU backend a 64-byte aligned array (see :func:`aligned_empty`) reaches XLA without a copy.
"""

from __future__ import annotations

import jax
import numpy as np


def aligned_empty(shape: tuple[int, ...], dtype=np.float32, *, align: int = 64) -> np.ndarray:
    """Uninitialised host array whose buffer starts on an ``align``-byte boundary.

    XLA's CPU client aliases such buffers instead of copying them, which saves one full pass
    over the data per chunk when streaming millions of rows.
    """
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buf = np.empty(nbytes + align, dtype=np.uint8)
    offset = (-buf.ctypes.data) % align
    return buf[offset:offset + nbytes].view(dtype).reshape(shape)


def check_matrix(x, name: str = "x") -> tuple[int, int]:
    """``(n, d)`` of a point matrix; ``ValueError`` unless it is 2-D with ``n >= 2, d >= 1``."""
    shape = np.shape(x)
    if len(shape) != 2 or shape[0] < 2 or shape[1] < 1:
        raise ValueError(f"{name} must have shape (n, d) with n >= 2 and d >= 1, got {shape}")
    return int(shape[0]), int(shape[1])


def row_block(x, start: int, chunk: int) -> jax.Array:
    """Rows ``start:start+chunk`` of ``x`` on the device (zero-copy for aligned host arrays).

    Only the last block is shorter, so each kernel compiles at most twice.
    """
    return jax.device_put(x[start:start + chunk])


def block_centre(x, chunk: int) -> jax.Array:
    """Mean of the first ``chunk`` rows, accumulated in float64 without a float64 copy of the
    block (the copy cost 1.4 s of page faults for 65,536 x 1000)."""
    block = np.asarray(x[:chunk])
    return jax.device_put(block.mean(axis=0, dtype=np.float64).astype(np.float32))
