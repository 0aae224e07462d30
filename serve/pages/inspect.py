"""Inspect: waveform, spectrogram, every class's probability, every filter of every layer
(tap one to enlarge and hear it), dense activations, weight histograms and layer shapes."""

from __future__ import annotations

from functools import partial

import numpy as np
import panel as pn

from serve.analysis import conv_layers, sonify
from serve.config import FEATURE_MAP_AUDIO_ITERS
from serve.jobs import one_walk
from serve.text import esc, live_text


def dense_layers(acts: dict) -> list[str]:
    return [k for k, v in acts.items() if np.ndim(v) == 1 and k not in ("probs",)]


class InspectPage:
    """The Inspect tab of one session."""

    def __init__(self, session):
        self.session = session
        self.params = session.params
        self.header = live_text("<h3>Bring audio in from the sidebar to inspect it.</h3>",
                                css_class="hs-inspect-header")
        self.player = pn.pane.Audio(None, sample_rate=self.params.sample_rate, name="clip",
                                    css_classes=["hs-clip-audio"], visible=False)
        self.signal = pn.Row(sizing_mode="stretch_width")
        self.probs = pn.Column(sizing_mode="stretch_width", css_classes=["hs-probs"])
        self.maps = pn.Column(sizing_mode="stretch_width")
        self.filter_select = pn.widgets.Select(name="Filter (layer · channel)", options=[],
                                               css_classes=["hs-filter-select"])
        self.filter_view = pn.Column(sizing_mode="stretch_width", css_classes=["hs-filter-view"])
        self.dense = pn.Column(sizing_mode="stretch_width")
        # The model's table and weight histograms are the same for every clip and take a
        # third of a new session's page (~250 Bokeh models, 0.3 s to build): they are built
        # when first shown. (Not a collapsed Card: a grid of figures built inside one drew at
        # zero width.)
        self.model_toggle = pn.widgets.Toggle(name=self._model_title(), button_type="light",
                                              css_classes=["hs-model-toggle"])
        self.model_body = pn.Column(sizing_mode="stretch_width", visible=False)
        self.model_view = pn.Column(self.model_toggle, self.model_body,
                                    sizing_mode="stretch_width", css_classes=["hs-model-view"])
        self.analysis = None
        self._figs: dict = {}          # figures of the current clip, refreshed in place
        self._filter_fig = self._filter_text = self._filter_audio = self._filter_for = None
        self.filter_select.param.watch(self._on_filter, "value")
        session.on_clip(self._on_clip)
        self.model_toggle.param.watch(self._on_model_toggle, "value")

    # -- building ----------------------------------------------------------------------
    def _on_clip(self, clip) -> None:
        from serve.jobs import session_runner

        a = self.session.analyse(clip.wave)
        # The chosen filter's sound (Griffin-Lim, ~10 ms) is made here, in Panel's worker
        # thread, so the event loop every session shares only swaps data.
        sound = self._filter_sound(a, self.filter_select.value)
        # Figures are changed in place, which a served page must do on the document's event
        # loop: changes made from Panel's callback threads reach the browser only for the
        # models Panel manages (header, panes), not for a figure's column data.
        session_runner(self.session).push(partial(self._show_clip, clip, a, sound))

    def _filter_sound(self, a, choice):
        """``(a, choice, audio)``: the sonification of filter ``choice = (layer, channel)`` of
        analysis ``a``, or None when ``a`` has no such layer."""
        if choice is None or choice[0] not in a.acts:
            return None
        return a, tuple(choice), sonify(a.acts[choice[0]][:, :, choice[1]], self.params)

    def _show_clip(self, clip, a, sound=None) -> None:
        if self.session.clip is not clip:  # a newer clip came in meanwhile: it will be shown
            return
        self.analysis = a
        top = self.session.predictor.labels[a.top]
        self.header.value = (f"<h3>{esc(clip.name)} → <b>{esc(top)}</b> "
                             f"({a.probs[a.top]:.1%})</h3>")
        self.player.object = np.clip(clip.wave, -0.99, 0.99)
        self.player.visible = True
        # Every clip of a model has the same shapes, so after the first one the figures stay
        # and only their data changes (a small patch instead of a dozen new figures).
        if not (self._figs and self._refresh(clip, a)):
            self._figs = {}
            with one_walk():
                self._build_signal(clip, a)
                self._build_maps(a)
                self._build_dense(a)
        current = self.filter_select.value  # keep the chosen filter, now for this clip
        if current is not None and current[0] in a.acts and self._filter_for is not a:
            self._show_filter(*current, sound=sound)

    def _refresh(self, clip, a) -> bool:
        from viz.featuremaps import mosaic
        from viz.refresh import (refresh_dense_bars, refresh_image, refresh_probability_bars,
                                 refresh_waveform)

        figs, labels = self._figs, self.session.predictor.labels
        if set(figs) != {"wave", "spec", "probs", *(("map", k) for k in conv_layers(a.acts)),
                         *(("dense", k) for k in dense_layers(a.acts) if k != "logits")}:
            return False
        ok = (refresh_waveform(figs["wave"], clip.wave, self.params.sample_rate)
              and refresh_image(figs["spec"], a.features)
              and refresh_probability_bars(figs["probs"], a.probs, labels,
                                           title=f"Class probabilities — top: {labels[a.top]}"))
        for key, fig in figs.items():
            if ok and key[0] == "map":
                ok = refresh_image(fig, mosaic(a.acts[key[1]])[0])
            elif ok and key[0] == "dense":
                ok = refresh_dense_bars(fig, a.acts[key[1]])
        return ok

    def _build_signal(self, clip, a) -> None:
        from viz.plots import probability_bars, spectrogram_plot, waveform_plot

        p, labels = self.params, self.session.predictor.labels
        self._figs["wave"] = waveform_plot(clip.wave, p.sample_rate, height=220)
        self._figs["spec"] = spectrogram_plot(
            a.features, sample_rate=p.sample_rate, hop_length=p.hop_length,
            title="Log spectrogram (model input)", value_range=(p.floor, 0.0), height=220,
            value_label="log10 magnitude")
        self._figs["probs"] = probability_bars(a.probs, labels,
                                               title=f"Class probabilities — top: {labels[a.top]}")
        self.signal.objects = [pn.pane.Bokeh(self._figs["wave"]), pn.pane.Bokeh(self._figs["spec"])]
        self.probs.objects = [pn.pane.Bokeh(self._figs["probs"])]

    def _build_maps(self, a) -> None:
        from viz.featuremaps import feature_map_mosaic

        cards, options = [], {}
        for layer in conv_layers(a.acts):
            acts = a.acts[layer]
            fig, layout = feature_map_mosaic(acts, title=f"{layer}: {acts.shape[2]} filters "
                                             f"of {acts.shape[0]}×{acts.shape[1]}", height=300)
            fig.on_event("tap", self._tap_handler(layer, layout))
            self._figs[("map", layer)] = fig
            # The css class goes on a wrapper: a Bokeh pane renders the figure itself and
            # drops its own css_classes, so tests and styles could not find the mosaic.
            cards.append(pn.Column(pn.pane.Bokeh(fig), css_classes=[f"hs-mosaic-{layer}"],
                                   sizing_mode="stretch_width"))
            options.update({f"{layer} · {c}": (layer, c) for c in range(acts.shape[2])})
        self.maps.objects = [pn.pane.Markdown(
            "#### Feature maps — every filter of every layer (tap one to enlarge and listen)"),
            pn.GridBox(*cards, ncols=2, sizing_mode="stretch_width")]
        if options != self.filter_select.options:
            self.filter_select.options = options  # selects the first filter, which is then shown

    def _tap_handler(self, layer, layout):
        def handler(event):
            ch = layout.channel_at(event.x, event.y)
            if ch is not None:
                self.filter_select.value = (layer, ch)
        return handler

    def _on_filter(self, event) -> None:
        from serve.jobs import session_runner

        a = self.analysis
        if event.new is not None and a is not None:
            session_runner(self.session).push(partial(
                self._show_filter, *event.new, sound=self._filter_sound(a, event.new)))

    def _show_filter(self, layer: str, channel: int, *, sound=None) -> None:
        """Show filter ``channel`` of ``layer`` for the current clip, with its sound when
        ``sound`` (from :meth:`_filter_sound`) was made for them (else it is made here)."""
        from viz.plots import spectrogram_plot
        from viz.refresh import refresh_image

        a = self._filter_for = self.analysis
        fmap = a.acts[layer][:, :, channel]
        audio = None
        if sound is not None and sound[0] is a and sound[1] == (layer, channel):
            audio = sound[2]
        if audio is None:
            audio = sonify(fmap, self.params)
        title = f"{layer} · filter {channel}"
        text = (f"Sonification of <b>{esc(layer)} · {channel}</b> (Griffin-Lim, "
                f"{FEATURE_MAP_AUDIO_ITERS} iterations, loudness-normalised):")
        fig = self._filter_fig
        if fig is not None and refresh_image(fig, fmap, title=title,
                                             value_range=(float(fmap.min()), float(fmap.max()))):
            self._filter_text.value, self._filter_audio.object = text, audio
            return
        self._filter_fig = spectrogram_plot(fmap, sample_rate=None, title=title,
                                            palette="Viridis256", height=260,
                                            value_label="activation")
        self._filter_text = live_text(text, css_class="hs-filter-text")
        self._filter_audio = pn.pane.Audio(audio, sample_rate=self.params.sample_rate,
                                           name="filter-audio", css_classes=["hs-filter-audio"])
        self.filter_view.objects = [pn.pane.Bokeh(self._filter_fig), self._filter_text,
                                    self._filter_audio]

    def _build_dense(self, a) -> None:
        from viz.plots import dense_activation_bars

        panes = []
        for k in dense_layers(a.acts):
            if k != "logits":
                self._figs[("dense", k)] = dense_activation_bars(
                    a.acts[k], title=f"{k}: {a.acts[k].shape[0]} units")
                panes.append(pn.pane.Bokeh(self._figs[("dense", k)]))
        self.dense.objects = [pn.pane.Markdown("#### Dense layers"), *panes] if panes else []

    def _model_title(self) -> str:
        from engine.predictor import named_weights

        p = self.session.predictor
        total = sum(int(w.size) for w in named_weights(p.model).values())
        return f"Model: {p.arch} · {total:,} parameters (show layers and weight histograms)"

    def _on_model_toggle(self, event) -> None:
        if event.new and not self.model_body.objects:
            self._build_model_view()
        self.model_body.visible = bool(event.new)

    def _build_model_view(self) -> None:
        from engine.predictor import layer_parameters, named_weights
        from viz.weights import layer_table, weight_histogram

        model = self.session.predictor.model
        weights = layer_parameters(model)
        counts = {}
        for name, w in named_weights(model).items():
            layer = name.rsplit(".", 1)[0]
            counts[layer] = counts.get(layer, 0) + int(w.size)
        shapes = {name: tuple(w.shape) for name, w in weights.items()}
        self.model_body.objects = [
            # Table above the histograms: side by side, six histograms were squeezed into
            # what the 420 px table left of 1280 px and their tick labels overlapped.
            pn.pane.Bokeh(layer_table(shapes, {k: counts.get(k, 0) for k in shapes}),
                          width=420),
            pn.pane.Markdown("#### Weight distributions (kernel values per layer, counts)"),
            # A Panel grid of separate figures: a bokeh gridplot added to a page already
            # shown drew its figures empty.
            pn.GridBox(*[pn.pane.Bokeh(weight_histogram(w, title=name, height=180),
                                       sizing_mode="stretch_width")
                         for name, w in weights.items()],
                       ncols=3, sizing_mode="stretch_width")]

    def view(self):
        return pn.Column(
            self.header, self.player, self.signal, self.probs, self.maps,
            pn.Row(self.filter_select, width=320), self.filter_view, self.dense,
            self.model_view, sizing_mode="stretch_width")
