"""The Maximise and Strips pages on models behind the contract (tiny random Hugging Face
classifiers): a waveform model (wav2vec2, the wave itself is optimised) and a feature model
(AST, and with ``-m slow`` Whisper: their own filter-bank / log-mel features are).

Known answers: gradient ascent on a class's logit raises that logit; ascent on a channel of a
sequence layer raises that channel's mean over time, and the page's objective is exactly that
mean as the model computes it; an adversarial strip's target probability does not fall from
frame to frame and every frame stays inside its L∞ budget and the input's box.
"""

from __future__ import annotations

import io
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from serve.config import Limits
from serve.pages.input_space import WAVE_BOX, input_space
from serve.pages.maximise import MaximisePage
from serve.pages.strips import StripsPage
from serve.session import Clip, Session

# Whisper (log-mel features, "time" conv layers) compiles another model: with -m slow.
FAMILIES = ["wav2vec2", "ast", pytest.param("whisper", marks=pytest.mark.slow)]
IDS = ["wav2vec2", "ast", "whisper"]


class Shared:
    def __init__(self, predictor):
        self.predictor, self.separate, self.prior = predictor, None, None
        self.limits = Limits(jobs_per_session=1, job_seconds=300.0)


def _clip(predictor) -> Clip:
    """A 440 Hz tone with a little noise: a clip of the model's length and rate."""
    n, sr = predictor.n_samples, predictor.sample_rate
    t = np.arange(n) / sr
    wave = 0.5 * np.sin(2 * np.pi * 440 * t) + np.random.default_rng(0).normal(0, 0.05, n)
    return Clip("tone", (wave / np.max(np.abs(wave))).astype(np.float32), sr, "synth")


def _logits(predictor, x):
    return np.asarray(jax.jit(predictor.logits_fn)(jnp.asarray(x, jnp.float32)))


def _join(job):
    assert job is not None
    assert job.join(300) and job.status == "done", job.status


@pytest.fixture(scope="module", params=FAMILIES, ids=IDS)
def maximised(request, tiny_hf_predictor):
    """A 10-step class-logit maximisation of two noise starts on the Maximise page."""
    predictor = tiny_hf_predictor(request.param)
    page = MaximisePage(Session(Shared(predictor)))
    page.steps.value, page.starts.value, page.seed.value = 10, 2, 3
    page.score.value, page.cls.value = "logit", 1
    from serve.pages.maximise_parts import setup_run

    _, _, x0, _, _ = setup_run(page.config(), predictor=predictor, prior=None,
                               layers=page.layers, session=page.session)
    _join(page.run())
    return request.param, predictor, page, np.clip(np.asarray(x0), *input_space(predictor).box)


def test_class_maximisation_raises_the_logit_in_the_models_input_space(maximised):
    family, predictor, page, x0 = maximised
    r = page.result
    space = input_space(predictor)
    assert r["x"].shape == predictor.input_shape
    logits = _logits(predictor, np.concatenate([x0, r["x"][None]]))[:, 1]  # one forward
    before, after = logits[:-1], logits[-1]
    assert after > before.max()                      # the best start's logit rose
    np.testing.assert_allclose(np.stack(r["history"])[-1].max(), after, rtol=1e-4, atol=1e-4)
    lo, hi = space.box
    assert r["x"].min() >= lo - 1e-6 and r["x"].max() <= hi + 1e-6
    if family == "wav2vec2":
        assert space.box == WAVE_BOX and predictor.input_kind == "waveform"
        assert r["picture"].shape == predictor.params.shape     # the display STFT
    else:
        assert space.box[0] == pytest.approx(predictor.floor) and space.box[1] > 0
        np.testing.assert_array_equal(r["picture"], r["x"])      # features are their picture
    assert r["wave"].shape == (predictor.n_samples,) and np.abs(r["wave"]).max() <= 1.0
    assert page.audio.visible and "Own classifier: <b>" in page.verdict.value
    assert "<i>not loaded</i>" in page.verdict.value


