"""The cloud of the Embeddings page: aligned layer layouts morphing in one Bokeh figure, its
legend and position caption, and the points selected in it.

The cloud is one RGBA image rendered server-side by :func:`viz.embeddings.morph_frame`
(interpolate → aggregate → shade, 800×800); the :class:`~viz.embeddings.MorphCloud` is built
once per (layouts, colour) in the process and shared by every session showing those layouts,
so a slider move costs one frame and a second session no copy. Box and lasso selections arrive
as geometry (``SelectionGeometry``) and are mapped to *all* points at the current position.
Bokeh writes are pushed to the document's event loop (:meth:`CloudView._publish`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import panel as pn
from bokeh.events import RangesUpdate, Reset, SelectionGeometry

from serve.pages.cloud_geometry import (geometry_indices, layout_points, rows_xy,
                                        select_partitioned)

SIZE = 800  # pixels of the square cloud image
COLOURS = ("label", "speaker", "prediction", "correctness")
MAX_RINGS = 100  # selections up to this many points are ringed, larger ones highlighted
KEEP_SELECTED = 50_000  # a partitioned store's selection: rows kept here (listed, highlighted)


# -- colours and captions ----------------------------------------------------------------
def colour_codes(meta: pd.DataFrame, by: str, *, labels: Sequence[str] = ()):
    """``(codes (n,) int32, categories)`` of the column to colour by.

    ``label`` and ``prediction`` share one category list (``labels`` order first, then any
    others sorted) so a class has the same colour in both; ``correctness`` is
    ``("correct", "wrong")``; ``speaker`` is sorted, an empty speaker shown as ``"unknown"``.
    Only categories present in the rows are listed; a missing value gets code ``-1``.

    Numeric throughout: a categorical column's integer codes are remapped through a small
    lookup table (one entry per category), so 10–20M rows never become 10–20M Python strings
    (``astype(str)`` of every value cost seconds and gigabytes). Other dtypes are factorised
    once (``astype("category")``).
    """
    if by not in COLOURS:
        raise ValueError(f"colour must be one of {COLOURS}, got {by!r}")
    if by == "correctness":
        return (~meta["correct"].to_numpy(bool)).astype(np.int32), ("correct", "wrong")
    if by == "speaker":
        codes, names = _category_codes(meta["speaker"])
        names = ["unknown" if n == "" else n for n in names]
        cats = sorted({names[k] for k in _present(codes, len(names))})
        return _remap(codes, names, cats), tuple(cats)
    cols = {c: _category_codes(meta[c]) for c in ("label", "prediction")}
    seen = {names[k] for codes, names in cols.values() for k in _present(codes, len(names))}
    cats = [c for c in labels if c in seen] + sorted(seen - set(labels))
    codes, names = cols[by]
    return _remap(codes, names, cats), tuple(cats)


def _category_codes(col: pd.Series) -> tuple[np.ndarray, list[str]]:
    """A column's integer codes (``-1`` = missing) and its category names as strings."""
    # The Categorical's own codes (a view; Series.cat.codes copies them).
    cat = col.array if isinstance(col.dtype, pd.CategoricalDtype) else pd.Categorical(col)
    return np.asarray(cat.codes), [str(c) for c in cat.categories]


def _present(codes: np.ndarray, k: int, *, chunk: int = 1 << 16) -> np.ndarray:
    """Which of the ``k`` codes occur (indices, sorted); chunked so that bincount's intp copy
    of the codes stays small."""
    counts = np.zeros(k + 1, np.int64)
    for s in range(0, codes.size, chunk):
        counts += np.bincount(codes[s:s + chunk].astype(np.intp) + 1, minlength=k + 1)
    return np.flatnonzero(counts[1:])


def _remap(codes: np.ndarray, names: Sequence[str], cats: Sequence[str], *,
           chunk: int = 1 << 16) -> np.ndarray:
    """``codes`` into ``names`` → int32 codes into ``cats`` (-1 stays -1: the table's last
    entry, which a code of -1 indexes). Chunked: indexing converts int8 codes to intp."""
    where = {c: i for i, c in enumerate(cats)}
    lut = np.array([where.get(n, -1) for n in names] + [-1], np.int32)
    out = np.empty(codes.size, np.int32)
    for s in range(0, codes.size, chunk):
        np.take(lut, codes[s:s + chunk], out=out[s:s + chunk])
    return out


