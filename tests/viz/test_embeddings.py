"""Layer morph pipeline: interpolation, counts vs histogram2d and datashader, exact shading."""

import datashader as ds
import datashader.transfer_functions as tf
import numpy as np
import pandas as pd
import pytest

from viz.embeddings import (aggregate, aggregate_datashader, aggregate_morph, layout_ranges,
                            make_morph_cloud, morph_frame, morph_points, point_frame)
from viz.embeddings_shade import datashaded, default_color_key, points_element, shade

CATS = ["a", "b", "c"]


def _cloud(n=500, layers=3, seed=0):
    rng = np.random.default_rng(seed)
    lx = rng.standard_normal((layers, n)).astype(np.float32)
    ly = rng.standard_normal((layers, n)).astype(np.float32) * 2
    codes = rng.integers(0, len(CATS), n)
    return make_morph_cloud(lx, ly, codes=codes, categories=CATS)


def test_morph_points_integer_positions_and_midpoint():
    cloud = _cloud()
    lx, ly = cloud.layouts_x, cloud.layouts_y
    for i in range(cloud.n_layers):
        x, y = morph_points(lx, ly, float(i))
        assert x.dtype == np.float32 and np.array_equal(x, lx[i]) and np.array_equal(y, ly[i])
    x, y = morph_points(lx, ly, 0.5)
    np.testing.assert_allclose(x, (lx[0] + lx[1]) / 2, rtol=0, atol=1e-6)
    np.testing.assert_allclose(y, (ly[0] + ly[1]) / 2, rtol=0, atol=1e-6)
    bufs = (np.empty(lx.shape[1], np.float32), np.empty(lx.shape[1], np.float32))
    assert morph_points(lx, ly, 1.25, out=bufs)[0] is bufs[0]
    with pytest.raises(ValueError, match="position"):
        morph_points(lx, ly, 2.5)


def test_aggregate_matches_histogram2d():
    rng = np.random.default_rng(1)
    w, h = 40, 30
    # points strictly inside pixels (no float ties at bin edges), plus some out of range
    px, py = rng.integers(0, w, 2000), rng.integers(0, h, 2000)
    x = ((px + rng.uniform(0.1, 0.9, 2000)) / w * 4 - 2).astype(np.float32)
    y = ((py + rng.uniform(0.1, 0.9, 2000)) / h * 6 - 3).astype(np.float32)
    x[:50] = 7.0
    agg = aggregate(x, y, width=w, height=h, x_range=(-2, 2), y_range=(-3, 3))
    ref, _, _ = np.histogram2d(y, x, bins=[h, w], range=[[-3, 3], [-2, 2]])
    assert agg.dims == ("y", "x") and agg.shape == (h, w)
    assert int(agg.sum()) == 1950
    assert np.array_equal(agg.values, ref.astype(np.uint32))
    codes = rng.integers(0, 3, 2000)
    cat = aggregate(x, y, codes, categories=CATS, width=w, height=h, x_range=(-2, 2),
                    y_range=(-3, 3))
    for k in range(3):
        ref_k, _, _ = np.histogram2d(y[codes == k], x[codes == k], bins=[h, w],
                                     range=[[-3, 3], [-2, 2]])
        assert np.array_equal(cat.values[..., k], ref_k)


def test_aggregate_equals_datashader_count_cat_including_edges():
    cloud = _cloud(n=3000, seed=2)
    x, y = morph_points(cloud.layouts_x, cloud.layouts_y, 1.4)
    x[:3] = cloud.x_range[1]  # the closed right edge goes to the last pixel
    y[3:6] = cloud.y_range[0]
    kw = dict(width=64, height=48, x_range=cloud.x_range, y_range=cloud.y_range)
    ours = aggregate(x, y, cloud.codes, categories=CATS, **kw)
    ref = aggregate_datashader(point_frame(cloud.codes, CATS), x, y, **kw)
    assert ours.dims == ref.dims and np.array_equal(ours.values, ref.values)
    np.testing.assert_allclose(ours.x.values, ref.x.values)
    np.testing.assert_allclose(ours.y.values, ref.y.values)
    fused = aggregate_morph(cloud, 1.4, width=64, height=48)
    x2, y2 = morph_points(cloud.layouts_x, cloud.layouts_y, 1.4)
    assert np.array_equal(fused.values, aggregate(x2, y2, cloud.codes, categories=CATS,
                                                   **kw).values)


