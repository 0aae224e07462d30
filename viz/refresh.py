"""Update figures built by :mod:`viz.plots` and :mod:`viz.featuremaps` in place.

Building a Bokeh figure costs tens of milliseconds of model construction (property defaults,
validation) and a full document patch; a page that rebuilds a dozen figures for every clip
spends most of its time there (~0.7-2.8 s per clip on the Inspect page, profiled). A figure
already in a document only needs new column data, ranges and a title: Bokeh then sends a
small patch. Each ``refresh_*`` takes a figure built by the matching builder and the same
inputs the builder takes, and returns ``False`` when the figure cannot take them (a
different structure, e.g. another number of units), so the caller builds a new one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from bokeh.models import FactorRange, GlyphRenderer, Image, Range1d
from bokeh.plotting import figure

from viz.plots import dense_data, probability_data, waveform_data


def _renderers(fig: figure) -> list[GlyphRenderer]:
    return [r for r in fig.renderers if isinstance(r, GlyphRenderer)]


def _set_title(fig: figure, title: str | None) -> None:
    if title is not None and fig.title is not None and fig.title.text != title:
        fig.title.text = title


def refresh_waveform(fig: figure, wave: np.ndarray, sample_rate: int, *,
                     max_points: int = 4000, title: str | None = None) -> bool:
    """New samples for a :func:`viz.plots.waveform_plot` figure."""
    data, duration, lim = waveform_data(wave, sample_rate, max_points=max_points)
    rs = _renderers(fig)
    if not rs or not isinstance(fig.x_range, Range1d) or not isinstance(fig.y_range, Range1d):
        return False
    rs[0].data_source.data = data
    fig.x_range.update(start=0.0, end=duration)
    fig.y_range.update(start=-lim, end=lim)
    _set_title(fig, title)
    return True


def refresh_image(fig: figure, image: np.ndarray, *,
                  value_range: tuple[float, float] | None = None,
                  title: str | None = None) -> bool:
    """A new image of the same shape for a spectrogram or mosaic figure.

    ``value_range`` moves the colour map (default: keep it); the image must have the shape
    of the one drawn, since the axes, extents and tile layout depend on it.
    """
    img = np.asarray(image, dtype=np.float32)
    for r in _renderers(fig):
        if isinstance(r.glyph, Image):
            old = r.data_source.data.get("image")
            if not old or np.shape(old[0]) != img.shape:
                return False
            r.data_source.data = {"image": [img]}
            if value_range is not None:
                # The colour bar shares this mapper, so it follows.
                r.glyph.color_mapper.update(low=float(value_range[0]), high=float(value_range[1]))
            _set_title(fig, title)
            return True
    return False


def refresh_probability_bars(fig: figure, probs: np.ndarray, labels: Sequence[str], *,
                             top: int | None = None, highlight: str | None = None,
                             title: str | None = None) -> bool:
    """New probabilities for a :func:`viz.plots.probability_bars` figure (same classes)."""
    data, factors, x_end = probability_data(probs, labels, top=top, highlight=highlight)
    rs = _renderers(fig)
    if not rs or not isinstance(fig.y_range, FactorRange) or len(fig.y_range.factors) != len(factors):
        return False
    rs[0].data_source.data = data  # the text labels share this source
    fig.y_range.factors = factors
    fig.x_range.end = x_end
    _set_title(fig, title)
    return True


def refresh_dense_bars(fig: figure, acts: np.ndarray, *, max_units: int = 512) -> bool:
    """New activations for a :func:`viz.plots.dense_activation_bars` figure (same units)."""
    data, factors = dense_data(acts, max_units=max_units)
    rs = _renderers(fig)
    if not rs or len(rs[0].data_source.data.get("x", ())) != len(data["x"]):
        return False
    if (factors is None) != (not isinstance(fig.x_range, FactorRange)):
        return False
    rs[0].data_source.data = data
    if factors is not None:
        fig.x_range.factors = factors
    return True
