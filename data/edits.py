"""Waveform edits (d-DeVIS: slice, cross-fade, fade, gain, repeat, "invert") and more.

Every edit is a pure function ``(wave, sample_rate, **params) -> wave`` on a ``(samples,)``
float32 waveform at ``sample_rate`` Hz. Parameters are keyword-only and validated against
:data:`EDIT_SCHEMAS`, from which a UI can build its widgets. Gains are not clipped, so edits
compose exactly; :func:`data.audio.to_wav_bytes` clips for playback. A chain of edits is a
list of ``{"op": name, "params": {...}}`` dicts (JSON-friendly), replayed by :func:`apply_chain`
and kept with undo/redo by :class:`EditHistory`.

References:
  Schiller et al., "d-DeVIS: a deep sequence model debugger" (edits via pydub).
"""

from __future__ import annotations

import json
import math
import reprlib
from numbers import Real

import numpy as np

# name -> parameter -> (type, min, max, default); ranges are inclusive.
EDIT_SCHEMAS: dict[str, dict[str, tuple[type, float, float, float]]] = {
    "slice": {"start_pct": (float, 0.0, 100.0, 0.0), "end_pct": (float, 0.0, 100.0, 100.0)},
    "crossfade_cut": {"start_pct": (float, 0.0, 100.0, 40.0),
                      "end_pct": (float, 0.0, 100.0, 60.0),
                      "fade_ms": (float, 0.0, 1000.0, 20.0)},
    "loudness_ramp": {"start_db": (float, -60.0, 30.0, -20.0),
                      "end_db": (float, -60.0, 30.0, 0.0)},
    "repeat": {"times": (int, 1, 3, 1)},
    "reverse": {},
    "fade": {"fade_in_ms": (float, 0.0, 10000.0, 0.0),
             "fade_out_ms": (float, 0.0, 10000.0, 0.0)},
    "gain": {"db": (float, -30.0, 30.0, 6.0)},
    "noise": {"snr_db": (float, -10.0, 60.0, 20.0), "seed": (int, 0, 2**31 - 1, 0)},
    "pitch_shift": {"semitones": (float, -12.0, 12.0, 2.0)},
    "time_stretch": {"rate": (float, 0.25, 4.0, 1.25)},
}

MIN_STFT_SAMPLES = 64  # pitch_shift / time_stretch need a few STFT frames
MAX_CHAIN_EDITS = 100  # a chain longer than this is refused before anything runs
MAX_CHAIN_JSON_BYTES = 100_000  # a chain file larger than this is refused unparsed
MAX_SECONDS = 30.0  # the clip may never grow past this after any edit (the upload limit)
MAX_PEAK = 1000.0  # +60 dB over full scale: past it a chain of gains is a mistake
_REPR = reprlib.Repr()  # user values in messages: short, however large or deep the input
_REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict, _REPR.maxlevel = 40, 40, 4, 4, 2
_REPR.maxlong = 40
_short = _REPR.repr


def check_param(op: str, name: str, value):
    """``value`` validated against ``EDIT_SCHEMAS[op][name]``, converted to its type."""
    kind, lo, hi, _ = EDIT_SCHEMAS[op][name]
    try:  # float() of a huge int overflows; bool is a Real but never a parameter
        ok = not isinstance(value, bool) and isinstance(value, Real) and math.isfinite(value)
    except OverflowError:
        ok = False
    if not ok:
        raise ValueError(f"{op}: parameter {name} must be a finite number in [{lo}, {hi}], "
                         f"got {_short(value)}")
    if kind is int and value != int(value):
        raise ValueError(f"{op}: parameter {name} must be an integer in [{lo}, {hi}], got {value}")
    if not lo <= value <= hi:
        raise ValueError(f"{op}: parameter {name} must be in [{lo}, {hi}], got {value}")
    return kind(value)


def _wave(wave, sample_rate, *, min_samples: int = 1) -> np.ndarray:
    w = np.asarray(wave, dtype=np.float32)
    if w.ndim != 1 or w.shape[0] < min_samples:
        raise ValueError(f"wave must be 1-D with at least {min_samples} samples, "
                         f"got shape {w.shape}")
    if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate \
            or not 1000 <= sample_rate <= 384_000:
        raise ValueError(f"sample_rate must be an integer in 1000..384000 Hz, got {sample_rate}")
    return w


