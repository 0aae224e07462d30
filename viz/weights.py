"""Bokeh builders for a model's parameters: weight histograms and the layer table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from bokeh.layouts import gridplot
from bokeh.models import (ColumnDataSource, DataTable, HoverTool, NumberFormatter, TableColumn,
                          Title)
from bokeh.plotting import figure

from viz.figstyle import BLUE, new_figure


def weight_histogram(weights: np.ndarray, *, bins: int = 60, title: str = "Weights",
                     height: int = 200) -> figure:
    """Histogram of all entries of a weight tensor: ``title`` on top, and below it a second,
    smaller line with the count, mean and std (short lines, so narrow grid cells never cut
    them off).

    Args:
      weights: any shape; flattened.
      bins: number of equal-width bins over the data's range (``np.histogram``).
    """
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.size == 0:
        raise ValueError(f"weights of shape {np.shape(weights)} are empty")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"weights of shape {np.shape(weights)} contain NaN or infinite values")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    counts, edges = np.histogram(w, bins=bins)
    fig = new_figure(title=title, height=height, x_axis_label="weight value",
                     y_axis_label="count")
    fig.title.text_font_size = "10pt"
    # Panels in `above` come first, nearest the frame; the figure's own title goes outside.
    fig.add_layout(Title(text=f"n={w.size:,}  mean={w.mean():.3g}  std={w.std():.3g}",
                         text_font_size="8pt", text_font_style="normal", text_color="#555555",
                         name="weight-stats"), "above")
    src = ColumnDataSource({"left": edges[:-1], "right": edges[1:], "count": counts})
    quads = fig.quad(left="left", right="right", top="count", bottom=0, source=src,
                     fill_color=BLUE, line_color="white", line_width=0.5)
    fig.add_tools(HoverTool(renderers=[quads], tooltips=[
        ("range", "[@left{0.0000}, @right{0.0000})"), ("count", "@count")]))
    fig.y_range.start = 0
    return fig


def weight_histograms_grid(named_weights: Mapping[str, np.ndarray], *, bins: int = 60,
                           ncols: int = 3, height: int = 180) -> Any:
    """One small :func:`weight_histogram` per named tensor, laid out in a grid.

    Args:
      named_weights: ``{"conv1/kernel": array, ...}`` in display order.
      ncols: histograms per row.
    Returns:
      a Bokeh ``GridPlot`` whose children are the figures.
    """
    if not named_weights:
        raise ValueError("named_weights is empty: pass at least one {name: array}")
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    figs = [weight_histogram(w, bins=bins, title=name, height=height)
            for name, w in named_weights.items()]
    return gridplot(figs, ncols=ncols, sizing_mode="stretch_width", toolbar_location="right")


def _format_shape(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return "—"
    return " × ".join(str(int(d)) for d in shape) or "scalar"


def layer_table_data(named_shapes: Mapping[str, tuple[int, ...]],
                     named_params: Mapping[str, int] | None) -> dict[str, list]:
    """Columns for a layer table: one row per layer in ``named_shapes`` order.

    Layers present only in ``named_params`` (e.g. batch-norm without a sown output) are
    appended with shape ``"—"``; layers without parameters get 0.

    Args:
      named_shapes: ``{layer: output shape of one example}``, e.g. ``(75, 80, 16)``.
      named_params: ``{layer: number of parameters}``, or None when the parameters are not
        known per layer (a foreign model's weights are named by module path, not by layer):
        then there is no ``"parameters"`` column.
    Returns:
      ``{"layer": [...], "output_shape": [...], "parameters": [...]}``.
    """
    if named_params is None:
        return {"layer": list(named_shapes),
                "output_shape": [_format_shape(s) for s in named_shapes.values()]}
    for name, count in named_params.items():
        if int(count) < 0:
            raise ValueError(f"parameter count of {name!r} is negative: {count}")
    layers = list(named_shapes) + [k for k in named_params if k not in named_shapes]
    return {
        "layer": layers,
        "output_shape": [_format_shape(named_shapes.get(k)) for k in layers],
        "parameters": [int(named_params.get(k, 0)) for k in layers],
    }


def layer_table(named_shapes: Mapping[str, tuple[int, ...]],
                named_params: Mapping[str, int] | None, *, height: int = 260) -> DataTable:
    """A Bokeh ``DataTable`` of :func:`layer_table_data` (layer, output shape, parameters;
    no parameters column when ``named_params`` is None)."""
    src = ColumnDataSource(layer_table_data(named_shapes, named_params))
    columns = [
        TableColumn(field="layer", title="layer"),
        TableColumn(field="output_shape", title="output shape"),
    ]
    if named_params is not None:
        columns.append(TableColumn(field="parameters", title="parameters",
                                   formatter=NumberFormatter(format="0,0", text_align="right")))
    return DataTable(source=src, columns=columns, height=height, sizing_mode="stretch_width",
                     index_position=None, sortable=True, reorderable=False)
