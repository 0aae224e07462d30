"""Where the Embeddings cloud's points are at a morph position, and which of them a box or
lasso selects.

Selections arrive as Bokeh ``SelectionGeometry`` in data coordinates and are tested against
*every* point at the current morph position (not a browser-side subsample). NumPy only.
"""

from __future__ import annotations

import numpy as np


def layout_points(xy: np.ndarray, position: float, rows=None) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` float32 of ``rows`` (default all) of aligned layouts ``xy (layers, n, 2)`` at
    ``position`` ∈ [0, layers − 1]: linear interpolation between the neighbouring layers, the
    same formula as :func:`viz.embeddings.morph_points`."""
    i, j, t = _segment_of(xy.shape[0], position)
    a = xy[i] if rows is None else xy[i, rows]
    b = xy[j] if rows is None else xy[j, rows]
    out = a if t == 0 else a + t * (b - a)
    return out[:, 0], out[:, 1]


def points_in_box(x, y, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    """Sorted indices of points with ``x0 <= x <= x1`` and ``y0 <= y <= y1`` (either order)."""
    (x0, x1), (y0, y1) = sorted((x0, x1)), sorted((y0, y1))
    return np.flatnonzero((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))


def points_in_polygon(x, y, px, py) -> np.ndarray:
    """Sorted indices of points inside the polygon ``(px, py)`` (even-odd ray casting)."""
    px, py = np.asarray(px, np.float64), np.asarray(py, np.float64)
    if px.shape != py.shape or px.ndim != 1 or px.size < 3:
        return np.zeros(0, np.int64)
    inside = np.zeros(np.shape(x), bool)
    for (xa, ya), (xb, yb) in zip(zip(px, py), zip(np.roll(px, 1), np.roll(py, 1))):
        crosses = (ya > y) != (yb > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = xa + (y - ya) * (xb - xa) / (yb - ya)
        inside ^= crosses & (x < xc)
    return np.flatnonzero(inside)


def geometry_indices(x, y, geometry: dict) -> np.ndarray:
    """Points selected by a Bokeh ``SelectionGeometry`` (``rect`` box or ``poly`` lasso)."""
    kind = geometry.get("type")
    if kind == "rect":
        return points_in_box(x, y, geometry["x0"], geometry["x1"], geometry["y0"], geometry["y1"])
    if kind == "poly":
        return points_in_polygon(x, y, list(geometry["x"]), list(geometry["y"]))
    return np.zeros(0, np.int64)


def _segment_of(n_layers: int, position: float) -> tuple[int, int, np.float32]:
    i = min(int(np.floor(position)), n_layers - 1)
    return i, min(i + 1, n_layers - 1), np.float32(position - i)


def _select_part(part, xa: str, xb: str, ya: str, yb: str, t, geometry: dict, keep: int):
    """One partition's ``(count, first keep selected rows)`` (the formula of
    :func:`layout_points`, in float32)."""
    x, y = part[xa].to_numpy(np.float32), part[ya].to_numpy(np.float32)
    if t != 0:
        x = x + t * (part[xb].to_numpy(np.float32) - x)
        y = y + t * (part[yb].to_numpy(np.float32) - y)
    idx = geometry_indices(x, y, geometry)
    return int(idx.size), part.iloc[idx[:keep]]


def select_partitioned(frame, layers, position: float, geometry: dict, *, keep: int):
    """Points of a Dask DataFrame of layouts (``x_<layer>``/``y_<layer>`` columns) inside
    ``geometry`` at ``position``, every partition tested where dask runs it.

    Returns ``(count, rows)``: how many points are selected, and the first ``keep`` of them in
    store order (all their columns), so nothing of size ``n`` reaches this process."""
    import dask
    import pandas as pd

    i, j, t = _segment_of(len(layers), position)
    a, b = layers[i], layers[j]
    tasks = [dask.delayed(_select_part)(p, f"x_{a}", f"x_{b}", f"y_{a}", f"y_{b}", t,
                                        dict(geometry), keep) for p in frame.to_delayed()]
    results = dask.compute(*tasks)
    count = sum(c for c, _ in results)
    heads = [rows for c, rows in results if c]
    rows = (pd.concat(heads, ignore_index=True).head(keep) if heads
            else frame._meta.iloc[:0].reset_index(drop=True))
    return count, rows


def rows_xy(rows, layers) -> np.ndarray:
    """``(layers, m, 2)`` float32 layouts of selected ``rows`` (see :func:`layout_points`)."""
    return np.stack([np.stack([rows[f"x_{k}"].to_numpy(np.float32),
                               rows[f"y_{k}"].to_numpy(np.float32)], axis=1) for k in layers])
