"""Audio in and out: decode, validate, resample, fit to the model's window, encode WAV.

Everything a person can bring in (an upload, a recording, a corpus file) passes through
:func:`load_audio`, which turns every kind of bad input into an :class:`AudioError` whose
message names the source and the problem in plain words, so the session can show it and go on.
Waveforms are ``(samples,)`` float32, nominally in ``[-1, 1]``.
"""

from __future__ import annotations

import io
import os
import re
import struct
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from data.features import FeatureParams
from data.limits import bytes_over, seconds_over
from data.names import display_name

MIN_RATE = 1000
MAX_RATE = 384_000
MAX_CHANNELS = 64  # more is not a recording a speech model hears; refused from the header
BLOCK_BYTES = 1 << 22  # decode at most 4 MB of interleaved samples at a time
UNKNOWN_FRAMES = 1 << 62  # libsndfile reports SF_COUNT_MAX when a header leaves length open
OPEN_BLOCK = 256  # frames per read when the length is open (see _read_mono)
_DECODE_ERRORS = (sf.SoundFileError, RuntimeError, TypeError, ValueError, OSError, EOFError)


class AudioError(ValueError):
    """Unusable audio input; the message names the source and the reason."""


def _source_name(source, name: str | bytes | None) -> str:
    if name:
        return display_name(name)
    if isinstance(source, (str, os.PathLike)):
        return display_name(Path(source).name or str(source)) or "(empty file name)"
    return "uploaded audio"


def _check_rate(rate: int, label: str, what: str) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"{label}: {what} sample rate {rate} Hz is outside "
                         f"{MIN_RATE}..{MAX_RATE} Hz; the file is probably damaged or not audio")


def _looks_like_mp3(source, label: str) -> bool:
    if isinstance(source, bytes):
        return source[:3] == b"ID3" or (len(source) > 1 and source[0] == 0xFF
                                         and source[1] & 0xE0 == 0xE0)
    return label.lower().endswith(".mp3")


