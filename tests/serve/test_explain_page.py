"""The Explain page without a browser, on a hand-built model with known answers.

The fake model average-pools the input 2 × 2 into a conv layer ``conv1`` of three channels:
channel 0 is ``relu(pool + 4)`` inside a planted patch (input rows 4:8, columns 2:6) and zero
elsewhere, channel 1 is ``relu(pool + 4)`` everywhere, channel 2 a constant. Only channel 0
reaches the logits: ``logit0 = mean of channel 0 over the patch``, ``logit1 = 1``,
``logit2 = 0``. The input is -3 (plus a little noise) with the patch raised to about 0, so the
model says class 0 (logit 4 against 1); without channel 0 it says class 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data.features import FeatureParams
from engine.attribution import METHODS, logits_from_acts
from engine.faithfulness import auc
from models.hooks import intervene
from serve.config import Limits
from serve.pages import explain_parts as EP
from serve.pages.explain import ExplainPage
from serve.session import Clip, Session

PARAMS = FeatureParams(sample_rate=1000, duration_s=0.2, n_fft=32, hop_length=16,
                       window="hann", n_freq=16, n_frames=12)  # features (16, 12)
ROWS, COLS = slice(4, 8), slice(2, 6)
IND = np.zeros((8, 6, 1), np.float32)
IND[2:4, 1:3] = 1.0  # the patch in pooled coordinates


def acts_fn(x, *, perturb=None, mask=None, replace=None):
    b = x.shape[0]
    pool = x.reshape(b, 8, 2, 6, 2).mean(axis=(2, 4))[..., None]
    a = jnp.concatenate([jax.nn.relu(pool + 4.0) * IND, jax.nn.relu(pool + 4.0),
                         jnp.ones_like(pool)], axis=-1)
    a = intervene("conv1", a, perturb=perturb, mask=mask, replace=replace)
    logit0 = a[..., 0].sum(axis=(1, 2)) / IND.sum()
    logits = jnp.stack([logit0, jnp.ones(b), jnp.zeros(b)], axis=-1)
    return logits, {"conv1": a}


def planted_x(seed=0):
    x = -3.0 + 0.05 * np.random.default_rng(seed).normal(size=PARAMS.shape)
    x[ROWS, COLS] += 3.0
    return np.minimum(x, 0.0).astype(np.float32)


class FakePredictor:
    """Predictor-like: every waveform has the planted features (the model is what is tested)."""

    labels = ["patch", "other", "none"]
    arch = "fake"
    params = PARAMS

    def __init__(self):
        self.acts_fn = acts_fn
        self.logits_fn = logits_from_acts(acts_fn)

    # The predictor interface the pages use (see engine.contract_predictor): hearsight's own
    # features, so the input's picture is the features themselves.
    input_kind = "features"
    input_shape = PARAMS.shape
    floor = PARAMS.floor
    picture_params = PARAMS
    sample_rate = PARAMS.sample_rate
    n_samples = PARAMS.n_samples

    def baseline_input(self):
        return np.full(PARAMS.shape, PARAMS.floor, np.float32)

    def picture(self, x):
        return np.asarray(x, np.float32)

    def hear(self, x, *, n_iter=32, seed=0):
        return np.stack([EP.kept_audio(xi, xi, PARAMS, percent=100, n_iter=n_iter, seed=seed)
                         for xi in np.asarray(x)])

    def features(self, waves):
        return np.repeat(planted_x()[None], np.atleast_2d(waves).shape[0], axis=0)

    def run(self, x):
        logits, acts = acts_fn(jnp.asarray(x))
        return np.asarray(jax.nn.softmax(logits)), {k: np.asarray(v) for k, v in acts.items()}


class FakeShared:
    predictor = FakePredictor()
    limits = Limits()


@pytest.fixture(scope="module")
def page():
    session = Session(FakeShared())
    page = ExplainPage(session)
    wave = np.random.default_rng(0).normal(0, 0.3, PARAMS.n_samples).astype(np.float32)
    session.set_clip(Clip("planted", wave, PARAMS.sample_rate, "synth"))
    page.wait(timeout=120)
    return page


def test_a_map_per_method_with_the_input_shape(page):
    assert page.target_select.value == 0  # the predicted class by default
    assert set(page.maps) == set(METHODS)
    for name, a in page.maps.items():
        assert a.shape == PARAMS.shape and np.all(np.isfinite(a)), name
    # d logit0 / dx = 1/4 (2 × 2 average pool) / 4 (mean over the patch's 4 pooled cells).
    expected = np.zeros(PARAMS.shape)
    expected[ROWS, COLS] = 1 / 16
    np.testing.assert_allclose(page.maps["saliency"], expected, atol=1e-6)
    for name in ("grad_cam", "occlusion", "integrated_gradients"):
        r, c = np.unravel_index(np.argmax(page.maps[name]), PARAMS.shape)
        assert 4 <= r < 8 and 2 <= c < 6, name
    assert len(page.maps_box.objects) == len(METHODS)
    assert all("hs-explain-map" in p.css_classes for p in page.maps_box.objects)
    assert page.progress.object == ""


@pytest.mark.parametrize("percent", [1, 25, 50, 100])
def test_top_percent_keeps_exactly_that_share_above_the_floor(page, percent):
    page.listen_select.value = "occlusion"
    page.percent_slider.value = percent
    n = int(round(percent / 100 * planted_x().size))
    assert int(np.sum(page.kept_spec > PARAMS.floor)) == n
    kept = page.kept_spec > PARAMS.floor
    np.testing.assert_array_equal(page.kept_spec[kept], planted_x()[kept])
    audio = np.asarray(page.audio.object)
    assert audio.shape == (PARAMS.n_samples,) and np.all(np.abs(audio) < 1.0)


def test_top_mask_ties_and_order():
    m = EP.top_mask(np.zeros((4, 5)), percent=30)  # all tied: first 6 cells by position
    np.testing.assert_array_equal(m.ravel(), np.arange(20) < 6)
    a = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(EP.top_mask(a, percent=25), a >= 9)
    with pytest.raises(ValueError, match="percent"):
        EP.top_mask(a, percent=120)


def _switch(page, channel, on):
    df = page.table.value.copy()
    df.loc[df["channel"] == channel, "on"] = on
    page.table.value = df


def test_switching_off_the_used_channel_changes_the_live_prediction(page):
    assert page.ranking[0] == "conv1"
    assert page.table.value["channel"].iloc[0] == 0  # the planted channel ranks first
    np.testing.assert_allclose(page.ablated_probs, page.probs, rtol=1e-6)
    _switch(page, 1, False)
    _switch(page, 2, False)  # channels the head never reads
    np.testing.assert_allclose(page.ablated_probs, page.probs, rtol=1e-6)
    assert np.argmax(page.probs) == 0
    _switch(page, 0, False)
    e = np.exp([0.0, 1.0, 0.0])  # logit0 drops to 0
    np.testing.assert_allclose(page.ablated_probs, e / e.sum(), rtol=1e-5)
    assert "other" in page.ablation_note.object
    for c in range(3):
        _switch(page, c, True)
    np.testing.assert_allclose(page.ablated_probs, page.probs, rtol=1e-6)


def test_curve_legends_carry_the_engines_auc(page):
    assert set(page.results) == set(METHODS) | {"random"}
    charts = [p.object for p in page.curves_box.objects]
    for mode, fig in zip(("deletion", "insertion"), charts):
        labels = [item.label["value"] for item in fig.legend[0].items]
        assert len(labels) == len(METHODS) + 1
        for name, label in zip(page.results, labels):
            res = page.results[name]
            value = float(auc(res[f"{mode}_curve"])[0])
            trapz = np.sum(np.diff(np.linspace(0, 1, 21)) *
                           (res[f"{mode}_curve"][0, 1:] + res[f"{mode}_curve"][0, :-1]) / 2)
            assert abs(value - trapz) < 1e-6
            assert label == f"{EP.METHOD_TITLES.get(name, name)} · AUC {value:.3f}"
    sal, rnd = page.results["saliency"], page.results["random"]
    assert sal["deletion_auc"][0] < rnd["deletion_auc"][0]
    assert sal["insertion_auc"][0] > rnd["insertion_auc"][0]


def test_changing_the_target_recomputes(page):
    page.target_select.value = 1  # class 1 is a constant: every gradient is zero
    page.wait(timeout=120)
    np.testing.assert_allclose(page.maps["saliency"], 0.0, atol=1e-7)
    page.target_select.value = 0
    page.wait(timeout=120)
    assert page.maps["saliency"].max() > 0


def _shown(select_model) -> tuple[str, list[str]]:
    """(label of the value, labels) as a browser's select shows them; Panel sends mapped
    options as ``(value, label)`` pairs (or, in some releases, as labels)."""
    pairs = [o if isinstance(o, tuple) else (o, o) for o in select_model.options]
    labels = dict(pairs)
    return labels.get(select_model.value, select_model.value), [lab for _, lab in pairs]


def test_what_the_page_computes_reaches_the_browsers_widgets():
    """The models a browser renders get the refilled options, values and ablation rows
    (``param.discard_events`` would drop this sync: the listen menu stayed empty)."""
    from bokeh.document import Document

    session = Session(FakeShared())
    page = ExplainPage(session)
    doc = Document()
    target, listen = page.target_select.get_root(doc), page.listen_select.get_root(doc)
    table = page.table.get_root(doc)
    assert listen.options == []
    wave = np.random.default_rng(1).normal(0, 0.3, PARAMS.n_samples).astype(np.float32)
    session.set_clip(Clip("planted", wave, PARAMS.sample_rate, "synth"))
    page.wait(timeout=120)
    assert _shown(target) == ("patch", ["patch", "other", "none"])
    assert _shown(listen) == (EP.METHOD_TITLES[page.listen_select.value],
                              [EP.METHOD_TITLES[m] for m in page.maps])
    np.testing.assert_array_equal(table.source.data["channel"],
                                  page.ranking[1]["channel"].to_numpy())
    assert list(table.source.data["channel"])[:1] == [0]  # the planted channel ranks first


def test_the_header_asks_about_the_target_class(page):
    top = page.labels[int(np.argmax(page.probs))]
    assert page.header.object == f"### planted: why **{top}**?"
    page.target_select.value = 1
    page.wait(timeout=120)
    assert page.header.object == (f"### planted: why **{page.labels[1]}**? "
                                  f"(the model says {top})")
    page.target_select.value = 0
    page.wait(timeout=120)
    assert page.header.object == f"### planted: why **{top}**?"
