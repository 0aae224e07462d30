"""A small ctypes binding of the eSpeak NG speech synthesiser (shipped by ``espeakng_loader``).

Only the handful of calls that :mod:`data.synth` needs: initialise once per process in
``AUDIO_OUTPUT_SYNCHRONOUS`` mode, collect the int16 samples in a callback, and speak plain
text with a voice, pitch, pitch range and rate. The library keeps global state (current
voice, parameters, output buffer), so every synthesis holds a module lock; separate
processes each load their own copy and need no coordination.

References: eSpeak NG ``speak_lib.h`` (API revision 12).
"""

from __future__ import annotations

import ctypes
import os
import re
import threading
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_EE_OK = 0

# Plain words only: the library would interpret "<...>" as SSML and "[[...]]" as phonemes
# when asked to, and control characters have no business in a spoken word.
_TEXT_RE = re.compile(r"^[A-Za-z' \-]+$")
MAX_TEXT_CHARS = 40


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


class _Engine:
    """Process-wide handle: the loaded library, its sample rate and the sample sink."""

    def __init__(self) -> None:
        import espeakng_loader

        self.lock = threading.Lock()
        self.chunks: list[np.ndarray] = []
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.data_path = espeakng_loader.get_data_path()
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                               ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
                                          ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                          ctypes.c_void_p, ctypes.c_void_p]
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                          self.data_path.encode(), 0)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {rate}) with data "
                               f"path {self.data_path}")
        self.sample_rate = int(rate)
        # The breathy variants (f2, f3, f5, ...) mix in noise from the library's own
        # generator, which espeak_Initialize seeds with time(NULL): the same clip differed
        # from one second to the next (490 of the synth corpus's 3,360 clips between two
        # builds). It is reseeded before every utterance from what is spoken (and the C
        # library's rand(), which it also calls, with it).
        self.set_seed = getattr(self.lib, "espeak_ng_SetRandSeed", None)  # NG >= 1.51
        if self.set_seed is not None:
            self.set_seed.argtypes, self.set_seed.restype = [ctypes.c_long], None
        self.libc = ctypes.CDLL(None)
        self.libc.srand.argtypes = [ctypes.c_uint]
        self._callback = _CALLBACK(self._collect)  # keep a reference: C holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, n, events) -> int:
        if wav and n > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # 0 = continue synthesis

    def speak(self, text: str, *, voice: str, pitch: int, pitch_range: int,
              rate: int) -> np.ndarray:
        with self.lock:
            self.chunks = []
            if self.lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise ValueError(f"eSpeak NG has no voice {voice!r}")
            for param, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range),
                                 (_VOLUME, 100)):
                self.lib.espeak_SetParameter(param, int(value), 0)
            data = text.encode("utf-8") + b"\0"
            seed = zlib.crc32(f"{voice}|{pitch}|{pitch_range}|{rate}|{text}".encode())
            if self.set_seed is not None:
                self.set_seed(seed)
            self.libc.srand(seed)
            err = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                        None, None)
            self.lib.espeak_Synchronize()
            if err != _EE_OK:
                raise RuntimeError(f"espeak_Synth failed with code {err} for {text!r}")
            chunks, self.chunks = self.chunks, []
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


_ENGINE: _Engine | None = None
_ENGINE_PID: int | None = None
_INIT_LOCK = threading.Lock()


def engine() -> _Engine:
    """The process's engine, initialised on first use (again after a fork)."""
    global _ENGINE, _ENGINE_PID
    with _INIT_LOCK:
        if _ENGINE is None or _ENGINE_PID != os.getpid():
            _ENGINE, _ENGINE_PID = _Engine(), os.getpid()
        return _ENGINE


def native_rate() -> int:
    """Sample rate of the library's output in Hz (22050 for the shipped voices)."""
    return engine().sample_rate


@lru_cache(maxsize=1)
def english_base_voices() -> tuple[str, ...]:
    """Language codes of the English voices shipped in the data folder (sorted).

    Read from ``espeak-ng-data/lang/gmw/en*``; the Shavian-alphabet voice is left out
    because it reads Latin letters as something else.
    """
    import espeakng_loader

    folder = Path(espeakng_loader.get_data_path()) / "lang" / "gmw"
    names = [p.name.lower() for p in folder.glob("en*") if p.is_file()]
    return tuple(sorted(n for n in names if n != "en-shaw"))


@lru_cache(maxsize=1)
def voice_variants() -> tuple[str, ...]:
    """Names of the voice variants in ``espeak-ng-data/voices/!v`` (sorted)."""
    import espeakng_loader

    folder = Path(espeakng_loader.get_data_path()) / "voices" / "!v"
    return tuple(sorted(p.name for p in folder.iterdir()
                        if p.is_file() and re.fullmatch(r"[A-Za-z0-9]+", p.name)))


def check_text(text: str) -> str:
    """``text`` stripped, or ``ValueError`` unless it is a short plain word or phrase."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    t = text.strip(" ")  # only spaces: a stray newline or tab is rejected, never stripped
    if not t or len(t) > MAX_TEXT_CHARS or not _TEXT_RE.fullmatch(t):
        raise ValueError(f"text must be 1..{MAX_TEXT_CHARS} letters, spaces, apostrophes or "
                         f"hyphens, got {text!r}")
    return t


def speak(text: str, *, voice: str = "en", pitch: int = 50, pitch_range: int = 50,
          rate: int = 175) -> tuple[np.ndarray, int]:
    """Speak plain ``text`` and return ``(int16 samples, sample rate in Hz)``.

    ``voice`` is an eSpeak NG voice name such as ``"en-us"`` or ``"en-us+m3"`` (caller
    validates); ``pitch`` and ``pitch_range`` are 0..100 (50 normal); ``rate`` is words per
    minute, 80..450.
    """
    t = check_text(text)
    if not (0 <= pitch <= 100 and 0 <= pitch_range <= 100 and 80 <= rate <= 450):
        raise ValueError(f"need pitch, pitch_range in 0..100 and rate in 80..450 wpm, got "
                         f"{pitch}, {pitch_range}, {rate}")
    eng = engine()
    return eng.speak(t, voice=voice, pitch=pitch, pitch_range=pitch_range, rate=rate), \
        eng.sample_rate