def _open_input(source, label: str, max_bytes: int):
    """A path string or BytesIO that soundfile can open, after the cheap checks."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise AudioError(f"{label}: is empty (0 bytes); upload a recording with sound in it")
        if len(data) > max_bytes:
            raise AudioError(f"{label}: is too large ({bytes_over(len(data), max_bytes)}); "
                             "upload a shorter clip")
        _check_riff_sizes(data[:4096], len(data), label)
        return io.BytesIO(data)
    if not isinstance(source, (str, os.PathLike)):
        raise AudioError(f"{label}: expected a file path or bytes, got {type(source).__name__}")
    try:
        return _open_path(Path(source), label)
    except OSError as exc:  # e.g. a name too long for the OS, a permission problem
        raise AudioError(f"{label}: cannot be read ({exc.strerror or exc})") from exc


def _open_path(path: Path, label: str) -> bytes:
    if not path.exists():
        raise AudioError(f"{label}: file is missing (not found at {display_name(path, limit=200)}); "
                         "check the path")
    if not path.is_file():
        raise AudioError(f"{label}: is not a regular file ({display_name(path, limit=200)})")
    size = path.stat().st_size
    if size == 0:
        raise AudioError(f"{label}: is empty (0 bytes)")
    with open(path, "rb") as fh:
        _check_riff_sizes(fh.read(4096), size, label)
    return os.fsencode(path)  # bytes: soundfile cannot encode undecodable (surrogate) names


def _decode_soundfile(obj, label: str, max_seconds: float) -> tuple[np.ndarray, float, int]:
    """Decode to mono with soundfile, bounded: the header's rate, channel count and length
    are checked before any sample is read, then blocks of at most :data:`BLOCK_BYTES` are
    mixed to mono as they arrive, so memory never exceeds the mono clip at the limit plus one
    block, whatever the header claims (an unknown length is read until the limit).
    Returns ``(mono (samples,) float32, peak of any channel, rate)``."""
    try:
        with sf.SoundFile(obj) as f:
            rate, frames, channels = int(f.samplerate), int(f.frames), int(f.channels)
            _check_rate(rate, label, "its")
            _check_channels(channels, label)
            limit = int(max_seconds * rate)
            if frames < UNKNOWN_FRAMES and frames > limit:
                raise AudioError(f"{label}: is too long ({seconds_over(frames, rate, max_seconds)}"
                                 "); trim it first")
            unknown = frames >= UNKNOWN_FRAMES
            return (*_read_mono(f, channels, limit, label, max_seconds, unknown), rate)
    except AudioError:
        raise
    except _DECODE_ERRORS as exc:
        raise AudioError(f"{label}: cannot be decoded (corrupt file or unknown format: "
                         f"{_reason(exc)}); use wav, flac, ogg or mp3") from exc


def _check_channels(channels: int, label: str) -> None:
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(f"{label}: has {channels} channels, more than the {MAX_CHANNELS} "
                         "accepted; export a mono or stereo mix")


def _read_mono(f, channels: int, limit: int, label: str, max_seconds: float,
               unknown_length: bool) -> tuple[np.ndarray, float]:
    """The channel mean ``(samples,)`` float32 and the largest absolute sample of any
    channel (to tell cancelling channels from silence).

    Where the header leaves the length open, libsndfile fails on the read that crosses the
    end of the stream (it seeks); such a file is read in blocks of :data:`OPEN_BLOCK`
    frames and the failure ends the stream, losing at most one block's samples.
    """
    block = OPEN_BLOCK if unknown_length else max(1024, BLOCK_BYTES // (4 * channels))
    parts, total, peak = [], 0, 0.0
    while True:
        try:
            chunk = f.read(block, dtype="float32", always_2d=True)
        except sf.SoundFileError:
            if not (unknown_length and parts):
                raise
            break
        if chunk.shape[0] == 0:
            break
        total += chunk.shape[0]
        if total > limit:
            raise AudioError(f"{label}: is too long (over {max_seconds:g} s, the limit; its "
                             "header does not say how long); trim it first")
        if not np.all(np.isfinite(chunk)):
            raise AudioError(f"{label}: contains NaN or infinite samples; the file is damaged")
        parts.append(chunk.mean(axis=1, dtype=np.float32))
        peak = max(peak, float(np.abs(chunk).max(initial=0.0)))
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), peak


# libsndfile blames pipes when an mp3 holds no complete frame (cut short); the file was
# opened and is a regular file by then (see _open_path), so say what is wrong with it.
_MISLEADING = {"File does not exist or is not a regular file (possibly a pipe?).":
               "no complete audio frame: the file is cut short or damaged"}


def _reason(exc: BaseException) -> str:
    """libsndfile's reason without its ``Error opening <object/path>:`` prefix."""
    text = re.sub(r"^Error opening .*?: ", "", str(exc).strip(), count=1, flags=re.S)
    return display_name(_MISLEADING.get(text, text), limit=160)