def test_maximise_page_menus_and_downloads_of_a_foreign_model(maximised):
    family, predictor, page, _ = maximised
    names = [layer.name for layer in predictor.layers]
    assert list(page.layer.options) == [n for n in page.layers]
    assert set(names) <= set(page.layers)
    for layer in predictor.layers:
        assert page.layers[layer.name] == tuple(layer.shape)
    assert not page.use_prior.visible and not page.prior_note.visible   # no prior offered
    image = [r for r in page._figs[0].renderers if "image" in r.data_source.data][0]
    np.testing.assert_array_equal(image.data_source.data["image"][0], page.result["picture"])
    wave, sr = sf.read(io.BytesIO(page.wav_bytes()))
    assert sr == predictor.sample_rate and wave.shape == (predictor.n_samples,)
    with np.load(io.BytesIO(page.npz_bytes()), allow_pickle=False) as z:
        assert z["x"].shape == predictor.input_shape and z["history"].shape == (10, 2)
        assert z["picture"].shape == page.result["picture"].shape


def test_prior_is_refused_for_a_foreign_model_without_crashing(maximised):
    _, _, page, _ = maximised
    page.use_prior.value = True
    assert page.run() is None
    assert "only for hearsight's own features" in page.session.alert.object
    page.use_prior.value = False


def test_channel_of_a_sequence_layer_rises_and_is_its_mean_over_time(tiny_hf_predictor):
    predictor = tiny_hf_predictor("wav2vec2")
    assert predictor.layer_kind("layer1") == "sequence"
    page = MaximisePage(Session(Shared(predictor)))
    page.kind.value, page.layer.value, page.index.value = "channel", "layer1", "5"
    assert "sequence 399 × 32" in page.layer_note.object and "mean over time" in page.layer_note.object
    page.steps.value, page.starts.value = 10, 2
    from serve.pages.maximise_parts import setup_run

    _, _, x0, _, _ = setup_run(page.config(), predictor=predictor, prior=None,
                               layers=page.layers, session=page.session)
    _join(page.run())
    _, acts = predictor.run(np.concatenate([np.clip(x0, *WAVE_BOX), page.result["x"][None]]))
    means = acts["layer1"][..., 5].mean(axis=1)
    before, after = means[:-1], float(means[-1])
    assert after > before.max()
    assert np.stack(page.result["history"])[-1].max() == pytest.approx(after, rel=1e-4, abs=1e-5)
    assert page.result["target"] == -1


@pytest.fixture(scope="module", params=FAMILIES, ids=IDS)
def strip(request, tiny_hf_predictor):
    """A 3-frame strip from a tone toward the clip's least likely class on the Strips page."""
    predictor = tiny_hf_predictor(request.param)
    session = Session(Shared(predictor))
    page = StripsPage(session)
    session.set_clip(_clip(predictor))
    probs = session.analyse(session.clip.wave).probs
    page.target.value = int(np.argmin(probs))
    page.n_frames.value, page.steps_per_frame.value = 3, 2
    _join(page.build())
    return request.param, predictor, page


def test_strip_target_probability_rises_inside_budget_and_box(strip):
    family, predictor, page = strip
    space = input_space(predictor)
    budget = page.budget_used
    assert budget == space.budget
    assert ("sample amplitude" if family == "wav2vec2" else "feature units") in page.budget.name
    target = np.asarray(page.prob_source.data["target"])
    assert page.prob_source.data["frame"] == [0, 1, 2, 3]
    assert np.all(np.diff(target) >= -1e-4) and target[-1] > target[0]
    lo, hi = space.box
    for f in page.frames:
        assert f.x.shape == predictor.input_shape
        assert np.abs(f.diff).max() <= budget * (1 + 1e-5)
        assert f.x.min() >= lo - 1e-6 and f.x.max() <= hi + 1e-6
    want = predictor.params.shape if family == "wav2vec2" else predictor.input_shape
    assert all(p.shape == want for p in page.pictures)
    assert len(page.cards.objects) == 4 and page.player.visible


def test_strip_frames_are_heard_and_exported(strip):
    _, predictor, page = strip
    card = page.cards.objects[2]
    listen, audio = card.objects[3], card.objects[4]
    listen.clicks += 1
    assert audio.visible and np.asarray(audio.object).shape == (predictor.n_samples,)
    if predictor.input_kind == "waveform":   # a waveform is heard as it is
        np.testing.assert_allclose(page.frame_audio(2), np.clip(page.frames[2].x, -1, 1))
    with zipfile.ZipFile(io.BytesIO(page.zip_bytes())) as zf:
        assert len(zf.namelist()) == 4
        wave, sr = sf.read(io.BytesIO(zf.read(zf.namelist()[3])))
    assert sr == predictor.sample_rate and wave.shape == (predictor.n_samples,)
    rows, cols = page.pictures[0].shape
    assert Image.open(io.BytesIO(page.png_bytes())).size == (2 * (4 * cols + 3 * 4),
                                                             2 * (2 * rows + 4))
