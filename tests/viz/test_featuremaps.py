"""Known-answer tests of the feature-map mosaic, layer distances and compare builders."""

from __future__ import annotations

import numpy as np
import pytest
from bokeh.embed import file_html
from bokeh.models import GlyphRenderer, Image, Quad, TapTool
from bokeh.resources import CDN

from viz.compare import activation_distance_chart, difference_map_plot
from viz.featuremaps import MosaicLayout, feature_map_mosaic, layer_distances, mosaic


def _render(obj, tmp_path, name):
    path = tmp_path / f"{name}.html"
    path.write_text(file_html(obj, resources=CDN, title=name))
    assert path.stat().st_size > 1000


def _image(fig):
    (r,) = [r for r in fig.renderers if isinstance(r, GlyphRenderer) and isinstance(r.glyph, Image)]
    return r


def _index_channels(freq=4, time=5, channels=7):
    # Channel k holds k everywhere except one pixel k + 1: after per-channel min-max
    # normalisation every tile is 0 except that pixel, which is 1.
    acts = np.broadcast_to(np.arange(channels, dtype=float), (freq, time, channels)).copy()
    acts[1, 2, :] += 1.0
    return acts


def test_mosaic_geometry_and_values():
    acts = _index_channels()
    image, layout = mosaic(acts, columns=3, pad=1)
    assert layout == MosaicLayout(rows=3, columns=3, tile_h=4, tile_w=5, pad=1, channels=7)
    assert image.shape == (3 * 5 + 1, 3 * 6 + 1) == (layout.height, layout.width)
    for ch in range(7):
        x0, y0 = layout.tile_origin(ch)
        tile = image[y0:y0 + 4, x0:x0 + 5]
        expected = np.zeros((4, 5))
        expected[1, 2] = 1.0
        np.testing.assert_array_equal(tile, expected)
    # Everything that is not a used tile is padding (NaN): 7 tiles of 20 pixels are finite.
    assert np.isfinite(image).sum() == 7 * 20
    # Channel 0 is top-left: its tile touches the top padding row.
    assert layout.tile_origin(0) == (1, layout.height - 1 - 4)


def test_mosaic_constant_channel_maps_to_zero():
    plain = np.broadcast_to(np.arange(5.0), (3, 4, 5))  # channel k filled with k
    image, _ = mosaic(plain, columns=5, pad=1)
    assert np.nansum(image) == 0.0 and np.isfinite(image).sum() == 5 * 12
    acts = np.stack([np.full((3, 3), 5.0), np.arange(9.0).reshape(3, 3)], axis=-1)
    image, layout = mosaic(acts, columns=2, pad=0)
    np.testing.assert_array_equal(image[:, :3], 0.0)
    np.testing.assert_allclose(image[:, 3:], np.arange(9.0).reshape(3, 3) / 8.0)
    assert layout.rows == 1


def test_channel_at_centres_padding_and_outside():
    _, layout = mosaic(_index_channels(), columns=3, pad=1)
    for ch in range(7):
        x0, y0 = layout.tile_origin(ch)
        assert layout.channel_at(x0 + 2.5, y0 + 2.0) == ch
        assert layout.channel_at(x0 + 0.01, y0 + 3.99) == ch  # tile corners
    assert layout.channel_at(0.5, 0.5) is None  # outer padding
    x0, y0 = layout.tile_origin(0)
    assert layout.channel_at(x0 + 5.5, y0 + 2) is None  # separator between tiles 0 and 1
    assert layout.channel_at(x0 + 2, y0 - 0.5) is None  # separator between rows
    x7 = 1 + 1 * 6  # the unused 8th slot (row 2, column 1)
    assert layout.channel_at(x7 + 2.5, 1 + 2.0) is None
    assert layout.channel_at(-1.0, 3.0) is None
    assert layout.channel_at(layout.width + 0.5, 3.0) is None


def test_mosaic_default_columns_and_errors():
    _, layout = mosaic(np.zeros((2, 2, 32)))
    assert (layout.rows, layout.columns) == (6, 6)
    with pytest.raises(ValueError, match=r"\(4, 5\)"):
        mosaic(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="columns"):
        mosaic(np.zeros((2, 2, 3)), columns=0)


def test_feature_map_mosaic_is_one_image_with_tap(tmp_path):
    fig, layout = feature_map_mosaic(_index_channels(channels=32), title="conv3")
    assert fig.output_backend == "webgl"
    img = _image(fig)
    assert (img.glyph.dw, img.glyph.dh) == (layout.width, layout.height)
    np.testing.assert_array_equal(np.isnan(img.data_source.data["image"][0]),
                                  np.isnan(mosaic(_index_channels(channels=32))[0]))
    assert fig.select_one(TapTool) is not None
    (tiles,) = [r for r in fig.renderers if isinstance(r.glyph, Quad)]
    assert list(tiles.data_source.data["channel"]) == list(range(32))
    _render(fig, tmp_path, "mosaic")


