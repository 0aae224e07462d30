"""The Embeddings page's one-machine fixes at scale (issue #22), without a browser.

Known answers on hand-built layouts: the Reset tool's ranges are the shown layer's extent (not
[0, 1]²); a layer half the size of the next still fills the frame; a 2,000-point selection is
one translucent highlight (no rings), three points are three rings; frame-level rows list their
frame and its time (frame × clip length / frames per clip); the player follows the slider; two
sessions serving one projection file share one read-only copy, read again after a rewrite;
colour codes of 1M categorical rows stay numeric (no per-point strings).
"""

from __future__ import annotations

import time
import tracemalloc
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from bokeh.events import RangesUpdate, Reset

from data.features import FeatureParams
from serve.config import Limits
from serve.pages import embeddings as E
from serve.pages import embeddings_layouts as EL
from serve.pages.embeddings_cloud import SIZE, colour_codes
from serve.session import Session

LABELS = ["yes", "no", "up"]
PARAMS = FeatureParams(sample_rate=1000, duration_s=0.1, n_fft=32, hop_length=8, n_freq=16,
                       n_frames=13)


class FakeShared:
    def __init__(self, projection_path=None):
        self.predictor = SimpleNamespace(labels=LABELS, params=PARAMS, arch="fake", model=None)
        self.limits = Limits(jobs_per_session=1, job_seconds=60.0)
        self.model_dir = "/models/fake"
        if projection_path is not None:
            self.projection_path = str(projection_path)

    def corpus_items(self):
        return []