def legend_html(color_key: dict, *, limit: int = 40) -> str:
    """A compact HTML legend of ``category -> #colour`` (first ``limit`` entries)."""
    import html

    spans = [f'<span style="white-space:nowrap;margin-right:10px"><span style="display:'
             f'inline-block;width:10px;height:10px;background:{c};margin-right:4px"></span>'
             f'{html.escape(str(k))}</span>' for k, c in list(color_key.items())[:limit]]
    more = f" … and {len(color_key) - limit} more" if len(color_key) > limit else ""
    return "".join(spans) + more


def position_text(layers: Sequence[str], reflected: Sequence[bool], position: float) -> str:
    """Markdown naming the layer(s) at ``position`` and whether their alignment mirrored."""
    i = min(int(np.floor(position)), len(layers) - 1)
    t = position - i

    def name(k):
        return f"**{layers[k]}**" + (" (mirrored to align)" if reflected[k] else "")
    if t < 1e-6 or i + 1 >= len(layers):
        return f"Layer {name(i)} ({i + 1} of {len(layers)})"
    return f"Between {name(i)} and {name(i + 1)}: {t:.0%} of the way"


def cloud_figure(*, size: int):
    """The cloud's Bokeh figure (WebGL) and its sources.

    Returns ``(figure, {"image", "highlight", "anchors", "selected"})``: ``image`` feeds one
    ``image_rgba`` (the cloud), ``highlight`` another over it (a large selection, datashaded);
    ``anchors`` holds invisible points (the range corners) that give the box and lasso tools a
    renderer, since the selection itself is computed on the server from the tool's geometry;
    ``selected`` draws small thin rings around a few selected points. The ranges and their
    ``reset_start``/``reset_end`` are set to the shown layer's extent on every frame, so the
    Reset tool returns to the whole cloud (it returned to the initial [0, 1] × [0, 1]).
    """
    from bokeh.models import BoxSelectTool, ColumnDataSource, LassoSelectTool, Range1d
    from bokeh.plotting import figure

    empty = {"image": [], "x": [], "y": [], "dw": [], "dh": []}
    sources = {"image": ColumnDataSource(dict(empty)),
               "highlight": ColumnDataSource(dict(empty)),
               "anchors": ColumnDataSource({"x": [0.0], "y": [0.0]}),
               "selected": ColumnDataSource({"x": [], "y": []})}
    fig = figure(title="Layer walkthrough", width=size, height=size, x_range=Range1d(0, 1),
                 y_range=Range1d(0, 1), output_backend="webgl", tools="pan,wheel_zoom,reset")
    fig.toolbar.logo = None
    for name in ("image", "highlight"):
        fig.image_rgba(image="image", x="x", y="y", dw="dw", dh="dh", source=sources[name])
    anchors = fig.scatter("x", "y", source=sources["anchors"], size=1, alpha=0)
    fig.scatter("x", "y", source=sources["selected"], size=6, fill_alpha=0, line_color="black",
                line_width=0.8, line_alpha=0.7)
    fig.add_tools(BoxSelectTool(renderers=[anchors]), LassoSelectTool(renderers=[anchors]))
    return fig, sources


def _shading(n: int) -> dict:
    """Shading for ``n`` points. Few (< 20,000): dots up to 2 px and every point at least
    alpha 160. With eq_hist a few overlaps (a 1-D layer such as pooled conv1) made the single
    points, nearly all of them, the faintest level, alpha 40: a washed-out cloud."""
    from functools import partial

    from viz.embeddings_shade import shade

    if n < 20_000:
        return {"spread": 2, "shade_fn": partial(shade, min_alpha=160)}
    return {"spread": 1}


