"""The Explain page and the attribution methods on models behind the contract: a tiny random
wav2vec2 (waveform in) and AST (filter-bank features in), from ``tests/conftest.py``.

Known answers: integrated gradients is complete on the waveform model (its sum is the target
logit's change from silence) when its nodes are spaced in log α; the waveform's picture sums
to its map; every deletion curve starts at the clip's target probability and ends at
silence's (insertion the other way round); keeping 100 % keeps the clip, 0 % keeps silence.
The page fixture compiles every method on a model lowered from PyTorch (minutes on two
loaded cores), so those tests are slow.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from engine.attribution import METHODS, integrated_gradients
from engine.attribution.options import method_options
from serve.config import Limits
from serve.pages import explain_parts as EP
from serve.pages.explain import ExplainPage
from serve.session import Clip, Session

FAMILIES = ("wav2vec2", "ast")


def tone_clip(predictor) -> np.ndarray:
    """A 1 kHz tone in the second half of the clip over faint noise (seeded)."""
    sr, n = predictor.sample_rate, predictor.n_samples
    t = np.arange(n) / sr
    noise = 0.02 * np.random.default_rng(0).normal(size=n)
    return (0.5 * np.sin(2 * np.pi * 1000.0 * t) * (t >= t[-1] / 2) + noise).astype(np.float32)


@pytest.mark.slow
def test_integrated_gradients_is_complete_on_a_waveform_model(tiny_hf_predictor):
    """Sum of the attribution = logit(x) − logit(silence) within 3 % at 64 log-spaced steps,
    for the class whose logit moves most (the page's options for a waveform model)."""
    predictor = tiny_hf_predictor("wav2vec2")
    x = predictor.features(tone_clip(predictor)[None])
    silence = predictor.baseline_input()
    logits = EP.logits_of(predictor.logits_fn, np.concatenate([x, silence[None]]))
    gap = logits[0] - logits[1]
    target = int(np.argmax(np.abs(gap)))
    assert abs(gap[target]) > 0.1
    opts = method_options(x.shape[1:], steps=64, baseline=silence, floor=predictor.floor,
                          segment=predictor.picture_params.hop_length)["integrated_gradients"]
    assert opts["schedule"] == "log" and predictor.floor == 0.0
    attr = np.asarray(integrated_gradients(predictor.logits_fn, x, target, **opts))
    assert attr.shape == x.shape and np.all(np.isfinite(attr))
    assert abs(attr.sum(dtype=np.float64) - gap[target]) < 0.03 * abs(gap[target])


class Shared:
    limits = Limits()

    def __init__(self, predictor):
        self.predictor = predictor


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILIES)
def test_the_page_offers_what_runs_on_the_model_and_says_why_not(tiny_hf_predictor, family):
    """Before any clip: the layers, baselines and words of the page for each model kind
    (nothing is compiled: the layers come from the model's declared kinds and shapes)."""
    page = ExplainPage(Session(Shared(tiny_hf_predictor(family))))
    assert page.methods == METHODS and page.maps == {}
    assert set(page.hidden_layers) >= {"pooled"}
    assert "pooled" in page.about.object and "no positions to map" in page.about.object
    if family == "wav2vec2":
        assert page.waveform and page.floor == 0.0 and page.segment == 160
        assert page.conv_layers == ["conv1", "conv2", "conv3", "layer1", "layer2"]
        assert page.baseline_select.options == ["silence", "blur"]  # zeros are silence
        assert page.steps_slider.value == 64
        assert page.percent_slider.name == "Keep top % of 10 ms segments"
        assert "attribution per 10 ms frame, spread over that frame's spectrum by energy" in \
            page.about.object
    else:
        assert not page.waveform and page.conv_layers == ["conv1"]
        assert set(page.hidden_layers) == {"layer1", "layer2", "pooled"}
        assert "tokens" in page.about.object
        assert page.baseline_select.options == ["zeros", "silence", "blur"]
        np.testing.assert_array_equal(page.silence, page.predictor.baseline_input())


@pytest.fixture(scope="module", params=FAMILIES, ids=FAMILIES)
def page(request, tiny_hf_predictor):
    predictor = tiny_hf_predictor(request.param)
    session = Session(Shared(predictor))
    page = ExplainPage(session)
    page.steps_slider.value = 16  # before the clip: nothing runs yet
    session.set_clip(Clip("tone", tone_clip(predictor), predictor.sample_rate, "synth"))
    page.wait(timeout=1200)
    assert page.progress.object == "", page.progress.object
    return page


