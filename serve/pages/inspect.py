"""Inspect: waveform, the input's picture (a waveform model's display spectrogram) on its real
frequency axis, every class's probability, every filter of every conv map and every time /
sequence layer drawn over time (tap one to enlarge and hear it), vector activations, weight
histograms and layer shapes — for any model behind the predictor interface."""

from __future__ import annotations

from functools import partial

import numpy as np
import panel as pn

from serve.analysis import (is_silent, layer_image, layer_kinds, most_active_channel,
                            picture_axes, picture_range, silent_note, sonify)
from serve.config import FEATURE_MAP_AUDIO_ITERS
from serve.jobs import one_walk
from serve.text import esc, live_text


MAX_HISTOGRAMS = 36  # a foreign model has a weight matrix per projection (~100 in a base model)


def layer_option(layer: str, kind: str, shape: tuple) -> dict:
    """The layer menu's entries of one layer: a conv map's every channel ``(layer, c)``; a
    time / sequence layer's whole ``(dim, time)`` image and a vector layer: ``(layer, None)``."""
    if kind == "freq_time":
        return {f"{layer} · {c}": (layer, c) for c in range(shape[2])}
    if kind == "vector":
        return {f"{layer} · {shape[0]} units": (layer, None)}
    unit = "channels" if kind == "time" else "dims"
    return {f"{layer} · all {shape[1]} {unit} over time": (layer, None)}


def image_title(layer: str, kind: str, shape: tuple) -> str:
    unit = "channels" if kind == "time" else "dims"
    return f"{layer}: {shape[1]} {unit} × {shape[0]} frames ({kind})"


