"""Embeddings: layer walkthroughs of a whole corpus, datashaded, morphing between layers.

"Compute" forwards the corpus (by default the served model's test split) once in a worker
thread and caches the utterance-level activation store on disk (``cache_home()/stores/``);
every layer is then projected (PivotMDS, PCA, or UMAP/t-SNE when installed), consecutive
layers aligned by Procrustes analysis with the mirroring test, and the quality metrics of each
layer computed on a subsample. A precomputed ``hearsight project`` Parquet
(``shared.projection_path``) is served as it is, for million-point clouds.

The page owns the controls and the Compute job; the cloud, its legend, caption and selection
are a :class:`~serve.pages.embeddings_cloud.CloudView`, the store and layouts come from
:mod:`serve.pages.embeddings_layouts`, the selected utterances are listed by an
:class:`~serve.pages.utterance_list.UtteranceList`.

References:
  Deepling (animated transitions between Procrustes-aligned PivotMDS layer layouts);
  Brandes & Pich (2006), PivotMDS; datashader (Bednar et al.) for aggregation and shading.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn

from serve.jobs import JobError, session_runner
from serve.pages import embeddings_layouts as EL
from serve.pages.embeddings_cloud import COLOURS, SIZE, CloudView
from serve.pages.utterance_list import UtteranceList

STEP = 0.05  # slider / player step between layers
TABLE_ROWS = 2000  # selected rows listed at most
LIST_COLUMNS = ["item_id", "frame", "time_s", "label", "speaker", "prediction", "correct"]


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
        self.layouts: dict[str, EL.Layouts] = {}  # method -> aligned layouts
        self._build_controls()
        self.list = UtteranceList(session, self._items, max_rows=TABLE_ROWS)
        # Frame-level rows of one clip differ only by frame: list the frame and its time too
        # (the list shows the columns of its COLUMNS that the rows have).
        self.list.COLUMNS = LIST_COLUMNS
        self.cloud_view = CloudView(self.runner, labels=session.predictor.labels,
                                    position=lambda: self.slider.value,
                                    on_select=self._on_select)
        self.metrics = pn.pane.DataFrame(None, index=False, css_classes=["hs-emb-metrics"],
                                         sizing_mode="stretch_width")
        if self.method.value == EL.FILE_METHOD:
            # A precomputed projection (serve --projection) costs only a read: draw it as soon
            # as the page is built (the tab's first showing), not after a Compute click.
            self.compute()

    # -- widgets -----------------------------------------------------------------------
    def _build_controls(self) -> None:
        w = pn.widgets
        options = EL.available_methods(projection_path=self.projection_path)
        self.method = w.Select(name="Projection", options=options,
                               value=next(iter(options.values())), css_classes=["hs-emb-method"])
        self.colour = w.Select(name="Colour by", options=list(COLOURS), value="label",
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
        self.compute_button.on_click(lambda _: self.compute())
        self.method.param.watch(self._on_method, "value")
        self.colour.param.watch(lambda _: self.show(), "value")
        self.slider.param.watch(self._on_slider, "value")
        self.player.param.watch(self._on_player, "value")

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
        if method == EL.FILE_METHOD:
            yield self._say(f"reading {Path(self.projection_path).name} …")
            self.layouts[method] = shared_projection(self.projection_path)
            return
        if self.store is None:
            yield self._say("forwarding the corpus …")
            self.store = self._ensure_store(job)
        steps = EL.layout_steps(self.store, method=method, seed=self.seed)
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
        store, computed = EL.ensure_store(self.session.predictor, items,
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
    def show(self) -> None:
        """Point the cloud, slider, player, metrics and progress at the current layouts."""
        lay = self.layouts.get(self.method.value)
        if lay is None:
            return
        self.cloud_view.show(lay, name=self.method.value, colour=self.colour.value)
        last = len(lay.layers) - 1
        # The formatter with the range, in one update and before the value: set after them,
        # the title kept its plain "Layer: 0" until the slider moved.
        self.slider.param.update(format=layer_formatter(lay.layers), end=float(max(last, 1)),
                                 value=min(self.slider.value, float(last)))
        self.player.end = max(int(round(last / STEP)), 1)
        self.slider.disabled = self.player.disabled = last == 0
        self.metrics.object = EL.quality_table(lay)  # metrics as rows: fits its column
        where = (" · partitioned store, drawn by dask"
                 if getattr(lay, "partitioned", False) else "")
        self.progress.object = (f"{lay.n:,} points · {len(lay.layers)} layers · "
                                f"{self.method.value}{where}")

    def _on_method(self, event) -> None:
        if event.new in self.layouts:
            self.show()
            return
        # Nothing to draw until the method's layouts are computed (the image stays).
        self.cloud_view.show(None, name=event.new, colour=self.colour.value)
        if self.store is not None or event.new == EL.FILE_METHOD:
            self.compute()
        else:
            self.progress.object = "Press **Compute** to project the corpus with this method."

    def _on_player(self, event) -> None:
        if not self.slider.disabled:
            self.slider.value = round(min(event.new * STEP, self.slider.end), 6)

    def _on_slider(self, event) -> None:
        # The player follows the slider (it only drove the slider, and jumped back to its own
        # position on the next tick); equal values fire no event, so the two do not loop.
        step = int(round(event.new / STEP))
        if self.player.value != step and self.player.start <= step <= self.player.end:
            self.player.value = step
        self.cloud_view.render()

    def _on_select(self, meta: pd.DataFrame, rows: np.ndarray, *,
                   total: int | None = None) -> None:
        """List the selected rows, frame-level ones with their time in the clip (``total``:
        the selection's size when ``rows`` are only its first rows, see CloudView)."""
        if "frame" not in meta:
            self.list.show(meta, rows, total=total)
            return
        # Only the listed rows get a time column (not all 10M rows of the layouts); the list
        # takes the first ``max_rows`` of ``rows``, so it is handed those rows renumbered.
        shown = meta.iloc[rows[:TABLE_ROWS]].reset_index(drop=True)
        shown.insert(shown.columns.get_loc("frame") + 1, "time_s",
                     frame_times(shown["frame"].to_numpy(), self._frames_per_clip(meta),
                                 clip_seconds(self.session.predictor.params)))
        self.list.show(shown, np.arange(rows.size), total=total)

    def _frames_per_clip(self, meta: pd.DataFrame) -> int:
        known = getattr(self.cloud_view.layouts, "frames_per_clip", None)
        if known:  # a partitioned store's manifest (meta is only the selected rows)
            return int(known)
        key = id(meta)
        if getattr(self, "_frames_key", None) != key:
            self._frames_key, self._frames = key, int(meta["frame"].max()) + 1
        return self._frames

    def view(self):
        md = pn.pane.Markdown
        cloud = self.cloud_view
        left = pn.Column(pn.Row(self.method, self.colour, self.compute_button), self.progress,
                         pn.Row(self.slider, self.player), cloud.caption, cloud.pane,
                         cloud.legend, width=SIZE + 20)
        right = pn.Column(md("#### Projection quality per layer"), self.metrics,
                          md("#### Selected utterances"), self.list.view(), width=480)
        # Beside the cloud on a wide screen, below it otherwise (a Row squeezed it to a sliver).
        return pn.FlexBox(left, right, sizing_mode="stretch_width")


def layer_formatter(layers: Sequence[str]):
    """A slider formatter showing the layer name at whole positions and ``a → b 40%`` between."""
    from bokeh.models import CustomJSTickFormatter

    code = ("const i = Math.min(Math.floor(tick + 1e-6), names.length - 1); const t = tick - i;"
            " return t < 1e-6 ? names[i] : names[i] + ' → ' + names[i + 1] + ' ' +"
            " Math.round(t * 100) + '%';")
    return CustomJSTickFormatter(args={"names": list(layers)}, code=code)


def clip_seconds(params) -> float | None:
    """The model's input length in seconds (``duration_s`` or ``n_samples / sample_rate``)."""
    seconds = getattr(params, "duration_s", None)
    if seconds is None and getattr(params, "n_samples", None) and getattr(params, "sample_rate",
                                                                          None):
        seconds = params.n_samples / params.sample_rate
    return None if seconds is None else float(seconds)


def frame_times(frame: np.ndarray, frames_per_clip: int, seconds: float | None) -> np.ndarray:
    """Start time (s, rounded to ms) of each frame, the frames of a layer dividing the model's
    input evenly (a pooled conv layer has fewer, longer frames); NaN without a length."""
    if not seconds or frames_per_clip < 1:
        return np.full(np.shape(frame), np.nan)
    return np.round(np.asarray(frame, np.float64) * (seconds / frames_per_clip), 3)


# -- projection files shared by every session -----------------------------------------------
_PROJECTIONS: dict[str, tuple] = {}  # resolved path -> ((mtime_ns, size), Layouts)
_PROJECTIONS_GUARD = threading.Lock()
_PROJECTION_LOCKS: dict[str, threading.Lock] = {}


def shared_projection(path) -> EL.Layouts:
    """:func:`~serve.pages.embeddings_layouts.load_projection`, once per file version in this
    process: cached by (path, mtime, size), its arrays read-only, so every session shares one
    copy (each read its own: +2 GB a session at 10M points). A rewritten file is read again;
    two sessions asking at once read it once (the second waits)."""
    key = str(Path(path).resolve())
    with _PROJECTIONS_GUARD:
        lock = _PROJECTION_LOCKS.setdefault(key, threading.Lock())
    with lock:
        from data.layout_parts import LAYOUT_MANIFEST, is_layout_parts

        stamp = Path(key) / LAYOUT_MANIFEST if is_layout_parts(key) else Path(key)
        st = stamp.stat() if stamp.is_file() else None
        version = None if st is None else (st.st_mtime_ns, st.st_size)
        cached = _PROJECTIONS.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        layouts = EL.load_projection(path)  # raises the user-facing error for a missing file
        if not getattr(layouts, "partitioned", False):
            layouts.xy.setflags(write=False)
        with _PROJECTIONS_GUARD:
            _PROJECTIONS[key] = (version, layouts)  # the older version's copy goes
        return layouts
