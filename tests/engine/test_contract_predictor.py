"""A model behind the contract answers the pages' questions: inputs, forward, pictures, audio."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from engine.contract_predictor import picture_params, row_frequencies
from engine.predictor import Predictor, is_contract_spec, load_predictor


def _tone(freq: float, sr: int, n: int) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(n) / sr)).astype(np.float32)


def test_waveform_model_input_is_the_wave_and_forward_matches_apply(tiny_hf_predictor):
    p = tiny_hf_predictor("wav2vec2")
    assert p.input_kind == "waveform" and p.input_shape == (p.n_samples,)
    waves = np.random.default_rng(0).normal(0, 0.1, (3, p.n_samples)).astype(np.float32)
    x = p.features(waves)
    np.testing.assert_array_equal(x, waves)
    probs, acts = p.run(x)
    logits, ref = p.loaded.apply(p.loaded.params, x)
    e = np.exp(np.asarray(logits) - np.asarray(logits).max(1, keepdims=True))
    np.testing.assert_allclose(probs, e / e.sum(1, keepdims=True), atol=1e-5)
    assert set(acts) == set(p.layer_names)
    # a batch of 3 is padded to the bucket of 4 and cut back: the same as one by one
    one, _ = p.run(x[1:2])
    np.testing.assert_allclose(probs[1], one[0], atol=1e-5)
    np.testing.assert_array_equal(p.hear(x), np.clip(x, -1, 1))
    assert p.floor == 0.0


def test_waveform_picture_puts_a_tone_on_its_row(tiny_hf_predictor):
    p = tiny_hf_predictor("wav2vec2")
    pic = p.picture(_tone(1000.0, p.sample_rate, p.n_samples)[None])[0]
    assert pic.shape == p.params.shape
    rows = p.picture_frequencies()
    assert abs(rows[int(np.argmax(pic.mean(axis=1)))] - 1000.0) <= p.sample_rate / p.params.n_fft


def test_waveform_gradient_reaches_every_sample(tiny_hf_predictor):
    p = tiny_hf_predictor("wav2vec2")
    x = p.features(_tone(440.0, p.sample_rate, p.n_samples)[None])
    g = np.asarray(jax.grad(lambda v: p.logits_fn(v)[:, 0].sum())(x))
    assert g.shape == x.shape and np.isfinite(g).all() and np.abs(g).max() > 0


def test_interventions_reach_a_foreign_layer(tiny_hf_predictor):
    p = tiny_hf_predictor("wav2vec2")
    x = p.features(_tone(440.0, p.sample_rate, p.n_samples)[None])
    dim = p.loaded.layer("layer1").shape[-1]
    base, _ = p.acts_fn(x)
    off, acts = p.acts_fn(x, mask={"layer1": np.zeros(dim, np.float32)})
    assert np.abs(np.asarray(acts["layer1"])).max() == 0.0
    assert not np.allclose(np.asarray(base), np.asarray(off))


@pytest.mark.parametrize("family", ["ast", "whisper"])
def test_feature_models_picture_their_input_and_are_heard(tiny_hf_predictor, family):
    p = tiny_hf_predictor(family)
    assert p.input_kind == "features"
    x = p.features(_tone(1000.0, p.sample_rate, p.n_samples)[None])
    np.testing.assert_array_equal(p.picture(x), x)
    assert p.floor == pytest.approx(float(p.baseline_input().min()))
    audio = p.hear(x)
    assert audio.shape == (1, p.n_samples) and 0.5 < np.abs(audio).max() <= 0.9 + 1e-6
    # the tone's mel row is the one nearest 1 kHz on the model's mel scale
    rows = p.picture_frequencies()
    assert rows.shape == (x.shape[1],) and np.all(np.diff(rows) > 0)
    assert abs(rows[int(np.argmax(x[0].mean(axis=1)))] - 1000.0) < 0.2 * 1000


def test_sonified_sequence_layer_has_the_clip_length(tiny_hf_predictor):
    p = tiny_hf_predictor("wav2vec2")
    _, acts = p.run(p.features(_tone(440.0, p.sample_rate, p.n_samples)[None]))
    audio = p.sonify_map(acts["layer1"][0].T)
    assert audio.shape == (p.n_samples,) and np.abs(audio).max() > 0


def test_load_predictor_dispatches_on_the_spec(tiny_checkpoint, tiny_hf):
    assert is_contract_spec(f"hf:{tiny_hf('wav2vec2')}") and not is_contract_spec(tiny_checkpoint)
    assert not is_contract_spec("/tmp/hf") and not is_contract_spec("hf:")
    own = load_predictor(tiny_checkpoint)
    assert isinstance(own, Predictor) and own.input_kind == "features"
    assert own.input_shape == own.params.shape and own.floor == own.params.floor
    np.testing.assert_array_equal(own.baseline_input(), np.full(own.params.shape, own.floor))
    with pytest.raises(ValueError, match="no folder|not a folder|does not exist|config.json"):
        load_predictor("hf:/nonexistent/model")


def test_picture_params_and_mel_rows():
    p = picture_params(16000, 16000)
    assert (p.n_fft, p.hop_length, p.window) == (400, 160, "hann")
    assert p.shape == (200, 101)
    from data.features import soomro_logmel

    mel = soomro_logmel()
    rows = row_frequencies(mel)
    assert rows.shape == (mel.n_mels,) and rows[0] > mel.fmin and rows[-1] < (mel.fmax or mel.sample_rate / 2)
    # mel rows are spaced ever wider: the top gap is several times the bottom one
    assert np.diff(rows)[-1] > 3 * np.diff(rows)[0]