class CloudView:
    """The morphing cloud of one Embeddings page, with its legend, caption and selection.

    The camera follows the morph: at position ``p`` the view is the neighbouring layers' own
    extents interpolated (:func:`viz.embeddings.ranges_at`), so every layer fills the frame;
    after a pan or zoom the user's view is kept until Reset. The clouds (packed layouts and
    colour codes) are shared by every view of the same :class:`Layouts` in this process
    (:func:`shared_clouds`).

    Args:
      runner: the session's job runner; Bokeh writes go through its ``push``.
      labels: the model's class names (the colour order of labels and predictions).
      position: ``position() -> float``, the layer position to draw (the page's slider); read
        inside the render lock, so the newest position wins.
      on_select: ``on_select(meta, rows)`` after every selection (the utterance list).
      max_rings: selections of at most this many points are ringed; larger ones are drawn as
        a datashaded highlight of every selected point.
    """

    def __init__(self, runner, *, labels: Sequence[str], position: Callable[[], float],
                 on_select: Callable[[pd.DataFrame, np.ndarray], None],
                 max_rings: int = MAX_RINGS):
        self.runner, self.labels, self.max_rings = runner, list(labels), max_rings
        self._position, self._on_select = position, on_select
        self.layouts = self.name = self.colour = None  # what is shown (see show)
        self._buffers: dict = {}
        self._pending: dict = {}  # newest value per Bokeh model, see _publish
        self._view = None  # (x_range, y_range) after zooming, None = follow the layers
        self._auto = None  # the camera's own (x_range, y_range) at the last frame
        self._drawn = None  # the (x_range, y_range) of the last frame
        self._render_lock = threading.Lock()
        self.selected = np.zeros(0, np.int64)
        self._sel_meta = self._sel_xy = None  # a partitioned store's kept selected rows
        # a partitioned store's last frame and last selection: where, and how fast
        self.status = {"drawn": "", "selected": ""}
        fig, sources = cloud_figure(size=SIZE)
        self.image_source, self.anchor_source = sources["image"], sources["anchors"]
        self.highlight_source, self.sel_source = sources["highlight"], sources["selected"]
        fig.on_event(SelectionGeometry, self._on_geometry)
        fig.on_event(RangesUpdate, self._on_ranges)
        fig.on_event(Reset, self._on_reset)
        fig.css_classes = ["hs-emb-cloud"]  # the pane's classes do not reach a Bokeh figure
        self.figure = fig
        self.pane = pn.pane.Bokeh(fig, css_classes=["hs-emb-cloud"])
        self.caption = pn.pane.Markdown("", css_classes=["hs-emb-position"])
        self.legend = pn.pane.HTML("", css_classes=["hs-emb-legend"])

    # -- showing -----------------------------------------------------------------------
    def show(self, layouts, *, name: str, colour: str) -> None:
        """Draw ``layouts`` (the :class:`~serve.pages.embeddings_layouts.Layouts` of method
        ``name``) coloured by ``colour``; ``None`` draws nothing until the next call."""
        self.layouts, self.name, self.colour = layouts, name, colour
        if layouts is None:
            return
        cloud, key = self.cloud()
        self._view = None
        (x0, x1), (y0, y1) = cloud.x_range, cloud.y_range  # every layer's points
        self._publish("anchors", {"x": [x0, x1] * 2, "y": [y0] * 2 + [y1] * 2})
        self.legend.object = legend_html(key)
        self.render()

    @property
    def partitioned(self) -> bool:
        """Whether the shown layouts are a partitioned store (views aggregated by dask)."""
        return bool(getattr(self.layouts, "partitioned", False))

    def cloud(self):
        """``(MorphCloud or DaskCloud, colour key)`` of the shown layouts and colour (built once
        per process; the colourings of one layout share its arrays)."""
        if self.partitioned:
            return partitioned_cloud(self.layouts, self.colour, self.labels)
        return shared_clouds(self.layouts).get(self.layouts, self.colour, self.labels)

    def position(self) -> float:
        """The page's position, within the shown layers."""
        return min(max(float(self._position()), 0.0), float(len(self.layouts.layers) - 1))

    def render(self):
        """Draw the morph at the current position; returns the ``(SIZE, SIZE)`` uint32 RGBA."""
        from dataclasses import replace

        from viz.embeddings import morph_frame, ranges_at

        lay = self.layouts
        if lay is None:
            return None
        cloud, key = self.cloud()
        started = time.time()
        with self._render_lock:  # the position is read inside, so the newest render wins
            locked = time.time()
            pos = self.position()
            self._auto = ranges_at(cloud, pos)
            view = self._drawn = self._view or self._auto
            shown = replace(cloud, x_range=view[0], y_range=view[1])
            caption = position_text(lay.layers, lay.reflected, pos)
            if self.partitioned:
                img = self._render_partitioned(shown, pos, key, caption)
            else:
                buffers = self._buffers.setdefault((self.name, self.colour), {})
                # A copy: the shading buffers are reused by the next frame, and this one is
                # serialised later, on the event loop. Fused: no per-session (n,) buffers.
                img = np.array(morph_frame(shown, pos, width=SIZE, height=SIZE, color_key=key,
                                           fused=True, buffers=buffers,
                                           **_shading(lay.n)).data)
            self._trace = {"position": pos, "render_called": started, "render_locked": locked,
                           "rendered": time.time()}
            self._publish("ranges", (self._auto, self._view is None))
            self._publish("image", _image_data(img, view))
            self.caption.object = self._captioned(caption)
            self._mark_selection()
        return img

    def _render_partitioned(self, cloud, pos: float, key: dict, caption: str) -> np.ndarray:
        """A frame of a partitioned store, aggregated by dask where the parts are (the caption
        says so while it runs: a frame of 10M points on a cluster takes a second or more)."""
        import time

        from viz.embeddings_dask import dask_morph_frame, scheduler_name

        where = scheduler_name()
        self.caption.object = f"{caption} · drawing {self.layouts.n:,} points on {where} …"
        start = time.perf_counter()
        img = np.array(dask_morph_frame(cloud, pos, width=SIZE, height=SIZE, color_key=key,
                                        **_shading(self.layouts.n)).data)
        self.status["drawn"] = f"drawn on {where} in {time.perf_counter() - start:.2f} s"
        return img

    def _captioned(self, caption: str) -> str:
        return " · ".join([caption, *(v for v in self.status.values() if v)])

    def points_at(self, rows=None) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` float32 of ``rows`` (default all points) at the current position; for a
        partitioned store, ``rows`` index the kept selected rows (there is no "all")."""
        if self.partitioned:
            if self._sel_xy is None or rows is None:
                raise ValueError("a partitioned store's points are only read for a selection")
            return layout_points(self._sel_xy, self.position(), rows)
        return layout_points(self.layouts.xy, self.position(), rows)

    def _publish(self, what: str, value) -> None:
        """Write ``value`` to the Bokeh model(s) ``what`` ("ranges", "anchors", "image",
        "highlight", "selected").

        Bokeh models (unlike Panel widgets) may change only on the document's event loop and
        callbacks run in a thread pool, so the write is pushed there. The pushes were seen to
        run out of order, so each applies the newest value of its kind, never a stale one."""
        self._pending[what] = value
        self.runner.push(lambda: self._apply(what))

    def _apply(self, what: str) -> None:
        value = self._pending[what]
        if what == "ranges":  # the camera's ranges; the view too unless the user zoomed
            ((x0, x1), (y0, y1)), follow = value
            for rng, lo, hi in ((self.figure.x_range, x0, x1), (self.figure.y_range, y0, y1)):
                rng.reset_start, rng.reset_end = lo, hi
                if follow:
                    rng.start, rng.end = lo, hi
            return
        sources = {"anchors": self.anchor_source, "image": self.image_source,
                   "highlight": self.highlight_source, "selected": self.sel_source}
        sources[what].data = value
        if what == "image" and FRAME_LOG:
            _log_frame({**getattr(self, "_trace", {}), "applied": time.time()})

    # -- selection ---------------------------------------------------------------------
    def _on_geometry(self, event) -> None:
        if event.final and event.geometry and self.layouts is not None:
            self.select_geometry(dict(event.geometry))

    def _on_ranges(self, event) -> None:
        if None in (event.x0, event.x1, event.y0, event.y1) or self.layouts is None:
            return
        if event.x1 > event.x0 and event.y1 > event.y0:
            view = ((event.x0, event.x1), (event.y0, event.y1))
            # The Reset tool reports the camera's own ranges: following the layers again.
            follow = _same_view(view, self._auto)
            self._view = None if follow else view
            # The browser also reports the ranges this page just set (every layer change moves
            # the camera): that frame is already drawn, and drawing it again doubled the cost
            # of a layer change at 10M points.
            if not _same_view(view, self._drawn):
                self.render()

    def _on_reset(self, _event) -> None:
        self._view = None
        self.render()

    def select_geometry(self, geometry: dict) -> np.ndarray:
        """Select every point inside a ``rect`` or ``poly`` geometry at the current position.

        For a partitioned store every part is tested where dask runs (:func:`select_partitioned`)
        and the first :data:`KEEP_SELECTED` selected rows are kept here; the returned indices
        then number those kept rows."""
        if self.partitioned:
            return self._select_partitioned(geometry)
        x, y = self.points_at()
        idx = geometry_indices(x, y, geometry)
        self.set_selection(idx)
        return idx

    def _select_partitioned(self, geometry: dict) -> np.ndarray:
        import time

        from viz.embeddings_dask import scheduler_name

        lay, where = self.layouts, scheduler_name()
        self.caption.object = f"selecting among {lay.n:,} points on {where} …"
        start = time.perf_counter()
        count, rows = select_partitioned(lay.rows(), lay.layers, self.position(), geometry,
                                         keep=KEEP_SELECTED)
        took = time.perf_counter() - start
        self.status["selected"] = (f"{count:,} selected on {where} in {took:.2f} s"
                                   + (f", the first {len(rows):,} kept" if count > len(rows)
                                      else ""))
        self._sel_xy = rows_xy(rows, lay.layers)
        self._sel_meta = rows[[c for c in rows.columns
                               if not c.startswith(("x_", "y_"))]].reset_index(drop=True)
        idx = np.arange(len(rows))
        self.set_selection(idx, total=count)
        self.caption.object = self._captioned(position_text(lay.layers, lay.reflected,
                                                            self.position()))
        return idx

    def set_selection(self, idx, *, total: int | None = None) -> None:
        """Select rows ``idx`` of the shown layouts (of the kept selected rows, for a
        partitioned store): hand them on and mark them in the cloud. ``total``: how many are
        selected in all, when more than ``idx`` (a partitioned store keeps the first ones)."""
        self.selected = np.asarray(idx, np.int64)
        meta = self._sel_meta if self.partitioned else self.layouts.meta
        if total is None:
            self._on_select(meta, self.selected)
        else:
            self._on_select(meta, self.selected, total=total)
        self._mark_selection()

    def _mark_selection(self) -> None:
        """Rings for a few selected points, a datashaded highlight for more (2,000 rings
        merged into an opaque blob)."""
        from viz.embeddings import selection_overlay

        rows, rings, highlight = self.selected, {"x": [], "y": []}, _image_data(None, None)
        if rows.size and self.layouts is not None and self._drawn is not None:
            x, y = self.points_at(rows)
            if rows.size <= self.max_rings:
                rings = {"x": x.tolist(), "y": y.tolist()}
            else:
                view = self._drawn
                img = selection_overlay(x, y, width=SIZE, height=SIZE, x_range=view[0],
                                        y_range=view[1])
                highlight = _image_data(np.asarray(img.data), view)
        self._publish("selected", rings)
        self._publish("highlight", highlight)


# HEARSIGHT_FRAME_LOG=PATH: one JSON line per cloud image handed to Bokeh, with the wall-clock
# times (time.time(), comparable with the browser's Date.now() / 1000 on the same machine) at
# which the render was called, got its lock, finished, and its image was set on the event loop
# (benchmarks/embeddings_browser.py uses it to split a layer change into its parts).
FRAME_LOG = os.environ.get("HEARSIGHT_FRAME_LOG")
_FRAME_LOG_LOCK = threading.Lock()


def _log_frame(entry: dict) -> None:
    with _FRAME_LOG_LOCK, open(FRAME_LOG, "a") as fh:
        fh.write(json.dumps(entry) + "\n")


def _image_data(img, view) -> dict:
    """An ``image_rgba`` source's data: ``img`` spanning ``view``, or nothing."""
    if img is None:
        return {"image": [], "x": [], "y": [], "dw": [], "dh": []}
    (x0, x1), (y0, y1) = view
    return {"image": [img], "x": [x0], "y": [y0], "dw": [x1 - x0], "dh": [y1 - y0]}


def _same_view(a, b) -> bool:
    if a is None or b is None:
        return False
    return bool(np.allclose(np.ravel(a), np.ravel(b), rtol=1e-6,
                            atol=1e-9 * max(abs(b[0][1] - b[0][0]), abs(b[1][1] - b[1][0]))))


# -- clouds shared by every session --------------------------------------------------------
class SharedClouds:
    """The packed layouts (:class:`~viz.embeddings.MorphCloud`) of one :class:`Layouts` and
    its colourings, built once and shared by every view of those layouts in the process.
    It holds no reference to the layouts (they are passed in), so they can be collected."""

    def __init__(self):
        self._lock = threading.Lock()
        self._base = None
        self._coloured: dict = {}  # (colour, labels) -> (MorphCloud, colour key)

    def get(self, layouts, colour: str, labels: Sequence[str]):
        from dataclasses import replace

        from viz.embeddings import make_morph_cloud
        from viz.embeddings_shade import default_color_key

        key = (colour, tuple(labels))
        with self._lock:
            if key not in self._coloured:
                if self._base is None:
                    xy = layouts.xy
                    self._base = make_morph_cloud(xy[..., 0], xy[..., 1])
                    for a in (self._base.layouts_x, self._base.layouts_y):
                        a.setflags(write=False)
                codes, cats = colour_codes(layouts.meta, colour, labels=labels)
                codes.setflags(write=False)
                cloud = replace(self._base, codes=codes, categories=cats)
                self._coloured[key] = (cloud, default_color_key(cats))
            return self._coloured[key]


def partitioned_cloud(parts, colour: str, labels: Sequence[str]):
    """``(DaskCloud, colour key)`` of a partitioned layout store coloured by ``colour``, built
    once per (colour, labels) and kept on the store object (shared by every session showing
    it: one persisted frame on the cluster)."""
    from viz.embeddings_dask import dask_cloud
    from viz.embeddings_shade import default_color_key

    if colour not in COLOURS:
        raise ValueError(f"colour must be one of {COLOURS}, got {colour!r}")
    key = ("cloud", colour, tuple(labels))
    with parts.cache_lock:
        if key not in parts.cache:
            cats = parts.colour_categories(colour, labels)
            frame = parts.plot_frame(labels)
            cloud = dask_cloud(frame, parts.layers, parts.manifest["ranges"], column=colour,
                               categories=cats, n=parts.n)
            parts.cache[key] = (cloud, default_color_key(cats))
        return parts.cache[key]


_CLOUDS: dict[int, tuple] = {}  # id(layouts) -> (weakref to the layouts, SharedClouds)
_CLOUDS_LOCK = threading.Lock()


def shared_clouds(layouts) -> SharedClouds:
    """The process's :class:`SharedClouds` of ``layouts`` (by identity; entries of collected
    layouts are dropped here). Two sessions showing one cached projection file share one copy."""
    import weakref

    with _CLOUDS_LOCK:
        for k in [k for k, (ref, _) in _CLOUDS.items() if ref() is None]:
            del _CLOUDS[k]
        entry = _CLOUDS.get(id(layouts))
        if entry is None or entry[0]() is not layouts:
            entry = _CLOUDS[id(layouts)] = (weakref.ref(layouts), SharedClouds())
        return entry[1]
