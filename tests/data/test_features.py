"""Known answers for data/features.py: bin positions, librosa as reference, shapes, ranges."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest
import scipy.signal

from data.features import (FeatureParams, ddevis_stft, features, features_batch, log_magnitude,
                           log_mel, soomro_logmel, stft)


def _test_wave(params: FeatureParams, seed: int = 0) -> np.ndarray:
    """A chirp plus a little noise: energy in many bins, no exact zeros."""
    rng = np.random.default_rng(seed)
    t = np.arange(params.n_samples) / params.sample_rate
    chirp = scipy.signal.chirp(t, f0=200.0, t1=t[-1], f1=0.4 * params.sample_rate)
    return (0.5 * chirp + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_sine_peaks_in_expected_bin():
    # 1 kHz at 8 kHz with n_fft 320: bin spacing 8000 / 320 = 25 Hz, so bin 1000 / 25 = 40.
    p = ddevis_stft()
    t = np.arange(p.n_samples) / p.sample_rate
    wave = jnp.asarray(np.sin(2 * np.pi * 1000.0 * t), dtype=jnp.float32)
    mag = jnp.abs(jax.jit(lambda w: stft(w, n_fft=320, hop_length=53, window="hamming"))(wave))
    assert mag.shape == (161, 1 + 8000 // 53)
    # Interior frames only: reflect padding mirrors the sine about sample 0 (a kink), which
    # smears the first frames' spectrum.
    assert np.all(np.argmax(np.asarray(mag)[:, 3:-3], axis=0) == 40)


@pytest.mark.parametrize("window,n_fft,hop", [("hamming", 320, 53), ("hann", 512, 178)])
def test_stft_matches_librosa(window, n_fft, hop):
    wave = _test_wave(ddevis_stft())
    ours = np.asarray(stft(jnp.asarray(wave), n_fft=n_fft, hop_length=hop, window=window))
    ref = librosa.stft(y=wave, n_fft=n_fft, hop_length=hop, center=True, pad_mode="reflect",
                       window=scipy.signal.get_window(window, n_fft, fftbins=True))
    assert ours.shape == ref.shape
    assert np.max(np.abs(ours - ref)) / np.max(np.abs(ref)) < 1e-4


def test_log_mel_matches_librosa():
    p = soomro_logmel()
    wave = _test_wave(p, seed=1)
    ours = np.asarray(jax.jit(log_mel, static_argnums=1)(jnp.asarray(wave), p))
    mel = librosa.feature.melspectrogram(
        y=wave, sr=p.sample_rate, n_fft=p.n_fft, hop_length=p.hop_length, center=True,
        pad_mode="reflect", window=scipy.signal.get_window("hann", p.n_fft, fftbins=True),
        power=2.0, n_mels=p.n_mels, fmin=p.fmin, fmax=p.fmax)
    ref = np.maximum(np.log10(mel / mel.max() + 1e-12), p.floor)[:, :p.n_frames]
    assert ours.shape == ref.shape == (80, 90)
    assert np.max(np.abs(ours - ref)) < 1e-3


@pytest.mark.parametrize("make,shape", [(ddevis_stft, (160, 150)), (soomro_logmel, (80, 90))])
def test_shape_range_and_max(make, shape):
    p = make()
    out = np.asarray(jax.jit(features, static_argnums=1)(jnp.asarray(_test_wave(p)), p))
    assert p.shape == shape and out.shape == shape
    assert out.min() >= p.floor and out.max() == 0.0


def test_log_magnitude_is_floored_log_of_normalised_stft():
    p = ddevis_stft()
    wave = _test_wave(p, seed=2)
    mag = np.abs(librosa.stft(y=wave, n_fft=320, hop_length=53, pad_mode="reflect",
                              window=scipy.signal.get_window("hamming", 320, fftbins=True)))
    ref = np.maximum(np.log10(mag / mag.max() + 1e-12), -4.0)[:160, :150]
    np.testing.assert_allclose(np.asarray(log_magnitude(jnp.asarray(wave), p)), ref, atol=1e-3)


@pytest.mark.parametrize("make", [ddevis_stft, soomro_logmel])
def test_gain_invariance(make):
    p = make()
    wave = jnp.asarray(_test_wave(p, seed=3))
    fn = jax.jit(features, static_argnums=1)
    np.testing.assert_allclose(np.asarray(fn(wave, p)), np.asarray(fn(0.1 * wave, p)), atol=1e-3)


def test_silence_is_all_floor_and_finite():
    p = ddevis_stft()
    out = np.asarray(features(jnp.zeros(p.n_samples), p))
    assert np.all(out == p.floor)


def test_params_round_trip():
    for p in (ddevis_stft(), soomro_logmel(), FeatureParams(floor=-6.0, n_frames=100)):
        assert FeatureParams.from_dict(p.to_dict()) == p
    assert soomro_logmel().n_samples == 16000 and ddevis_stft().n_samples == 8000


def test_params_reject_unknown_keys():
    d = ddevis_stft().to_dict() | {"n_ftt": 256}
    with pytest.raises(ValueError, match="n_ftt"):
        FeatureParams.from_dict(d)


@pytest.mark.parametrize("bad", [dict(kind="mfcc"), dict(sample_rate=500),
                                 dict(hop_length=400), dict(hop_length=0),
                                 dict(window="blackman"), dict(kind="logmel", n_mels=0)])
def test_params_reject_bad_values(bad):
    with pytest.raises(ValueError):
        dataclasses.replace(ddevis_stft(), **bad)


def test_features_batch_equals_per_example_and_chunks():
    p = ddevis_stft()
    waves = np.stack([_test_wave(p, seed=s) * (s + 1) for s in range(5)])
    out = features_batch(waves, p, batch_size=2)  # 5 > 2: three chunks, the last padded
    assert out.shape == (5, 160, 150) and out.dtype == np.float32
    for i in range(5):
        np.testing.assert_allclose(out[i], np.asarray(features(jnp.asarray(waves[i]), p)),
                                   atol=1e-5)


def test_features_batch_rejects_wrong_length():
    with pytest.raises(ValueError, match="8000"):
        features_batch(np.zeros((2, 7999), np.float32), ddevis_stft())
