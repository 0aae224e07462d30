"""The JAX filter banks equal the Hugging Face feature extractors' own output, and their
inverses land on the STFT grid the engine's Griffin-Lim uses."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
tf = pytest.importorskip("transformers")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from data.features import n_stft_frames, stft  # noqa: E402
from models.foreign.hf_features import ast_features, whisper_features  # noqa: E402

SR = 16000


def _waves(n: int, batch: int = 3) -> np.ndarray:
    """Noise under a slow envelope (no silent frames, so every log is well conditioned)."""
    rng = np.random.default_rng(0)
    env = 0.2 + 0.8 * np.abs(np.sin(np.linspace(0, 3 * np.pi, n)))
    return (rng.uniform(-0.5, 0.5, (batch, n)) * env).astype(np.float32)


def test_ast_fbank_equals_the_extractor():
    fe = tf.ASTFeatureExtractor(num_mel_bins=24, max_length=120)
    waves = _waves(400 + 160 * 99)  # 100 frames: the rest of max_length is padding
    features, _ = ast_features(fe, waves.shape[1])
    ours = np.asarray(jax.jit(jax.vmap(features))(waves))
    ref = fe(list(waves), sampling_rate=SR, return_tensors="np").input_values
    assert ours.shape == (3, 24, 120) and ref.shape == (3, 120, 24)
    np.testing.assert_allclose(ours, ref.transpose(0, 2, 1), atol=2e-4, rtol=0)


def test_whisper_log_mel_equals_the_extractor():
    fe = tf.WhisperFeatureExtractor(feature_size=16, chunk_length=1)
    waves = _waves(12000)  # shorter than the 1 s chunk: padded with zeros, as the extractor
    features, _ = whisper_features(fe, waves.shape[1])
    ours = np.asarray(jax.jit(jax.vmap(features))(waves))
    ref = fe(list(waves), sampling_rate=SR, return_tensors="np").input_features
    assert ours.shape == ref.shape == (3, 16, 100)
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", ["ast", "whisper"])
def test_inverse_lands_on_the_griffin_lim_grid(family):
    if family == "ast":
        fe, n = tf.ASTFeatureExtractor(num_mel_bins=64, max_length=100), 400 + 160 * 99
        features, inverse = ast_features(fe, n)
    else:
        fe, n = tf.WhisperFeatureExtractor(feature_size=80, chunk_length=1), 16000
        features, inverse = whisper_features(fe, n)
    wave = jnp.asarray(_waves(n, 1)[0])
    mag = np.asarray(jax.jit(lambda w: inverse.to_magnitude(features(w)))(wave))
    assert mag.shape == (inverse.n_fft // 2 + 1, n_stft_frames(n, inverse.hop_length))
    assert (mag >= 0).all()
    true = np.abs(np.asarray(stft(wave, n_fft=inverse.n_fft, hop_length=inverse.hop_length,
                                  window=inverse.window)))
    # the loudness contour over time survives the mel round trip
    r = np.corrcoef(mag.sum(0)[2:-2], true.sum(0)[2:-2])[0, 1]
    assert r > 0.9, r
