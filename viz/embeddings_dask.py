"""The layer morph over a Dask DataFrame: every frame aggregated where the data lives.

A partitioned layout store (:mod:`data.layout_parts`) opens as a Dask DataFrame with one
``x_<layer>``/``y_<layer>`` column pair per layer and categorical colour columns. A frame at
morph position ``p`` between layers ``a`` and ``b`` is ``datashader.Canvas.points`` over
``x = x_a + t (x_b − x_a)`` (likewise ``y``), ``count_cat`` of the colour column: datashader
aggregates every partition on whichever scheduler dask uses (the workers of a
``distributed.Client`` when one is the default, this process's threads otherwise) and sums the
per-partition images; only the ``width × height × categories`` counts reach the caller, which
shades them like the in-memory path (:func:`viz.embeddings_shade.shade`).

:class:`DaskCloud` carries the same range attributes as :class:`viz.embeddings.MorphCloud`
(``x_range``, ``y_range``, ``layer_x_ranges``, ``layer_y_ranges``, ``n_layers``), so the camera
(:func:`viz.embeddings.ranges_at`) follows the layers the same way on both paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import datashader as ds
import datashader.transfer_functions as tf
import numpy as np

from viz.embeddings import _padded, _segment
from viz.embeddings_shade import shade

X, Y = "_x", "_y"  # the morphed coordinates' column names


@dataclass(frozen=True)
class DaskCloud:
    """Aligned layouts of ``n`` points in a Dask DataFrame, ready to morph.

    Attributes:
      frame: Dask DataFrame with ``x_<layer>``, ``y_<layer>`` (float32) for every layer and the
        categorical ``column`` (categories known, in ``categories`` order).
      layers: layer names in forward order.
      column: the colour column; ``categories`` its categories.
      x_range, y_range: the ranges drawn (by default covering every layer).
      layer_x_ranges, layer_y_ranges: ``(layers, 2)`` each layer's own padded ``(lo, hi)``.
      n: number of points.
    """

    frame: Any
    layers: tuple[str, ...]
    column: str
    categories: tuple[str, ...]
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    layer_x_ranges: np.ndarray
    layer_y_ranges: np.ndarray
    n: int

    @property
    def n_layers(self) -> int:
        return len(self.layers)


def dask_cloud(frame, layers: Sequence[str], extents: Mapping[str, Sequence[float]], *,
               column: str, categories: Sequence[str], n: int, pad: float = 0.05) -> DaskCloud:
    """A :class:`DaskCloud` of ``frame`` with per-layer extents ``layer -> [x0, x1, y0, y1]``
    (the layout store's manifest: no pass over the data), padded by ``pad`` of each span."""
    missing = [c for name in layers for c in (f"x_{name}", f"y_{name}") if c not in frame.columns]
    if not layers or missing or column not in frame.columns:
        raise ValueError(f"the frame lacks columns {missing or [column]} for layers {list(layers)}")
    px = np.array([_padded(*map(float, extents[k][:2]), pad) for k in layers], np.float64)
    py = np.array([_padded(*map(float, extents[k][2:4]), pad) for k in layers], np.float64)
    return DaskCloud(frame, tuple(layers), column, tuple(str(c) for c in categories),
                     (float(px[:, 0].min()), float(px[:, 1].max())),
                     (float(py[:, 0].min()), float(py[:, 1].max())), px, py, int(n))


def morph_columns(cloud: DaskCloud, position: float):
    """``(frame, x column, y column)`` at ``position``: a layer's own columns at a whole
    position, a lazily interpolated pair (``_x``, ``_y``) between layers."""
    i, t = _segment(cloud.n_layers, position)
    a = cloud.layers[i]
    if t == 0.0:
        return cloud.frame, f"x_{a}", f"y_{a}"
    b, f, t32 = cloud.layers[i + 1], cloud.frame, np.float32(t)
    morphed = f[[f"x_{a}", f"x_{b}", f"y_{a}", f"y_{b}", cloud.column]].assign(
        **{X: f[f"x_{a}"] + t32 * (f[f"x_{b}"] - f[f"x_{a}"]),
           Y: f[f"y_{a}"] + t32 * (f[f"y_{b}"] - f[f"y_{a}"])})
    return morphed, X, Y


def aggregate_dask(cloud: DaskCloud, position: float, *, width: int = 800, height: int = 800):
    """``count_cat`` counts ``(height, width, categories)`` of the morph at ``position`` over
    ``cloud.x_range × cloud.y_range``, computed by dask's current scheduler."""
    frame, x, y = morph_columns(cloud, position)
    canvas = ds.Canvas(plot_width=width, plot_height=height, x_range=cloud.x_range,
                       y_range=cloud.y_range)
    agg = canvas.points(frame, x, y, agg=ds.count_cat(cloud.column))
    # datashader names the axes after the columns: "y", "x" as the in-memory aggregate has them
    return agg.rename({y: "y", x: "x"})


def dask_morph_frame(cloud: DaskCloud, position: float, *, width: int = 800, height: int = 800,
                     how: str = "eq_hist", spread: int = 1, color_key=None,
                     shade_fn=shade) -> tf.Image:
    """One RGBA (uint32) frame of the morph at ``position``, aggregated by dask and shaded
    here (the same shading as :func:`viz.embeddings.morph_frame`)."""
    agg = aggregate_dask(cloud, position, width=width, height=height)
    if agg.data.dtype.kind != "u":  # datashader's counts are uint32; keep shade's fast path
        agg = agg.astype(np.uint32)
    return shade_fn(agg, color_key=color_key, how=how, spread=spread)


def scheduler_name() -> str:
    """Where dask computes now: ``"N workers of tcp://…"`` under a default
    ``distributed.Client``, else ``"this machine"`` (dask's local threads)."""
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):  # no distributed, or no client
        return "this machine"
    workers = len(client.scheduler_info().get("workers", {}))
    return f"{workers} worker{'s' if workers != 1 else ''} of {client.scheduler.address}"
