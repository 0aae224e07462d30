"""State of one browser session: the current clip, its analysis, and the audio-in sidebar."""

from __future__ import annotations

import contextlib
import hashlib
import html
import threading
from dataclasses import dataclass, field

import numpy as np
import panel as pn


@dataclass(frozen=True)
class Clip:
    """A clip ready for the model: ``wave`` is ``params.n_samples`` float32 samples."""

    name: str
    wave: np.ndarray
    sample_rate: int
    source: str = "upload"  # upload | record | corpus | synth | edit


@dataclass(frozen=True)
class Analysis:
    """Everything the Inspect views need for one clip (batch axis removed)."""

    features: np.ndarray  # the model input: (freq, time) features, or (n_samples,) for a waveform model
    probs: np.ndarray  # (classes,)
    acts: dict = field(default_factory=dict)  # name -> array without the batch axis
    picture: np.ndarray | None = None  # (freq, time) picture of the input (predictor.picture)

    @property
    def top(self) -> int:
        return int(np.argmax(self.probs))


class Session:
    """One user's state. Listeners are called (in a worker thread) when the clip changes."""

    def __init__(self, shared):
        self.shared = shared
        self.predictor = shared.predictor
        self.params = shared.predictor.params
        self.clip: Clip | None = None
        self._listeners: list = []  # (tab name or None, callback)
        self._registering_tab: str | None = None
        self._stale: set[str] = set()
        self.active_tab: str | None = None
        self._cache: dict[str, Analysis] = {}
        self._lock = threading.Lock()
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False,
                                   css_classes=["hs-alert"], sizing_mode="stretch_width")

    # -- clips -------------------------------------------------------------------------
    def on_clip(self, callback, *, first: bool = False) -> None:
        """Call ``callback(clip)`` on every new clip; ``first`` puts it before the others
        (cheap listeners such as the sidebar's "current clip" line should not wait for
        every page's analysis). Inside :meth:`tab` the listener belongs to that tab and runs
        only while the tab is shown (or when it is next shown)."""
        tab = self._registering_tab
        entry = (tab, callback)
        if first:
            self._listeners.insert(0, entry)
        else:
            self._listeners.append(entry)

    @contextlib.contextmanager
    def tab(self, name: str):
        """Register the listeners of the page built inside the block under tab ``name``."""
        self._registering_tab = name
        try:
            yield
        finally:
            self._registering_tab = None

    def show(self, name: str) -> None:
        """Bring tab ``name`` to the front (the app wires :attr:`tab_switcher` to its tabs)."""
        switch = getattr(self, "tab_switcher", None)
        if switch is not None:
            switch(name)
        self.activate(name)

    def activate(self, name: str) -> None:
        """The tab ``name`` is now shown: bring its page up to date with the current clip.

        Hidden pages do no work for a new clip (with six pages, recomputing all of them on
        every clip made each interaction several times slower); they catch up here.
        """
        self.active_tab = name
        pending, self._stale = [t for t in self._stale if t == name], self._stale - {name}
        if pending and self.clip is not None:
            for tab, cb in list(self._listeners):
                if tab == name:
                    cb(self.clip)

    def set_clip(self, clip: Clip) -> None:
        from serve.priority import interactive

        self.clip = clip
        self.clear_error()
        with interactive():  # long jobs pause until the pages have drawn the clip
            for tab, cb in list(self._listeners):
                if tab is None or tab == self.active_tab:
                    cb(clip)
                else:
                    self._stale.add(tab)

    def load_bytes(self, data: bytes, name: str, *, source: str = "upload") -> bool:
        """Decode uploaded/recorded bytes; on bad input show the reason and keep going."""
        from data.audio import AudioError, check_not_silent, fit_to_window, load_audio, peak_normalise
        from data.limits import bytes_over

        limits = self.shared.limits
        try:
            if len(data) > limits.upload_bytes:
                raise AudioError(f"{safe_name(name)}: file is "
                                 f"{bytes_over(len(data), limits.upload_bytes)}; trim it first")
            wave, sr = load_audio(data, sample_rate=self.params.sample_rate,
                                  max_seconds=limits.clip_seconds, name=safe_name(name),
                                  max_bytes=limits.upload_bytes)
            check_not_silent(wave, name=safe_name(name))
        except AudioError as exc:
            self.error(str(exc))
            return False
        wave = peak_normalise(fit_to_window(wave, self.params.n_samples))
        self.set_clip(Clip(safe_name(name), wave.astype(np.float32), sr, source))
        return True

    def load_wave(self, wave: np.ndarray, sample_rate: int, name: str, *, source: str) -> bool:
        from data.audio import AudioError, check_not_silent, fit_to_window, peak_normalise

        try:
            if sample_rate != self.params.sample_rate:
                import librosa

                wave = librosa.resample(np.asarray(wave, np.float32), orig_sr=sample_rate,
                                        target_sr=self.params.sample_rate)
            check_not_silent(wave, name=name)
        except AudioError as exc:
            self.error(str(exc))
            return False
        wave = peak_normalise(fit_to_window(np.asarray(wave, np.float32), self.params.n_samples))
        self.set_clip(Clip(name, wave.astype(np.float32), self.params.sample_rate, source))
        return True

    # -- analysis ----------------------------------------------------------------------
    def analyse(self, wave: np.ndarray) -> Analysis:
        """Features, probabilities and every intermediate of one prepared waveform (cached)."""
        key = hashlib.sha1(np.ascontiguousarray(wave, np.float32).tobytes()).hexdigest()
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        x = self.predictor.features(wave[None])
        probs, acts = self.predictor.run(x)
        result = Analysis(features=x[0], probs=np.asarray(probs[0]),
                          acts={k: np.asarray(v[0]) for k, v in acts.items()},
                          picture=np.asarray(self.predictor.picture(x)[0]))
        with self._lock:
            if len(self._cache) > 8:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = result
        return result

    # -- messages ----------------------------------------------------------------------
    def error(self, message: str) -> None:
        # Messages quote user-supplied names; escape them so a name is never rendered as HTML.
        message = html.escape(message, quote=False)
        self.alert.object = message
        self.alert.visible = True
        if pn.state.notifications is not None:
            pn.state.notifications.error(message, duration=8000)

    def clear_error(self) -> None:
        self.alert.visible = False

    def sidebar(self):
        from serve.audio_in import AudioIn

        self.audio_in = AudioIn(self)
        return self.audio_in.view()

    def open_example(self) -> bool:
        """Load the sidebar's preselected corpus item, before the page is first sent.

        A new page then opens on a real clip, with its figures already in the document: the
        user's first pick only swaps their data, instead of building a dozen figures while
        they wait (1.2 s at the 95th percentile with 5 sessions on this 2-core machine).
        """
        from serve.jobs import session_runner

        audio_in = getattr(self, "audio_in", None)
        if audio_in is None or audio_in.item.value is None:
            return False
        runner = session_runner(self)
        runner.immediate = True
        try:
            audio_in._on_pick()
        finally:
            runner.immediate = False
        return self.clip is not None


def safe_name(name, limit: int = 80) -> str:
    """A display name for a user-supplied file name: no path parts, printable, bounded."""
    from data.names import safe_basename

    return safe_basename(name, limit=limit)
