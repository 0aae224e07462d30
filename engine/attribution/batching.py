"""Batches of the attribution methods: validation of the inputs and targets, the rows-per-chunk
policy, and chunked ``lax.scan``/``lax.map`` over (example, step) rows so memory is bounded by
the chunk, never by ``steps × batch``.

Also used by :mod:`engine.ablation` and :mod:`engine.faithfulness`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# Input floats per chunk when the caller sets no internal batch size: 4M floats (16 MiB of
# inputs, ~175 rows of 160 x 150). The d-DeVIS CNN's gradient holds ~50 floats of activations
# per input float, so a chunk peaks near 0.8 GB; one clip's 64 integrated-gradient steps
# (1.5M floats) stay one chunk.
MAX_CHUNK_ELEMENTS = 1 << 22


def rows_per_chunk(row_size: int, internal_batch_size: int | None) -> int:
    """Rows (example, step) per chunk: ``internal_batch_size``, or by default as many rows of
    ``row_size`` floats as :data:`MAX_CHUNK_ELEMENTS` holds (at least one)."""
    if internal_batch_size is not None:
        return int(internal_batch_size)
    return max(1, MAX_CHUNK_ELEMENTS // int(row_size))


def check_batch(x, target, *, waveform: bool | None = None) -> tuple[Array, Array]:
    """Validate ``x`` and ``target`` (int, scalar or ``(batch,)``).

    ``x`` is ``(batch, freq, time)`` features (``waveform=False``, what the attribution
    methods take by default), ``(batch, n_samples)`` waveforms (``waveform=True``) or, with
    ``waveform=None``, any batch of at least one axis per example (analyses that only run the
    model on ``x``: ablation, faithfulness).
    """
    x = jnp.asarray(x, jnp.float32)
    if waveform is None:
        if x.ndim < 2:
            raise ValueError(f"x must be a batch (batch, ...), got shape {x.shape}; "
                             "add a batch axis with x[None]")
    elif x.ndim != (2 if waveform else 3):
        want = "(batch, n_samples) waveforms" if waveform else "(batch, freq, time)"
        other = ("pass waveform=False for (batch, freq, time) features" if waveform else
                 "pass waveform=True for (batch, n_samples) waveforms")
        raise ValueError(f"x must be {want}, got shape {x.shape}; add a batch axis with "
                         f"x[None], or {other}")
    t = np.asarray(target)
    if not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"target must hold integer class indices, got dtype {t.dtype}")
    t = np.broadcast_to(t, (x.shape[0],)) if t.ndim == 0 else t
    if t.shape != (x.shape[0],) or np.any(t < 0):
        raise ValueError(f"target must be non-negative ints of shape ({x.shape[0]},), got {t}")
    return x, jnp.asarray(t, jnp.int32)


def check_positive(**values) -> None:
    """ValueError naming the first option that is not a positive integer."""
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
