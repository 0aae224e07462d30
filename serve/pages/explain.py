"""Explain: what in the model's input made it decide, and is that explanation faithful?

For the current clip and a target class (default: the predicted one) the page computes
saliency, gradient × input, integrated gradients, SmoothGrad, Grad-CAM and occlusion (seed 004's
list) side by side; plays what a method keeps (the top p % of its cells, the rest silenced,
heard through ``predictor.hear``); draws deletion and insertion curves against a random order
(Petsiuk et al. 2018); and ranks a layer's channels by ablation, where ticking a channel off
re-runs the model live.

Any model behind the contract: the maps are attributions with respect to the model's own
input. A feature model's (hearsight's, AST's, Whisper's) are drawn on its features; a waveform
model's are over samples and drawn on the clip's spectrogram (``analysis.picture``) as the
attribution per 10 ms frame, spread over that frame's spectrum by energy
(:func:`engine.attribution.waveform_attribution_picture`); its "cells" are 10 ms segments.
A method or layer that cannot run on the model is left out and the page says why.

Maps, curves and the ranking run in a worker thread (the progress note says which method is
running); a newer request makes an older run drop its results. ``wait()`` joins the thread.
"""

from __future__ import annotations

import threading

import numpy as np
import panel as pn

from engine.ablation import class_probs, masked_probs
from engine.attribution import BASELINES, METHODS
from engine.attribution.options import explain_layers, method_options, model_fns
from serve.pages import explain_parts as EP
from serve.text import esc

N_STEPS = 21  # points of each deletion / insertion curve


