"""In-place figure updates give exactly what a freshly built figure would show."""

from __future__ import annotations

import numpy as np

from viz.featuremaps import feature_map_mosaic, mosaic
from viz.plots import dense_activation_bars, probability_bars, spectrogram_plot, waveform_plot
from viz.refresh import (refresh_dense_bars, refresh_image, refresh_probability_bars,
                         refresh_waveform)

RNG = np.random.default_rng(0)
LABELS = ["zero", "one", "two", "three"]


def _data(fig):
    return fig.renderers[0].data_source.data


def _same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))


def test_waveform_refresh_matches_a_new_figure():
    fig = waveform_plot(RNG.uniform(-0.3, 0.3, 8000), 8000)
    wave = RNG.uniform(-2.0, 2.0, 16000)                  # louder and twice as long
    assert refresh_waveform(fig, wave, 8000, title="Waveform 2")
    fresh = waveform_plot(wave, 8000)
    _same(_data(fig), _data(fresh))
    assert fig.x_range.end == fresh.x_range.end == 2.0                  # 16000 samples at 8 kHz
    assert fig.y_range.start == fresh.y_range.start == -1.05 * np.abs(wave).max()
    assert fig.title.text == "Waveform 2"


def test_probability_refresh_reorders_bars_most_likely_on_top():
    fig = probability_bars(np.array([0.7, 0.1, 0.1, 0.1]), LABELS)
    probs = np.array([0.05, 0.15, 0.2, 0.6])
    assert refresh_probability_bars(fig, probs, LABELS, title="top: three")
    assert list(fig.y_range.factors) == ["zero", "one", "two", "three"]  # bottom-up
    _same(_data(fig), _data(probability_bars(probs, LABELS)))
    assert fig.title.text == "top: three"
    assert not refresh_probability_bars(fig, probs[:3], LABELS[:3])      # other classes: rebuild


def test_image_refresh_keeps_shape_and_moves_the_colour_range():
    fig = spectrogram_plot(RNG.normal(size=(6, 9)), sample_rate=None)
    new = RNG.normal(size=(6, 9))
    assert refresh_image(fig, new, value_range=(-1.0, 3.0), title="map")
    img = [r for r in fig.renderers if "image" in r.data_source.data][0]
    np.testing.assert_array_equal(img.data_source.data["image"][0], new.astype(np.float32))
    assert (img.glyph.color_mapper.low, img.glyph.color_mapper.high) == (-1.0, 3.0)
    assert fig.title.text == "map"
    assert not refresh_image(fig, RNG.normal(size=(6, 10)))              # other shape: rebuild


def test_mosaic_refresh_draws_the_new_activations():
    acts = RNG.normal(size=(5, 7, 4))
    fig, _ = feature_map_mosaic(acts)
    new = RNG.normal(size=(5, 7, 4))
    assert refresh_image(fig, mosaic(new)[0])
    img = [r for r in fig.renderers if "image" in r.data_source.data][0]
    np.testing.assert_array_equal(img.data_source.data["image"][0], mosaic(new)[0])


def test_dense_refresh_same_units_only():
    fig = dense_activation_bars(RNG.normal(size=20))
    new = RNG.normal(size=20)
    assert refresh_dense_bars(fig, new)
    _same(_data(fig), _data(dense_activation_bars(new)))
    assert not refresh_dense_bars(fig, RNG.normal(size=21))
    big = dense_activation_bars(RNG.normal(size=30), max_units=8)
    new = RNG.normal(size=30)
    assert refresh_dense_bars(big, new, max_units=8)
    top = np.argsort(-np.abs(new), kind="stable")[:8]
    assert list(big.x_range.factors) == [str(u) for u in top]