class InspectPage:
    """The Inspect tab of one session."""

    def __init__(self, session):
        self.session = session
        self.params = session.params
        self.predictor = session.predictor
        self.header = live_text("<h3>Bring audio in from the sidebar to inspect it.</h3>",
                                css_class="hs-inspect-header")
        self.player = pn.pane.Audio(None, sample_rate=self.predictor.sample_rate, name="clip",
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
        self._filter_pane = None
        # The filter the user picked (menu or tap), kept for every later clip; until then the
        # page shows the most active filter of each clip (a dead filter 0 drew a flat map).
        self._picked: tuple | None = None
        self._auto = False  # True while the page itself sets the menu: its watcher skips
        self._kinds: dict[str, str] = {}  # layer -> kind, the same for every clip of a model
        self.filter_select.param.watch(self._on_filter, "value")
        session.on_clip(self._on_clip)
        self.model_toggle.param.watch(self._on_model_toggle, "value")

    # -- building ----------------------------------------------------------------------
    def _on_clip(self, clip) -> None:
        from serve.jobs import session_runner

        a = self.session.analyse(clip.wave)
        choice = self.choice_for(a)
        # The chosen filter's sound (Griffin-Lim, ~10 ms) is made here, in Panel's worker
        # thread, so the event loop every session shares only swaps data.
        sound = self._filter_sound(a, choice)
        # Figures are changed in place, which a served page must do on the document's event
        # loop: changes made from Panel's callback threads reach the browser only for the
        # models Panel manages (header, panes), not for a figure's column data.
        session_runner(self.session).push(partial(self._show_clip, clip, a, sound, choice))

    def kinds(self, a) -> dict[str, str]:
        """``{layer: kind}`` of analysis ``a`` (:func:`serve.analysis.layer_kinds`)."""
        if set(self._kinds) - set(a.acts) or not self._kinds:
            self._kinds = layer_kinds(self.predictor, a.acts)
        return self._kinds

    def choice_for(self, a) -> tuple | None:
        """``(layer, channel)`` to show for analysis ``a``: the user's pick when ``a`` has it,
        else the most active filter (:func:`serve.analysis.most_active_channel`) of the
        layer on show (the first layer at first); ``(layer, None)`` for a layer without
        channels to pick. None for a model without layers."""
        kinds = self.kinds(a)
        pick = self._picked
        if pick is not None and pick[0] in kinds and (
                pick[1] is None or pick[1] < a.acts[pick[0]].shape[-1]):
            return tuple(pick)
        current = self.filter_select.value
        layer = current[0] if current is not None and current[0] in kinds else next(iter(kinds),
                                                                                    None)
        if layer is None:
            return None
        if kinds[layer] == "freq_time":
            return (layer, most_active_channel(a.acts[layer]))
        return (layer, None)

    def _select(self, value, options=None) -> None:
        """Set the filter menu (and its ``options``) without its watcher drawing again: the
        caller shows the filter."""
        update = {"value": value} if options is None else {"options": options, "value": value}
        self._auto = True
        try:
            self.filter_select.param.update(**update)
        finally:
            self._auto = False

    def _filter_sound(self, a, choice):
        """``(a, choice, audio)``: the sonification of ``choice = (layer, channel)`` of analysis
        ``a`` — one conv filter's map, or a time / sequence layer's whole ``(dim, time)``
        image —, or None when ``a`` has no such layer or it is a vector."""
        if choice is None or choice[0] not in a.acts:
            return None
        kind = self.kinds(a).get(choice[0])
        if kind not in ("freq_time", "time", "sequence"):
            return None
        image = layer_image(a.acts[choice[0]], kind, choice[1])
        if is_silent(image):  # nothing to hear: the page says so instead
            return None
        return a, tuple(choice), sonify(image, self.predictor)

    def _show_clip(self, clip, a, sound=None, choice=None) -> None:
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
                self._build_maps(a, choice)
                self._build_dense(a)
        if choice is None:
            choice = self.choice_for(a)
        if choice is not None and choice[0] in a.acts and self._filter_for is not a:
            if self.filter_select.value != choice:
                self._select(choice)
            self._show_filter(*choice, sound=sound)

    def _refresh(self, clip, a) -> bool:
        from viz.featuremaps import mosaic, mosaic_title, refresh_silent_tiles
        from viz.refresh import (refresh_dense_bars, refresh_image, refresh_probability_bars,
                                 refresh_waveform)

        figs, labels, kinds = self._figs, self.session.predictor.labels, self.kinds(a)
        if set(figs) != {"wave", "spec", "probs", *self._layer_keys(kinds)}:
            return False
        picture = self._picture(a)
        ok = (refresh_waveform(figs["wave"], clip.wave, self.predictor.sample_rate)
              and refresh_image(figs["spec"], picture,
                                value_range=picture_range(self._axes(picture), picture))
              and refresh_probability_bars(figs["probs"], a.probs, labels,
                                           title=f"Class probabilities — top: {labels[a.top]}"))
        for key, fig in figs.items():
            if ok and key[0] == "map":
                acts = a.acts[key[1]]
                ok = (refresh_image(fig, mosaic(acts)[0], title=mosaic_title(key[1], acts))
                      and refresh_silent_tiles(fig, acts))
            elif ok and key[0] == "seq":
                image = layer_image(a.acts[key[1]], kinds[key[1]])
                ok = refresh_image(fig, image, value_range=_span(image))
            elif ok and key[0] == "dense":
                ok = refresh_dense_bars(fig, a.acts[key[1]])
        return ok

    @staticmethod
    def _layer_keys(kinds: dict) -> list[tuple[str, str]]:
        tag = {"freq_time": "map", "time": "seq", "sequence": "seq", "vector": "dense"}
        return [(tag[kind], k) for k, kind in kinds.items()]

    @staticmethod
    def _picture(a) -> np.ndarray:
        return a.features if a.picture is None else a.picture

    def _axes(self, picture):
        """The picture's axes (the same for every clip of a model: made once)."""
        frames = np.shape(picture)[1]
        if getattr(self, "_picture_axes", (None, None))[0] != frames:
            self._picture_axes = (frames, picture_axes(self.predictor, frames))
        return self._picture_axes[1]

    def _build_signal(self, clip, a) -> None:
        from serve.analysis import picture_figure
        from viz.plots import probability_bars, waveform_plot

        labels = self.session.predictor.labels
        self._figs["wave"] = waveform_plot(clip.wave, self.predictor.sample_rate, height=220)
        self._figs["spec"] = picture_figure(self._picture(a), self.predictor, height=220)
        self._figs["probs"] = probability_bars(a.probs, labels,
                                               title=f"Class probabilities — top: {labels[a.top]}")
        self.signal.objects = [pn.pane.Bokeh(self._figs["wave"]), pn.pane.Bokeh(self._figs["spec"])]
        self.probs.objects = [pn.pane.Bokeh(self._figs["probs"])]

    def _build_maps(self, a, choice=None) -> None:
        cards, options, kinds = [], {}, self.kinds(a)
        for layer, kind in kinds.items():
            acts = a.acts[layer]
            options.update(layer_option(layer, kind, acts.shape))
            if kind == "vector":  # drawn with the dense layers
                continue
            fig = (self._mosaic_card(layer, acts) if kind == "freq_time"
                   else self._image_card(layer, kind, acts))
            # The css class goes on a wrapper: a Bokeh pane renders the figure itself and
            # drops its own css_classes, so tests and styles could not find the mosaic.
            cards.append(pn.Column(pn.pane.Bokeh(fig), css_classes=[f"hs-mosaic-{layer}"],
                                   sizing_mode="stretch_width"))
        over_time = any(k in ("time", "sequence") for k in kinds.values())
        heading = (
            "#### Layers — every filter of every conv map, every time and sequence layer "
            "as dims × time (tap one to enlarge and listen)" if over_time else
            "#### Feature maps — every filter of every layer (tap one to enlarge and listen)")
        self.maps.objects = [pn.pane.Markdown(heading),
                             pn.GridBox(*cards, ncols=2, sizing_mode="stretch_width")]
        if options != self.filter_select.options:
            # Options and value together: options alone select the first filter (served) or
            # none (no browser yet), and filter 0 was often a dead one.
            value = choice if choice in options.values() else self.choice_for(a)
            self._select(value, options=options)

    def _mosaic_card(self, layer: str, acts: np.ndarray):
        from viz.featuremaps import feature_map_mosaic, mosaic_title

        fig, layout = feature_map_mosaic(acts, title=mosaic_title(layer, acts), height=300)
        fig.on_event("tap", self._tap_handler(layer, layout))
        self._figs[("map", layer)] = fig
        return fig

    def _image_card(self, layer: str, kind: str, acts: np.ndarray):
        """A time / sequence layer ``(time, dim)`` as one image, dims up and frames across."""
        from viz.plots import spectrogram_plot

        image = layer_image(acts, kind)
        fig = spectrogram_plot(image, sample_rate=None, title=image_title(layer, kind, acts.shape),
                               palette="Viridis256", value_range=_span(image), height=300,
                               value_label="activation")
        fig.yaxis.axis_label = "channel" if kind == "time" else "dimension"
        fig.on_event("tap", lambda event: setattr(self.filter_select, "value", (layer, None)))
        self._figs[("seq", layer)] = fig
        return fig

    def _tap_handler(self, layer, layout):
        def handler(event):
            ch = layout.channel_at(event.x, event.y)
            if ch is not None:
                self.filter_select.value = (layer, ch)
        return handler

    def _on_filter(self, event) -> None:
        from serve.jobs import session_runner

        a = self.analysis
        if self._auto:  # the page set it and shows it itself
            return
        if event.new is not None:
            self._picked = tuple(event.new)
        if event.new is not None and a is not None:
            session_runner(self.session).push(partial(
                self._show_filter, *event.new, sound=self._filter_sound(a, event.new)))

    def _show_filter(self, layer: str, channel: int | None, *, sound=None) -> None:
        """Show ``(layer, channel)`` for the current clip — filter ``channel`` of a conv map,
        or (``channel`` None) a time / sequence layer's whole image —, with its sound when
        ``sound`` (from :meth:`_filter_sound`) was made for them (else it is made here); a
        vector layer as bars, with nothing to play."""
        from viz.plots import spectrogram_plot
        from viz.refresh import refresh_image

        a = self._filter_for = self.analysis
        kind = self.kinds(a).get(layer)
        if kind not in ("freq_time", "time", "sequence"):
            self._show_vector(layer, a.acts[layer])
            return
        fmap = layer_image(a.acts[layer], kind, channel)
        if is_silent(fmap):
            self._show_silent(layer, kind, channel, fmap, a)
            return
        audio = None
        if sound is not None and sound[0] is a and sound[1] == (layer, channel):
            audio = sound[2]
        if audio is None:
            audio = sonify(fmap, self.predictor)
        if kind == "freq_time":
            title, name = f"{layer} · filter {channel}", f"{esc(layer)} · {channel}"
        else:
            title, name = image_title(layer, kind, a.acts[layer].shape), f"{esc(layer)} (all)"
        text = (f"Sonification of <b>{name}</b> (Griffin-Lim, "
                f"{FEATURE_MAP_AUDIO_ITERS} iterations, loudness-normalised):")
        fig = self._filter_fig
        if fig is not None and refresh_image(fig, fmap, title=title, value_range=_span(fmap)):
            self._filter_text.value, self._filter_audio.object = text, audio
            live = [self._filter_pane, self._filter_text, self._filter_audio]
            if self.filter_view.objects != live:  # back from a silent filter's note
                self.filter_view.objects = live
            return
        self._filter_fig = spectrogram_plot(fmap, sample_rate=None, title=title,
                                            palette="Viridis256", height=260,
                                            value_label="activation")
        self._filter_pane = pn.pane.Bokeh(self._filter_fig)
        self._filter_text = live_text(text, css_class="hs-filter-text")
        self._filter_audio = pn.pane.Audio(audio, sample_rate=self.predictor.sample_rate,
                                           name="filter-audio", css_classes=["hs-filter-audio"])
        self.filter_view.objects = [self._filter_pane, self._filter_text, self._filter_audio]

    def _show_silent(self, layer: str, kind: str, channel: int | None, fmap, a) -> None:
        """Say that ``(layer, channel)`` is silent for this clip instead of drawing a flat
        map and playing silence; name the layer's most active filter when it has a live one."""
        if kind == "freq_time":
            best = most_active_channel(a.acts[layer])
            live = not is_silent(a.acts[layer][:, :, best])
            text = silent_note(f"<b>{esc(layer)} · {channel}</b>", fmap,
                               best=best if live and best != channel else None)
        else:
            text = silent_note(f"<b>{esc(layer)}</b>", fmap, noun="layer")
        # The figure and player are kept (out of the page) for the next live filter. Not
        # hidden with ``visible``: a Bokeh pane hidden on a served page stayed hidden when
        # made visible again (its figure's own visibility synced back).
        if self._filter_text is None or self._filter_fig is None:
            self._filter_text = live_text(text, css_class="hs-filter-text")
        self._filter_text.value = text
        self.filter_view.objects = [self._filter_text]

    def _show_vector(self, layer: str, acts: np.ndarray) -> None:
        from viz.plots import dense_activation_bars

        # The next map builds its figure anew.
        self._filter_fig = self._filter_audio = self._filter_pane = None
        self._filter_text = live_text(f"<b>{esc(layer)}</b> is a vector ({acts.shape[0]} units): "
                                      "no time axis, nothing to play.",
                                      css_class="hs-filter-text")
        self.filter_view.objects = [pn.pane.Bokeh(dense_activation_bars(
            acts, title=f"{layer}: {acts.shape[0]} units", height=260)), self._filter_text]

    def _build_dense(self, a) -> None:
        from viz.plots import dense_activation_bars

        panes = []
        for k, kind in self.kinds(a).items():
            if kind == "vector":
                self._figs[("dense", k)] = dense_activation_bars(
                    a.acts[k], title=f"{k}: {a.acts[k].shape[0]} units")
                panes.append(pn.pane.Bokeh(self._figs[("dense", k)]))
        self.dense.objects = [pn.pane.Markdown("#### Dense layers"), *panes] if panes else []

    def _model_title(self) -> str:
        from engine.predictor import named_weights

        p = self.session.predictor
        if p.model is not None:
            total = sum(int(w.size) for w in named_weights(p.model).values())
            return f"Model: {p.arch} · {total:,} parameters (show layers and weight histograms)"
        # Behind the contract only the weight matrices are listed (no biases or norms).
        total = sum(int(w.size) for w in p.layer_parameters().values())
        return (f"Model: {p.arch} · {total:,} weights in its matrices and kernels "
                "(show layers and weight histograms)")

    def _on_model_toggle(self, event) -> None:
        if event.new and not self.model_body.objects:
            self._build_model_view()
        self.model_body.visible = bool(event.new)

    def _layer_shapes(self) -> dict[str, tuple[int, ...]]:
        """Activation shape of every layer of one example (the table's "output shape")."""
        p = self.predictor
        if getattr(p, "layers", None):
            return {info.name: tuple(info.shape) for info in p.layers}
        acts = self.analysis.acts if self.analysis is not None else {
            k: v[0] for k, v in p.run(p.baseline_input()[None])[1].items()}
        return {k: tuple(np.shape(v)) for k, v in acts.items() if k != "probs"}

    def _build_model_view(self) -> None:
        from engine.predictor import named_weights
        from viz.weights import layer_table, weight_histogram

        p = self.session.predictor
        weights = p.layer_parameters()
        counts = None  # per layer; unknown behind the contract (weights named by module path)
        if p.model is not None:
            counts = {}
            for name, w in named_weights(p.model).items():
                layer = name.rsplit(".", 1)[0]
                counts[layer] = counts.get(layer, 0) + int(w.size)
        shown = dict(list(weights.items())[:MAX_HISTOGRAMS])
        more = (f" — the first {len(shown)} of {len(weights)} weight arrays"
                if len(shown) < len(weights) else "")
        self.model_body.objects = [
            # Table above the histograms: side by side, six histograms were squeezed into
            # what the 420 px table left of 1280 px and their tick labels overlapped.
            pn.pane.Bokeh(layer_table(self._layer_shapes(), counts), width=420),
            pn.pane.Markdown(f"#### Weight distributions (kernel values per layer, counts){more}"),
            # A Panel grid of separate figures: a bokeh gridplot added to a page already
            # shown drew its figures empty.
            pn.GridBox(*[pn.pane.Bokeh(weight_histogram(w, title=name, height=180),
                                       sizing_mode="stretch_width")
                         for name, w in shown.items()],
                       ncols=3, sizing_mode="stretch_width")]

    def view(self):
        return pn.Column(
            self.header, self.player, self.signal, self.probs, self.maps,
            pn.Row(self.filter_select, width=320), self.filter_view, self.dense,
            self.model_view, sizing_mode="stretch_width")


def _span(image: np.ndarray) -> tuple[float, float]:
    """The colour range of an activation image (a constant one gets a unit range)."""
    lo, hi = float(np.min(image)), float(np.max(image))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)
