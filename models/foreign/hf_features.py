"""The Hugging Face feature extractors' filter banks, in JAX, so gradients reach the waveform.

Each builder reads a feature extractor's settings and returns ``(features, inverse)``:
``features`` maps one waveform ``(n_samples,)`` to the model's input as ``(freq, time)``
(hearsight's layout), ``inverse`` (:class:`models.contract.Inverse`) maps it back to a linear
STFT magnitude on :func:`data.features.stft`'s grid for listening. The numerics follow the
extractors' own code (transformers 5) step by step; the tests compare with them.

- AST (``ASTFeatureExtractor``): Kaldi-style log mel filter bank (Kaldi ``compute-fbank-feats``,
  as ``transformers.audio_utils.spectrogram`` with ``remove_dc_offset``): 25 ms frames every
  10 ms without centring, DC removed per frame, pre-emphasis 0.97, symmetric Hann window,
  512-point FFT, power, Kaldi mel filters 20 Hz..Nyquist, natural log floored at float32 eps;
  zero-padded (or cut) to ``max_length`` frames, then ``(x - mean) / (2 std)``.
- Whisper (``WhisperFeatureExtractor``): centred 400-point STFT (periodic Hann, hop 160),
  power, Slaney mel filters, ``log10`` floored at 1e-10, clipped to 8 below the clip's
  maximum, ``(x + 4) / 4``; the waveform zero-padded to ``n_samples`` first, the last frame
  dropped.

References:
  Gong, Chung & Glass (2021), "AST: Audio Spectrogram Transformer".
  Radford et al. (2023), "Robust speech recognition via large-scale weak supervision".
  Povey et al. (2011), "The Kaldi speech recognition toolkit".
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from data.features import n_stft_frames, stft
from models.contract import Inverse

Features = Callable[[jax.Array], jax.Array]
_KALDI_FRAME, _KALDI_HOP, _KALDI_FFT = 400, 160, 512
_KALDI_FLOOR = 1.192092955078125e-07  # float32 eps, Kaldi's and the AST extractor's mel floor


def _mel_to_magnitude(mel_power: jax.Array, fb: np.ndarray) -> jax.Array:
    """Linear magnitude ``(bins, frames)`` from mel power ``(mels, frames)``, ``fb`` ``(bins,
    mels)``: the pseudo-inverse clipped at 0, square-rooted (for listening, not for analysis)."""
    return jnp.sqrt(jnp.maximum(jnp.asarray(np.linalg.pinv(fb.T), jnp.float32) @ mel_power, 0.0))


def _fit_frames(x: jax.Array, n_frames: int, front: int = 0) -> jax.Array:
    """``(rows, t)`` padded with zero frames (``front`` of them first) or cut to ``n_frames``."""
    x = jnp.pad(x, ((0, 0), (front, 0)))[:, :n_frames]
    return jnp.pad(x, ((0, 0), (0, n_frames - x.shape[1])))


def kaldi_fbank(wave: jax.Array, fb: np.ndarray) -> jax.Array:
    """Kaldi log mel filter bank of one waveform: ``(n_mels, frames)``, natural log.

    ``frames = 1 + (samples - 400) // 160``; ``fb`` is ``(257, n_mels)``.
    """
    n_frames = 1 + (wave.shape[-1] - _KALDI_FRAME) // _KALDI_HOP
    idx = jnp.arange(_KALDI_FRAME)[None, :] + _KALDI_HOP * jnp.arange(n_frames)[:, None]
    frames = wave[idx]
    frames = frames - frames.mean(axis=1, keepdims=True)
    # pre-emphasis from the frame's own previous sample; the first keeps (1 - 0.97) of itself
    frames = jnp.concatenate([frames[:, :1] * (1 - 0.97), frames[:, 1:] - 0.97 * frames[:, :-1]],
                             axis=1)
    k = np.arange(_KALDI_FRAME)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * k / (_KALDI_FRAME - 1))  # symmetric Hann
    spec = jnp.fft.rfft(frames * jnp.asarray(window, jnp.float32), n=_KALDI_FFT, axis=-1)
    power = spec.real ** 2 + spec.imag ** 2
    mel = jnp.maximum(power @ jnp.asarray(fb, jnp.float32), _KALDI_FLOOR)
    return jnp.log(mel).T


def ast_features(extractor, n_samples: int) -> tuple[Features, Inverse]:
    """AST's input ``(n_mels, max_length)`` and its inverse, for waveforms of ``n_samples``."""
    from transformers.audio_utils import mel_filter_bank

    sr, n_mels, max_len = extractor.sampling_rate, extractor.num_mel_bins, extractor.max_length
    fb = mel_filter_bank(num_frequency_bins=_KALDI_FFT // 2 + 1, num_mel_filters=n_mels,
                         min_frequency=20, max_frequency=sr // 2, sampling_rate=sr, norm=None,
                         mel_scale="kaldi", triangularize_in_mel_space=True)
    mean, scale = (extractor.mean, 2 * extractor.std) if extractor.do_normalize else (0.0, 1.0)

    def features(wave: jax.Array) -> jax.Array:
        fbank = _fit_frames(kaldi_fbank(wave, fb), max_len)  # zero frames, as the extractor
        return (fbank - mean) / scale

    n_out = n_stft_frames(n_samples, _KALDI_HOP)

    def to_magnitude(x: jax.Array) -> jax.Array:
        mel_power = jnp.exp(x * scale + mean)
        # Kaldi frame i is centred on sample 200 + 160 i, the grid's frame j on 160 j: j ~ i + 1
        return _fit_frames(_mel_to_magnitude(mel_power, fb), n_out, front=1)

    return features, Inverse(to_magnitude, n_fft=_KALDI_FFT, hop_length=_KALDI_HOP,
                             window="hann")


def whisper_features(extractor, n_samples: int) -> tuple[Features, Inverse]:
    """Whisper's log-mel input ``(n_mels, nb_max_frames)`` and its inverse."""
    n_fft, hop, total = extractor.n_fft, extractor.hop_length, extractor.n_samples
    fb = np.asarray(extractor.mel_filters, np.float32)  # (n_fft // 2 + 1, n_mels)
    if n_samples > total:
        raise ValueError(f"Whisper listens to at most {total} samples, got {n_samples}")

    def features(wave: jax.Array) -> jax.Array:
        wave = jnp.pad(wave, (0, total - wave.shape[-1]))
        spec = stft(wave, n_fft=n_fft, hop_length=hop, window="hann")[:, :-1]
        power = spec.real ** 2 + spec.imag ** 2
        log_spec = jnp.log10(jnp.maximum(jnp.asarray(fb.T) @ power, 1e-10))
        log_spec = jnp.maximum(log_spec, log_spec.max() - 8.0)
        return (log_spec + 4.0) / 4.0

    n_out = n_stft_frames(n_samples, hop)

    def to_magnitude(x: jax.Array) -> jax.Array:
        mel_power = 10.0 ** (4.0 * x - 4.0)
        return _fit_frames(_mel_to_magnitude(mel_power, fb), n_out)

    return features, Inverse(to_magnitude, n_fft=n_fft, hop_length=hop, window="hann")
