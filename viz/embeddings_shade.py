"""Shading stage of the layer morph (:mod:`viz.embeddings`, which re-exports these names):
category colours, :func:`shade` (``tf.shade`` on the occupied pixels only, bit-identical) and the
HoloViews ``Points`` + ``datashade`` helpers of the Embeddings page.
"""

from __future__ import annotations

import datashader as ds
import datashader.transfer_functions as tf
import numba
import numpy as np
import pandas as pd
import xarray as xr

from viz.numba_cache import use_hearsight_cache

use_hearsight_cache()


@numba.njit(nogil=True, cache=True)
def _occupied(flat):
    """Indices of the rows of ``flat (pixels, C)`` with any non-zero count (one pass)."""
    idx = np.empty(flat.shape[0], np.int64)
    m = 0
    for p in range(flat.shape[0]):
        for k in range(flat.shape[1]):
            if flat[p, k] != 0:
                idx[m] = p
                m += 1
                break
    return idx[:m]


def default_color_key(categories) -> dict[str, str]:
    """Category → hex colour (colorcet's glasbey_category10, distinguishable on white)."""
    import colorcet

    pal = colorcet.palette["glasbey_category10"]
    return {c: pal[i % len(pal)] for i, c in enumerate(categories)}


def shade(agg: xr.DataArray, *, color_key=None, cmap=None, how: str = "eq_hist",
          spread: int = 1, min_alpha: int = 40) -> tf.Image:
    """``tf.shade`` (+ ``tf.dynspread`` up to ``spread`` px) of an aggregate, occupied pixels only.

    Identical to ``tf.shade(agg, ...)``: zero-count pixels never enter ``eq_hist`` and get one
    common (transparent) colour, so shading a small block holding the occupied pixels and at
    least one empty pixel, then scattering it back, gives the same image much faster.
    """
    kw = {"how": how, "min_alpha": min_alpha}
    if agg.ndim == 3:
        kw["color_key"] = color_key or default_color_key(agg.coords[agg.dims[2]].values)
    elif cmap is not None:
        kw["cmap"] = cmap
    data = np.asarray(agg.data)
    if data.dtype.kind != "u":  # float aggregates: empty means NaN, not 0 — no shortcut
        out = tf.shade(agg, **kw)
        return tf.dynspread(out, threshold=0.5, max_px=spread) if spread > 0 else out
    h, w = data.shape[:2]
    flat = data.reshape(h * w, -1)
    idx = _occupied(np.ascontiguousarray(flat))
    # A near-square block, not a 1-row strip: tf.shade's eq_hist is ~3x slower on (1, m).
    side = int(np.ceil(np.sqrt(idx.size + 1)))
    rows = -(-(idx.size + 1) // side)
    block = np.zeros((rows * side, flat.shape[1]), data.dtype)
    block[:idx.size] = flat[idx]
    dims = ("y", "x", *agg.dims[2:])
    coords = {d: agg.coords[d].values for d in agg.dims[2:]}
    block = block.reshape(rows, side, -1)
    sub = xr.DataArray(block if agg.ndim == 3 else block[..., 0], dims=dims, coords=coords)
    rgba = tf.shade(sub, **kw).data.reshape(-1)
    img = np.full(h * w, rgba[-1], np.uint32)  # the last cell is always an empty pixel
    img[idx] = rgba[:idx.size]
    out = tf.Image(img.reshape(h, w), coords={"y": agg.coords["y"], "x": agg.coords["x"]},
                   dims=("y", "x"))
    return tf.dynspread(out, threshold=0.5, max_px=spread) if spread > 0 else out


def points_element(df: pd.DataFrame, x: str, y: str, by: str | None = None):
    """HoloViews ``Points`` of ``df[x], df[y]`` with ``by`` (and every other column) as values."""
    import holoviews as hv

    if by is not None and by not in df:
        raise ValueError(f"no column {by!r} to colour by; columns: {list(df.columns)}")
    vdims = [c for c in df.columns if c not in (x, y)]
    return hv.Points(df, kdims=[x, y], vdims=vdims)


def datashaded(element, *, by: str | None = None, color_key=None, spread: int = 1,
               dynamic: bool = True, **kw):
    """``dynspread(datashade(element))`` coloured by category ``by`` (for the Embeddings page)."""
    from holoviews.operation.datashader import datashade, dynspread

    if by is not None:
        cats = element.dframe(dimensions=[by])[by]
        cats = cats.cat.categories if hasattr(cats, "cat") else sorted(cats.unique())
        kw.update(aggregator=ds.count_cat(by),
                  color_key=color_key or default_color_key([str(c) for c in cats]))
    shaded = datashade(element, dynamic=dynamic, **kw)
    return dynspread(shaded, max_px=spread, threshold=0.5) if spread > 0 else shaded
