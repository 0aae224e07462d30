"""Explain: what in the spectrogram made the model decide, and is that explanation faithful?

For the current clip and a target class (default: the predicted one) the page computes
saliency, gradient × input, integrated gradients, SmoothGrad, Grad-CAM and occlusion (seed 004's
list) side by side; plays what a method keeps (the top p % of its cells, the rest silenced, by
Griffin-Lim); draws deletion and insertion curves against a random order (Petsiuk et al. 2018);
and ranks a conv layer's channels by ablation, where ticking a channel off re-runs the model live.

Maps, curves and the ranking run in a worker thread (the progress note says which method is
running); a newer request makes an older run drop its results. ``wait()`` joins the thread.
"""

from __future__ import annotations

import threading

import numpy as np
import panel as pn

from engine.ablation import class_probs, masked_probs
from engine.attribution import BASELINES, METHODS
from engine.attribution.options import conv_layer_names, method_options, model_fns
from serve.pages import explain_parts as EP
from serve.text import esc

N_STEPS = 21  # points of each deletion / insertion curve


class ExplainPage:
    """The Explain tab of one session (needs ``predictor.acts_fn``, see engine.attribution)."""

    def __init__(self, session):
        self.session, self.params = session, session.params
        self.acts_fn, self.logits_fn = model_fns(session.predictor)
        self.labels = list(session.predictor.labels)
        self.x = self.probs = self.ranking = self.kept_spec = self.ablated_probs = None
        self.maps: dict[str, np.ndarray] = {}
        self.results: dict = {}
        self._gen, self._thread, self._lock = 0, None, threading.RLock()
        self._syncing = False  # True while a widget is refilled: the watchers skip
        self.conv_layers = (conv_layer_names(self.acts_fn, self.params.shape)
                            if self.acts_fn is not None else [])
        self._build_widgets()
        session.on_clip(self._on_clip)
        if session.clip is not None:
            self._on_clip(session.clip)

    # -- widgets -----------------------------------------------------------------------
    def _build_widgets(self) -> None:
        md, w = pn.pane.Markdown, pn.widgets
        ok = self.acts_fn is not None
        self.header = md("### Bring audio in from the sidebar to explain the prediction." if ok
                         else "### This model does not expose `acts_fn`; nothing to explain.",
                         css_classes=["hs-explain-header"])
        self._clip_name, self._top = "", 0
        self.target_select = w.Select(name="Target class", options={}, css_classes=["hs-explain-target"])
        self.steps_slider = w.IntSlider(name="Integrated-gradients steps", start=8, end=128,
                                        step=8, value=32, css_classes=["hs-explain-steps"])
        self.baseline_select = w.Select(name="Baseline", options=list(BASELINES),
                                        value="silence", css_classes=["hs-explain-baseline"])
        last = self.conv_layers[-1] if self.conv_layers else None
        self.layer_select = w.Select(name="Grad-CAM layer", options=self.conv_layers,
                                     value=last, css_classes=["hs-explain-layer"])
        self.progress = md("", css_classes=["hs-explain-progress"])
        self._build_views(last)

    def _build_views(self, last: str | None) -> None:
        md, w = pn.pane.Markdown, pn.widgets
        self.maps_box = pn.GridBox(ncols=3, sizing_mode="stretch_width",
                                   css_classes=["hs-explain-maps"])
        self.listen_select = w.Select(name="Listen to the map of", options=[],
                                      css_classes=["hs-explain-listen-method"])
        self.percent_slider = w.IntSlider(name="Keep top % of cells", start=1, end=100, value=20,
                                          css_classes=["hs-explain-percent"])
        self.kept_view = pn.Column(sizing_mode="stretch_width", css_classes=["hs-explain-kept"])
        self.audio = pn.pane.Audio(None, sample_rate=self.params.sample_rate, name="kept",
                                   css_classes=["hs-explain-audio"], visible=False)
        self.curves_box = pn.Row(sizing_mode="stretch_width", css_classes=["hs-explain-curves"])
        self.ablation_layer = w.Select(name="Ablation layer", options=self.conv_layers,
                                       value=last, css_classes=["hs-explain-ablation-layer"])
        self.table = w.Tabulator(None, show_index=False, height=320, disabled=False,
                                 editors={"rank": None, "channel": None, "drop": None},
                                 css_classes=["hs-explain-ablation"], width=360)
        self.ablation_note = md("", css_classes=["hs-explain-ablation-note"])
        self.ablation_probs = pn.Column(sizing_mode="stretch_width",
                                        css_classes=["hs-explain-ablation-probs"])
        self._watch()

    def _watch(self) -> None:
        for widget in (self.target_select, self.steps_slider, self.baseline_select,
                       self.layer_select, self.ablation_layer):
            widget.param.watch(lambda e: None if self._syncing else self.start(), "value")
        for widget in (self.listen_select, self.percent_slider):
            widget.param.watch(lambda e: self._guard(self._show_kept), "value")
        self.table.param.watch(lambda e: self._guard(self._apply_ablation), "value")
        self.table.on_edit(lambda e: self._guard(self._apply_ablation))

    def _guard(self, fn) -> None:
        try:
            with self._lock:
                if not self._syncing:  # a refill redraws once itself
                    fn()
        except ValueError as exc:
            self.session.error(f"Explain: {exc}")

    def _refill(self, widget, **values) -> None:
        """Set ``widget``'s parameters without running this page's watchers (call with the
        lock held). Not ``param.discard_events``: that also drops the sync to the browser's
        model, which then kept stale or empty menus."""
        self._syncing = True
        try:
            widget.param.update(**values)
        finally:
            self._syncing = False

    # -- computing ---------------------------------------------------------------------
    def _on_clip(self, clip) -> None:
        if self.acts_fn is None:
            return
        a = self.session.analyse(clip.wave)
        with self._lock:
            self.x = np.asarray(a.features, np.float32)
            self.probs = class_probs(self.acts_fn, self.x)
            self._clip_name, self._top = clip.name, int(a.top)
            self._refill(self.target_select,  # one start() below
                         options={lab: i for i, lab in enumerate(self.labels)},
                         value=int(np.argmax(self.probs)))
        self.start()

    def _title(self, target: int) -> str:
        """The header asks about the class the maps explain: the target, not the top class."""
        name = esc(self._clip_name)
        if target == self._top:
            return f"### {name}: why **{esc(self.labels[target])}**?"
        return (f"### {name}: why **{esc(self.labels[target])}**? "
                f"(the model says {esc(self.labels[self._top])})")

    def start(self) -> None:
        """Recompute maps, curves and the ablation ranking in a worker thread."""
        if self.x is None or self.acts_fn is None:
            return
        with self._lock:
            self.header.object = self._title(int(self.target_select.value))
            self._gen += 1
            self._thread = threading.Thread(target=self._compute, args=(self._gen,), daemon=True)
            self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the latest computation has finished (tests, scripts)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _note(self, gen: int, text: str) -> None:
        if gen == self._gen:
            self.progress.object = text

    def _compute(self, gen: int) -> None:
        x, target = self.x, int(self.target_select.value)
        opts = method_options(x.shape, steps=self.steps_slider.value,
                                 baseline=self.baseline_select.value,
                                 layer=self.layer_select.value, floor=self.params.floor)
        try:
            maps = EP.compute_maps(self.acts_fn, self.logits_fn, x, target, methods=METHODS,
                                   options=opts, on_method=lambda i, m: self._note(
                                       gen, f"Computing {EP.METHOD_TITLES[m]} "
                                       f"({i + 1}/{len(METHODS)}) …"))
            self._note(gen, "Computing deletion and insertion curves …")
            results = EP.faithfulness_curves(self.logits_fn, x, target, maps,
                                             floor=self.params.floor, n_steps=N_STEPS)
            self._note(gen, "Ranking channels by ablation …")
            ranking = self._rank(x, target)
        except ValueError as exc:
            self.session.error(f"Explain: {exc}")
            self._note(gen, "")
            return
        with self._lock:
            if gen != self._gen:
                return  # a newer request superseded this one
            self.maps, self.results, self.ranking = maps, results, ranking
            self._show_all()
            self.progress.object = ""

    def _rank(self, x: np.ndarray, target: int):
        from engine.ablation import rank_channels

        layer = self.ablation_layer.value
        if layer is None:
            return None
        order, drop = rank_channels(self.acts_fn, x[None], target, layer=layer)
        return layer, EP.ablation_frame(np.asarray(order), np.asarray(drop))

    # -- views -------------------------------------------------------------------------
    def _show_all(self) -> None:
        self._show_maps()
        keep = self.listen_select.value
        self._refill(self.listen_select, options={EP.METHOD_TITLES[m]: m for m in self.maps},
                     value=keep if keep in self.maps else next(iter(self.maps)))
        self._show_kept()
        self.curves_box.objects = [
            pn.pane.Bokeh(EP.curve_chart(self.results, mode=m), css_classes=[f"hs-explain-{m}"])
            for m in ("deletion", "insertion")]
        self._show_ablation()

    def _show_maps(self) -> None:
        from viz.plots import spectrogram_plot

        figs = []
        for name, a in self.maps.items():
            lim = float(np.max(np.abs(a))) or 1.0
            signed = name not in ("grad_cam",) and float(a.min()) < 0
            figs.append(pn.pane.Bokeh(spectrogram_plot(
                a, sample_rate=None, title=EP.METHOD_TITLES[name], height=240,
                palette="coolwarm" if signed else "Viridis256",
                value_range=(-lim, lim) if signed else None, value_label="attribution",
                x_ticks=4),
                css_classes=["hs-explain-map", f"hs-explain-map-{name}"]))
        self.maps_box.objects = figs

    def _show_kept(self) -> None:
        from viz.plots import spectrogram_plot

        method = self.listen_select.value
        if method not in self.maps:
            return
        p, pct = self.params, self.percent_slider.value
        spec = EP.keep_top(self.x, self.maps[method], percent=pct, floor=p.floor)
        self.kept_spec = spec
        self.audio.object = EP.kept_audio(self.x, self.maps[method], p, percent=pct)
        self.audio.visible = True
        self.kept_view.objects = [pn.pane.Bokeh(spectrogram_plot(
            spec, sample_rate=p.sample_rate, hop_length=p.hop_length, height=240,
            title=f"What {EP.METHOD_TITLES[method]} keeps: top {pct} % of cells",
            value_range=(p.floor, 0.0), value_label="log10 magnitude"))]

    def _show_ablation(self) -> None:
        if self.ranking is None:
            self.ablation_note.object = "*This model has no convolutional layers to ablate.*"
            return
        self._refill(self.table, value=self.ranking[1].copy())
        self._apply_ablation()

    def channels_on(self) -> np.ndarray:
        """``(channels,)`` bool in channel order: the table's ``on`` column."""
        df = self.table.value
        on = np.ones(len(df), bool)
        on[df["channel"].to_numpy(int)] = df["on"].to_numpy(bool)
        return on

    def _apply_ablation(self) -> None:
        from viz.plots import compare_probability_bars

        if self.ranking is None or self.table.value is None:
            return
        on = self.channels_on()
        self.ablated_probs = masked_probs(self.acts_fn, self.x, layer=self.ranking[0], on=on)
        off = np.flatnonzero(~on).tolist()
        top = int(np.argmax(self.ablated_probs))
        self.ablation_note.object = (
            f"**{self.ranking[0]}**, channels off: {off or 'none'} → "
            f"**{self.labels[top]}** ({self.ablated_probs[top]:.1%})")
        self.ablation_probs.objects = [pn.pane.Bokeh(compare_probability_bars(
            self.probs, self.ablated_probs, self.labels, names=("original", "ablated"),
            top=min(10, len(self.labels)), title="Class probabilities, live"))]

    def view(self):
        controls = pn.Row(self.target_select, self.steps_slider, self.baseline_select,
                          self.layer_select, sizing_mode="stretch_width")
        return pn.Column(
            self.header, controls, self.progress, "#### Attribution maps", self.maps_box,
            "#### Listen to what it keeps", pn.Row(self.listen_select, self.percent_slider),
            self.audio, self.kept_view,
            "#### Faithfulness: deletion and insertion against a random order", self.curves_box,
            "#### Unit ablation (untick a channel to switch it off)", self.ablation_layer,
            pn.Row(self.table, pn.Column(self.ablation_note, self.ablation_probs)),
            sizing_mode="stretch_width")