def _pct_range(op: str, n: int, start_pct, end_pct) -> tuple[int, int]:
    start = check_param(op, "start_pct", start_pct)
    end = check_param(op, "end_pct", end_pct)
    if start >= end:
        raise ValueError(f"{op}: start_pct ({start}) must be below end_pct ({end})")
    i0 = int(round(start / 100.0 * n))
    return i0, max(int(round(end / 100.0 * n)), i0 + 1)


def slice_(wave, sample_rate, *, start_pct, end_pct) -> np.ndarray:
    """Keep samples from ``start_pct`` to ``end_pct`` percent of the clip (at least one)."""
    w = _wave(wave, sample_rate)
    i0, i1 = _pct_range("slice", w.shape[0], start_pct, end_pct)
    return w[i0:i1].copy()


def crossfade_cut(wave, sample_rate, *, start_pct, end_pct, fade_ms=20.0) -> np.ndarray:
    """Remove ``start_pct..end_pct`` percent and cross-fade the join over ``fade_ms``.

    The last ``L`` samples before the cut overlap the first ``L`` after it with equal-power
    gains ``cos`` / ``sin`` of a quarter period (``L`` shrinks to fit short sides), so the
    output has ``samples - cut - L`` samples.
    """
    w = _wave(wave, sample_rate)
    i0, i1 = _pct_range("crossfade_cut", w.shape[0], start_pct, end_pct)
    head, tail = w[:i0], w[i1:]
    if head.size + tail.size == 0:
        raise ValueError("crossfade_cut: the range would remove the whole clip; narrow it")
    fade_n = int(round(check_param("crossfade_cut", "fade_ms", fade_ms) * sample_rate / 1000))
    n = min(fade_n, head.size, tail.size)
    if n == 0:
        return np.concatenate([head, tail])
    t = (np.arange(n) + 0.5) / n * (np.pi / 2)
    joint = head[-n:] * np.cos(t) + tail[:n] * np.sin(t)
    return np.concatenate([head[:-n], joint.astype(np.float32), tail[n:]])


def loudness_ramp(wave, sample_rate, *, start_db, end_db) -> np.ndarray:
    """Gain changing linearly in dB from ``start_db`` at the first sample to ``end_db`` at the
    last."""
    w = _wave(wave, sample_rate)
    a = check_param("loudness_ramp", "start_db", start_db)
    b = check_param("loudness_ramp", "end_db", end_db)
    db = np.linspace(a, b, w.shape[0])
    return (w * 10.0 ** (db / 20.0)).astype(np.float32)


def repeat(wave, sample_rate, *, times) -> np.ndarray:
    """The clip followed by ``times`` (1..3) extra copies of itself."""
    w = _wave(wave, sample_rate)
    return np.tile(w, check_param("repeat", "times", times) + 1)


def reverse(wave, sample_rate) -> np.ndarray:
    """Time reversal (d-DeVIS "invert")."""
    return _wave(wave, sample_rate)[::-1].copy()


def fade(wave, sample_rate, *, fade_in_ms=0.0, fade_out_ms=0.0) -> np.ndarray:
    """Linear fade-in from 0 and fade-out to 0 over the given milliseconds (capped at the clip)."""
    w = _wave(wave, sample_rate).copy()
    n_in = min(w.shape[0], int(round(check_param("fade", "fade_in_ms", fade_in_ms)
                                     * sample_rate / 1000)))
    n_out = min(w.shape[0], int(round(check_param("fade", "fade_out_ms", fade_out_ms)
                                      * sample_rate / 1000)))
    if n_in > 1:
        w[:n_in] *= np.linspace(0.0, 1.0, n_in, dtype=np.float32)
    if n_out > 1:
        w[w.shape[0] - n_out:] *= np.linspace(1.0, 0.0, n_out, dtype=np.float32)
    return w


def gain(wave, sample_rate, *, db) -> np.ndarray:
    """Multiply by ``10 ** (db / 20)``; ``db`` in -30..30 (d-DeVIS offered +1..+7)."""
    w = _wave(wave, sample_rate)
    return (w * np.float32(10.0 ** (check_param("gain", "db", db) / 20.0))).astype(np.float32)


def add_noise(wave, sample_rate, *, snr_db, seed) -> np.ndarray:
    """Add white Gaussian noise scaled so that the SNR (mean power ratio, measured on the
    drawn noise itself) is exactly ``snr_db``; ``seed`` seeds ``np.random.default_rng``."""
    w = _wave(wave, sample_rate)
    snr = check_param("noise", "snr_db", snr_db)
    rng = np.random.default_rng(check_param("noise", "seed", seed))
    p_signal = float(np.mean(w.astype(np.float64) ** 2))
    if p_signal == 0.0:
        raise ValueError("noise: the clip is silent, so an SNR is undefined; use gain or "
                         "record some sound first")
    noise = rng.standard_normal(w.shape[0])
    noise *= math.sqrt(p_signal / 10.0 ** (snr / 10.0) / np.mean(noise**2))
    return (w + noise).astype(np.float32)


