"""The Strips page without a browser, on a tiny linear classifier.

Known answers: for logits ``<W_c, x>`` the L∞ ascent direction on class ``c`` is
``sign(W_c - sum_k p_k W_k)``, so the target probability rises frame by frame while every
difference stays inside the budget; frames are appended as the generator yields them.
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

import serve.pages.strips as strips_mod
from data.features import FeatureParams, features_batch
from serve.config import Limits
from serve.pages.strips import StripsPage, colourise, strip_png
from serve.session import Clip, Session

PARAMS = FeatureParams(sample_rate=1000, duration_s=0.1, n_fft=32, hop_length=8, n_freq=16,
                       n_frames=13)  # 100 samples, (16, 13) features
LABELS = ["left", "right", "stop"]
W = jnp.asarray(np.random.default_rng(0).normal(0, 1, (3, 16, 13)), jnp.float32)


def acts_fn(x):
    logits = jnp.einsum("bft,cft->bc", x, W) * 0.05
    return logits, {"logits": logits}


class FakePredictor:
    labels, arch, model, params = LABELS, "fake", None, PARAMS
    acts_fn = staticmethod(acts_fn)

    def features(self, waves):
        return features_batch(np.atleast_2d(waves), self.params)

    def picture(self, x):  # hearsight's features are their own picture (Session.analyse asks)
        return np.asarray(x)

    def run(self, x):
        logits, acts = acts_fn(jnp.asarray(x))
        return np.asarray(jax.nn.softmax(logits)), {k: np.asarray(a) for k, a in acts.items()}


class FakeShared:
    predictor = FakePredictor()
    limits = Limits(jobs_per_session=1, job_seconds=60.0)


def _page(k=4, spf=3, budget=0.5):
    session = Session(FakeShared())
    wave = np.random.default_rng(1).normal(0, 0.3, PARAMS.n_samples).astype(np.float32)
    page = StripsPage(session)
    assert "Bring a clip in" in page.note.object
    session.set_clip(Clip("noise", wave, 1000, "synth"))
    page.n_frames.value, page.steps_per_frame.value, page.budget.value = k, spf, budget
    probs = FakePredictor().run(FakePredictor().features(wave))[0][0]
    page.target.value = int(np.argmin(probs))  # the least likely class
    return page, int(np.argmax(probs))


@pytest.fixture(scope="module")
def built():
    page, original = _page()
    produced, seen = [], []
    real = strips_mod.strip_frames

    def counting(*args, **kwargs):
        for frame in real(*args, **kwargs):
            produced.append(frame.index)
            yield frame

    strips_mod.strip_frames = counting
    try:
        page.frame_hooks.append(lambda f: seen.append((len(page.cards.objects), len(produced))))
        job = page.build()
        assert job is not None, page.session.alert.object
        assert job.join(60) and job.status == "done"
    finally:
        strips_mod.strip_frames = real
    return page, original, seen


def test_frames_appear_one_by_one_before_the_strip_is_complete(built):
    page, _, seen = built
    assert seen == [(k, k) for k in range(1, 6)]  # card k shown when only k frames exist
    assert len(page.cards.objects) == 5
    assert all("hs-strip-frame" in c.css_classes for c in page.cards.objects)


def test_target_probability_rises_and_differences_stay_in_budget(built):
    page, original, _ = built
    data = page.prob_source.data
    assert data["frame"] == [0, 1, 2, 3, 4]
    target = np.asarray(data["target"])
    # Rises, then plateaus once every bin sits at the budget's (or the box's) corner.
    assert np.all(np.diff(target) >= -1e-7) and target[1] > target[0]
    assert target[-1] > 0.5 > target[0]
    assert data["original"][-1] < data["original"][0]
    assert page.original == original
    for f in page.frames:
        assert np.max(np.abs(f.diff)) <= 0.5 + 1e-6
        assert f.x.min() >= PARAMS.floor - 1e-6 and f.x.max() <= 1e-6


def test_player_and_exports_after_the_build(built):
    page, _, _ = built
    assert page.player.visible and (page.player.start, page.player.end) == (0, 4)
    page.player.value = 3
    assert "frame 3" in page.player_view.objects[0].objects[0].object
    assert not page.build_button.disabled and page.stop_button.disabled
    with zipfile.ZipFile(io.BytesIO(page.zip_bytes())) as zf:
        names = zf.namelist()
        assert names == [f"frame_{k:02d}.wav" for k in range(5)]
        wave, sr = sf.read(io.BytesIO(zf.read(names[2])))
    assert sr == 1000 and wave.shape == (PARAMS.n_samples,)
    img = Image.open(io.BytesIO(page.png_bytes()))
    # 5 columns of 13 bins + 4 gaps of 4 px; two rows of 16 bins + a 4 px gap; scale 2.
    assert img.size == (2 * (5 * 13 + 4 * 4), 2 * (2 * 16 + 4))


def _image(fig) -> np.ndarray:
    from bokeh.models import Image as ImageGlyph

    r = next(r for r in fig.renderers if isinstance(r.glyph, ImageGlyph))
    return np.asarray(r.data_source.data["image"][0])


def test_player_steps_update_the_shown_card_in_place(built):
    """A player step changes the shown card's data, never its models: a new card per step
    sent ~100 new Bokeh models to the browser, and the player stalled as a session grew."""
    from bokeh.document import Document

    page, _, _ = built
    page.player.value = 1
    doc = Document()
    doc.add_root(page.player_view.get_root(doc))
    card = page.player_view.objects[0]
    ids = {m.id for m in doc.models}
    for k in (2, 4, 0):
        page.player.value = k
        assert page.player_view.objects[0] is card
        assert {m.id for m in doc.models} == ids  # no model added, none dropped
        shown, diff = card.objects[1].object, card.objects[2].object
        assert f"frame {k}" in card.objects[0].object
        assert shown.title.text == f"x{k}" and diff.title.text == f"x{k} − x0"
        np.testing.assert_allclose(_image(shown), page.pictures[k], rtol=1e-6)
        np.testing.assert_allclose(_image(diff), page.pictures[k] - page.pictures[0],
                                   rtol=1e-6, atol=1e-6)
    page.player.value = 3
    listen, audio = card.objects[3], card.objects[4]
    listen.clicks += 1  # the shown card plays the frame shown now
    assert audio.visible
    np.testing.assert_allclose(audio.object, np.clip(page.frame_audio(3), -0.99, 0.99))
    page.player.value = 2
    assert not audio.visible  # frame 3's sound is not offered as frame 2's


def test_player_steps_queue_one_draw_and_the_newest_frame_wins(built, monkeypatch):
    """Player steps arrive in callback threads; the card changes on the event loop (a Bokeh
    model may change only there). Steps faster than the page queue one draw, of the newest."""
    page, _, _ = built
    page.player.value = 0
    queued = []
    monkeypatch.setattr(page.runner, "push", queued.append)
    for k in (1, 2, 4):
        page.player.value = k
    assert len(queued) == 1  # one draw waits, however many steps came
    assert "frame 0" in page.player_view.objects[0].objects[0].object  # not drawn off-loop
    queued.pop()()
    assert "frame 4" in page.player_view.objects[0].objects[0].object
    page.player.value = 2  # the draw ran: the next step queues a new one
    assert len(queued) == 1
    queued.pop()()
    assert "frame 2" in page.player_view.objects[0].objects[0].object


def test_listen_button_fills_the_frame_audio(built):
    page, _, _ = built
    card = page.cards.objects[1]
    listen, audio = card.objects[3], card.objects[4]
    listen.clicks += 1
    assert audio.visible and np.asarray(audio.object).shape == (PARAMS.n_samples,)


def test_colourise_maps_ends_of_the_range_and_flips_rows():
    palette = ["#000000", "#808080", "#ffffff"]
    rgb = colourise(np.array([[-1.0, 0.0], [1.0, 5.0]]), palette, -1.0, 1.0)
    assert rgb.shape == (2, 2, 3)
    np.testing.assert_array_equal(rgb[1, :, 0], [0, 128])  # row 0 drawn at the bottom
    np.testing.assert_array_equal(rgb[0, :, 0], [255, 255])  # clipped above the range
    with pytest.raises(ValueError, match="as many differences as frames"):
        strip_png([np.zeros((2, 2))], [], floor=-4.0, limit=1.0)


def test_build_without_a_clip_is_refused():
    page = StripsPage(Session(FakeShared()))
    assert page.build() is None
    assert "bring a clip in first" in page.session.alert.object


def test_probability_legend_is_below_the_curves():
    from bokeh.models import Legend

    fig = _page()[0].chart.object
    assert not any(isinstance(r, Legend) for r in fig.center)  # nothing over the curves
    (legend,) = [r for r in fig.below if isinstance(r, Legend)]
    assert [i.label["value"] for i in legend.items] == ["target", "original class"]
