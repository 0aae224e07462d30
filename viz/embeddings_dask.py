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


def _partial_counts(part, cols, t, column: str, n_cat: int, width: int, height: int,
                    x_range, y_range):
    """One partition's counts as ``(flat indices, counts)`` of its non-zero cells (the dense
    ``height × width × categories`` block is 25–90 MB a partition; its occupied cells are
    what travels back)."""
    from viz.embeddings import _aggregate

    xa, xb, ya, yb = (part[c].to_numpy(np.float32) for c in cols)
    codes = part[column].cat.codes.to_numpy().astype(np.int32)
    agg = _aggregate(xa, xb, ya, yb, t, codes, list(range(n_cat)), width=width, height=height,
                     x_range=x_range, y_range=y_range, out=None)
    flat = agg.data.reshape(-1)
    idx = np.flatnonzero(flat)
    return idx.astype(np.int32 if flat.size < 2 ** 31 else np.int64), flat[idx]


def aggregate_dask(cloud: DaskCloud, position: float, *, width: int = 800, height: int = 800,
                   method: str = "sparse"):
    """``count_cat`` counts ``(height, width, categories)`` of the morph at ``position`` over
    ``cloud.x_range × cloud.y_range``, computed by dask's current scheduler.

    ``method="sparse"`` (default): every partition counts its points with the in-memory
    path's kernel (:func:`viz.embeddings._aggregate`, the same pixel rule as datashader) where
    it lies and sends back only its occupied cells, summed here. ``"datashader"``:
    ``Canvas.points`` over the Dask DataFrame (dense per-partition images reduced by dask;
    the reference, equal cell for cell)."""
    if method == "sparse":
        return _aggregate_sparse(cloud, position, width=width, height=height)
    if method != "datashader":
        raise ValueError(f"method must be 'sparse' or 'datashader', got {method!r}")
    frame, x, y = morph_columns(cloud, position)
    canvas = ds.Canvas(plot_width=width, plot_height=height, x_range=cloud.x_range,
                       y_range=cloud.y_range)
    agg = canvas.points(frame, x, y, agg=ds.count_cat(cloud.column))
    # datashader names the axes after the columns: "y", "x" as the in-memory aggregate has them
    return agg.rename({y: "y", x: "x"})


def _aggregate_sparse(cloud: DaskCloud, position: float, *, width: int, height: int):
    import dask

    from viz.embeddings import _wrap

    i, t = _segment(cloud.n_layers, position)
    a = cloud.layers[i]
    b = cloud.layers[i + 1] if t else a
    cols = (f"x_{a}", f"x_{b}", f"y_{a}", f"y_{b}")
    n_cat = len(cloud.categories)
    tasks = [dask.delayed(_partial_counts, pure=True)(
        part, cols, np.float32(t), cloud.column, n_cat, width, height,
        tuple(map(float, cloud.x_range)), tuple(map(float, cloud.y_range)))
        for part in cloud.frame[[*dict.fromkeys(cols), cloud.column]].to_delayed()]
    counts = np.zeros(height * width * n_cat, np.uint32)
    for idx, values in dask.compute(*tasks):
        counts[idx] += values  # indices are unique within a partition
    return _wrap(counts.reshape(height, width, n_cat), cloud.categories, cloud.x_range,
                 cloud.y_range)


def dask_morph_frame(cloud: DaskCloud, position: float, *, width: int = 800, height: int = 800,
                     how: str = "eq_hist", spread: int = 1, color_key=None,
                     shade_fn=shade, method: str = "sparse") -> tf.Image:
    """One RGBA (uint32) frame of the morph at ``position``, aggregated by dask
    (:func:`aggregate_dask` ``method``) and shaded here (the same shading as
    :func:`viz.embeddings.morph_frame`)."""
    agg = aggregate_dask(cloud, position, width=width, height=height, method=method)
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
