"""Strips: an adversarial strip from the current clip toward a target class, built live.

Frames come from :func:`engine.strips.strip_frames` (a lazy generator) in a worker thread;
each frame's card — the input's picture, the difference of pictures to the original in a
diverging palette, target probability, a Listen button — is appended as soon as it is
computed, and the probability chart extends with it. When the strip is complete a Player
animates it frame by frame, and it can be exported as a PNG (colour-mapped arrays drawn with
PIL) and a ZIP of one WAV per frame.

The strip moves the model's own input (:mod:`serve.pages.input_space`): a waveform model's
wave (an L∞ budget in sample amplitude, kept in ``[-1, 1]``; pictured by its display STFT,
heard as it is) or a model's features (a budget in their units, kept in their box; heard by
Griffin-Lim). For features the difference of pictures is the difference of inputs, inside the
budget; for a waveform it is what the change does to the spectrogram.

References:
  Deepling: adversarial strips of gradually modified inputs.
  Madry et al. (2018), projected gradient ascent inside an L∞ budget.
"""

from __future__ import annotations

import io
import threading
import zipfile
from functools import partial

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource

from engine.strips import strip_frames
from serve.jobs import JobError, session_runner
from serve.pages.input_space import hear, input_space, picture_figure, picture_of

CLIP_NOTE = "### Bring a clip in from the sidebar (or the Inspect page) to build a strip from it."


def colourise(values: np.ndarray, palette: list[str], low: float, high: float) -> np.ndarray:
    """``(freq, time)`` values → ``(freq, time, 3)`` uint8 RGB, row 0 (lowest bin) at the bottom."""
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in palette], np.uint8)
    t = np.clip((np.asarray(values, np.float64) - low) / max(high - low, 1e-12), 0.0, 1.0)
    return rgb[np.round(t * (len(palette) - 1)).astype(int)][::-1]


