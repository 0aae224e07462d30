"""Hear a filter's activation map (d-DeVIS): resize it to the input's time-frequency grid,
take it as a log magnitude and invert it with Griffin-Lim (:mod:`engine.inversion`)."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from data.features import FeatureParams
from engine.inversion import _check_finite, _gl_features, _loudness_normalise, _n_iter


@partial(jax.jit, static_argnames=("shape",))
def _resize_batch(fmaps, shape: tuple[int, int]) -> jax.Array:
    """Every ``(h, w)`` map resized (linear) to ``shape``; compiled per map shape, cheaply, so
    the Griffin-Lim kernel below compiles once for every layer."""
    return jax.vmap(lambda f: jax.image.resize(f.astype(jnp.float32), shape, method="linear"))(
        fmaps)


def _sonify_one(grid, key, params: FeatureParams, n_iter: int) -> jax.Array:
    lo, hi = jnp.min(grid), jnp.max(grid)
    # Min-max scale to [0, 1]. A constant map (a dead filter) scales to 0, i.e. silence; the
    # relative tolerance keeps resampling round-off of a constant from being blown up to noise.
    span = hi - lo
    flat = span <= 1e-5 * (1.0 + jnp.abs(hi) + jnp.abs(lo))
    unit = jnp.where(flat, 0.0, (grid - lo) / jnp.where(flat, 1.0, span))
    log_mag = params.floor * (1.0 - unit)
    return _loudness_normalise(_gl_features(log_mag, key, params, n_iter))


@partial(jax.jit, static_argnames=("params",))
def _sonify_grids_jit(grids, keys, params: FeatureParams, n_iter: int) -> jax.Array:
    return jax.vmap(lambda f, k: _sonify_one(f, k, params, n_iter))(grids, keys)


def _sonify_batch(fmaps, keys, params: FeatureParams, n_iter: int) -> jax.Array:
    return _sonify_grids_jit(_resize_batch(fmaps, tuple(params.shape)), keys, params, n_iter)


def sonify_feature_map(fmap: jax.Array, params: FeatureParams, *, n_iter: int = 32,
                       key: jax.Array) -> jax.Array:
    """Hear one filter's activation map as sound (d-DeVIS).

    The ``(h, w)`` map is resized (linear) to the input's ``params.shape`` time-frequency grid,
    min-max scaled to ``[params.floor, 0]`` and taken as log10 magnitude (mel power for
    ``logmel``), then inverted with Griffin-Lim. d-DeVIS divided the FFT size by the pooling
    factor instead; resizing keeps one framing for every layer.

    Args:
      fmap: ``(h, w)`` activation, rows = frequency (low first), columns = time.
    Returns:
      ``(params.n_samples,)`` float32 at RMS 0.1 unless that would push the peak past 0.9, in
      which case the peak is 0.9; a constant map gives silence (zeros).

    References:
      d-DeVIS, "Deep sequence model debugger and visual interactive simulator"
      (feature-map audio).
    """
    fmap = jnp.asarray(fmap, dtype=jnp.float32)
    if fmap.ndim != 2 or min(fmap.shape) < 1:
        raise ValueError(f"sonify_feature_map takes one (h, w) map, got {fmap.shape}; "
                         "use sonify_feature_maps for a layer")
    _check_finite(fmap, "feature map")
    return _sonify_batch(fmap[None], jnp.stack([key]), params, _n_iter(n_iter))[0]


def sonify_feature_maps(fmaps: jax.Array, params: FeatureParams, *, n_iter: int = 32,
                        key: jax.Array) -> jax.Array:
    """:func:`sonify_feature_map` of a whole layer, ``(n, h, w)`` -> ``(n, params.n_samples)``.

    One jitted ``vmap``; map ``i`` uses ``jax.random.split(key, n)[i]`` and equals
    ``sonify_feature_map`` called with that key.
    """
    fmaps = jnp.asarray(fmaps, dtype=jnp.float32)
    if fmaps.ndim != 3 or min(fmaps.shape) < 1:
        raise ValueError(f"sonify_feature_maps takes (n, h, w) maps, got {fmaps.shape}; "
                         "for channels-last activations pass jnp.moveaxis(act, -1, 0)")
    _check_finite(fmaps, "feature maps")
    return _sonify_batch(fmaps, jax.random.split(key, fmaps.shape[0]), params,
                             _n_iter(n_iter))
