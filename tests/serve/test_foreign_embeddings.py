"""The Embeddings page on a tiny random Hugging Face wav2vec2 (waveform in, labels yes / no /
maybe), without a browser.

Known answers: the store the page computes has one row per clip in every layer, each layer's
own width (conv 16, transformer 32, pooled 8) and, as rows, the time means of the predictor's
own activations; the layer walkthrough's slider names every layer, transformer layers
included, in forward order; the colours of labels follow the model's label order; at layer
``layer2`` the cloud's points are that layer's aligned layout. A frame-level store keeps each
layer's own frame count (3199 / 799 / 399), so the page's walkthrough refuses it.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from data.corpora import Item
from data.dataset import load_waves
from serve.config import Limits
from serve.pages import embeddings_layouts as EL
from serve.pages.embeddings import EmbeddingsPage
from serve.session import Session

LABELS = ("yes", "no", "maybe")
LAYERS = ("conv1", "conv2", "conv3", "layer1", "layer2", "pooled")
DIMS = (16, 16, 16, 32, 32, 8)
N = 9


class Shared:
    """What the page reads of the server: predictor, limits, model_dir, corpus_items()."""

    def __init__(self, predictor, model_dir, items):
        self.predictor, self.model_dir, self._items = predictor, model_dir, items
        self.limits = Limits(jobs_per_session=1, job_seconds=300.0)

    def corpus_items(self):
        return self._items


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    folder = tmp_path_factory.mktemp("w2v-clips")
    rng = np.random.default_rng(5)
    t = np.arange(16000) / 16000
    out = []
    for i in range(N):
        wave = 0.3 * np.sin(2 * np.pi * (120 + 90 * i) * t) + rng.normal(0, 0.02, t.size)
        path = folder / f"clip{i}.wav"
        sf.write(path, wave.astype(np.float32), 16000)
        out.append(Item(f"w2v/clip{i}", str(path), LABELS[i % 3], f"s{i % 2}", "test"))
    return out


@pytest.fixture(scope="module")
def shared(tiny_hf, tiny_hf_predictor, items):
    return Shared(tiny_hf_predictor("wav2vec2"), f"hf:{tiny_hf('wav2vec2')}", items)


@pytest.fixture(scope="module")
def page(shared):
    page = EmbeddingsPage(Session(shared))
    page.method.value = "pca"
    job = page.compute()
    assert job is not None and page.wait(300), page.session.alert.object
    assert job.status == "done", job.error
    return page


@pytest.fixture(scope="module")
def direct(shared, items):
    """``predictor.run`` of the clips, the answers to compare with."""
    p = shared.predictor
    waves, kept, _ = load_waves(items, p.params)
    assert len(kept) == N
    return p.run(p.features(waves))


def test_store_has_a_row_per_clip_and_every_layers_width(page, direct):
    store = page.store
    assert store.level == "utterance" and store.layers == LAYERS
    assert tuple(store.info(n)["dim"] for n in LAYERS) == DIMS
    assert all(store.info(n)["rows"] == N for n in LAYERS)
    probs, acts = direct
    meta = store.meta("layer1")
    assert list(meta["item_id"]) == [f"w2v/clip{i}" for i in range(N)]
    for name in ("conv1", "layer1", "layer2"):  # pooled over time at utterance level
        np.testing.assert_allclose(store.layer_matrix(name), acts[name].mean(axis=1),
                                   atol=1e-4, err_msg=name)
    np.testing.assert_allclose(store.layer_matrix("pooled"), acts["pooled"], atol=1e-4)
    assert list(meta["prediction"]) == [LABELS[k] for k in probs.argmax(axis=1)]
    np.testing.assert_allclose(meta["confidence"], probs.max(axis=1), atol=1e-5)


def test_walkthrough_covers_every_layer_with_transformer_layers(page):
    lay = page.layouts["pca"]
    assert lay.layers == LAYERS and lay.xy.shape == (len(LAYERS), N, 2)
    assert page.slider.format.args["names"] == list(LAYERS)
    assert page.slider.end == len(LAYERS) - 1 and not page.slider.disabled
    assert list(page.metrics.object.columns[1:]) == list(LAYERS)
    for name in ("layer1", "layer2"):
        k = LAYERS.index(name)
        page.slider.value = float(k)
        x, y = page.cloud_view.points_at()
        np.testing.assert_allclose(np.stack([x, y], 1), lay.xy[k], atol=1e-6)
        caption = page.cloud_view.caption.object
        assert caption.startswith(f"Layer **{name}**") and f"({k + 1} of 6)" in caption


def test_label_colours_follow_the_models_label_order(page):
    page.colour.value = "label"
    cloud, key = page.cloud_view.cloud()
    assert cloud.categories == LABELS  # the model's order, not sorted
    assert all(f">{lab}</span>" in page.cloud_view.legend.object for lab in LABELS)


def test_selected_row_plays_and_opens_in_inspect_at_the_models_rate(page, shared, items):
    lay = page.layouts["pca"]
    page.slider.value = float(LAYERS.index("layer2"))
    x, y = lay.xy[LAYERS.index("layer2")].T
    rows = page.cloud_view.select_geometry({"type": "rect", "x0": float(x.min()) - 1,
                                            "x1": float(x.max()) + 1, "y0": float(y.min()) - 1,
                                            "y1": float(y.max()) + 1})
    assert rows.tolist() == list(range(N))
    assert list(page.list.table.value["item_id"]) == [f"w2v/clip{i}" for i in range(N)]
    assert page.list.play("w2v/clip4") and page.list.audio.visible
    assert page.list.open_in_inspect()
    clip = page.session.clip
    assert clip.name == "clip4" and clip.sample_rate == 16000 and clip.source == "corpus"
    want, _, _ = load_waves(items[4:5], shared.predictor.params)  # the file, prepared
    np.testing.assert_allclose(clip.wave, want[0], atol=1e-5)


def test_a_second_page_reuses_the_cached_store(shared, page):
    store, computed = EL.ensure_store(shared.predictor, shared.corpus_items(),
                                      model_dir=shared.model_dir)
    assert not computed and store.path == page.store.path


def test_frame_level_store_keeps_each_layers_frames_and_walks_them_on_one_grid(shared, items):
    store, computed = EL.ensure_store(shared.predictor, items, model_dir=shared.model_dir,
                                      level="frame")
    assert computed and store.layers == LAYERS[:-1]  # pooled has no time axis
    frames = {"conv1": 3199, "conv2": 799, "conv3": 399, "layer1": 399, "layer2": 399}
    assert {n: store.info(n)["rows"] for n in store.layers} == {n: N * f for n, f in
                                                                frames.items()}
    assert store.meta("conv2")["frame"].max() == 798
    # The walkthrough averages every layer onto the coarsest layer's frames (conv3: 399 per
    # clip): frame f of conv2's 799 goes to floor(f * 399 / 799), so its first coarse frame is
    # the mean of its frames 0, 1 and 2.
    from engine.projection.frames import layer_on_grid

    steps, lines = EL.layout_steps(store, method="pca"), []
    try:
        while True:
            lines.append(next(steps))
    except StopIteration as done:
        lay = done.value
    assert "averaged onto conv3's" in lines[0]
    assert lay.layers == store.layers and lay.xy.shape == (len(store.layers), N * 399, 2)
    assert lay.meta["frame"].tolist() == list(range(399)) * N
    pooled = layer_on_grid(store, "conv2", "conv3")
    raw = store.layer_matrix("conv2")
    np.testing.assert_allclose(pooled[0], raw[:3].mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(layer_on_grid(store, "layer1", "conv3"),
                                  store.layer_matrix("layer1"))