def test_layer_distances_known_answers():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5, 3))
    e1, e2 = np.zeros(6), np.zeros(6)
    e1[0], e2[1] = 3.0, 4.0
    d = layer_distances({"same": x, "neg": x, "orth": e1}, {"same": x, "neg": -x, "orth": e2})
    assert d["same"]["cosine"] == pytest.approx(0.0, abs=1e-12)
    assert d["same"]["l2"] == 0.0 and d["same"]["rel_l2"] == 0.0
    assert d["neg"]["cosine"] == pytest.approx(2.0)
    assert d["neg"]["l2"] == pytest.approx(2 * np.linalg.norm(x))
    assert d["neg"]["rel_l2"] == pytest.approx(2.0)
    assert d["orth"]["cosine"] == pytest.approx(1.0)
    assert d["orth"]["l2"] == pytest.approx(5.0)  # 3-4-5 triangle
    assert d["orth"]["rel_l2"] == pytest.approx(5.0 / 3.0)
    assert list(d) == ["same", "neg", "orth"]


def test_layer_distances_errors_and_zero_vectors():
    z = np.zeros(3)
    d = layer_distances({"a": z, "b": z}, {"a": z, "b": np.ones(3)})
    assert d["a"]["cosine"] == 0.0 and d["b"]["cosine"] == 1.0 and d["b"]["rel_l2"] == 1.0
    with pytest.raises(ValueError, match=r"\(3,\) vs \(4,\)"):
        layer_distances({"a": z}, {"a": np.zeros(4)})
    with pytest.raises(ValueError, match="conv9"):
        layer_distances({"a": z}, {"a": z, "conv9": z})


def test_difference_map_symmetric_range(tmp_path):
    a = np.zeros((6, 8))
    b = a.copy()
    b[2, 3], b[4, 4] = 0.5, -2.0
    fig = difference_map_plot(a, b, sample_rate=8000, hop_length=53)
    assert fig.output_backend == "webgl"
    img = _image(fig)
    mapper = img.glyph.color_mapper
    assert (mapper.low, mapper.high) == (-2.0, 2.0)
    np.testing.assert_array_equal(img.data_source.data["image"][0], (b - a).astype(np.float32))
    # The palette's middle entry (zero) is a near-neutral colour of a diverging map.
    mid = mapper.palette[len(mapper.palette) // 2].lstrip("#")
    r, g, bl = (int(mid[i:i + 2], 16) for i in (0, 2, 4))
    assert max(r, g, bl) - min(r, g, bl) < 40
    same = difference_map_plot(a, a)
    assert (_image(same).glyph.color_mapper.low, _image(same).glyph.color_mapper.high) == (-1, 1)
    _render(fig, tmp_path, "diff")
    with pytest.raises(ValueError, match=r"\(6, 8\) and \(6, 7\)"):
        difference_map_plot(a, np.zeros((6, 7)))


def test_activation_distance_chart(tmp_path):
    fig = activation_distance_chart(["conv1", "conv2", "dense1"], [0.1, 0.3, 0.5],
                                    [0.2, 0.4, 0.9])
    assert fig.output_backend == "webgl"
    assert list(fig.x_range.factors) == ["conv1", "conv2", "dense1"]
    labels = [item.label["value"] for item in fig.legend[0].items]
    assert labels == ["cosine distance", "relative L2"]
    src = fig.renderers[0].data_source.data
    np.testing.assert_allclose(src["l2"], [0.2, 0.4, 0.9])
    _render(fig, tmp_path, "distances")
    with pytest.raises(ValueError, match=r"\(2,\)"):
        activation_distance_chart(["a", "b", "c"], [0.1, 0.2], [0.1, 0.2, 0.3])


def test_silent_filters_are_hatched_and_counted_and_follow_a_new_clip():
    from viz.featuremaps import (SILENT_HATCH, mosaic_title, refresh_silent_tiles,
                                 silent_channels)

    rng = np.random.default_rng(0)
    acts = rng.random((8, 10, 5)).astype(np.float32)
    acts[..., 1] = 0.0  # a dead ReLU: zero everywhere
    acts[..., 3] = 2.5  # constant but not zero: just as flat
    assert silent_channels(acts).tolist() == [False, True, False, True, False]
    fig, _ = feature_map_mosaic(acts, title=mosaic_title("conv2", acts))
    assert fig.title.text == "conv2: 5 filters of 8×10 · 2 silent for this clip (hatched)"
    tiles = fig.select_one({"name": "hs-tiles"})
    assert tiles.glyph.hatch_pattern == {"field": "hatch"} or tiles.glyph.hatch_pattern == "hatch"
    assert tiles.data_source.data["hatch"] == [" ", SILENT_HATCH, " ", SILENT_HATCH, " "]
    other = rng.random((8, 10, 5)).astype(np.float32)  # another clip: every filter fires
    assert refresh_silent_tiles(fig, other)
    assert tiles.data_source.data["hatch"] == [" "] * 5
    assert mosaic_title("conv2", other) == "conv2: 5 filters of 8×10"
    assert not refresh_silent_tiles(fig, other[..., :4])  # another layer's shape: rebuild
