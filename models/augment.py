"""Spectrogram augmentation for training: random time shift, frequency warp, SpecAugment masks.

Small speech corpora (FSDD has 50 takes per speaker and digit) are memorised quickly; shifting
the word in time and masking a few frequency rows and time columns (Park et al. 2019,
"SpecAugment") makes a CNN rely on the shape of the whole word instead of exact positions.
The frequency warp stretches or squeezes the frequency axis by a random factor, like vocal
tract length perturbation (Jaitly & Hinton 2013, "Vocal Tract Length Perturbation (VTLP)
improves speech recognition"): a model that must recognise unseen voices sees each training
voice with a longer and a shorter vocal tract. All randomness comes from the ``rng`` the
training loop passes in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SpecAugment:
    """Callable ``augment(x (batch, freq, time), rng) -> x`` for ``train_classifier``.

    Attributes:
      floor: feature floor used to fill shifted-in and masked cells (silence).
      max_shift: largest time shift in frames, either direction.
      freq_masks, freq_width: number and maximum height (rows) of frequency masks.
      time_masks, time_width: number and maximum width (frames) of time masks.
      freq_warp: largest relative stretch of the frequency axis (0.1: factors in [0.9, 1.1];
        0 turns the warp off). Row ``f`` of the output is row ``f / factor`` of the input,
        linearly interpolated; rows beyond the top are filled with the floor.
    """

    floor: float = -4.0
    max_shift: int = 15
    freq_masks: int = 1
    freq_width: int = 12
    time_masks: int = 1
    time_width: int = 12
    freq_warp: float = 0.0

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = np.array(x, dtype=np.float32, copy=True)
        for i in range(x.shape[0]):
            x[i] = self._one(x[i], rng)
        return x

    def _one(self, spec: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n_freq, n_time = spec.shape
        if self.freq_warp:
            spec = warp_frequency(spec, float(rng.uniform(1 - self.freq_warp, 1 + self.freq_warp)),
                                  floor=self.floor)
        shift = int(rng.integers(-self.max_shift, self.max_shift + 1)) if self.max_shift else 0
        if shift:
            spec = np.roll(spec, shift, axis=1)
            if shift > 0:
                spec[:, :shift] = self.floor
            else:
                spec[:, shift:] = self.floor
        for _ in range(self.freq_masks):
            w = int(rng.integers(0, self.freq_width + 1))
            f0 = int(rng.integers(0, max(1, n_freq - w)))
            spec[f0:f0 + w, :] = self.floor
        for _ in range(self.time_masks):
            w = int(rng.integers(0, self.time_width + 1))
            t0 = int(rng.integers(0, max(1, n_time - w)))
            spec[:, t0:t0 + w] = self.floor
        return spec


def warp_frequency(spec: np.ndarray, factor: float, *, floor: float) -> np.ndarray:
    """``spec (freq, time)`` with its frequency axis stretched by ``factor`` (> 1: formants move
    up, as for a shorter vocal tract). Output row ``f`` = input row ``f / factor``, linearly
    interpolated; rows that map above the top input row become ``floor``."""
    if not factor > 0:
        raise ValueError(f"warp factor must be > 0, got {factor}")
    n_freq = spec.shape[0]
    src = np.arange(n_freq, dtype=np.float64) / factor
    lo = np.minimum(np.floor(src).astype(int), n_freq - 1)
    hi = np.minimum(lo + 1, n_freq - 1)
    frac = (src - lo)[:, None]
    out = (1 - frac) * spec[lo] + frac * spec[hi]
    out[src > n_freq - 1] = floor
    return out.astype(spec.dtype)
