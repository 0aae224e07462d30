"""Shared plumbing of the attribution methods (:mod:`engine.attribution`): batch and option
validation, chunked ``lax.scan``/``lax.map`` over (example, step) rows, target-class readouts and
reference inputs (baselines).

Also used by :mod:`engine.ablation` and :mod:`engine.faithfulness` (through
:mod:`engine.attribution`, which re-exports the public names).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
BASELINES = ("zeros", "silence", "blur")


@lru_cache(maxsize=64)
def logits_from_acts(acts_fn: Callable) -> Callable:
    """A stable ``logits_fn`` view of an ``acts_fn`` (cached, so jit caches stay warm)."""
    return lambda x: acts_fn(x)[0]


def check_batch(x, target) -> tuple[Array, Array]:
    """Validate ``x`` ``(batch, freq, time)`` and ``target`` (int, scalar or ``(batch,)``)."""
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 3:
        raise ValueError(f"x must be (batch, freq, time), got shape {x.shape}; "
                         "add a batch axis with x[None]")
    t = np.asarray(target)
    if not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"target must hold integer class indices, got dtype {t.dtype}")
    t = np.broadcast_to(t, (x.shape[0],)) if t.ndim == 0 else t
    if t.shape != (x.shape[0],) or np.any(t < 0):
        raise ValueError(f"target must be non-negative ints of shape ({x.shape[0]},), got {t}")
    return x, jnp.asarray(t, jnp.int32)


def _check_positive(**values) -> None:
    for name, v in values.items():
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")


def _pad_rows(rows: tuple, chunk: int) -> tuple[tuple, int]:
    n = int(np.shape(rows[0])[0])
    n_chunks = -(-n // chunk)
    pad = n_chunks * chunk - n
    # Padding rows point at example 0 and carry zero weight where a weight exists.
    return tuple(jnp.pad(jnp.asarray(r), (0, pad)).reshape(n_chunks, chunk) for r in rows), n


def sum_in_chunks(fn: Callable, rows: tuple, *, chunk: int, init):
    """``fn(acc, rows_chunk) -> acc`` folded over ``rows`` (``(n,)`` arrays) by chunks."""
    chunks, n = _pad_rows(rows, min(chunk, int(np.shape(rows[0])[0])))
    return jax.lax.scan(lambda acc, r: (fn(acc, r), None), init, chunks)[0]


def map_in_chunks(fn: Callable, rows: tuple, *, chunk: int):
    """``fn(rows_chunk) -> (chunk, ...)`` mapped over ``rows`` by chunks: ``(n, ...)``."""
    chunks, n = _pad_rows(rows, min(chunk, int(np.shape(rows[0])[0])))
    out = jax.lax.map(fn, chunks)
    return jax.tree.map(lambda o: o.reshape(-1, *o.shape[2:])[:n], out)


def target_logit_sum(logits_fn: Callable, x: Array, target: Array) -> Array:
    return jnp.take_along_axis(logits_fn(x), target[:, None], axis=1).sum()


def target_prob(logits_fn: Callable, x: Array, target: Array) -> Array:
    """Softmax probability of each example's target class, ``(batch,)``."""
    p = jax.nn.softmax(logits_fn(x), axis=-1)
    return jnp.take_along_axis(p, target[:, None], axis=1)[:, 0]


def _gaussian_matrix(n: int, sigma: float) -> np.ndarray:
    """``(n, n)`` matrix equal to scipy.ndimage.gaussian_filter1d(mode='nearest', truncate=4)."""
    if sigma <= 0:
        return np.eye(n, dtype=np.float32)
    k = np.arange(-int(4.0 * sigma + 0.5), int(4.0 * sigma + 0.5) + 1)
    w = np.exp(-0.5 * (k / sigma) ** 2)
    w /= w.sum()
    rows = np.broadcast_to(np.arange(n)[:, None], (n, k.size))
    m = np.zeros((n, n))
    np.add.at(m, (rows, np.clip(rows + k[None, :], 0, n - 1)), np.broadcast_to(w, rows.shape))
    return m.astype(np.float32)


def gaussian_blur(x: Array, *, sigma: tuple[float, float] = (4.0, 4.0)) -> Array:
    """Gaussian blur of ``(..., freq, time)`` along both axes; ``sigma`` in (bins, frames).

    Edges repeat the nearest value (scipy's ``mode='nearest'``), so a constant stays constant.
    """
    mf = jnp.asarray(_gaussian_matrix(x.shape[-2], sigma[0]))
    mt = jnp.asarray(_gaussian_matrix(x.shape[-1], sigma[1]))
    return jnp.einsum("fg,...gt,st->...fs", mf, x, mt)


def make_baseline(x: Array, baseline="silence", *, floor: float = -4.0,
                  blur_sigma: tuple[float, float] = (4.0, 4.0)) -> Array:
    """Reference input ``(batch, freq, time)``: ``"zeros"``, ``"silence"`` (every cell at the
    feature ``floor``, log10 units), ``"blur"`` (:func:`gaussian_blur` of ``x``) or an array
    broadcastable to ``x``."""
    if isinstance(baseline, str):
        if baseline == "zeros":
            return jnp.zeros_like(x)
        if baseline == "silence":
            return jnp.full_like(x, floor)
        if baseline == "blur":
            return gaussian_blur(x, sigma=blur_sigma)
        raise ValueError(f"baseline must be one of {BASELINES} or an array, got {baseline!r}")
    b = jnp.asarray(baseline, jnp.float32)
    try:
        return jnp.broadcast_to(b, x.shape)
    except ValueError:
        raise ValueError(f"baseline of shape {b.shape} does not broadcast to x {x.shape}") from None