def strip_png(xs: list[np.ndarray], diffs: list[np.ndarray], *, floor: float, limit: float,
              high: float = 0.0, scale: int = 2, gap: int = 4) -> bytes:
    """A PNG of a strip: frames left to right, pictures (Inferno over ``[floor, high]``) on
    top, differences (coolwarm over ``[-limit, limit]``) below; each bin ``scale`` pixels."""
    from PIL import Image

    from viz.figstyle import resolve_palette

    if not xs or len(xs) != len(diffs):
        raise ValueError(f"need as many differences as frames (>= 1), got {len(xs)}, {len(diffs)}")
    hot, cool = resolve_palette("Inferno256"), resolve_palette("coolwarm")
    cols = [np.concatenate([colourise(x, hot, floor, high),
                            np.full((gap, x.shape[1], 3), 255, np.uint8),
                            colourise(d, cool, -limit, limit)]) for x, d in zip(xs, diffs)]
    sep = np.full((cols[0].shape[0], gap, 3), 255, np.uint8)
    grid = np.concatenate([c for col in cols for c in (col, sep)][:-1], axis=1)
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    buf = io.BytesIO()
    Image.fromarray(grid, mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


def wav_zip(waves: list[np.ndarray], sample_rate: int, *, prefix: str = "frame") -> bytes:
    """A ZIP (in memory) of one 16-bit WAV per wave, named ``{prefix}_00.wav``, ..."""
    from data.audio import to_wav_bytes

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for k, wave in enumerate(waves):
            zf.writestr(f"{prefix}_{k:02d}.wav", to_wav_bytes(wave, sample_rate))
    return buf.getvalue()


class StripsPage:
    """The Strips tab of one session. ``frame_hooks`` are called ``hook(frame)`` after a card."""

    def __init__(self, session):
        self.session, self.params = session, session.params
        self.predictor = session.predictor
        self.space = input_space(self.predictor)
        self.labels = list(self.predictor.labels)
        self.runner = session_runner(session)
        self.frames, self.frame_hooks, self.job = [], [], None
        self.pictures: list[np.ndarray] = []  # (freq, time) picture of every frame's input
        self._n_cards, self._cards_lock = 0, threading.Lock()
        self.original, self.budget_used = None, 1.0
        self._audio: dict[int, np.ndarray] = {}
        self._shown_card = None  # the player's card: built once, then only its data change
        self._shown_k = self._wanted_k = 0
        self._draw_pending = False  # a _draw_wanted is queued on the event loop
        self._build_controls()
        self._build_views()
        session.on_clip(lambda clip: self._show_clip_note())

    def _build_controls(self) -> None:
        w = pn.widgets
        self.target = w.Select(name="Target class", options={n: i for i, n in enumerate(self.labels)},
                               css_classes=["hs-strip-target"])
        self.n_frames = w.IntInput(name="Frames (K)", value=8, start=1, end=64)
        self.steps_per_frame = w.IntInput(name="Steps per frame", value=5, start=1, end=200)
        # 0.3 log10 units: the target class takes over around the strip's middle (median frame
        # 4 of 8 on the default synth model, 2 on d-DeVIS/FSDD); at 1.0 it did by frame 1-2,
        # so the strip showed little but the flip. Other inputs: see serve.pages.input_space.
        space = self.space
        self.budget = w.FloatInput(name=f"Budget (L∞, {space.budget_unit})", value=space.budget,
                                   start=1e-4 if space.kind == "waveform" else 1e-3, end=10.0)
        self.build_button = w.Button(name="Build", button_type="primary",
                                     css_classes=["hs-strip-build"])
        self.stop_button = w.Button(name="Stop", disabled=True, css_classes=["hs-strip-stop"])
        self.build_button.on_click(lambda _: self.build())
        self.stop_button.on_click(lambda _: self.job is not None and self.job.stop())

    def _build_views(self) -> None:
        from viz.figstyle import BLUE, ORANGE, legend_below, new_figure

        self.note = pn.pane.Markdown("", css_classes=["hs-strip-note"])
        self.cards = pn.Row(sizing_mode="stretch_width", scroll=True, css_classes=["hs-strip-cards"])
        self.prob_source = ColumnDataSource({"frame": [], "target": [], "original": []})
        fig = new_figure(title="Probability per frame", height=220, x_axis_label="frame",
                         y_axis_label="probability")
        fig.line("frame", "target", source=self.prob_source, color=BLUE, legend_label="target")
        fig.scatter("frame", "target", source=self.prob_source, color=BLUE)
        fig.line("frame", "original", source=self.prob_source, color=ORANGE,
                 legend_label="original class")
        legend_below(fig)  # at the right it covered the curves as they rose to 1
        self.chart = pn.pane.Bokeh(fig, css_classes=["hs-strip-chart"])
        self.player = pn.widgets.Player(name="Frame", start=0, end=1, value=0, interval=600,
                                        loop_policy="loop", visible=False,
                                        css_classes=["hs-strip-player"])
        self.player_view = pn.Column(sizing_mode="stretch_width", css_classes=["hs-strip-playback"])
        self.player.param.watch(lambda e: self._want_frame(e.new), "value")
        self.png_download = pn.widgets.FileDownload(
            callback=lambda: io.BytesIO(self.png_bytes()), filename="strip.png", disabled=True,
            css_classes=["hs-strip-png"])
        self.zip_download = pn.widgets.FileDownload(
            callback=lambda: io.BytesIO(self.zip_bytes()), filename="strip-wavs.zip",
            disabled=True, css_classes=["hs-strip-zip"])
        self._show_clip_note()

    def _show_clip_note(self) -> None:
        clip = self.session.clip
        self.note.object = CLIP_NOTE if clip is None else f"### Strip from **{clip.name}**"

    # -- building ----------------------------------------------------------------------
    def build(self):
        """Start building a strip from the widgets' values; returns the Job (None if refused)."""
        box = self.space.box
        try:
            if self.session.clip is None:
                raise ValueError("bring a clip in first (sidebar)")
            if self.runner.active:
                raise JobError(f"a {self.runner.active[0].name} is still running; press Stop first")
            a = self.session.analyse(self.session.clip.wave)
            x0 = np.clip(a.features, *box)
            frames = strip_frames(self.predictor.acts_fn, x0, int(self.target.value),
                                  n_frames=int(self.n_frames.value),
                                  steps_per_frame=int(self.steps_per_frame.value),
                                  budget=float(self.budget.value), clip=box,
                                  input_shape=self.space.shape)
        except (ValueError, JobError) as exc:
            self.session.error(f"Strip not built: {exc}")
            return None
        self._reset(int(np.argmax(a.probs)), float(self.budget.value))
        try:
            self.job = self.runner.start(partial(self._frames_job, frames), name="strip",
                                         on_end=lambda job: self.runner.push(self._finish))
        except JobError as exc:
            self.session.error(f"Strip not built: {exc}")
            return None
        self.build_button.disabled, self.stop_button.disabled = True, False
        return self.job

    def _reset(self, original: int, budget: float) -> None:
        self.frames, self.pictures, self._audio, self._n_cards = [], [], {}, 0
        self.original, self.budget_used = original, budget
        self.cards.objects, self.player_view.objects = [], []
        self._shown_card = None  # a new strip may differ in shape and colour range
        # A Bokeh model changes only on the event loop (build() runs in Panel's thread pool).
        self.runner.push(lambda: setattr(self.prob_source, "data",
                                         {"frame": [], "target": [], "original": []}))
        self.player.visible = False
        self.png_download.disabled = self.zip_download.disabled = True

    def _frames_job(self, frames, job):
        for frame in frames:
            # Pictures here, in the worker: a waveform's STFT must not hold up the page.
            self.pictures.append(picture_of(self.predictor, frame.x))
            self.frames.append(frame)
            self.runner.push(self._add_cards)
            yield

    def _add_cards(self) -> None:
        # Served, pushed callbacks were seen to run out of order: each one adds every frame
        # not yet shown, in order, so cards and chart points never come out of sequence.
        with self._cards_lock:
            new = self.frames[self._n_cards:]
            self._n_cards += len(new)
            for frame in new:
                self.prob_source.stream({"frame": [frame.index], "target": [frame.target_prob],
                                         "original": [float(frame.all_probs[self.original])]})
                self.cards.append(self._card(frame))
                for hook in list(self.frame_hooks):
                    hook(frame)

    def _card_title(self, frame) -> str:
        return (f"**frame {frame.index}** · p({self.labels[int(self.target.value)]}) = "
                f"{frame.target_prob:.1%}")

    def _card(self, frame, *, height: int = 170, css: str = "hs-strip-frame", shown=None):
        """A frame's card: title, picture, difference to frame 0, Listen and its audio. With
        ``shown`` (a callable giving the frame now shown) Listen plays that frame: the
        player's one card, whose figures :meth:`_show_frame` updates in place."""
        from viz.compare import difference_map_plot

        k = frame.index
        picture, first = self.pictures[k], self.pictures[0]
        audio = pn.pane.Audio(None, sample_rate=self.space.sample_rate, visible=False)
        listen = pn.widgets.Button(name="Listen", css_classes=["hs-strip-listen"])
        listen.on_click(lambda _: self._listen(k if shown is None else shown(), audio))
        figs = [picture_figure(self.space, picture, title=f"x{k}", height=height,
                               value_label="value", frame_axis=True),
                difference_map_plot(first, picture, title=f"x{k} − x0", height=height,
                                    limit=self._diff_limit())]
        compact = css == "hs-strip-frame"
        for fig in figs if compact else []:  # a narrow card: room for the map, not the tools
            fig.toolbar_location, fig.yaxis.axis_label = None, None
            for axis in (*fig.xaxis, *fig.yaxis):
                if hasattr(axis.ticker, "desired_num_ticks"):  # mel rows: fixed Hz ticks
                    axis.ticker.desired_num_ticks = 3
        return pn.Column(pn.pane.Markdown(self._card_title(frame)),
                         *[pn.pane.Bokeh(f) for f in figs], listen, audio,
                         width=280 if compact else 520, css_classes=[css])

    def _finish(self) -> None:
        self._add_cards()  # any frame whose own callback has not run yet
        self.build_button.disabled, self.stop_button.disabled = False, True
        if not self.frames:
            return
        self.player.end = max(len(self.frames) - 1, 1)
        self.player.value = 0
        self.player.visible = True
        self._show_frame(0)
        self.png_download.disabled = self.zip_download.disabled = False

    def _want_frame(self, k: int) -> None:
        """The player moved (in a callback thread): draw on the event loop, where a Bokeh
        model may change; when steps outpace the page, the one queued draw shows the newest."""
        self._wanted_k = k
        if not self._draw_pending:
            self._draw_pending = True
            self.runner.push(self._draw_wanted)

    def _draw_wanted(self) -> None:
        self._draw_pending = False  # before reading: a newer step queues another draw
        self._show_frame(self._wanted_k)

    def _show_frame(self, k: int) -> None:
        """Show frame ``k`` in the player's card. The card is built once per strip; a step
        only changes its figures' data and titles and its text (a new card per step sent
        ~100 new Bokeh models to the browser and left it laying out two new figures)."""
        if not 0 <= k < len(self.frames):
            return
        self._shown_k = k
        if self._shown_card is None or not self._refresh_shown(k):
            self._shown_card = self._card(self.frames[k], height=240, css="hs-strip-shown",
                                          shown=lambda: self._shown_k)
            self.player_view.objects = [self._shown_card]

    def _refresh_shown(self, k: int) -> bool:
        """Frame ``k``'s data into the shown card; False when its figures cannot take them."""
        from viz.refresh import refresh_image

        card, frame = self._shown_card, self.frames[k]
        picture, first = self.pictures[k], self.pictures[0]
        limit = self._diff_limit()
        shown, diff = card.objects[1].object, card.objects[2].object  # the two figures
        if not (refresh_image(shown, picture, title=f"x{k}")
                and refresh_image(diff, picture - first, value_range=(-limit, limit),
                                  title=f"x{k} − x0")):
            return False
        title, audio = card.objects[0], card.objects[-1]
        audio.visible = False  # the previous frame's sound; Listen fills in this frame's
        title.object = self._card_title(frame)  # last: the figures' patch goes first
        return True

    def _diff_limit(self) -> float:
        """Colour range of the difference maps: the budget for features (the maps are the
        input differences), the largest change of the strip's pictures so far for a waveform."""
        if self.space.kind != "waveform":
            return self.budget_used
        peak = max((float(np.max(np.abs(p - self.pictures[0]))) for p in self.pictures),
                   default=0.0)
        return peak if peak > 0 else 1.0

    # -- audio and export --------------------------------------------------------------
    def frame_audio(self, k: int) -> np.ndarray:
        """Audio ``(n_samples,)`` of frame ``k`` (computed once, on demand): the wave itself
        for a waveform model, Griffin-Lim (phase seeded by ``k``) for features."""
        if k not in self._audio:
            self._audio[k] = hear(self.predictor, self.frames[k].x, seed=k)
        return self._audio[k]

    def _listen(self, k: int, pane) -> None:
        try:
            pane.object, pane.visible = np.clip(self.frame_audio(k), -0.99, 0.99), True
        except ValueError as exc:
            self.session.error(f"Frame {k} cannot be played: {exc}")

    def png_bytes(self) -> bytes:
        low, high = self.space.picture_range
        return strip_png(self.pictures, [p - self.pictures[0] for p in self.pictures],
                         floor=low, high=high, limit=self._diff_limit())

    def zip_bytes(self) -> bytes:
        return wav_zip([self.frame_audio(k) for k in range(len(self.frames))],
                       self.space.sample_rate)

    def view(self):
        controls = pn.Column(self.target, self.n_frames, self.steps_per_frame, self.budget,
                             pn.Row(self.build_button, self.stop_button), width=320)
        results = pn.Column(self.note, self.cards, self.chart, self.player, self.player_view,
                            pn.Row(self.png_download, self.zip_download),
                            sizing_mode="stretch_width")
        return pn.Row(controls, results, sizing_mode="stretch_width")
