"""The cases of the hostile-input matrix (``benchmarks/hostile_matrix.py`` runs them): audio
files (:func:`hostile_cases`, :func:`decoded_size_cases`), edit chains (:func:`chain_cases`) and
checkpoint folders (:func:`folder_cases`), each with whether it must be accepted and the words its
refusal must contain."""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf


ROOT = Path(__file__).resolve().parents[1]
RATE = 8000


@dataclass(frozen=True)
class Case:
    name: str
    filename: str | bytes
    data: bytes
    valid: bool
    keywords: tuple[str, ...] = ()
    cli_valid: bool | None = None  # None: as ``valid``
    cli_keywords: tuple[str, ...] | None = None  # None: as ``keywords``
    note: str = ""


def _tone(seconds: float = 1.0, rate: int = RATE, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1100 * t)).astype(np.float32)
    return np.tile(x[:, None], (1, channels)) if channels > 1 else x


def encode(x: np.ndarray, *, rate: int = RATE, subtype: str = "PCM_16",
           fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, subtype=subtype, format=fmt)
    return buf.getvalue()


def _with_sample(subtype: str, value: float) -> bytes:
    x = _tone()
    x[1234] = value
    return encode(x, subtype=subtype)


def gigabyte_header(payload: int = 1000) -> bytes:
    """A 16-bit WAV header whose data chunk claims 4,294,967,040 bytes, then ``payload`` bytes."""
    head = bytearray(encode(_tone(0.01))[:44])
    struct.pack_into("<I", head, 4, 0xFFFFFF08)
    struct.pack_into("<I", head, 40, 0xFFFFFF00)
    return bytes(head) + bytes(payload)


