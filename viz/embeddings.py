"""Datashaded layer walkthroughs: morph between aligned layer layouts of up to ~10M points.

A pipeline of swappable stages (datashader ``Pipeline``): :func:`morph_points` (interpolate two
neighbouring aligned layouts) → :func:`aggregate` (points → per-pixel, per-category counts) →
:func:`shade` (``tf.shade`` + ``tf.dynspread``). :func:`morph_frame` composes them; by default it
interpolates into reused buffers; ``fused=True`` runs one interpolate+aggregate kernel instead,
which never stores the interpolated points (saves 8 bytes a point, about as fast).

Why the fast path is fast (the plain "new DataFrame + ``Canvas.points`` + ``tf.shade``" frame
costs ~0.2 s at 1M points):
- layouts are one ``(layers, n)`` float32 block per axis; nothing is copied per frame;
- aggregation is one numba pass that maps points to pixels with exactly datashader's formula
  (``int(x * sx + tx)``, right edge folded into the last pixel) — a test checks it equals
  ``Canvas.points(..., agg=ds.count_cat(...))``;
- ``tf.shade``'s categorical colouring costs ~10 float passes over ``height × width × categories``;
  empty pixels are masked by ``tf.shade`` anyway (zero counts do not enter ``eq_hist``), so it
  is run on the occupied pixels only and scattered back — the result is bit-identical.
- axis ranges are computed once per layer (and over all layers); the page's camera follows
  the morph by interpolating the neighbouring layers' ranges (:func:`ranges_at`), so every
  layer fills the frame and no point of the morph ever leaves it.

The shading stage and the HoloViews helpers live in :mod:`viz.embeddings_shade` (re-exported
here).

References:
  Deepling (animated transitions between Procrustes-aligned PivotMDS layouts); datashader
  (Bednar et al., holoviz.org) for aggregation and shading.
"""

from __future__ import annotations

from dataclasses import dataclass

import datashader as ds
import datashader.transfer_functions as tf
import numba
import numpy as np
import pandas as pd
import xarray as xr

from viz.embeddings_shade import shade
from viz.numba_cache import use_hearsight_cache

CAT = "c"


@dataclass(frozen=True)
class MorphCloud:
    """Aligned layer layouts of ``n`` points ready to morph (build with :func:`make_morph_cloud`).

    Attributes:
      layouts_x, layouts_y: ``(layers, n)`` float32, C-contiguous.
      codes: ``(n,)`` int32 category codes (``-1`` = uncoloured) or ``None``.
      categories: names of the codes.
      x_range, y_range: the data ranges drawn (by default covering every layer).
      layer_x_ranges, layer_y_ranges: ``(layers, 2)`` float64, each layer's own padded
        ``(lo, hi)`` (see :func:`ranges_at`); ``None`` when built without them.
    """

    layouts_x: np.ndarray
    layouts_y: np.ndarray
    codes: np.ndarray | None
    categories: tuple[str, ...]
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    layer_x_ranges: np.ndarray | None = None
    layer_y_ranges: np.ndarray | None = None

    @property
    def n_layers(self) -> int:
        return self.layouts_x.shape[0]


def _padded(lo: float, hi: float, pad: float) -> tuple[float, float]:
    if not hi > lo:  # all points on a line: open a window around it
        half = max(abs(lo), 1.0) / 2
        lo, hi = lo - half, hi + half
    span = hi - lo
    return lo - pad * span, hi + pad * span


def layout_ranges(layouts_x, layouts_y, *, pad: float = 0.05):
    """``(x_range, y_range)`` covering all layers, padded by ``pad`` of the span on each side."""
    return tuple(_padded(float(np.nanmin(a)), float(np.nanmax(a)), pad)
                 for a in (layouts_x, layouts_y))


