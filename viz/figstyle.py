"""Shared look and input checks for the Bokeh builders in ``viz``.

Every figure in ``viz`` is made by :func:`new_figure` so that all of them render with WebGL,
stretch to the page width and share one tool set; palettes are looked up by
:func:`resolve_palette` so callers may pass a Bokeh or colorcet name or a list of colours.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from bokeh.models import (BasicTickFormatter, ColorBar, CustomJSTickFormatter, LinearAxis,
                          LinearColorMapper, WheelZoomTool)
from bokeh.plotting import figure

TOOLS = "pan,wheel_zoom,box_zoom,reset,save"

# Colour-blind-safe pair (Okabe & Ito 2008): blue for ordinary bars, orange for emphasis.
BLUE = "#0072B2"
ORANGE = "#E69F00"
VERMILION = "#D55E00"
GREEN = "#009E73"

Palette = str | Sequence[str]

# Tick labels as short as the tick spacing allows: "0.005" (not bokeh's "5.000e-3", whose
# precision only ever grows once a zoom needed it), "2.5e-6", "120000" → "1.2e5". The fewest
# decimals (or mantissa digits) that tell every tick apart and read back within a thousandth
# of the spacing, trailing zeros dropped; scientific only below 1e-3 or from 1e5 up.
COMPACT_TICKS_JS = """
const n = ticks.length;
const step = n > 1 ? Math.abs(ticks[1] - ticks[0]) : Math.abs(tick);
const mag = Math.max(...ticks.map((t) => Math.abs(t)));
if (tick === 0 || (step > 0 && Math.abs(tick) < step * 1e-6)) return "0";
const sci = mag >= 1e5 || mag < 1e-3;
const trim = (m) => (m.includes(".") ? m.replace(/0+$/, "").replace(/\\.$/, "") : m);
const fmt = (t, d) => {
  if (!sci) { const s = trim(t.toFixed(d)); return s === "-0" ? "0" : s; }
  const [m, e] = t.toExponential(d).split("e");
  return trim(m) + "e" + (e[0] === "+" ? e.slice(1) : e);
};
for (let d = 0; d <= 12; d++) {
  const labels = ticks.map((t) => fmt(t, d));
  const apart = new Set(labels).size === labels.length;
  const close = ticks.every((t, i) => Math.abs(Number(labels[i]) - t) <= (step || mag) * 1e-3);
  if (apart && close) return fmt(tick, d);
}
return fmt(tick, 12);
"""


def compact_ticks() -> CustomJSTickFormatter:
    """A tick formatter giving compact labels (:data:`COMPACT_TICKS_JS`)."""
    return CustomJSTickFormatter(code=COMPACT_TICKS_JS)


def new_figure(*, title: str, height: int, x_axis_label: str = "", y_axis_label: str = "",
               tools: str = TOOLS, **kwargs: Any) -> figure:
    """A WebGL figure that stretches to the page width, wheel zoom active when present."""
    fig = figure(title=title, height=height, sizing_mode="stretch_width",
                 output_backend="webgl", tools=tools, x_axis_label=x_axis_label,
                 y_axis_label=y_axis_label, **kwargs)
    fig.title.text_font_size = "12pt"
    fig.toolbar.logo = None
    for axis in (*fig.xaxis, *fig.yaxis):  # linear number axes only (not log, not factors)
        if type(axis) is LinearAxis and type(axis.formatter) is BasicTickFormatter:
            axis.formatter = compact_ticks()
    if "wheel_zoom" in tools:
        fig.toolbar.active_scroll = fig.select_one(WheelZoomTool)
    return fig


def legend_below(fig: figure) -> None:
    """Move ``fig``'s legend below the frame, horizontal, click to hide a line: inside the
    frame it covered the data (the first layers' markers, the objective's curves)."""
    legend = fig.legend[0]
    fig.center.remove(legend)
    legend.update(orientation="horizontal", click_policy="hide", margin=4, padding=4)
    fig.add_layout(legend, "below")


def resolve_palette(palette: Palette) -> list[str]:
    """A list of hex colours from a Bokeh palette name (``"Inferno256"``), a colorcet name
    (``"coolwarm"``, ``"CET_D1A"``) or a sequence of colours."""
    if isinstance(palette, str):
        import bokeh.palettes

        found = getattr(bokeh.palettes, palette, None)
        if isinstance(found, (list, tuple)):
            return list(found)
        import colorcet

        if palette in colorcet.palette:
            return list(colorcet.palette[palette])
        raise ValueError(f"unknown palette {palette!r}: use a bokeh.palettes name such as "
                         "'Inferno256', a colorcet name such as 'coolwarm', or a list of colours")
    colours = list(palette)
    if len(colours) < 2:
        raise ValueError(f"a palette needs at least 2 colours, got {len(colours)}")
    return colours


def as_finite_array(x: Any, *, name: str, ndim: int, shape_doc: str) -> np.ndarray:
    """``x`` as a float64 array of ``ndim`` dimensions, non-empty and finite, else ValueError."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != ndim or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty {ndim}-D array {shape_doc}, "
                         f"got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} of shape {arr.shape} contains NaN or infinite values")
    return arr


def colour_mapper(palette: Palette, low: float, high: float) -> LinearColorMapper:
    """Linear mapper over ``[low, high]``; a degenerate range is widened so Bokeh can draw it."""
    if not high > low:
        low, high = low - 0.5, high + 0.5
    return LinearColorMapper(palette=resolve_palette(palette), low=float(low),
                             high=float(high), nan_color="#FFFFFF")


def add_colour_bar(fig: figure, mapper: LinearColorMapper, *, title: str = "") -> ColorBar:
    """Attach a vertical colour bar at the right of ``fig``."""
    bar = ColorBar(color_mapper=mapper, title=title or None, width=12, label_standoff=6,
                   formatter=compact_ticks())
    fig.add_layout(bar, "right")
    return bar