def _format_cases() -> list[Case]:
    wav = encode(_tone())
    return [
        Case("zero bytes", "empty.wav", b"", False, ("empty", "0 bytes")),
        Case("header only (44 bytes)", "header.wav", wav[:44], False, ("truncated", "header")),
        Case("truncated at half", "half.wav", wav[: len(wav) // 2], False, ("truncated",)),
        Case("truncated inside the header", "cut.wav", wav[:30], False,
             ("cannot be decoded", "data")),
        Case("random bytes", "noise.wav", np.random.default_rng(0).bytes(4096), False,
             ("cannot be decoded",)),
        Case("text file", "notes.txt", b"just some notes\n" * 40, False,
             ("cannot be decoded", "format")),
        Case("flac named .wav", "flac.wav", encode(_tone(), fmt="FLAC"), True),
        Case("wav named .mp3", "wav.mp3", wav, True),
        Case("mp3 named .wav", "mp3.wav", encode(_tone(), fmt="MP3", subtype="MPEG_LAYER_III"), True),
        Case("ogg vorbis", "clip.ogg", encode(_tone(), fmt="OGG", subtype="VORBIS"), True),
        Case("zero-frame wav", "noframes.wav", encode(np.zeros(0, np.float32)), False,
             ("empty", "0 samples")),
        Case("silent wav", "silent.wav", encode(np.zeros(RATE, np.float32)), False, ("silent",)),
    ]


def _sample_cases() -> list[Case]:
    out = [Case(f"{label} wav", f"{sub.lower()}.wav", encode(_tone(), subtype=sub), True)
           for label, sub in (("8-bit unsigned int", "PCM_U8"), ("16-bit int", "PCM_16"),
                              ("24-bit int", "PCM_24"), ("32-bit int", "PCM_32"),
                              ("32-bit float", "FLOAT"), ("64-bit float", "DOUBLE"))]
    out += [Case("NaN sample (float32)", "nan.wav", _with_sample("FLOAT", np.nan), False,
                 ("NaN or infinite",)),
            Case("+inf sample (float64)", "posinf.wav", _with_sample("DOUBLE", np.inf), False,
                 ("NaN or infinite",)),
            Case("-inf sample (float32)", "neginf.wav", _with_sample("FLOAT", -np.inf), False,
                 ("NaN or infinite",))]
    return out


def _shape_cases() -> list[Case]:
    return [
        Case("1 kHz rate (lowest accepted)", "1k.wav", encode(_tone(rate=1000), rate=1000), True,
             note="valid: 1000 Hz is MIN_RATE; resampled up to the model's rate"),
        Case("192 kHz rate", "192k.wav", encode(_tone(rate=192000), rate=192000), True,
             note="valid: resampled down (soxr)"),
        Case("500 Hz rate", "500.wav", encode(_tone(rate=500), rate=500), False,
             ("sample rate 500 Hz", "outside")),
        Case("6 channels", "six.wav", encode(_tone(channels=6)), True, note="mixed to mono"),
        Case("10 minutes long", "long.wav", encode(_tone(600.0)), False,
             ("too long", "600.0 s", "limit")),
        Case("header claims gigabytes", "huge.wav", gigabyte_header(), False,
             ("truncated", "4,294,967,040 bytes")),
        Case("over the upload limit (21 MB)", "big.wav",
             encode(np.zeros(10_500_000, np.float32)), False, ("21,000,044 bytes", "limit"),
             cli_keywords=("too long", "limit"),
             note="CLI: no byte cap for local files; refused by the duration cap instead"),
    ]


def _name_cases() -> list[Case]:
    wav = encode(_tone())
    return [
        Case("path separators and ..", "../../etc/passwd.wav", wav, True,
             note="upload: shown as passwd.wav, nothing written; CLI: a real relative path"),
        Case("backslash path", "..\\..\\windows\\win.wav", wav, True),
        Case("very long name (5000 chars)", "a" * 5000 + ".wav", wav, True,
             cli_valid=False, cli_keywords=("cannot be read", "File name too long"),
             note="CLI: the OS refuses names over 255 bytes (ENAMETOOLONG)"),
        Case("non-UTF-8 name", b"\xff\xfe bad \xc3(.wav", wav, True),
        Case("control characters in name", "a\x1b[31mred\nline.wav", wav, True),
        Case("HTML in name", "<img src=x onerror=alert(1)>.wav", b"garbage" * 10, False,
             ("cannot be decoded",)),
        Case("empty name", "", wav, True, cli_valid=False,
             cli_keywords=("not a regular file",), note="CLI: '' is the current folder"),
    ]


def open_length_flac(seconds: float) -> bytes:
    """A FLAC tone whose STREAMINFO total-samples field (36 bits) is 0: "length unknown",
    which is legal (streamed encoders write it) and reads as 2**62 frames in libsndfile."""
    data = bytearray(encode(_tone(seconds), fmt="FLAC"))
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO is the first block
    # fLaC (4) + block header (4) + block sizes (4) + frame sizes (6) = byte 18, then 64 bits:
    # sample rate (20) | channels - 1 (3) | bits - 1 (5) | total samples (36).
    word = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)
    data[18:26] = word.to_bytes(8, "big")
    return bytes(data)


def wide(seconds: float, rate: int, channels: int, *, tone_s: float | None = None) -> np.ndarray:
    """``(frames, channels)`` float32: the tone on every channel (only its first ``tone_s``
    seconds when given, zeros after, which FLAC compresses to almost nothing)."""
    x = np.zeros((int(seconds * rate), channels), np.float32)
    n = x.shape[0] if tone_s is None else int(tone_s * rate)
    x[:n] = _tone(n / rate, rate)[:, None]
    return x


def _mp3(seconds: float = 1.0) -> bytes:
    return encode(_tone(seconds), fmt="MP3", subtype="MPEG_LAYER_III")


def decoded_size_cases() -> list[Case]:
    """Issue 20, class 5: small files that decode big, and what the model hears after mixing."""
    def mb(frames: int, channels: int) -> str:
        return f"{frames * channels * 4 / 1e6:.1f} MB as float32 if decoded whole"

    ogg8 = encode(wide(3.0, 96000, 8), rate=96000, fmt="OGG", subtype="VORBIS")
    flac29 = encode(wide(29.0, 96000, 8, tone_s=1.0), rate=96000, fmt="FLAC")
    flac60 = encode(wide(60.0, 96000, 8, tone_s=1.0), rate=96000, fmt="FLAC")
    mp3 = _mp3()
    x = _tone()
    out = [
        Case("ogg 96 kHz x 8 channels x 3 s", "wide.ogg", ogg8, True,
             note=f"{len(ogg8):,} bytes, {mb(288000, 8)}; mixed to mono in blocks"),
        Case("ogg with 65 channels", "many.ogg",
             encode(wide(0.1, 96000, 65), rate=96000, fmt="OGG", subtype="VORBIS"), False,
             ("has 65 channels", "more than the 64 accepted")),
        Case("wav with 65 channels", "many.wav", encode(wide(0.1, RATE, 65)), False,
             ("has 65 channels", "more than the 64 accepted")),
        Case("wav with 64 channels (the most accepted)", "sixtyfour.wav",
             encode(wide(1.0, RATE, 64)), True, note="mixed to mono"),
        Case("flac 96 kHz x 8 channels x 29 s, mostly zeros", "bomb.flac", flac29, True,
             note=f"{len(flac29):,} bytes, {mb(29 * 96000, 8)}; decoded in 4 MB blocks"),
        Case("flac 96 kHz x 8 channels x 60 s, mostly zeros", "bomb60.flac", flac60, False,
             ("too long (60.0 s, limit 30 s)",),
             note=f"{len(flac60):,} bytes; refused from the header, nothing decoded"),
        Case("flac with length unknown (total samples 0)", "open.flac", open_length_flac(1.0),
             True, note="read until the end (or the limit), not '5.8e14 s'"),
        Case("flac with length unknown, 31 s long", "open31.flac", open_length_flac(31.0), False,
             ("too long (over 30 s", "header does not say how long")),
        Case("mp3 cut to its first 400 bytes", "cut.mp3", mp3[:400], False,
             ("cannot be decoded", "cut short")),
        Case("mp3 cut at half", "half.mp3", mp3[: len(mp3) // 2], True,
             note="the frames that are there are decoded"),
        Case("stereo whose channels cancel (L = -R)", "cancel.wav",
             encode(np.stack([x, -x], axis=1)), False, ("channels cancel out",)),
        Case("flac whose channels cancel (L = -R)", "cancel.flac",
             encode(np.stack([x, -x], axis=1), fmt="FLAC"), False, ("channels cancel out",)),
        Case("96 kHz mono wav of 30.1 s (just over)", "over.wav",
             encode(_tone(30.1, 96000), rate=96000), False, ("too long (30.1 s, limit 30 s)",)),
        Case("96 kHz mono wav of exactly 30 s", "exact.wav",
             encode(_tone(30.0, 96000), rate=96000), True, note="the limit itself is accepted"),
        Case("8 kHz wav of 30.01 s (printed exactly)", "hair.wav", encode(_tone(30.01)), False,
             ("too long (30.01 s, limit 30 s)",)),
    ]
    return out


def hostile_cases() -> list[Case]:
    """All audio cases (≥ 30), deterministic."""
    return (_format_cases() + _sample_cases() + _shape_cases() + _name_cases()
            + decoded_size_cases())


# -- edit chains (issue 20, classes 2 and 3) --------------------------------------------
@dataclass(frozen=True)
class ChainCase:
    """A chain file (``text``: what the browser sends, ``str`` or raw ``bytes``)."""

    name: str
    text: str | bytes
    valid: bool
    keywords: tuple[str, ...] = ()
    note: str = ""
    slow: bool = False  # seconds of work before the refusal: marked slow in the tests


def _chain(*edits, times: int = 1) -> str:
    return json.dumps([{"op": op, "params": params} for op, params in edits] * times)


def _gain_text(db: str) -> str:
    return '[{"op": "gain", "params": {"db": ' + db + "}}]"


def chain_cases() -> list[ChainCase]:
    """Hostile and edge edit chains, deterministic (the 19 MB one is built here, once)."""
    rep, g20 = ("repeat", {"times": 3}), ("gain", {"db": 20})
    return [
        ChainCase("repeat x3 six times", _chain(rep, times=6), False,
                  ("edit 3 (repeat, times=3)", "64.00 s", "30 s limit"),
                  note="1 s -> 4 -> 16 -> 64 s: refused at the edit that passes 30 s"),
        ChainCase("101 edits", _chain(("gain", {"db": 0}), times=101), False,
                  ("101 edits", "100 allowed")),
        ChainCase("100 edits (the most allowed)", _chain(("gain", {"db": 0}), times=100), True),
        ChainCase("19 MB of reverse entries", json.dumps([{"op": "reverse"}] * 10**6), False,
                  ("19,000,000 bytes", "100,000-byte limit"), note="refused unparsed, by size"),
        ChainCase("100k-deep nested list", "[" * 100_000 + "]" * 100_000, False,
                  ("200,000 bytes", "100,000-byte limit"), note="refused unparsed, by size"),
        ChainCase("40k-deep nested list (80 KB, under the byte limit)",
                  "[" * 40_000 + "]" * 40_000, False, ("nested too deeply",)),
        ChainCase("op that is a list", '[{"op": ["gain"], "params": {}}]', False,
                  ("edit 1", "unknown edit op ['gain']")),
        ChainCase("op that is a dict", '[{"op": {"op": "gain"}, "params": {}}]', False,
                  ("edit 1", "unknown edit op {'op': 'gain'}")),
        ChainCase("huge integer parameter (10**400)",
                  '[{"op": "repeat", "params": {"times": 1' + "0" * 400 + "}}]", False,
                  ("edit 1", "repeat: parameter times", "finite number")),
        ChainCase("gain of 1e308 dB", _gain_text("1e308"), False,
                  ("edit 1", "gain: parameter db", "got 1e+308")),
        ChainCase("gain of 1e999 dB (overflows to inf)", _gain_text("1e999"), False,
                  ("gain: parameter db must be a finite number", "got inf")),
        ChainCase("gain of NaN (JSON literal)", _gain_text("NaN"), False,
                  ("gain: parameter db must be a finite number", "got nan")),
        ChainCase("gain of Infinity (JSON literal)", _gain_text("Infinity"), False,
                  ("must be a finite number", "got inf")),
        ChainCase("gain of -Infinity (JSON literal)", _gain_text("-Infinity"), False,
                  ("must be a finite number", "got -inf")),
        ChainCase("+20 dB four times (past +60 dB)", _chain(g20, times=4), False,
                  ("edit 4 (gain, db=20)", "+80 dBFS", "+60 dBFS")),
        ChainCase("+20 dB three times (+60 dB, the most)", _chain(g20, times=3), True,
                  note="peak 0.99 x 1000 stays under the +60 dBFS bound"),
        ChainCase("a valid short chain",
                  _chain(("gain", {"db": 6}), ("reverse", {}),
                         ("slice", {"start_pct": 10, "end_pct": 90}), ("repeat", {"times": 2})),
                  True),
        ChainCase("empty chain", "[]", True),
        ChainCase("an object, not a list", '{"op": "gain"}', False,
                  ("must be a list of edits", "got dict")),
        ChainCase("true as an integer parameter", '[{"op": "repeat", "params": {"times": true}}]',
                  False, ("repeat: parameter times", "got True")),
        ChainCase("op '__import__'", '[{"op": "__import__", "params": {}}]', False,
                  ("unknown edit op '__import__'",)),
        ChainCase("an extra key beside op and params",
                  '[{"op": "gain", "params": {"db": 1}, "code": "x"}]', False,
                  ("unknown edit key(s) ['code']",)),
        ChainCase("bytes that are not UTF-8", b'[{"op": "gain\xff\xfe"}]', False,
                  ("utf-8", "can't decode")),
        ChainCase("not JSON", "[{op: gain}]", False, ("not valid JSON",)),
        ChainCase("slice to one sample, then pitch_shift",
                  _chain(("slice", {"start_pct": 0, "end_pct": 0.001}),
                         ("pitch_shift", {"semitones": 2})), False,
                  ("edit 2 (pitch_shift, semitones=2)", "at least 64 samples")),
        ChainCase("crossfade_cut of the whole clip",
                  _chain(("crossfade_cut", {"start_pct": 0, "end_pct": 100})), False,
                  ("edit 1 (crossfade_cut", "remove the whole clip")),
        ChainCase("time_stretch 0.25 three times", _chain(("time_stretch", {"rate": 0.25}),
                                                          times=3), False,
                  ("edit 3 (time_stretch, rate=0.25)", "64.00 s", "30 s limit"), slow=True,
                  note="the costliest chain the limits allow: the third stretch computes "
                       "64 s before it is refused"),
    ]


# -- checkpoints and folders (issue 20, classes 1 and 7) -------------------------------
@dataclass(frozen=True)
class FolderCase:
    """``predict --model DIR`` on a copy of a valid checkpoint whose metadata is
    ``corrupt(metadata)`` (a dict, or raw text), or ``train --out DIR`` where DIR is set up
    as ``out`` says: ``"thesis"`` (a folder holding thesis.txt), ``"file"`` (thesis.txt
    itself), ``"notes"`` (a checkpoint plus a user's notes.txt) or ``"no-arch"`` (a lone
    metadata.json without ``arch``). Every ``train`` case is a refusal, which must come
    before training starts (replacing a real checkpoint is ``tests/cli``'s concern: a
    training run costs minutes here and its compiled programs would swamp the memory
    figures)."""

    name: str
    command: str  # "predict" | "train"
    valid: bool
    keywords: tuple[str, ...] = ()
    corrupt: Callable[[dict], dict | str] | None = None
    args: tuple[str, ...] = ()
    out: str = ""
    note: str = ""


def _setting(section: str | None, key: str, value) -> Callable[[dict], dict]:
    def corrupt(meta: dict) -> dict:
        meta = json.loads(json.dumps(meta))
        (meta[section] if section else meta)[key] = value
        return meta
    return corrupt


def _deep_features(meta: dict) -> str:
    text = json.dumps({**meta, "features": None})
    return text.replace('"features": null', '"features": ' + "[" * 100_000 + "]" * 100_000)


def _padded(meta: dict) -> str:
    return json.dumps({**meta, "notes": "x" * 2_000_000})


def _predict_cases() -> list[FolderCase]:
    other = "pip.__main__:main"  # another installed package's __main__: runs pip on import
    refused_entry = ("entry point read from the checkpoint file", f"--arch {other}")
    return [
        FolderCase("duration_s 1e7", "predict", False, ("duration_s", "[0.01, 60.0]",
                                                          "10000000.0"),
                   _setting("features", "duration_s", 1e7), note="2.2 years of samples"),
        FolderCase("n_mels 1e8", "predict", False, ("n_mels", "[0, 1024]"),
                   _setting("features", "n_mels", 1e8)),
        FolderCase("n_fft 2**31", "predict", False, ("n_fft", "[8, 16384]", "2147483648"),
                   _setting("features", "n_fft", 2**31)),
        FolderCase("sample_rate 1e12", "predict", False, ("sample_rate", "[1000, 96000]"),
                   _setting("features", "sample_rate", 10**12)),
        FolderCase("floor NaN", "predict", False, ("floor", "got nan"),
                   _setting("features", "floor", float("nan"))),
        FolderCase("input_shape 100000 x 100000", "predict", False,
                   ("input_shape", "at most 10,000,000 cells"),
                   _setting("arch_kwargs", "input_shape", [100_000, 100_000])),
        FolderCase("n_classes 1e9", "predict", False, ("n_classes (int in 1..10000)",),
                   _setting("arch_kwargs", "n_classes", 10**9)),
        FolderCase("metadata.json nested 100k deep", "predict", False, ("nested too deeply",),
                   lambda m: "[" * 100_000 + "]" * 100_000),
        FolderCase("features nested 100k deep", "predict", False, ("nested too deeply",),
                   _deep_features),
        FolderCase("metadata.json of 2 MB", "predict", False, ("over the 1,000,000-byte limit",),
                   _padded),
        FolderCase("arch json.tool:main (standard library)", "predict", False,
                   ("'json.tool:main'", "standard-library function"),
                   _setting(None, "arch", "json.tool:main")),
        FolderCase(f"arch {other}, no --arch", "predict", False, refused_entry,
                   _setting(None, "arch", other), note="refused before anything is imported"),
        FolderCase(f"arch {other}, --arch naming another entry", "predict", False, refused_entry,
                   _setting(None, "arch", other), args=("--arch", "mypkg.models:factory")),
        FolderCase("arch os:system", "predict", False, ("'os:system'", "standard-library"),
                   _setting(None, "arch", "os:system")),
        FolderCase("arch os:system, --arch os:system", "predict", False,
                   ("'os:system'", "standard-library"), _setting(None, "arch", "os:system"),
                   args=("--arch", "os:system"), note="the operator cannot vouch for os:system"),
        FolderCase("an unchanged copy (valid)", "predict", True, corrupt=lambda m: m),
    ]


def _train_cases() -> list[FolderCase]:
    refuse = "refusing to replace it"
    return [
        FolderCase("train --out a folder holding thesis.txt", "train", False,
                   ("not a hearsight checkpoint (it holds thesis.txt)", refuse), out="thesis"),
        FolderCase("train --out a file (thesis.txt itself)", "train", False,
                   ("is a file, not a checkpoint folder",), out="file"),
        FolderCase("train --out a checkpoint holding a user's notes.txt", "train", False,
                   ("(it holds notes.txt)", refuse), out="notes"),
        FolderCase("train --out a folder whose metadata.json has no arch", "train", False,
                   ("it has no valid metadata.json", refuse), out="no-arch"),
    ]


def folder_cases() -> list[FolderCase]:
    """``predict --model`` on hostile checkpoints, then ``train --out`` on foreign folders."""
    return _predict_cases() + _train_cases()


# -- memory ----------------------------------------------------------------------------
