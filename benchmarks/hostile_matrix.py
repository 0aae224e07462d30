"""The hostile-input matrix (issues 7 and 20): three families of hostile input.

    python3 benchmarks/hostile_matrix.py [--model CKPT]

* **audio** (:func:`hostile_cases`): every file through the server's upload path
  (``Session.load_bytes``) and the CLI (``hearsight predict``), including the decoded-size
  classes of issue 20 (many channels at a high rate, FLAC of unknown length, a cut-short mp3,
  cancelling channels, clips just over the duration limit);
* **edit chains** (:func:`chain_cases`): a chain file through the server's chain path
  (``data.edits.chain_from_json`` then ``data.edits.apply_chain`` on the session's 1 s clip,
  as ``serve/pages/compare.py`` does);
* **checkpoints and folders** (:func:`folder_cases`): ``hearsight predict --model DIR`` on
  copies of a valid checkpoint with hostile ``metadata.json``, and ``hearsight train --out DIR``
  on folders that are not hearsight's to replace.

Every row records wall time and memory (:func:`measured`): the process's current RSS before
and after (``/proc/self/statm``) and how far its peak RSS rose during the case
(``VmHWM``, reset per case through ``/proc/self/clear_refs``; ``ru_maxrss`` too). It prints
one line per case and writes ``benchmarks/results/hostile_matrix.json`` and
``docs/hostile_matrix.md``. Without ``--model`` a randomly initialised ``ddevis_cnn``
checkpoint is built in a temporary folder (predictions are then arbitrary; only acceptance,
messages and memory matter here). ``tests/serve/test_hostile_matrix.py`` imports the case
lists and the runners from this file.

Each audio case is ``Case(name, filename, data, valid, keywords, cli_valid, cli_keywords)``:
the bytes of the file, the name it arrives under (``str``, or ``bytes`` for a non-UTF-8 name),
whether it must be accepted, and the words its refusal message must contain.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import json
import os
import resource
import struct
import sys
import tempfile
import time
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
def rss_mb() -> float:
    """The process's current resident set size, MB (``/proc/self/statm``)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _hwm_mb() -> float | None:
    """Peak RSS of the address space, MB (``VmHWM``; resettable, unlike ``ru_maxrss`` once a
    thread has exited)."""
    try:
        with open("/proc/self/status") as fh:
            line = next(ln for ln in fh if ln.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
        return None


def _reset_peak() -> bool:
    """Reset the peak-RSS mark (Linux >= 4.0: ``5`` to ``/proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@contextlib.contextmanager
def measured(row: dict):
    """Fill ``row`` with ``wall_s``, ``rss_before_mb``, ``rss_after_mb``, ``rss_growth_mb``
    (current RSS after minus before, after a ``gc.collect``), ``peak_rise_mb`` (how far the
    peak RSS rose during the block: ``VmHWM`` after a reset, else ``ru_maxrss``),
    ``maxrss_rise_mb`` (``ru_maxrss``, which a reset cannot lower once a thread has exited,
    so it under-reports after an earlier larger peak) and ``peak_over_100mb``."""
    gc.collect()
    reset = _reset_peak()
    before, hwm0, max0 = rss_mb(), _hwm_mb(), _maxrss_mb()
    t0 = time.perf_counter()
    try:
        yield row
    finally:
        wall = time.perf_counter() - t0
        gc.collect()
        after, hwm, maxrss = rss_mb(), _hwm_mb(), _maxrss_mb()
        peak = hwm - hwm0 if reset and hwm is not None and hwm0 is not None else maxrss - max0
        row.update(wall_s=round(wall, 3), rss_before_mb=round(before, 1),
                   rss_after_mb=round(after, 1), rss_growth_mb=round(after - before, 1),
                   peak_rise_mb=round(peak, 1), maxrss_rise_mb=round(maxrss - max0, 1),
                   peak_over_100mb=bool(max(peak, maxrss - max0) > 100))


# -- runners ---------------------------------------------------------------------------
class FakeShared:
    """The part of ``serve.app.Shared`` a :class:`serve.session.Session` uses."""

    def __init__(self, predictor, limits=None):
        from serve.config import Limits

        self.predictor = predictor
        self.limits = limits or Limits()


def run_upload(session, case: Case) -> dict:
    """``session.load_bytes`` on the case; ``{ok, message, clip_name}``."""
    name = case.filename
    ok = session.load_bytes(case.data, name)
    return {"ok": bool(ok), "message": "" if ok else str(session.alert.object),
            "clip_name": session.clip.name if ok and session.clip else None}


def write_case_file(folder: Path, case: Case) -> str | bytes:
    """Write the case under ``folder`` (the CLI's view: a file on disk); return its path."""
    if case.filename == "":
        return ""
    if isinstance(case.filename, bytes):
        path = os.fsencode(folder) + b"/" + case.filename
        with open(path, "wb") as fh:
            fh.write(case.data)
        return os.fsdecode(path)
    name = case.filename.replace("\\", "_")
    if ".." in Path(name).parts:  # keep the file inside ``folder`` while the path climbs
        deep = folder / "x" / "y"
        deep.mkdir(parents=True, exist_ok=True)
        target = (deep / name).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(case.data)
        return str(deep / name)
    try:
        (folder / name).write_bytes(case.data)
    except OSError:  # a name the OS refuses (too long): the CLI must say so
        pass
    return str(folder / name)


def run_argv(argv: list[str]) -> dict:
    """``cli.main.main(argv)`` in-process; ``{rc, stdout, stderr}``."""
    from cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return {"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()}


def run_cli(model_dir: str, path: str, args: tuple[str, ...] = ()) -> dict:
    """``hearsight predict --model MODEL_DIR [ARGS] PATH`` in-process; ``{rc, stdout, stderr}``."""
    return run_argv(["predict", "--model", str(model_dir), *args, path])


def last_line(result: dict) -> str:
    lines = (result["stderr"].strip() or result["stdout"].strip()).splitlines()
    return lines[-1] if lines else ""


def session_clip(seconds: float = 1.0) -> np.ndarray:
    """What the compare page edits: the session's clip, fitted to the window, peak 0.99."""
    from data.audio import peak_normalise

    return peak_normalise(_tone(seconds))


def run_chain(case: ChainCase, wave: np.ndarray | None = None, rate: int = RATE) -> dict:
    """The server's chain path (``ComparePage.load_chain``): UTF-8, ``chain_from_json``,
    ``apply_chain`` on ``wave`` (default :func:`session_clip`); ``{ok, message, seconds}``."""
    from data.edits import apply_chain, chain_from_json

    wave = session_clip() if wave is None else wave
    try:
        text = case.text.decode("utf-8") if isinstance(case.text, bytes) else case.text
        out = apply_chain(wave, rate, chain_from_json(text))
    except ValueError as exc:  # UnicodeDecodeError too
        return {"ok": False, "message": f"Edit chain not loaded: {exc}", "seconds": None}
    return {"ok": True, "message": f"accepted: the edited clip is {out.shape[0] / rate:.2f} s",
            "seconds": out.shape[0] / rate}


def tone_corpus(root: Path) -> Path:
    """The smallest corpus ``train`` takes: FSDD layout, words "0" (300 Hz) and "1" (2 kHz),
    3 speakers x 16 takes of 1 s at 8 kHz (takes 0-4 test, 5-9 valid, 10-15 train)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(RATE) / RATE
    for digit, freq in (("0", 300.0), ("1", 2000.0)):
        for speaker in ("ann", "bob", "cid"):
            for take in range(16):
                wave = 0.5 * np.sin(2 * np.pi * freq * (1 + 0.02 * rng.standard_normal()) * t)
                sf.write(root / f"{digit}_{speaker}_{take}.wav", wave.astype(np.float32), RATE)
    return root


THESIS = "four years of work\n"


def snapshot(path: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file at or under ``path`` (``{}`` if missing)."""
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def _train_target(case: FolderCase, base: Path, folder: Path) -> Path:
    """Set up ``train --out``'s target as ``case.out`` says; return its path."""
    import shutil

    if case.out == "file":
        (folder / "thesis.txt").write_text(THESIS)
        return folder / "thesis.txt"
    out = folder / "out"
    if case.out == "notes":
        shutil.copytree(base, out)
        (out / "notes.txt").write_text(THESIS)
        return out
    out.mkdir()
    if case.out == "thesis":
        (out / "thesis.txt").write_text(THESIS)
    elif case.out == "no-arch":
        (out / "metadata.json").write_text('{"labels": ["a"]}')
    return out


@contextlib.contextmanager
def _fit_calls():
    """Count calls of ``models.fit.fit`` (``cli/train.py`` imports it at run time)."""
    import models.fit as fit_module

    calls, original = [], fit_module.fit

    def fit(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    fit_module.fit = fit
    try:
        yield calls
    finally:
        fit_module.fit = original


def run_folder_case(case: FolderCase, base: Path, folder: Path, *, wav: Path,
                    corpus: Path) -> dict:
    """One checkpoint/folder case in ``folder`` (made here) against checkpoint ``base``.

    Returns ``{rc, message, stderr, stdout, target, files_intact, training_started,
    arch_imported}``: ``files_intact`` (train) is whether every file at ``--out`` is still
    there, byte for byte; ``arch_imported`` (predict) whether the module a hostile ``arch``
    names was imported by the run.
    """
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    if case.command == "train":
        target = _train_target(case, base, folder)
        before = snapshot(target)
        argv = ["train", "--corpus", f"fsdd:{corpus}", "--out", str(target), "--epochs", "1",
                "--batch-size", "16", "--patience", "1", *case.args]
        with _fit_calls() as calls:
            res = run_argv(argv)
        intact = snapshot(target) == before
        return {**res, "message": last_line(res), "target": target, "files_intact": intact,
                "training_started": bool(calls), "arch_imported": None}
    target = folder / "ck"
    shutil.copytree(base, target)
    meta = json.loads((base / "metadata.json").read_text())
    made = case.corrupt(meta)
    (target / "metadata.json").write_text(made if isinstance(made, str) else json.dumps(made))
    arch = made.get("arch", "") if isinstance(made, dict) else ""
    module = arch.partition(":")[0] if ":" in arch else None
    was = module in sys.modules if module else False
    res = run_cli(str(target), str(wav), case.args)
    imported = bool(module and not was and module in sys.modules)
    return {**res, "message": last_line(res), "target": target, "files_intact": None,
            "training_started": None, "arch_imported": imported}


def tiny_checkpoint(folder: Path) -> Path:
    """A randomly initialised ``ddevis_cnn`` over 10 labels at the d-DeVIS features."""
    from data.features import ddevis_stft
    from models.checkpoint import save_checkpoint
    from models.registry import build_model

    params = ddevis_stft()
    model = build_model("ddevis_cnn", n_classes=10, input_shape=params.shape, seed=0)
    model.eval()
    meta = {"arch": "ddevis_cnn", "arch_kwargs": {"n_classes": 10, "input_shape": list(params.shape)},
            "labels": [str(d) for d in range(10)], "features": params.to_dict(),
            "corpus": "none", "split": {}, "metrics": {"note": "untrained"}}
    return save_checkpoint(Path(folder) / "ck", model, meta)


def cached_predictor_load(monkeypatch_setattr=None):
    """Make ``Predictor.load`` reuse one compiled predictor per folder (in-process CLI runs)."""
    from engine.predictor import Predictor

    original, cache = Predictor.load.__func__, {}

    def load(cls, directory, trusted_arch=None):
        key = (str(Path(directory).absolute()), trusted_arch)
        if key not in cache:
            cache[key] = original(cls, directory, trusted_arch=trusted_arch)
        return cache[key]

    return classmethod(load), original


WARM_UPS: dict[str, dict] = {}  # one-time costs (imports, compiles) paid before the cases


def run_audio(model_dir: Path, work: Path) -> list[dict]:
    """Every audio case through the upload path and the CLI; one measured row per case,
    after a warm-up (an 8 kHz and a 16 kHz clip: the model's compile, the resampler)."""
    from engine.predictor import Predictor
    from serve.session import Session

    patched, original = cached_predictor_load()
    Predictor.load = patched
    try:
        with measured(WARM_UPS.setdefault("audio", {})):
            session = Session(FakeShared(Predictor.load(model_dir)))
            (work / "warm").mkdir(parents=True)
            for rate in (RATE, 16000):
                warm = Case("warm-up", f"warm{rate}.wav", encode(_tone(rate=rate), rate=rate),
                            True)
                run_upload(session, warm)
                run_cli(str(model_dir), write_case_file(work / "warm", warm))
        rows = []
        for i, case in enumerate(hostile_cases()):
            folder = work / f"case{i:02d}"
            folder.mkdir(parents=True)
            row = {"case": case.name, "expect_valid": case.valid}
            with measured(row):
                up = run_upload(session, case)
                cli = run_cli(str(model_dir), write_case_file(folder, case))
            cli_valid = case.valid if case.cli_valid is None else case.cli_valid
            rows.append({**row, "accepted": up["ok"], "upload_ok": up["ok"],
                         "upload_message": up["message"] or f"accepted as {up['clip_name']!r}",
                         "cli_rc": cli["rc"], "cli_expect_valid": cli_valid,
                         "cli_message": last_line(cli), "note": case.note})
    finally:
        Predictor.load = classmethod(original)
    return rows


def run_chains() -> list[dict]:
    """Every chain case through the server's chain path on the 1 s session clip, after a
    warm-up (librosa's phase vocoder compiles on its first call)."""
    from data.edits import apply_chain

    wave, rows = session_clip(), []
    with measured(WARM_UPS.setdefault("edit chains", {})):
        apply_chain(wave, RATE, [{"op": "time_stretch", "params": {"rate": 0.5}},
                                 {"op": "pitch_shift", "params": {"semitones": 2}}])
    for case in chain_cases():
        row = {"case": case.name, "expect_valid": case.valid}
        with measured(row):
            res = run_chain(case, wave)
        rows.append({**row, "accepted": res["ok"], "message": res["message"],
                     "note": case.note})
    return rows


def _command(case: FolderCase) -> str:
    if case.command == "train":
        return f"train --out <{case.out}>"
    return " ".join(["predict --model <ck>", *case.args])


def run_folders(model_dir: Path, work: Path) -> list[dict]:
    """Every checkpoint/folder case through the CLI; one measured row per case."""
    corpus, wav = tone_corpus(work / "tones"), work / "clip.wav"
    wav.write_bytes(encode(_tone()))
    rows = []
    for i, case in enumerate(folder_cases()):
        row = {"case": case.name, "command": _command(case), "expect_valid": case.valid}
        with measured(row):
            res = run_folder_case(case, Path(model_dir), work / f"folder{i:02d}", wav=wav,
                                  corpus=corpus)
        rows.append({**row, "accepted": res["rc"] == 0, "rc": res["rc"],
                     "message": res["message"], "files_intact": res["files_intact"],
                     "training_started": res["training_started"],
                     "arch_imported": res["arch_imported"], "note": case.note})
    return rows


FAMILIES = ("audio", "edit chains", "checkpoints and folders")


def run_matrix(model_dir: Path, work: Path) -> dict[str, list[dict]]:
    """All three families; ``{family: rows}``."""
    return {"audio": run_audio(model_dir, work / "audio"), "edit chains": run_chains(),
            "checkpoints and folders": run_folders(model_dir, work / "folders")}


def _unexpected(family: str, row: dict) -> bool:
    if row["accepted"] != row["expect_valid"]:
        return True
    return family == "audio" and (row["cli_rc"] == 0) != row["cli_expect_valid"]


def summary(families: dict[str, list[dict]]) -> dict:
    rows = [(f, r) for f, rs in families.items() for r in rs]
    grow = max(rows, key=lambda fr: fr[1]["rss_growth_mb"])[1]
    peak = max(rows, key=lambda fr: fr[1]["peak_rise_mb"])[1]
    return {"cases": len(rows), "by_family": {f: len(rs) for f, rs in families.items()},
            "accepted": sum(r["accepted"] for _, r in rows),
            "refused": sum(not r["accepted"] for _, r in rows),
            "unexpected": [r["case"] for f, r in rows if _unexpected(f, r)],
            "largest_rss_growth_mb": grow["rss_growth_mb"], "largest_rss_growth_case": grow["case"],
            "largest_peak_rise_mb": peak["peak_rise_mb"], "largest_peak_rise_case": peak["case"],
            "peak_over_100mb": [r["case"] for _, r in rows if r["peak_over_100mb"]],
            "peak_reset_per_case": _reset_peak(), "warm_ups": WARM_UPS}


def summary_line(s: dict) -> str:
    fams = ", ".join(f"{n} {f}" for f, n in s["by_family"].items())
    return (f"{s['cases']} cases ({fams}): {s['accepted']} accepted, {s['refused']} refused, "
            f"{len(s['unexpected'])} unexpected; largest RSS growth "
            f"{s['largest_rss_growth_mb']:+.1f} MB ({s['largest_rss_growth_case']}); largest "
            f"peak rise {s['largest_peak_rise_mb']:.1f} MB ({s['largest_peak_rise_case']}); "
            f"{len(s['peak_over_100mb'])} cases with a peak rise over 100 MB")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _memory(r: dict) -> list[str]:
    flag = " **> 100**" if r["peak_over_100mb"] else ""
    return [f"{r['rss_growth_mb']:+.1f}", f"{r['peak_rise_mb']:.1f}{flag}", f"{r['wall_s']:.2f}"]


_HEADS = {
    "audio": ("Each file goes through the server's upload path (`Session.load_bytes`) and the "
              "CLI (`hearsight predict`, exit 0 = accepted, 2 = refused).",
              ["case", "upload", "CLI rc", "CLI message"], ["note"]),
    "edit chains": ("Each chain file goes through the server's chain path (UTF-8, "
                    "`data.edits.chain_from_json`, `data.edits.apply_chain` on the session's "
                    "1 s clip at 8 kHz, peak 0.99), as `serve/pages/compare.py` loads it.",
                    ["case", "outcome", "message"], ["note"]),
    "checkpoints and folders": (
        "`hearsight predict --model <ck>` on a copy of a valid checkpoint with a hostile "
        "`metadata.json`, and `hearsight train --out <folder>` (1 epoch on a tiny tone corpus) "
        "on folders that are not hearsight's; *files intact*: every file at `--out` is still "
        "there byte for byte; *imported*: the module a hostile `arch` names was imported.",
        ["case", "command", "rc", "message", "files intact", "training started", "imported"],
        ["note"]),
}


def _cells(family: str, r: dict) -> list:
    if family == "audio":
        return [r["case"], r["upload_message"], r["cli_rc"], r["cli_message"]]
    if family == "edit chains":
        return [r["case"], "accepted" if r["accepted"] else "refused", r["message"]]
    return [r["case"], r["command"], r["rc"], r["message"], r["files_intact"],
            r["training_started"], r["arch_imported"]]


def _warm_text() -> str:
    return "; ".join(f"{f}: RSS {w['rss_growth_mb']:+.1f} MB, peak +{w['peak_rise_mb']:.1f} MB, "
                     f"{w['wall_s']:.1f} s" for f, w in WARM_UPS.items())


def _markdown(families: dict[str, list[dict]], s: dict) -> str:
    lines = ["# Hostile-input matrix", "",
             "Produced by `python3 benchmarks/hostile_matrix.py` (issues 7 and 20), in one "
             "process. Memory per case: *RSS +MB* is the process's current RSS after the case "
             "minus before (`/proc/self/statm`, after a garbage collection); *peak +MB* is how "
             "far its peak RSS rose during the case (`VmHWM`, reset before each case through "
             "`/proc/self/clear_refs`; marked **> 100** when over 100 MB; `ru_maxrss` is in "
             "the JSON too). Both are what the process grows by: a case that reuses memory "
             "an earlier one freed (Python and glibc keep it) shows less than it allocates. "
             "One-time costs are paid in a warm-up before the cases "
             f"({_warm_text()}).", "", f"**Summary:** {summary_line(s)}.", ""]
    for family, rows in families.items():
        intro, left, right = _HEADS[family]
        head = left + ["RSS +MB", "peak +MB", "wall s"] + right
        lines += [f"## {family.capitalize()} ({len(rows)} cases)", "", intro, "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            cells = [_cell(c) for c in _cells(family, r)] + _memory(r) + [_cell(r["note"])]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _print_rows(families: dict[str, list[dict]]) -> None:
    for family, rows in families.items():
        print(f"== {family}")
        for r in rows:
            msg = r.get("upload_message") or r.get("message", "")
            tail = f" cli[{r['cli_rc']}]: {r['cli_message'][:60]}" if family == "audio" else ""
            print(f"{r['case'][:44]:44s} {msg[:80]:80s}{tail} | rss {r['rss_growth_mb']:+.1f} "
                  f"peak {r['peak_rise_mb']:.1f} MB {r['wall_s']:.2f} s")


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("HEARSIGHT_HOME", str(Path(tmp) / "home"))
        model = Path(args.model) if args.model else tiny_checkpoint(Path(tmp))
        families = run_matrix(model, Path(tmp) / "work")
    _print_rows(families)
    s = summary(families)
    out = ROOT / "benchmarks" / "results" / "hostile_matrix.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": s, "families": families}, indent=1, default=str))
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "hostile_matrix.md").write_text(_markdown(families, s))
    print(summary_line(s))
    print(f"wrote {out} and docs/hostile_matrix.md")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
