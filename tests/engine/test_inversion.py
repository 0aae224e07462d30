"""Known answers for engine/inversion.py: Griffin-Lim on real speech, mel inversion, sonification."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from data.features import (ddevis_stft, log_magnitude, log_mel, mel_filterbank, soomro_logmel,
                           stft)
from engine import inversion
from engine.inversion import (features_to_magnitude, griffin_lim, griffin_lim_batch,
                              spectral_convergence, spectrogram_to_audio)
from engine.sonify import sonify_feature_map, sonify_feature_maps

SPEECH = Path(__file__).resolve().parents[3] / "shared" / "data" / "fsdd" / "0_george_0.wav"
FRAME = dict(n_fft=320, hop_length=53, window="hamming")


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """'zero' spoken by george, 8 kHz, 2384 samples (0.3 s)."""
    assert SPEECH.exists(), f"{SPEECH} is missing: the shared FSDD copy must lie beside the checkout"
    wave, sr = sf.read(SPEECH, dtype="float32")
    assert sr == 8000
    return wave


def _mag(wave) -> jax.Array:
    return jnp.abs(stft(jnp.asarray(wave), **FRAME))


def _sc_of(wave, mag, **gl) -> float:
    out = griffin_lim(mag, length=len(wave), **FRAME, **gl)
    return float(spectral_convergence(mag, _mag(out)))


def test_griffin_lim_real_speech(speech):
    """64 fast Griffin-Lim iterations reach spectral convergence <= 0.1 on real speech.

    Measured 0.055-0.068 over keys 0-2 (librosa.griffinlim, same framing: 0.027-0.055); random
    phase (0 iterations) gives 0.65. More iterations are never much worse than fewer.
    """
    mag = _mag(speech)
    key = jax.random.key(0)
    sc0, sc8, sc64 = (_sc_of(speech, mag, n_iter=n, key=key) for n in (0, 8, 64))
    assert sc64 <= 0.1
    assert sc64 <= sc8 < sc0
    assert sc0 > 0.4  # random phase is far from consistent: the iterations did the work


def test_griffin_lim_batch_equals_loop(speech):
    mag = _mag(speech)
    mags = jnp.stack([mag, mag[:, ::-1], 0.5 * mag])
    key = jax.random.key(7)
    batch = griffin_lim_batch(mags, length=len(speech), n_iter=8, key=key, **FRAME)
    assert batch.shape == (3, len(speech)) and batch.dtype == jnp.float32
    for i, k in enumerate(jax.random.split(key, 3)):
        one = griffin_lim(mags[i], length=len(speech), n_iter=8, key=k, **FRAME)
        np.testing.assert_allclose(np.asarray(batch[i]), np.asarray(one), atol=1e-5)


def test_griffin_lim_rejects_mismatched_grid(speech):
    with pytest.raises(ValueError, match="expected"):
        griffin_lim(_mag(speech), length=len(speech) + 200, key=jax.random.key(0), **FRAME)


def test_griffin_lim_compiles_once(monkeypatch):
    traces = []
    real = inversion._fgla

    def counting(*args, **kwargs):
        traces.append(1)  # Python side effect: runs only while tracing
        return real(*args, **kwargs)

    monkeypatch.setattr(inversion, "_fgla", counting)
    rng = np.random.default_rng(0)
    frame = dict(n_fft=64, hop_length=16, window="hann", length=1000)  # a shape no other test uses
    for seed, momentum, n_iter in [(0, 0.99, 3), (1, 0.5, 5), (2, 0.0, 0)]:
        griffin_lim(rng.random((33, 63)), momentum=momentum, n_iter=n_iter,
                    key=jax.random.key(seed), **frame)
    assert len(traces) == 1  # new values, momentum and iteration count: no retrace
    griffin_lim(rng.random((33, 64)), key=jax.random.key(0), **{**frame, "length": 1008})
    assert len(traces) == 2


def test_features_to_magnitude_stft_known_answer(speech):
    p = ddevis_stft()
    wave = np.pad(speech, (0, p.n_samples - len(speech)))
    full = np.asarray(_mag(wave))  # (161, 151)
    got = np.asarray(jax.jit(lambda w: features_to_magnitude(log_magnitude(w, p), p))(wave))
    assert got.shape == (161, 151)
    ref = full / full.max()
    kept = ref[:160, :150] > 10.0 ** p.floor
    np.testing.assert_allclose(got[:160, :150][kept], ref[:160, :150][kept], rtol=1e-3)
    assert np.all(got[:160, :150][~kept] == 0.0)  # floored bins become silent
    assert np.all(got[160] == 0.0) and np.all(got[:, 150] == 0.0)  # re-added row and frame


def test_features_to_magnitude_mel_reproduces_mel_power():
    p = soomro_logmel()
    rng = np.random.default_rng(0)
    wave = jnp.asarray(scipy.signal.chirp(np.arange(16000) / 16000, f0=100, t1=1.0, f1=7000)
                       + 0.05 * rng.standard_normal(16000), dtype=jnp.float32)
    spec = jax.jit(log_mel, static_argnums=1)(wave, p)
    mag = np.asarray(jax.jit(features_to_magnitude, static_argnums=1)(spec, p))
    assert mag.shape == (257, 90) and np.all(mag >= 0.0)
    fb = mel_filterbank(p.sample_rate, p.n_fft, p.n_mels, p.fmin, p.fmax)
    target = np.where(np.asarray(spec) > p.floor, 10.0 ** np.asarray(spec), 0.0)
    # A non-negative exact solution exists (the true power). Measured residual 0.25 %;
    # librosa.util.nnls (L-BFGS-B, its defaults) leaves 6.6 % on the same input.
    assert np.linalg.norm(fb @ mag ** 2 - target) / np.linalg.norm(target) < 0.005


def test_spectrogram_to_audio_peak_silence_and_huge(speech):
    p = ddevis_stft()
    spec = jax.jit(log_magnitude, static_argnums=1)(np.pad(speech, (0, 8000 - len(speech))), p)
    key = jax.random.key(0)
    out = np.asarray(spectrogram_to_audio(spec, p, n_iter=4, key=key))
    assert out.shape == (8000,) and out.dtype == np.float32
    assert 0.89 < np.abs(out).max() <= 0.9
    huge = np.random.default_rng(1).uniform(1e3, 1e6, p.shape)  # 10**huge overflows float32
    loud = np.asarray(spectrogram_to_audio(huge, p, n_iter=4, key=key))
    assert np.all(np.isfinite(loud)) and 0.89 < np.abs(loud).max() <= 0.9
    silent = np.asarray(spectrogram_to_audio(jnp.full(p.shape, p.floor), p, n_iter=4, key=key))
    assert np.all(silent == 0.0)


def test_spectrogram_to_audio_rejects_bad_input():
    p = ddevis_stft()
    with pytest.raises(ValueError, match="shape"):
        spectrogram_to_audio(jnp.zeros((80, 90)), p, key=jax.random.key(0))
    with pytest.raises(ValueError, match="NaN"):
        spectrogram_to_audio(jnp.full(p.shape, jnp.nan), p, key=jax.random.key(0))


def test_logmel_round_trip(speech):
    """wave -> log_mel -> audio -> log_mel: mean |error| <= 0.1 decades on bins within 30 dB.

    Measured 0.050 (32 iterations), i.e. about 0.5 dB; over all bins the mean is 0.015.
    """
    p = soomro_logmel()
    wave16 = scipy.signal.resample_poly(speech, up=2, down=1).astype(np.float32)
    wave16 = np.pad(wave16, (1000, p.n_samples - len(wave16) - 1000))
    feats = jax.jit(log_mel, static_argnums=1)
    spec = feats(jnp.asarray(wave16), p)
    audio = spectrogram_to_audio(spec, p, n_iter=32, key=jax.random.key(0))
    again = feats(audio, p)
    loud = np.asarray(spec) > -3.0
    err = np.abs(np.asarray(again) - np.asarray(spec))
    assert loud.sum() > 200 and err[loud].mean() <= 0.1


def test_sonify_feature_map_length_and_loudness():
    p = ddevis_stft()
    fmap = jax.random.uniform(jax.random.key(1), (18, 20))
    out = np.asarray(sonify_feature_map(fmap, p, n_iter=4, key=jax.random.key(2)))
    assert out.shape == (p.n_samples,) and np.all(np.isfinite(out))
    rms, peak = np.sqrt(np.mean(out ** 2)), np.abs(out).max()
    # RMS 0.1 unless the peak limit (0.9) took over; never clipped, never silent.
    assert peak <= 0.9 and rms <= 0.1 + 1e-5
    assert abs(rms - 0.1) < 1e-4 or abs(peak - 0.9) < 1e-4


def test_sonify_constant_map_is_finite_silence():
    out = np.asarray(sonify_feature_map(jnp.full((18, 20), 3.7), ddevis_stft(), n_iter=4,
                                        key=jax.random.key(0)))
    assert out.shape == (8000,) and np.all(np.isfinite(out)) and np.all(out == 0.0)


def test_sonify_feature_maps_equals_single():
    p = ddevis_stft()
    fmaps = jax.random.normal(jax.random.key(3), (3, 18, 20))
    key = jax.random.key(4)
    layer = sonify_feature_maps(fmaps, p, n_iter=4, key=key)
    assert layer.shape == (3, p.n_samples)
    for i, k in enumerate(jax.random.split(key, 3)):
        one = sonify_feature_map(fmaps[i], p, n_iter=4, key=k)
        np.testing.assert_allclose(np.asarray(layer[i]), np.asarray(one), atol=1e-5)


def test_maps_of_every_layer_share_one_compiled_griffin_lim():
    # Maps of each layer's size are resized before the Griffin-Lim kernel, so a new layer
    # costs a small resize compile, not another ~1.4 s Griffin-Lim compile (first tap on a
    # layer in Inspect). The resized grid is what the one-kernel path used to compute inside.
    from engine import sonify

    p, key = ddevis_stft(), jax.random.key(5)
    sonify_feature_map(jnp.ones((18, 20)).at[0, 0].set(2.0), p, n_iter=3, key=key)
    before = sonify._sonify_grids_jit._cache_size()
    for shape in ((40, 37), (20, 18), (80, 75)):
        fmap = jax.random.uniform(jax.random.key(shape[0]), shape)
        out = sonify_feature_map(fmap, p, n_iter=3, key=key)
        assert out.shape == (p.n_samples,) and bool(jnp.all(jnp.isfinite(out)))
    assert sonify._sonify_grids_jit._cache_size() == before
    fmap = jax.random.uniform(jax.random.key(6), (40, 37))
    grid = sonify._resize_batch(fmap[None], tuple(p.shape))[0]
    np.testing.assert_allclose(grid, jax.image.resize(fmap, p.shape, method="linear"),
                               atol=1e-6)


def test_spectral_convergence_known_answers():
    ref = jnp.array([[3.0, 0.0], [0.0, 4.0]])  # ||ref||_F = 5
    assert float(spectral_convergence(ref, ref)) == 0.0
    assert float(spectral_convergence(ref, jnp.zeros_like(ref))) == pytest.approx(1.0)
    assert float(spectral_convergence(ref, 2 * ref)) == pytest.approx(1.0)
    assert float(spectral_convergence(ref, ref.at[0, 1].set(1.0))) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="shape"):
        spectral_convergence(ref, ref[:1])
