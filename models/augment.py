"""Spectrogram augmentation for training: random time shift, frequency warp, SpecAugment masks.

Small speech corpora (FSDD has 50 takes per speaker and digit) are memorised quickly; shifting
the word in time and masking a few frequency rows and time columns (Park et al. 2019,
"SpecAugment") makes a CNN rely on the shape of the whole word instead of exact positions.
The frequency warp stretches or squeezes the frequency axis by a random factor, like vocal
tract length perturbation (Jaitly & Hinton 2013, "Vocal Tract Length Perturbation (VTLP)
improves speech recognition"): a model that must recognise unseen voices sees each training
voice with a longer and a shorter vocal tract.

The remaining options aim at the gap between synthetic training voices and real recordings
(Ko et al. 2017, "A study on data augmentation of reverberant speech for robust speech
recognition"): a band limit (8 kHz recordings, telephone speech, cheap microphones hold nothing
above 3.4-4 kHz), a room's reverberant tail, a microphone's spectral tilt, and a noise gate
(real clips padded with digital silence, where synthetic clips carry noise throughout). Each is
applied in the power domain of the log spectrogram, which is then renormalised to its maximum
and floored as :func:`data.features._normalised_log` does. All randomness comes from the
``rng`` the training loop passes in.
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
      band_limit, band_rows: with probability ``band_limit`` every row from a cutoff drawn
        uniformly in ``band_rows`` (inclusive, row indices) up is set to the floor.
      reverb, reverb_frames, reverb_gain_db: with probability ``reverb`` an exponential tail
        with an e-folding time drawn in ``reverb_frames`` (frames) and a level drawn in
        ``reverb_gain_db`` (relative to the direct sound) is added to each row's power.
      tilt: largest spectral tilt, log10 units from the bottom to the top row (0.5: ±5 dB).
      gate, gate_depth: with probability ``gate`` cells more than a depth drawn in
        ``gate_depth`` (log10 units) below the maximum become the floor.
      row_hz: centre frequency (Hz) of every feature row; when given, the frequency warp
        scales Hz (row ``f`` of the output is the input at ``row_hz[f] / factor``), as a vocal
        tract length change does, instead of the row index (on mel rows the index warp
        stretches high frequencies more than low ones).
      time_stretch: largest relative change of speaking rate (0.2: durations scaled by a
        factor in [0.8, 1.2] about the clip's centre, like speed perturbation without the
        pitch change; 0 turns it off). Frames mapped from outside the clip become the floor.
      noise, noise_depth: with probability ``noise`` stationary noise is added to the power:
        a level drawn in ``noise_depth`` (log10 units below the clip's maximum: the SNR of its
        loudest cell) times an exponentially distributed draw per cell (the power of a
        Gaussian noise's STFT bin), before the band limit (a band-limited microphone's noise
        is band-limited too).
    """

    floor: float = -4.0
    max_shift: int = 15
    freq_masks: int = 1
    freq_width: int = 12
    time_masks: int = 1
    time_width: int = 12
    freq_warp: float = 0.0
    band_limit: float = 0.0
    band_rows: tuple[int, int] = (0, 0)
    reverb: float = 0.0
    reverb_frames: tuple[float, float] = (2.0, 10.0)
    reverb_gain_db: tuple[float, float] = (-12.0, 0.0)
    tilt: float = 0.0
    gate: float = 0.0
    gate_depth: tuple[float, float] = (2.0, 3.5)
    noise: float = 0.0
    noise_depth: tuple[float, float] = (2.0, 4.0)
    row_hz: tuple[float, ...] = ()
    time_stretch: float = 0.0

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = np.array(x, dtype=np.float32, copy=True)
        for i in range(x.shape[0]):
            x[i] = self._one(x[i], rng)
        return x

    def _one(self, spec: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n_freq, n_time = spec.shape
        if self.freq_warp:
            spec = warp_frequency(spec, float(rng.uniform(1 - self.freq_warp, 1 + self.freq_warp)),
                                  floor=self.floor, row_hz=self.row_hz or None)
        if self.time_stretch:  # drawn only when on: recipes without it draw as before
            spec = stretch_time(spec, float(rng.uniform(1 - self.time_stretch,
                                                        1 + self.time_stretch)), floor=self.floor)
        spec = self._channel(spec, rng)
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


    def _channel(self, spec: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Tilt, reverberation, band limit and gate (each drawn with its probability)."""
        tilt = float(rng.uniform(-self.tilt, self.tilt)) if self.tilt else 0.0
        decay = (float(rng.uniform(*self.reverb_frames)), float(rng.uniform(*self.reverb_gain_db))) \
            if self.reverb and rng.random() < self.reverb else None
        cutoff = int(rng.integers(self.band_rows[0], self.band_rows[1] + 1)) \
            if self.band_limit and rng.random() < self.band_limit else None
        depth = float(rng.uniform(*self.gate_depth)) \
            if self.gate and rng.random() < self.gate else None
        # drawn last, and only when on, so recipes without noise draw exactly as before
        noise = float(rng.uniform(*self.noise_depth)) \
            if self.noise and rng.random() < self.noise else None
        if not tilt and decay is None and cutoff is None and depth is None and noise is None:
            return spec
        floored = spec <= self.floor
        if tilt:
            spec = spec + tilt * np.linspace(-0.5, 0.5, spec.shape[0], dtype=np.float32)[:, None]
        if decay is not None:
            spec = reverberate(spec, decay[0], decay[1], floored=floored)
        if noise is not None:
            spec = add_noise(spec, noise, rng, floored=floored)
        if cutoff is not None:
            spec[cutoff:] = -np.inf
        spec = np.maximum(spec - spec.max(), self.floor)
        if depth is not None:
            spec[spec < -depth] = self.floor
        return spec.astype(np.float32)


def add_noise(spec: np.ndarray, depth: float, rng: np.random.Generator, *,
              floored: np.ndarray | None = None) -> np.ndarray:
    """Log10 power ``spec (freq, time)`` plus noise of mean power ``depth`` log10 units below
    the maximum, exponentially distributed per cell. Floored cells count as silence."""
    power = np.power(10.0, spec.astype(np.float64))
    if floored is not None:
        power[floored] = 0.0
    level = 10.0 ** (float(np.max(spec)) - depth)
    return np.log10(power + level * rng.exponential(1.0, size=spec.shape))


def reverberate(spec: np.ndarray, frames: float, gain_db: float, *,
                floored: np.ndarray | None = None) -> np.ndarray:
    """Log10 power ``spec (freq, time)`` plus an exponential reverberant tail.

    Power ``P`` becomes ``P + g * sum_{k >= 1} exp(-k / frames) P[t - k]`` (one-pole filter
    along time, :func:`scipy.signal.lfilter`), ``g`` being ``gain_db`` in power. Cells at the
    floor (``floored``) count as silence, not as the floor's power, so padding stays silent
    until a tail reaches it."""
    from scipy.signal import lfilter

    if not frames > 0:
        raise ValueError(f"reverb e-folding time must be > 0 frames, got {frames}")
    power = np.power(10.0, spec.astype(np.float64))
    if floored is not None:
        power[floored] = 0.0
    a = np.exp(-1.0 / frames)
    tail = lfilter([0.0, a], [1.0, -a], power, axis=1)  # sum_{k>=1} a^k P[t-k]
    out = power + 10.0 ** (gain_db / 10.0) * tail
    with np.errstate(divide="ignore"):
        return np.log10(out)


def _resample_rows(spec: np.ndarray, src: np.ndarray, floor: float) -> np.ndarray:
    """Rows of ``spec`` at fractional positions ``src`` (linear interpolation); positions
    outside ``[0, n - 1]`` become ``floor``."""
    n = spec.shape[0]
    lo = np.clip(np.floor(src).astype(int), 0, n - 1)
    hi = np.minimum(lo + 1, n - 1)
    frac = np.clip(src - lo, 0.0, 1.0).reshape(-1, *([1] * (spec.ndim - 1)))
    out = (1 - frac) * spec[lo] + frac * spec[hi]
    out[(src > n - 1) | (src < 0)] = floor
    return out.astype(spec.dtype)


def warp_frequency(spec: np.ndarray, factor: float, *, floor: float,
                   row_hz: np.ndarray | tuple | None = None) -> np.ndarray:
    """``spec (freq, time)`` with its frequency axis stretched by ``factor`` (> 1: formants move
    up, as for a shorter vocal tract). Output row ``f`` = input row ``f / factor``, linearly
    interpolated; rows that map above the top input row become ``floor``. With ``row_hz``
    (each row's centre frequency, increasing) the stretch is of Hz: output row ``f`` is the
    input at frequency ``row_hz[f] / factor``."""
    if not factor > 0:
        raise ValueError(f"warp factor must be > 0, got {factor}")
    n_freq = spec.shape[0]
    rows = np.arange(n_freq, dtype=np.float64)
    if row_hz is None:
        src = rows / factor
    else:
        hz = np.asarray(row_hz, np.float64)
        if hz.shape != (n_freq,) or np.any(np.diff(hz) <= 0):
            raise ValueError(f"row_hz must give {n_freq} increasing frequencies")
        src = np.interp(hz / factor, hz, rows, left=0.0, right=n_freq)  # past the top: floor
    return _resample_rows(spec, src, floor)


def stretch_time(spec: np.ndarray, factor: float, *, floor: float) -> np.ndarray:
    """``spec (freq, time)`` spoken ``factor`` times as long (> 1: slower), about the clip's
    centre: output frame ``t`` is input frame ``c + (t - c) / factor``, linearly
    interpolated; frames mapped from outside the clip become ``floor``."""
    if not factor > 0:
        raise ValueError(f"stretch factor must be > 0, got {factor}")
    c = (spec.shape[1] - 1) / 2.0
    src = c + (np.arange(spec.shape[1], dtype=np.float64) - c) / factor
    return _resample_rows(spec.T, src, floor).T.copy()