def layer_ranges(layouts_x, layouts_y, *, pad: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Each layer's own padded ranges: ``(x (layers, 2), y (layers, 2))`` float64 ``(lo, hi)``.

    One layer's extent, not the union over layers: Procrustes aligns rotation and reflection,
    and layers differ in spread, so a union range left a compact layer filling a corner."""
    out = []
    for a in (layouts_x, layouts_y):
        lo, hi = np.nanmin(a, axis=1), np.nanmax(a, axis=1)
        out.append(np.array([_padded(float(a_), float(b_), pad) for a_, b_ in zip(lo, hi)],
                            np.float64).reshape(-1, 2))
    return out[0], out[1]


def ranges_at(cloud: MorphCloud, position: float):
    """``(x_range, y_range)`` of the camera at ``position``: the neighbouring layers' own ranges
    interpolated like the points. Every morphed point stays inside, since
    ``(1 − t) a + t b <= (1 − t) max a + t max b`` (and likewise for the minimum).
    Without per-layer ranges, the cloud's fixed ``x_range, y_range``."""
    if cloud.layer_x_ranges is None or cloud.layer_y_ranges is None:
        return cloud.x_range, cloud.y_range
    i, t = _segment(cloud.n_layers, position)
    j = i if t == 0.0 else i + 1
    out = []
    for r in (cloud.layer_x_ranges, cloud.layer_y_ranges):
        lo, hi = (1 - t) * r[i] + t * r[j]
        out.append((float(lo), float(hi)))
    return out[0], out[1]


def make_morph_cloud(layouts_x, layouts_y, *, codes=None, categories=(), pad: float = 0.05):
    """Validate and pack layouts ``(layers, n)`` (+ optional ``(n,)`` codes) for morphing."""
    lx = np.ascontiguousarray(layouts_x, dtype=np.float32)
    ly = np.ascontiguousarray(layouts_y, dtype=np.float32)
    if lx.ndim != 2 or lx.shape != ly.shape or lx.shape[0] < 1 or lx.shape[1] < 1:
        raise ValueError(f"layouts must both be (layers, n) with layers, n >= 1, got "
                         f"{lx.shape} and {ly.shape}")
    c = None
    if codes is not None:
        c = np.ascontiguousarray(codes, dtype=np.int32)
        if c.shape != (lx.shape[1],) or c.max(initial=-1) >= len(categories):
            raise ValueError(f"codes must be ({lx.shape[1]},) indices into {len(categories)} "
                             f"categories, got shape {c.shape}, max {c.max(initial=-1)}")
    xr_, yr_ = layout_ranges(lx, ly, pad=pad)
    per_x, per_y = layer_ranges(lx, ly, pad=pad)
    return MorphCloud(lx, ly, c, tuple(str(s) for s in categories), xr_, yr_, per_x, per_y)


def _segment(n_layers: int, position: float) -> tuple[int, float]:
    if not 0.0 <= position <= n_layers - 1:
        raise ValueError(f"position must lie in [0, {n_layers - 1}], got {position}")
    i = min(int(np.floor(position)), n_layers - 1)
    return i, float(position - i)


def morph_points(layouts_x, layouts_y, position: float, *, out=None):
    """Points of the morph at ``position`` ∈ [0, layers − 1] (layer ``i`` at ``position = i``).

    Linear interpolation ``a + t (b − a)`` in float32 between the neighbouring aligned layouts
    ``a = layer ⌊position⌋`` and ``b`` the next; integer positions return the layer exactly.

    Args:
      layouts_x, layouts_y: ``(layers, n)`` float32.
      out: optional ``(x, y)`` preallocated ``(n,)`` float32 buffers written in place.
    Returns:
      ``(x, y)`` each ``(n,)`` float32.
    """
    i, t = _segment(layouts_x.shape[0], position)
    if out is None:
        out = (np.empty(layouts_x.shape[1], np.float32), np.empty(layouts_x.shape[1], np.float32))
    for layouts, buf in zip((layouts_x, layouts_y), out):
        if t == 0.0:
            np.copyto(buf, layouts[i])
        else:
            a, b = layouts[i], layouts[i + 1]
            np.subtract(b, a, out=buf)
            np.multiply(buf, np.float32(t), out=buf)
            np.add(buf, a, out=buf)
    return out


use_hearsight_cache()  # before the decorators: see viz.numba_cache


@numba.njit(nogil=True, cache=True)
def _bin(v, lo, hi, s, t, n):
    # datashader's Point mapping: pixel = int(v * s + t), the closed right edge folded in.
    if not lo <= v <= hi:
        return -1
    k = int(v * s + t)
    return n - 1 if k >= n else k


@numba.njit(nogil=True, cache=True)
def _count_kernel(ax, bx, ay, by, t, codes, vt, bounds, out):
    """Count points into ``out (H, W, C)``; x = ax + t (bx − ax) (bx unused when t == 0)."""
    h, w, c = out.shape
    sx, tx, sy, ty = vt
    x0, x1, y0, y1 = bounds
    for i in range(ax.shape[0]):
        x = ax[i] if t == 0 else ax[i] + t * (bx[i] - ax[i])
        y = ay[i] if t == 0 else ay[i] + t * (by[i] - ay[i])
        xi = _bin(x, x0, x1, sx, tx, w)
        yi = _bin(y, y0, y1, sy, ty, h)
        k = 0 if codes.shape[0] == 0 else codes[i]
        if xi >= 0 and yi >= 0 and 0 <= k < c:
            out[yi, xi, k] += 1


def _transform(x_range, y_range, width: int, height: int):
    if not (x_range[1] > x_range[0] and y_range[1] > y_range[0]) or width < 1 or height < 1:
        raise ValueError(f"need increasing ranges and a positive size, got x_range={x_range}, "
                         f"y_range={y_range}, width={width}, height={height}")
    sx, sy = width / (x_range[1] - x_range[0]), height / (y_range[1] - y_range[0])
    vt = np.array([sx, -x_range[0] * sx, sy, -y_range[0] * sy], np.float64)
    return vt, np.array([*x_range, *y_range], np.float64)


def _wrap(counts, categories, x_range, y_range) -> xr.DataArray:
    h, w = counts.shape[:2]
    coords = {"x": x_range[0] + (np.arange(w) + 0.5) * (x_range[1] - x_range[0]) / w,
              "y": y_range[0] + (np.arange(h) + 0.5) * (y_range[1] - y_range[0]) / h}
    if categories is None:
        return xr.DataArray(counts[..., 0], coords=coords, dims=("y", "x"))
    return xr.DataArray(counts, coords={**coords, CAT: list(categories)}, dims=("y", "x", CAT))


def _aggregate(ax, bx, ay, by, t, codes, categories, *, width, height, x_range, y_range, out):
    vt, bounds = _transform(x_range, y_range, width, height)
    n_cat = 1 if codes is None else len(categories)
    shape = (height, width, n_cat)
    if out is None:
        out = np.zeros(shape, np.uint32)
    elif out.shape != shape or out.dtype != np.uint32:
        raise ValueError(f"out must be uint32 {shape}, got {out.dtype} {out.shape}")
    else:
        out.fill(0)
    c = np.zeros(0, np.int32) if codes is None else np.asarray(codes, np.int32)
    _count_kernel(ax, bx, ay, by, np.float32(t), c, vt, bounds, out)
    return _wrap(out, None if codes is None else categories, x_range, y_range)


def aggregate(x, y, codes=None, *, categories=None, width: int = 800, height: int = 800,
              x_range, y_range, out=None) -> xr.DataArray:
    """Per-pixel counts of points ``(x, y)``, per category when ``codes`` are given.

    Equal to ``ds.Canvas(width, height, x_range, y_range).points(df, 'x', 'y',
    agg=ds.count_cat('c'))`` (or ``ds.count()`` without codes), without a DataFrame.

    Args:
      x, y: ``(n,)`` float32 data coordinates.
      codes: ``(n,)`` int category codes into ``categories`` (negative = skipped) or None.
      out: optional preallocated ``(height, width, categories or 1)`` uint32 buffer (reused).
    Returns:
      ``xr.DataArray`` uint32 ``(y, x, c)`` (or ``(y, x)``), row 0 at ``y_range[0]``.
    """
    x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
    if x.shape != y.shape or x.ndim != 1 or (codes is not None and np.shape(codes) != x.shape):
        raise ValueError(f"x, y (and codes) must be equal-length vectors, got {x.shape}, "
                         f"{y.shape}, {None if codes is None else np.shape(codes)}")
    if codes is not None and categories is None:
        raise ValueError("pass categories=(names...) with codes")
    return _aggregate(x, x, y, y, 0.0, codes, categories, width=width, height=height,
                      x_range=x_range, y_range=y_range, out=out)


def aggregate_morph(cloud: MorphCloud, position: float, *, width: int = 800,
                    height: int = 800, out=None) -> xr.DataArray:
    """Fused :func:`morph_points` + :func:`aggregate`: the interpolated points are never stored."""
    i, t = _segment(cloud.n_layers, position)
    j = i if t == 0.0 else i + 1
    lx, ly = cloud.layouts_x, cloud.layouts_y
    return _aggregate(lx[i], lx[j], ly[i], ly[j], t, cloud.codes, cloud.categories,
                      width=width, height=height, x_range=cloud.x_range,
                      y_range=cloud.y_range, out=out)


def aggregate_datashader(frame: pd.DataFrame, x, y, *, width: int = 800, height: int = 800,
                         x_range, y_range, by: str | None = CAT) -> xr.DataArray:
    """Reference stage: replace the ``x``/``y`` columns of a DataFrame built once by
    :func:`point_frame` and aggregate it with ``Canvas.points`` (``count_cat(by)``)."""
    frame["x"] = x
    frame["y"] = y
    canvas = ds.Canvas(plot_width=width, plot_height=height, x_range=x_range, y_range=y_range)
    return canvas.points(frame, "x", "y", agg=ds.count_cat(by) if by else ds.count())


def point_frame(codes=None, categories=(), *, n: int | None = None) -> pd.DataFrame:
    """The reusable DataFrame of :func:`aggregate_datashader`: float32 x, y and categorical c."""
    n = len(codes) if codes is not None else n
    df = pd.DataFrame({"x": np.zeros(n, np.float32), "y": np.zeros(n, np.float32)})
    if codes is not None:
        df[CAT] = pd.Categorical.from_codes(np.asarray(codes), categories=list(categories))
    return df


def selection_overlay(x, y, *, width: int = 800, height: int = 800, x_range, y_range,
                      color: str = "#000000", alpha: int = 110, spread: int = 1,
                      out=None) -> tf.Image:
    """An RGBA (uint32) highlight of points ``(x, y)``: every pixel holding one at ``alpha``,
    grown to ``(2 spread + 1)²`` pixels.

    For a selection of thousands of points, drawn over the cloud: one constant translucent
    colour per occupied pixel (the cloud's colours show through), instead of a ring per point
    (2,000 browser-side rings merged into an opaque blob). ``out``: a reused count buffer.
    """
    agg = aggregate(x, y, width=width, height=height, x_range=x_range, y_range=y_range,
                    out=out)
    img = tf.shade(agg, cmap=[color, color], how="linear", alpha=alpha, min_alpha=alpha)
    # "source": a spread pixel keeps the one alpha (the default "over" stacked neighbours).
    return tf.spread(img, px=spread, how="source") if spread > 0 else img


def morph_frame(cloud: MorphCloud, position: float, *, width: int = 800, height: int = 800,
                how: str = "eq_hist", spread: int = 1, color_key=None, fused: bool = False,
                aggregate_fn=aggregate, shade_fn=shade, buffers=None) -> tf.Image:
    """One RGBA (uint32) frame of the layer morph at ``position`` ∈ [0, layers − 1].

    Runs the stages :func:`morph_points` (into reused buffers) → ``aggregate_fn`` → ``shade_fn``;
    ``fused=True`` aggregates straight from the layouts instead (:func:`aggregate_morph`).
    ``buffers``: optional dict reused across frames (holds the count/point buffers).
    """
    buffers = {} if buffers is None else buffers
    if fused:
        agg = aggregate_morph(cloud, position, width=width, height=height,
                              out=buffers.get("counts"))
    else:
        x, y = morph_points(cloud.layouts_x, cloud.layouts_y, position, out=buffers.get("xy"))
        buffers.setdefault("xy", (x, y))
        agg = aggregate_fn(x, y, cloud.codes, categories=cloud.categories if cloud.codes
                           is not None else None, width=width, height=height,
                           x_range=cloud.x_range, y_range=cloud.y_range,
                           out=buffers.get("counts"))
    buffers.setdefault("counts", agg.data if agg.ndim == 3 else agg.data[..., None])
    return shade_fn(agg, color_key=color_key, how=how, spread=spread)
