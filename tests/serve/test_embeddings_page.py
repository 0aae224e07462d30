"""The Embeddings page without a browser, on a fake linear predictor and twelve tiny wavs.

Known answers: the PCA layouts of the page equal scikit-learn's PCA chained through
``align_layers`` (up to the sign convention of layer 0, which carries through the chain);
a box / lasso over points at known coordinates selects exactly the points inside; the
colour categories are the sorted speakers, or correct/wrong; a second page reuses the store
on disk, so the predictor is never run again.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from bokeh.events import SelectionGeometry
from sklearn.decomposition import PCA

from data.corpora import Item
from data.features import FeatureParams
from engine.projection import align_layers
from serve.config import Limits
from serve.pages import cloud_geometry as CG
from serve.pages import embeddings_layouts as EL
from serve.pages.embeddings import EmbeddingsPage
from serve.session import Session

PARAMS = FeatureParams(sample_rate=1000, duration_s=0.1, n_fft=32, hop_length=8, n_freq=16,
                       n_frames=13)  # 100 samples, (16, 13) features
LABELS = ["yes", "no", "up"]
SPEAKERS = ["ann", "bob", ""]
N = 12


class FakePredictor:
    """Three deterministic layers: ``dense1`` (6), ``dense2`` (5) and per-frame ``frames``
    (13 frames × 3, pooled to 3 at utterance level); ``run`` calls are counted."""

    labels, arch, model, params = LABELS, "fake", None, PARAMS

    def __init__(self):
        rng = np.random.default_rng(0)
        self.v1 = jnp.asarray(rng.normal(0, 0.2, (16 * 13, 6)), jnp.float32)
        self.v2 = jnp.asarray(rng.normal(0, 1, (6, 5)), jnp.float32)
        self.v3 = jnp.asarray(rng.normal(0, 1, (16, 3)), jnp.float32)
        self.v4 = jnp.asarray(rng.normal(0, 1, (5, 3)), jnp.float32)
        self.calls = 0

    def features(self, waves):
        from data.features import features_batch
        return features_batch(np.atleast_2d(waves), self.params)

    def run(self, x):
        self.calls += 1
        x = jnp.asarray(x)
        d1 = x.reshape(x.shape[0], -1) @ self.v1
        d2 = jnp.tanh(d1 @ self.v2)
        frames = jnp.einsum("bft,fk->btk", x, self.v3)
        acts = {"dense1": d1, "dense2": d2, "frames": frames}
        return np.asarray(jax.nn.softmax(d2 @ self.v4)), {k: np.asarray(v) for k, v in acts.items()}


class FakeShared:
    def __init__(self, items, projection_path=None):
        self.predictor = FakePredictor()
        self.limits = Limits(jobs_per_session=1, job_seconds=120.0)
        self.model_dir = "/models/fake"
        self._items = items
        if projection_path is not None:
            self.projection_path = projection_path

    def corpus_items(self):
        return self._items


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    rng = np.random.default_rng(1)
    t = np.arange(100) / 1000.0
    out = []
    for i in range(N):
        wave = (0.3 + 0.05 * i) * np.sin(2 * np.pi * (40 + 25 * i) * t) + rng.normal(0, 0.05, 100)
        path = folder / f"clip{i}.wav"
        sf.write(path, wave.astype(np.float32), 1000)
        out.append(Item(f"toy/clip{i}", str(path), LABELS[i % 3], SPEAKERS[i % 3], "test"))
    return out


@pytest.fixture(scope="module")
def shared(items):
    return FakeShared(items)


@pytest.fixture(scope="module")
def page(shared):
    page = EmbeddingsPage(Session(shared))
    page.method.value = "pca"
    job = page.compute()
    assert job is not None and page.wait(120), page.session.alert.object
    assert job.status == "done", job.error
    return page


def _reference_pca_chain(store):
    layouts = [PCA(n_components=2).fit_transform(store.layer_matrix(n).astype(np.float64))
               for n in store.layers]
    return np.stack([np.asarray(f.aligned) for f in align_layers(layouts)])


def test_compute_builds_a_store_and_layouts_for_every_layer(page, shared):
    store = page.store
    assert store.layers == ("dense1", "dense2", "frames")
    assert [store.info(n)["dim"] for n in store.layers] == [6, 5, 3]
    assert store.path.parent.name == "stores" and (store.path / "store.json").exists()
    assert shared.predictor.calls == 1  # 12 clips, one batch of 32
    lay = page.layouts["pca"]
    assert lay.layers == store.layers and lay.xy.shape == (3, N, 2)
    assert list(lay.meta["item_id"]) == [f"toy/clip{i}" for i in range(N)]
    assert set(lay.quality) == set(store.layers)
    assert all(0 <= q["trustworthiness"] <= 1 for q in lay.quality.values())
    assert list(page.metrics.object.columns[1:]) == list(store.layers)
    # metrics as rows, named in full (six metric columns did not fit the page's 480 px column)
    assert "trustworthiness" in list(page.metrics.object["metric"])
    assert page.slider.end == 2.0 and page.player.end == 40 and not page.slider.disabled
    assert page.slider.format.args["names"] == list(store.layers)


def test_slider_at_integer_k_shows_layer_k_aligned_layout(page):
    ref = _reference_pca_chain(page.store)
    lay = page.layouts["pca"]
    signs = np.sign(np.sum(lay.xy[0] * ref[0], axis=0))  # sklearn's sign convention of layer 0
    cloud, _ = page.cloud_view.cloud()
    for k in range(3):
        page.slider.value = float(k)
        x, y = page.cloud_view.points_at()
        np.testing.assert_allclose(np.stack([x, y], 1), ref[k] * signs, atol=2e-3)
        np.testing.assert_array_equal(cloud.layouts_x[k], x)
        assert "**" + lay.layers[k] + "**" in page.cloud_view.caption.object
    page.slider.value = 0.5
    x, _ = page.cloud_view.points_at()
    np.testing.assert_allclose(x, (lay.xy[0, :, 0] + lay.xy[1, :, 0]) / 2, atol=1e-6)
    assert "Between **dense1**" in page.cloud_view.caption.object and "50%" in page.cloud_view.caption.object


def test_player_drives_the_slider_and_the_image_changes(page):
    page.slider.value = 0.0
    first = page.cloud_view.render().copy()
    assert first.shape == (800, 800) and np.count_nonzero(first >> 24) > 0  # some opaque pixels
    page.player.value = 30  # 30 steps of 0.05 = layer position 1.5
    assert page.slider.value == pytest.approx(1.5)
    assert not np.array_equal(page.cloud_view.image_source.data["image"][0], first)


def test_colour_switch_changes_the_categories(page):
    page.colour.value = "speaker"
    cloud, key = page.cloud_view.cloud()
    assert cloud.categories == ("ann", "bob", "unknown") and list(key) == list(cloud.categories)
    assert np.array_equal(cloud.codes, np.arange(N) % 3)
    assert "unknown" in page.cloud_view.legend.object
    page.colour.value = "correctness"
    cloud, key = page.cloud_view.cloud()
    meta = page.layouts["pca"].meta
    assert cloud.categories == ("correct", "wrong")
    np.testing.assert_array_equal(cloud.codes, np.where(meta["correct"], 0, 1))
    page.colour.value = "label"
    assert page.cloud_view.cloud()[0].categories[:3] == tuple(LABELS)  # the model's label order


def test_box_and_lasso_select_exactly_the_points_inside(items, shared):
    page = EmbeddingsPage(Session(shared), items=items)
    xy = np.stack([np.stack([np.arange(N, dtype=np.float32), np.zeros(N, np.float32)], 1),
                   np.stack([np.arange(N, dtype=np.float32), np.full(N, 10, np.float32)], 1)])
    meta = pd.DataFrame({"item_id": [it.id for it in items], "label": [it.label for it in items],
                         "speaker": [it.speaker for it in items], "prediction": "yes",
                         "correct": [it.label == "yes" for it in items]})
    page.layouts["pca"] = EL.Layouts(("a", "b"), xy, (False, True), meta)
    page.method.value = "pca"
    page.show()
    assert "mirrored" not in page.cloud_view.caption.object
    page.slider.value = 0.5  # every point at y = 5, x = its index
    idx = page.cloud_view.select_geometry({"type": "rect", "x0": 2.5, "x1": 5.0, "y0": 4.0, "y1": 6.0})
    assert idx.tolist() == [3, 4, 5]
    assert list(page.list.table.value["item_id"]) == ["toy/clip3", "toy/clip4", "toy/clip5"]
    assert page.cloud_view.sel_source.data["y"] == [5.0, 5.0, 5.0]
    assert page.cloud_view.select_geometry({"type": "rect", "x0": 2.5, "x1": 5.0, "y0": 6.0,
                                 "y1": 9.0}).size == 0
    page.cloud_view._on_geometry(SelectionGeometry(page.cloud_view.figure, final=True, geometry={
        "type": "poly", "x": [0.5, 8.5, 0.5], "y": [4.0, 4.0, 8.0]}))  # x < 0.5 + 8(1 - (5-4)/4)
    assert page.cloud_view.selected.tolist() == [1, 2, 3, 4, 5, 6]
    page.slider.value = 1.0
    assert "mirrored to align" in page.cloud_view.caption.object


def test_row_click_plays_and_open_in_inspect_loads_the_file(items, shared):
    page = EmbeddingsPage(Session(shared), items=items)
    xy = np.zeros((1, N, 2), np.float32)
    xy[0, :, 0] = np.arange(N)
    meta = pd.DataFrame({"item_id": [it.id for it in items], "label": "yes", "speaker": "",
                         "prediction": "yes", "correct": True})
    page.layouts["pca"] = EL.Layouts(("only",), xy, (False,), meta)
    page.method.value = "pca"
    page.show()
    assert page.slider.disabled and page.player.disabled  # one layer: nothing to morph
    page.cloud_view.set_selection([7, 2])
    calls = []
    original = page.session.load_bytes
    page.session.load_bytes = lambda data, name, **kw: calls.append((data, name, kw)) or \
        original(data, name, **kw)
    page.list.table.selection = [0]
    expected = Path(items[7].path).read_bytes()
    assert page.list.audio.object == expected and page.list.audio.visible and not page.list.open_button.disabled
    shown = []
    page.session.tab_switcher = shown.append
    assert page.list.open_in_inspect()
    assert calls == [(expected, "toy/clip7", {"source": "corpus"})]
    assert shown == ["Inspect"] and page.session.active_tab == "Inspect"
    assert page.session.clip.name == "clip7" and page.session.clip.source == "corpus"


def test_a_second_page_reuses_the_store(page, shared, items):
    calls = shared.predictor.calls
    other = EmbeddingsPage(Session(shared))
    assert other.method.value == "pivotmds"
    other.compute()
    assert other.wait(120) and other.job.status == "done", other.job.error
    assert shared.predictor.calls == calls  # read from disk, not forwarded again
    assert other.store.path == page.store.path
    assert other.layouts["pivotmds"].xy.shape == (3, N, 2)
    other.method.value = "pca"  # the store is there: switching computes the new method
    assert other.wait(120) and "pca" in other.layouts and shared.predictor.calls == calls


def test_a_precomputed_projection_file_is_served_without_forwarding(page, tmp_path, items):
    from cli.main import main

    out = tmp_path / "proj.parquet"
    assert main(["project", "--activations", str(page.store.path), "--method", "pca",
                 "--out", str(out), "--quality-n", "0", "--json"]) == 0
    shared = FakeShared(items, projection_path=str(out))
    other = EmbeddingsPage(Session(shared))
    assert other.method.value == EL.FILE_METHOD
    assert other.job is not None  # started by the page itself: no Compute click needed
    assert other.wait(60) and other.job.status == "done", other.job.error
    assert shared.predictor.calls == 0
    lay = other.layouts[EL.FILE_METHOD]
    assert lay.layers == page.store.layers
    np.testing.assert_allclose(lay.xy, page.layouts["pca"].xy, atol=1e-5)
    assert lay.quality == {} and list(other.metrics.object.columns[1:]) == list(lay.layers)


def test_store_writing_aborts_cleanly_and_store_key_tracks_items(items, tmp_path):
    pred = FakePredictor()

    def stop(done, total):
        raise RuntimeError("stopped")
    with pytest.raises(RuntimeError):
        EL.ensure_store(pred, items[:4], model_dir="/m", progress=stop)
    assert not EL.store_path("/m", items[:4], "utterance").exists()
    assert EL.store_key("/m", items[:4], "utterance") != EL.store_key("/m", items[:5], "utterance")
    assert EL.store_key("/m", items, "utterance") != EL.store_key("/n", items, "utterance")
    with pytest.raises(ValueError, match="no corpus items"):
        EL.ensure_store(pred, [], model_dir="/m")


def test_polygon_and_box_helpers_on_a_grid():
    gx, gy = np.meshgrid(np.arange(5.0), np.arange(5.0))
    x, y = gx.ravel(), gy.ravel()
    assert CG.points_in_box(x, y, 3.0, 1.0, 0.5, 1.5).tolist() == [6, 7, 8]  # row y=1, x 1..3
    square = CG.points_in_polygon(x, y, [0.5, 2.5, 2.5, 0.5], [0.5, 0.5, 2.5, 2.5])
    assert square.tolist() == [6, 7, 11, 12]
    assert CG.geometry_indices(x, y, {"type": "point", "x": 1, "y": 1}).size == 0


def test_few_points_stay_vivid_when_some_overlap():
    """300 points: 150 stacked on one spot, 150 alone. eq_hist gave each lone point the
    faintest level (alpha 40); the page's shading keeps every drawn pixel at alpha >= 160."""
    from functools import partial

    from serve.pages.embeddings_cloud import _shading
    from viz.embeddings import make_morph_cloud, morph_frame
    from viz.embeddings_shade import shade

    rng = np.random.default_rng(0)
    xy = np.concatenate([np.zeros((150, 2)), rng.uniform(-1, 1, (150, 2))]).astype(np.float32)
    cloud = make_morph_cloud(xy[None, :, 0], xy[None, :, 1], codes=np.zeros(300, np.int32),
                             categories=("a",))

    def alphas(**kw):
        img = np.asarray(morph_frame(cloud, 0.0, width=400, height=400, **kw).data)
        a = img >> 24
        return a[a > 0]

    assert np.median(alphas(spread=2, shade_fn=partial(shade, min_alpha=40))) == 40
    assert alphas(**_shading(300)).min() >= 160
    assert _shading(1_000_000) == {"spread": 1}
