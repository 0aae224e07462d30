"""The Maximise page without a browser, on tiny linear classifiers with known answers.

The fake classifier's logits are ``<W_c, x>``: the gradient of class ``c``'s probability
points along ``W_c - sum_k p_k W_k``, so ascent on class 1 must raise its probability until it
wins; ``conv1`` channel 0 is ``x`` itself, so its mean rises under ascent.
"""

from __future__ import annotations

import io
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf

from data.features import FeatureParams
from serve.config import Limits
from serve.pages.maximise import MaximisePage
from serve.pages.maximise_parts import build_objective, layer_shapes, npz_bytes, parse_index
from serve.session import Session

PARAMS = FeatureParams(sample_rate=1000, duration_s=0.1, n_fft=32, hop_length=8, n_freq=16,
                       n_frames=13)  # 100 samples, (16, 13) features
LABELS = ["yes", "no", "up"]


def _linear(seed: int):
    w = jnp.asarray(np.random.default_rng(seed).normal(0, 1, (3, *PARAMS.shape)), jnp.float32)
    v = jnp.asarray(np.random.default_rng(seed + 1).normal(0, 0.1, (16 * 13, 4)), jnp.float32)

    def acts_fn(x):
        logits = jnp.einsum("bft,cft->bc", x, w) * 0.05
        conv = jnp.stack([x, -x], axis=-1)
        return logits, {"conv1": conv, "dense1": x.reshape(x.shape[0], -1) @ v, "logits": logits}
    return acts_fn


class FakePredictor:
    labels, arch, model, params = LABELS, "fake", None, PARAMS

    def __init__(self, seed: int):
        self.acts_fn = _linear(seed)

    def features(self, waves):
        from data.features import features_batch
        return features_batch(np.atleast_2d(waves), self.params)

    def run(self, x):
        logits, acts = self.acts_fn(jnp.asarray(x))
        return np.asarray(jax.nn.softmax(logits)), {k: np.asarray(a) for k, a in acts.items()}


class FakePrior:
    latent = 4

    def __init__(self):
        d = jnp.asarray(np.random.default_rng(7).normal(0, 1, (4, 16 * 13)), jnp.float32)
        self.decode_fn = lambda z: (PARAMS.floor * jax.nn.sigmoid(z @ d)).reshape(-1, 16, 13)


class FakeShared:
    def __init__(self, *, prior=None, separate=True):
        self.predictor = FakePredictor(0)
        self.separate = FakePredictor(10) if separate else None
        self.prior = prior
        self.limits = Limits(jobs_per_session=1, job_seconds=60.0)


@pytest.fixture(scope="module")
def shared():
    return FakeShared()


def _page(shared, **values):
    page = MaximisePage(Session(shared))
    defaults = dict(steps=6, starts=4, lr=0.2)
    for name, value in {**defaults, **values}.items():
        getattr(page, name).value = value
    return page


def _run(page):
    job = page.run()
    assert job is not None, page.session.alert.object
    assert job.join(60)
    return job


def test_class_run_raises_the_objective_and_names_the_target(shared):
    page = _page(shared)
    page.cls.value = 1
    job = _run(page)
    assert job.status == "done" and job.steps == 6
    history = np.stack(page.result["history"])
    assert history.shape == (6, 4)
    assert history[-1].max() > history[0].max()
    assert np.all(np.diff(history.mean(axis=1)) > 0)
    assert page.curve_source.data["step"] == [1, 2, 3, 4, 5, 6]
    assert len(page.curve_source.data["best"]) == 6
    assert page.step_md.value == "step 6 / 6"
    assert "Own classifier: <b>no (" in page.verdict.value
    assert "Separate classifier: <b>" in page.verdict.value
    assert page.audio.visible and not page.run_button.disabled and page.stop_button.disabled


def test_runs_of_any_class_in_any_session_share_one_compiled_step(shared):
    from serve.pages.maximise_parts import setup_run

    def setup(**cfg):
        page = _page(shared)
        page.cls.value = cfg.pop("cls", 0)
        for name, value in cfg.items():
            getattr(page, name).value = value
        return setup_run(page.config(), predictor=shared.predictor, params=PARAMS, prior=None,
                         layers=page.layers, session=page.session)

    a, b = setup(cls=0), setup(cls=2)                   # two sessions, two classes
    assert a[1] is b[1] and (a[4], b[4]) == (0, 2)      # one jitted step, own targets
    assert setup(cls=0, lr=0.3)[1] is not a[1]          # other settings: another entry
    init, step, x0, key, target = b
    _, metrics = step(init(x0, key=key))
    probs = np.asarray(jax.nn.softmax(shared.predictor.acts_fn(metrics["x"])[0]))
    np.testing.assert_allclose(metrics["target_prob"], probs[:, 2], rtol=1e-5)


def test_downloads_are_a_wav_and_a_pickle_free_npz(shared):
    page = _page(shared, steps=3, starts=2)
    page.cls.value = 2
    _run(page)
    wave, sr = sf.read(io.BytesIO(page.wav_bytes()))
    assert sr == 1000 and wave.shape == (PARAMS.n_samples,)
    with np.load(io.BytesIO(page.npz_bytes()), allow_pickle=False) as z:
        assert z["x"].shape == PARAMS.shape and z["history"].shape == (3, 2)
        assert int(z["target"]) == 2
        cfg = json.loads(str(z["config"]))
    assert cfg["cls"] == 2 and cfg["steps"] == 3 and cfg["mode"] == "noise"


def test_stop_ends_the_run_within_one_step(shared):
    page = _page(shared, steps=50, starts=2)
    page.step_hooks.append(lambda k, n: page.stop() if k == 3 else None)
    job = _run(page)
    assert job.status == "stopped"
    assert len(page.result["history"]) <= 4
    assert "Run stopped" in page.verdict.value


