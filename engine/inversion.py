"""Spectrograms back to sound: fast Griffin-Lim, mel inversion and feature-map sonification.

Everything frames exactly like :mod:`data.features` (it calls its ``stft``/``istft``), so a
magnitude computed by the features is a consistent target for the phase retrieval. All
heavy work is jit-compiled with static shapes: one ``FeatureParams`` (or one magnitude shape)
compiles once; values, keys, momentum and the iteration count are traced and never recompile.

References:
  Griffin & Lim (1984), "Signal estimation from modified short-time Fourier transform".
  Perraudin, Balazs & Søndergaard (2013), "A fast Griffin-Lim algorithm".
  d-DeVIS, "Deep sequence model debugger and visual interactive simulator": feature maps
  heard as log10 magnitude through Griffin-Lim.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from data.features import FeatureParams, istft, mel_filterbank, n_stft_frames, stft

PEAK = 0.9          # output peak: Panel's Audio pane wraps float samples >= 1.0
TARGET_RMS = 0.1    # loudness of sonified feature maps (-20 dBFS), before the peak limit
_NNLS_STEPS = 100   # FISTA steps of the mel inversion (residual ~0.3 % on speech-like input)


def _check_magnitude(mag_shape: tuple[int, ...], n_fft: int, hop_length: int, length: int) -> None:
    bins, frames = mag_shape[-2:]
    want = n_stft_frames(length, hop_length)
    if bins != n_fft // 2 + 1 or frames != want:
        raise ValueError(
            f"magnitude of shape {mag_shape[-2:]} does not match n_fft={n_fft}, "
            f"hop_length={hop_length}, length={length}: expected ({n_fft // 2 + 1}, {want}); "
            "use features_to_magnitude to bring model features to this grid")


def _fgla(mag: jax.Array, key: jax.Array, momentum: jax.Array, *, n_fft: int, hop_length: int,
          window: str, length: int, n_iter: jax.Array) -> jax.Array:
    """Fast Griffin-Lim loop for one magnitude (librosa's form of Perraudin's momentum)."""
    frame = dict(n_fft=n_fft, hop_length=hop_length, window=window)
    phase = jax.random.uniform(key, mag.shape, minval=0.0, maxval=2 * jnp.pi)
    angles = jnp.exp(1j * phase).astype(jnp.complex64)
    beta = momentum / (1.0 + momentum)

    def body(_, carry):
        angles, tprev = carry
        rebuilt = stft(istft(mag * angles, length=length, **frame), **frame)
        acc = rebuilt - beta * tprev
        # The tiny constant keeps the phase finite where the rebuilt spectrum is exactly 0
        # (silence); those bins are multiplied by a zero magnitude anyway.
        return acc / (jnp.abs(acc) + 1e-12), rebuilt

    angles, _ = jax.lax.fori_loop(0, n_iter, body, (angles, jnp.zeros_like(angles)))
    return istft(mag * angles, length=length, **frame).astype(jnp.float32)


def _n_iter(n_iter: int) -> jax.Array:
    if int(n_iter) != n_iter or n_iter < 0:
        raise ValueError(f"n_iter must be a non-negative integer, got {n_iter!r}")
    return jnp.int32(n_iter)


_STATIC = ("n_fft", "hop_length", "window", "length")


@partial(jax.jit, static_argnames=_STATIC)
def _griffin_lim_jit(mag, key, momentum, n_iter, *, n_fft, hop_length, window, length):
    return _fgla(mag, key, momentum, n_fft=n_fft, hop_length=hop_length, window=window,
                 length=length, n_iter=n_iter)


@partial(jax.jit, static_argnames=_STATIC)
def _griffin_lim_batch_jit(mags, keys, momentum, n_iter, *, n_fft, hop_length, window, length):
    def one(mag, key):
        return _fgla(mag, key, momentum, n_fft=n_fft, hop_length=hop_length, window=window,
                     length=length, n_iter=n_iter)
    return jax.vmap(one)(mags, keys)


def griffin_lim(magnitude: jax.Array, *, n_fft: int, hop_length: int, window: str, length: int,
                n_iter: int = 32, momentum: float = 0.99, key: jax.Array) -> jax.Array:
    """Waveform whose STFT magnitude approximates ``magnitude`` (fast Griffin-Lim).

    Args:
      magnitude: ``(n_fft // 2 + 1, frames)`` linear STFT magnitude, ``frames = 1 + length //
        hop_length`` (the framing of :func:`data.features.stft`).
      n_fft, hop_length: samples; window: ``"hamming"`` or ``"hann"``; length: output samples.
      n_iter: iterations (a traced value: changing it does not recompile).
      momentum: Perraudin's alpha; 0 gives the classic Griffin-Lim.
      key: ``jax.random`` key for the random initial phase.
    Returns:
      ``(length,)`` float32 waveform (not normalised).

    References:
      Perraudin, Balazs & Søndergaard (2013), "A fast Griffin-Lim algorithm".
    """
    magnitude = jnp.asarray(magnitude, dtype=jnp.float32)
    if magnitude.ndim != 2:
        raise ValueError(f"griffin_lim takes one (freq, frames) magnitude, got {magnitude.shape}; "
                         "use griffin_lim_batch for a batch")
    _check_magnitude(magnitude.shape, n_fft, hop_length, length)
    return _griffin_lim_jit(magnitude, key, jnp.float32(momentum), _n_iter(n_iter), n_fft=n_fft,
                            hop_length=hop_length, window=window, length=length)


def griffin_lim_batch(magnitudes: jax.Array, *, n_fft: int, hop_length: int, window: str,
                      length: int, n_iter: int = 32, momentum: float = 0.99,
                      key: jax.Array) -> jax.Array:
    """:func:`griffin_lim` of ``(batch, freq, frames)`` magnitudes in one jitted ``vmap``.

    Example ``i`` uses ``jax.random.split(key, batch)[i]``, so it equals ``griffin_lim`` called
    with that key. Returns ``(batch, length)`` float32.
    """
    magnitudes = jnp.asarray(magnitudes, dtype=jnp.float32)
    if magnitudes.ndim != 3:
        raise ValueError(f"griffin_lim_batch takes (batch, freq, frames), got {magnitudes.shape}")
    _check_magnitude(magnitudes.shape, n_fft, hop_length, length)
    keys = jax.random.split(key, magnitudes.shape[0])
    return _griffin_lim_batch_jit(magnitudes, keys, jnp.float32(momentum), _n_iter(n_iter),
                                  n_fft=n_fft, hop_length=hop_length, window=window,
                                  length=length)


def _nnls_mel(mel_power: jax.Array, fb: jax.Array) -> jax.Array:
    """Non-negative ``X`` minimising ``||fb @ X - mel_power||_F`` (accelerated projected gradient).

    FISTA from the pseudo-inverse clipped at 0, ``_NNLS_STEPS`` steps of size ``1 / ||fb||_2^2``
    (the gradient's Lipschitz constant). librosa's ``mel_to_stft`` poses the same problem and
    solves it with L-BFGS-B; 100 FISTA steps reach a ~10x smaller residual than its defaults.

    References:
      Beck & Teboulle (2009), "A fast iterative shrinkage-thresholding algorithm".
    """
    x0 = jnp.maximum(jnp.linalg.pinv(fb) @ mel_power, 0.0)
    step = 1.0 / jnp.linalg.norm(fb, ord=2) ** 2
    gram, rhs = fb.T @ fb, fb.T @ mel_power

    def body(_, carry):
        x, y, t = carry
        x_new = jnp.maximum(y - step * (gram @ y - rhs), 0.0)
        t_new = (1.0 + jnp.sqrt(1.0 + 4.0 * t * t)) / 2.0
        return x_new, x_new + ((t - 1.0) / t_new) * (x_new - x), t_new

    x, _, _ = jax.lax.fori_loop(0, _NNLS_STEPS, body, (x0, x0, jnp.float32(1.0)))
    return x


def features_to_magnitude(spec: jax.Array, params: FeatureParams) -> jax.Array:
    """Model features back to a linear STFT magnitude on the grid of :func:`data.features.stft`.

    Undoes the log10 (values at or below ``params.floor`` become 0), re-adds the dropped rows
    (Nyquist, as zeros) and frames (zeros; surplus floor-padded frames are cut). For ``logmel``
    the mel power is mapped back to linear frequency by non-negative least squares and
    square-rooted (as ``librosa.feature.inverse.mel_to_stft``).

    Args:
      spec: ``(rows, params.n_frames)`` log10 features, ``rows = params.shape[0]``.
    Returns:
      ``(n_fft // 2 + 1, 1 + n_samples // hop_length)`` non-negative magnitude (max-normalised
      units: a feature value of 0 maps to 1).
    """
    spec = jnp.asarray(spec, dtype=jnp.float32)
    if spec.shape != params.shape:
        raise ValueError(f"features of shape {spec.shape} do not match {params.kind} features "
                         f"of shape {params.shape}")
    lin = jnp.where(spec > params.floor, 10.0 ** spec, 0.0)
    bins, frames = params.n_fft // 2 + 1, n_stft_frames(params.n_samples, params.hop_length)
    lin = lin[:, :frames]
    lin = jnp.pad(lin, ((0, 0), (0, frames - lin.shape[1])))
    if params.kind == "logmel":
        fb = jnp.asarray(mel_filterbank(params.sample_rate, params.n_fft, params.n_mels,
                                        params.fmin, params.fmax))
        return jnp.sqrt(_nnls_mel(lin, fb))
    return jnp.pad(lin[:bins], ((0, bins - min(lin.shape[0], bins)), (0, 0)))


def _peak_normalise(wave: jax.Array, peak: float) -> jax.Array:
    # Silence (or a rounding-level residue) stays exactly zero instead of 0/0 = NaN.
    top = jnp.max(jnp.abs(wave))
    out = jnp.where(top > 1e-8, wave * (peak / jnp.maximum(top, 1e-8)), 0.0)
    # float32 rounding can land one ulp above ``peak``; the clip keeps the guarantee exact.
    return jnp.clip(out, -peak, peak).astype(jnp.float32)


def _loudness_normalise(wave: jax.Array) -> jax.Array:
    """Scale to ``TARGET_RMS``, then down (never up) so the peak stays at most ``PEAK``."""
    rms = jnp.sqrt(jnp.mean(wave ** 2))
    gain = jnp.where(rms > 1e-8, TARGET_RMS / jnp.maximum(rms, 1e-8), 0.0)
    scaled = wave * gain
    top = jnp.max(jnp.abs(scaled))
    scaled = scaled * jnp.minimum(1.0, PEAK / jnp.maximum(top, 1e-8))
    return jnp.clip(scaled, -PEAK, PEAK).astype(jnp.float32)


def _gl_features(spec, key, params: FeatureParams, n_iter: int) -> jax.Array:
    mag = features_to_magnitude(spec, params)
    return _fgla(mag, key, jnp.float32(0.99), n_fft=params.n_fft, hop_length=params.hop_length,
                 window=params.window, length=params.n_samples, n_iter=n_iter)


@partial(jax.jit, static_argnames=("params",))
def _spectrogram_to_audio_jit(spec, key, params: FeatureParams, n_iter: int) -> jax.Array:
    # Only the gain changes if the whole spectrogram is shifted in log10, and the output is
    # peak-normalised anyway; shifting values above 0 down keeps 10**x finite for any input.
    spec = jnp.maximum(spec - jnp.maximum(jnp.max(spec), 0.0), params.floor)
    return _peak_normalise(_gl_features(spec, key, params, n_iter), PEAK)


def _check_finite(x: jax.Array, what: str) -> None:
    try:
        finite = bool(np.isfinite(np.asarray(x)).all())
    except jax.errors.TracerArrayConversionError:
        return  # called under an outer jit: values are not known here
    if not finite:
        raise ValueError(f"{what} contains NaN or infinite values; nothing to sonify")


def spectrogram_to_audio(spec: jax.Array, params: FeatureParams, *, n_iter: int = 32,
                         key: jax.Array) -> jax.Array:
    """Playable audio for a spectrogram-shaped array in the model's feature space.

    Args:
      spec: ``params.shape`` log10 features (an input, an edited or a maximised input).
        Values above 0 are treated as louder than the clip maximum (the whole array is shifted
        down in log10, a gain change only); values at or below ``params.floor`` are silent.
      params: the features' exact record; n_iter: Griffin-Lim iterations; key: initial phase.
    Returns:
      ``(params.n_samples,)`` float32 peak-normalised to 0.9 (never reaching 1.0); all zeros
      for an all-floor (silent) input.
    """
    spec = jnp.asarray(spec, dtype=jnp.float32)
    if spec.shape != params.shape:
        raise ValueError(f"spectrogram of shape {spec.shape} does not match {params.kind} "
                         f"features of shape {params.shape}")
    _check_finite(spec, "spectrogram")
    return _spectrogram_to_audio_jit(spec, key, params, _n_iter(n_iter))


def spectral_convergence(reference_mag: jax.Array, estimate_mag: jax.Array) -> jax.Array:
    """``||ref - est||_F / ||ref||_F`` of two magnitudes of the same shape (0 = identical).

    References:
      Sturmel & Daudet (2011), "Signal reconstruction from STFT magnitude: a state of the art".
    """
    ref = jnp.asarray(reference_mag, dtype=jnp.float32)
    est = jnp.asarray(estimate_mag, dtype=jnp.float32)
    if ref.shape != est.shape:
        raise ValueError(f"magnitudes differ in shape: {ref.shape} vs {est.shape}")
    return jnp.linalg.norm(ref - est) / jnp.maximum(jnp.linalg.norm(ref), 1e-12)