class ExplainPage:
    """The Explain tab of one session (needs ``predictor.acts_fn``, see engine.attribution)."""

    def __init__(self, session):
        self.session, self.params = session, session.params
        predictor = self.predictor = session.predictor
        self.acts_fn, self.logits_fn = model_fns(predictor)
        self.labels = list(predictor.labels)
        self.x = self.probs = self.ranking = self.kept_spec = self.ablated_probs = None
        self.kept_input = self.picture = None
        self.maps: dict[str, np.ndarray] = {}
        self.pictures: dict[str, np.ndarray] = {}
        self.results: dict = {}
        self._gen, self._thread, self._lock = 0, None, threading.RLock()
        self._syncing = False  # True while a widget is refilled: the watchers skip
        self.waveform = predictor.input_kind == "waveform"
        self.shape = tuple(predictor.input_shape)
        self.floor = float(predictor.floor)
        self.silence = np.asarray(predictor.baseline_input(), np.float32)
        self.picture_params = predictor.picture_params
        # 10 ms segments of a waveform: the picture's frames (its hop).
        self.segment = int(self.picture_params.hop_length) if self.waveform else None
        self.conv_layers, self.hidden_layers = ([], {}) if self.acts_fn is None else \
            explain_layers(self.acts_fn, self.shape, _layer_kinds(predictor))
        self.hidden_methods = {} if self.conv_layers else {
            "grad_cam": "the model has no layer over time or frequency × time"}
        self.methods = tuple(m for m in METHODS if m not in self.hidden_methods)
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
                                        step=8, value=64 if self.waveform else 32,
                                        css_classes=["hs-explain-steps"])
        # A waveform's zeros are its silence: one entry, not two that agree.
        baselines = [b for b in BASELINES if not (self.waveform and b == "zeros")]
        self.baseline_select = w.Select(name="Baseline", options=baselines,
                                        value="silence", css_classes=["hs-explain-baseline"])
        last = self.conv_layers[-1] if self.conv_layers else None
        self.layer_select = w.Select(name="Grad-CAM layer", options=self.conv_layers,
                                     value=last, css_classes=["hs-explain-layer"])
        self.progress = md("", css_classes=["hs-explain-progress"])
        self.about = md(self._about(), css_classes=["hs-explain-about"])
        self.completeness = md("", css_classes=["hs-explain-completeness"])
        # A waveform model's maps are drawn on the clip's picture: it is shown beside them.
        self.input_view = pn.Column(sizing_mode="stretch_width", visible=self.waveform,
                                    css_classes=["hs-explain-input"])
        self._build_views(last)

    def _about(self) -> str:
        """What the maps are for this model kind, and what is left out and why."""
        lines = []
        if self.waveform:
            ms = 1000.0 * self.segment / self.predictor.sample_rate
            lines.append(
                f"The model hears the waveform itself: every map is an attribution to its "
                f"samples, drawn on the clip's spectrogram as the *attribution per {ms:g} ms "
                f"frame, spread over that frame's spectrum by energy* (a frame's cells sum to "
                f"its samples' attribution, so the picture sums to the map). Grad-CAM is a map "
                f"over time: its mean per frame, the same in every row. Saliency and SmoothGrad "
                f"are gradient magnitudes (a signed gradient oscillates with the wave); "
                f"integrated gradients spaces its steps evenly in log α: waveform models "
                f"commonly normalise each clip (wav2vec2 does) and then change their answer "
                f"only very near silence on the path from it. "
                f"Cells are {ms:g} ms segments; removed ones become silence (0).")
        elif self.picture_params is None:
            lines.append("Every map is an attribution to the model's own input features, "
                         "drawn on them (rows at their frequencies).")
        for m, why in self.hidden_methods.items():
            lines.append(f"{EP.METHOD_TITLES[m]} is left out: {why}.")
        if self.hidden_layers:
            by_reason: dict[str, list[str]] = {}
            for name, why in self.hidden_layers.items():
                by_reason.setdefault(why, []).append(name)
            for why, names in by_reason.items():
                lines.append(f"Layers {', '.join(names)} are not offered to Grad-CAM and "
                             f"ablation: {why}.")
        return "\n\n".join(lines)

    def _build_views(self, last: str | None) -> None:
        md, w = pn.pane.Markdown, pn.widgets
        self.maps_box = pn.GridBox(ncols=3, sizing_mode="stretch_width",
                                   css_classes=["hs-explain-maps"])
        self.listen_select = w.Select(name="Listen to the map of", options=[],
                                      css_classes=["hs-explain-listen-method"])
        cells = f"{self._unit()}" if self.waveform else "cells"
        self.percent_slider = w.IntSlider(name=f"Keep top % of {cells}", start=1, end=100,
                                          value=20, css_classes=["hs-explain-percent"])
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

    def _unit(self) -> str:
        """What a waveform's cells are: the picture's frames, ``"10 ms segments"``."""
        return f"{1000.0 * self.segment / self.predictor.sample_rate:g} ms segments"

    # -- computing ---------------------------------------------------------------------
    def _on_clip(self, clip) -> None:
        if self.acts_fn is None:
            return
        a = self.session.analyse(clip.wave)
        with self._lock:
            self.x = np.asarray(a.features, np.float32)
            self.picture = np.asarray(a.picture, np.float32)
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

    def _baseline(self):
        """The baseline the menu names: silence is the model input of a silent clip."""
        choice = self.baseline_select.value
        return self.silence if choice == "silence" else choice

    def _compute(self, gen: int) -> None:
        x, target, methods = self.x, int(self.target_select.value), self.methods
        opts = method_options(x.shape, steps=self.steps_slider.value, baseline=self._baseline(),
                              layer=self.layer_select.value, floor=self.floor,
                              segment=self.segment)
        try:
            maps = EP.compute_maps(self.acts_fn, self.logits_fn, x, target, methods=methods,
                                   options=opts, on_method=lambda i, m: self._note(
                                       gen, f"Computing {EP.METHOD_TITLES[m]} "
                                       f"({i + 1}/{len(methods)}) …"))
            pictures = {m: EP.map_picture(m, a, x, self.picture_params) for m, a in maps.items()}
            complete = self._completeness(x, target, maps, opts)
            self._note(gen, "Computing deletion and insertion curves …")
            results = EP.faithfulness_curves(
                self.logits_fn, x, target, maps, floor=self.floor, n_steps=N_STEPS,
                baseline="silence" if self.waveform else self.silence, segment=self.segment)
            self._note(gen, "Ranking channels by ablation …")
            ranking = self._rank(x, target)
        except ValueError as exc:
            self.session.error(f"Explain: {exc}")
            self._note(gen, "")
            return
        with self._lock:
            if gen != self._gen:
                return  # a newer request superseded this one
            self.maps, self.pictures, self.results, self.ranking = maps, pictures, results, ranking
            self.completeness.object = complete
            self._show_all()
            self.progress.object = ""

    def _completeness(self, x: np.ndarray, target: int, maps: dict, opts: dict) -> str:
        """Integrated gradients' check: its sum against f(x) − f(baseline), target logit."""
        if "integrated_gradients" not in maps:
            return ""
        from engine.attribution import make_baseline

        o = opts["integrated_gradients"]
        base = np.asarray(make_baseline(x[None], o["baseline"], floor=o["floor"]))
        both = EP.logits_of(self.logits_fn, np.concatenate([x[None], base]))
        gap = float(both[0, target] - both[1, target])
        total = float(np.sum(maps["integrated_gradients"], dtype=np.float64))
        return (f"Integrated gradients sums to **{total:.4g}**; the target logit's change from "
                f"the baseline is **{gap:.4g}** (completeness: the two agree as the steps "
                f"grow).")

    def _rank(self, x: np.ndarray, target: int):
        from engine.ablation import rank_channels

        layer = self.ablation_layer.value
        if layer is None:
            return None
        order, drop = rank_channels(self.acts_fn, x[None], target, layer=layer)
        return layer, EP.ablation_frame(np.asarray(order), np.asarray(drop))

    # -- views -------------------------------------------------------------------------
    def _show_all(self) -> None:
        if self.waveform:
            pp = self.picture_params
            self.input_view.objects = [pn.pane.Bokeh(self._plot(
                self.picture, title="The clip: the picture the maps are drawn on",
                palette="Inferno256", value_range=(float(pp.floor), 0.0),
                value_label="log10 magnitude"))]
        self._show_maps()
        keep = self.listen_select.value
        self._refill(self.listen_select, options={EP.METHOD_TITLES[m]: m for m in self.maps},
                     value=keep if keep in self.maps else next(iter(self.maps)))
        self._show_kept()
        unit = self._unit() if self.waveform else "cells"
        self.curves_box.objects = [
            pn.pane.Bokeh(EP.curve_chart(self.results, mode=m, unit=unit),
                          css_classes=[f"hs-explain-{m}"])
            for m in ("deletion", "insertion")]
        self._show_ablation()

    def _show_maps(self) -> None:
        figs = []
        for name, a in self.pictures.items():
            lim = float(np.max(np.abs(a))) or 1.0
            signed = name not in ("grad_cam",) and float(a.min()) < 0
            figs.append(pn.pane.Bokeh(self._plot(
                a, title=EP.METHOD_TITLES[name], palette="coolwarm" if signed else "Viridis256",
                value_range=(-lim, lim) if signed else None, value_label="attribution"),
                css_classes=["hs-explain-map", f"hs-explain-map-{name}"]))
        self.maps_box.objects = figs

    def _plot(self, picture: np.ndarray, *, title: str, palette: str, value_range,
              value_label: str, linear_axes: bool = False):
        """A picture-shaped array: on the model's picture rows (their frequencies) for a model
        behind the contract that is not hearsight's own features; else as before (bins and
        frames, or seconds and Hz with ``linear_axes``)."""
        if self.waveform or self.picture_params is None:
            from viz.picture import picture_plot

            return picture_plot(picture, self.predictor.picture_frequencies(),
                                duration_s=self.predictor.n_samples / self.predictor.sample_rate,
                                title=title, palette=palette, value_range=value_range,
                                height=240, value_label=value_label)
        from viz.plots import spectrogram_plot

        p = self.params
        return spectrogram_plot(
            picture, sample_rate=p.sample_rate if linear_axes else None,
            hop_length=p.hop_length if linear_axes else None, title=title, height=240,
            palette=palette, value_range=value_range, value_label=value_label,
            x_ticks=None if linear_axes else 4)

    def _show_kept(self) -> None:
        method = self.listen_select.value
        if method not in self.maps:
            return
        pct = self.percent_slider.value
        kept = EP.keep_top(self.x, self.maps[method], percent=pct,
                           floor=self.floor if self.waveform else self.silence,
                           segment=self.segment)
        self.kept_input = kept
        self.audio.object = np.asarray(self.predictor.hear(kept[None])[0], np.float32)
        self.audio.visible = True
        # What is drawn: the kept input's picture (for feature inputs, the input itself).
        self.kept_spec = np.asarray(self.predictor.picture(kept[None])[0])
        cells = self._unit() if self.waveform else "cells"
        pp = self.picture_params  # hearsight's own picture: log10 magnitude, floor to 0
        self.kept_view.objects = [pn.pane.Bokeh(self._plot(
            self.kept_spec, title=f"What {EP.METHOD_TITLES[method]} keeps: top {pct} % of "
            f"{cells}", palette="Inferno256",
            value_range=(float(pp.floor), 0.0) if pp is not None else None,
            value_label="log10 magnitude" if pp is not None else "input", linear_axes=True))]

    def _show_ablation(self) -> None:
        if self.ranking is None:
            self.ablation_note.object = (
                "*This model has no convolutional layers to ablate.*" if not self.hidden_layers
                else "*This model has no layer over time or frequency × time to ablate.*")
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
            self.header, controls, self.progress, "#### Attribution maps", self.about,
            self.input_view, self.maps_box, self.completeness,
            "#### Listen to what it keeps", pn.Row(self.listen_select, self.percent_slider),
            self.audio, self.kept_view,
            "#### Faithfulness: deletion and insertion against a random order", self.curves_box,
            "#### Unit ablation (untick a channel to switch it off)", self.ablation_layer,
            pn.Row(self.table, pn.Column(self.ablation_note, self.ablation_probs)),
            sizing_mode="stretch_width")


def _layer_kinds(predictor) -> dict[str, str] | None:
    """``{layer: kind}`` of a model behind the contract (``models.contract`` kinds); None for
    hearsight's own models, whose Grad-CAM layers are their conv maps."""
    kind = getattr(predictor, "layer_kind", None)
    if kind is None:
        return None
    return {name: kind(name) for name in predictor.layer_names}
