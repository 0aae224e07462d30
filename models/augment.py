"""Spectrogram augmentation for training: random time shift and SpecAugment-style masks.

Small speech corpora (FSDD has 50 takes per speaker and digit) are memorised quickly; shifting
the word in time and masking a few frequency rows and time columns (Park et al. 2019,
"SpecAugment") makes a CNN rely on the shape of the whole word instead of exact positions.
All randomness comes from the ``rng`` the training loop passes in.
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
    """

    floor: float = -4.0
    max_shift: int = 15
    freq_masks: int = 1
    freq_width: int = 12
    time_masks: int = 1
    time_width: int = 12

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = np.array(x, dtype=np.float32, copy=True)
        for i in range(x.shape[0]):
            x[i] = self._one(x[i], rng)
        return x

    def _one(self, spec: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n_freq, n_time = spec.shape
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