def _meta(n, *, frames=None):
    rng = np.random.default_rng(0)
    meta = pd.DataFrame({
        "item_id": [f"clip{i // (frames or 1)}" for i in range(n)],
        "label": pd.Categorical.from_codes(rng.integers(0, 3, n), LABELS),
        "speaker": pd.Categorical.from_codes(rng.integers(0, 2, n), ["", "bob"]),
        "prediction": pd.Categorical.from_codes(rng.integers(0, 3, n), LABELS),
        "correct": rng.random(n) < 0.5})
    if frames:
        meta.insert(1, "frame", np.tile(np.arange(frames, dtype=np.int32), n // frames))
    return meta


def _page(xy, meta, layers=None):
    page = E.EmbeddingsPage(Session(FakeShared()), items=[])
    layers = layers or tuple(f"l{i}" for i in range(xy.shape[0]))
    page.layouts["pca"] = EL.Layouts(tuple(layers), np.asarray(xy, np.float32),
                                     (False,) * len(layers), meta)
    page.method.value = "pca"
    page.show()
    return page


def _square(n, half, seed=0):
    """``n`` points uniform in [-half, half]² with the four corners included."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(-half, half, (n, 2))
    p[:4] = [[-half, -half], [half, half], [-half, half], [half, -half]]
    return p.astype(np.float32)


def _occupied_span(img):
    """Fraction of the image's width and height between its outermost drawn pixels."""
    cols = np.flatnonzero((img >> 24).any(axis=0))
    rows = np.flatnonzero((img >> 24).any(axis=1))
    return (cols[-1] - cols[0] + 1) / img.shape[1], (rows[-1] - rows[0] + 1) / img.shape[0]


def test_every_layer_fills_the_frame():
    """Layer 0 is layer 1 shrunk by half. With one range over both layers, layer 0 covered
    ~45% of each axis (a quarter of the frame); with the camera on each layer, ~90%."""
    big = _square(3000, 2.0)
    page = _page(np.stack([big / 2, big]), _meta(3000))
    fig = page.cloud_view.figure
    for pos, half in ((0.0, 1.0), (1.0, 2.0), (0.5, 1.5)):
        page.slider.value = pos
        img = page.cloud_view.render()
        wx, wy = _occupied_span(img)
        assert wx > 0.85 and wy > 0.85, (pos, wx, wy)
        # the view is the layer's own extent, padded 5% a side, in the browser too
        assert (fig.x_range.start, fig.x_range.end) == pytest.approx((-1.1 * half, 1.1 * half))
        assert (fig.y_range.start, fig.y_range.end) == pytest.approx((-1.1 * half, 1.1 * half))
        x, y = page.cloud_view.points_at()
        assert fig.x_range.start <= x.min() and x.max() <= fig.x_range.end


def test_reset_returns_to_the_whole_cloud():
    big = _square(2000, 3.0)
    page = _page(np.stack([big + 10.0]), _meta(2000))  # a cloud far from [0, 1]²
    view, fig = page.cloud_view, page.cloud_view.figure
    expected = pytest.approx((10.0 - 3.3, 10.0 + 3.3))
    assert (fig.x_range.reset_start, fig.x_range.reset_end) == expected
    assert (fig.y_range.reset_start, fig.y_range.reset_end) == expected
    whole = view.render().copy()
    view._on_ranges(RangesUpdate(fig, x0=9.0, x1=10.0, y0=9.0, y1=10.0))  # the user zooms in
    assert view.image_source.data["x"] == [9.0] and view.image_source.data["dw"] == [1.0]
    assert (fig.x_range.reset_start, fig.x_range.reset_end) == expected  # reset target kept
    view._on_reset(Reset(fig))
    assert view.image_source.data["x"][0] == pytest.approx(6.7)
    assert view.image_source.data["dw"][0] == pytest.approx(6.6)
    assert np.array_equal(view.image_source.data["image"][0], whole)
    # the browser reports the reset ranges after Reset: still following, not "zoomed"
    view._on_ranges(RangesUpdate(fig, x0=6.7, x1=13.3, y0=6.7, y1=13.3))
    assert view._view is None


def test_a_large_selection_is_one_translucent_highlight_and_a_few_points_are_rings():
    xy = _square(3000, 1.0, seed=1)
    page = _page(xy[None], _meta(3000))
    view = page.cloud_view
    view.set_selection(np.arange(2000))
    assert view.sel_source.data == {"x": [], "y": []}  # no 2,000 rings
    img = view.highlight_source.data["image"][0]
    assert img.shape == (SIZE, SIZE)
    alpha = img >> 24
    assert 0 < alpha.max() <= 110  # translucent: the cloud's colours show through
    fig = view.figure
    (x0, x1), (y0, y1) = (fig.x_range.start, fig.x_range.end), (fig.y_range.start, fig.y_range.end)
    x, y = view.points_at(np.arange(2000))
    px = np.minimum(((x - x0) / (x1 - x0) * SIZE).astype(int), SIZE - 1)
    py = np.minimum(((y - y0) / (y1 - y0) * SIZE).astype(int), SIZE - 1)
    assert (alpha[py, px] > 0).all()  # every selected point is marked ...
    x, y = view.points_at(np.arange(2000, 3000))
    qx = np.minimum(((x - x0) / (x1 - x0) * SIZE).astype(int), SIZE - 1)
    qy = np.minimum(((y - y0) / (y1 - y0) * SIZE).astype(int), SIZE - 1)
    assert (alpha[qy, qx] == 0).mean() > 0.5  # ... and most unselected ones are not
    view.set_selection([5, 6, 7])
    assert len(view.sel_source.data["x"]) == 3 and view.highlight_source.data["image"] == []


def test_frame_rows_list_their_frame_and_time():
    frames = 13
    meta = _meta(4 * frames, frames=frames)
    page = _page(_square(4 * frames, 1.0)[None], meta)
    page.cloud_view.set_selection([13, 14, 20])  # frames 0, 1, 7 of clip1
    table = page.list.table.value
    assert list(table.columns[:3]) == ["item_id", "frame", "time_s"]
    assert table["item_id"].tolist() == ["clip1"] * 3
    assert table["frame"].tolist() == [0, 1, 7]
    # 13 frames divide the 0.1 s input: frame k starts at k × 0.1 / 13 s
    assert table["time_s"].tolist() == pytest.approx([0.0, 0.008, 0.054], abs=1e-9)
    assert "3 selected" in page.list.note.object
    utter = _page(_square(12, 1.0)[None], _meta(12))  # utterance rows: no frame columns
    utter.cloud_view.set_selection([1, 2])
    assert "frame" not in utter.list.table.value and "time_s" not in utter.list.table.value


def test_the_player_follows_the_slider():
    xy = np.stack([_square(50, 1.0), _square(50, 2.0), _square(50, 1.0)])
    page = _page(xy, _meta(50))
    assert page.player.end == 40
    page.slider.value = 1.0
    assert page.player.value == 20
    page.slider.value = 1.55
    assert page.player.value == 31
    page.player.value = 10  # and the player still drives the slider
    assert page.slider.value == pytest.approx(0.5) and page.player.value == 10


def _write_projection(path, n, scale):
    rng = np.random.default_rng(3)
    df = _meta(n)
    for name, s in (("a", 1.0), ("b", 2.0)):
        df[f"x_{name}"] = (rng.standard_normal(n) * s * scale).astype(np.float32)
        df[f"y_{name}"] = (rng.standard_normal(n) * s * scale).astype(np.float32)
    df.to_parquet(path)


def _file_page(path):
    page = E.EmbeddingsPage(Session(FakeShared(projection_path=path)), items=[])
    assert page.method.value == EL.FILE_METHOD
    page.compute()
    assert page.wait(60) and page.job.status == "done", page.job.error
    return page


def test_two_sessions_share_one_copy_of_a_projection_file(tmp_path):
    path = tmp_path / "proj.parquet"
    _write_projection(path, 500, 1.0)
    first, second = _file_page(path), _file_page(path)
    a, b = first.layouts[EL.FILE_METHOD], second.layouts[EL.FILE_METHOD]
    assert a is b and not a.xy.flags.writeable  # one read-only copy for both sessions
    from serve.pages.embeddings_cloud import shared_clouds

    ca, cb = first.cloud_view.cloud()[0], second.cloud_view.cloud()[0]
    assert ca.layouts_x is cb.layouts_x and ca.codes is cb.codes
    assert not ca.layouts_x.flags.writeable
    assert shared_clouds(a) is shared_clouds(b)
    time.sleep(0.01)
    _write_projection(path, 400, 3.0)  # a new version of the file is read again
    third = _file_page(path)
    c = third.layouts[EL.FILE_METHOD]
    assert c is not a and c.n == 400
    assert E.shared_projection(path) is c


def test_colour_codes_of_a_million_categorical_rows_stay_numeric():
    """Known codes from ``from_codes``; peak traced memory below 1.5 × the int32 codes. Turning
    every value into a string (``astype(str)``) held 8-byte pointers per row several times."""
    n = 1_000_000
    rng = np.random.default_rng(0)
    lab, pred, spk = rng.integers(0, 3, n), rng.integers(0, 3, n), rng.integers(0, 3, n)
    meta = pd.DataFrame({
        "label": pd.Categorical.from_codes(lab, ["up", "no", "yes"]),
        "prediction": pd.Categorical.from_codes(pred, ["up", "no", "yes"]),
        "speaker": pd.Categorical.from_codes(spk, ["zed", "", "amy"]),
        "correct": lab == pred})
    expect_label = np.array([2, 1, 0, -1])[lab]  # up→2, no→1, yes→0 (LABELS order)
    expect_speaker = np.array([2, 1, 0])[spk]  # sorted: amy, unknown, zed
    for by, cats, expect in (("label", ("yes", "no", "up"), expect_label),
                             ("speaker", ("amy", "unknown", "zed"), expect_speaker),
                             ("correctness", ("correct", "wrong"), (lab != pred).astype(int))):
        tracemalloc.start()
        codes, got = colour_codes(meta, by, labels=LABELS)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert got == cats and codes.dtype == np.int32
        np.testing.assert_array_equal(codes, expect)
        assert peak < 1.5 * 4 * n, (by, peak)
    # plain string columns (a file written without categoricals) give the same codes
    plain = meta.head(1000).astype({"label": object, "prediction": object, "speaker": object})
    np.testing.assert_array_equal(colour_codes(plain, "label", labels=LABELS)[0],
                                  expect_label[:1000])
    # a missing label stays uncoloured (code -1), both categorical and plain
    lab[:2] = -1
    meta["label"] = pd.Categorical.from_codes(lab, ["up", "no", "yes"])
    assert colour_codes(meta, "label", labels=LABELS)[0][:3].tolist() == [-1, -1,
                                                                           expect_label[2]]
    plain = meta.head(10).astype({"label": object})
    assert colour_codes(plain, "label", labels=LABELS)[0][:2].tolist() == [-1, -1]


def test_the_ranges_the_page_set_itself_draw_nothing_again():
    # A layer change moves the camera; the browser then reports those very ranges. The frame
    # for them is drawn: no second render. A real zoom still draws.
    big = _square(2000, 2.0)
    page = _page(np.stack([big / 2, big]), _meta(2000))
    view, fig = page.cloud_view, page.cloud_view.figure
    page.slider.value = 1.0
    view.render()
    drawn = []
    real = view.render
    view.render = lambda: drawn.append(1) or real()
    (x0, x1), (y0, y1) = view._auto
    view._on_ranges(RangesUpdate(fig, x0=x0, x1=x1, y0=y0, y1=y1))
    assert drawn == [] and view._view is None
    view._on_ranges(RangesUpdate(fig, x0=0.0, x1=1.0, y0=0.0, y1=1.0))  # the user zooms in
    assert drawn == [1] and view._view == ((0.0, 1.0), (0.0, 1.0))
