"""The sidebar every page shares: upload, record, pick a corpus item, or synthesise a word."""

from __future__ import annotations

import logging

import panel as pn

from data.names import safe_basename
from serve.recorder import Recorder
from serve.text import esc, live_text
from serve.upload import Upload

ACCEPT = ".wav,.flac,.ogg,.mp3,.WAV,.FLAC,.OGG,.MP3"
log = logging.getLogger("hearsight.serve.audio_in")


class AudioIn:
    """Widgets that bring audio into a :class:`serve.session.Session`."""

    def __init__(self, session):
        self.session = session
        self.upload = Upload(accept=ACCEPT, max_bytes=session.shared.limits.upload_bytes,
                             css_classes=["hs-upload"], sizing_mode="stretch_width")
        self.upload.param.watch(self._on_upload, "upload")
        self.upload.param.watch(self._on_refused, "refused")
        self.recorder = Recorder(seconds=1.5, css_classes=["hs-recorder"])
        self.recorder.param.watch(self._on_record, "value")
        self.recorder.param.watch(self._on_record_error, "error")
        self.label = pn.widgets.Select(name="Label", options=["(any)"])
        self.speaker = pn.widgets.Select(name="Speaker", options=["(any)"])
        self.item = pn.widgets.Select(name="Corpus item", options=[], css_classes=["hs-item"])
        self.pick = pn.widgets.Button(name="Load item", button_type="primary")
        self.word = pn.widgets.TextInput(name="Word to synthesise", placeholder="e.g. seven",
                                         max_length=40)
        self.voice = pn.widgets.Select(name="Voice", options=[])
        self.say = pn.widgets.Button(name="Synthesise", button_type="primary")
        self.now = live_text("<i>No clip yet: upload, record, pick or synthesise one.</i>",
                             css_class="hs-now")
        self.pick.on_click(self._on_pick)
        self.say.on_click(self._on_say)
        self._refreshing = False
        self.item.param.watch(self._on_item, "value")
        self.label.param.watch(self._filter, "value")
        self.speaker.param.watch(self._filter, "value")
        session.on_clip(self._show_clip, first=True)
        self._init_corpus()
        self._init_voices()

    def _init_corpus(self) -> None:
        self._items = self.session.shared.corpus_items()
        labels = sorted({it.label for it in self._items})
        speakers = sorted({it.speaker for it in self._items if it.speaker})
        self.label.options = ["(any)", *labels]
        self.speaker.options = ["(any)", *speakers]
        self._filter()

    def _init_voices(self) -> None:
        try:
            from data.synth import list_voices

            voices = list_voices()
        except Exception as exc:  # the synthesiser is optional for the rest of the app
            voices = []
            self.say.disabled = True
            self.say.name = f"Synthesiser unavailable ({type(exc).__name__})"
        self.voice.options = list(voices)
        if voices:
            self.voice.value = "en-us" if "en-us" in voices else voices[0]

    def _filter(self, *_):
        self._refreshing = True
        try:
            self._refresh_items()
        finally:
            self._refreshing = False

    def _on_item(self, event) -> None:
        # Choosing an item loads it at once (the button reloads it); option refreshes don't.
        if not self._refreshing and event.new is not None:
            self._on_pick()

    def _refresh_items(self) -> None:
        items = [it for it in self._items
                 if self.label.value in ("(any)", it.label)
                 and self.speaker.value in ("(any)", it.speaker)]
        options = {f"{it.label} · {it.speaker or '?'} · {it.id.rsplit('/', 1)[-1]}": it
                   for it in items[:500]}
        self.item.options = options
        # Panel leaves the value None when options arrive later, which showed an empty box
        # and made "Load item" complain; preselect the first match instead.
        if self.item.value not in options.values():
            self.item.value = next(iter(options.values()), None)

    def _on_upload(self, event) -> None:
        # Every upload carries a new sequence number: the same file again is a new value.
        if not event.new:
            return
        name = self.upload.file_name()
        size = len(event.new.get("data") or "") * 3 // 4

        def load():
            try:
                data = self.upload.file_bytes()
            except ValueError as exc:
                self.session.error(f"{safe_basename(name)}: {exc}")
                return
            self.session.load_bytes(data, name, source="upload")

        self._guarded("upload", name, size, load)

    def _on_refused(self, event) -> None:
        """A file the browser did not send (over the upload limit): say so here too."""
        from data.limits import bytes_over

        info = event.new or {}
        size, name = info.get("size"), info.get("name")
        if isinstance(size, int) and isinstance(name, str):
            self.session.error(f"{safe_basename(name)}: file is "
                               f"{bytes_over(size, self.upload.max_bytes)}; not uploaded "
                               "(trim it first)")

    def _guarded(self, what: str, name: str, size: int, load) -> None:
        """Run ``load``; an unexpected failure is shown and logged as name, size and reason.

        Left to Panel, a failing watcher is logged with the changed property, which for an
        upload is the whole file as text (57 MB of log for a 15 MB upload)."""
        try:
            load()
        except Exception as exc:  # noqa: BLE001 - the session must go on, and quietly
            reason = f"{type(exc).__name__}: {str(exc)[:200]}"
            log.error("%s failed: %s, %d bytes: %s", what, safe_basename(name), size, reason)
            self.session.error(f"{safe_basename(name)}: could not be loaded ({reason}).")

    def _on_record(self, event) -> None:
        if not event.new:
            return
        try:
            data = self.recorder.wav_bytes()
        except ValueError as exc:
            self.session.error(str(exc))
            return
        name = f"recording-{self.recorder.count}.wav"
        self._guarded("recording", name, len(data),
                      lambda: self.session.load_bytes(data, name, source="record"))

    def _on_record_error(self, event) -> None:
        if event.new:
            self.session.error(f"Recording failed: {event.new}. Allow microphone access, or upload a file.")

    def _on_pick(self, _=None) -> None:
        it = self.item.value
        if it is None:
            self.session.error("No corpus item selected: choose a label/speaker, then an item.")
            return
        with open(it.path, "rb") as fh:
            self.session.load_bytes(fh.read(), it.id.rsplit("/", 1)[-1], source="corpus")

    def _on_say(self, _=None) -> None:
        from data.synth import synthesise_word

        try:
            wave = synthesise_word(self.word.value.strip(), voice=self.voice.value,
                                   sample_rate=16000)
        except ValueError as exc:
            self.session.error(str(exc))
            return
        self.session.load_wave(wave, 16000, f"{self.word.value.strip()} ({self.voice.value})",
                               source="synth")

    def _show_clip(self, clip) -> None:
        self.now.value = f"<b>Current clip:</b> {esc(clip.name)} · {esc(clip.source)}"

    def view(self):
        from serve.model_card import model_card

        about = pn.pane.HTML(model_card(self.session.predictor.metadata),
                             css_classes=["hs-model-card"], sizing_mode="stretch_width",
                             styles={"font-size": "12px", "line-height": "1.35"})
        return pn.Column(
            about, self.now, self.session.alert,
            pn.pane.Markdown("#### Upload (or drop a file)"), self.upload,
            pn.pane.Markdown("#### Record"), self.recorder,
            pn.pane.Markdown("#### Corpus"), self.label, self.speaker, self.item, self.pick,
            pn.pane.Markdown("#### Synthesise"), self.word, self.voice, self.say,
            sizing_mode="stretch_width")
