"""Known-answer tests of the Inspect-page builders (viz.plots, viz.weights)."""

from __future__ import annotations

import numpy as np
import pytest
from bokeh.embed import file_html
from bokeh.models import ColorBar, DataTable, FactorRange, GlyphRenderer, HBar, Image, Quad, VBar
from bokeh.resources import CDN

from viz.plots import (compare_probability_bars, dense_activation_bars, minmax_envelope,
                       probability_bars, spectrogram_plot, waveform_plot)
from viz.weights import layer_table, layer_table_data, weight_histogram, weight_histograms_grid

LABELS = ["zero", "one", "two", "three"]


def _glyph(fig, kind):
    found = [r for r in fig.renderers if isinstance(r, GlyphRenderer) and isinstance(r.glyph, kind)]
    assert len(found) == 1
    return found[0]


def _render(obj, tmp_path, name):
    path = tmp_path / f"{name}.html"
    path.write_text(file_html(obj, resources=CDN, title=name))
    assert path.stat().st_size > 1000


def test_minmax_envelope_keeps_extremes_and_bounds_length():
    rng = np.random.default_rng(0)
    wave = rng.uniform(-0.5, 0.5, 10_001)
    wave[1234], wave[7777] = 0.99, -0.98
    idx, values = minmax_envelope(wave, max_points=400)
    assert len(idx) <= 400
    assert np.all(np.diff(idx) >= 0)
    np.testing.assert_array_equal(values, wave[idx])
    assert 1234 in idx and 7777 in idx
    # Short signals pass through unchanged.
    idx_s, val_s = minmax_envelope(wave[:50], max_points=400)
    np.testing.assert_array_equal(idx_s, np.arange(50))


