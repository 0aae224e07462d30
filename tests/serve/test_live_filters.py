"""Pages open on filters that fire, and say so when a chosen one is silent.

A tiny ``ddevis_cnn`` built from its config has ``conv1`` filter 0 killed (kernel and bias
zero): its map is ReLU(0) through BatchNorm, the same value everywhere, for every clip. The
pages must not open on it, and must say "this filter is silent for this clip" when it is
chosen. The Maximise checks of a run that did not reach its target use small linear fakes
with known answers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bokeh.document import Document

from data.features import FeatureParams
from engine.predictor import Predictor
from serve.analysis import (channel_activity, is_silent, most_active_channel,
                            most_changed_channel)
from serve.config import Limits
from serve.session import Session

PARAMS = FeatureParams(sample_rate=8000, duration_s=0.5, n_fft=128, hop_length=64, n_freq=32,
                       n_frames=32)
LABELS = [str(d) for d in range(10)]
CLIP = "3_george_1.wav"


class _Shared:
    def __init__(self, predictor):
        self.predictor, self.limits = predictor, Limits(jobs_per_session=1, job_seconds=60.0)
        self.prior = self.separate = None


@pytest.fixture(scope="module")
def dead_predictor(tmp_path_factory):
    """A random ddevis_cnn over (32, 32) features whose conv1 filter 0 never fires."""
    from models.checkpoint import save_checkpoint
    from models.registry import build_model

    model = build_model("ddevis_cnn", n_classes=len(LABELS), input_shape=PARAMS.shape, seed=0)
    conv = model.conv1
    conv.kernel[...] = conv.kernel[...].at[..., 0].set(0.0)
    conv.bias[...] = conv.bias[...].at[0].set(0.0)
    model.eval()
    meta = {"arch": "ddevis_cnn",
            "arch_kwargs": {"n_classes": len(LABELS), "input_shape": list(PARAMS.shape)},
            "labels": LABELS, "features": PARAMS.to_dict(), "corpus": "test", "split": {},
            "metrics": {"note": "untrained, conv1 filter 0 dead"}}
    path = save_checkpoint(tmp_path_factory.mktemp("dead-ckpt") / "dead", model, meta)
    return Predictor.load(path)


@pytest.fixture
def session(dead_predictor, fsdd_dir):
    s = Session(_Shared(dead_predictor))
    s.wav = (fsdd_dir / CLIP).read_bytes()
    return s


def _served(page) -> None:
    # A served page has Bokeh models behind its widgets: a Select given new options then
    # picks its first one itself (filter 0), which an unrendered widget does not.
    page.view().get_root(Document())


def _shown(page) -> list:
    return list(page.filter_view.objects)


# -- the analyses ----------------------------------------------------------------------------
def test_activity_ranks_silent_channels_last_and_finds_the_most_changed():
    rng = np.random.default_rng(0)
    act = np.stack([np.zeros((4, 5)), np.full((4, 5), 3.0),          # dead, constant (bias)
                    rng.uniform(0, 1, (4, 5)), rng.uniform(0, 2, (4, 5))], axis=-1)
    score = channel_activity(act)
    assert score[0] < 0 and score[1] < 0                 # silent, whatever their level
    np.testing.assert_allclose(score[2:], np.abs(act[..., 2:]).mean(axis=(0, 1)))
    assert most_active_channel(act) == 3
    assert is_silent(act[..., 0]) and is_silent(act[..., 1]) and not is_silent(act[..., 2])
    assert not is_silent(np.array([1e-9, 2e-9]))         # tiny but varying is not silent
    edited = act.copy()
    edited[..., 2] += 0.5
    assert most_changed_channel(act, edited) == 2
    assert most_changed_channel(act, act) == 3           # nothing changed: the most active


# -- Inspect ---------------------------------------------------------------------------------
def test_inspect_opens_on_a_live_filter_and_says_when_one_is_silent(session):
    from serve.pages.inspect import InspectPage

    with session.tab("Inspect"):
        page = InspectPage(session)
    _served(page)
    session.activate("Inspect")
    assert session.load_bytes(session.wav, "a.wav")
    a = page.analysis
    conv1 = a.acts["conv1"]
    assert is_silent(conv1[:, :, 0])                     # the fixture did kill filter 0
    # The menu lists every filter of every conv layer (and the dense layer).
    values = list(page.filter_select.options.values())
    for layer in ("conv1", "conv2", "conv3", "conv4"):
        n = a.acts[layer].shape[2]
        assert [v for v in values if v[0] == layer] == [(layer, c) for c in range(n)]
    assert ("dense1", None) in values
    # It opens on conv1's most active filter, drawn and playable.
    best = int(np.argmax(np.abs(conv1).mean(axis=(0, 1))))
    assert page.filter_select.value == ("conv1", best) and best != 0
    assert _shown(page) == [page._filter_pane, page._filter_text, page._filter_audio]
    assert "silent" not in page._filter_text.value
    assert np.abs(page._filter_audio.object).max() > 0
    # Choosing the dead filter says so instead of a blank map and silent audio.
    page.filter_select.value = ("conv1", 0)
    text = page._filter_text.value
    assert "this filter is silent for this clip" in text and "conv1 · 0" in text
    assert f"most active filter of this layer for this clip is <b>{best}</b>" in text
    assert _shown(page) == [page._filter_text]          # no flat map, no silent player
    # A live one again: the map and its sound come back.
    page.filter_select.value = ("conv1", best)
    assert _shown(page) == [page._filter_pane, page._filter_text, page._filter_audio]
    assert "silent" not in page._filter_text.value


def test_inspect_keeps_a_pick_but_follows_each_clip_until_then(session, fsdd_dir):
    from serve.pages.inspect import InspectPage

    page = InspectPage(session)
    _served(page)
    session.activate("Inspect")
    for name in ("7_lucas_3.wav", "9_jackson_0.wav"):   # no pick: each clip's most active
        assert session.load_bytes((fsdd_dir / name).read_bytes(), name)
        conv1 = page.analysis.acts["conv1"]
        assert page.filter_select.value == ("conv1", most_active_channel(conv1))
        assert not is_silent(conv1[:, :, page.filter_select.value[1]])
    page.filter_select.value = ("conv2", 3)               # the user's pick stays
    assert session.load_bytes(session.wav, "a.wav")
    assert page.filter_select.value == ("conv2", 3) and page._filter_for is page.analysis


# -- Edit & compare --------------------------------------------------------------------------
def test_compare_difference_map_opens_on_a_live_filter_and_says_when_silent(session):
    from serve.pages.compare import ComparePage

    assert session.load_bytes(session.wav, "a.wav")
    page = ComparePage(session)
    _served(page)
    assert page.layer_select.value == "conv1"
    conv1 = page.analysis_b.acts["conv1"]
    assert page.channel_select.value == most_active_channel(conv1) != 0   # no edits yet
    assert "filter" in page.diff_view.objects[0].object.title.text
    page.op_select.value = "reverse"
    page.add_button.clicks += 1
    a, b = page.analysis_a.acts["conv1"], page.analysis_b.acts["conv1"]
    changed = int(np.argmax(np.abs(b - a).mean(axis=(0, 1))))
    assert page.channel_select.value == changed != 0      # now the most changed filter
    assert f"filter {changed}:" in page.diff_view.objects[0].object.title.text
    page.channel_select.value = 0                        # the dead one
    note = page.diff_view.objects[0]
    assert "hs-compare-silent" in note.css_classes
    assert "this filter is silent for this clip" in note.object
    assert "conv1 · filter 0" in note.object
    page.op_select.value = "reverse"                     # the pick stays through edits
    page.add_button.clicks += 1
    assert page.channel_select.value == 0


# -- Maximise --------------------------------------------------------------------------------
def test_maximise_channel_starts_on_a_live_filter(session, dead_predictor):
    from serve.pages.maximise import MaximisePage

    page = MaximisePage(session)
    page.kind.value = "channel"
    page.layer.value = "conv2"
    page.layer.value = "conv1"
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(0), PARAMS.shape))  # any start
    ch = int(page.index.value)
    assert ch != 0                                        # not the dead filter 0...
    _, acts = dead_predictor.run(PARAMS.floor / 2 + 0.1 * x[None])
    assert not is_silent(acts["conv1"][0, :, :, ch])       # ...a live one
    assert "most active channel on a noise start" in page.layer_note.object
    assert session.load_bytes(session.wav, "a.wav")        # with a clip: its most active
    page.layer.value = "conv2"
    page.layer.value = "conv1"
    clip_acts = session.analyse(session.clip.wave).acts["conv1"]
    assert page.index.value == str(most_active_channel(clip_acts))
    assert "on the current clip" in page.layer_note.object
    page.kind.value = "unit"                              # a unit: the largest one's place
    idx = tuple(int(i) for i in page.index.value.split(","))
    assert clip_acts[idx] == clip_acts.max()


class _Linear:
    """Logits ``0.05 <W_c, x>``; ``conv1`` = ``(0·x, x − floor)``: channel 0 dead, 1 live."""

    labels, arch, model, params = ["yes", "no", "up"], "fake", None, FeatureParams(
        sample_rate=1000, duration_s=0.1, n_fft=32, hop_length=8, n_freq=16, n_frames=13)

    def __init__(self):
        w = jnp.asarray(np.random.default_rng(0).normal(0, 1, (3, 16, 13)), jnp.float32)
        floor = self.params.floor

        def acts_fn(x):
            logits = jnp.einsum("bft,cft->bc", x, w) * 0.05
            return logits, {"conv1": jnp.stack([0 * x, x - floor], -1), "logits": logits}
        self.acts_fn = acts_fn

    def run(self, x):
        logits, acts = self.acts_fn(jnp.asarray(x))
        return np.asarray(jax.nn.softmax(logits)), {k: np.asarray(a) for k, a in acts.items()}


def _maximise(**values):
    from serve.pages.maximise import MaximisePage

    page = MaximisePage(Session(_Shared(_Linear())))
    for name, value in dict(starts=2, **values).items():
        getattr(page, name).value = value
    job = page.run()
    assert job is not None and job.join(60), page.session.alert.object
    return page


def test_a_class_target_not_reached_is_flagged_with_its_figure():
    page = _maximise(steps=1, lr=1e-5)                     # one tiny step: ~1/3 each
    own = page.result["own"]
    assert own[0] < 0.5
    assert page.shortfall.visible
    assert "Target not reached" in page.shortfall.value and "<b>yes</b>" in page.shortfall.value
    assert f"{own[0]:.1%}" in page.shortfall.value
    page = _maximise(steps=40, lr=0.5)                     # ascent on "yes" wins outright
    assert np.argmax(page.result["own"]) == 0 and page.result["own"][0] >= 0.5
    assert not page.shortfall.visible and page.shortfall.value == ""


def test_a_channel_that_did_not_rise_is_flagged():
    page = _maximise(steps=3, lr=0.2, kind="channel")
    assert page.index.value == "1"                         # the live channel by default
    assert not page.shortfall.visible                      # x − floor rises under ascent
    page = _maximise(steps=3, lr=0.2, kind="channel", index="0")   # the dead one
    assert page.shortfall.visible and "did not rise" in page.shortfall.value
    assert "ended at <b>0</b>" in page.shortfall.value
