"""The cloud of the Embeddings page: drawing the morph and selecting points in it.

:class:`CloudView` is a mixin of :class:`serve.pages.embeddings.EmbeddingsPage`; it uses the
page's widgets (``method``, ``colour``, ``slider``, ``player``, ``legend``, ``metrics``,
``progress``, ``position_md``, ``list``), its Bokeh ``figure`` and sources, ``layouts``, the
caches ``_clouds``/``_buffers``/``_pending``, ``_view``, ``_render_lock``, ``selected`` and
``runner``. Rendering runs :func:`viz.embeddings.morph_frame`; Bokeh writes are pushed to the
document's event loop (:meth:`CloudView._publish`).
"""

from __future__ import annotations

import numpy as np

from serve.pages import embeddings_data as ED
from serve.pages import embeddings_parts as EP

SIZE = 800  # pixels of the square cloud image
STEP = 0.05  # slider / player step between layers
TABLE_ROWS = 2000  # selected rows listed at most


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
    """Drawing (:meth:`show`, :meth:`render`) and selecting (:meth:`select_geometry`) in the
    cloud; mixed into the Embeddings page, which owns the state listed in the module docstring."""

    # -- showing -----------------------------------------------------------------------
    def cloud(self):
        """``(MorphCloud, colour key)`` of the current method and colour (built once each;
        the colourings of one method share its layout arrays)."""
        from dataclasses import replace

        from viz.embeddings import default_color_key, make_morph_cloud

        method, colour = self.method.value, self.colour.value
        if (method, colour) not in self._clouds:
            lay = self.layouts[method]
            base = self._clouds.get((method, None))
            if base is None:
                base = make_morph_cloud(lay.xy[..., 0], lay.xy[..., 1])
                self._clouds[(method, None)] = base
            codes, cats = EP.colour_codes(lay.meta, colour, labels=self.session.predictor.labels)
            cloud = replace(base, codes=codes, categories=cats)
            self._clouds[(method, colour)] = (cloud, default_color_key(cats))
        return self._clouds[(method, colour)]

    def show(self) -> None:
        """Point the slider, player, ranges, legend and metrics at the current layouts."""
        lay = self.layouts.get(self.method.value)
        if lay is None:
            return
        cloud, key = self.cloud()
        last = len(lay.layers) - 1
        self.slider.value = min(self.slider.value, float(last))
        self.slider.end = float(max(last, 1))
        self.player.end = max(int(round(last / STEP)), 1)
        self.slider.disabled = self.player.disabled = last == 0
        self.slider.format = EP.layer_formatter(lay.layers)
        self._view = None
        self._publish("ranges", (cloud.x_range, cloud.y_range))
        self.legend.object = EP.legend_html(key)
        self.metrics.object = ED.quality_frame(lay)
        self.progress.object = (f"{lay.n:,} points · {len(lay.layers)} layers · "
                                f"{self.method.value}")
        self.render()

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

    def position(self) -> float:
        lay = self.layouts[self.method.value]
        return min(max(float(self.slider.value), 0.0), float(len(lay.layers) - 1))

    def render(self):
        """Draw the morph at the slider's position; returns the ``(SIZE, SIZE)`` uint32 RGBA."""
        from dataclasses import replace

        from viz.embeddings import morph_frame

        lay = self.layouts.get(self.method.value)
        if lay is None:
            return None
        cloud, key = self.cloud()
        with self._render_lock:  # the position is read inside, so the newest render wins
            if self._view is not None:
                cloud = replace(cloud, x_range=self._view[0], y_range=self._view[1])
            pos = self.position()
            buffers = self._buffers.setdefault((self.method.value, self.colour.value), {})
            # A copy: the shading buffers are reused by the next frame, and this one is
            # serialised later, on the event loop.
            img = np.array(morph_frame(cloud, pos, width=SIZE, height=SIZE, color_key=key,
                                       buffers=buffers, **_shading(lay.n)).data)
            (x0, x1), (y0, y1) = cloud.x_range, cloud.y_range
            self._publish("image", {"image": [img], "x": [x0], "y": [y0], "dw": [x1 - x0],
                                    "dh": [y1 - y0]})
            self.position_md.object = EP.position_text(lay.layers, lay.reflected, pos)
        self._mark_selection()
        return img

    def points_at(self, rows=None) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` float32 of ``rows`` (default all points) at the current position."""
        return EP.layout_points(self.layouts[self.method.value].xy, self.position(), rows)

    # -- selection ---------------------------------------------------------------------
    def _on_geometry(self, event) -> None:
        if event.final and event.geometry and self.method.value in self.layouts:
            self.select_geometry(dict(event.geometry))

    def _on_ranges(self, event) -> None:
        if None in (event.x0, event.x1, event.y0, event.y1) or self.method.value not in self.layouts:
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
        idx = EP.geometry_indices(x, y, geometry)
        self.set_selection(idx)
        return idx

    def set_selection(self, idx) -> None:
        """List rows ``idx`` of the current layouts and ring them in the cloud."""
        self.selected = np.asarray(idx, np.int64)
        self.list.show(self.layouts[self.method.value].meta, self.selected)
        self._mark_selection()

    def _mark_selection(self) -> None:
        rows = self.selected[:TABLE_ROWS]
        if rows.size == 0 or self.method.value not in self.layouts:
            data = {"x": [], "y": []}
        else:
            x, y = self.points_at(rows)
            data = {"x": x.tolist(), "y": y.tolist()}
        self._publish("selected", data)