def _riff_data_size(head: bytes) -> tuple[int, int] | None:
    """``(offset, declared size)`` of a RIFF/WAVE ``data`` chunk from the first bytes, or
    ``None`` (not RIFF, chunk not within ``head``, or the streaming markers 0 / 0xFFFFFFFF)."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(head):
        cid, size = head[pos:pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if cid == b"data":
            return None if size in (0, 0xFFFFFFFF) else (pos + 8, size)
        pos += 8 + size + (size & 1)
    return None


def _check_riff_sizes(head: bytes, total: int, label: str) -> None:
    """Refuse a WAV whose header claims more sample bytes than the file holds (truncated
    download, or a hostile header claiming gigabytes), before anything is decoded."""
    found = _riff_data_size(head)
    if found is None:
        return
    offset, size = found
    if offset + size > total:
        raise AudioError(f"{label}: is truncated or damaged: its header claims {size:,} bytes "
                         f"of samples but the file holds {max(total - offset, 0):,}; "
                         "export it again")


def _decode_mp3_fallback(source, label: str) -> tuple[np.ndarray, int]:
    """mp3 through librosa/audioread when this libsndfile cannot decode mp3."""
    try:
        import audioread  # noqa: F401  (only to learn whether a decoder backend exists)
        import librosa
    except ImportError as exc:
        raise AudioError(f"{label}: mp3 not supported here (libsndfile without mp3 and "
                         "no audioread); convert it to wav or flac") from exc
    tmp = None
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            # audioread needs a path; the temporary file is removed below.
            with tempfile.NamedTemporaryFile(suffix=".mp3", delete=False) as fh:
                fh.write(bytes(source))
                tmp = fh.name
        y, rate = librosa.load(tmp or str(source), sr=None, mono=False)
    except Exception as exc:  # audioread raises many unrelated types
        raise AudioError(f"{label}: cannot be decoded as mp3 ({exc})") from exc
    finally:
        if tmp:
            os.unlink(tmp)
    return np.atleast_2d(np.asarray(y, dtype=np.float32)).T, int(rate)


def _resample(wave: np.ndarray, rate: int, target: int, label: str) -> np.ndarray:
    import librosa

    try:
        out = librosa.resample(wave, orig_sr=rate, target_sr=target)
    except Exception as exc:  # librosa/soxr raise assorted types on pathological input
        raise AudioError(f"{label}: cannot be resampled from {rate} to {target} Hz "
                         f"({exc})") from exc
    return np.asarray(out, dtype=np.float32)


def load_audio(source: str | os.PathLike | bytes, *, sample_rate: int | None = None,
               max_seconds: float = 30.0, name: str | None = None,
               max_bytes: int = 20_000_000) -> tuple[np.ndarray, int]:
    """Decode an audio file or in-memory bytes to a mono float32 waveform.

    Args:
      source: a path (wav, flac, ogg, mp3) or the file's bytes (an upload).
      sample_rate: Hz to resample to (librosa, soxr); ``None`` keeps the file's rate.
      max_seconds: longest accepted duration in seconds, checked from the header first.
      name: how messages refer to the source (default: the file name).
      max_bytes: largest accepted size of ``bytes`` input.
    Returns:
      ``(wave, rate)``: ``(samples,)`` float32 (channels averaged) and its rate in Hz.
    Raises:
      AudioError: missing, empty, corrupt, unknown format, too long, too large, absurd
        sample rate, NaN/inf samples.
    """
    label = _source_name(source, name)
    if sample_rate is not None:
        _check_rate(int(sample_rate), label, "requested")
    if not max_seconds > 0:
        raise ValueError(f"max_seconds must be > 0, got {max_seconds}")
    obj = _open_input(source, label, max_bytes)
    try:
        wave, peak, rate = _decode_soundfile(obj, label, max_seconds)
    except AudioError:
        if "MP3" in sf.available_formats() or not _looks_like_mp3(source, label):
            raise
        data, rate = _decode_mp3_fallback(source, label)
        _check_rate(rate, label, "its")
        wave, peak = _mono_of(data, label, max_seconds, rate)
    if wave.shape[0] == 0:
        raise AudioError(f"{label}: is empty (0 samples); record or upload some sound")
    _check_channels_do_not_cancel(wave, peak, label)
    if sample_rate is not None and int(sample_rate) != rate:
        wave, rate = _resample(wave, rate, int(sample_rate), label), int(sample_rate)
    if not np.all(np.isfinite(wave)):  # what the model hears, after resampling
        raise AudioError(f"{label}: contains NaN or infinite samples after resampling; the "
                         "file is damaged")
    return wave, rate


def _mono_of(data: np.ndarray, label: str, max_seconds: float, rate: int
             ) -> tuple[np.ndarray, float]:
    """The fallback decoder's ``(samples, channels)`` checked and mixed as
    :func:`_read_mono` does."""
    _check_channels(data.shape[1], label)
    if data.shape[0] > max_seconds * rate:
        raise AudioError(f"{label}: is too long ({seconds_over(data.shape[0], rate, max_seconds)}"
                         "); trim it first")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{label}: contains NaN or infinite samples; the file is damaged")
    return data.mean(axis=1, dtype=np.float32), float(np.abs(data).max(initial=0.0))


def _check_channels_do_not_cancel(mono: np.ndarray, peak: float, label: str,
                                  threshold: float = 1e-4) -> None:
    """Channels of opposite sign sum to silence: say so instead of 'record closer'."""
    if float(np.max(np.abs(mono))) < threshold <= peak:
        raise AudioError(f"{label}: its channels cancel out when mixed to mono (one is the "
                         "other inverted); export one channel or a proper mix")


def check_not_silent(wave: np.ndarray, *, name: str, threshold: float = 1e-4) -> None:
    """Raise :class:`AudioError` if the peak of ``wave`` (``(samples,)``) is below ``threshold``.

    Silence is a legal input for editing but not for prediction.
    """
    wave = np.asarray(wave)
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    if peak < threshold:
        raise AudioError(f"{name}: is silent (peak {peak:.2g} below {threshold:g}); "
                         "record again closer to the microphone")


def fit_to_window(wave: np.ndarray, n_samples: int) -> np.ndarray:
    """Trim or zero-pad ``wave`` (``(samples,)``) to exactly ``n_samples``.

    Trimming keeps the window of largest energy (sum of squares, found with a cumulative sum
    in float64 so long clips do not lose precision); padding centres the clip.
    """
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"wave must be 1-D (samples,), got shape {wave.shape}")
    if int(n_samples) != n_samples or n_samples <= 0:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples}")
    n, n_samples = wave.shape[0], int(n_samples)
    if n > n_samples:
        c = np.concatenate([[0.0], np.cumsum(wave.astype(np.float64) ** 2)])
        start = int(np.argmax(c[n_samples:] - c[:-n_samples]))
        return wave[start:start + n_samples].copy()
    left = (n_samples - n) // 2
    return np.pad(wave, (left, n_samples - n - left))


def peak_normalise(wave: np.ndarray, *, peak: float = 0.99) -> np.ndarray:
    """Scale ``wave`` so that ``max |wave| == peak``; an all-zero input stays zero."""
    if not 0 < peak <= 1:
        raise ValueError(f"peak must be in (0, 1], got {peak}")
    wave = np.asarray(wave, dtype=np.float32)
    m = float(np.max(np.abs(wave))) if wave.size else 0.0
    if m == 0.0:
        return np.zeros_like(wave)
    return (wave * np.float32(peak / m)).astype(np.float32)


def prepare_wave(source, params: FeatureParams, *, name: str | None = None,
                 max_seconds: float = 30.0) -> np.ndarray:
    """A model-ready waveform: loaded at ``params.sample_rate``, checked not silent, fitted to
    ``params.n_samples`` and peak-normalised. Returns float32 ``(params.n_samples,)``."""
    label = _source_name(source, name)
    wave, _ = load_audio(source, sample_rate=params.sample_rate, max_seconds=max_seconds,
                         name=label)
    check_not_silent(wave, name=label)
    return peak_normalise(fit_to_window(wave, params.n_samples))


def to_wav_bytes(wave: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV of ``wave`` (``(samples,)``, clipped to ``[-1, 1]``) at ``sample_rate`` Hz."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"wave must be 1-D (samples,), got shape {wave.shape}")
    if not np.all(np.isfinite(wave)):
        raise ValueError("wave contains NaN or infinite samples; cannot encode WAV")
    if int(sample_rate) != sample_rate or not MIN_RATE <= sample_rate <= MAX_RATE:
        raise ValueError(f"sample_rate must be an integer in {MIN_RATE}..{MAX_RATE} Hz, "
                         f"got {sample_rate}")
    buf = io.BytesIO()
    sf.write(buf, np.clip(wave, -1.0, 1.0), int(sample_rate), format="WAV", subtype="PCM_16")
    return buf.getvalue()
