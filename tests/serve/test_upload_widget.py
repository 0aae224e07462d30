"""The sidebar's upload widget, driven as the browser drives it (``_process_events`` with what
``serve/upload.py``'s script sends): the same file again always loads, an oversized file is
refused with the limit named, and a failing upload is logged by name and size, never by its
content."""

from __future__ import annotations

import base64
import io
import logging

import numpy as np
import pytest
import soundfile as sf

from serve.config import Limits


class _Shared:
    def __init__(self, predictor, limits=None):
        self.predictor, self.limits = predictor, limits or Limits()

    def corpus_items(self):
        return []


def _wav(freq: float, seconds: float = 0.5, rate: int = 8000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate, format="WAV")
    return buf.getvalue()


@pytest.fixture(scope="module")
def predictor(tiny_checkpoint):
    from engine.predictor import Predictor

    return Predictor.load(tiny_checkpoint)


@pytest.fixture()
def audio_in(predictor):
    from serve.audio_in import AudioIn
    from serve.session import Session

    session = Session(_Shared(predictor))
    widget = AudioIn(session)
    widget.loaded = []
    session.on_clip(lambda clip: widget.loaded.append(clip.name))
    return widget


def _browser_upload(widget, data: bytes, name: str) -> None:
    """What Panel does with the browser's upload (each carries the next sequence number)."""
    widget.sent = getattr(widget, "sent", 0) + 1
    widget.upload._process_events({"upload": {"name": name, "n": widget.sent,
                                              "data": base64.b64encode(data).decode()}})


def test_the_same_file_again_loads_again(audio_in):
    a = _wav(440.0)
    _browser_upload(audio_in, a, "a.wav")
    _browser_upload(audio_in, a, "a.wav")  # straight again
    audio_in.session.load_bytes(_wav(900.0), "other.wav")  # another clip in between
    _browser_upload(audio_in, a, "a.wav")
    _browser_upload(audio_in, a, "renamed.wav")  # same bytes, another name
    assert audio_in.loaded == ["a.wav", "a.wav", "other.wav", "a.wav", "renamed.wav"]
    assert audio_in.session.clip.name == "renamed.wav"


def test_the_browser_gets_the_upload_limit_and_its_refusals_are_shown(predictor):
    from serve.audio_in import AudioIn
    from serve.session import Session

    session = Session(_Shared(predictor, Limits(upload_bytes=12_345)))
    widget = AudioIn(session)
    assert widget.upload.max_bytes == 12_345
    widget.upload._process_events({"refused": {"name": "huge.wav", "size": 12_346, "n": 1}})
    assert session.alert.visible
    assert "huge.wav: file is 12,346 bytes, over the 12,345-byte limit" in session.alert.object
    # Past the browser (a hand-made client): refused before decoding, the session goes on.
    widget.upload._process_events({"upload": {"name": "sneaky.wav", "n": 2,
                                               "data": "A" * 40_000}})
    assert "sneaky.wav" in session.alert.object and "12,345-byte limit" in session.alert.object
    widget.upload._process_events({"upload": {"name": "ok.wav", "n": 3,
                                               "data": base64.b64encode(_wav(440.0, 0.5, 4000)
                                                                        ).decode()}})
    assert session.clip is not None and session.clip.name == "ok.wav"


class _Records(logging.Handler):
    """Records at INFO and above: what a server log holds (Panel's own debug lines, off by
    default, echo every received event)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.texts = []

    def emit(self, record):
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.texts.append(text)


def test_a_failing_upload_is_logged_by_name_and_size_only(audio_in, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(audio_in.session, "load_bytes", fail)
    records = _Records()
    loggers = [logging.getLogger(), logging.getLogger("panel"), logging.getLogger("bokeh")]
    for lg in loggers:
        lg.addHandler(records)
    data = _wav(440.0, seconds=10.0)  # 160 kB: 210 kB of base64, 640 kB as a bytes repr
    try:
        try:
            _browser_upload(audio_in, data, "big.wav")
        except RuntimeError:
            pass  # the old code let it through (after logging the whole value)
    finally:
        for lg in loggers:
            lg.removeHandler(records)
    assert records.texts, "the failure is logged"
    assert max(len(t) for t in records.texts) < 1000, [t[:200] for t in records.texts]
    assert any("big.wav" in t and f"{len(data)} bytes" in t and "decoder exploded" in t
               for t in records.texts)
    assert "could not be loaded" in audio_in.session.alert.object
    audio_in.session.load_bytes = type(audio_in.session).load_bytes.__get__(audio_in.session)
    _browser_upload(audio_in, _wav(440.0), "good.wav")  # the session goes on
    assert audio_in.loaded[-1] == "good.wav"
