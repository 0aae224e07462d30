"""The Edit & compare page without a browser, driven through its widgets.

The fake predictor's classes have known answers: "early" wins when the first half of the
spectrogram holds more energy than the second, "late" in the opposite case, so a noise burst
at the start is "early" and its time reversal "late".
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from bokeh.document import Document

from data.audio import fit_to_window, peak_normalise
from data.edits import EDIT_SCHEMAS, apply_chain, chain_from_json
from data.features import ddevis_stft, features_batch
from serve.config import Limits
from serve.pages.compare import ComparePage
from serve.pages.compare_parts import edit_label, param_widgets
from serve.session import Clip, Session

N = 8000  # ddevis_stft(): 8 kHz, 1 s


class FakePredictor:
    """Predictor-like: real features, a designed linear read-out and a fake conv layer."""

    labels = ["early", "late", "none"]
    arch = "fake"
    model = None

    def __init__(self):
        self.params = ddevis_stft()
        rng = np.random.default_rng(0)
        self.w_dense = rng.normal(0, 0.05, (100, 4))

    # The predictor interface the pages use (see engine.contract_predictor): hearsight's
    # own features, so the input's picture is the features themselves.
    input_kind = "features"

    @property
    def sample_rate(self):
        return self.params.sample_rate

    @property
    def n_samples(self):
        return self.params.n_samples

    @property
    def picture_params(self):
        return self.params

    def picture_frequencies(self):
        return np.arange(self.params.n_freq) * self.params.sample_rate / self.params.n_fft

    def picture(self, x):
        return np.asarray(x, np.float32)

    def sonify_map(self, fmap, *, n_iter, seed):
        from serve.analysis import sonify

        return sonify(fmap, self.params, seed=seed)

    def features(self, waves):
        return features_batch(np.atleast_2d(waves), self.params)

    def run(self, x):
        x = np.asarray(x, np.float64)
        half = x.shape[2] // 2
        m1, m2 = x[:, :, :half].mean(axis=(1, 2)), x[:, :, half:].mean(axis=(1, 2))
        logits = np.stack([4 * (m1 - m2), 4 * (m2 - m1), np.zeros_like(m1)], axis=1)
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        pooled = x[:, ::16, ::15]  # (n, 10, 10)
        conv = np.maximum(pooled[..., None] * np.array([1.0, -1.0, 0.5]) + [4.0, -1.0, 2.0], 0)
        dense = np.tanh(pooled.reshape(len(x), -1) @ self.w_dense)
        return probs, {"conv1": conv, "dense1": dense, "logits": logits, "probs": probs}


class FakeShared:
    def __init__(self):
        self.predictor = FakePredictor()
        self.limits = Limits()


@pytest.fixture(scope="module")
def shared():
    return FakeShared()


def _burst(seed=0, frac=0.4):
    """Peak-normalised white noise in the first ``frac`` of the window, silence after."""
    w = np.zeros(N, np.float32)
    w[: int(frac * N)] = np.random.default_rng(seed).normal(0, 0.3, int(frac * N))
    return peak_normalise(w)


@pytest.fixture
def page(shared):
    session = Session(shared)
    session.set_clip(Clip("burst", _burst(), 8000, "synth"))
    return ComparePage(session)


def _click(page, op, **values):
    page.op_select.value = op
    for name, v in values.items():
        page.param_widgets[name].value = v
    page.add_button.clicks += 1


def _expected(wave, chain):
    return np.clip(fit_to_window(apply_chain(wave, 8000, chain), N), -1.0, 1.0)


def test_param_widgets_follow_the_schema():
    g = param_widgets("gain")["db"]
    assert (type(g).__name__, g.start, g.end, g.value) == ("FloatSlider", -30.0, 30.0, 6.0)
    r = param_widgets("repeat")["times"]
    assert (type(r).__name__, r.start, r.end, r.value) == ("IntSlider", 1, 3, 1)
    assert type(param_widgets("noise")["seed"]).__name__ == "IntInput"
    assert param_widgets("reverse") == {}
    for op, schema in EDIT_SCHEMAS.items():
        assert list(param_widgets(op)) == list(schema)
    with pytest.raises(ValueError, match="unknown edit op"):
        param_widgets("echo")


def test_gain_then_reverse_equals_apply_chain(page):
    orig = page.original.wave
    _click(page, "gain", db=6.0)
    _click(page, "reverse")
    chain = page.history.chain
    assert chain == [{"op": "gain", "params": {"db": 6.0}}, {"op": "reverse", "params": {}}]
    np.testing.assert_array_equal(page.edited.wave, _expected(orig, chain))
    # By hand: +6 dB doubles the reversed original, and what passes full scale is clipped
    # (the gain used to be undone by a peak normalisation after the chain).
    g = np.float32(10 ** (6 / 20))
    np.testing.assert_allclose(page.edited.wave, np.clip(orig[::-1] * g, -1, 1), atol=1e-6)
    over = float(np.mean(np.abs(orig * g) > 1))
    assert over > 0 and not np.allclose(page.edited.wave, orig[::-1], atol=1e-3)
    assert "gain(db=+6)" in page.chain_view.object and "reverse()" in page.chain_view.object
    assert f"{100 * over:.1f} % of the samples past full scale" in page.edited.note
    assert "**clipped**" in page.edited.note and page.length_note.visible
    audio = page.side_b.objects[1]
    np.testing.assert_allclose(audio.object, np.clip(page.edited.wave, -0.99, 0.99))


def test_undo_removes_and_redo_restores(page):
    _click(page, "gain", db=6.0)
    _click(page, "reverse")
    page.undo_button.clicks += 1
    assert page.history.chain == [{"op": "gain", "params": {"db": 6.0}}]
    np.testing.assert_allclose(page.edited.wave, _expected(page.original.wave, page.history.chain),
                               atol=1e-6)
    assert not page.redo_button.disabled and "reverse" not in page.chain_view.object
    page.redo_button.clicks += 1
    assert [e["op"] for e in page.history.chain] == ["gain", "reverse"]
    np.testing.assert_allclose(page.edited.wave, _expected(page.original.wave, page.history.chain),
                               atol=1e-6)
    assert page.redo_button.disabled and not page.undo_button.disabled
    page.reset_button.clicks += 1
    assert page.history.chain == [] and page.undo_button.disabled


def test_downloads_round_trip(page, shared):
    _click(page, "gain", db=-3.5)
    _click(page, "fade", fade_in_ms=100.0)
    _click(page, "reverse")
    text = page.chain_file().getvalue().decode("utf-8")
    assert chain_from_json(text) == page.history.chain
    wave, sr = sf.read(io.BytesIO(page.wav_file().getvalue()), dtype="float32")
    assert sr == 8000
    np.testing.assert_allclose(wave, page.edited.wave, atol=1.0 / 32767)
    other = ComparePage(page.session)
    other.chain_upload.value = text.encode("utf-8")  # the FileInput path
    assert other.history.chain == page.history.chain
    np.testing.assert_array_equal(other.edited.wave, page.edited.wave)


def test_invalid_parameters_report_and_keep_chain(page):
    _click(page, "gain", db=6.0)
    before, wave = page.history.chain, page.edited.wave.copy()
    _click(page, "slice", start_pct=60.0, end_pct=40.0)
    assert page.session.alert.visible and "start_pct" in page.session.alert.object
    assert not page.add_edit("gain", {"db": 99.0})
    assert "[-30.0, 30.0]" in page.session.alert.object
    assert not page.load_chain(b"[{\"op\": \"echo\"}]")
    assert "unknown edit op" in page.session.alert.object
    assert not page.load_chain(b"\xff\xfe not json")
    assert page.history.chain == before
    np.testing.assert_array_equal(page.edited.wave, wave)


def test_empty_chain_has_zero_distances_and_reverse_does_not(page):
    assert page.history.chain == []
    np.testing.assert_array_equal(page.edited.wave, page.original.wave)
    assert set(page.distances) == {"conv1", "dense1", "logits", "probs"}
    for d in page.distances.values():
        assert d["l2"] == d["rel_l2"] == 0.0 and d["cosine"] == pytest.approx(0.0, abs=1e-12)
    _click(page, "reverse")
    assert page.distances["conv1"]["rel_l2"] > 0.1 and page.distances["logits"]["cosine"] > 1.0
    assert len(page.distance_view.objects) == 1


def test_summary_names_both_top_classes(page):
    _click(page, "reverse")
    s = page.summary.object
    assert "original → **early**" in s and "edited → **late**" in s
    assert "early" in page.pred_a.object and "late" in page.pred_b.object
    assert "hs-compare-summary" in page.summary.css_classes
    assert "hs-pred-original" in page.pred_a.css_classes
    assert "hs-pred-edited" in page.pred_b.css_classes


def test_length_change_is_stated(page):
    _click(page, "repeat", times=1)
    assert page.edited.raw_samples == 2 * N and "trimmed" in page.length_note.object
    assert page.length_note.visible
    np.testing.assert_array_equal(page.edited.wave, _expected(page.original.wave,
                                                              page.history.chain))
    page.undo_button.clicks += 1
    _click(page, "slice", start_pct=0.0, end_pct=50.0)
    assert page.edited.raw_samples == N // 2 and "padded" in page.length_note.object


def test_new_clip_reapplies_chain_and_maps_follow(page):
    _click(page, "reverse")
    new = _burst(seed=1, frac=0.3)
    page.session.set_clip(Clip("other", new, 8000, "synth"))
    np.testing.assert_array_equal(page.original.wave, new)
    np.testing.assert_allclose(page.edited.wave, new[::-1], atol=1e-6)
    assert page.layer_select.options == ["conv1", "dense1"] and page.layer_select.value == "conv1"
    assert page.channel_select.options == [0, 1, 2]
    page.channel_select.value = 2
    assert "filter 2" in page.diff_view.objects[0].object.title.text
    assert len(page.maps.objects) == 2
    root = page.view().get_root(Document())  # the whole layout serialises to Bokeh models
    classes = {c for m in root.references() for c in getattr(m, "css_classes", [])}
    assert {"hs-compare-summary", "hs-pred-original", "hs-pred-edited", "hs-chain"} <= classes


@pytest.mark.slow
def test_listen_sonifies_both_filters(page):
    _click(page, "reverse")
    page.listen_button.clicks += 1
    players = page.diff_view.objects[1].objects
    assert [a.name for a in players] == ["original", "edited"]
    assert all(np.all(np.isfinite(a.object)) and a.object.shape == (N,) for a in players)


def test_edit_label_formats():
    assert edit_label({"op": "gain", "params": {"db": 6.0}}) == "gain(db=+6)"
    assert edit_label({"op": "slice", "params": {"start_pct": 10.0, "end_pct": 90.5}}) \
        == "slice(start_pct=10, end_pct=90.5)"
    assert edit_label({"op": "reverse", "params": {}}) == "reverse()"


def test_downloads_are_named_after_the_clip_and_edits_and_bad_chains_name_their_file(page):
    assert page.wav_download.filename == "burst_unedited.wav"
    _click(page, "reverse")
    assert page.wav_download.filename == "burst_reverse.wav"
    assert page.chain_download.filename == "burst_reverse.chain.json"
    page.chain_upload.filename = "my_chain.json"
    assert not page.load_chain(b"[{\"op\": \"echo\"}]")
    assert "my_chain.json" in page.session.alert.object
