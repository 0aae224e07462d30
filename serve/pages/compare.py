"""Edit & compare: chain edits with undo/redo; original vs edited side by side — waveforms,
the input's pictures, audio, predictions, one layer of any kind (a conv map's filters, a time /
sequence layer's dims × time, a vector's units), its difference and the per-layer activation
distance (d-DeVIS's comparison view, extended to any model behind the predictor interface).

Like the Inspect page, callbacks do their work directly: the server runs them in Panel's
thread pool (``pn.config.nthreads``), so the event loop never waits on a forward pass. A lock
serialises one session's edits so that two quick clicks cannot interleave their updates.
"""

from __future__ import annotations

import io
import threading

import numpy as np
import panel as pn

from data.edits import EDIT_SCHEMAS, EditHistory, chain_from_json, chain_to_json, validate_edit
from serve.analysis import (is_silent, layer_image, layer_kinds, most_active_channel,
                            most_changed_channel, silent_note)
from serve.pages.compare_parts import (chain_markdown, difference_figure, distance_figure,
                                       download_name, edited_clip, filter_players, layer_figures, page_layout,
                                       param_widgets, prediction_lines, side_panes)


class ComparePage:
    """The Edit & compare tab of one session."""

    def __init__(self, session):
        self.session, self.params, self.predictor = session, session.params, session.predictor
        self.history = EditHistory()
        self.original = self.analysis_a = self.analysis_b = self.edited = None
        self.distances: dict[str, dict[str, float]] = {}
        self._lock = threading.RLock()
        self._syncing = False  # True while the selects are refilled: their watchers skip
        # The filter the user picked for the difference map (layer, channel); until then
        # each redraw shows the layer's most changed filter (filter 0 was often a dead one).
        self._picked: tuple[str, int] | None = None
        self._build_editor()
        self._build_views()
        session.on_clip(self._on_clip)
        if session.clip is not None:
            self._on_clip(session.clip)

    # -- widgets -----------------------------------------------------------------------
    def _build_editor(self) -> None:
        self.op_select = pn.widgets.Select(name="Edit", options=list(EDIT_SCHEMAS), value="gain",
                                           css_classes=["hs-edit-op"])
        self.param_box = pn.Column(css_classes=["hs-edit-params"])
        self.add_button = pn.widgets.Button(name="Add edit", button_type="primary",
                                            css_classes=["hs-add-edit"])
        self.undo_button = pn.widgets.Button(name="Undo", css_classes=["hs-undo"], disabled=True)
        self.redo_button = pn.widgets.Button(name="Redo", css_classes=["hs-redo"], disabled=True)
        self.reset_button = pn.widgets.Button(name="Reset", css_classes=["hs-reset"])
        self.chain_view = pn.pane.Markdown(chain_markdown([]), css_classes=["hs-chain"])
        self.chain_upload = pn.widgets.FileInput(accept=".json", name="Load chain (JSON)",
                                                 css_classes=["hs-chain-upload"])
        self.wav_download = pn.widgets.FileDownload(
            callback=self.wav_file, filename="edited.wav", button_type="success",
            css_classes=["hs-download-wav"], disabled=True)
        self.chain_download = pn.widgets.FileDownload(
            callback=self.chain_file, filename="edit-chain.json", css_classes=["hs-download-chain"])
        self.op_select.param.watch(lambda e: self._show_params(e.new), "value")
        self.add_button.on_click(lambda _: self.add_edit())
        self.undo_button.on_click(lambda _: self.undo())
        self.redo_button.on_click(lambda _: self.redo())
        self.reset_button.on_click(lambda _: self.reset())
        self.chain_upload.param.watch(lambda e: e.new and self.load_chain(e.new), "value")
        self._show_params(self.op_select.value)

    def _build_views(self) -> None:
        md = pn.pane.Markdown
        self.header = md("### Bring audio in from the sidebar, then add edits to compare.",
                         css_classes=["hs-compare-header"])
        self.length_note = md("", css_classes=["hs-length-note"], visible=False)
        self.side_a = pn.Column(sizing_mode="stretch_width", css_classes=["hs-side-original"])
        self.side_b = pn.Column(sizing_mode="stretch_width", css_classes=["hs-side-edited"])
        self.summary = md("", css_classes=["hs-compare-summary"])
        self.pred_a = md("", css_classes=["hs-pred-original"])
        self.pred_b = md("", css_classes=["hs-pred-edited"])
        self.probs = pn.Column(sizing_mode="stretch_width", css_classes=["hs-compare-probs"])
        self.layer_select = pn.widgets.Select(name="Layer", options=[],
                                              css_classes=["hs-compare-layer"])
        self.channel_select = pn.widgets.Select(name="Filter", options=[],
                                                css_classes=["hs-compare-channel"])
        self.listen_button = pn.widgets.Button(name="Listen to this filter (both)",
                                               css_classes=["hs-compare-listen"])
        self.maps = pn.Row(sizing_mode="stretch_width", css_classes=["hs-compare-maps"])
        self.diff_view = pn.Column(sizing_mode="stretch_width", css_classes=["hs-compare-diff"])
        self.distance_view = pn.Column(sizing_mode="stretch_width",
                                       css_classes=["hs-compare-distance"])
        self.layer_select.param.watch(lambda e: self._on_select(self._show_maps), "value")
        self.channel_select.param.watch(self._on_channel, "value")
        self.listen_button.on_click(lambda _: self._locked(self._listen))

    def _show_params(self, op: str) -> None:
        self.param_widgets = param_widgets(op)
        self.param_box.objects = list(self.param_widgets.values()) or [
            pn.pane.Markdown(f"*`{op}` has no parameters.*")]

    def current_params(self) -> dict:
        """The parameter widgets' values of the selected op."""
        return {k: w.value for k, w in self.param_widgets.items()}

    def _locked(self, fn, *args):
        with self._lock:
            return fn(*args)

    def _on_select(self, redraw) -> None:
        with self._lock:  # a refill (which holds the lock) redraws once itself
            if not self._syncing:
                redraw()

    def _on_channel(self, event) -> None:
        with self._lock:
            if not self._syncing:
                if event.new is not None:
                    self._picked = (self.layer_select.value, event.new)
                self._show_diff()

    def default_channel(self, layer: str) -> int:
        """The filter of conv ``layer`` whose difference map is shown until the user picks
        one: the most changed by the edits, the most active one while nothing changed
        (:func:`serve.analysis.most_changed_channel`)."""
        return most_changed_channel(self.analysis_a.acts[layer], self.analysis_b.acts[layer])

    def _refill(self, select, options: list, value) -> None:
        # Not param.discard_events: it also drops the sync to the browser's model.
        self._syncing = True
        try:
            select.param.update(options=options, value=value)
        finally:
            self._syncing = False

    # -- chain actions -----------------------------------------------------------------
    def add_edit(self, op: str | None = None, params: dict | None = None) -> bool:
        """Append ``{op, params}`` (default: the editor's widgets); errors go to the session."""
        op = self.op_select.value if op is None else op
        params = self.current_params() if params is None else params
        with self._lock:
            try:
                edit = validate_edit({"op": op, "params": params})
            except ValueError as exc:
                self.session.error(f"Edit not added: {exc}")
                return False
            if not self._recompute([*self.history.chain, edit], what="Edit not added"):
                return False
            self.history.push(edit)
            self._show_chain()
            return True

    def undo(self) -> None:
        self._move(self.history.undo)

    def redo(self) -> None:
        self._move(self.history.redo)

    def _move(self, step) -> None:
        with self._lock:
            if step() is not None:
                self._recompute(self.history.chain)
                self._show_chain()

    def reset(self) -> None:
        with self._lock:
            self.history = EditHistory()
            self._recompute([])
            self._show_chain()

    def load_chain(self, data: bytes | str) -> bool:
        """Replace the chain by a JSON file's (see :func:`data.edits.chain_to_json`)."""
        with self._lock:
            try:
                text = data.decode("utf-8") if isinstance(data, bytes) else data
                chain = chain_from_json(text, source=self.chain_upload.filename or "edit chain")
            except (UnicodeDecodeError, ValueError) as exc:
                self.session.error(f"Edit chain not loaded: {exc}")
                return False
            if not self._recompute(chain, what="Edit chain not loaded"):
                return False
            self.history = EditHistory(chain)
            self._show_chain()
            return True

    def _show_chain(self) -> None:
        self.chain_view.object = chain_markdown(self.history.chain)
        self.undo_button.disabled = not self.history.can_undo
        self.redo_button.disabled = not self.history.can_redo
        self._name_downloads()

    def _name_downloads(self) -> None:
        """Downloads named after the clip and its edits (not all ``edited.wav``)."""
        name = self.original.name if self.original is not None else "clip"
        self.wav_download.filename = download_name(name, self.history.chain)
        self.chain_download.filename = download_name(name, self.history.chain, ".chain.json")

    # -- downloads ---------------------------------------------------------------------
    def wav_file(self) -> io.BytesIO:
        """The edited clip as 16-bit WAV at the model's rate (empty before any clip)."""
        from data.audio import to_wav_bytes

        if self.edited is None:
            return io.BytesIO(b"")
        return io.BytesIO(to_wav_bytes(self.edited.wave, self.predictor.sample_rate))

    def chain_file(self) -> io.BytesIO:
        """The current chain as JSON (``chain_to_json``)."""
        return io.BytesIO(chain_to_json(self.history.chain).encode("utf-8"))

    # -- computing ---------------------------------------------------------------------
    def _on_clip(self, clip) -> None:
        with self._lock:
            self.original = clip
            self.analysis_a = self.session.analyse(clip.wave)
            self.header.object = f"### {clip.name}: original vs edited"
            self.side_a.objects = side_panes("Original", clip.wave, _picture(self.analysis_a),
                                             self.predictor, tag="original")
            if not self._recompute(self.history.chain):
                self._clear_edited()
            self._name_downloads()

    def _clear_edited(self) -> None:
        self.edited = self.analysis_b = None
        self.wav_download.disabled = True
        self.distances = {}
        self.length_note.visible = False
        for pane in (self.summary, self.pred_a, self.pred_b):
            pane.object = ""
        for box in (self.probs, self.maps, self.diff_view, self.distance_view):
            box.objects = []
        self.side_b.objects = [pn.pane.Markdown(
            "*The edit chain cannot be applied to this clip; undo or reset it.*")]

    def _recompute(self, chain: list[dict], *,
                   what: str = "The edit chain cannot be applied") -> bool:
        """Apply ``chain`` to the original and redraw the edited side; False on error."""
        if self.original is None:
            return True
        try:
            edited = edited_clip(self.original.wave, self.original.sample_rate, chain,
                                 n_samples=self.predictor.n_samples)
        except ValueError as exc:
            self.session.error(f"{what}: {exc}")
            return False
        self.edited, self.analysis_b = edited, self.session.analyse(edited.wave)
        self.wav_download.disabled = False
        self.length_note.object, self.length_note.visible = edited.note, bool(edited.note)
        self.side_b.objects = side_panes("Edited", edited.wave, _picture(self.analysis_b),
                                         self.predictor, tag="edited")
        self._show_predictions()
        self._show_distances()
        self._update_layers()
        return True

    # -- views -------------------------------------------------------------------------
    def _show_predictions(self) -> None:
        from viz.plots import compare_probability_bars

        labels = list(self.session.predictor.labels)
        pa, pb = self.analysis_a.probs, self.analysis_b.probs
        self.summary.object, self.pred_a.object, self.pred_b.object = prediction_lines(
            pa, pb, labels)
        self.probs.objects = [pn.pane.Bokeh(compare_probability_bars(
            pa, pb, labels, top=min(10, len(labels)), title="Class probabilities"))]

    def _show_distances(self) -> None:
        from viz.featuremaps import layer_distances

        self.distances = layer_distances(self.analysis_a.acts, self.analysis_b.acts)
        fig = distance_figure(self.distances)
        self.distance_view.objects = [] if fig is None else [pn.pane.Bokeh(fig)]

    @property
    def kinds(self) -> dict[str, str]:
        """``{layer: kind}`` of the edited clip's activations (every layer but the outputs)."""
        return {} if self.analysis_b is None else layer_kinds(self.predictor,
                                                               self.analysis_b.acts)

    def _update_layers(self) -> None:
        layers = list(self.kinds)
        keep = self.layer_select.value if self.layer_select.value in layers else None
        self._refill(self.layer_select, layers,
                     keep if keep is not None else next(iter(layers), None))  # redraw below
        if layers:
            self._show_maps()
        else:
            self.maps.objects = [pn.pane.Markdown("*This model exposes no layers.*")]
            self.diff_view.objects = []

    def _show_maps(self) -> None:
        layer = self.layer_select.value
        if layer is None or self.analysis_b is None:
            return
        kind = self.kinds[layer]
        figs = layer_figures(self.analysis_a.acts[layer], self.analysis_b.acts[layer], layer,
                             kind)
        self.maps.objects = [pn.pane.Bokeh(f) for f in figs]
        # Only a conv map has filters to pick; a time / sequence layer is compared and heard
        # whole, a vector has nothing to hear.
        n_ch = self.analysis_b.acts[layer].shape[2] if kind == "freq_time" else 0
        picked = self._picked if self._picked is not None and self._picked[0] == layer else None
        if not n_ch:
            value = None
        elif picked is not None and picked[1] in range(n_ch):
            value = picked[1]
        else:
            value = self.default_channel(layer)
        self._refill(self.channel_select, list(range(n_ch)), value)
        self.channel_select.disabled = not n_ch
        self.listen_button.disabled = kind == "vector"
        self.listen_button.name = ("Listen to this filter (both)" if n_ch else
                                   "Listen to this layer (both)")
        self._show_diff()  # once, after the refill

    def _fmaps(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The compared pair of ``(rows, time)`` images of the chosen layer (and filter),
        original first; None before a clip, and for a vector layer."""
        layer, ch = self.layer_select.value, self.channel_select.value
        if layer is None or self.analysis_b is None:
            return None
        kind = self.kinds.get(layer)
        if kind == "vector" or kind is None or (kind == "freq_time" and ch is None):
            return None
        return tuple(layer_image(a.acts[layer], kind, ch)
                     for a in (self.analysis_a, self.analysis_b))

    def _show_diff(self) -> None:
        layer = self.layer_select.value
        if layer is None or self.analysis_b is None:
            return
        kind = self.kinds[layer]
        if kind == "freq_time":
            if self.channel_select.value is None:
                return
            what = f"{layer} · filter {self.channel_select.value}"
        else:
            what = layer
        pair = self._fmaps() or (self.analysis_a.acts[layer], self.analysis_b.acts[layer])
        if kind != "vector" and all(is_silent(m) for m in pair):
            self.diff_view.objects = [pn.pane.Markdown(self._silent_text(layer, kind, pair[1]),
                                                       css_classes=["hs-compare-silent"])]
            return
        self.diff_view.objects = [pn.pane.Bokeh(difference_figure(
            *pair, title=f"{what}: edited − original"))]

    def _silent_text(self, layer: str, kind: str, fmap) -> str:
        """The line shown instead of a flat difference map: the chosen filter (or layer) is
        silent for the original and the edited clip."""
        from serve.text import esc

        if kind != "freq_time":
            return silent_note(f"<b>{esc(layer)}</b>", fmap, noun="layer") + " (original and edited)"
        ch, acts = self.channel_select.value, self.analysis_b.acts[layer]
        best = most_active_channel(acts)
        live = best != ch and not is_silent(acts[:, :, best])
        return (silent_note(f"<b>{esc(layer)} · filter {ch}</b>", fmap, best=best if live else None)
                + " (original and edited)")

    def _listen(self) -> None:
        maps = self._fmaps()
        if maps is None or all(is_silent(m) for m in maps):  # silent: the page says so
            return
        self.diff_view.objects = [*self.diff_view.objects[:1],
                                  pn.Row(*filter_players(maps, self.predictor))]

    def view(self):
        return page_layout(self)


def _picture(a) -> np.ndarray:
    """The input picture of analysis ``a`` (the features themselves for an older Analysis)."""
    return a.features if a.picture is None else a.picture