@pytest.mark.slow
def test_every_method_fills_its_figure_with_a_finite_map(page):
    p = page.predictor
    assert page.methods == METHODS and set(page.maps) == set(METHODS)
    for name, a in page.maps.items():
        assert a.shape == p.input_shape and np.all(np.isfinite(a)), name
        pic = page.pictures[name]
        assert pic.shape == page.picture.shape and np.all(np.isfinite(pic)), name
    assert float(np.abs(page.maps["saliency"]).max()) > 0
    figs = {f.css_classes[-1]: f.object for f in page.maps_box.objects}
    assert len(figs) == len(METHODS)
    for name in METHODS:
        image = figs[f"hs-explain-map-{name}"].renderers[0].data_source.data["image"][0]
        np.testing.assert_allclose(image, page.pictures[name], rtol=1e-6)
    assert page.header.object.startswith("### tone: why **")
    label = page.labels[int(page.target_select.value)]
    assert f"why **{label}**" in page.header.object


@pytest.mark.slow
def test_what_the_picture_shows(page):
    if page.waveform:
        for name in ("saliency", "gradient_x_input", "integrated_gradients", "occlusion"):
            np.testing.assert_allclose(page.pictures[name].sum(dtype=np.float64),
                                       page.maps[name].sum(dtype=np.float64),
                                       rtol=1e-4, atol=1e-6, err_msg=name)
        cam = page.pictures["grad_cam"]
        np.testing.assert_array_equal(cam, np.broadcast_to(cam[:1], cam.shape))
        assert "attribution per 10 ms frame, spread over that frame's spectrum by energy" in \
            page.about.object
        assert page.input_view.visible and page.input_view.objects
        assert page.conv_layers == ["conv1", "conv2", "conv3", "layer1", "layer2"]
    else:
        for name, a in page.maps.items():
            np.testing.assert_array_equal(page.pictures[name], a)
        assert page.conv_layers == ["conv1"]  # AST's patch embedding
        assert "tokens" in page.about.object and "layer1, layer2" in page.about.object
    assert "pooled" in page.hidden_layers and "pooled" in page.about.object


@pytest.mark.slow
def test_deletion_starts_at_the_clip_and_ends_at_silence(page):
    p, target = page.predictor, int(page.target_select.value)
    probs = np.asarray(jax.nn.softmax(EP.logits_of(
        p.logits_fn, np.stack([page.x, p.baseline_input()])), axis=-1))[:, target]
    assert set(page.results) == set(METHODS) | {"random"}
    for name, res in page.results.items():
        for mode, (first, last) in (("deletion", probs), ("insertion", probs[::-1])):
            c = res[f"{mode}_curve"][0]
            assert c.shape == (21,) and np.all(np.isfinite(c))
            np.testing.assert_allclose([c[0], c[-1]], [first, last], rtol=1e-4, atol=1e-6,
                                       err_msg=f"{name} {mode}")


@pytest.mark.slow
def test_what_a_map_keeps_is_heard_through_the_predictor(page):
    p = page.predictor
    page.listen_select.value = "integrated_gradients"
    page.percent_slider.value = 100
    np.testing.assert_array_equal(page.kept_input, page.x)
    page.percent_slider.value = 20
    kept = page.kept_input
    if page.waveform:  # 20 of the 100 10 ms segments are the clip's, the rest silence
        seg = kept.reshape(-1, page.segment)
        same = np.all(seg == page.x.reshape(-1, page.segment), axis=1)
        assert same.sum() == 20 and np.all(seg[~same] == 0.0)
        np.testing.assert_allclose(page.audio.object, p.hear(kept[None])[0])
    else:
        n = int(round(0.2 * kept.size))
        assert int(np.sum(kept == page.x)) >= n
        assert np.asarray(page.audio.object).shape == (p.n_samples,)
    assert page.kept_spec.shape == page.picture.shape


@pytest.mark.slow
def test_switching_off_every_channel_of_the_ablation_layer_changes_the_probabilities(page):
    assert page.ranking is not None and page.ranking[0] == page.conv_layers[-1]
    np.testing.assert_allclose(page.ablated_probs, page.probs, rtol=1e-5)
    df = page.table.value.copy()
    df["on"] = False
    page.table.value = df
    assert not np.allclose(page.ablated_probs, page.probs, rtol=1e-3)
    df["on"] = True
    page.table.value = df
    np.testing.assert_allclose(page.ablated_probs, page.probs, rtol=1e-5)
