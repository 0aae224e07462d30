"""The cloud of the Embeddings page: aligned layer layouts morphing in one Bokeh figure, its
legend and position caption, and the points selected in it.

The cloud is one RGBA image rendered server-side by :func:`viz.embeddings.morph_frame`
(interpolate → aggregate → shade, 800×800); the :class:`~viz.embeddings.MorphCloud` is built
once per (method, colour), so a slider move costs one frame. Box and lasso selections arrive
as geometry (``SelectionGeometry``) and are mapped to *all* points at the current position.
Bokeh writes are pushed to the document's event loop (:meth:`CloudView._publish`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import panel as pn
from bokeh.events import RangesUpdate, Reset, SelectionGeometry

from serve.pages.cloud_geometry import geometry_indices, layout_points

SIZE = 800  # pixels of the square cloud image
COLOURS = ("label", "speaker", "prediction", "correctness")


# -- colours and captions ----------------------------------------------------------------
def colour_codes(meta: pd.DataFrame, by: str, *, labels: Sequence[str] = ()):
    """``(codes (n,) int32, categories)`` of the column to colour by.

    ``label`` and ``prediction`` share one category list (``labels`` order first, then any
    others sorted) so a class has the same colour in both; ``correctness`` is
    ``("correct", "wrong")``; ``speaker`` is sorted, an empty speaker shown as ``"unknown"``.
    """
    if by not in COLOURS:
        raise ValueError(f"colour must be one of {COLOURS}, got {by!r}")
    if by == "correctness":
        values = np.where(meta["correct"].to_numpy(bool), "correct", "wrong")
        cats = ["correct", "wrong"]
    elif by == "speaker":
        values = meta["speaker"].astype(str).replace("", "unknown").to_numpy()
        cats = sorted(set(values))
    else:
        values = meta[by].astype(str).to_numpy()
        seen = set(meta["label"].astype(str)) | set(meta["prediction"].astype(str))
        cats = [c for c in labels if c in seen] + sorted(seen - set(labels))
    codes = pd.Categorical(values, categories=cats).codes.astype(np.int32)
    return codes, tuple(cats)


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
    """The cloud's Bokeh figure (WebGL, fixed ranges) and its sources.

    Returns ``(figure, {"image", "anchors", "selected"})``: ``image`` feeds one ``image_rgba``;
    ``anchors`` holds invisible points (the range corners) that give the box and lasso tools a
    renderer, since the selection itself is computed on the server from the tool's geometry;
    ``selected`` draws rings around the selected points.
    """
    from bokeh.models import BoxSelectTool, ColumnDataSource, LassoSelectTool, Range1d
    from bokeh.plotting import figure

    sources = {"image": ColumnDataSource({"image": [], "x": [], "y": [], "dw": [], "dh": []}),
               "anchors": ColumnDataSource({"x": [0.0], "y": [0.0]}),
               "selected": ColumnDataSource({"x": [], "y": []})}
    fig = figure(title="Layer walkthrough", width=size, height=size, x_range=Range1d(0, 1),
                 y_range=Range1d(0, 1), output_backend="webgl", tools="pan,wheel_zoom,reset")
    fig.toolbar.logo = None
    fig.image_rgba(image="image", x="x", y="y", dw="dw", dh="dh", source=sources["image"])
    anchors = fig.scatter("x", "y", source=sources["anchors"], size=1, alpha=0)
    fig.scatter("x", "y", source=sources["selected"], size=7, fill_alpha=0, line_color="black",
                line_width=1)
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

    Args:
      runner: the session's job runner; Bokeh writes go through its ``push``.
      labels: the model's class names (the colour order of labels and predictions).
      position: ``position() -> float``, the layer position to draw (the page's slider); read
        inside the render lock, so the newest position wins.
      on_select: ``on_select(meta, rows)`` after every selection (the utterance list).
      max_marked: selected points ringed in the cloud at most.
    """

    def __init__(self, runner, *, labels: Sequence[str], position: Callable[[], float],
                 on_select: Callable[[pd.DataFrame, np.ndarray], None], max_marked: int = 2000):
        self.runner, self.labels, self.max_marked = runner, list(labels), max_marked
        self._position, self._on_select = position, on_select
        self.layouts = self.name = self.colour = None  # what is shown (see show)
        self._clouds: dict = {}  # (name, colour) -> (MorphCloud, colour key); (name, None) -> base
        self._buffers: dict = {}
        self._pending: dict = {}  # newest value per Bokeh model, see _publish
        self._view = None  # (x_range, y_range) after zooming, None = the cloud's own
        self._render_lock = threading.Lock()
        self.selected = np.zeros(0, np.int64)
        fig, sources = cloud_figure(size=SIZE)
        self.image_source, self.anchor_source = sources["image"], sources["anchors"]
        self.sel_source = sources["selected"]
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
        self._publish("ranges", (cloud.x_range, cloud.y_range))
        self.legend.object = legend_html(key)
        self.render()

    def cloud(self):
        """``(MorphCloud, colour key)`` of the shown layouts and colour (built once each; the
        colourings of one method share its layout arrays)."""
        from dataclasses import replace

        from viz.embeddings import make_morph_cloud
        from viz.embeddings_shade import default_color_key

        name, colour = self.name, self.colour
        if (name, colour) not in self._clouds:
            lay = self.layouts
            base = self._clouds.get((name, None))
            if base is None:
                base = make_morph_cloud(lay.xy[..., 0], lay.xy[..., 1])
                self._clouds[(name, None)] = base
            codes, cats = colour_codes(lay.meta, colour, labels=self.labels)
            cloud = replace(base, codes=codes, categories=cats)
            self._clouds[(name, colour)] = (cloud, default_color_key(cats))
        return self._clouds[(name, colour)]

    def position(self) -> float:
        """The page's position, within the shown layers."""
        return min(max(float(self._position()), 0.0), float(len(self.layouts.layers) - 1))

    def render(self):
        """Draw the morph at the current position; returns the ``(SIZE, SIZE)`` uint32 RGBA."""
        from dataclasses import replace

        from viz.embeddings import morph_frame

        lay = self.layouts
        if lay is None:
            return None
        cloud, key = self.cloud()
        with self._render_lock:  # the position is read inside, so the newest render wins
            if self._view is not None:
                cloud = replace(cloud, x_range=self._view[0], y_range=self._view[1])
            pos = self.position()
            buffers = self._buffers.setdefault((self.name, self.colour), {})
            # A copy: the shading buffers are reused by the next frame, and this one is
            # serialised later, on the event loop.
            img = np.array(morph_frame(cloud, pos, width=SIZE, height=SIZE, color_key=key,
                                       buffers=buffers, **_shading(lay.n)).data)
            (x0, x1), (y0, y1) = cloud.x_range, cloud.y_range
            self._publish("image", {"image": [img], "x": [x0], "y": [y0], "dw": [x1 - x0],
                                    "dh": [y1 - y0]})
            self.caption.object = position_text(lay.layers, lay.reflected, pos)
        self._mark_selection()
        return img

    def points_at(self, rows=None) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` float32 of ``rows`` (default all points) at the current position."""
        return layout_points(self.layouts.xy, self.position(), rows)

    def _publish(self, what: str, value) -> None:
        """Write ``value`` to the Bokeh model(s) ``what`` ("ranges", "image", "selected").

        Bokeh models (unlike Panel widgets) may change only on the document's event loop and
        callbacks run in a thread pool, so the write is pushed there. The pushes were seen to
        run out of order, so each applies the newest value of its kind, never a stale one."""
        self._pending[what] = value
        self.runner.push(lambda: self._apply(what))

    def _apply(self, what: str) -> None:
        value = self._pending[what]
        if what == "ranges":
            (x0, x1), (y0, y1) = value
            self.figure.x_range.start, self.figure.x_range.end = x0, x1
            self.figure.y_range.start, self.figure.y_range.end = y0, y1
            self.anchor_source.data = {"x": [x0, x1] * 2, "y": [y0] * 2 + [y1] * 2}
        else:
            source = self.image_source if what == "image" else self.sel_source
            source.data = value

    # -- selection ---------------------------------------------------------------------
    def _on_geometry(self, event) -> None:
        if event.final and event.geometry and self.layouts is not None:
            self.select_geometry(dict(event.geometry))

    def _on_ranges(self, event) -> None:
        if None in (event.x0, event.x1, event.y0, event.y1) or self.layouts is None:
            return
        if event.x1 > event.x0 and event.y1 > event.y0:
            self._view = ((event.x0, event.x1), (event.y0, event.y1))
            self.render()

    def _on_reset(self, _event) -> None:
        self._view = None
        self.render()

    def select_geometry(self, geometry: dict) -> np.ndarray:
        """Select every point inside a ``rect`` or ``poly`` geometry at the current position."""
        x, y = self.points_at()
        idx = geometry_indices(x, y, geometry)
        self.set_selection(idx)
        return idx

    def set_selection(self, idx) -> None:
        """Select rows ``idx`` of the shown layouts: hand them on and ring them in the cloud."""
        self.selected = np.asarray(idx, np.int64)
        self._on_select(self.layouts.meta, self.selected)
        self._mark_selection()

    def _mark_selection(self) -> None:
        rows = self.selected[:self.max_marked]
        if rows.size == 0 or self.layouts is None:
            data = {"x": [], "y": []}
        else:
            x, y = self.points_at(rows)
            data = {"x": x.tolist(), "y": y.tolist()}
        self._publish("selected", data)
