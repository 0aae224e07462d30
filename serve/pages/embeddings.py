"""Embeddings: layer walkthroughs of a whole corpus, datashaded, morphing between layers.

"Compute" forwards the corpus (by default the served model's test split) once in a worker
thread and caches the utterance-level activation store on disk (``cache_home()/stores/``);
every layer is then projected (PivotMDS, PCA, or UMAP/t-SNE when installed), consecutive
layers aligned by Procrustes analysis with the mirroring test, and the quality metrics of each
layer computed on a subsample. A precomputed ``hearsight project`` Parquet
(``shared.projection_path``) is served as it is, for million-point clouds.

The cloud is one RGBA image rendered server-side by :func:`viz.embeddings.morph_frame`
(interpolate → aggregate → shade, 800×800); the :class:`~viz.embeddings.MorphCloud` is built
once per (method, colour), so a slider move costs one frame. Box and lasso selections arrive
as geometry (``SelectionGeometry``) and are mapped to *all* points at the current position.

References:
  Deepling (animated transitions between Procrustes-aligned PivotMDS layer layouts);
  Brandes & Pich (2006), PivotMDS; datashader (Bednar et al.) for aggregation and shading.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import panel as pn
from bokeh.events import RangesUpdate, Reset, SelectionGeometry

from serve.jobs import JobError, session_runner
from serve.pages import embeddings_data as ED
from serve.pages import embeddings_parts as EP

SIZE = 800  # pixels of the square cloud image
STEP = 0.05  # slider / player step between layers
TABLE_ROWS = 2000  # selected rows listed at most


class EmbeddingsPage:
    """The Embeddings tab of one session.

    Args:
      session: the :class:`serve.session.Session` (its ``shared`` gives predictor, model_dir,
        corpus_items() and optionally ``projection_path``).
      items: corpus items to project (default: ``shared.corpus_items()``, read on Compute).
      level: activation level of the store (``"utterance"``).
      seed: seed of the projections and the metric subsample.
    """

    def __init__(self, session, *, items=None, level: str = "utterance", seed: int = 0):
        self.session, self.shared = session, session.shared
        self.items = None if items is None else list(items)
        self.level, self.seed = level, int(seed)
        self.projection_path = getattr(self.shared, "projection_path", None)
        self.runner = session_runner(session)
        self.store = self.job = None
        self.layouts: dict[str, ED.Layouts] = {}  # method -> aligned layouts
        self._clouds: dict = {}  # (method, colour) -> (MorphCloud, colour key)
        self._buffers: dict = {}
        self.selected = np.zeros(0, np.int64)
        self._view = None  # (x_range, y_range) after zooming, None = the cloud's own
        self._render_lock = threading.Lock()
        self._pending: dict = {}  # newest value per Bokeh model, see _publish
        self._build_controls()
        self._build_figure()
        self._build_lists()

    # -- widgets -----------------------------------------------------------------------
    def _build_controls(self) -> None:
        w = pn.widgets
        options = ED.available_methods(projection_path=self.projection_path)
        self.method = w.Select(name="Projection", options=options,
                               value=next(iter(options.values())), css_classes=["hs-emb-method"])
        self.colour = w.Select(name="Colour by", options=list(EP.COLOURS), value="label",
                               css_classes=["hs-emb-colour"])
        self.compute_button = w.Button(name="Compute", button_type="primary",
                                       css_classes=["hs-emb-compute"])
        self.slider = w.FloatSlider(name="Layer", start=0.0, end=1.0, step=STEP, value=0.0,
                                    disabled=True, css_classes=["hs-emb-slider"])
        self.player = w.Player(name="Morph", start=0, end=1, step=1, value=0, interval=80,
                               loop_policy="loop", disabled=True, css_classes=["hs-emb-player"])
        md = pn.pane.Markdown
        self.progress = md("Press **Compute** to project the corpus"
                           " (UMAP and t-SNE are much slower than PivotMDS and PCA).",
                           css_classes=["hs-emb-progress"])
        self.position_md = md("", css_classes=["hs-emb-position"])
        self.legend = pn.pane.HTML("", css_classes=["hs-emb-legend"])
        self.compute_button.on_click(lambda _: self.compute())
        self.method.param.watch(self._on_method, "value")
        self.colour.param.watch(lambda _: self.show(), "value")
        self.slider.param.watch(lambda _: self.render(), "value")
        self.player.param.watch(self._on_player, "value")

    def _build_figure(self) -> None:
        fig, sources = EP.cloud_figure(size=SIZE)
        self.image_source, self.anchor_source = sources["image"], sources["anchors"]
        self.sel_source = sources["selected"]
        fig.on_event(SelectionGeometry, self._on_geometry)
        fig.on_event(RangesUpdate, self._on_ranges)
        fig.on_event(Reset, self._on_reset)
        fig.css_classes = ["hs-emb-cloud"]  # the pane's classes do not reach a Bokeh figure
        self.figure = fig
        self.cloud_pane = pn.pane.Bokeh(fig, css_classes=["hs-emb-cloud"])

    def _build_lists(self) -> None:
        self.list = EP.UtteranceList(self.session, self._items, max_rows=TABLE_ROWS)
        self.table, self.audio, self.open_button = self.list.table, self.list.audio, \
            self.list.open_button
        self.play, self.open_in_inspect = self.list.play, self.list.open_in_inspect
        self.metrics = pn.pane.DataFrame(None, index=False, css_classes=["hs-emb-metrics"],
                                         sizing_mode="stretch_width")

    def _items(self) -> list:
        return self.items if self.items is not None else list(self.shared.corpus_items())

    # -- computing ---------------------------------------------------------------------
    def compute(self):
        """Start the worker: store (reused when cached) → layouts of the chosen method."""
        method = self.method.value
        if method in self.layouts:
            self.show()
            return None
        try:
            self.job = self.runner.start(lambda job: self._steps(job, method),
                                         name="embeddings", on_end=self._on_end)
        except JobError as exc:
            self.session.error(str(exc))
            return None
        self.compute_button.disabled = True
        return self.job

    def _steps(self, job, method: str):
        if method == ED.FILE_METHOD:
            yield self._say(f"reading {Path(self.projection_path).name} …")
            self.layouts[method] = ED.load_projection(self.projection_path)
            return
        if self.store is None:
            yield self._say("forwarding the corpus …")
            self.store = self._ensure_store(job)
        steps = ED.layout_steps(self.store, method=method, seed=self.seed)
        while True:
            try:
                line = next(steps)
            except StopIteration as stop:  # the generator's return value: the Layouts
                self.layouts[method] = stop.value
                return
            yield self._say(line)

    def _ensure_store(self, job):
        items = self._items()

        def progress(done, total):
            if job.stop_requested or time.monotonic() > job.deadline:
                raise RuntimeError(f"stopped after batch {done} of {total} (stop or time limit;"
                                   " raise HEARSIGHT_JOB_SECONDS for a large corpus)")
            self._say(f"activations: batch {done} / {total} ({len(items)} clips)")
        store, computed = ED.ensure_store(self.session.predictor, items,
                                          model_dir=self.shared.model_dir, level=self.level,
                                          progress=progress)
        self._say(("computed" if computed else "reused cached") + f" activations of {len(items)}"
                  " clips")
        return store

    def _say(self, text: str) -> str:
        self.runner.push(lambda: setattr(self.progress, "object", text))
        return text

    def _on_end(self, job) -> None:
        def done():
            self.compute_button.disabled = False
            if job.status == "done" and self.method.value in self.layouts:
                self.show()
        self.runner.push(done)

    def wait(self, timeout: float = 120.0) -> bool:
        """Join the running computation (tests, scripts)."""
        return self.job is None or self.job.join(timeout)

    # -- showing -----------------------------------------------------------------------
    def _on_method(self, event) -> None:
        if event.new in self.layouts:
            self.show()
        elif self.store is not None or event.new == ED.FILE_METHOD:
            self.compute()
        else:
            self.progress.object = "Press **Compute** to project the corpus with this method."

    def _on_player(self, event) -> None:
        if not self.slider.disabled:
            self.slider.value = round(min(event.new * STEP, self.slider.end), 6)

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
                                       spread=2 if lay.n < 20_000 else 1,  # few: larger dots
                                       buffers=buffers).data)
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

    def view(self):
        md = pn.pane.Markdown
        left = pn.Column(pn.Row(self.method, self.colour, self.compute_button), self.progress,
                         pn.Row(self.slider, self.player), self.position_md, self.cloud_pane,
                         self.legend, width=SIZE + 20)
        right = pn.Column(md("#### Projection quality per layer"), self.metrics,
                          md("#### Selected utterances"), self.list.view(), width=480)
        # Beside the cloud on a wide screen, below it otherwise (a Row squeezed it to a sliver).
        return pn.FlexBox(left, right, sizing_mode="stretch_width")
