"""Maximise: activation maximisation for a class, a unit or a channel, live.

Gradient ascent runs in a worker thread (:mod:`serve.jobs`); after every step the page shows
the objective curve (a streamed ``ColumnDataSource``), the best start's picture and its
class probabilities. At the end the best input is playable, judged by the own and, when
loaded, a separately trained classifier, and downloadable as WAV and NPZ.

The ascent runs in the model's own input space (:mod:`serve.pages.input_space`): a waveform
model's wave in ``[-1, 1]`` (pictured by its display STFT, heard as it is), hearsight's
features in ``[floor, 0]`` or another model's features in ``[floor, ceiling]`` (heard by
Griffin-Lim). Targets are a class's probability or logit, a unit of any layer, or a channel
averaged over the rest of its layer (frequency and time, or time). The decoder prior is
offered only for hearsight's own features, and only when one is loaded.

Helpers (a page config → objective, starts and maximiser; class probabilities; NPZ bytes;
figure updates) live in :mod:`serve.pages.maximise_parts` and are re-exported here.

References:
  Soomro et al., "Generating speech utterances by activation maximisation" (noise-to-class,
  class-to-class, decoder prior, separate-classifier verdict).
"""

from __future__ import annotations

import io
import threading
from functools import partial

import jax
import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource

from engine.ablation import class_probs
from serve.jobs import JobError, one_walk, session_runner
from serve.pages.input_space import hear, input_space, picture_figure, picture_of, same_input
from serve.pages.maximise_parts import (CLASS_SCORES, LR_INPUT, LR_INPUT_FOREIGN, LR_LATENT,
                                        PRIOR_HINT, layer_shapes, live_index, npz_bytes,
                                        setup_run, start_objective, target_shortfall)
from serve.text import esc, live_text

MODES = {"noise-to-class": "noise", "class-to-class (current clip)": "clip"}