def _n_fft(n: int) -> int:
    # librosa warns (an error under our pytest config) when n_fft exceeds the signal.
    return int(min(2048, 2 ** math.floor(math.log2(n))))


def pitch_shift(wave, sample_rate, *, semitones) -> np.ndarray:
    """Shift pitch by ``semitones`` keeping the duration (librosa: phase vocoder + resampling)."""
    import librosa

    w = _wave(wave, sample_rate, min_samples=MIN_STFT_SAMPLES)
    steps = check_param("pitch_shift", "semitones", semitones)
    out = librosa.effects.pitch_shift(y=w, sr=sample_rate, n_steps=steps,
                                      n_fft=_n_fft(w.shape[0]))
    return np.asarray(out, dtype=np.float32)


def time_stretch(wave, sample_rate, *, rate) -> np.ndarray:
    """Speed up by ``rate`` (> 1 shorter) keeping the pitch (librosa phase vocoder)."""
    import librosa

    w = _wave(wave, sample_rate, min_samples=MIN_STFT_SAMPLES)
    r = check_param("time_stretch", "rate", rate)
    out = librosa.effects.time_stretch(y=w, rate=r, n_fft=_n_fft(w.shape[0]))
    return np.asarray(out, dtype=np.float32)


EDITS = {
    "slice": slice_, "crossfade_cut": crossfade_cut, "loudness_ramp": loudness_ramp,
    "repeat": repeat, "reverse": reverse, "fade": fade, "gain": gain, "noise": add_noise,
    "pitch_shift": pitch_shift, "time_stretch": time_stretch,
}


def validate_edit(edit) -> dict:
    """A checked copy ``{"op": str, "params": {...}}`` of ``edit`` with defaults filled in.

    Raises ValueError naming an unknown op, an unknown parameter or a value out of range.
    """
    if not isinstance(edit, dict):
        raise ValueError(f"an edit must be a dict {{'op': ..., 'params': {{...}}}}, "
                         f"got {_short(edit)}")
    extra = {str(k) for k in edit} - {"op", "params"}
    if extra:
        raise ValueError(f"unknown edit key(s) {_short(sorted(extra))}; allowed: 'op', 'params'")
    op, params = edit.get("op"), edit.get("params", {})
    if not isinstance(op, str) or op not in EDITS:  # a list or dict op is unhashable
        raise ValueError(f"unknown edit op {_short(op)}; choose one of {sorted(EDITS)}")
    if not isinstance(params, dict):
        raise ValueError(f"{op}: params must be a dict, got {type(params).__name__}")
    schema = EDIT_SCHEMAS[op]
    unknown = {str(k) for k in params} - set(schema)
    if unknown:
        raise ValueError(f"{op}: unknown parameter(s) {_short(sorted(unknown))}; "
                         f"allowed: {sorted(schema)}")
    full = {k: check_param(op, k, params.get(k, spec[3])) for k, spec in schema.items()}
    return {"op": op, "params": full}


def _validate_chain(chain) -> list[dict]:
    if not isinstance(chain, (list, tuple)):
        raise ValueError(f"an edit chain must be a list of edits, got {type(chain).__name__}")
    if len(chain) > MAX_CHAIN_EDITS:
        raise ValueError(f"the edit chain has {len(chain):,} edits, more than the "
                         f"{MAX_CHAIN_EDITS} allowed; shorten it")
    out = []
    for i, e in enumerate(chain):
        try:
            out.append(validate_edit(e))
        except ValueError as exc:
            raise ValueError(f"edit {i + 1}: {exc}") from None
    return out


def edit_label(i: int, edit: dict) -> str:
    """``'edit 3 (repeat, times=3)'``: how messages name the ``i``-th (0-based) edit."""
    params = ", ".join(f"{k}={v:g}" for k, v in edit["params"].items())
    return f"edit {i + 1} ({edit['op']}{', ' + params if params else ''})"