@pytest.mark.parametrize("how", ["eq_hist", "log"])
def test_shade_equals_tf_shade(how):
    cloud = _cloud(n=4000, seed=3)
    x, y = morph_points(cloud.layouts_x, cloud.layouts_y, 0.7)
    kw = dict(width=50, height=40, x_range=cloud.x_range, y_range=cloud.y_range)
    agg = aggregate(x, y, cloud.codes, categories=CATS, **kw)
    key = default_color_key(CATS)
    assert np.array_equal(shade(agg, color_key=key, how=how, spread=0).values,
                          tf.shade(agg, color_key=key, how=how).values)
    plain = aggregate(x, y, **kw)
    assert np.array_equal(shade(plain, how=how, spread=0).values, tf.shade(plain, how=how).values)
    spread = shade(agg, color_key=key, how=how, spread=1)
    assert np.array_equal(spread.values, tf.dynspread(tf.shade(agg, color_key=key, how=how),
                                                      threshold=0.5, max_px=1).values)


def test_morph_frame_fused_and_staged_agree_and_match_plain_datashader():
    cloud = _cloud(n=2000, seed=4)
    key = default_color_key(CATS)
    buffers = {}
    a = morph_frame(cloud, 1.5, width=60, height=60, color_key=key, buffers=buffers)
    b = morph_frame(cloud, 1.5, width=60, height=60, color_key=key, fused=True)
    morph_frame(cloud, 0.2, width=60, height=60, color_key=key, buffers=buffers)
    again = morph_frame(cloud, 1.5, width=60, height=60, color_key=key, buffers=buffers)
    assert a.values.dtype == np.uint32 and a.shape == (60, 60)
    assert np.array_equal(a.values, b.values) and np.array_equal(a.values, again.values)
    x, y = morph_points(cloud.layouts_x, cloud.layouts_y, 1.5)
    df = pd.DataFrame({"x": x, "y": y, "c": pd.Categorical.from_codes(cloud.codes, CATS)})
    canvas = ds.Canvas(plot_width=60, plot_height=60, x_range=cloud.x_range,
                       y_range=cloud.y_range)
    ref = tf.dynspread(tf.shade(canvas.points(df, "x", "y", agg=ds.count_cat("c")),
                                color_key=key), threshold=0.5, max_px=1)
    assert np.array_equal(a.values, ref.values)


def test_ranges_cover_every_layer_and_validation():
    lx = np.array([[0.0, 1.0], [2.0, -2.0]], np.float32)
    ly = np.array([[5.0, 5.0], [5.0, 5.0]], np.float32)
    (x0, x1), (y0, y1) = layout_ranges(lx, ly, pad=0.0)
    assert (x0, x1) == (-2.0, 2.0) and y0 < 5.0 < y1
    with pytest.raises(ValueError, match="layouts"):
        make_morph_cloud(lx, ly[:1])
    with pytest.raises(ValueError, match="codes"):
        make_morph_cloud(lx, ly, codes=[0, 5], categories=CATS)
    with pytest.raises(ValueError, match="ranges"):
        aggregate(lx[0], ly[0], x_range=(1, 1), y_range=(0, 1))


def test_holoviews_path_datashades_points():
    df = pd.DataFrame({"x": [0.0, 1.0, 1.0], "y": [0.0, 1.0, 0.5],
                       "label": pd.Categorical(["a", "b", "b"])})
    points = points_element(df, "x", "y", by="label")
    assert points.kdims[0].name == "x" and "label" in [d.name for d in points.vdims]
    rgb = datashaded(points, by="label", dynamic=False, spread=0, width=20, height=10,
                     x_range=(0, 1), y_range=(0, 1))
    alpha = np.asarray(rgb.data)[..., 3]  # an hv.RGB element: (y, x, RGBA)
    assert alpha.shape == (10, 20) and int((alpha > 0).sum()) == 3
    assert alpha[0, 0] > 0 and alpha[-1, -1] > 0 and alpha[5, -1] > 0
    with pytest.raises(ValueError, match="colour by"):
        points_element(df, "x", "y", by="speaker")