class MaximisePage:
    """The Maximise tab of one session. ``step_hooks`` are called ``hook(step, n_steps)``."""

    def __init__(self, session):
        self.session, self.params = session, session.params
        shared = session.shared
        self.predictor = session.predictor
        self.space = input_space(self.predictor)
        self.labels = list(self.predictor.labels)
        # A decoder prior decodes to hearsight's features; no other input has one.
        self.prior = getattr(shared, "prior", None) if self.space.own_features else None
        separate = getattr(shared, "separate", None)
        self.separate = separate if same_input(self.space, separate) else None
        self.runner = session_runner(session)
        self.layers = layer_shapes(self.predictor.acts_fn, self.space.shape)
        self.job, self.result, self.step_hooks = None, None, []
        self._latest, self._shown, self._show_lock = None, 0, threading.Lock()
        self._push_pending = False  # a _show_latest is queued on the event loop
        self._figs = None  # (spectrogram, class bars) of the newest step, built with the views
        self._build_controls()
        self._build_views()

    # -- widgets -----------------------------------------------------------------------
    def _build_controls(self) -> None:
        w = pn.widgets
        self.kind = w.RadioButtonGroup(name="Target", options=["class", "unit", "channel"],
                                       value="class", css_classes=["hs-actmax-kind"])
        self.cls = w.Select(name="Class", options={n: i for i, n in enumerate(self.labels)},
                            css_classes=["hs-actmax-class"])
        self.score = w.RadioButtonGroup(name="Class score", options=list(CLASS_SCORES),
                                        value="probability", css_classes=["hs-actmax-score"])
        self.layer = w.Select(name="Layer", options=list(self.layers), visible=False)
        self.index = w.TextInput(name="Index (unit: one per axis, e.g. 2,5,1)", value="0",
                                 visible=False)
        self.layer_note = pn.pane.Markdown("", visible=False, css_classes=["hs-actmax-layer-note"])
        self.mode = w.RadioButtonGroup(name="Mode", options=list(MODES), value="noise-to-class")
        # The prior is offered for hearsight's own features only (greyed out with the way to
        # train one when none is loaded); another model's input has none to offer.
        own = self.space.own_features
        # On by default where a prior is loaded (the default model's is trained on first use):
        # unconstrained inputs maximise a class with noise no person would call a word.
        with_prior = self.prior is not None
        self.use_prior = w.Checkbox(name="Decoder prior (latent space)", value=with_prior,
                                    disabled=self.prior is None, visible=own,
                                    css_classes=["hs-actmax-prior"])
        self.prior_note = pn.pane.Markdown(PRIOR_HINT if self.prior is None else "",
                                           visible=own and self.prior is None)
        self.steps = w.IntInput(name="Steps", value=20, start=1, end=2000)
        lr_input = LR_INPUT if own else LR_INPUT_FOREIGN
        self.lr = w.FloatInput(name="Learning rate", value=LR_LATENT if with_prior else lr_input,
                               start=1e-5, end=10.0, step=0.01)
        self.starts = w.IntInput(name="Starts", value=8, start=1, end=1024)
        self.l2 = w.FloatInput(name="L2 weight", value=0.0, start=0.0)
        self.tv = w.FloatInput(name="TV weight", value=0.0, start=0.0)
        self.jitter = w.IntInput(name="Jitter (frames)", value=0, start=0, end=50)
        self.seed = w.IntInput(name="Seed", value=0, start=0)
        self.run_button = w.Button(name="Run", button_type="primary", css_classes=["hs-actmax-run"])
        self.stop_button = w.Button(name="Stop", disabled=True, css_classes=["hs-actmax-stop"])
        self._index_from = ""  # the layer note's line on where the index came from
        self.kind.param.watch(self._on_kind, "value")
        self.layer.param.watch(self._on_layer, "value")
        self.use_prior.param.watch(
            lambda e: setattr(self.lr, "value", LR_LATENT if e.new else lr_input), "value")
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())

    def _on_kind(self, event) -> None:
        self.cls.visible = self.score.visible = event.new == "class"
        self.layer.visible = self.index.visible = event.new != "class"
        self._set_live_index()
        self._show_layer_note()

    def _on_layer(self, event) -> None:
        self._set_live_index()
        self._show_layer_note()

    def _reference_acts(self) -> tuple[dict, str]:
        """``({layer: activation of one example}, what it is of)``: the current clip's (its
        cached analysis), else one seeded noise start's, as a noise-to-class run begins."""
        clip = self.session.clip
        if clip is not None:
            return self.session.analyse(clip.wave).acts, "the current clip"
        from engine.actmax import noise_start

        x = noise_start(jax.random.PRNGKey(0), 1, self.space.shape, sigma=self.space.sigmas[0],
                        mean=self.space.noise_mean)
        _, acts = self.predictor.run(np.asarray(x))
        return {k: np.asarray(v)[0] for k, v in acts.items()}, "a noise start"

    def _set_live_index(self) -> None:
        """Start a unit / channel target on a live one (index 0 was often a dead filter that
        no step can raise): the most active channel, or the largest unit, of the layer for the
        current clip (a noise start before any clip)."""
        name = self.layer.value
        self._index_from = ""
        if self.kind.value == "class" or name not in self.layers:
            return
        try:
            acts, source = self._reference_acts()
        except Exception as exc:  # noqa: BLE001 - a default must never break the page
            self.session.error(f"Could not find a live {self.kind.value}: {exc}")
            return
        if name in acts:
            self.index.value = live_index(acts[name], self.kind.value)
            what = "channel" if self.kind.value == "channel" else "unit"
            self._index_from = f" · index {self.index.value}: the most active {what} on {source}"

    def _show_layer_note(self) -> None:
        """What an index means for the chosen layer: its kind, shape and what a channel is."""
        name = self.layer.value
        if self.kind.value == "class" or name not in self.layers:
            self.layer_note.visible = False
            return
        shape = self.layers[name]
        kind_of = getattr(self.predictor, "layer_kind", None)
        kind = (kind_of(name) if kind_of is not None and name in self.predictor.layer_names
                else {3: "freq_time", 2: "time", 1: "vector"}.get(len(shape), "other"))
        over = {"freq_time": "frequency and time", "time": "time", "sequence": "time"}.get(kind)
        what = (f"channel: one index below {shape[-1]} (mean over {over}); " if over else "")
        self.layer_note.object = (f"`{name}`: {kind} {' × '.join(map(str, shape))} · {what}"
                                  f"unit: {len(shape)} index(es)"
                                  + self._index_from)
        self.layer_note.visible = True

    def _build_views(self) -> None:
        from viz.figstyle import BLUE, ORANGE, legend_below, new_figure

        self.curve_source = ColumnDataSource({"step": [], "best": [], "mean": []})
        fig = new_figure(title="Objective per step", height=240, x_axis_label="step",
                         y_axis_label="objective")
        fig.line("step", "best", source=self.curve_source, color=BLUE, legend_label="best start")
        fig.line("step", "mean", source=self.curve_source, color=ORANGE, legend_label="mean")
        legend_below(fig)  # bottom right, it covered the curves of a falling objective
        fig.css_classes = ["hs-actmax-curve"]  # the pane's classes do not reach the figure
        self.curve = pn.pane.Bokeh(fig, css_classes=["hs-actmax-curve"])
        self.step_md = live_text("", css_class="hs-actmax-step")
        # The step's figures are built with the page, hidden until the first step: built at
        # that step, they cost a walk of the whole document (5 % of the server's time with 12
        # sessions) and delayed the first step's picture.
        self._figs = self._step_figures(self._silent_picture(),
                                        np.full(len(self.labels), 1.0 / len(self.labels)),
                                        "Best start after step 0")
        self.spec = pn.Column(pn.pane.Bokeh(self._figs[0]), sizing_mode="stretch_width",
                              css_classes=["hs-actmax-spec"], visible=False)
        self.probs = pn.Column(pn.pane.Bokeh(self._figs[1]), sizing_mode="stretch_width",
                               css_classes=["hs-actmax-probs"], visible=False)
        self.verdict = live_text("", css_class="hs-actmax-verdict")
        self.shortfall = live_text("", css_class="hs-actmax-not-reached", visible=False)
        self.audio = pn.pane.Audio(None, sample_rate=self.space.sample_rate, visible=False,
                                   css_classes=["hs-actmax-audio"])
        self.wav_download = pn.widgets.FileDownload(
            callback=lambda: io.BytesIO(self.wav_bytes()), filename="maximised.wav",
            disabled=True, css_classes=["hs-actmax-wav"])
        self.npz_download = pn.widgets.FileDownload(
            callback=lambda: io.BytesIO(self.npz_bytes()), filename="maximised.npz",
            disabled=True, css_classes=["hs-actmax-npz"])

    # -- configuration -----------------------------------------------------------------
    def config(self) -> dict:
        """The widgets' values as a JSON-friendly dict."""
        return dict(kind=self.kind.value, cls=int(self.cls.value or 0), score=self.score.value,
                    layer=self.layer.value,
                    index=self.index.value, mode=MODES[self.mode.value],
                    prior=bool(self.use_prior.value), steps=int(self.steps.value),
                    lr=float(self.lr.value), starts=int(self.starts.value),
                    l2=float(self.l2.value), tv=float(self.tv.value),
                    jitter=int(self.jitter.value), seed=int(self.seed.value))

    # -- running -----------------------------------------------------------------------
    def run(self):
        """Start a maximisation from the widgets' values; returns the Job (None if refused)."""
        cfg = self.config()
        try:
            if self.runner.active:  # refuse before touching the running job's result
                raise JobError(f"a {self.runner.active[0].name} is still running (the limit is "
                               f"{self.runner.max_jobs}); press Stop first")
            init, step, x0, key, target = setup_run(
                cfg, predictor=self.predictor, prior=self.prior, layers=self.layers,
                session=self.session)
        except (ValueError, JobError) as exc:
            self.session.error(f"Maximisation not started: {exc}")
            return None
        self.result = dict(cfg=cfg, target=-1 if target is None else target, history=[], x=None,
                           picture=None)
        self._latest, self._shown, self._push_pending = None, 0, False
        # Bokeh models (unlike Panel widgets) may only change on the document's event loop;
        # this callback runs in Panel's thread pool, so the reset is pushed there.
        self.runner.push(lambda: setattr(self.curve_source, "data",
                                         {"step": [], "best": [], "mean": []}))
        try:
            self.job = self.runner.start(partial(self._steps, init, step, x0, key),
                                         name="maximisation", on_end=self._finish)
        except JobError as exc:
            self.session.error(str(exc))
            return None
        self._set_running(True)
        return self.job

    def stop(self) -> None:
        if self.job is not None:
            self.job.stop()

    def _set_running(self, running: bool) -> None:
        self.run_button.disabled, self.stop_button.disabled = running, not running
        if running:
            self.verdict.value, self.audio.visible = "", False
            self.shortfall.value, self.shortfall.visible = "", False
            self.wav_download.disabled = self.npz_download.disabled = True

    def _steps(self, init, step, x0, key, job):
        state, n = init(x0, key=key), self.result["cfg"]["steps"]
        cfg = self.result["cfg"]
        if cfg["kind"] != "class":  # to tell at the end whether the target rose at all
            self.result["start"] = start_objective(cfg, x0, predictor=self.predictor,
                                                   prior=self.prior, layers=self.layers)
        for i in range(n):
            state, metrics = step(state)
            values = np.asarray(metrics["objective"])
            best = int(np.argmax(values))
            x_best = np.asarray(metrics["x"][best])
            # The picture here, in the worker: a waveform's STFT must not hold up the page.
            picture = picture_of(self.predictor, x_best)
            # The step's own forward pass gave every class's probability: classifying the
            # best start again when drawing would block the event loop on a forward pass.
            probs = np.asarray(metrics["probs"][best])
            self.result["history"].append(values)
            self.result["x"], self.result["picture"] = x_best, picture
            self._latest = (i + 1, n, picture, probs, job.waited_s)
            # One draw queued at a time: when steps outpace the page (a busy server), the
            # queued draw shows the newest step and the ones in between are skipped.
            if not self._push_pending:
                self._push_pending = True
                self.runner.push(self._show_latest)
            yield

    def _show_latest(self) -> None:
        """Draw the newest step. Served, the pushed callbacks were seen to run out of order,
        so each one shows whatever is newest and streams only the curve points not yet drawn
        (never a stale step, never a point twice or out of order)."""
        with self._show_lock:
            self._push_pending = False  # before reading: a newer step queues another draw
            if self._latest is None or self._latest[0] <= self._shown:
                return
            k, n, picture, probs, waited = self._latest
            done, self._shown = self._shown, k
            rows = self.result["history"][done:k]
            self.curve_source.stream({"step": list(range(done + 1, k + 1)),
                                      "best": [float(v.max()) for v in rows],
                                      "mean": [float(v.mean()) for v in rows]})
            self._show_step(k, n, picture, probs, first_new=done + 1, waited=waited)

    def _show_step(self, k: int, n: int, picture, probs, *, first_new: int,
                   waited: float = 0.0) -> None:
        """Show step ``k`` of ``n``: the best start's ``picture`` (freq, time) and ``probs``."""
        from viz.refresh import refresh_image, refresh_probability_bars

        # On a busy server steps wait for other people's clicks (serve/priority.py): say so,
        # rather than leave a slow run unexplained.
        self.step_md.value = f"step {k} / {n}" + (
            f" · waited {waited:.0f} s for other sessions (busy server)" if waited >= 1 else "")
        top = min(10, len(self.labels))
        spec_title = f"Best start after step {k}"
        # After the first step only the figures' data change: building two new figures per
        # step (and copying their data over) was a sixth of the server's time in a run.
        if not (refresh_image(self._figs[0], picture, title=spec_title)
                and refresh_probability_bars(self._figs[1], probs, self.labels, top=top,
                                             title="Best start's classes")):
            self._figs = self._step_figures(picture, probs, spec_title)
            with one_walk():
                self.spec.objects = [pn.pane.Bokeh(self._figs[0])]
                self.probs.objects = [pn.pane.Bokeh(self._figs[1])]
        self.spec.visible = self.probs.visible = True
        for j in range(first_new, k + 1):
            for hook in list(self.step_hooks):
                hook(j, n)

    def _silent_picture(self) -> np.ndarray:
        """The picture of silence (the figures' content before the first step)."""
        baseline = getattr(self.predictor, "baseline_input", None)
        if baseline is None:
            return np.full(self.params.shape, self.params.floor, np.float32)
        return picture_of(self.predictor, baseline())

    def _step_figures(self, picture, probs, title: str):
        """``(picture, class bars)`` of a step's best start (``picture``: freq, time)."""
        from viz.plots import probability_bars

        label = "log10" if self.space.own_features or self.space.kind == "waveform" else "value"
        return (picture_figure(self.space, picture, title=title, height=240, value_label=label),
                probability_bars(probs, self.labels, top=min(10, len(self.labels)),
                                 title="Best start's classes"))

    def _finish(self, job) -> None:
        if self.result["x"] is None:
            self.runner.push(lambda: self._set_running(False))
            return
        x = self.result["x"]
        wave = hear(self.predictor, x, seed=0)
        own = class_probs(self.predictor.acts_fn, x)
        sep = None if self.separate is None else class_probs(self.separate.acts_fn, x)
        start = self.result.get("start")
        shortfall = target_shortfall(
            self.result["cfg"], self.labels, own,
            start_best=None if start is None else float(np.max(start)),
            final_best=float(np.max(self.result["history"][-1])))
        self.result.update(wave=wave, own=own, separate=sep, status=job.status,
                           shortfall=shortfall)
        self.runner.push(partial(self._show_result, job.status))

    def _show_result(self, status: str) -> None:
        r = self.result
        lines = [f"<b>Run {esc(status)}</b> after {len(r['history'])} step(s).",
                 f"Own classifier: <b>{esc(self.verdict_of(r['own']))}</b>"]
        lines.append("Separate classifier: " + (f"<b>{esc(self.verdict_of(r['separate']))}</b>"
                                                if r["separate"] is not None else
                                                "<i>not loaded</i> (serve with a second model)"))
        self.verdict.value = "<br>".join(lines)
        self.shortfall.value = r["shortfall"] or ""
        self.shortfall.visible = r["shortfall"] is not None
        self.audio.object, self.audio.visible = np.clip(r["wave"], -0.99, 0.99), True
        self.wav_download.disabled = self.npz_download.disabled = False
        self._set_running(False)

    def verdict_of(self, probs: np.ndarray) -> str:
        top = int(np.argmax(probs))
        return f"{self.labels[top]} ({probs[top]:.1%})"

    # -- downloads ---------------------------------------------------------------------
    def wav_bytes(self) -> bytes:
        from data.audio import to_wav_bytes

        return to_wav_bytes(self.result["wave"], self.space.sample_rate)

    def npz_bytes(self) -> bytes:
        r = self.result
        picture = None if self.space.own_features else r["picture"]
        return npz_bytes(r["x"], np.stack(r["history"]), r["target"], r["cfg"], picture=picture)

    def view(self):
        controls = pn.Column(self.kind, self.cls, self.score, self.layer, self.index,
                             self.layer_note, self.mode,
                             self.use_prior, self.prior_note, self.steps, self.lr, self.starts,
                             self.l2, self.tv, self.jitter, self.seed,
                             pn.Row(self.run_button, self.stop_button), width=320)
        # Stacked: side by side, the spectrogram was squeezed until its tick labels overlapped.
        results = pn.Column(self.step_md, self.curve, self.spec, self.probs,
                            self.verdict, self.shortfall, self.audio,
                            pn.Row(self.wav_download, self.npz_download),
                            sizing_mode="stretch_width")
        return pn.Row(controls, results, sizing_mode="stretch_width")
