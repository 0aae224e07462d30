"""The layer morph's camera (per-layer ranges interpolated) and the selection highlight."""

import numpy as np
import pytest

from viz.embeddings import layer_ranges, make_morph_cloud, morph_points, ranges_at
from viz.embeddings import selection_overlay


def test_layer_ranges_are_each_layers_own_padded_extent():
    lx = np.array([[0.0, 1.0, 0.5], [-4.0, 4.0, 0.0]], np.float32)
    ly = np.array([[2.0, 3.0, 2.5], [7.0, 7.0, 7.0]], np.float32)
    rx, ry = layer_ranges(lx, ly, pad=0.1)
    np.testing.assert_allclose(rx, [[-0.1, 1.1], [-4.8, 4.8]])
    np.testing.assert_allclose(ry[0], [1.9, 3.1])
    assert ry[1, 0] < 7.0 < ry[1, 1]  # a flat layer gets a window around it


def test_ranges_at_interpolates_and_keeps_every_morphed_point_inside():
    rng = np.random.default_rng(0)
    lx = np.stack([rng.uniform(-1, 1, 400), rng.uniform(-5, 3, 400), rng.uniform(0, 9, 400)])
    ly = np.stack([rng.uniform(-1, 1, 400), rng.uniform(2, 3, 400), rng.uniform(-9, 0, 400)])
    cloud = make_morph_cloud(lx, ly, pad=0.0)
    for k in range(3):  # at a layer, exactly that layer's extent
        (x0, x1), (y0, y1) = ranges_at(cloud, float(k))
        assert (x0, x1) == pytest.approx((lx[k].min(), lx[k].max()), abs=1e-6)
        assert (y0, y1) == pytest.approx((ly[k].min(), ly[k].max()), abs=1e-6)
    (x0, x1), _ = ranges_at(cloud, 0.25)
    assert x0 == pytest.approx(0.75 * lx[0].min() + 0.25 * lx[1].min(), abs=1e-6)
    for pos in np.linspace(0, 2, 17):
        (x0, x1), (y0, y1) = ranges_at(cloud, pos)
        x, y = morph_points(cloud.layouts_x, cloud.layouts_y, pos)
        assert x0 - 1e-5 <= x.min() and x.max() <= x1 + 1e-5
        assert y0 - 1e-5 <= y.min() and y.max() <= y1 + 1e-5
    with pytest.raises(ValueError, match="position"):
        ranges_at(cloud, 2.5)


def test_selection_overlay_marks_exactly_the_selected_pixels_at_one_alpha():
    x = np.array([0.05, 0.55, 0.55, 0.95], np.float32)  # pixels (0, 0), (5, 5) twice, (9, 9)
    img = selection_overlay(x, x, width=10, height=10, x_range=(0, 1), y_range=(0, 1),
                            spread=0, alpha=90)
    alpha = np.asarray(img.data) >> 24
    assert sorted(zip(*np.nonzero(alpha))) == [(0, 0), (5, 5), (9, 9)]
    assert set(alpha[alpha > 0].tolist()) == {90}  # two points on a pixel: same alpha
    grown = np.asarray(selection_overlay(x, x, width=10, height=10, x_range=(0, 1),
                                         y_range=(0, 1), spread=1, alpha=90).data) >> 24
    assert grown[4:7, 4:7].min() == 90 and grown.max() == 90 and grown[2, 7] == 0