def test_minmax_envelope_matches_a_loop_over_its_chunks():
    # Brute force: chunks of ceil(n / (max_points // 2)) samples, each chunk's argmin and
    # argmax in time order; the last chunk is shorter.
    rng = np.random.default_rng(1)
    for n, max_points in ((10_001, 400), (8000, 4000), (4001, 4000), (12_345, 7)):
        wave = rng.normal(size=n)
        size = -(-n // (max_points // 2))
        want = []
        for a in range(0, n, size):
            block = wave[a:a + size]
            want += sorted([a + int(np.argmin(block)), a + int(np.argmax(block))])
        idx, values = minmax_envelope(wave, max_points=max_points)
        np.testing.assert_array_equal(idx, want)
        np.testing.assert_array_equal(values, wave[want])
        assert len(idx) <= max_points


def test_waveform_time_axis_in_seconds(tmp_path):
    sr = 8000
    wave = np.sin(2 * np.pi * 5 * np.arange(2 * sr) / sr).astype(np.float32)  # 2 s
    fig = waveform_plot(wave, sr)
    assert fig.output_backend == "webgl"
    t = np.asarray(fig.renderers[0].data_source.data["t"])
    assert len(t) <= 4000
    assert t.min() == 0.0 and t.max() == pytest.approx((2 * sr - 1) / sr, abs=1e-3)
    assert fig.x_range.end == pytest.approx(2.0)
    _render(fig, tmp_path, "waveform")


def test_waveform_rejects_2d_naming_shape():
    with pytest.raises(ValueError, match=r"\(2, 100\)"):
        waveform_plot(np.zeros((2, 100)), 8000)


def test_spectrogram_extent_in_seconds_and_hz(tmp_path):
    spec = np.random.default_rng(1).normal(size=(160, 150))
    fig = spectrogram_plot(spec, sample_rate=8000, hop_length=53, title="s")
    img = _glyph(fig, Image)
    assert fig.output_backend == "webgl"
    assert img.glyph.dw == pytest.approx(150 * 53 / 8000)  # 0.99375 s
    assert img.glyph.dh == pytest.approx(4000.0)  # Nyquist
    mapper = img.glyph.color_mapper
    assert (mapper.low, mapper.high) == pytest.approx((spec.min(), spec.max()))
    assert any(isinstance(c, ColorBar) for c in fig.right)
    assert fig.toolbar.active_scroll is not None
    _render(fig, tmp_path, "spectrogram")


def test_spectrogram_bins_without_sample_rate_and_value_range():
    fig = spectrogram_plot(np.zeros((8, 5)), sample_rate=None, value_range=(-4, 0), fmax=None)
    img = _glyph(fig, Image)
    assert (img.glyph.dw, img.glyph.dh) == (5.0, 8.0)
    assert (img.glyph.color_mapper.low, img.glyph.color_mapper.high) == (-4.0, 0.0)


def test_spectrogram_time_ticks_can_be_fewer_for_narrow_plots():
    spec = np.zeros((160, 150))
    assert spectrogram_plot(spec, sample_rate=None).xaxis[0].ticker.desired_num_ticks == 6
    fig = spectrogram_plot(spec, sample_rate=None, x_ticks=4)
    assert fig.xaxis[0].ticker.desired_num_ticks == 4
    assert fig.yaxis[0].ticker.desired_num_ticks == 6  # only the time axis changes


def test_spectrogram_bad_inputs():
    with pytest.raises(ValueError, match=r"\(3, 4, 5\)"):
        spectrogram_plot(np.zeros((3, 4, 5)), sample_rate=None)
    with pytest.raises(ValueError, match="hop_length"):
        spectrogram_plot(np.zeros((3, 4)), sample_rate=8000)
    with pytest.raises(ValueError, match="palette"):
        spectrogram_plot(np.zeros((3, 4)), sample_rate=None, palette="NoSuchPalette")


def test_probability_bars_sorted_descending_argmax_on_top(tmp_path):
    probs = np.array([0.1, 0.6, 0.05, 0.25])
    fig = probability_bars(probs, LABELS, highlight="three")
    assert fig.output_backend == "webgl"
    bars = _glyph(fig, HBar).data_source.data
    np.testing.assert_allclose(bars["prob"], [0.6, 0.25, 0.1, 0.05])
    assert list(bars["pct"]) == ["60.0 %", "25.0 %", "10.0 %", "5.0 %"]
    # Categorical factors are drawn bottom-up: the last one is the top bar.
    assert fig.y_range.factors[-1] == LABELS[int(np.argmax(probs))] == "one"
    colours = dict(zip(bars["label"], bars["color"]))
    assert colours["three"] != colours["one"] == colours["zero"]
    _render(fig, tmp_path, "probs")


def test_probability_bars_top_and_errors():
    fig = probability_bars(np.array([0.1, 0.6, 0.05, 0.25]), LABELS, top=2)
    assert list(fig.y_range.factors) == ["three", "one"]
    with pytest.raises(ValueError, match=r"\(3,\)"):
        probability_bars(np.array([0.2, 0.3, 0.5]), LABELS)
    with pytest.raises(ValueError, match="highlight"):
        probability_bars(np.full(4, 0.25), LABELS, highlight="nine")


def test_compare_probability_bars_grouped_sorted_by_a(tmp_path):
    pa, pb = np.array([0.1, 0.2, 0.6, 0.1]), np.array([0.7, 0.1, 0.1, 0.1])
    fig = compare_probability_bars(pa, pb, LABELS)
    assert fig.output_backend == "webgl"
    assert isinstance(fig.y_range, FactorRange)
    groups = [f[0] for f in fig.y_range.factors][::2]
    # Sorted by probs_a descending (stable on ties), drawn bottom-up: argmax of a on top.
    assert groups == ["three", "zero", "one", "two"]
    assert [f[1] for f in fig.y_range.factors][-2:] == ["edited", "original"]
    # Class names read level with their two bars; which bar is which, the legend says.
    assert fig.yaxis[0].group_label_orientation == "horizontal"
    assert [item.label["field"] for item in fig.legend[0].items] == ["name"]
    data = _glyph(fig, HBar).data_source.data
    lookup = {tuple(f): p for f, p in zip(data["factor"], data["prob"])}
    assert lookup[("zero", "edited")] == pytest.approx(0.7)
    assert lookup[("two", "original")] == pytest.approx(0.6)
    _render(fig, tmp_path, "compare_probs")


def test_dense_activation_bars_top_units_by_magnitude(tmp_path):
    acts = np.zeros(1000)
    acts[[3, 500, 999]] = [2.0, -5.0, 1.0]
    fig = dense_activation_bars(acts, max_units=2)
    assert fig.output_backend == "webgl"
    data = _glyph(fig, VBar).data_source.data
    assert list(data["unit"]) == [500, 3]
    assert list(fig.x_range.factors) == ["500", "3"]
    small = dense_activation_bars(np.array([1.0, -1.0, 0.5]))
    np.testing.assert_allclose(_glyph(small, VBar).data_source.data["act"], [1.0, -1.0, 0.5])
    _render(fig, tmp_path, "dense")
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        dense_activation_bars(np.zeros((2, 2)))


def test_weight_histogram_matches_numpy(tmp_path):
    w = np.random.default_rng(2).normal(0.0, 0.1, size=(7, 7, 1, 16))
    fig = weight_histogram(w, bins=30, title="conv1")
    assert fig.output_backend == "webgl"
    data = _glyph(fig, Quad).data_source.data
    counts, edges = np.histogram(w.ravel(), bins=30)
    assert int(np.sum(data["count"])) == w.size == 784
    np.testing.assert_array_equal(data["count"], counts)
    np.testing.assert_allclose(data["left"], edges[:-1])
    stats = fig.select_one({"name": "weight-stats"})
    assert fig.title.text == "conv1" and "n=784" in stats.text
    _render(fig, tmp_path, "hist")
    with pytest.raises(ValueError, match="NaN"):
        weight_histogram(np.array([0.0, np.nan]))


def test_weight_histograms_grid_one_per_layer(tmp_path):
    rng = np.random.default_rng(3)
    grid = weight_histograms_grid({"conv1": rng.normal(size=(3, 3, 1, 4)),
                                   "dense1": rng.normal(size=(10, 5))}, bins=10)
    figs = [child[0] for child in grid.children]
    assert len(figs) == 2
    assert all(f.output_backend == "webgl" for f in figs)
    assert figs[0].title.text == "conv1"
    assert "n=36" in figs[0].select_one({"name": "weight-stats"}).text
    _render(grid, tmp_path, "grid")
    with pytest.raises(ValueError, match="empty"):
        weight_histograms_grid({})


def test_layer_table_data_and_table(tmp_path):
    shapes = {"conv1": (75, 80, 16), "dense1": (256,)}
    params = {"conv1": 800, "bn1": 64, "dense1": 1000}
    data = layer_table_data(shapes, params)
    assert data == {"layer": ["conv1", "dense1", "bn1"],
                    "output_shape": ["75 × 80 × 16", "256", "—"],
                    "parameters": [800, 1000, 64]}
    table = layer_table(shapes, params)
    assert isinstance(table, DataTable)
    assert [c.field for c in table.columns] == ["layer", "output_shape", "parameters"]
    _render(table, tmp_path, "table")
