"""Spectrogram features: log-magnitude STFT (d-DeVIS) and log-mel (Soomro et al.).

Every feature is a pure function of one waveform, written in ``jax.numpy`` so that the
same framing is shared with the Griffin-Lim inversion in ``engine.inversion`` (an inverse
that frames differently from the forward transform never converges to the same sound).
Batch with ``jax.vmap`` or :func:`features_batch`.

Shapes follow the convention ``(freq, time)`` for one example and
``(batch, freq, time)`` for many.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

Kind = Literal["stft", "logmel"]


# field -> inclusive range; generous for any speech model, small enough that nothing built
# from them (windows, filter banks, frames) can exhaust memory.
_RANGES = {"sample_rate": (1000, 96000), "duration_s": (0.01, 60.0), "n_fft": (8, 16384),
           "hop_length": (1, 16384), "floor": (-100.0, -1e-3), "n_freq": (1, 8193),
           "n_frames": (1, 100_000), "n_mels": (0, 1024), "fmin": (0.0, 48000.0),
           "fmax": (0.0, 48000.0)}
_INTEGRAL = {"sample_rate", "n_fft", "hop_length", "n_freq", "n_frames", "n_mels"}


def _number(value, integral: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    if integral:
        return isinstance(value, (int, np.integer))
    return math.isfinite(float(value))


@dataclass(frozen=True)
class FeatureParams:
    """Exact record of how a waveform becomes a model input (stored with every checkpoint).

    Attributes:
      kind: ``"stft"`` (log10 magnitude, normalised to the clip's maximum, floored) or
        ``"logmel"`` (log10 mel power, normalised to the maximum, floored).
      sample_rate: Hz the waveform is resampled to.
      duration_s: window length in seconds; clips are trimmed/padded to it.
      n_fft: FFT size in samples (also the window length).
      hop_length: samples between frames.
      window: ``"hamming"`` or ``"hann"``.
      floor: lower clip of the log10 values (0 is the clip's maximum).
      n_freq: frequency rows kept (the STFT drops the Nyquist bin so 320 → 160 rows).
      n_frames: time columns kept (frames beyond are dropped, missing are floor-padded).
      n_mels, fmin, fmax: mel filterbank (``logmel`` only), Hz.
    """

    kind: Kind = "stft"
    sample_rate: int = 8000
    duration_s: float = 1.0
    n_fft: int = 320
    hop_length: int = 53
    window: str = "hamming"
    floor: float = -4.0
    n_freq: int = 160
    n_frames: int = 150
    n_mels: int = 0
    fmin: float = 0.0
    fmax: float = 0.0

    def __post_init__(self) -> None:
        # Checkpoint metadata arrives here from a file someone else may have written: every
        # field is type- and range-checked before anything is allocated from it.
        for name, (lo, hi) in _RANGES.items():
            value, integral = getattr(self, name), name in _INTEGRAL
            if not _number(value, integral) or not lo <= value <= hi:
                kind = "an integer" if integral else "a number"
                raise ValueError(f"feature parameter {name} must be {kind} in [{lo}, {hi}], "
                                 f"got {str(value)[:40]}")
        if self.kind not in ("stft", "logmel"):
            raise ValueError(f"feature kind must be 'stft' or 'logmel', got {str(self.kind)[:40]!r}")
        if self.hop_length > self.n_fft:
            raise ValueError(f"need 0 < hop_length <= n_fft, got {self.hop_length}, {self.n_fft}")
        if self.kind == "stft" and self.n_freq > self.n_fft // 2 + 1:
            raise ValueError(f"n_freq {self.n_freq} exceeds the {self.n_fft // 2 + 1} bins of "
                             f"n_fft {self.n_fft}")
        if self.fmax and not self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"need fmin < fmax <= sample_rate / 2, got {self.fmin}, {self.fmax}")
        if self.window not in ("hamming", "hann"):
            raise ValueError(f"window must be 'hamming' or 'hann', got {self.window!r}")
        if self.kind == "logmel" and self.n_mels <= 0:
            raise ValueError("logmel features need n_mels > 0")

    @property
    def n_samples(self) -> int:
        """Window length in samples."""
        return int(round(self.sample_rate * self.duration_s))

    @property
    def shape(self) -> tuple[int, int]:
        """Feature shape ``(freq, time)`` of one example."""
        rows = self.n_mels if self.kind == "logmel" else self.n_freq
        return (rows, self.n_frames)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeatureParams":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown feature parameters: {sorted(unknown)}")
        return cls(**d)


def ddevis_stft() -> FeatureParams:
    """d-DeVIS input: 8 kHz, 1 s, FFT 320, hop 53, Hamming, max-normalised log10, floor −4."""
    return FeatureParams()


def soomro_logmel() -> FeatureParams:
    """Soomro et al. input: 16 kHz, 1 s, 80-bin log-mel forced to 90 frames."""
    return FeatureParams(kind="logmel", sample_rate=16000, n_fft=512, hop_length=178,
                         window="hann", floor=-5.0, n_freq=257, n_frames=90, n_mels=80,
                         fmin=20.0, fmax=8000.0)


PRESETS = {"stft": ddevis_stft, "logmel": soomro_logmel}


@lru_cache(maxsize=16)
def window_array(name: str, n: int) -> np.ndarray:
    """Periodic analysis window (the choice that makes overlap-add exact at hop n/4)."""
    k = np.arange(n)
    a = 0.54 if name == "hamming" else 0.5
    return (a - (1 - a) * np.cos(2 * np.pi * k / n)).astype(np.float32)


@lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Slaney-normalised mel filterbank of shape ``(n_mels, n_fft // 2 + 1)`` (librosa's)."""
    import librosa

    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                               fmax=fmax or sample_rate / 2).astype(np.float32)


def n_stft_frames(n_samples: int, hop_length: int) -> int:
    """Frames of a centred STFT: one per hop, the first centred on sample 0."""
    return 1 + n_samples // hop_length


def stft(wave: jax.Array, *, n_fft: int, hop_length: int, window: str) -> jax.Array:
    """Centred STFT of one waveform (reflect padding by ``n_fft // 2``).

    Args:
      wave: ``(samples,)`` float waveform.
    Returns:
      complex ``(n_fft // 2 + 1, frames)`` with ``frames = 1 + samples // hop_length``.
    """
    pad = n_fft // 2
    x = jnp.pad(wave, (pad, pad), mode="reflect")
    n_frames = n_stft_frames(wave.shape[-1], hop_length)
    idx = jnp.arange(n_fft)[None, :] + hop_length * jnp.arange(n_frames)[:, None]
    frames = x[idx] * jnp.asarray(window_array(window, n_fft))
    return jnp.fft.rfft(frames, axis=-1).T


def istft(spec: jax.Array, *, n_fft: int, hop_length: int, window: str, length: int) -> jax.Array:
    """Inverse of :func:`stft` by weighted overlap-add (least-squares, Griffin & Lim 1984).

    Args:
      spec: complex ``(n_fft // 2 + 1, frames)``.
      length: samples of the output.
    """
    w = jnp.asarray(window_array(window, n_fft))
    frames = jnp.fft.irfft(spec.T, n=n_fft, axis=-1) * w
    n_frames = frames.shape[0]
    total = n_fft + hop_length * (n_frames - 1)
    idx = (jnp.arange(n_fft)[None, :] + hop_length * jnp.arange(n_frames)[:, None]).reshape(-1)
    y = jnp.zeros(total).at[idx].add(frames.reshape(-1))
    norm = jnp.zeros(total).at[idx].add(jnp.tile(w * w, n_frames))
    # Divide only where windows overlap enough; elsewhere the estimate is unconstrained.
    y = y / jnp.where(norm > 1e-6, norm, 1.0)
    pad = n_fft // 2
    y = y[pad:pad + length]
    return jnp.pad(y, (0, max(0, length - y.shape[0])))


def _fit_frames(x: jax.Array, n_frames: int, fill: float) -> jax.Array:
    x = x[:, :n_frames]
    missing = n_frames - x.shape[1]
    return jnp.pad(x, ((0, 0), (0, missing)), constant_values=fill) if missing > 0 else x


def log_magnitude(wave: jax.Array, params: FeatureParams) -> jax.Array:
    """Log10 STFT magnitude normalised to its maximum and floored (d-DeVIS).

    Returns ``(n_freq, n_frames)`` with values in ``[floor, 0]``.
    """
    mag = jnp.abs(stft(wave, n_fft=params.n_fft, hop_length=params.hop_length,
                       window=params.window))[: params.n_freq]
    return _normalised_log(mag, params)


def log_mel(wave: jax.Array, params: FeatureParams) -> jax.Array:
    """Log10 mel power normalised to its maximum and floored (Soomro et al.).

    Returns ``(n_mels, n_frames)`` with values in ``[floor, 0]``.
    """
    power = jnp.abs(stft(wave, n_fft=params.n_fft, hop_length=params.hop_length,
                         window=params.window)) ** 2
    fb = jnp.asarray(mel_filterbank(params.sample_rate, params.n_fft, params.n_mels,
                                    params.fmin, params.fmax))
    return _normalised_log(fb @ power, params)


def _normalised_log(x: jax.Array, params: FeatureParams) -> jax.Array:
    # Normalising by the clip's own maximum makes features invariant to gain; the tiny
    # constant keeps log10 finite on digital silence.
    ref = jnp.maximum(jnp.max(x), 1e-10)
    y = jnp.maximum(jnp.log10(x / ref + 1e-12), params.floor)
    return _fit_frames(y, params.n_frames, params.floor)


def features(wave: jax.Array, params: FeatureParams) -> jax.Array:
    """The model input for one waveform of ``params.n_samples`` samples."""
    fn = log_mel if params.kind == "logmel" else log_magnitude
    return fn(wave, params)


@partial(jax.jit, static_argnames=("params",))
def _features_batch(waves: jax.Array, params: FeatureParams) -> jax.Array:
    return jax.vmap(lambda w: features(w, params))(waves)


def features_batch(waves: np.ndarray | jax.Array, params: FeatureParams, *,
                   batch_size: int = 256) -> np.ndarray:
    """Features of ``(batch, n_samples)`` waveforms as a float32 NumPy array.

    Works in chunks of ``batch_size`` so memory stays bounded; the last chunk is padded to
    the same size so the jitted function compiles once.
    """
    waves = np.asarray(waves, dtype=np.float32)
    if waves.ndim != 2 or waves.shape[1] != params.n_samples:
        raise ValueError(f"expected waves of shape (batch, {params.n_samples}), got {waves.shape}")
    out = np.empty((waves.shape[0], *params.shape), dtype=np.float32)
    for start in range(0, waves.shape[0], batch_size):
        chunk = waves[start:start + batch_size]
        n = chunk.shape[0]
        if n < batch_size and waves.shape[0] > batch_size:
            chunk = np.pad(chunk, ((0, batch_size - n), (0, 0)))
        out[start:start + n] = np.asarray(_features_batch(jnp.asarray(chunk), params))[:n]
    return out
