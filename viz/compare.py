"""Bokeh builders for the Edit & compare page: difference maps and per-layer distances."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from bokeh.models import ColumnDataSource, FactorRange, HoverTool, Label
from bokeh.plotting import figure

from viz.figstyle import BLUE, VERMILION, Palette, as_finite_array, legend_below, new_figure
from viz.plots import spectrogram_plot


def difference_map_plot(a: np.ndarray, b: np.ndarray, *, sample_rate: int | None = None,
                        hop_length: int | None = None, fmax: float | None = None,
                        title: str = "Difference (edited − original)",
                        palette: Palette = "coolwarm", limit: float | None = None,
                        height: int = 300) -> figure:
    """``b − a`` as an image in a diverging palette whose colour range is symmetric about 0.

    Zero difference is always the palette's neutral middle colour, red/blue show where the
    edited input is larger/smaller.

    Args:
      a, b: ``(freq, time)`` arrays of the same shape (e.g. original and edited spectrogram).
      sample_rate, hop_length, fmax: axis units as in :func:`viz.plots.spectrogram_plot`.
      limit: colour range ``[-limit, limit]`` (default ``max |b − a|``, or 1 when identical).
    """
    x = as_finite_array(a, name="a", ndim=2, shape_doc="(freq, time)")
    y = as_finite_array(b, name="b", ndim=2, shape_doc="(freq, time)")
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same shape, got {x.shape} and {y.shape}")
    diff = y - x
    if limit is None:
        peak = float(np.max(np.abs(diff)))
        limit = peak if peak > 0 else 1.0
    elif not limit > 0:
        raise ValueError(f"limit must be positive, got {limit}")
    return spectrogram_plot(diff, sample_rate=sample_rate, hop_length=hop_length, fmax=fmax,
                            title=title, palette=palette, value_range=(-limit, limit),
                            height=height, value_label="b − a")


# Activations are float32: a relative L2 difference within a few float32 ulps of the signal is
# rounding, not an edit (a gain the features normalise away gives ~1e-8). A cosine distance is
# computed in float64 and is ~r**2 for a relative difference r, so rounding leaves it below
# ~1e-14; below COSINE_NOISE it is noise too (1 − a·a / ‖a‖² = 1e-16 for identical inputs).
REL_L2_NOISE = 8 * float(np.finfo(np.float32).eps)
COSINE_NOISE = 1e-12


def without_rounding_noise(cosine: np.ndarray,
                           rel_l2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer distances with rounding noise set to exactly 0.

    A layer whose relative L2 distance is at most :data:`REL_L2_NOISE` (8 float32 ulps of
    the signal) is identical in both inputs, so both its distances become 0; a cosine
    distance at most :data:`COSINE_NOISE` becomes 0 on its own (a pure rescaling ``b = c·a``
    is parallel: cosine 0, relative L2 ``|c − 1|``).
    """
    cos = np.asarray(cosine, np.float64).copy()
    rel = np.asarray(rel_l2, np.float64).copy()
    same = np.abs(rel) <= REL_L2_NOISE
    rel[same] = 0.0
    cos[same | (np.abs(cos) <= COSINE_NOISE)] = 0.0
    return cos, rel


def activation_distance_chart(layers: Sequence[str], cosine: Sequence[float],
                              l2: Sequence[float], *,
                              title: str = "Activation distance, original vs edited",
                              height: int = 260) -> figure:
    """Per-layer cosine distance and relative L2 distance as two lines with markers.

    Rounding noise is drawn as 0 (:func:`without_rounding_noise`); when every layer is
    identical the title and a note in the plot say so, over a fixed [0, 1] axis, instead of
    an axis zoomed onto 1e-16.

    Args:
      layers: layer names in network order (x axis).
      cosine: cosine distance per layer, in [0, 2].
      l2: relative L2 distance ``‖b − a‖ / ‖a‖`` per layer (see
        :func:`viz.featuremaps.layer_distances`, key ``rel_l2``).
    """
    names = [str(n) for n in layers]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"layers must be non-empty and unique, got {names}")
    shape_doc = f"({len(names)},) — one value per layer"
    cos = as_finite_array(cosine, name="cosine", ndim=1, shape_doc=shape_doc)
    rel = as_finite_array(l2, name="l2", ndim=1, shape_doc=shape_doc)
    if cos.shape[0] != len(names) or rel.shape[0] != len(names):
        raise ValueError(f"need one value per layer: {len(names)} layers, cosine shape "
                         f"{cos.shape}, l2 shape {rel.shape}")
    cos, rel = without_rounding_noise(cos, rel)
    identical = not (np.any(cos) or np.any(rel))
    if identical:
        title = f"{title}: identical in every layer"
    src = ColumnDataSource({"layer": names, "cosine": cos, "l2": rel})
    fig = new_figure(title=title, height=height, x_axis_label="layer",
                     y_axis_label="distance", x_range=FactorRange(factors=names),
                     tools="reset,save")
    renderers = []
    for field, colour, label, marker in (("cosine", BLUE, "cosine distance", "circle"),
                                         ("l2", VERMILION, "relative L2", "square")):
        fig.line("layer", field, source=src, color=colour, line_width=2, legend_label=label)
        renderers.append(fig.scatter("layer", field, source=src, color=colour, size=8,
                                     marker=marker, legend_label=label))
    fig.add_tools(HoverTool(renderers=renderers, tooltips=[
        ("layer", "@layer"), ("cosine", "@cosine{0.0000}"), ("relative L2", "@l2{0.0000}")]))
    fig.y_range.start = 0
    if identical:
        fig.y_range.end = 1
        fig.add_layout(Label(x=10, y=40, x_units="screen", y_units="screen",
                             text="original and edited activations are identical in every "
                                  "layer", text_font_size="11pt", text_color="#444444"))
    legend_below(fig)  # inside the frame, the legend covered the first layers' markers
    return fig
