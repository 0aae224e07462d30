"""Reference inputs ("baselines") of integrated gradients, occlusion and faithfulness curves:
zeros, silence (every cell at the feature floor; 0.0 for a waveform) or a Gaussian blur of
the input (over frequency and time for features, along samples for a waveform).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
BASELINES = ("zeros", "silence", "blur")


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


def gaussian_blur_samples(x: Array, *, sigma: float = 4.0) -> Array:
    """Gaussian blur of ``(..., n_samples)`` waveforms along samples; ``sigma`` in samples.

    A Gaussian low-pass: its gain is ``exp(-2 π² (σ / sr)² f²)``, one half at
    ``f ≈ 0.19 sr / σ`` (750 Hz for σ = 4 samples at 16 kHz). Edges repeat the nearest sample
    (scipy's ``gaussian_filter1d(mode='nearest', truncate=4)``). A convolution, not the
    ``(n, n)`` matrix of :func:`gaussian_blur`: a second of audio has 16 000 samples.
    """
    if sigma <= 0:
        return jnp.asarray(x)
    r = int(4.0 * sigma + 0.5)
    k = np.arange(-r, r + 1)
    w = np.exp(-0.5 * (k / sigma) ** 2)
    w = jnp.asarray(w / w.sum(), jnp.float32)
    flat = jnp.asarray(x).reshape(-1, x.shape[-1])
    out = jax.vmap(lambda row: jnp.convolve(jnp.pad(row, r, mode="edge"), w, mode="valid"))(flat)
    return out.reshape(x.shape)


def make_baseline(x: Array, baseline="silence", *, floor: float = -4.0,
                  blur_sigma: tuple[float, float] = (4.0, 4.0)) -> Array:
    """Reference input of ``x``: ``"zeros"``, ``"silence"`` (every cell at the feature
    ``floor``, log10 units; pass ``floor=0.0`` for waveforms), ``"blur"`` or an array
    broadcastable to ``x``.

    ``x`` is ``(batch, freq, time)`` features, blurred by :func:`gaussian_blur` with
    ``blur_sigma`` (bins, frames), or ``(batch, n_samples)`` waveforms, blurred by
    :func:`gaussian_blur_samples` with ``blur_sigma[-1]`` samples.
    """
    if isinstance(baseline, str):
        if baseline == "zeros":
            return jnp.zeros_like(x)
        if baseline == "silence":
            return jnp.full_like(x, floor)
        if baseline == "blur":
            if x.ndim == 2:
                return gaussian_blur_samples(x, sigma=float(blur_sigma[-1]))
            return gaussian_blur(x, sigma=blur_sigma)
        raise ValueError(f"baseline must be one of {BASELINES} or an array, got {baseline!r}")
    b = jnp.asarray(baseline, jnp.float32)
    try:
        return jnp.broadcast_to(b, x.shape)
    except ValueError:
        raise ValueError(f"baseline of shape {b.shape} does not broadcast to x {x.shape}") from None