def test_channel_objective_is_the_channel_mean_and_rises(shared):
    page = _page(shared, steps=4, starts=2)
    page.kind.value = "channel"
    page.layer.value, page.index.value = "conv1", "0"
    assert page.layer.visible and not page.cls.visible
    _run(page)
    history = np.stack(page.result["history"])
    x = page.result["x"]
    assert history[-1].max() == pytest.approx(float(x.mean()), abs=1e-5)
    assert history[-1].max() > history[0].max()
    assert page.result["target"] == -1


def test_objectives_from_configs_and_their_errors(shared):
    layers = layer_shapes(shared.predictor.acts_fn, PARAMS.shape)
    assert layers["conv1"] == (16, 13, 2) and layers["dense1"] == (4,)
    assert parse_index(" 2, 5,1") == (2, 5, 1)
    with pytest.raises(ValueError, match="integers separated by commas"):
        parse_index("a")
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2, *PARAMS.shape)), jnp.float32)
    logits, acts = shared.predictor.acts_fn(x)
    unit = build_objective(dict(kind="unit", layer="conv1", index="2,5,1"), layers)
    np.testing.assert_allclose(unit(logits, acts), -np.asarray(x[:, 2, 5]), rtol=1e-6)
    with pytest.raises(ValueError, match="one index below 2"):
        build_objective(dict(kind="channel", layer="conv1", index="2"), layers)
    with pytest.raises(ValueError, match="needs 1 index"):
        build_objective(dict(kind="unit", layer="dense1", index="1,1"), layers)


def test_refusals_go_to_the_session_banner(shared):
    page = _page(shared, steps=50, starts=2)
    assert page.use_prior.disabled and "spectrogram_ae" in page.prior_note.object
    fresh = MaximisePage(Session(shared))
    assert fresh.use_prior.value is False and fresh.lr.value == 0.1  # no prior: input space
    page.mode.value = "class-to-class (current clip)"
    assert page.run() is None
    assert "bring one in first" in page.session.alert.object
    page.mode.value = "noise-to-class"
    gate = []
    page.step_hooks.append(lambda k, n: gate.append(k))
    first = page.run()
    try:
        assert page.run() is None
        assert "limit is 1" in page.session.alert.object
        assert page.result["cfg"]["steps"] == 50  # the running job's result is untouched
    finally:
        first.stop()
        first.join(60)
    assert npz_bytes(np.zeros((2, 2)), np.zeros((1, 1)), -1, {})[:2] == b"PK"


def test_latent_space_run_with_a_decoder_prior():
    shared = FakeShared(prior=FakePrior(), separate=False)
    page = _page(shared, steps=5, starts=3)
    assert not page.use_prior.disabled
    # A loaded prior is on from the start, with the latent space's learning rate.
    fresh = MaximisePage(Session(shared))
    assert fresh.use_prior.value is True and fresh.lr.value == 1.0
    page.use_prior.value = False
    assert page.lr.value == 0.1
    page.use_prior.value = True
    assert page.lr.value == 1.0
    page.lr.value = 0.5
    page.cls.value = 0
    _run(page)
    history = np.stack(page.result["history"])
    assert history[-1].max() > history[0].max()
    x = page.result["x"]
    assert x.shape == PARAMS.shape and x.max() < 0 and x.min() > PARAMS.floor
    assert "<i>not loaded</i>" in page.verdict.value


def test_step_figures_exist_before_a_run_and_only_their_data_change(shared):
    # Built with the page (hidden): a run's steps swap their data and show them, so no
    # step adds figures to a served document (a walk of all its models each time).
    page = _page(shared, steps=3)
    spec, bars = page._figs
    assert not page.spec.visible and not page.probs.visible
    assert page.spec.objects[0].object is spec and page.probs.objects[0].object is bars
    for run in range(2):
        _run(page)
        assert page._figs == (spec, bars) and page.spec.objects[0].object is spec
        assert page.spec.visible and page.probs.visible
        image = [r for r in spec.renderers if "image" in r.data_source.data][0]
        np.testing.assert_array_equal(image.data_source.data["image"][0],
                                      page.result["x"].astype(np.float32))
        assert spec.title.text == "Best start after step 3"
        top = LABELS[int(np.argmax(page.result["own"]))]
        assert list(bars.y_range.factors)[-1] == top


def test_a_run_behind_other_sessions_clicks_says_it_waited(shared):
    import threading

    from serve import priority

    page = _page(shared, steps=3)
    release = threading.Event()

    def someone_elses_picks():  # one after another (a mark older than 3 s is ignored)
        while not release.is_set():
            with priority.interactive():
                release.wait(0.8)

    other = threading.Thread(target=someone_elses_picks)
    other.start()
    try:
        job = _run(page)            # every step waits its 0.5 s for the pick, then goes on
    finally:
        release.set()
        other.join()
    assert job.status == "done" and job.waited_s >= 1.4
    import re
    assert re.fullmatch(r"step 3 / 3 · waited [12] s for other sessions \(busy server\)",
                        page.step_md.value), page.step_md.value   # 3 waits of 0.5 s by step 3
    job = _run(page)                # nobody waiting now: no note
    assert job.waited_s < 0.5 and page.step_md.value == "step 3 / 3"


def test_objective_legend_is_below_the_curves(shared):
    from bokeh.models import Legend

    fig = _page(shared).curve.object
    assert not any(isinstance(r, Legend) for r in fig.center)  # nothing over the curves
    (legend,) = [r for r in fig.below if isinstance(r, Legend)]
    assert [i.label["value"] for i in legend.items] == ["best start", "mean"]