def _check_result(out: np.ndarray, i: int, edit: dict, sample_rate: int,
                  max_seconds: float | None) -> None:
    """Refuse an edit whose result is over the duration limit, non-finite or absurdly loud."""
    if max_seconds is not None and out.shape[0] > max_seconds * sample_rate:
        raise ValueError(f"{edit_label(i, edit)} makes the clip {out.shape[0] / sample_rate:.2f} s "
                         f"long, over the {max_seconds:g} s limit; remove it or slice first")
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if not math.isfinite(peak) or peak > MAX_PEAK:
        level = "non-finite" if not math.isfinite(peak) else f"{20 * math.log10(peak):+.0f} dBFS"
        raise ValueError(f"{edit_label(i, edit)} drives the peak to {level}, beyond "
                         f"{20 * math.log10(MAX_PEAK):+.0f} dBFS; lower the gains")


def apply_chain(wave, sample_rate, chain, *, max_seconds: float | None = MAX_SECONDS
                ) -> np.ndarray:
    """Apply the edits of ``chain`` in order; the whole chain is validated before any runs.

    After every edit the clip must stay within ``max_seconds`` (``None``: no limit) and its
    peak finite and at most :data:`MAX_PEAK`; otherwise ``ValueError`` names the edit. An
    edit at most quadruples the length (repeat ×3, time_stretch 0.25), so memory stays
    bounded by four times the limit.
    """
    out = _wave(wave, sample_rate)
    for i, edit in enumerate(_validate_chain(chain)):
        try:  # an edit impossible on this clip (too short for an STFT, a cut of everything)
            out = EDITS[edit["op"]](out, sample_rate, **edit["params"])
        except ValueError as exc:
            raise ValueError(f"{edit_label(i, edit)}: {exc}") from None
        _check_result(out, i, edit, sample_rate, max_seconds)
    return out


def chain_to_json(chain) -> str:
    """The validated ``chain`` as a JSON array (defaults filled in)."""
    return json.dumps(_validate_chain(chain))


def chain_from_json(text: str, *, source: str | None = None) -> list[dict]:
    """Parse and validate a chain written by :func:`chain_to_json` (plain JSON, never eval).

    Args:
      text: the JSON text (or bytes).
      source: the file it came from (e.g. an upload's name); every error message starts with
        its base name, ``"chain.json: edit 2: ..."``, so the user knows which file is wrong.
    Raises:
      ValueError: not JSON, too large, or not a valid chain; naming ``source`` when given.
    """
    try:
        return _chain_from_json(text)
    except ValueError as exc:
        if source is None:
            raise
        from data.names import safe_basename

        raise ValueError(f"{safe_basename(source)}: {exc}") from None


def _chain_from_json(text: str) -> list[dict]:
    size = len(text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else len(text)
    if size > MAX_CHAIN_JSON_BYTES:
        raise ValueError(f"the edit chain is {size:,} bytes, over the {MAX_CHAIN_JSON_BYTES:,}-byte "
                         "limit; a chain is a short list of edits")
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:  # JSONDecodeError, and bytes that are not UTF-8
        raise ValueError(f"edit chain is not valid JSON: {exc}") from exc
    except RecursionError:
        raise ValueError("edit chain is nested too deeply to be a list of edits") from None
    return _validate_chain(data)


class EditHistory:
    """An edit chain with editor-like undo/redo (pushing after an undo drops the redo stack)."""

    def __init__(self, chain=()) -> None:
        self._done = _validate_chain(list(chain))
        self._undone: list[dict] = []

    def push(self, edit: dict) -> None:
        if len(self._done) >= MAX_CHAIN_EDITS:
            raise ValueError(f"the chain already holds {MAX_CHAIN_EDITS} edits, the most "
                             "allowed; undo some first")
        self._done.append(validate_edit(edit))
        self._undone.clear()

    def undo(self) -> dict | None:
        """Remove and return the last edit; ``None`` when there is nothing to undo."""
        if not self._done:
            return None
        self._undone.append(self._done.pop())
        return self._undone[-1]

    def redo(self) -> dict | None:
        """Re-apply and return the last undone edit; ``None`` when there is nothing to redo."""
        if not self._undone:
            return None
        self._done.append(self._undone.pop())
        return self._done[-1]

    @property
    def can_undo(self) -> bool:
        return bool(self._done)

    @property
    def can_redo(self) -> bool:
        return bool(self._undone)

    @property
    def chain(self) -> list[dict]:
        """A copy of the edits in effect, oldest first."""
        return [{"op": e["op"], "params": dict(e["params"])} for e in self._done]

    def apply(self, wave, sample_rate) -> np.ndarray:
        return apply_chain(wave, sample_rate, self._done)
